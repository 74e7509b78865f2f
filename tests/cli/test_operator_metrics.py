"""``bulkterm operator``'s metrics endpoint as started from the command line: HTTPS with its
callers reviewed by default, plain HTTP when asked, and a certificate folder that is checked
before anything starts.

The kubeconfig names an API server that is not there (127.0.0.1:9, closed), so whatever needs
a review cannot have one; tests/e2e/test_metrics_auth.py runs the reviews on a real one.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_apply import BULKTERM, ROOT
from tests.cli.test_operator_settings import KUBECONFIG, environment, operator, refused_with
from tests.kube.controlplane import free_port
from tests.simulator.certs import Pki, make_test_pki

TOKEN = "a-scraper-token-that-must-not-be-logged"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


@pytest.fixture
def cert_dir(tmp_path: Path, pki: Pki) -> Path:
    folder = tmp_path / "metrics-tls"
    folder.mkdir()
    shutil.copyfile(pki.cert, folder / "tls.crt")
    shutil.copyfile(pki.key, folder / "tls.key")
    return folder


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, scheme: str = "https", timeout: float = 30.0, **options: Any) -> httpx.Response:
        """GET /metrics once the endpoint answers (failing with the log if the operator
        exited: then whatever answers on the port is not it)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                return httpx.get(f"{scheme}://127.0.0.1:{self.port}/metrics", timeout=10, **options)
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


Start = Callable[..., Running]


@pytest.fixture
def start(kubeconfig: Path, tmp_path: Path) -> Iterator[Start]:
    """``start(*flags, **env)``: the operator running with its metrics on a free port of
    127.0.0.1."""
    processes: list[subprocess.Popen[bytes]] = []

    def run(*flags: str, **env: str) -> Running:
        port, health = free_port(), free_port()
        log = tmp_path / f"operator-{len(processes)}.log"
        argv = [
            *BULKTERM, "operator", "--metrics-address", "127.0.0.1", "--metrics-port", str(port),
            "--liveness-endpoint", f"http://127.0.0.1:{health}/healthz", *flags,
        ]  # fmt: skip
        process = subprocess.Popen(
            argv,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=environment(kubeconfig, **env),
            cwd=ROOT,
        )
        processes.append(process)
        return Running(process, port, log)

    yield run
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_by_default_the_metrics_are_https_and_refuse_a_scrape_without_a_token(
    start: Start,
) -> None:
    response = start().get(verify=False)
    assert response.status_code == 401
    assert "bulkterm_" not in response.text


def test_a_token_that_cannot_be_reviewed_is_503_and_never_logged(start: Start) -> None:
    running = start()
    response = running.get(verify=False, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert TOKEN not in running.log.read_text(errors="replace")


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (("--metrics-secure=false",), {}),
        ((), {"BULKTERM_METRICS_SECURE": "false"}),
    ],
    ids=["flag", "env"],
)
def test_the_plain_http_opt_out_serves_without_a_token(
    start: Start, flags: tuple[str, ...], env: dict[str, str]
) -> None:
    response = start(*flags, **env).get("http")
    assert response.status_code == 200
    assert "bulkterm_aiapi_calls_total" in response.text


def test_the_certificate_of_the_cert_dir_is_served(start: Start, cert_dir: Path, pki: Pki) -> None:
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    response = start("--metrics-cert-dir", str(cert_dir)).get(verify=trusted)
    assert response.status_code == 401  # verified against the folder's CA, then refused


def test_a_missing_cert_dir_exits_2_naming_the_flag_and_the_folder(
    kubeconfig: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    line = refused_with(operator(kubeconfig, "--metrics-cert-dir", str(missing)))
    assert f"--metrics-cert-dir: {missing}: no such folder" in line


def test_a_cert_dir_without_its_key_in_the_environment_is_named_as_the_variable(
    kubeconfig: Path, cert_dir: Path
) -> None:
    (cert_dir / "tls.key").unlink()
    line = refused_with(operator(kubeconfig, BULKTERM_METRICS_CERT_DIR=str(cert_dir)))
    assert "BULKTERM_METRICS_CERT_DIR (flag --metrics-cert-dir): " in line
    assert f"{cert_dir / 'tls.key'}: no such file" in line


def test_a_cert_dir_with_plain_http_is_refused(kubeconfig: Path, cert_dir: Path) -> None:
    result = operator(kubeconfig, "--metrics-secure=false", "--metrics-cert-dir", str(cert_dir))
    assert "--metrics-secure is false" in refused_with(result)
