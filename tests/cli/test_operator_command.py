"""``bulkterm operator`` without anywhere to connect: one clear line and exit 2, at once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli.test_apply import BULKTERM, ROOT

FLAGS = ["--metrics-port", "0", "--liveness-endpoint", ""]


def operator(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_", "KUBECONFIG", "BULKTERM_"))
    }
    full_env.update(HOME=str(home), **env)
    return subprocess.run(
        [*BULKTERM, "operator", *FLAGS],
        capture_output=True,
        text=True,
        timeout=30,  # the old behaviour: a traceback, then a retry every 60 s
        env=full_env,
        cwd=ROOT,
    )


def test_no_cluster_and_no_kubeconfig_exits_2_naming_what_was_tried(tmp_path: Path) -> None:
    result = operator(tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("error: no Kubernetes API to connect to: ")
    assert "KUBERNETES_SERVICE_HOST" in line  # in-cluster was tried
    assert f"{tmp_path}/.kube/config" in line and "KUBECONFIG is not set" in line


def test_a_kubeconfig_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "config"
    result = operator(tmp_path, KUBECONFIG=str(missing))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"KUBECONFIG={missing}" in line and "does not exist" in line


def test_an_unusable_kubeconfig_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    result = operator(tmp_path, KUBECONFIG=str(broken))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"KUBECONFIG={broken}" in line and "Traceback" not in result.stderr


def test_in_cluster_without_a_service_account_token_is_named(tmp_path: Path) -> None:
    result = operator(tmp_path, KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "/var/run/secrets/kubernetes.io/serviceaccount/token" in line
