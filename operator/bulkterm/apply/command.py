"""``bulkterm apply``: the engine without Kubernetes, for pipelines, laptops and demos.

Exit codes are part of the interface:

* 0: every target reached its target status (for a dry run: the plan was made and predicts
  no failure).
* 1: some target (or a run) failed; stderr summarises the failures by reason. For a dry run:
  the plan predicts that some target would fail (``plan.failures`` says why).
* 2: invalid input, or credentials missing, malformed or refused, a resource group the AI API
  refused (403 on its first reads), or a CA bundle that cannot be used or a server certificate
  that does not verify; nothing was written.
* 130: interrupted by SIGINT (Ctrl-C); 143: terminated by SIGTERM (a cancelled CI job).
  Either way the status as far as it got is printed on stdout, so a rerun can be judged;
  a second signal ends the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, CredentialsError
from bulkterm.aiapi.settings import CaBundleError, load_ca_bundle
from bulkterm.aiapi.transport import TlsVerificationError
from bulkterm.aiapi.wire import public_url
from bulkterm.display import ProgressView
from bulkterm.engine import (
    ConditionType,
    Engine,
    EngineSettings,
    Plan,
    PlanAction,
    Progress,
    utcnow,
)
from bulkterm.engine.selection import (
    SelectionRefused,
    describe_selection,
    pause_schedules,
    refused_record,
    run_targets,
)
from bulkterm.manifest import API_VERSION_FULL, Manifest, ManifestError, load_manifests
from bulkterm.spec import KIND

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

#: Files ``-f DIR`` reads, as ``kubectl apply -f DIR`` does.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Ids shown per failure reason in the summary on stderr.
IDS_PER_REASON = 3


@dataclass(frozen=True)
class ApplyOptions:
    files: Sequence[str]
    recursive: bool = False
    service_key: str | None = None
    simulator: bool = False
    resource_group: str | None = None
    dry_run: bool = False
    timeout_seconds: int | None = None
    #: How long the AI API may stay unreadable before a run says Stalled (``--stall-after``).
    stall_after_seconds: float = 60.0
    output: str = "yaml"
    force_terminal: bool | None = None
    #: PEM file of the CAs to trust for the AI API (``--ca-bundle``); unused with ``simulator``
    #: (the embedded simulator is plain HTTP on loopback).
    ca_bundle: str | None = None


def run_apply(
    options: ApplyOptions, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        manifests = _read(options.files, recursive=options.recursive)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        return EXIT_INVALID
    except KeyboardInterrupt:  # (SIGTERM while reading: the default, ends at once, also fine)
        print("interrupted (SIGINT) while reading the input: nothing was sent", file=err)
        return EXIT_INTERRUPTED
    if options.ca_bundle and not options.simulator:
        try:
            load_ca_bundle(Path(options.ca_bundle))  # here, not as a TLS failure mid-run
        except CaBundleError as exc:
            print(f"error: --ca-bundle: {exc}", file=err)
            return EXIT_INVALID
    if options.dry_run:
        manifests = [
            Manifest(m.name, m.namespace, m.spec.model_copy(update={"dry_run": True}), m.document)
            for m in manifests
        ]
    if options.timeout_seconds is not None:
        manifests = [_with_deadline(m, options.timeout_seconds) for m in manifests]
    signals = _Signals()

    async def main() -> int:
        signals.install()
        try:
            return await _apply(manifests, options, out, err, signals)
        finally:
            signals.uninstall()

    printed = ": the status as far as it got is on stdout"
    try:
        code = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # before any run began, or a 2nd Ctrl-C
        code, printed = EXIT_INTERRUPTED, ""
    if code == EXIT_INTERRUPTED:
        received = signals.received or signal.SIGINT
        print(f"interrupted ({received.name}){printed}", file=err)
        return EXIT_TERMINATED if received is signal.SIGTERM else EXIT_INTERRUPTED
    return code


class _Signals:
    """SIGINT and SIGTERM while runs are under way, both as Ctrl-C always was: the first
    stops the runs and the status so far is printed; a second one acts as if we were not
    listening (SIGINT raises KeyboardInterrupt, SIGTERM ends the process at once)."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._task: asyncio.Task[Any] | None = None
        self._installed: list[signal.Signals] = []
        #: False once the runs are over: a signal then only ends the clean-up early.
        self.armed = True

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in self.HANDLED:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue  # ignored by whoever started us (e.g. SIGINT for `cmd &`): stays so
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, …
                continue
            self._installed.append(sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        while self._installed:
            loop.remove_signal_handler(self._installed.pop())

    def _on_signal(self, sig: signal.Signals) -> None:
        self.received = sig
        self.uninstall()
        if self.armed and self._task is not None:
            self._task.cancel()

    def acknowledge(self) -> None:
        """The cancellation a signal caused has been handled: later awaits run normally."""
        task = asyncio.current_task()
        if self.received is not None and task is not None and task.cancelling():
            task.uncancel()


def _with_deadline(manifest: Manifest, seconds: int) -> Manifest:
    current = manifest.spec.active_deadline_seconds
    deadline = seconds if current is None else min(current, seconds)
    spec = manifest.spec.model_copy(update={"active_deadline_seconds": deadline})
    return Manifest(manifest.name, manifest.namespace, spec, manifest.document)


def _read(files: Sequence[str], *, recursive: bool = False) -> list[Manifest]:
    manifests: list[Manifest] = []
    problems: list[str] = []
    for name in files:
        try:
            if name == "-":
                manifests.extend(load_manifests(sys.stdin.read(), source="stdin"))
                continue
            for path in _manifest_files(name, recursive=recursive):
                manifests.extend(load_manifests(_read_file(path), source=path))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    seen: dict[tuple[str | None, str], int] = {}
    for m in manifests:
        key = (m.namespace, m.name)
        if key in seen:
            problems.append(f"document {m.document} ({m.name}): the name {m.name!r} is used twice")
        seen[key] = m.document
    if problems:
        raise ManifestError(problems)
    return manifests


def _manifest_files(name: str, *, recursive: bool) -> list[str]:
    """``name`` itself, or for a directory (as ``kubectl apply -f DIR [-R]``) its ``.yaml``,
    ``.yml`` and ``.json`` files in lexical order, subdirectories (not followed through
    symlinks) in their place when ``recursive``."""
    if not os.path.isdir(name):
        return [name]
    found = list(_walk(name, recursive=recursive))
    if not found:
        where = " or its subdirectories" if recursive else ""
        raise ManifestError([f"{name}: no .yaml, .yml or .json files in it{where}"])
    return found


def _walk(directory: str, *, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise ManifestError([f"{directory}: cannot read ({exc.strerror})"]) from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(entry.path, recursive=True)
        elif entry.name.endswith(MANIFEST_SUFFIXES) and entry.is_file():
            yield entry.path


def _read_file(name: str) -> str:
    try:
        with open(name, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ManifestError([f"{name}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ManifestError([f"{name}: not UTF-8 text"]) from None


async def _apply(
    manifests: list[Manifest],
    options: ApplyOptions,
    out: IO[str],
    err: IO[str],
    signals: _Signals,
) -> int:
    async with _credentials(manifests, options, err) as key:
        if key is None:
            return EXIT_INVALID
        bundle = Path(options.ca_bundle) if options.ca_bundle and not options.simulator else None
        settings = ClientSettings(ca_bundle=bundle)
        try:
            clients = [
                AiApiClient(key, _resource_group(m, key, options), settings) for m in manifests
            ]
        except (CredentialsError, ValueError) as exc:  # bad resource group, unloadable PEMs
            print(f"error: {exc}", file=err)
            return EXIT_INVALID
        view = ProgressView(err, force_terminal=options.force_terminal)
        results: list[tuple[Manifest, Progress | None, str | None]] = []
        interrupted = refused = False
        try:
            for manifest, client in zip(manifests, clients, strict=True):
                try:
                    record = await _run_one(manifest, client, view, options)
                    results.append((manifest, record, None))
                except _Interrupted as stop:
                    signals.acknowledge()
                    results.append((manifest, stop.record, None))
                    interrupted = True
                    break
                except AuthError as exc:
                    results.append((manifest, None, _refusal(exc, manifest, client, options)))
                    # Refused before any write (a wrong key, or a resource group the tenant
                    # lacks: its first read answers 403): invalid input, as for a bad manifest.
                    if _nothing_written(clients):
                        refused = True
                        break
                except _NotTheAiApi as stop:  # the same URL for every run
                    results.append((manifest, stop.record, stop.message))
                    if _nothing_written(clients):
                        refused = True
                        break
                except TlsVerificationError as exc:  # the same server for every run
                    results.append((manifest, None, exc.message))
                    if _nothing_sent(clients):
                        refused = True
                        break
                except AiApiError as exc:
                    results.append((manifest, None, f"AI API error: {exc.message}"))
        finally:
            signals.armed = False
            view.close()
            for client in clients:
                await client.aclose()
        if refused:
            sent = "nothing was sent" if _nothing_sent(clients) else "no write was sent"
            for manifest, _, problem in results:
                if problem:
                    print(f"error: {manifest.name}: {problem}; {sent}", file=err)
            if len(results) < len(manifests):
                names = ", ".join(m.name for m in manifests[len(results) :])
                print(f"error: not started (same credentials): {names}", file=err)
            return EXIT_INVALID
        _print_results(results, options.output, out)
        for manifest, final, problem in results:
            if problem:
                print(f"error: {manifest.name}: {problem}", file=err)
            if final is not None:
                for line in summary_lines(manifest.name, final):
                    print(line, file=err)
        if interrupted:
            return EXIT_INTERRUPTED
        ok = all(record is not None and _succeeded(record) for _, record, _ in results)
        return EXIT_OK if ok else EXIT_FAILED


def _nothing_sent(clients: Sequence[AiApiClient]) -> bool:
    """No request reached the AI API (token requests are not AI API requests)."""
    return all(label == "token" for client in clients for label in client.calls)


#: Call labels (``AiApiClient.calls``) of requests that change nothing; any other is a write.
READ_CALLS = ("token", "meta", "list ", "get ", "count ")


def _nothing_written(clients: Sequence[AiApiClient]) -> bool:
    """No write was sent (tokens, ``/meta`` and reads only): nothing was changed."""
    return all(
        label.startswith(READ_CALLS) for client in clients for label, n in client.calls.items() if n
    )


def _refusal(exc: AuthError, manifest: Manifest, client: AiApiClient, options: ApplyOptions) -> str:
    """What was refused, for stderr: a 403 from the AI API itself (after a token was granted)
    is its RBAC denying the resource group to this key, so the group, where it was set and
    the AI API's URL are named. Never a secret: the URL is shown without credentials or query,
    and the AI API's message has been scrubbed by the client."""
    if exc.status_code == 403 and not _nothing_sent([client]):
        if options.resource_group:
            source = "--resource-group"
        elif "resource_group" in manifest.spec.connection.model_fields_set:
            source = "spec.connection.resourceGroup"
        elif client.key.resource_group:
            source = "AICORE_RESOURCE_GROUP"
        else:
            source = "the default (set --resource-group or spec.connection.resourceGroup)"
        return (
            f"the AI API at {public_url(client.key.api_url)} refused resource group "
            f"{client.resource_group!r} ({exc.message}): check {source} and the service key "
            "(does the tenant have this resource group, and may the key use it?)"
        )
    return f"credentials rejected: {exc.message}"


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


class _NotTheAiApi(Exception):
    """The run stalled because the URL answers, but not as the AI API: give up."""

    def __init__(self, record: Progress, message: str) -> None:
        super().__init__(message)
        self.record = record
        self.message = message


class _Interrupted(Exception):
    """SIGINT or SIGTERM during a run: carries the record as far as it got, to be printed."""

    def __init__(self, record: Progress) -> None:
        super().__init__("interrupted")
        self.record = record


async def _run_one(
    manifest: Manifest, api: AiApiClient, view: ProgressView, options: ApplyOptions
) -> Progress:
    now = utcnow()
    try:
        targets, selection = await run_targets(manifest.spec, api, None, now=now)
    except SelectionRefused as refusal:
        view.message(f"{manifest.name}: {refusal.message}; nothing was sent")
        return refused_record(len(manifest.spec.targets), refusal, now)
    if selection is not None:
        view.message(f"{manifest.name}: {describe_selection(selection)}")
        if selection.schedules and not manifest.spec.dry_run:
            selection = await pause_schedules(api, selection)
            view.message(
                f"{manifest.name}: {selection.schedules_paused} execution schedule(s) set "
                "INACTIVE before any target was sent"
            )
    settings = EngineSettings(stall_after_seconds=options.stall_after_seconds)
    engine = Engine(manifest.spec, api, settings=settings, targets=targets, selection=selection)
    give_up_later = options.timeout_seconds is not None
    retrying = False
    stalled: str | None = None

    async def on_progress(record: Progress) -> None:
        nonlocal retrying, stalled
        view.update(manifest.name, record)
        # One line per retry episode (not per request): the error that holds the run up.
        reconciling = record.condition(ConditionType.RECONCILING)
        now_retrying = reconciling is not None and reconciling.reason == "Retrying"
        if now_retrying and not retrying and reconciling is not None:
            view.message(f"{manifest.name}: {reconciling.message}")
        retrying = now_retrying
        condition = record.condition(ConditionType.STALLED)
        reason = condition.reason if condition and condition.status == "True" else None
        if reason is not None and reason != stalled and not record.terminal and condition:
            view.message(f"{manifest.name}: Stalled {reason}: {condition.message}")
            if reason == "NotTheAiApi" and not give_up_later:
                # Whatever answers there is not the AI API: waiting longer changes nothing
                # unless a --timeout says to.
                raise _NotTheAiApi(record, condition.message or reason)
        stalled = reason

    try:
        return await engine.run(on_progress)
    except asyncio.CancelledError:
        raise _Interrupted(engine.progress) from None
    finally:
        view.message(f"{manifest.name}: AI API calls: {_summarise_calls(api.calls)}")


def _summarise_calls(calls: Mapping[str, int]) -> str:
    """``"12 (bulk_patch deployments 2, list deployments 6, …)"``: what the run cost."""
    total = sum(calls.values())
    detail = ", ".join(f"{label} {n}" for label, n in sorted(calls.items()))
    return f"{total} ({detail})" if calls else "0"


def _resource_group(manifest: Manifest, key: ServiceKey, options: ApplyOptions) -> str:
    """Flag, then the manifest (if it says so explicitly), then the key/environment, then default."""
    if options.resource_group:
        return options.resource_group
    connection = manifest.spec.connection
    if "resource_group" in connection.model_fields_set:
        return connection.resource_group
    return key.resource_group or connection.resource_group


def _succeeded(record: Progress) -> bool:
    """The run ended Complete, as ``kubectl wait`` sees it; for a dry run: the plan was made
    and predicts no failure (a plan that says a real run would fail is not a green light)."""
    complete = record.condition(ConditionType.COMPLETE)
    if complete is None or complete.status != "True":
        return False
    return not (complete.reason == "DryRun" and record.plan is not None and record.plan.fail)


def _print_results(
    results: list[tuple[Manifest, Progress | None, str | None]], output: str, out: IO[str]
) -> None:
    objects: list[dict[str, Any]] = []
    for manifest, record, problem in results:
        metadata: dict[str, Any] = {"name": manifest.name}
        if manifest.namespace:
            metadata["namespace"] = manifest.namespace
        obj: dict[str, Any] = {"apiVersion": API_VERSION_FULL, "kind": KIND, "metadata": metadata}
        if record is not None:
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


@contextlib.asynccontextmanager
async def _credentials(
    manifests: list[Manifest], options: ApplyOptions, err: IO[str]
) -> AsyncIterator[ServiceKey | None]:
    if options.simulator:
        async with _embedded_simulator(manifests, options, err) as key:
            yield key
        return
    try:
        if options.service_key:
            key = ServiceKey.from_file(options.service_key)
        else:
            key = ServiceKey.from_env(os.environ)
    except CredentialsError as exc:
        print(f"error: {exc}", file=err)
        yield None
        return
    yield key


@contextlib.asynccontextmanager
async def _embedded_simulator(
    manifests: list[Manifest], options: ApplyOptions, err: IO[str]
) -> AsyncIterator[ServiceKey]:
    from bulkterm.simulator import Simulator, SimulatorConfig
    from bulkterm.simulator.manifests import demo_timings, seed_selector, seed_targets

    # bulkUpdates on, explicitly (the simulator's own default is off, as on a tenant without
    # it): the demo shows the bulk path, and says so.
    sim = Simulator(
        SimulatorConfig(host="127.0.0.1", port=0, timings=demo_timings(), bulk_updates=True)
    )
    for manifest in manifests:
        group = options.resource_group or manifest.spec.connection.resource_group
        sim.add_resource_group(group)  # known even when every target is simulated as gone
        seed_targets(sim, manifest.spec.targets, resource_group=group)
        if manifest.spec.selector is not None:
            seed_selector(sim, manifest.spec.selector, resource_group=group, now=utcnow())
    url = await sim.start()
    print(f"embedded AI API simulator at {url} (bulkUpdates on)", file=err)
    server_log = logging.getLogger("aiohttp.server")
    quiet = _ClientGone()
    server_log.addFilter(quiet)
    try:
        yield ServiceKey.from_dict(sim.service_key())
    finally:
        await sim.stop()
        server_log.removeFilter(quiet)


class _ClientGone(logging.Filter):
    """An interrupted run drops its requests in flight; the embedded server would log each
    lost connection with a traceback. That is expected then, not an error to show."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionResetError | asyncio.CancelledError)
