"""Kubernetes API outages are weather: the run waits for the API server and finishes when it
is back, with nothing re-sent to the AI API and no traceback.

The whole control plane (kube-apiserver and etcd) is stopped mid-run and started again on the
same ports and data (``ControlPlane.pause()``/``resume()``): the operator sees connection
refused for every call in between, as in a control-plane upgrade or an etcd failover.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import (
    OperatorProcess,
    bulk_termination,
    has_condition,
    start_deployment_run,
)
from tests.kube import Kube, free_port
from tests.kube.client import KubeApiError

pytestmark = pytest.mark.e2e
#: How each line of ``--log-format plain`` starts: ``2026-11-28T20:47:00.123Z``.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
BT = "bulkterminations"
D = Kind.DEPLOYMENT
#: From the issue: a run is Complete, and kopf sees a new BulkTermination again, within this
#: many seconds of the API server being ready after an outage.
RECOVERY_LIMIT = 10.0


def poll(
    kube: Kube, name: str, namespace: str, check: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """``kube.wait_for`` that also rides over the API server's own return (a refused or reset
    connection counts as "not yet")."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            last = kube.get_or_none(BT, name, namespace=namespace)
        except (httpx.HTTPError, KubeApiError):
            last = None
        if last is not None and check(last):
            return last
        time.sleep(0.1)
    raise TimeoutError(f"{name}: condition not met in {timeout}s; last seen {last}")


def outage_lines(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "Kubernetes API" in line or "Request attempt" in line or "status write" in line
    ]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "outage_seconds",
    [
        pytest.param(20.0, id="20s"),
        # Longer than kopf's default retries (~50 s), after which its watch gave up before.
        pytest.param(65.0, id="65s"),
    ],
)
def test_control_plane_outage_mid_run_is_waited_out(
    outage_seconds: float,
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    sim = sim
    port = free_port()
    operator = make_operator("--metrics-port", str(port), "--metrics-secure=false").start()
    start_deployment_run(kube, namespace, sim, "weather", 20, stopping=3.0)
    poll(kube, "weather", namespace, lambda o: o.get("status", {}).get("active", 0) > 0, 10)

    kube.plane.pause()
    try:
        time.sleep(outage_seconds)
        assert operator.proc is not None and operator.proc.poll() is None, operator.log()
    finally:
        resumed = time.monotonic()
        kube.plane.resume()
    back = time.monotonic()
    # A BulkTermination created now is seen only once kopf's watch is back (its reconnect
    # backoff), unlike the running one, whose writes wait in ApiWeather.
    sim.add_item(D, "late-000", Status.RUNNING)
    kube.create(bulk_termination(namespace, "late", ("Deployment", "late-000", "STOPPED")))
    obj = poll(kube, "weather", namespace, has_condition("Complete"), 30)
    after = time.monotonic() - back
    poll(kube, "late", namespace, lambda o: bool(o.get("status", {}).get("conditions")), 30)
    seen = time.monotonic() - back
    print(
        f"API server restarted in {back - resumed:.1f} s; Complete {after:.1f} s after it was "
        f"ready, {time.monotonic() - resumed:.1f} s after its start; a new BulkTermination "
        f"had its first status {seen:.1f} s after it was ready"
    )
    print("\n".join(outage_lines(operator.log())))

    assert obj["status"]["succeeded"] == 20
    assert after < RECOVERY_LIMIT, (after, operator.log()[-3000:])
    assert seen < RECOVERY_LIMIT, (seen, operator.log()[-3000:])
    poll(kube, "late", namespace, has_condition("Complete"), 30)
    # One bulk STOP for each BulkTermination: nothing re-sent.
    assert sim.counters["PATCH /lm/deployments"] == 2
    assert sim.violations == []
    log = operator.log()
    assert "Traceback" not in log, log[-5000:]
    assert "final status not written" not in log
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "bulkterm_kube_outages_total 1.0" in text, text
    assert 'bulkterm_kube_stalled_calls_total{call="write status"}' in text
    assert "bulkterm_kube_reachable 1.0" in text
    assert len(outage_lines(log)) <= 5, outage_lines(log)  # ours, and kopf's first attempts
    ours = [line for line in log.splitlines() if "Kubernetes API" in line]
    assert len(ours) <= 2, ours  # one line when the outage starts, one when it ends
    # No urllib3 "Retrying (Retry(total=2, ...)) after connection broken" lines: the kubernetes
    # client leaves retrying to ApiWeather (there were about 490 in one outage).
    assert [line for line in log.splitlines() if "Retrying" in line] == []
    # Every line says when (the chart's default format, plain, had no timestamp).
    unstamped = [line for line in log.splitlines() if line and not STAMP.match(line)]
    assert unstamped == [], unstamped[:20]
