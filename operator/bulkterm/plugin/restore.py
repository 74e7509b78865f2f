"""``bulkterm restore`` / ``kubectl bulkterm restore``: bring back what a run terminated.

The record comes from a BulkTermination in the cluster (its ``status.restore``) or from a saved
``bulkterm apply -o json`` output (``-f``). The command reads where the targets stand now,
prints the plan, asks (or takes ``--yes``), then creates and re-activates (see
:mod:`bulkterm.restore.plan` and :mod:`bulkterm.restore.execute`); it prints old id → new id.
The AI API credentials are the caller's, as for ``bulkterm apply``: ``--service-key`` or the
``AICORE_*`` environment.

Exit status: 0 done (or nothing to do); 1 something was not restored, or the plan was declined;
2 bad input (no record, unreadable file or journal, unusable credentials).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from pydantic import ValidationError

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, CredentialsError
from bulkterm.aiapi.settings import ClientSettings
from bulkterm.engine import Progress, utcnow
from bulkterm.engine.restore_points import RestorePoint, RestoreRecordUnreadable, points_of
from bulkterm.engine.selection import SelectionRefused, recorded_targets
from bulkterm.plugin.flags import fail, kube_options, reported
from bulkterm.plugin.kube import (
    EXIT_FAILED,
    EXIT_USAGE,
    BulkTerminations,
    ConfigMapJournal,
    KubeOptions,
    PluginError,
)
from bulkterm.plugin.render import record_of
from bulkterm.restore.execute import (
    RestoreReport,
    carry_out,
    current_states,
    inactive_schedules,
    settle,
)
from bulkterm.restore.journal import (
    FileJournal,
    Journal,
    JournalEntry,
    JournalStore,
    JournalUnreadable,
)
from bulkterm.restore.plan import describe, plan_restore
from bulkterm.spec import Target, UnboundedSpec


@dataclass
class Source:
    """One run's record, and where its restore journal lives."""

    #: What a person reads: ``bulktermination <namespace>/<name>`` or the file and name.
    label: str
    record: Progress
    store: JournalStore
    resource_group: str | None
    #: The run's targets (the spec's, then the frozen selection's): what the record's
    #: indexes name.
    targets: list[Target]
    #: What the journal must belong to: the label and, in the cluster, the object's uid (a
    #: BulkTermination deleted and created again under the same name is another run).
    identity: str = ""

    def __post_init__(self) -> None:
        self.identity = self.identity or self.label

    @functools.cached_property
    def points(self) -> list[RestorePoint]:
        recorded = points_of(self.record.restore, self.targets)
        return [recorded[index] for index in sorted(recorded)]  # in the run's target order

    @property
    def paused(self) -> list[str]:
        selection = self.record.selection
        return list(selection.schedules_active or []) if selection is not None else []


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    fail(PluginError(message, code))


def _targets(obj: dict[str, Any], record: Progress, where: str) -> list[Target]:
    """What the record's indexes name: the object's spec, then its frozen selection."""
    if not isinstance(obj.get("spec"), dict):
        _fail(f"{where}: holds no spec, so the recorded targets cannot be named (save the "
              "whole object: `kubectl get bt NAME -o yaml`, or `bulkterm apply -o json`)",
              EXIT_USAGE)  # fmt: skip
    try:
        spec = UnboundedSpec.model_validate(obj["spec"])
        return recorded_targets(spec, record.selection)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        _fail(f"{where}: spec.{field}: {first['msg']}", EXIT_USAGE)
    except SelectionRefused as exc:
        _fail(f"{where}: {exc.message}", EXIT_USAGE)


def _source(obj: dict[str, Any], label: str, identity: str, store: JournalStore) -> Source:
    record = record_of(obj)
    connection = (obj.get("spec") or {}).get("connection") or {}
    targets = _targets(obj, record, label)
    return Source(label, record, store, connection.get("resourceGroup"), targets, identity)


def from_cluster(name: str, options: KubeOptions) -> Source:
    kube = BulkTerminations(options)
    obj = kube.get(name)
    label = f"bulktermination {kube.namespace}/{name}"
    identity = f"{label} {obj['metadata'].get('uid', '')}".strip()
    return _source(obj, label, identity, ConfigMapJournal(kube, obj))


def from_file(path: Path, name: str | None, journal: Path | None) -> Source:
    """A saved ``bulkterm apply`` output: one object, or a List of them (``name`` picks)."""
    try:
        doc = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{path}: cannot read it: {' '.join(str(exc).split())}", EXIT_USAGE)
    objects = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
    objects = [o for o in objects or [] if isinstance(o, dict)]
    names = [str((o.get("metadata") or {}).get("name")) for o in objects]
    if name is not None:
        objects = [o for o, n in zip(objects, names, strict=True) if n == name]
    if len(objects) != 1:
        found = ", ".join(names) or "none"
        _fail(
            f"{path}: holds {len(names)} BulkTermination(s) ({found}); name one with --name",
            EXIT_USAGE,
        )
    obj = objects[0]
    chosen = str((obj.get("metadata") or {}).get("name"))
    store = FileJournal(journal or path.with_name(f"{path.name}.restore-journal.json"))
    return _source(obj, f"{path} ({chosen})", f"{path.resolve()} {chosen}", store)


def _client(source: Source, service_key: str | None, resource_group: str | None,
            ca_bundle: str | None, allow_plain_http: bool) -> AiApiClient:  # fmt: skip
    """The caller's AI API client; exit 2 naming what is wrong with the key or the bundle."""
    try:
        key = ServiceKey.from_file(service_key) if service_key else ServiceKey.from_env(os.environ)
        if not allow_plain_http:
            key.require_https()
        group = resource_group or source.resource_group or key.resource_group or "default"
        settings = ClientSettings(ca_bundle=Path(ca_bundle) if ca_bundle else None)
        return AiApiClient(key, group, settings)
    except (CredentialsError, ValueError) as exc:
        _fail(str(exc), EXIT_USAGE)


async def _restore(
    client: AiApiClient, source: Source, *, executions: bool, yes: bool
) -> RestoreReport | None:
    """Plan, ask, carry out, with one client (one token) for all of it; ``None`` when there
    is nothing to do."""
    async with client:
        journal = source.store.load() or Journal(source=source.identity)
        if journal.source != source.identity:
            raise JournalUnreadable(
                f"the restore journal {source.store.where} belongs to {journal.source!r}, not to "
                f"{source.identity!r}"
            )
        points = source.points
        recorded = {p.id for p in points}
        adopted = await settle(client, journal, source.store, recorded, utcnow())
        plan = plan_restore(
            points,
            await current_states(client, points),
            journal.restored(),
            executions=executions,
            awaiting=journal.awaiting(),
            paused_schedules=source.paused,
            inactive_schedules=await inactive_schedules(client, source.paused),
        )
        click.echo(f"restore plan for {source.label}:")
        for line in describe(plan):
            click.echo(f"  {line}")
        if adopted:
            click.echo(
                f"  ({len(adopted)} creation(s) of an earlier restore settled from the AI API)"
            )
        if plan.empty:
            return None
        if not yes and not await asyncio.to_thread(click.confirm, "Restore?", default=False):
            _fail("not restored; nothing changed")

        def created(entry: JournalEntry) -> None:
            click.echo(
                f"{entry.kind.value} {entry.old_id} → {entry.new_id} ({entry.configuration_id})"
            )

        return await carry_out(
            client, plan, journal, source.store, now=utcnow, recorded=recorded, on_created=created
        )


def restore(source: Source, *, executions: bool, yes: bool, client_options: dict[str, Any]) -> None:
    record = source.record
    if not record.terminal:
        _fail(f"{source.label}: the run has not finished; wait for it to end (or suspend it and "
              "delete it) before restoring what it terminated")  # fmt: skip
    if record.restore is None and not source.paused:
        click.echo(f"{source.label}: the run recorded nothing to restore")
        return
    client = _client(source, **client_options)
    try:
        report = asyncio.run(_restore(client, source, executions=executions, yes=yes))
    except (RestoreRecordUnreadable, JournalUnreadable) as exc:
        _fail(str(exc), EXIT_USAGE)
    except AuthError as exc:
        _fail(f"the AI API refused the credentials: {exc}", EXIT_USAGE)
    except AiApiError as exc:
        _fail(f"the AI API: {exc}; nothing more was created (the journal keeps what was)")
    if report is not None:
        _report(report)


def _report(report: RestoreReport) -> None:
    for schedule in report.activated:
        click.echo(f"ExecutionSchedule {schedule} set ACTIVE")
    for creation, why in report.failed:
        click.echo(f"not restored: {creation.kind.value} {creation.old_id}: {why}", err=True)
    for schedule, why in report.schedule_failures:
        click.echo(f"not re-activated: ExecutionSchedule {schedule}: {why}", err=True)
    for entry in report.unsettled:
        click.echo(f"unsettled: {entry.kind.value} {entry.old_id}: run restore again", err=True)
    made = len(report.created) + len(report.adopted)
    click.echo(f"restored: {made} created, {len(report.activated)} schedule(s) set ACTIVE")
    if not report.ok:
        sys.exit(EXIT_FAILED)


@click.command("restore")
@click.argument("name", required=False)
@click.option("-f", "--filename", type=click.Path(dir_okay=False, path_type=Path),
              help="A saved `bulkterm apply -o json` (or yaml) output instead of the cluster.")  # fmt: skip
@click.option("--name", "pick", help="With -f: which BulkTermination of a List.")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path),
              help="With -f: the journal file (default: FILE.restore-journal.json beside it).")  # fmt: skip
@kube_options
@click.option("--executions", is_flag=True,
              help="Also run again the executions the run stopped (re-running a job is no undo).")  # fmt: skip
@click.option("--yes", is_flag=True, help="Do not ask before creating.")
@click.option("--service-key", type=click.Path(dir_okay=False),
              help="SAP AI Core service key JSON. Default: the AICORE_* environment variables.")  # fmt: skip
@click.option("--resource-group", help="AI-Resource-Group (default: the run's).")
@click.option("--ca-bundle", type=click.Path(), envvar="BULKTERM_CA_BUNDLE",
              help="PEM file of the CAs to trust for the AI API.")  # fmt: skip
@click.option("--allow-plain-http", is_flag=True, envvar="BULKTERM_ALLOW_PLAIN_HTTP",
              help="Accept a service key whose URLs are plain HTTP (a local simulator).")  # fmt: skip
@reported
def restore_command(
    name: str | None, filename: Path | None, pick: str | None, journal: Path | None,
    kubeconfig: str | None, context: str | None, namespace: str | None, executions: bool,
    yes: bool, service_key: str | None, resource_group: str | None, ca_bundle: str | None,
    allow_plain_http: bool,
) -> None:  # fmt: skip
    """Bring back what a finished run terminated: one new deployment from each terminated
    deployment's configuration, and the execution schedules it paused set ACTIVE again.
    Shows the plan and asks first (or --yes); prints old id → new id. A second restore creates
    nothing twice (a journal: a ConfigMap NAME-restore, or a file beside -f)."""
    if (name is None) == (filename is None):
        _fail("name a BulkTermination in the cluster, or give -f with a saved output", EXIT_USAGE)
    if filename is not None:
        source = from_file(filename, pick, journal)
    else:
        assert name is not None
        source = from_cluster(name, KubeOptions(kubeconfig, context, namespace))
    client_options = {"service_key": service_key, "resource_group": resource_group,
                      "ca_bundle": ca_bundle, "allow_plain_http": allow_plain_http}  # fmt: skip
    restore(source, executions=executions, yes=yes, client_options=client_options)
