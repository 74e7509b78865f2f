"""The README's commands, run as written on a real API server: the install, and the
walk-through with the real operator and the simulator, its output compared with what the
README shows.

The install runs once for the module; the walk-through goes on from it, as a reader would.
The chart's Deployment never runs here (no kubelet), so the operator runs as its pod would: a
process with a token of the chart's ServiceAccount, the admission policy the chart names, and
the README's simulator behind the Secret made from its ``key.json``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulkterm.k8s.secret_use import ACTIVATION_SECONDS
from tests.docs.conftest import RELEASE_NAMESPACE, Reader, new_users_cluster
from tests.e2e.conftest import OperatorProcess
from tests.kube import Kube
from tests.plugins.helm import ROOT
from tests.simulator.test_command import Output

pytestmark = pytest.mark.helm

README = ROOT / "README.md"
INSTALL, WALK_THROUGH = "Install with Helm", "Walk-through"
RESTORE = "Plan, approve, run, restore"
#: What this module runs (tests/docs/test_markers.py: every block marked to run is run).
SECTIONS = {README: (INSTALL, WALK_THROUGH, RESTORE)}
POLICIES = "admissionregistration.k8s.io/v1/validatingadmissionpolicies"
#: The README's simulator (section "The AI API simulator"), seeded with both examples the
#: walk-through applies, with lifecycles short enough for a test: the run's pace is then its
#: `pollIntervalSeconds` (5), as in the README's capture.
SIMULATOR = [
    "simulator", "--bulk-updates", "--seed-from", "examples/small.yaml",
    "--seed-from", "examples/bulktermination.yaml", "--seed-from", "examples/approval.yaml",
    "--write-service-key", "key.json",
    "--unknown-seconds", "0.2", "--pending-seconds", "0.3", "--stop-delay-seconds", "0.05",
    "--stopping-seconds", "0.3", "--deletion-seconds", "0.5",
]  # fmt: skip


@pytest.fixture(scope="module")
def installed(
    kube: Kube, helm_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reader]:
    """A new user's cluster after the README's "Install with Helm"."""
    with new_users_cluster(kube, helm_bin, tmp_path_factory.mktemp("readme")) as reader:
        reader.run(README, INSTALL)
        yield reader


def test_the_readme_install_commands_run_as_written(installed: Reader) -> None:
    release = installed.release()
    (deployment,) = release.manifest_of("Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=ml-team", "--namespace=data-team",
    ]  # fmt: skip
    roles = installed.kube.list("rbac.authorization.k8s.io/v1/roles", namespace="data-team")
    assert [r["metadata"]["name"] for r in roles] == [
        "bulkterm-bulk-termination-operator-controller"
    ]


@pytest.fixture
def operator(installed: Reader, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The README's simulator, and the operator as the chart's pod would run it."""
    (installed.workdir / "key.json").unlink()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "bulkterm.cli", *SIMULATOR],
        cwd=installed.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(simulator)
    try:
        while "service key written" not in output.line():
            pass
        release = installed.release()
        (deployment,) = release.manifest_of("Deployment")
        env = {
            e["name"]: e["value"]
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"].startswith("BULKTERM_ADMISSION_")
        }
        process = OperatorProcess(
            installed.kube, "ml-team", tmp_path, kubeconfig=release.kubeconfig(), env=env,
            lease_namespace=RELEASE_NAMESPACE,
        )  # fmt: skip
        yield process.start()
        process.stop()
    finally:
        simulator.send_signal(signal.SIGINT)
        simulator.wait(15)


def trusted(reader: Reader) -> None:
    """Wait until the operator trusts the chart's admission policy for what is created now:
    a reader who installs and creates a BulkTermination at once waits the same 10 s (the
    run stalls as SecretUseUnverified meanwhile); the walk-through is not about that."""
    name = f"{reader.release().name}-bulk-termination-operator-admission"
    created = reader.kube.get(POLICIES, name, namespace="")["metadata"]["creationTimestamp"]
    since = datetime.fromisoformat(created).timestamp() + ACTIVATION_SECONDS + 1
    time.sleep(max(0.0, since - datetime.now(UTC).timestamp()))


def test_the_readme_walk_through_prints_what_the_readme_shows(
    installed: Reader, operator: OperatorProcess
) -> None:
    trusted(installed)
    try:
        installed.run(README, WALK_THROUGH)
        installed.run(README, RESTORE)
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n\noperator log:\n{operator.log()[-4000:]}") from None
