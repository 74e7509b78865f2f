"""docs/limits.md's table of how many targets each way of applying carries, measured: each of
its numbers is applied that way on the real API server, and each number it says is refused is
refused for the reason it gives; the README's summary and the CRD's limits agree with it.

The numbers are the limits of the ways of applying, not the CRD's (which are set from them), so
they are measured with a copy of the CRD that keeps its schema (the list types and keys decide
what server-side apply records in managedFields) but not its limits and rules, under a group
of the same length: only the way of applying decides. Client-side apply is refused by the API
server's validation of the annotation kubectl writes, so ``--dry-run=server`` shows it without
storing anything; server-side apply is refused by etcd, so only a real write shows it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.crd.samples import CRD_PATH, crd_document
from tests.kube import Kube
from tests.kube.crd import each_schema
from tests.plugins.kube import namespace_for

ROOT = CRD_PATH.parents[1]
LIMITS = ROOT / "docs" / "limits.md"
README = ROOT / "README.md"
GROUP = "limit.bulkops.dev"  # as long as aiapi.bulkops.dev: the objects are as large
COLUMNS = {
    "client-side `kubectl apply`": ("apply", "--dry-run=server"),
    "server-side apply": ("apply", "--server-side"),
}
REFUSALS = {
    "client-side `kubectl apply`": "metadata.annotations: Too long: may not be more than 262144 bytes",
    "server-side apply": "etcdserver: request is too large",
}


@dataclass(frozen=True)
class Cell:
    form: str  # "spec.targets" or "compact"
    id_length: int
    way: str
    carried: int
    refused: int | None
    megabytes: str | None

    def __str__(self) -> str:
        return f"{self.form}, {self.id_length}-character ids, {self.way}"


def number(text: str) -> int:
    return int(text.replace(",", ""))


def table(text: str, header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header row starts with ``header``."""
    lines = text[text.index(header) :].splitlines()
    names = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(names, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


def cells() -> list[Cell]:
    found = []
    for row in table(LIMITS.read_text(), "| form | ids |"):
        form = "compact" if row["form"] == "compact" else row["form"].strip("`")
        (length,) = re.findall(r"\((\d+)", row["ids"])
        for way in COLUMNS:
            text = row[way]
            carried = re.match(r"(?:\*\*)?([\d,]+)", text)
            refused = re.search(r"\(([\d,]+) refused", text)
            megabytes = re.search(r"([\d.]+) MB as read back", text)
            assert carried, f"{row['form']}, {row['ids']}, {way}: no number in {text!r}"
            found.append(Cell(form, int(length), way, number(carried[1]),
                              number(refused[1]) if refused else None,
                              megabytes[1] if megabytes else None))  # fmt: skip
    return found


def crd_limits() -> dict[str, int]:
    spec = crd_document()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return {
        "spec.targets": spec["properties"]["targets"]["maxItems"],
        "compact": spec["properties"]["deployments"]["properties"]["ids"]["maxItems"],
    }


def transport_crd() -> dict[str, Any]:
    """The CRD's schema under another group, without limits and rules."""
    crd = copy.deepcopy(crd_document())
    crd["metadata"] = {"name": f"bulkterminations.{GROUP}"}
    crd["spec"]["group"] = GROUP
    for key in ("shortNames", "categories"):
        crd["spec"]["names"].pop(key, None)

    def strip(schema: dict[str, Any]) -> None:
        schema.pop("maxItems", None)
        schema.pop("x-kubernetes-validations", None)

    each_schema(crd, strip)
    return crd


def manifest(cell: Cell, count: int) -> dict[str, Any]:
    ids = [f"{i:0{cell.id_length}x}" for i in range(count)]
    spec: dict[str, Any] = {"connection": {"secretRef": {"name": "aicore-service-key"}}}
    if cell.form == "compact":
        half = count // 2
        spec["deployments"] = {"targetStatus": "STOPPED", "ids": ids[:half]}
        spec["executions"] = {"targetStatus": "DELETED", "ids": ids[half:]}
    else:
        spec["targets"] = [{"kind": "Deployment", "id": i, "targetStatus": "DELETED"} for i in ids]
    name = f"{cell.form.replace('.', '-')}-{cell.id_length}-{count}".lower()
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BulkTermination",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


@pytest.fixture(scope="module")
def carrier(kube: Kube) -> Iterator[tuple[Kube, str]]:
    crd = kube.install_crd(transport_crd())
    namespace = namespace_for("limits-table")
    kube.create_namespace(namespace)
    try:
        yield kube, namespace
    finally:
        kube.delete("apiextensions.k8s.io/v1/customresourcedefinitions", crd["metadata"]["name"],
                    namespace="")  # fmt: skip
        kube.delete("namespaces", namespace, namespace="")


@pytest.mark.parametrize("cell", cells(), ids=str)
def test_each_way_of_applying_carries_what_the_limits_table_says(
    carrier: tuple[Kube, str], cell: Cell
) -> None:
    kube, namespace = carrier
    resource = f"{GROUP}/v1alpha1/BulkTermination"

    def apply(count: int) -> tuple[dict[str, Any], str]:
        body = manifest(cell, count)
        result = kube.kubectl(*COLUMNS[cell.way], "-n", namespace, "-f", "-",
                              input=json.dumps(body), timeout=120)  # fmt: skip
        return body, "" if result.returncode == 0 else result.stderr

    body, refusal = apply(cell.carried)
    assert refusal == "", f"{cell}: {cell.carried} refused: {refusal}"
    if "--dry-run=server" not in COLUMNS[cell.way]:
        stored = kube.get(resource, body["metadata"]["name"], namespace=namespace)
        kube.delete(resource, body["metadata"]["name"], namespace=namespace)
        if cell.megabytes is not None:
            assert f"{len(json.dumps(stored)) / 1e6:.2f}" == cell.megabytes, cell
    if cell.refused is not None:
        _, refusal = apply(cell.refused)
        assert REFUSALS[cell.way] in refusal, f"{cell}: {cell.refused} not refused so: {refusal}"


def test_the_crd_allows_what_server_side_apply_carries_with_any_ids() -> None:
    """The CRD's limits are the table's: the least server-side apply carries in each form,
    which `kubectl create` carries too (its column says so)."""
    limits = crd_limits()
    carried = {form: min(c.carried for c in cells() if c.form == form and "server" in c.way)
               for form in limits}  # fmt: skip
    assert carried == limits
    for row in table(LIMITS.read_text(), "| form | ids |"):
        form = "compact" if row["form"] == "compact" else row["form"].strip("`")
        assert row["`kubectl create`"] in ("the CRD's maximum", f"**{limits[form]:,}**"), row
    said = re.search(r"`spec.targets` at most \*\*([\d,]+)\*\*.*?at most \*\*([\d,]+)\*\* ids",
                     LIMITS.read_text(), flags=re.S)  # fmt: skip
    assert said and (number(said[1]), number(said[2])) == (
        limits["spec.targets"],
        limits["compact"],
    )


def test_the_readme_says_what_docs_limits_measures() -> None:
    readme = {row["form"]: row for row in table(README.read_text(), "| form | client-side")}
    ai_core = {(c.form, c.way): c.carried for c in cells() if c.id_length == 16}
    limits = crd_limits()
    for form, key in (("spec.targets", "`spec.targets`"),
                      ("compact", "`spec.deployments` / `spec.executions` (compact)")):  # fmt: skip
        row = readme[key]
        csa, ssa = (number(re.match(r"[\d,]+", row[col])[0])  # type: ignore[index]
                    for col in ("client-side `kubectl apply` (Argo CD default)",
                                "server-side apply (Flux, Argo CD `ServerSideApply=true`)"))  # fmt: skip
        assert csa == ai_core[(form, "client-side `kubectl apply`")], row
        assert ssa == limits[form], row
