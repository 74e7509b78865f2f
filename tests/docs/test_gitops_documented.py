"""docs/gitops.md's table of what each reader makes of each captured BulkTermination is what
the GitOps tests expect of them (tests/gitops: kstatus and Flux from ``STATUS_OF_CAPTURE``,
Argo CD from its own ``health_test.yaml``), and it lists every capture."""

from __future__ import annotations

import yaml

from tests.docs.test_limits_table import table
from tests.gitops.readers import STATUS_OF_CAPTURE
from tests.plugins.helm import ROOT

CHECK = ROOT / "deploy" / "argocd" / "aiapi.bulkops.dev" / "BulkTermination"


def test_the_gitops_doc_gives_each_capture_the_verdicts_the_tests_expect() -> None:
    rows = table(ROOT.joinpath("docs", "gitops.md").read_text(), "| captured | kstatus |")
    argocd = {
        case["inputPath"].removeprefix("testdata/"): case["healthStatus"]["status"]
        for case in yaml.safe_load(CHECK.joinpath("health_test.yaml").read_text())["tests"]
    }
    documented = {
        row["captured"].strip("`"): (row["kstatus"], row["Flux `healthCheckExprs`"], row["Argo CD"])
        for row in rows
    }
    expected = {
        path.name: (STATUS_OF_CAPTURE[path.stem], STATUS_OF_CAPTURE[path.stem], argocd[path.name])
        for path in sorted(CHECK.joinpath("testdata").glob("*.yaml"))
    }
    assert documented == expected
