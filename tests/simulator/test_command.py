"""``bulkterm simulator``: starts on a free port, prints where, writes a key, never the secret."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
import httpx
import pytest
from click.testing import CliRunner

from bulkterm.simulator.command import simulator_command

SECRET = "s3cr3t-never-printed"
LISTENING = re.compile(r"AI API simulator listening on (http://127\.0\.0\.1:(\d+))")


class Output:
    """The child's stdout, line by line, read in a thread so a silent child cannot hang a test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")

    def line(self, timeout: float = 15.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from the simulator") from None
        self.seen.append(line)
        return line

    def rest(self, timeout: float = 15.0) -> str:
        self._thread.join(timeout)
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return "".join(self.seen)


Started = tuple[subprocess.Popen[str], Output, str, Path]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    key = tmp_path / "key.json"
    env = {**os.environ, "BULKTERM_SIM_CLIENT_SECRET": SECRET}
    command = [
        sys.executable, "-m", "bulkterm.simulator", "--port", "0", "--deployments", "4",
        "--executions", "3", "--resource-group", "team-a", "--write-service-key", str(key), "--seed", "3",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    output = Output(process)
    try:
        match = LISTENING.search(output.line())
        assert match, "first line must announce the URL"
        yield process, output, match.group(1), key
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_command_serves_on_the_printed_port_with_the_seeded_items(started: Started) -> None:
    _, _, url, _ = started
    items = httpx.get(f"{url}/_sim/items", params={"resource_group": "team-a"}).json()
    assert len(items) == 7


def test_command_writes_a_working_service_key(started: Started) -> None:
    _, _, url, key_path = started
    key = json.loads(key_path.read_text())
    assert (key["url"], key["serviceurls"]["AI_API_URL"], key["clientsecret"]) == (url, url, SECRET)
    token = httpx.post(
        f"{url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": key["clientid"],
            "client_secret": SECRET,
        },
    )
    assert token.status_code == 200


def test_command_stops_on_ctrl_c_and_never_prints_the_secret(started: Started) -> None:
    process, output, _, key_path = started
    assert f"service key written to {key_path}" in output.line() + output.line()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert process.stderr is not None
    out, err = output.rest(), process.stderr.read()
    assert "simulator stopped" in out
    assert SECRET not in out + err


def test_command_is_a_click_command_named_simulator() -> None:
    assert isinstance(simulator_command, click.Command)
    assert simulator_command.name == "simulator"


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(simulator_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--no-bulk-updates", "--write-service-key", "--error-rate", "--seed"):
        assert option in result.output


@pytest.mark.parametrize(
    "arguments",
    [["--error-rate", "2"], ["--run-seconds", "soon"], ["--resource-group", "-bad-"]],
    ids=str,
)
def test_invalid_options_are_usage_errors(arguments: list[str]) -> None:
    result = CliRunner().invoke(simulator_command, arguments)
    assert result.exit_code == 2
