"""``bulkterm simulator`` off loopback and over TLS: what it says at start, what it requires.

Off loopback (``--host 0.0.0.0``, reached here over 127.0.0.1 only) ``/_sim`` needs the control
token: a generated one is printed once, a given one (``--control-token`` /
``BULKTERM_SIM_CONTROL_TOKEN``) never. ``--tls-cert``/``--tls-key`` serve HTTPS; files that do
not load are refused at start with exit 2, before anything listens.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.simulator.certs import Pki
from tests.simulator.test_command import Output

SIMULATOR = [sys.executable, "-m", "bulkterm.simulator", "--port", "0"]
LISTENING = re.compile(r"AI API simulator listening on (https?://127\.0\.0\.1:\d+)")
GIVEN = "given-control-token-0123456789abcdef"


class Running:
    def __init__(self, process: subprocess.Popen[str], output: Output, url: str) -> None:
        self.process, self.output, self.url = process, output, url
        assert "  AI API: " in output.line()

    def next_line(self) -> str:
        return self.output.line().rstrip("\n")

    def stop(self) -> tuple[str, str]:
        """SIGINT, then everything the process printed (stdout, stderr)."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=15) == 0
        assert self.process.stderr is not None
        return self.output.rest(), self.process.stderr.read()


Start = Callable[..., Running]


@pytest.fixture
def start() -> Iterator[Start]:
    processes: list[subprocess.Popen[str]] = []

    def run(*args: str, env: dict[str, str] | None = None) -> Running:
        process = subprocess.Popen(
            [*SIMULATOR, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_clean_env(), **(env or {})},
        )
        processes.append(process)
        output = Output(process)
        match = LISTENING.search(output.line())
        assert match, "first line must announce the URL"
        return Running(process, output, match.group(1))

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BULKTERM_SIM_")}


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def refused(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIMULATOR, *args], capture_output=True, text=True, timeout=30, env=_clean_env()
    )


def test_off_loopback_a_generated_token_is_printed_once_and_protects_the_control_api(
    start: Start,
) -> None:
    sim = start("--host", "0.0.0.0")
    protected, shown = sim.next_line(), sim.next_line()
    assert "control API /_sim: protected (listening on 0.0.0.0, beyond loopback)" in protected
    assert "Authorization: Bearer <control token>" in protected
    token = shown.split("control token (generated, shown only this once): ")[1].strip()
    without = httpx.get(f"{sim.url}/_sim/health")
    with_token = httpx.get(f"{sim.url}/_sim/health", headers={"Authorization": f"Bearer {token}"})
    assert (without.status_code, with_token.status_code) == (401, 200)
    out, err = sim.stop()
    assert (out + err).count(token) == 1


def test_a_control_token_given_in_the_environment_is_required_and_never_printed(
    start: Start,
) -> None:
    sim = start("--host", "0.0.0.0", env={"BULKTERM_SIM_CONTROL_TOKEN": GIVEN})
    protected = sim.next_line()
    assert "protected" in protected and "BULKTERM_SIM_CONTROL_TOKEN" in protected
    seeded = httpx.post(
        f"{sim.url}/_sim/items",
        json={"deployments": 1},
        headers={"Authorization": f"Bearer {GIVEN}"},
    )
    assert seeded.status_code == 201
    assert httpx.post(f"{sim.url}/_sim/reset").status_code == 401
    out, err = sim.stop()
    assert GIVEN not in out + err


def test_on_loopback_the_control_api_is_open_and_start_up_says_nothing_more(
    start: Start,
) -> None:
    sim = start()
    assert httpx.get(f"{sim.url}/_sim/health").status_code == 200
    out, _ = sim.stop()
    assert "control API" not in out and "control token" not in out


def test_a_short_control_token_is_refused_with_exit_2_without_echoing_it() -> None:
    result = refused(["--control-token", "tooshort"])
    assert result.returncode == 2
    assert "Invalid value for '--control-token'" in result.stderr
    assert "at least 16 characters" in result.stderr and "tooshort" not in result.stderr


def test_tls_cert_and_key_serve_https_that_a_client_trusting_the_ca_accepts(
    start: Start, pki: Pki
) -> None:
    sim = start("--tls-cert", str(pki.cert), "--tls-key", str(pki.key))
    assert sim.url.startswith("https://127.0.0.1:")
    trusted = httpx.get(f"{sim.url}/_sim/health", verify=trusting(pki.ca))
    assert trusted.status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{sim.url}/_sim/health", verify=trusting(pki.other_ca))


def test_a_tls_cert_without_its_key_is_refused_with_exit_2(pki: Pki) -> None:
    result = refused(["--tls-cert", str(pki.cert)])
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr


def test_a_tls_pair_that_does_not_load_is_refused_with_exit_2_naming_the_files(pki: Pki) -> None:
    result = refused(["--tls-cert", str(pki.ca), "--tls-key", str(pki.key)])  # not a pair
    assert result.returncode == 2
    assert f"--tls-cert/--tls-key: cannot serve HTTPS: {pki.ca} and {pki.key}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_missing_tls_file_is_refused_with_exit_2_naming_it(pki: Pki) -> None:
    result = refused(["--tls-cert", "/nonexistent/cert.pem", "--tls-key", str(pki.key)])
    assert result.returncode == 2
    assert "'/nonexistent/cert.pem' does not exist" in result.stderr
