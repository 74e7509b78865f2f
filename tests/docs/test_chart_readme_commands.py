"""The chart README's install, upgrade, monitoring and uninstall commands, run as written on a
real API server, one section after the other as a reader goes through them.

No operator runs (the chart's Deployment never starts here), which the uninstall does not
need: a BulkTermination the operator finished carries no finalizer, and neither does one it
never saw. The commands for BulkTerminations an operator left behind are
tests/chart/test_uninstall.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.test_install import previous_layout
from tests.docs.conftest import CRD_NAME, CRDS, RELEASE, RELEASE_NAMESPACE, Reader
from tests.plugins.helm import CHART, ROOT

pytestmark = pytest.mark.helm

CHART_README = CHART / "README.md"
INSTALL, UPGRADE, MONITORING, UNINSTALL = (
    "2. Install",
    "3. Upgrade",
    "5. Monitoring",
    "4. Uninstall",
)
ADOPT = "From chart versions that shipped the CRD in `crds/`"
#: What this module runs (tests/docs/test_markers.py: every block marked to run is run).
SECTIONS = {CHART_README: (INSTALL, UPGRADE, MONITORING, UNINSTALL, ADOPT)}
CLUSTER_ROLES = "rbac.authorization.k8s.io/v1/clusterroles"
BINDINGS = "rbac.authorization.k8s.io/v1/clusterrolebindings"


def deployed(reader: Reader) -> list[str]:
    listed = reader.helm("list", "-n", RELEASE_NAMESPACE, "-q", check=True)
    return listed.stdout.split()


def test_the_chart_readme_install_upgrade_and_uninstall_run_as_written(reader: Reader) -> None:
    reader.run(CHART_README, INSTALL)
    assert deployed(reader) == [RELEASE]
    assert reader.kube.get("secrets", "aicore-service-key", namespace="ml-team")
    assert reader.kube.get("rbac.authorization.k8s.io/v1/roles", "use-aicore-service-key",
                           namespace="ml-team")  # fmt: skip

    reader.run(CHART_README, UPGRADE)
    history = reader.helm("history", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json", check=True)
    assert history.stdout.count('"revision"') == 2

    reader.run(CHART_README, MONITORING)
    binding = reader.kube.get(BINDINGS, "prometheus-reads-bulkterm", namespace="")
    role = binding["roleRef"]["name"]  # kubectl binds a ClusterRole that does not exist, too
    assert reader.kube.get_or_none(CLUSTER_ROLES, role, namespace="") is not None, role

    # What a reader has when uninstalling: a BulkTermination the operator finished.
    reader.kube.kubectl("apply", "-f", str(ROOT / "examples" / "small.yaml"), check=True)
    reader.run(CHART_README, UNINSTALL)
    assert deployed(reader) == []
    assert reader.kube.get_or_none(CRDS, CRD_NAME, namespace="") is None


def test_the_chart_readme_adopts_the_crd_of_an_earlier_chart_as_written(
    reader: Reader, tmp_path: Path
) -> None:
    """The release as the chart before the CRD became a template installed it: Helm made
    the CRD from crds/, outside the release, and refuses to upgrade until it is adopted."""
    earlier = previous_layout(tmp_path)
    reader.helm("install", RELEASE, str(earlier), "-n", RELEASE_NAMESPACE, "--create-namespace",
                check=True)  # fmt: skip
    crd = reader.kube.get(CRDS, CRD_NAME, namespace="")
    refused = reader.helm("upgrade", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--reuse-values")
    assert "invalid ownership metadata" in refused.stderr

    reader.run(CHART_README, ADOPT)
    adopted = reader.kube.get(CRDS, CRD_NAME, namespace="")
    assert adopted["metadata"]["uid"] == crd["metadata"]["uid"]
    assert adopted["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
