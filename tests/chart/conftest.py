"""Fixtures for the Helm chart tests: a real ``helm`` binary and cached renderings.

``make install`` puts helm into the venv (tools/fetch_helm.py), so a missing helm is a
broken set-up and fails the tests instead of skipping them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bulk-termination-operator"
RELEASE = "bt"
NAMESPACE = "bulkterm-system"
KUBE_VERSION = "1.32.0"

# Value sets every rendering test runs against. Each is a values file, as a user would write.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "peering": {"replicaCount": 2},
    "peering-namespaced": {"replicaCount": 3, "watchNamespaces": ["team-a", "team-b"]},
    "metrics": {
        "metrics": {
            "enabled": True,
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
        },
    },
    "no-metrics": {"metrics": {"enabled": False}},
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    # The least a cluster can give the operator (docs/security.md, "running with the least").
    "hardened": {
        "watchNamespaces": ["ml-team"],
        "rbac": {"secretResourceNames": ["aicore-service-key", "aicore-team-b"]},
        "metrics": {"bindAddress": "127.0.0.1"},
        "aiApi": {"caBundle": {"configMap": "corp-ca", "key": "bundle.pem"}},
        "networkPolicy": {
            "metricsFrom": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "observability"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
            "healthFrom": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]},
            ],
        },
    },
    "secret-names-cluster-wide": {"rbac": {"secretResourceNames": ["aicore-service-key"]}},
    "monitoring": {
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
        "grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "Ops"}}},
    },
    "platform": {
        "replicaCount": 2,
        "commonLabels": {"team": "ml-platform", "cost-center": "4711"},
        "podLabels": {"sidecar.istio.io/inject": "false"},
        "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": None},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "extraArgs": ["--peering-priority=200"],
        "prometheusRule": {"enabled": True},
        "grafana": {"dashboard": {"enabled": True}},
        "metrics": {"serviceMonitor": {"enabled": True}},
    },
    "no-crds": {"crds": {"enabled": False}, "rbac": {"aggregateClusterRoles": False}},
    "ttl": {"ttl": {"enabled": True, "defaultSecondsAfterFinished": 86400}},
    "everything": {
        "fullnameOverride": "bulkterm",
        "image": {
            "repository": "registry.example.com/ops/bulk-termination-operator",
            "digest": "sha256:" + "ab" * 32,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "watchNamespaces": ["ml-team"],
        "logLevel": "DEBUG",
        "logFormat": "json",
        "statusWriteIntervalSeconds": 5,
        "aiApi": {"rateLimitPerSecond": 2.5, "concurrency": 8},
        "rbac": {"secretResourceNames": ["aicore-service-key"]},
        "serviceAccount": {"name": "bulkterm-sa", "annotations": {"example.com/owner": "ops"}},
        "health": {"port": 8081},
        "livenessProbe": {"periodSeconds": 30},
        "readinessProbe": {"enabled": False},
        "metrics": {"port": 9191, "service": {"port": 80, "labels": {"scrape": "yes"}}},
        "podAnnotations": {"example.com/note": "x"},
        "podLabels": {"team": "ops"},
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    },
}


@dataclass
class Rendering:
    """One `helm template` output: the raw text, its file, and the parsed documents."""

    text: str
    path: Path
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]


@dataclass
class Helm:
    binary: Path
    workdir: Path
    _cache: dict[tuple[str, bool], Rendering] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False
        )

    def values_file(self, name: str, values: dict[str, Any]) -> Path:
        path = self.workdir / f"values-{name}.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        return path

    def template_args(self, values_file: Path, *extra: str) -> list[str]:
        return [
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            str(values_file),
            *extra,
        ]

    def render(self, variant: str, *, include_crds: bool = False) -> Rendering:
        key = (variant, include_crds)
        if key not in self._cache:
            values = self.values_file(variant, VARIANTS[variant])
            extra = ["--include-crds"] if include_crds else []
            proc = self.run(*self.template_args(values, *extra))
            assert proc.returncode == 0, f"helm template ({variant}) failed:\n{proc.stderr}"
            path = self.workdir / f"rendered-{variant}{'-crds' if include_crds else ''}.yaml"
            path.write_text(proc.stdout)
            docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
            self._cache[key] = Rendering(proc.stdout, path, docs)
        return self._cache[key]

    def template_with(self, name: str, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Render ad-hoc values without caching (for values meant to be rejected)."""
        return self.run(*self.template_args(self.values_file(name, values)))


@pytest.fixture(scope="session")
def helm(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    yield Helm(helm_bin, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def rendered(helm: Helm, variant: str) -> Rendering:
    return helm.render(variant)


def rbac_rules(
    docs: Sequence[dict[str, Any]], *kinds: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(role, rule) pairs of every Role/ClusterRole of the given kinds."""
    return [(d, rule) for d in docs if d.get("kind") in kinds for rule in d.get("rules", [])]
