"""``bulkterm apply`` over HTTPS: the certificate is verified, ``--ca-bundle`` says by which CAs.

A simulator serves HTTPS on 127.0.0.1 with a certificate of a throwaway CA. Without that CA
``apply`` stops at once with exit 2 and one line naming the server and what to do (nothing
was sent); with ``--ca-bundle`` (or ``BULKTERM_CA_BUNDLE``) the same run succeeds. A bundle
that cannot be used is refused before anything is sent, naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.cli.test_apply import bulkterm, manifest
from tests.plugins.simulator import simulator_config
from tests.simulator.certs import Pki, make_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_sim(pki: Pki) -> Iterator[SimulatorThread]:
    with SimulatorThread(simulator_config(tls_cert=pki.cert, tls_key=pki.key)) as sim:
        sim.add_item(Kind.DEPLOYMENT, "dep-tls-0001", Status.RUNNING)
        yield sim


@pytest.fixture
def job(tmp_path: Path, https_sim: SimulatorThread) -> tuple[Path, Path]:
    key = https_sim.write_service_key(tmp_path / "key.json")
    path = tmp_path / "job.yaml"
    path.write_text(manifest(("Deployment", "dep-tls-0001", "STOPPED")))
    return path, key


def test_with_the_ca_bundle_the_run_succeeds_over_https(
    job: tuple[Path, Path], pki: Pki, https_sim: SimulatorThread
) -> None:
    path, key = job
    result = bulkterm(
        "apply",
        "-f",
        str(path),
        "--service-key",
        str(key),
        "--ca-bundle",
        str(pki.ca),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["succeeded"] == 1
    assert https_sim.state_of(Kind.DEPLOYMENT, "dep-tls-0001") in (Status.STOPPING, Status.STOPPED)


def test_the_ca_bundle_can_come_from_the_environment(job: tuple[Path, Path], pki: Pki) -> None:
    path, key = job
    result = bulkterm(
        "apply", "-f", str(path), "--service-key", str(key), env={"BULKTERM_CA_BUNDLE": str(pki.ca)}
    )
    assert result.returncode == 0, result.stderr


def test_without_the_ca_the_run_stops_with_exit_2_naming_the_server(
    job: tuple[Path, Path], https_sim: SimulatorThread
) -> None:
    path, key = job
    result = bulkterm("apply", "-f", str(path), "--service-key", str(key))
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"TLS: the certificate of {https_sim.url} did not verify" in line
    assert "--ca-bundle" in line and line.endswith("nothing was sent")
    assert "Traceback" not in result.stderr
    assert sum(https_sim.counters.values()) == 0
    assert https_sim.state_of(Kind.DEPLOYMENT, "dep-tls-0001") is Status.RUNNING


def test_a_bundle_of_another_ca_is_no_help_and_is_named(job: tuple[Path, Path], pki: Pki) -> None:
    path, key = job
    args = ("apply", "-f", str(path), "--service-key", str(key), "--ca-bundle", str(pki.other_ca))
    result = bulkterm(*args)
    assert result.returncode == 2
    assert f"no CA certificate in the CA bundle {pki.other_ca} vouches for it" in result.stderr


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.pem", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "key.pem", "-----BEGIN PRIVATE KEY-----\n"), "no PEM certificate"),
    ],
    ids=["missing", "directory", "not-a-certificate"],
)
def test_an_unusable_bundle_exits_2_naming_the_file_before_anything_is_sent(
    job: tuple[Path, Path],
    tmp_path: Path,
    https_sim: SimulatorThread,
    make: Callable[[Path], Path],
    problem: str,
) -> None:
    path, key = job
    bundle = make(tmp_path)
    result = bulkterm(
        "apply", "-f", str(path), "--service-key", str(key), "--ca-bundle", str(bundle)
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --ca-bundle: CA bundle {bundle}: ")
    assert problem in result.stderr and "Traceback" not in result.stderr
    assert sum(https_sim.counters.values()) == 0


def test_the_embedded_simulator_ignores_a_bundle_from_the_environment() -> None:
    """It is plain HTTP on loopback; a site-wide BULKTERM_CA_BUNDLE must not break the demo."""
    result = bulkterm(
        "apply", "-f", "examples/small.yaml", "--simulator", env={"BULKTERM_CA_BUNDLE": "/nowhere"}
    )
    assert result.returncode == 0, result.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
