"""The dry run's plan: what a real run would do with each target, judged from one look.

Pure: the same decision table as a real run, applied to one round of observations, counted
by action and reason, with the first entries spelled out (bounded, for the status). A kind
none of whose targets was found fails every one of its targets ``NotFound`` in a real run (the
DELETED ones too: see ``NoTargetsFound``), so the plan counts them as failures as well.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from bulkterm.aiapi.models import Kind
from bulkterm.engine import indexes
from bulkterm.engine.decisions import Action, Decision, Limits, Observation, Verdict, decide
from bulkterm.engine.ledger import Ledger
from bulkterm.engine.progress import Plan, PlanAction, PlanEntry
from bulkterm.spec import Target


def plan_of(
    ledger: Ledger,
    observations: dict[int, Observation],
    *,
    now: datetime,
    limits: Limits,
    max_entries: int,
    nothing_found: Mapping[Kind, str] | None = None,
) -> Plan:
    """``nothing_found``: the kinds none of whose targets was found, with the message their
    targets would fail with (their observations are not in ``observations``)."""
    buckets: dict[PlanAction, list[int]] = {a: [] for a in PlanAction}
    reasons: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    entries: list[PlanEntry] = []
    absent = nothing_found or {}
    for i in ledger.open_indexes():
        target = ledger.targets[i]
        obs = observations.get(i)
        if target.kind in absent:
            obs = Observation.not_found()
            d = Decision(Verdict.FAIL, "NotFound", absent[target.kind])
        else:
            d = decide(target, obs, ledger.memory[i], now=now, limits=limits)
        action = _PLAN_ACTION[d.verdict]
        if d.verdict is Verdict.SEND:
            action = PlanAction.STOP if d.action is Action.STOP else PlanAction.DELETE
        buckets[action].append(i)
        reasons[d.reason] += 1
        if action is PlanAction.FAIL:
            failures[d.reason] += 1
        if len(entries) < max_entries:
            entries.append(
                PlanEntry(
                    index=i,
                    kind=target.kind,
                    id=target.id,
                    observed=obs.describe() if obs is not None else "not observed",
                    action=action,
                    reason=d.reason,
                    message=d.message,
                )
            )
    open_count = sum(len(v) for v in buckets.values())
    plan = Plan(
        stop=len(buckets[PlanAction.STOP]),
        delete=len(buckets[PlanAction.DELETE]),
        wait=len(buckets[PlanAction.WAIT]),
        skip=len(buckets[PlanAction.SKIP]),
        fail=len(buckets[PlanAction.FAIL]),
        stop_indexes=indexes.compress(buckets[PlanAction.STOP]),
        delete_indexes=indexes.compress(buckets[PlanAction.DELETE]),
        wait_indexes=indexes.compress(buckets[PlanAction.WAIT]),
        skip_indexes=indexes.compress(buckets[PlanAction.SKIP]),
        fail_indexes=indexes.compress(buckets[PlanAction.FAIL]),
        reasons=dict(sorted(reasons.items())),
        failures=dict(sorted(failures.items())),
        entries=entries,
        entries_omitted=open_count - len(entries),
    )
    return plan.model_copy(update={"digest": plan_digest(ledger.targets, plan)})


def plan_digest(targets: Sequence[Target], plan: Plan) -> str:
    """sha256 of every target and what the plan would do with it, and why: the same targets
    observed the same way give the same digest; a target that moves (another action, another
    reason) or one more target (a selector that matches more) gives another."""
    content = {
        "targets": [[t.kind.value, t.id, t.target_status.value] for t in targets],
        "actions": [
            plan.stop_indexes,
            plan.delete_indexes,
            plan.wait_indexes,
            plan.skip_indexes,
            plan.fail_indexes,
        ],
        "reasons": plan.reasons,
        "failures": plan.failures,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


_PLAN_ACTION = {
    Verdict.SEND: PlanAction.STOP,
    Verdict.WAIT: PlanAction.WAIT,
    Verdict.DONE: PlanAction.SKIP,
    Verdict.FAIL: PlanAction.FAIL,
}
