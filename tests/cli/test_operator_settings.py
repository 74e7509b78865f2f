"""``bulkterm operator``: where it listens and which CAs it trusts, checked before kopf runs.

A bad ``--metrics-address``, ``--liveness-endpoint`` or ``--ca-bundle`` (or their
``BULKTERM_*`` variables) ends the start with exit 2 and one line naming the flag or variable,
never a traceback; so does an address that cannot be listened on (in use, not on this host).
A good ``--metrics-address`` is where the metrics are served, and nowhere else.

The operator gets a kubeconfig whose API server (127.0.0.1, a closed port) is never reached
before these checks; in the one test that starts it for real, kopf retries that server while
the endpoints are probed over 127.0.0.0/8.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_apply import BULKTERM, ROOT
from tests.kube.controlplane import free_port
from tests.simulator.certs import Pki, make_test_pki

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def environment(kubeconfig: Path, **env: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_", "KUBECONFIG", "BULKTERM_"))
    }
    return {**clean, "KUBECONFIG": str(kubeconfig), **env}


def operator(kubeconfig: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BULKTERM, "operator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(kubeconfig, **env),
        cwd=ROOT,
    )


def refused_with(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a start refused with exit 2 (click's usage lines aside)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    return line


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 some other process listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


# -- bad values ------------------------------------------------------------------------------


def test_a_metrics_address_that_is_not_an_ip_address_exits_2_naming_the_flag(
    kubeconfig: Path,
) -> None:
    line = refused_with(operator(kubeconfig, "--metrics-address", "metrics.example"))
    assert "--metrics-address: 'metrics.example' is not an IP address to listen on" in line


def test_a_bad_metrics_address_in_the_environment_is_named_as_the_variable(
    kubeconfig: Path,
) -> None:
    result = operator(kubeconfig, BULKTERM_METRICS_ADDRESS="300.1.1.1")
    line = refused_with(result)
    assert "BULKTERM_METRICS_ADDRESS (flag --metrics-address): '300.1.1.1'" in line


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("https://0.0.0.0:8080/healthz", "must start with http://"),
        ("http://0.0.0.0/healthz", "name the port"),
        ("http://0.0.0.0:0/healthz", "name the port"),
        ("http://0.0.0.0:http/healthz", "the port is not a number"),
        ("http://health.example:8080/healthz", "health.example is not an IP address"),
        ("http://0.0.0.0:8080", "name the path"),
        ("http://0.0.0.0:8080/healthz?x=1", "only an address, a port and a path"),
    ],
)
def test_a_bad_liveness_endpoint_exits_2_naming_the_flag(
    kubeconfig: Path, endpoint: str, problem: str
) -> None:
    line = refused_with(operator(kubeconfig, "--liveness-endpoint", endpoint))
    assert line.startswith("Error: invalid operator settings: --liveness-endpoint: ")
    assert problem in line


def test_a_missing_ca_bundle_exits_2_naming_the_flag_and_the_file(
    kubeconfig: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "corporate-ca.pem"
    line = refused_with(operator(kubeconfig, "--ca-bundle", str(missing)))
    assert f"--ca-bundle: CA bundle {missing}: no such file" in line


def test_a_ca_bundle_without_a_certificate_in_the_environment_is_named(
    kubeconfig: Path, pki: Pki
) -> None:
    line = refused_with(operator(kubeconfig, BULKTERM_CA_BUNDLE=str(pki.key)))
    assert f"BULKTERM_CA_BUNDLE (flag --ca-bundle): CA bundle {pki.key}: no PEM certificate" in line


def test_an_empty_ca_bundle_variable_means_none(kubeconfig: Path) -> None:
    """As a template renders an unset value: not a file named ''."""
    result = operator(kubeconfig, "--metrics-address", "nope", BULKTERM_CA_BUNDLE="")
    line = refused_with(result)
    assert "--metrics-address" in line and "CA bundle" not in line


# -- addresses that cannot be listened on ---------------------------------------------------


def test_a_metrics_port_in_use_exits_2_naming_the_flags(kubeconfig: Path, busy_port: int) -> None:
    result = operator(
        kubeconfig, "--metrics-address", "127.0.0.1", "--metrics-port", str(busy_port),
        "--liveness-endpoint", "",
    )  # fmt: skip
    line = refused_with(result)
    assert line == (
        f"error: cannot listen on --metrics-address 127.0.0.1 --metrics-port {busy_port}: "
        "Address already in use"
    )


def test_a_metrics_address_not_on_this_host_exits_2(kubeconfig: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails, nothing is sent anywhere.
    result = operator(
        kubeconfig, "--metrics-address", "192.0.2.1", "--metrics-port", str(free_port()),
        "--liveness-endpoint", "",
    )  # fmt: skip
    line = refused_with(result)
    assert "cannot listen on --metrics-address 192.0.2.1" in line
    assert "Cannot assign requested address" in line


def test_a_liveness_port_in_use_exits_2_naming_the_flag(kubeconfig: Path, busy_port: int) -> None:
    endpoint = f"http://127.0.0.1:{busy_port}/healthz"
    result = operator(kubeconfig, "--metrics-port", "0", "--liveness-endpoint", endpoint)
    line = refused_with(result)
    assert line == f"error: cannot listen on --liveness-endpoint {endpoint}: Address already in use"


def test_metrics_and_health_on_one_port_is_refused_saying_so(kubeconfig: Path) -> None:
    port = free_port()
    result = operator(
        kubeconfig, "--metrics-address", "127.0.0.1", "--metrics-port", str(port),
        "--liveness-endpoint", f"http://127.0.0.1:{port}/healthz",
    )  # fmt: skip
    assert "--metrics-port is the same port" in refused_with(result)


# -- a good address --------------------------------------------------------------------------


def test_metrics_are_served_on_the_metrics_address_and_nowhere_else(kubeconfig: Path) -> None:
    metrics, health = free_port(), free_port()
    process = subprocess.Popen(
        [
            *BULKTERM, "operator", "--metrics-address", "127.0.0.1", "--metrics-port",
            str(metrics), "--metrics-secure=false",
            "--liveness-endpoint", f"http://127.0.0.1:{health}/healthz",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(kubeconfig),
        cwd=ROOT,
    )  # fmt: skip
    try:
        page = _get_when_up(f"http://127.0.0.1:{metrics}/metrics")
        assert "bulkterm_aiapi_calls_total" in page
        # Bound to 127.0.0.1 only: another loopback address of this host finds nothing there.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{metrics}/metrics", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _get_when_up(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5).raise_for_status().text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
