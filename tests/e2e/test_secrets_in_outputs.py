"""No secret in anything the operator produces: the service key's ``clientsecret`` and every
access token the AI API issued never appear in the operator's log (DEBUG, stdout and stderr),
the BulkTerminations (status, annotations, everything), the namespace's Events or the metrics
page.

One operator goes through the scenarios that handle secrets: a run to Complete whose token is
revoked half-way (the AI API refuses it with 401; the operator fetches a new one), a key the
token endpoint refuses (Unauthorized), a malformed key that still holds a secret
(InvalidServiceKey) and an ungranted Secret (SecretNotGranted). The simulator runs in this
process, so every token it issues is recorded at the source (its token issuer), including the
revoked ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.secret_bounds import TARGET_STATUSES
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import (
    OperatorProcess,
    bulk_termination,
    has_condition,
    secret,
    timings,
    wait_for_first_bulk_patch,
)
from tests.kube import Kube, condition, free_port

pytestmark = pytest.mark.e2e
BT = "bulkterminations"


@pytest.fixture
def issued_tokens(sim: SimulatorThread) -> Iterator[list[str]]:
    """Every access token the simulator issues from now on (revocation does not forget them)."""
    tokens: list[str] = []
    issuer = sim.backend.tokens
    original = issuer.issue

    def issue(issuer_url: str = "simulator") -> str:
        token = original(issuer_url)
        tokens.append(token)
        return token

    issuer.issue = issue  # type: ignore[method-assign]
    yield tokens
    issuer.issue = original  # type: ignore[method-assign]


def ref(body: dict[str, Any], name: str) -> dict[str, Any]:
    """``body`` referencing Secret ``name``."""
    body["spec"]["connection"]["secretRef"] = {"name": name}
    return body


def test_no_secret_or_token_reaches_logs_status_events_or_metrics(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    issued_tokens: list[str],
    make_operator: Callable[..., OperatorProcess],
) -> None:
    metrics_port = free_port()
    operator = make_operator(
        "--metrics-port",
        str(metrics_port),
        "--metrics-secure=false",
        "--log-level",
        "DEBUG",
        env={"BULKTERM_STALLED_RETRY_SECONDS": "0.5", "BULKTERM_METRICS_ADDRESS": "127.0.0.1"},
    ).start()
    good = sim.service_key()
    refused = {**good, "clientsecret": "refused-secret-7f3a9c1e"}
    malformed = {**good, "clientsecret": "malformed-secret-52be07d4"}
    del malformed["url"]
    ungranted = {**good, "clientsecret": "ungranted-secret-c81d44a0"}
    secrets = [good["clientsecret"], refused["clientsecret"], malformed["clientsecret"]]
    secrets.append(ungranted["clientsecret"])

    # A complete run whose token the AI API revokes half-way.
    sim.set_timings(timings(stopping=2.0))
    targets = [("Deployment", f"dep-{i:03d}", "DELETED") for i in range(6)]
    for _, item_id, _ in targets:
        sim.add_item(Kind.DEPLOYMENT, item_id, Status.RUNNING)
    kube.create(secret(namespace, good, "good"))
    kube.create(ref(bulk_termination(namespace, "complete", *targets), "good"))
    wait_for_first_bulk_patch(sim)
    sim.revoke_tokens()
    # Stalls: refused by the token endpoint, malformed, and asked outside the Secret's bounds.
    kube.create(secret(namespace, refused, "refused"))
    kube.create(secret(namespace, malformed, "malformed"))
    outside = secret(namespace, ungranted, "ungranted")
    outside["metadata"]["annotations"] = {TARGET_STATUSES: "STOPPED"}  # the run asks DELETED
    kube.create(outside)
    for name in ("refused", "malformed", "ungranted"):
        kube.create(
            ref(bulk_termination(namespace, name, ("Deployment", "dep-000", "DELETED")), name)
        )
    stalls = {
        name: kube.wait_for(BT, name, has_condition("Stalled"), namespace=namespace, timeout=60)
        for name in ("refused", "malformed", "ungranted")
    }
    assert {n: condition(o, "Stalled")["reason"] for n, o in stalls.items()} == {  # type: ignore[index]
        "refused": "Unauthorized",
        "malformed": "InvalidServiceKey",
        "ungranted": "OutsideSecretBounds",
    }
    kube.wait_for(BT, "complete", has_condition("Complete"), namespace=namespace, timeout=90)
    # The revoked token was refused (401) and replaced: at least two tokens for the good key.
    assert any(k.endswith(" 401") for k in sim.responses), dict(sim.responses)
    assert len(issued_tokens) >= 2

    outputs = {
        "operator log": operator.log(),
        "BulkTerminations": json.dumps(kube.list(BT, namespace=namespace)),
        "Events": json.dumps(kube.events(namespace=namespace)),
        "metrics": httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
    }
    assert "bulkterm_" in outputs["metrics"]
    encoded = [
        base64.b64encode(json.dumps(key).encode()).decode()
        for key in (good, refused, malformed, ungranted)
    ]
    # The needles are in the form the Secrets hold (so a dump of one would be caught).
    assert encoded[0] in json.dumps(kube.list("secrets", namespace=namespace))
    needles = {
        **{f"secret {s}": s for s in secrets},
        **{f"token #{i}": t for i, t in enumerate(issued_tokens)},
    }
    needles.update({f"encoded key #{i}": e for i, e in enumerate(encoded)})
    # A token's random signature alone would identify it too.
    needles.update(
        {f"token #{i} signature": t.rsplit(".", 1)[1] for i, t in enumerate(issued_tokens)}
    )
    leaks = [
        f"{what} in the {where}"
        for what, needle in needles.items()
        for where, text in outputs.items()
        if needle in text
    ]
    assert leaks == []
