"""What ``bulkterm apply`` prints: the records on stdout, what went wrong on stderr."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

import yaml

from bulkterm.engine import ConditionType, Plan, PlanAction, Progress
from bulkterm.manifest import API_VERSION_FULL, Manifest
from bulkterm.spec import KIND

#: Ids shown per failure reason in the summary on stderr.
IDS_PER_REASON = 3


def summary_lines(name: str, record: Progress) -> list[str]:
    """What went wrong, for stderr: failures by reason with the first few ids, and the
    terminal condition (``job: 3 failed: NotFound 2 (dep-a, dep-b), Forbidden 1 (dep-c)``,
    ``job: Failed NoTargetsFound: none of the deployments was found …``)."""
    lines = []
    if record.failed:
        by_reason: dict[str, list[str]] = {}
        for failure in record.failures:
            by_reason.setdefault(failure.reason, []).append(failure.id)
        counts = Counter({reason: len(ids) for reason, ids in by_reason.items()})
        parts = []
        for reason, n in counts.most_common():
            ids = by_reason[reason]
            shown = ", ".join(ids[:IDS_PER_REASON])
            more = f", +{len(ids) - IDS_PER_REASON} more" if len(ids) > IDS_PER_REASON else ""
            parts.append(f"{reason} {n} ({shown}{more})")
        unlisted = record.failed - len(record.failures)
        if unlisted > 0:
            parts.append(f"{unlisted} more not itemised (status.failures keeps the first "
                         f"{len(record.failures)})")  # fmt: skip
        lines.append(f"{name}: {record.failed} failed: {', '.join(parts)}")
    if record.plan is not None and record.plan.fail:
        lines.append(f"{name}: {record.plan.fail} would fail: {_predicted(record.plan)}")
    for type_ in (ConditionType.FAILED, ConditionType.COMPLETE, ConditionType.STALLED):
        condition = record.condition(type_)
        if condition is not None and condition.status == "True":
            lines.append(f"{name}: {type_.value} {condition.reason}: {condition.message}")
            break
    return lines


def _predicted(plan: Plan) -> str:
    """A dry run's predicted failures by reason, with the first ids the plan's sample names
    (``NotFound 2 (dep-a, dep-b), CannotStopUnknown 1 (dep-c)``)."""
    ids: dict[str, list[str]] = {}
    for entry in plan.entries:
        if entry.action is PlanAction.FAIL:
            ids.setdefault(entry.reason, []).append(entry.id)
    parts = []
    for reason, n in sorted(plan.failures.items(), key=lambda item: (-item[1], item[0])):
        named = ids.get(reason, [])[:IDS_PER_REASON]
        more = f", +{n - len(named)} more" if n > len(named) and named else ""
        parts.append(f"{reason} {n}" + (f" ({', '.join(named)}{more})" if named else ""))
    return ", ".join(parts)


def summarise_calls(calls: Mapping[str, int]) -> str:
    """``"12 (bulk_patch deployments 2, list deployments 6, …)"``: what the run cost."""
    total = sum(calls.values())
    detail = ", ".join(f"{label} {n}" for label, n in sorted(calls.items()))
    return f"{total} ({detail})" if calls else "0"


def succeeded(record: Progress) -> bool:
    """The run ended Complete, as ``kubectl wait`` sees it; for a dry run: the plan was made
    and predicts no failure (a plan that says a real run would fail is not a green light)."""
    complete = record.condition(ConditionType.COMPLETE)
    if complete is None or complete.status != "True":
        return False
    return not (complete.reason == "DryRun" and record.plan is not None and record.plan.fail)


def print_results(
    results: list[tuple[Manifest, Progress | None, str | None]], output: str, out: IO[str]
) -> None:
    objects: list[dict[str, Any]] = []
    for manifest, record, problem in results:
        metadata: dict[str, Any] = {"name": manifest.name}
        if manifest.namespace:
            metadata["namespace"] = manifest.namespace
        obj: dict[str, Any] = {"apiVersion": API_VERSION_FULL, "kind": KIND, "metadata": metadata}
        if record is not None:
            # The whole object, as `kubectl get -o yaml` prints it: the status's restore
            # record names targets by their index in the spec (`bulkterm restore -f`).
            obj["spec"] = manifest.spec.model_dump(by_alias=True, exclude_unset=True, mode="json")
            obj["status"] = record.model_dump(by_alias=True, exclude_none=True, mode="json")
        elif problem:
            obj["error"] = problem
        objects.append(obj)
    if output == "json":
        # One object as itself; several as a v1 List, as kubectl prints them.
        payload: Any = (
            objects[0]
            if len(objects) == 1
            else {"apiVersion": "v1", "kind": "List", "items": objects}
        )
        print(json.dumps(payload, indent=2), file=out)
    else:
        print(yaml.safe_dump_all(objects, sort_keys=False), end="", file=out)
