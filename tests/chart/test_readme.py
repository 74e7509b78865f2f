"""The chart's README.md: its values table is values.yaml's, and its install works as written."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tarfile
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import CHART, ROOT, Helm

README = CHART / "README.md"
VALUES = CHART / "values.yaml"


def values_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "values_table", CHART / "hack" / "values_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def value_paths(node: Any, prefix: str = "") -> list[str]:
    """Every key path of values.yaml (mappings and leaves; not inside lists)."""
    paths = []
    for key, sub in node.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(sub, dict):
            paths += value_paths(sub, f"{path}.")
    return paths


def table_rows() -> dict[str, str]:
    """README table: path -> description."""
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[3]
    return rows


def test_values_table_is_what_the_script_writes() -> None:
    readme = README.read_text()
    assert values_table().render(readme, VALUES.read_text()) == readme, (
        "README.md is stale: run python charts/bulk-termination-operator/hack/values_table.py"
    )


def test_values_table_lists_every_value_path() -> None:
    paths = value_paths(yaml.safe_load(VALUES.read_text()))
    assert sorted(set(paths) - set(table_rows())) == []


def test_every_top_level_value_is_described() -> None:
    rows = table_rows()
    top = yaml.safe_load(VALUES.read_text())
    assert [key for key in top if not rows[key].strip()] == []


def test_table_shows_defaults_as_json() -> None:
    rows = values_table().rows(VALUES.read_text())
    defaults = {path: default for path, default, _ in rows}
    assert defaults["replicaCount"] == "`1`"
    assert defaults["crds.keep"] == "`true`"
    assert defaults["securityContext.capabilities.drop"] == '`["ALL"]`'
    assert defaults["metrics"] == ""  # a section


def shell_blocks() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    return [block.replace("\\\n", " ") for block in blocks]


def command(prefix: str) -> list[str]:
    for block in shell_blocks():
        for line in block.splitlines():
            if line.strip().startswith(prefix):
                return shlex.split(line, comments=True)
    raise AssertionError(f"no `{prefix}` command in {README.name}")


def test_readme_builds_and_pushes_the_image_it_installs(helm: Helm) -> None:
    built = command("docker build")
    pushed = command("docker push")
    image = built[built.index("-t") + 1]
    assert pushed[-1] == image and built[-1] == "."
    install = command("helm upgrade --install")
    sets = dict(arg.split("=", 1) for arg in install[install.index("--set") :] if "=" in arg)
    assert f"{sets['image.repository']}:{sets['image.tag']}" == image


@pytest.mark.helm
def test_readme_install_command_renders(helm: Helm) -> None:
    """The `helm upgrade --install` of the README, as `helm template` with the same chart and
    flags (run from the repository root, as the README's paths assume)."""
    install = command("helm upgrade --install")
    assert install[:5] == [
        "helm", "upgrade", "--install", "bulkterm", "charts/bulk-termination-operator",
    ]  # fmt: skip
    flags = [a for a in install[5:] if a != "--create-namespace"]
    proc = helm.run("template", "bulkterm", str(ROOT / install[4]), *flags)
    assert proc.returncode == 0, proc.stderr
    (deployment,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    built = command("docker build")
    assert image == built[built.index("-t") + 1]
    assert deployment["metadata"]["namespace"] == "bulkterm-system"


def test_readme_creates_the_namespaces_it_uses() -> None:
    created = command("kubectl create namespace")
    used = {arg for block in shell_blocks() for arg in re.findall(r"-n (\S+)", block)}
    assert created[3] in used
    assert "--create-namespace" in command("helm upgrade --install")


def test_readme_says_the_namespaces_must_exist_before_the_install_command() -> None:
    """The chart refuses to install into watched namespaces that do not exist
    (templates/validate-namespaces.yaml): the README says so, and creates them, first."""
    text = README.read_text()
    install = text.index("helm upgrade --install bulkterm")
    assert text.index("must exist before you install") < install
    assert text.index("kubectl create namespace ml-team") < install
    assert "helm install bulkterm" not in text, "the README installs with `helm upgrade --install`"


def test_readme_grants_the_use_of_the_secret_with_the_shipped_example() -> None:
    """tests/e2e/test_secret_grant.py applies that example on a real API server."""
    assert command("kubectl apply -f examples/secret-use.yaml")
    assert (ROOT / "examples" / "secret-use.yaml").is_file()


def test_readme_upgrade_from_crds_folder_steps_match_the_tested_ones() -> None:
    """tests/chart/test_install.py performs these steps on a real API server."""
    text = README.read_text()
    assert (
        "kubectl label crd bulkterminations.aiapi.bulkops.dev app.kubernetes.io/managed-by=Helm"
        in text
    )
    assert (
        "meta.helm.sh/release-name=bulkterm meta.helm.sh/release-namespace=bulkterm-system" in text
    )


@pytest.mark.helm
def test_packaged_chart_has_readme_dashboard_and_crd_but_not_hack(helm: Helm) -> None:
    proc = helm.run("package", str(CHART), "--destination", str(helm.workdir / "pkg"))
    assert proc.returncode == 0, proc.stderr
    (archive,) = (helm.workdir / "pkg").glob("*.tgz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames()}
    assert {"README.md", "dashboards/bulk-termination-operator.json",
            "files/crds/bulktermination.yaml", "crds/kopf-peering.yaml"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith("hack/")]
