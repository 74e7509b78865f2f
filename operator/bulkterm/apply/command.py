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
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, CredentialsError
from bulkterm.aiapi.settings import CaBundleError, load_ca_bundle
from bulkterm.aiapi.transport import TlsVerificationError
from bulkterm.aiapi.wire import public_url
from bulkterm.apply.embedded import credentials
from bulkterm.apply.inputs import read_manifests
from bulkterm.apply.options import ApplyOptions
from bulkterm.apply.output import print_results, succeeded, summary_lines
from bulkterm.apply.terminal import Interrupted, NotTheAiApi, run_one
from bulkterm.display import ProgressView
from bulkterm.engine import Progress
from bulkterm.manifest import Manifest, ManifestError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


def run_apply(
    options: ApplyOptions, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        manifests = read_manifests(options.files, recursive=options.recursive)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        return EXIT_INVALID
    except KeyboardInterrupt:  # (SIGTERM while reading: the default, ends at once, also fine)
        print("interrupted (SIGINT) while reading the input: nothing was sent", file=err)
        return EXIT_INTERRUPTED
    suspended = [m for m in manifests if m.spec.suspend and not options.dry_run]
    for m in suspended:
        print(
            f"error: {m.name}: spec.suspend is true: `bulkterm apply` runs to the end and "
            "nothing could resume it; remove spec.suspend, or look first with --dry-run "
            "(nothing was sent)",
            file=err,
        )
    if suspended:
        return EXIT_INVALID
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


async def _apply(
    manifests: list[Manifest],
    options: ApplyOptions,
    out: IO[str],
    err: IO[str],
    signals: _Signals,
) -> int:
    async with credentials(manifests, options, err) as key:
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
                    record = await run_one(
                        manifest,
                        client,
                        view,
                        stall_after_seconds=options.stall_after_seconds,
                        give_up_when_stalled=options.timeout_seconds is None,
                    )
                    results.append((manifest, record, None))
                except Interrupted as stop:
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
                except NotTheAiApi as stop:  # the same URL for every run
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
        print_results(results, options.output, out)
        for manifest, final, problem in results:
            if problem:
                print(f"error: {manifest.name}: {problem}", file=err)
            if final is not None:
                for line in summary_lines(manifest.name, final):
                    print(line, file=err)
        if interrupted:
            return EXIT_INTERRUPTED
        ok = all(record is not None and succeeded(record) for _, record, _ in results)
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


def _resource_group(manifest: Manifest, key: ServiceKey, options: ApplyOptions) -> str:
    """Flag, then the manifest (if it says so explicitly), then the key/environment, then default."""
    if options.resource_group:
        return options.resource_group
    connection = manifest.spec.connection
    if "resource_group" in connection.model_fields_set:
        return connection.resource_group
    return key.resource_group or connection.resource_group
