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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import click
import httpx
import pytest
import yaml
from click.testing import CliRunner

from bulkterm.engine import utcnow
from bulkterm.manifest import load_manifests
from bulkterm.simulator import Simulator
from bulkterm.simulator.command import simulator_command
from bulkterm.simulator.manifests import seed_selector, seed_targets, simulated_status
from bulkterm.spec import Target

ROOT = Path(__file__).resolve().parents[2]
BULKTERM = [sys.executable, "-m", "bulkterm.cli"]
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
    for option in (
        "--port",
        "--bulk-updates",
        "--write-service-key",
        "--error-rate",
        "--seed",
        "--seed-from",
        "--resource-group",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    "arguments",
    [["--error-rate", "2"], ["--run-seconds", "soon"], ["--resource-group", "-bad-"]],
    ids=str,
)
def test_invalid_options_are_usage_errors(arguments: list[str]) -> None:
    result = CliRunner().invoke(simulator_command, arguments)
    assert result.exit_code == 2


# -- options → simulator, without serving -------------------------------------------------

SMALL = ROOT / "examples" / "small.yaml"


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Simulator]:
    """Simulators the command would serve; ``serve`` is replaced so nothing listens."""
    made: list[Simulator] = []

    async def fake_serve(
        simulator: Simulator, service_key: Path | None, notes: Sequence[str] = ()
    ) -> None:
        made.append(simulator)

    monkeypatch.setattr("bulkterm.simulator.command.serve", fake_serve)
    return made


def build(built: list[Simulator], *arguments: str) -> Simulator:
    result = CliRunner().invoke(simulator_command, list(arguments))
    assert result.exit_code == 0, result.output
    (simulator,) = built
    return simulator


def test_bulk_updates_are_off_unless_asked_for(built: list[Simulator]) -> None:
    assert build(built).config.bulk_updates is False


def test_bulk_updates_flag_turns_them_on(built: list[Simulator]) -> None:
    simulator = build(built, "--bulk-updates")
    assert simulator.config.bulk_updates is True
    assert simulator.backend.meta()["aiApi"]["capabilities"]["bulkUpdates"] == {
        "executions": True,
        "deployments": True,
    }


def test_tokens_live_as_long_as_xsuaa_issues_them_by_default(built: list[Simulator]) -> None:
    assert build(built).config.token_expires_in == 43199


def test_resource_group_is_repeatable_and_seeds_into_the_first(built: list[Simulator]) -> None:
    simulator = build(
        built, "--resource-group", "team-a", "--resource-group", "team-b", "--deployments", "2"
    )
    assert simulator.resource_groups() == ["default", "team-a", "team-b"]
    assert len(simulator.items(resource_group="team-a")) == 2


def test_seed_from_creates_the_manifest_targets_as_apply_simulator_does(
    built: list[Simulator],
) -> None:
    simulator = build(built, "--seed-from", str(SMALL))
    (manifest,) = load_manifests(SMALL.read_text())
    expected = {
        (t.kind, t.id, simulated_status(t))
        for t in manifest.spec.targets
        if simulated_status(t) is not None
    }
    group = manifest.spec.connection.resource_group
    assert {(v.kind, v.id, v.status) for v in simulator.items(resource_group=group)} == expected


SELECTOR = ROOT / "examples" / "selector.yaml"


def _item_shape(simulator: Simulator, group: str) -> set[tuple[str, ...]]:
    """Each item as the selector's filters read it (its creation time aside: "now" differs)."""
    return {
        (v.kind, v.id, v.status, v.scenario_id, v.configuration_id, v.execution_schedule_id or "")
        for v in simulator.items(resource_group=group)
    }


def test_seed_from_seeds_a_selector_manifest_as_apply_simulator_does(
    built: list[Simulator],
) -> None:
    simulator = build(built, "--seed-from", str(SELECTOR))
    expected = Simulator()
    for manifest in load_manifests(SELECTOR.read_text()):  # as bulkterm.apply.embedded does
        group = manifest.spec.connection.resource_group
        seed_targets(expected, manifest.spec.targets, resource_group=group)
        assert manifest.spec.selector is not None
        seed_selector(expected, manifest.spec.selector, resource_group=group, now=utcnow())
    assert _item_shape(simulator, "default") == _item_shape(expected, "default")
    assert simulator.items(resource_group="default") != []


def test_the_selector_of_a_seeded_manifest_finds_items(tmp_path: Path) -> None:
    """``bulkterm simulator --seed-from examples/selector.yaml``, then a dry run of the same
    manifests against it: each selector selects items (and leaves some out)."""
    key = tmp_path / "key.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICORE_", "BULKTERM_"))}
    server = subprocess.Popen(
        [*BULKTERM, "simulator", "--seed-from", str(SELECTOR), "--write-service-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    output = Output(server)
    try:
        assert LISTENING.search(output.line()), "first line must announce the URL"
        while "service key written" not in output.line():
            pass
        seeded = [output.line(), output.line()]
        assert all(" items for the selector " in line for line in seeded), seeded
        applied = subprocess.run(
            [*BULKTERM, "apply", "-f", str(SELECTOR), "--dry-run", "--service-key", str(key),
             "--allow-plain-http"],
            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        selections = [d["status"]["selection"] for d in yaml.safe_load_all(applied.stdout) if d]
        assert len(selections) == 2
        for selection in selections:
            assert selection["selected"] > 0, selection
            assert sum(selection["excluded"].values()) > 0, selection
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)
            for stream in (server.stdout, server.stderr):
                if stream is not None:
                    stream.close()


def test_seed_from_is_repeatable_and_uses_each_manifest_s_group(
    built: list[Simulator], tmp_path: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "aiapi.bulkops.dev/v1alpha1",
                "kind": "BulkTermination",
                "metadata": {"name": "other"},
                "spec": {
                    "connection": {"secretRef": {"name": "key"}, "resourceGroup": "team-m"},
                    "targets": [
                        {"kind": "Deployment", "id": "dep-m-0001", "targetStatus": "STOPPED"}
                    ],
                },
            }
        )
    )
    simulator = build(built, "--seed-from", str(SMALL), "--seed-from", str(other))
    assert "team-m" in simulator.resource_groups()
    assert [v.id for v in simulator.items(resource_group="team-m")] == ["dep-m-0001"]
    assert len(simulator.items(resource_group="default")) == 3


def test_seed_from_makes_the_group_exist_even_when_every_target_is_already_gone(
    built: list[Simulator], tmp_path: Path
) -> None:
    # dep-g0018 (DELETED) is one of the targets simulated_status makes "already gone".
    target = {"kind": "Deployment", "id": "dep-g0018", "targetStatus": "DELETED"}
    assert simulated_status(Target.model_validate(target)) is None
    gone = tmp_path / "gone.yaml"
    gone.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "aiapi.bulkops.dev/v1alpha1",
                "kind": "BulkTermination",
                "metadata": {"name": "gone"},
                "spec": {
                    "connection": {"secretRef": {"name": "key"}, "resourceGroup": "team-x"},
                    "targets": [target],
                },
            }
        )
    )
    simulator = build(built, "--seed-from", str(gone))
    assert "team-x" in simulator.resource_groups()
    assert simulator.items() == []


def test_seed_from_an_invalid_manifest_is_a_usage_error(
    built: list[Simulator], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: aiapi.bulkops.dev/v1alpha1\nkind: BulkTermination\nspec: {}\n")
    result = CliRunner().invoke(simulator_command, ["--seed-from", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output
    assert built == []


def test_seed_from_a_missing_file_is_a_usage_error(built: list[Simulator], tmp_path: Path) -> None:
    result = CliRunner().invoke(simulator_command, ["--seed-from", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert built == []


def test_an_unwritable_service_key_path_says_so(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "k.json"
    result = CliRunner().invoke(simulator_command, ["--write-service-key", str(target)])
    assert result.exit_code == 2
    assert f"cannot write the service key to {target}" in result.output
    assert "No such file or directory" in result.output
    assert "cannot listen" not in result.output
    assert "listening on" not in result.output


# -- the README walkthrough ---------------------------------------------------------------


def test_readme_walkthrough_seed_from_then_apply_with_the_written_key(tmp_path: Path) -> None:
    """``bulkterm simulator --seed-from examples/small.yaml --write-service-key key.json &``
    then ``bulkterm apply -f examples/small.yaml --service-key key.json`` succeeds.

    The same commands, plus shorter lifecycle phases than the defaults (which make the run
    take ~20 s of polling, not a different outcome)."""
    key = tmp_path / "key.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICORE_", "BULKTERM_"))}
    quick = [
        "--unknown-seconds", "0.2", "--pending-seconds", "0.3", "--stop-delay-seconds", "0.05",
        "--stopping-seconds", "0.3", "--deletion-seconds", "0.5",
    ]  # fmt: skip
    server = subprocess.Popen(
        [*BULKTERM, "simulator", "--seed-from", "examples/small.yaml", "--write-service-key", str(key), *quick],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    output = Output(server)
    try:
        assert LISTENING.search(output.line()), "first line must announce the URL"
        while "service key written" not in output.line():
            pass
        seeded = output.line()
        assert seeded.startswith("seeded 3 of the 3 targets of examples/small.yaml")
        assert seeded.rstrip().endswith("into resource group default")
        applied = subprocess.run(
            [*BULKTERM, "apply", "-f", "examples/small.yaml", "--service-key", str(key), "--allow-plain-http"],
            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        status = yaml.safe_load(applied.stdout)["status"]
        assert (status["succeeded"], status["failed"]) == (3, 0)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)
            for stream in (server.stdout, server.stderr):
                if stream is not None:
                    stream.close()
