"""The Deployment: operator flags from values, pod security, probes, peering and metrics."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import CHART, NAMESPACE, RELEASE, VARIANTS, Helm, Rendering

pytestmark = pytest.mark.helm

FULLNAME = f"{RELEASE}-bulk-termination-operator"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def args_of(rendering: Rendering) -> list[str]:
    return [str(a) for a in rendering.container["args"]]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]


# --- operator flags ---------------------------------------------------------------------


def test_default_flags(helm: Helm) -> None:
    args = args_of(helm.render("default"))
    assert args == [
        "--all-namespaces",
        "--standalone",
        "--liveness-endpoint=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
        "--log-level=INFO",
        "--log-format=plain",
        "--status-interval=2",
    ]


def test_every_flag_is_one_the_operator_cli_declares(rendered: Rendering, variant: str) -> None:
    known = {
        "--namespace",
        "--all-namespaces",
        "--standalone",
        "--peering",
        "--liveness-endpoint",
        "--metrics-port",
        "--log-level",
        "--log-format",
        "--status-interval",
        "--api-rate-limit",
        "--api-concurrency",
        "--default-ttl-seconds",
    }
    extra = VARIANTS[variant].get("extraArgs", [])
    chart_args = args_of(rendered)[: len(args_of(rendered)) - len(extra)]
    for arg in chart_args:
        assert arg.split("=", 1)[0] in known, arg


def test_extra_args_in_the_variants_are_flags_the_operator_cli_declares(variant: str) -> None:
    """extraArgs go to the operator unchecked by the chart; the ones the tests use must exist."""
    from bulkterm.k8s.command import operator_command

    declared = {opt for param in operator_command.params for opt in param.opts}
    for arg in VARIANTS[variant].get("extraArgs", []):
        assert arg.split("=", 1)[0] in declared, arg


def test_namespaced_flags(helm: Helm) -> None:
    args = args_of(helm.render("namespaced"))
    assert flag_values(args, "--namespace") == ["team-a", "team-b"]
    assert "--all-namespaces" not in args


def test_scope_flags_are_exclusive(rendered: Rendering) -> None:
    args = args_of(rendered)
    assert ("--all-namespaces" in args) != bool(flag_values(args, "--namespace"))
    assert ("--standalone" in args) != bool(flag_values(args, "--peering"))


def test_everything_flags(helm: Helm) -> None:
    args = args_of(helm.render("everything"))
    assert flag_values(args, "--namespace") == ["ml-team"]
    assert flag_values(args, "--log-level") == ["DEBUG"]
    assert flag_values(args, "--log-format") == ["json"]
    assert flag_values(args, "--status-interval") == ["5"]
    assert flag_values(args, "--api-rate-limit") == ["2.5"]
    assert flag_values(args, "--api-concurrency") == ["8"]
    assert flag_values(args, "--liveness-endpoint") == ["http://0.0.0.0:8081/healthz"]
    assert flag_values(args, "--metrics-port") == ["9191"]
    assert not flag_values(args, "--default-ttl-seconds")


def test_ttl_flag(helm: Helm) -> None:
    assert flag_values(args_of(helm.render("ttl")), "--default-ttl-seconds") == ["86400"]


def test_pod_id_env_for_kopf_identity(rendered: Rendering) -> None:
    env = {e["name"]: e for e in rendered.container["env"]}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_extra_env_is_appended(helm: Helm) -> None:
    names = [e["name"] for e in helm.render("everything").container["env"]]
    assert names[-2:] == ["HTTPS_PROXY", "NODE"]
    assert names[:3] == ["POD_ID", "POD_NAMESPACE", "BULKTERM_METRICS_ADDRESS"]


# --- replicas, strategy and peering -----------------------------------------------------


def test_single_replica_is_standalone_and_recreate(helm: Helm) -> None:
    r = helm.render("default")
    assert r.deployment["spec"]["replicas"] == 1
    assert r.deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--standalone" in args_of(r)
    assert not r.of_kind("ClusterKopfPeering") and not r.of_kind("KopfPeering")


def test_peering_cluster_wide(helm: Helm) -> None:
    r = helm.render("peering")
    assert r.deployment["spec"]["replicas"] == 2
    assert r.deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert flag_values(args_of(r), "--peering") == [FULLNAME]
    assert "--standalone" not in args_of(r)
    peering = r.one("ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == FULLNAME
    assert not r.of_kind("KopfPeering")


def test_peering_namespaced_has_one_peering_object_per_namespace(helm: Helm) -> None:
    r = helm.render("peering-namespaced")
    assert flag_values(args_of(r), "--peering") == [FULLNAME]
    objs = r.of_kind("KopfPeering")
    assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs) == [
        ("team-a", FULLNAME),
        ("team-b", FULLNAME),
    ]
    assert not r.of_kind("ClusterKopfPeering")


def test_peering_name_override(helm: Helm) -> None:
    proc = helm.template_with("peer-name", {"replicaCount": 2, "peering": {"name": "bulkterm"}})
    assert proc.returncode == 0, proc.stderr
    assert "--peering=bulkterm" in proc.stdout


@pytest.mark.parametrize("variant_name", ["peering", "peering-namespaced", "platform"])
def test_pdb_lets_drains_evict_pods_that_are_not_ready(helm: Helm, variant_name: str) -> None:
    """kube-linter's pdb-unhealthy-pod-eviction-policy: with the default (IfHealthyBudget) a
    crash-looping replica could not be evicted while the budget is spent, and would hold up
    a node drain. tests/chart/test_install.py checks the API server keeps the field."""
    pdb = helm.render(variant_name).one("PodDisruptionBudget")
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_peering_crds_ship_in_crds_dir(helm: Helm) -> None:
    crds = {
        d["metadata"]["name"]: d
        for d in helm.render("peering", include_crds=True).of_kind("CustomResourceDefinition")
    }
    assert crds["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"


# --- pod security (Pod Security Standards, "restricted", Kubernetes 1.32) ---------------

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Check a pod spec against the restricted profile (which includes baseline)."""
    bad: list[str] = []
    psc = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad.append(host)
    for vol in pod.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"volume {vol['name']}: {kinds}")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    for ctr in pod.get("initContainers", []) + pod["containers"]:
        sc = ctr.get("securityContext", {})
        name = ctr["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            bad.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            bad.append(f"{name}: seccompProfile {seccomp}")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities add {caps['add']}")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{name}: procMount")
        for port in ctr.get("ports", []):
            if port.get("hostPort"):
                bad.append(f"{name}: hostPort")
    return bad


def test_pod_security_restricted(rendered: Rendering) -> None:
    assert restricted_violations(rendered.deployment["spec"]["template"]["spec"]) == []


def test_security_context_defaults(helm: Helm) -> None:
    r = helm.render("default")
    pod = r.deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = r.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_tmp_is_a_writable_empty_dir(rendered: Rendering) -> None:
    pod = rendered.deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_checker_catches_violations() -> None:
    pod = {
        "hostNetwork": True,
        "containers": [
            {
                "name": "c",
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
            }
        ],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    assert len(restricted_violations(pod)) >= 6


# --- probes, ports, metrics -------------------------------------------------------------


def test_probes_hit_the_kopf_liveness_endpoint(rendered: Rendering) -> None:
    ctr = rendered.container
    endpoint = flag_values(args_of(rendered), "--liveness-endpoint")[0]
    port = int(endpoint.rsplit(":", 1)[1].split("/")[0])
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports["health"] == port
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in ctr:
            continue
        assert ctr[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "livenessProbe" in ctr


def test_readiness_probe_can_be_disabled(helm: Helm) -> None:
    ctr = helm.render("everything").container
    assert "readinessProbe" not in ctr
    assert ctr["livenessProbe"]["periodSeconds"] == 30


def test_metrics_service(helm: Helm) -> None:
    r = helm.render("default")
    svc = r.one("Service")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = r.deployment["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in r.container["ports"]
    assert not r.of_kind("ServiceMonitor")


def test_metrics_off(helm: Helm) -> None:
    r = helm.render("no-metrics")
    assert not r.of_kind("Service") and not r.of_kind("ServiceMonitor")
    assert "--metrics-port=0" in args_of(r)
    assert [p["name"] for p in r.container["ports"]] == ["health"]


def test_service_monitor(helm: Helm) -> None:
    r = helm.render("metrics")
    sm = r.one("ServiceMonitor")
    svc = r.one("Service")
    assert sm["metadata"]["namespace"] == NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "path": "/metrics",
            "interval": "15s",
            "scrapeTimeout": "10s",
            "scheme": "https",
            "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "tlsConfig": {"insecureSkipVerify": True},
        }
    ]


def test_metrics_service_port_override(helm: Helm) -> None:
    svc = helm.render("everything").one("Service")
    assert svc["spec"]["ports"][0]["port"] == 80
    assert svc["metadata"]["labels"]["scrape"] == "yes"


# --- image, service account, scheduling -------------------------------------------------


def test_image_defaults_to_app_version(helm: Helm) -> None:
    ctr = helm.render("default").container
    assert ctr["image"] == f"bulk-termination-operator:{APP_VERSION}"
    assert ctr["imagePullPolicy"] == "IfNotPresent"


def test_image_digest_wins(helm: Helm) -> None:
    ctr = helm.render("everything").container
    digest = VARIANTS["everything"]["image"]["digest"]
    assert ctr["image"] == f"registry.example.com/ops/bulk-termination-operator@{digest}"


def test_service_account(helm: Helm) -> None:
    r = helm.render("everything")
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["name"] == "bulkterm-sa"
    assert sa["metadata"]["annotations"] == {"example.com/owner": "ops"}
    assert r.deployment["spec"]["template"]["spec"]["serviceAccountName"] == "bulkterm-sa"


def test_scheduling_and_pod_metadata_pass_through(helm: Helm) -> None:
    r = helm.render("everything")
    pod = r.deployment["spec"]["template"]
    values = VARIANTS["everything"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert pod["spec"][key] == values[key], key
    assert pod["metadata"]["annotations"] == values["podAnnotations"]
    assert pod["metadata"]["labels"]["team"] == "ops"
    assert r.container["resources"] == values["resources"]


@pytest.mark.parametrize(
    "key", ["nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"]
)
def test_empty_scheduling_values_are_omitted(helm: Helm, key: str) -> None:
    assert key not in helm.render("default").deployment["spec"]["template"]["spec"]


def test_large_and_fractional_numbers_render_as_plain_numbers(helm: Helm) -> None:
    """Helm holds numbers as float64; 2592000 must not become "2.592e+06"."""
    proc = helm.template_with(
        "numbers",
        {
            "ttl": {"enabled": True, "defaultSecondsAfterFinished": 2592000},
            "aiApi": {"rateLimitPerSecond": 1000000, "concurrency": 16},
            "statusWriteIntervalSeconds": 0.5,
        },
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--default-ttl-seconds=2592000",
        "--api-rate-limit=1000000",
        "--api-concurrency=16",
        "--status-interval=0.5",
    ):
        assert f"- {flag}\n" in proc.stdout, flag


def test_every_variant_passes_flags_the_operator_command_accepts(rendered: Rendering) -> None:
    """The chart and ``bulkterm operator`` must not drift: click parses the rendered args and
    they make a valid configuration, without starting anything."""
    import click

    from bulkterm.k8s.command import build_config, operator_command

    args = args_of(rendered)
    try:
        ctx = operator_command.make_context("operator", list(args))
        config = build_config(**ctx.params)
    except click.UsageError as exc:
        raise AssertionError(f"bulkterm operator rejects the chart's args {args}: {exc}") from None
    assert config.namespaces == flag_values(args, "--namespace")
    assert (config.peering is not None) == any(a.startswith("--peering") for a in args)
    assert config.status_interval == float(flag_values(args, "--status-interval")[0])
