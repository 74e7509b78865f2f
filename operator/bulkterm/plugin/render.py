"""A BulkTermination as a person reads it: ``kubectl bulkterm status``.

Pure: an object (as the API server returns it) in, lines on a rich console out. The status is
read through the engine's own record (:class:`~bulkterm.engine.Progress`), so the counters,
conditions and their wording are the ones the operator wrote; index ranges and the frozen
selection are turned back into ids with the engine's decoders (:func:`~bulkterm.engine.expand`,
:func:`~bulkterm.engine.selection.decode_ids`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from bulkterm.engine import Condition, ConditionType, Progress, expand
from bulkterm.engine.selection import decode_ids, describe_selection
from bulkterm.spec import API_GROUP, API_VERSION, KIND, BulkTerminationSpec

#: Ids shown per line (a failure reason, an in-flight group, the selection) unless --all-ids.
IDS_SHOWN = 5
#: Ids of the frozen selection shown unless --all-ids.
SELECTION_IDS_SHOWN = 20

SUSPENDED_MEANS = "nothing new will be sent; in-flight actions are still watched"


class UnreadableStatus(ValueError):
    """The status is not one this version can read."""


def record_of(obj: Mapping[str, Any]) -> Progress:
    """The engine's record of an object's status (empty when the operator has not written
    one yet)."""
    try:
        return Progress.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UnreadableStatus(f"status.{where}: {first['msg']}") from None


def ending(record: Progress) -> Condition | None:
    """The Complete or Failed condition when it is True (the run is over, never resumes)."""
    for type_ in (ConditionType.COMPLETE, ConditionType.FAILED):
        condition = record.condition(type_)
        if condition is not None and condition.status == "True":
            return condition
    return None


def as_data(obj: Mapping[str, Any], output: str) -> str:
    """``-o json|yaml``: the object's identity and its status exactly as stored."""
    metadata = obj.get("metadata") or {}
    data = {
        "apiVersion": obj.get("apiVersion", f"{API_GROUP}/{API_VERSION}"),
        "kind": obj.get("kind", KIND),
        "metadata": {k: metadata[k] for k in ("name", "namespace", "generation") if k in metadata},
        "status": obj.get("status") or {},
    }
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


def _ids_by_index(obj: Mapping[str, Any], record: Progress) -> dict[int, str]:
    """Index → target id: ``spec``'s targets in index order, then the selection's ids. Empty
    where the spec is not one this version reads (the indexes are shown instead)."""
    try:
        spec = BulkTerminationSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return {}
    ids = {i: t.id for i, t in enumerate(spec.targets)}
    if record.selection is not None:
        try:
            chosen = decode_ids(record.selection.ids)
        except ValueError:
            chosen = ()
        first = record.selection.first_index
        ids.update({first + i: id_ for i, id_ in enumerate(chosen)})
    return ids


def _listing(ids: Sequence[str], shown: int | None) -> str:
    if shown is None or len(ids) <= shown:
        return ", ".join(ids)
    return f"{', '.join(ids[:shown])}, +{len(ids) - shown} more"


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _field(console: Console, label: str, value: str | Text, style: str = "") -> None:
    line = Text(f"{label:<12}", style="bold")
    line.append(value if isinstance(value, Text) else Text(value, style=style))
    console.print(line)


def _suspension(obj: Mapping[str, Any], record: Progress) -> tuple[str, str]:
    wanted = bool((obj.get("spec") or {}).get("suspend"))
    condition = record.condition(ConditionType.SUSPENDED)
    acknowledged = condition is not None and condition.status == "True"
    if wanted and acknowledged:
        return f"yes: {SUSPENDED_MEANS}", "yellow"
    if wanted:
        return "requested (spec.suspend: true), not yet acknowledged by the operator", "yellow"
    if acknowledged:
        return "resume requested (spec.suspend: false), not yet acknowledged by the operator", ""
    return "no", ""


def render(obj: Mapping[str, Any], console: Console, *, all_ids: bool = False) -> None:
    """Print the whole human-readable status of one BulkTermination."""
    record = record_of(obj)
    metadata = obj.get("metadata") or {}
    shown = None if all_ids else IDS_SHOWN
    generation = metadata.get("generation")
    title = Text(f"{KIND} {metadata.get('namespace', '')}/{metadata.get('name', '')}", "bold")
    title.append(f"  (generation {generation}, observed {record.observed_generation or 0})")
    console.print(title)
    if not record.conditions:
        console.print("not yet visited by the operator: no status written", style="yellow")
    elif generation is not None and (record.observed_generation or 0) < generation:
        console.print(
            f"the operator has not yet acted on generation {generation}; "
            f"this status describes generation {record.observed_generation or 0}",
            style="yellow",
        )

    ready = record.condition(ConditionType.READY)
    if ready is not None:
        style = "green" if ready.status == "True" else ""
        _field(console, "Ready:", f"{ready.status} {ready.reason}: {ready.message}", style)
    end = ending(record)
    if end is not None:
        style = "green" if end.type == ConditionType.COMPLETE else "red"
        _field(console, "Finished:", f"{end.type} {end.reason}: {end.message}", style)
    else:
        stalled = record.condition(ConditionType.STALLED)
        if stalled is not None and stalled.status == "True":
            _field(console, "Stalled:", f"{stalled.reason}: {stalled.message}", "red")
    _field(console, "Suspended:", *_suspension(obj, record))
    _field(console, "Progress:", record.summary())
    if record.outcomes:
        _field(console, "Outcomes:", ", ".join(f"{k} {n}" for k, n in record.outcomes.items()))
    _field(console, "Started:", _time(record.start_time))
    if record.completion_time is not None:
        _field(console, "Completed:", _time(record.completion_time))
    if record.plan is not None:
        plan = record.plan
        _field(
            console,
            "Plan:",
            f"stop {plan.stop}, delete {plan.delete}, wait {plan.wait}, skip {plan.skip}, "
            f"fail {plan.fail}",
        )

    if record.plan is not None and record.plan.digest:
        _field(console, "Plan digest:", record.plan.digest)
    if record.approved_plan:
        _field(console, "Approved:", record.approved_plan)
    if record.restore is not None:
        restore = record.restore
        _field(
            console,
            "Restorable:",
            f"{restore.deployments} deployment(s), {restore.executions} execution(s) of "
            f"{restore.configurations} configuration(s) recorded (kubectl bulkterm restore "
            f"{metadata.get('name', 'NAME')})",
        )

    ids = _ids_by_index(obj, record)
    _in_flight(console, record, ids, shown)
    _failures(console, record, shown)
    _selection(console, record, None if all_ids else SELECTION_IDS_SHOWN)


def _in_flight(
    console: Console, record: Progress, ids: Mapping[int, str], shown: int | None
) -> None:
    if record.in_flight_groups:
        console.print(Text(f"\nIn flight ({record.active}):", style="bold"))
        for group in record.in_flight_groups:
            indexes = expand(group.indexes)
            accepted = "accepted" if group.accepted else "acceptance not yet known"
            named = [ids[i] for i in indexes if i in ids]
            what = _listing(named, shown) if len(named) == len(indexes) else group.indexes
            console.print(
                Text(
                    f"  {group.action.value} {len(indexes)}, sent {_time(group.sent_at)} "
                    f"({accepted}): {what}"
                )
            )
    elif record.in_flight:
        console.print(Text(f"\nIn flight ({record.active}):", style="bold"))
        for entry in record.in_flight:
            console.print(
                Text(
                    f"  {entry.action.value} {entry.kind.value} {entry.id}, sent "
                    f"{_time(entry.sent_at)} (attempt {entry.attempt})"
                )
            )


def _failures(console: Console, record: Progress, shown: int | None) -> None:
    if not record.failed:
        return
    console.print(Text(f"\nFailed ({record.failed}), by reason:", style="bold"))
    by_reason: dict[str, list[str]] = {}
    messages: dict[str, str] = {}
    for failure in record.failures:
        by_reason.setdefault(failure.reason, []).append(failure.id)
        code = f" (AI API code {failure.code})" if failure.code else ""
        messages.setdefault(failure.reason, failure.message + code)
    for reason, failed_ids in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        line = Text(f"  {reason} {len(failed_ids)}", style="red")
        line.append(f": {_listing(failed_ids, shown)}")
        console.print(line)
        console.print(Text(f"    {' '.join(messages[reason].split())}", style="dim"))
    unlisted = record.failed - len(record.failures)
    if unlisted > 0:
        console.print(
            Text(
                f"  {unlisted} more not itemised (status.failures keeps the first "
                f"{len(record.failures)}; status.failedIndexes has them all)"
            )
        )


def _selection(console: Console, record: Progress, shown: int | None) -> None:
    selection = record.selection
    if selection is None:
        return
    console.print(Text("\nSelection (frozen when the run started):", style="bold"))
    console.print(Text(f"  {describe_selection(selection)}"))
    last = selection.first_index + selection.selected - 1
    where = f"targets {selection.first_index}-{last}" if selection.selected else "no targets"
    line = f"  resolved {_time(selection.resolved_at)}; {where}"
    if selection.schedules:
        line += f"; schedules paused {selection.schedules_paused}/{len(selection.schedules)}"
    console.print(Text(line))
    try:
        chosen = decode_ids(selection.ids)
    except ValueError as exc:
        console.print(Text(f"  ids: {exc}", style="red"))
        return
    more = "" if shown is None or len(chosen) <= shown else " (--all-ids lists them all)"
    console.print(Text(f"  ids: {_listing(chosen, shown) or '-'}{more}"))


def render_plan(obj: Mapping[str, Any], console: Console, *, all_ids: bool = False) -> None:
    """Print the plan a BulkTermination waits with (``spec.requireApproval``) or made
    (``spec.dryRun``): what would be done to how many targets and why, examples by id, and
    the digest an approval must quote."""
    record = record_of(obj)
    metadata = obj.get("metadata") or {}
    plan = record.plan
    console.print(
        Text(f"{KIND} {metadata.get('namespace', '')}/{metadata.get('name', '')}", "bold")
    )
    if plan is None:
        console.print(
            "no plan yet: the operator writes one for spec.requireApproval or spec.dryRun"
        )
        return
    _field(
        console,
        "Would:",
        f"stop {plan.stop}, delete {plan.delete}, wait on {plan.wait}, leave {plan.skip}, "
        f"fail {plan.fail}",
    )
    if plan.reasons:
        _field(console, "Reasons:", ", ".join(f"{k} {n}" for k, n in plan.reasons.items()))
    if plan.failures:
        _field(
            console,
            "Would fail:",
            ", ".join(f"{k} {n}" for k, n in plan.failures.items()),
            "red",
        )
    shown = plan.entries if all_ids else plan.entries[:IDS_SHOWN]
    for entry in shown:
        console.print(
            f"  {entry.action.value:<6} {entry.kind.value} {entry.id} "
            f"(observed {entry.observed}): {entry.reason}"
        )
    left = plan.entries_omitted + len(plan.entries) - len(shown)
    if left:
        console.print(f"  … and {left} more")
    _field(console, "Digest:", plan.digest or "(none: a dry run's plan is not for approval)")
    if record.approved_plan:
        _field(console, "Approved:", record.approved_plan, "green")
