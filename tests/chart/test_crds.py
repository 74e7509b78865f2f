"""The BulkTermination CRD as a chart template (crds.enabled, crds.keep), cert-manager style.

The rendered CRD must say exactly what the repository's crds/bulktermination.yaml says (the
single source of truth), so that `helm upgrade` applies the CRD the operator was built for.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import ROOT, Helm

pytestmark = pytest.mark.helm

SOURCE = ROOT / "crds" / "bulktermination.yaml"
CRD_NAME = "bulkterminations.aiapi.bulkops.dev"
KEEP = "helm.sh/resource-policy"


def source_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(SOURCE.read_text()))


def rendered_crd(helm: Helm, name: str, values: dict[str, Any]) -> dict[str, Any] | None:
    proc = helm.template_with(name, values)
    assert proc.returncode == 0, proc.stderr
    crds = [
        d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "CustomResourceDefinition"
    ]
    assert len(crds) <= 1
    return crds[0] if crds else None


def test_default_renders_the_crd_with_the_source_spec(helm: Helm) -> None:
    crd = helm.render("default").one("CustomResourceDefinition", CRD_NAME)
    source = source_crd()
    assert crd["spec"] == source["spec"]
    assert crd["apiVersion"] == source["apiVersion"]


def test_rendered_crd_spec_is_the_source_text_verbatim(helm: Helm) -> None:
    """Emitted as text, not re-serialised: large integers stay integers, comments and key
    order survive, so a diff of the release shows the change made in crds/."""
    source_spec = SOURCE.read_text().split("\nspec:\n", 1)[1]
    assert "\nspec:\n" + source_spec.rstrip("\n") + "\n" in helm.render("default").text


def test_rendered_crd_keeps_source_labels_and_adds_the_release_labels(helm: Helm) -> None:
    crd = helm.render("default").one("CustomResourceDefinition", CRD_NAME)
    labels = crd["metadata"]["labels"]
    assert source_crd()["metadata"]["labels"].items() <= labels.items()
    assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_crd_is_kept_on_uninstall_by_default(helm: Helm) -> None:
    crd = helm.render("default").one("CustomResourceDefinition", CRD_NAME)
    assert crd["metadata"]["annotations"] == {KEEP: "keep"}


def test_crds_keep_false_drops_the_keep_policy(helm: Helm) -> None:
    crd = rendered_crd(helm, "crds-no-keep", {"crds": {"keep": False}})
    assert crd is not None
    assert KEEP not in (crd["metadata"].get("annotations") or {})


def test_crds_enabled_false_renders_no_crd(helm: Helm) -> None:
    assert rendered_crd(helm, "crds-off", {"crds": {"enabled": False}}) is None


def test_crd_gets_common_labels(helm: Helm) -> None:
    crd = helm.render("platform").one("CustomResourceDefinition", CRD_NAME)
    assert crd["metadata"]["labels"]["team"] == "ml-platform"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param({"crds": {"enabled": "yes"}}, "enabled", id="enabled-not-bool"),
        pytest.param({"crds": {"keeep": True}}, "keeep", id="typo"),
    ],
)
def test_bad_crds_values_are_refused(helm: Helm, values: dict[str, Any], named: str) -> None:
    proc = helm.template_with("bad-crds", values)
    assert proc.returncode != 0
    assert named in proc.stderr
