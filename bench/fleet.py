"""The fleet benchmark: engine vs SDK script against N, and the operator with one CR vs many.

One run, one table (``make bench``; ``bench/run.py`` calls :func:`main`), so every ratio in it
compares numbers measured minutes apart on the same machine under the same load: absolute
times on a shared 2-core VM are noisy, ratios within one run are not (much).

* **engine, N**: ``bulkterm apply -f`` (a subprocess: the engine as users run it, start-up
  included) on one compact manifest of N ids (``spec.deployments`` DELETED,
  ``spec.executions`` STOPPED; ``cluster.manifest_of``).
* **SDK script, N**: ``sdk_baseline.cleanup`` (SAP's ``ai-api-client-sdk`` 2.6.1, as a careful
  user writes it) on the same ids, in a subprocess of its own (``sdk_worker.py``). At 10,000
  targets it would take 10+ minutes here (an estimate: ~22,000 GETs one after another, 20 ms
  each), so it runs only with ``--full``; the table says so.
* **operator, C x M**: ``bulkterm operator`` (a fresh subprocess for each row, so its peak RSS
  is that row's) on a real kube-apiserver + etcd (``tests/kube/controlplane.py``), C CRs of M
  ids each created with one ``kubectl create -f``; the same ids as ``engine, C·M`` split in C
  parts. Wall time: from just before the create to the last CR's ``Complete=True`` (or
  ``Failed``), seen by a watch on the namespace. Peak RSS is the operator's VmHWM, CPU seconds
  its utime + stime from the create to the last Complete.
* ``--limits`` adds operator rows with 10 x 1,000 and 10 x 10,000 ids in flight at once (the
  memory and CPU of 10,000 and 100,000 targets across CRs).

Every row gets a fresh simulator (``bulkterm.simulator`` over HTTP on 127.0.0.1, in this
process) with the same seed, configuration and seeded statuses (``common.seed_simulator``'s
mix, plus RUNNING bystanders nobody may touch), a stop taking 2.5 s and a deletion 2 s (issue 14's
simulator), ``--latency-ms`` (20) added to every request, token included. The simulator
counts every request by route, so calls are counted the same way for every client; afterwards
it is asked whether every target reached its target status and no bystander was touched.

Writes ``--results`` (``bench/results``, not with ``--quick`` unless given):
``latest.json`` and ``scaling.png`` (``plot.py``).

    .venv/bin/python bench/fleet.py                  # ~6 min: N = 1,000 / 10,000, 1x10,000, 100x100
    .venv/bin/python bench/fleet.py --full --limits  # + the SDK at 10,000, + 10x1,000 and 10x10,000
    .venv/bin/python bench/fleet.py --quick --json   # smoke (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimulatorConfig, SimulatorThread, Timings
from bulkterm.spec import Target

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from cluster import (  # noqa: E402  (beside this file: ``bench/`` is not a package)
    BULKTERMINATIONS,
    NAMESPACE,
    ROOT,
    ControlPlane,
    Plane,
    admin_client,
    manifest_of,
    put_service_key,
    start_operator,
)
from common import (  # noqa: E402
    DELETE_SECONDS,
    NOT_RUNNING,
    STOP_SECONDS,
    api_calls,
    bystander_ids,
    categorize,
    fleet_timings,
    parse_faults,
    proc_cpu_seconds,
    proc_rss_mib,
    seed_simulator,
    tail,
    wait_child,
)
from targets import RESOURCE_GROUP, WANTED, target_ids  # noqa: E402

#: Wall-clock bound of one row, so a regression fails instead of hanging.
DEADLINE = 1800.0
Pairs = list[tuple[Kind, str]]


# --- one row of the table ------------------------------------------------------------------


@dataclass
class Row:
    """What one client did with N targets (in ``crs`` CRs for the operator)."""

    key: str
    label: str
    client: str  # "engine" | "sdk" | "operator"
    targets: int
    crs: int = 1
    requests: dict[str, int] = field(default_factory=dict)
    wall_seconds: float | None = None
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None
    correct: int = 0
    wrong: list[str] = field(default_factory=list)
    bystanders_touched: list[str] = field(default_factory=list)
    violations: int = 0
    #: Why the row was not measured (``None``: it was).
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.skipped is None

    @property
    def ok(self) -> bool:
        return not self.measured or (
            self.correct == self.targets and not self.bystanders_touched and not self.violations
        )

    @property
    def api_calls(self) -> int:
        """AI API calls, token requests left out (the SDK's token habits are not the point)."""
        return api_calls(self.requests)

    def kinds(self) -> dict[str, int]:
        """Calls by kind: bulk PATCH, list pages, GET one, other (meta, $count, single calls)."""
        c = categorize(self.requests)
        return {
            "bulk_patch": c["bulk_patch"],
            "list": c["list"],
            "get_one": c["get_one"],
            "other": c["meta"] + c["count"] + c["single_patch"] + c["single_delete"] + c["other"],
            "token": c["token"],
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(api_calls=self.api_calls, kinds=self.kinds(), ok=self.ok)
        return data


# --- the simulator, the same for every row -------------------------------------------------


@dataclass(frozen=True)
class Setup:
    seed: int
    executions_share: float
    bystanders_share: float
    latency_ms: float
    token_expires_in: int
    timings: Timings
    poll_interval: int | None

    def config(self) -> SimulatorConfig:
        return SimulatorConfig(
            host="127.0.0.1",
            port=0,
            seed=self.seed,
            timings=self.timings,
            faults=parse_faults(None, self.latency_ms),
            token_expires_in=self.token_expires_in,
            bulk_updates=True,
        )


def lifecycle_floor(info: dict[str, Any]) -> float:
    """The least time any client needs here: a RUNNING deployment that must be DELETED is
    stopped, seen STOPPED, then deleted (the API deletes only STOPPED, DEAD or UNKNOWN)."""
    timings = info["timings"]
    return float(timings["stop_delay_seconds"] + timings["stopping_seconds"]) + float(
        timings["deletion_seconds"]
    )


def bystanders(setup: Setup, n: int) -> list[str]:
    return bystander_ids(round(n * setup.bystanders_share), setup.seed)


@contextmanager
def simulator(setup: Setup, pairs: Pairs, others: Sequence[str]) -> Iterator[SimulatorThread]:
    """A fresh simulator seeded by ``common.seed_simulator`` (UNKNOWN items that must be DELETED
    held UNKNOWN), counters reset so that only the client's calls count."""
    with SimulatorThread(setup.config()) as sim:
        seed_simulator(
            sim,
            (
                Target.model_construct(kind=kind, id=id_, target_status=WANTED[kind])
                for kind, id_ in pairs
            ),
            others,
        )
        sim.reset_counters()
        yield sim


def verify(row: Row, sim: SimulatorThread, pairs: Pairs, others: Sequence[str]) -> None:
    """The truth, read from the simulator: DELETED targets gone, STOPPED ones not running."""
    for kind, id_ in pairs:
        view = sim.item(kind, id_, RESOURCE_GROUP)
        if WANTED[kind] is TargetStatus.DELETED:
            ok = view is None
        else:
            ok = view is not None and view.status in NOT_RUNNING and not view.deleting
        if ok:
            row.correct += 1
        elif len(row.wrong) < 20:
            row.wrong.append(f"{kind.value}/{id_}: is {'gone' if view is None else view.status}")
    for id_ in others:
        view = sim.item(Kind.DEPLOYMENT, id_, RESOURCE_GROUP)
        if view is None or view.status is not Status.RUNNING or view.target_status != "RUNNING":
            row.bystanders_touched.append(id_)
    row.requests = dict(sim.counters)
    row.violations = len(sim.violations)


# --- engine and SDK script -----------------------------------------------------------------


def run_engine(setup: Setup, n: int, workdir: Path) -> Row:
    pairs = target_ids(n, setup.executions_share, setup.seed)
    others = bystanders(setup, n)
    row = Row(f"engine-{n}", f"engine, {n:,}", "engine", n)
    path = workdir / f"engine-{n}.yaml"
    path.write_text(yaml.safe_dump(manifest_of(pairs, "compact", "fleet", setup.poll_interval)))
    with simulator(setup, pairs, others) as sim:
        key = sim.write_service_key(workdir / "service-key.json")
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "bulkterm.cli", "apply", "-f", str(path),
                "--service-key", str(key), "--allow-plain-http", "-o", "json",
            ],
            stdout=(workdir / f"engine-{n}.json").open("wb"),
            stderr=(workdir / f"engine-{n}.log").open("wb"),
            cwd=ROOT,
        )  # fmt: skip
        code, row.peak_rss_mib, row.cpu_seconds = wait_child(proc)
        row.wall_seconds = time.monotonic() - started
        verify(row, sim, pairs, others)
    if code != 0:
        raise RuntimeError(f"bulkterm apply exited {code}: {tail(workdir / f'engine-{n}.log')}")
    status = json.loads((workdir / f"engine-{n}.json").read_text())
    status = status.get("status", status) if isinstance(status, dict) else {}
    row.extra["outcomes"] = status.get("outcomes") if isinstance(status, dict) else None
    return row


def run_sdk(setup: Setup, n: int, workdir: Path) -> Row:
    pairs = target_ids(n, setup.executions_share, setup.seed)
    others = bystanders(setup, n)
    row = Row(f"sdk-{n}", f"SDK script, {n:,}", "sdk", n)
    with simulator(setup, pairs, others) as sim:
        order = workdir / f"sdk-{n}.json"
        order.write_text(
            json.dumps(
                {
                    "key": sim.service_key(),
                    "resource_group": RESOURCE_GROUP,
                    "jobs": [
                        [
                            "execution" if kind is Kind.EXECUTION else "deployment",
                            id_,
                            WANTED[kind].value,
                        ]
                        for kind, id_ in pairs
                    ],
                    "deadline_s": DEADLINE,
                }
            )
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "sdk_worker.py"), str(order)],
            stdout=(workdir / f"sdk-{n}.out").open("wb"),
            stderr=(workdir / f"sdk-{n}.log").open("wb"),
            cwd=ROOT,
        )
        code, row.peak_rss_mib, row.cpu_seconds = wait_child(proc)
        row.wall_seconds = time.monotonic() - started
        verify(row, sim, pairs, others)
    if code != 0:
        raise RuntimeError(f"the SDK script exited {code}: {tail(workdir / f'sdk-{n}.log')}")
    row.extra.update(json.loads((workdir / f"sdk-{n}.out").read_text()))
    return row


# --- the operator ----------------------------------------------------------------------------


class FleetWatch(threading.Thread):
    """A watch on every BulkTermination of the namespace (as ``kubectl wait`` or Argo CD holds
    one): notes when each named CR first carries ``Complete=True`` or ``Failed=True``."""

    def __init__(self, plane: ControlPlane, names: set[str]) -> None:
        super().__init__(daemon=True)
        self.client = admin_client(plane)
        self.names = names
        self.since = time.monotonic()
        #: name → (seconds since ``since``, "Complete" | "Failed")
        self.terminal: dict[str, tuple[float, str]] = {}
        self.events = 0
        self.bytes = 0
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        path = BULKTERMINATIONS
        while not self.done.is_set():
            try:
                listed = self.client.get(path)
                if listed.status_code != 200:
                    time.sleep(0.2)
                    continue
                body = listed.json()
                for item in body.get("items") or []:
                    self._note(item)
                params = {
                    "watch": "1",
                    "resourceVersion": body["metadata"]["resourceVersion"],
                    "timeoutSeconds": "1800",
                }
                with self.client.stream("GET", path, params=params) as response:
                    if response.status_code != 200:
                        time.sleep(0.2)
                        continue
                    self.ready.set()
                    for line in response.iter_lines():
                        if not line:
                            continue
                        self.events += 1
                        self.bytes += len(line)
                        self._note(json.loads(line).get("object") or {})
                        if self.done.is_set():
                            return
            except httpx.HTTPError:
                time.sleep(0.2)

    def _note(self, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if name not in self.names or name in self.terminal:
            return
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
                self.terminal[name] = (time.monotonic() - self.since, c["type"])
                if len(self.terminal) == len(self.names):
                    self.done.set()
                return


def run_operator(setup: Setup, plane: Plane, crs: int, per_cr: int, workdir: Path) -> Row:
    """C CRs of M ids each, on a fresh operator and a fresh simulator."""
    n = crs * per_cr
    pairs = target_ids(n, setup.executions_share, setup.seed)
    others = bystanders(setup, n)
    row = Row(f"operator-{crs}x{per_cr}", f"operator, {crs}x{per_cr:,}", "operator", n, crs)
    names = [f"fleet-{i:03d}" for i in range(crs)]
    docs = [
        manifest_of(pairs[i * per_cr : (i + 1) * per_cr], "compact", name, setup.poll_interval)
        for i, name in enumerate(names)
    ]
    path = workdir / f"{row.key}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    kube = plane.start()
    with simulator(setup, pairs, others) as sim:
        put_service_key(kube, sim.service_key())
        log_path = workdir / f"{row.key}.operator.log"
        proc = start_operator(kube, log_path)
        watch: FleetWatch | None = None
        try:
            mark = plane.plane.audit_mark()
            rss_before, _ = proc_rss_mib(proc.pid)
            cpu_before = proc_cpu_seconds(proc.pid)
            watch = FleetWatch(plane.plane, set(names))
            watch.start()
            if not watch.ready.wait(60):
                raise TimeoutError("the watch of the namespace did not start in 60 s")
            t0 = time.monotonic()
            created = kube.kubectl("create", "-f", str(path), timeout=600)
            if created.returncode != 0:
                raise RuntimeError(f"kubectl create failed: {created.stderr[-2000:]}")
            row.extra["kubectl_create_s"] = round(time.monotonic() - t0, 2)
            while not watch.done.wait(0.05):
                if proc.poll() is not None:
                    raise RuntimeError(f"operator died:\n{tail(log_path)}")
                if time.monotonic() - t0 > DEADLINE:
                    raise TimeoutError(f"{len(watch.terminal)}/{crs} CRs finished in {DEADLINE} s")
            row.wall_seconds = max(at for at, _ in watch.terminal.values()) - (t0 - watch.since)
            row.cpu_seconds = proc_cpu_seconds(proc.pid) - cpu_before
            _, row.peak_rss_mib = proc_rss_mib(proc.pid)
            verify(row, sim, pairs, others)
            time.sleep(1.0)  # the last status writes land before the audit log is read
            writes = Counter(
                f"{e.get('verb')} {ref.get('resource')}"
                + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                for e in plane.plane.audit_events(mark)
                if isinstance(ref := e.get("objectRef"), dict)
                and e.get("verb") not in ("watch", "list", "get")
            )
            finished = Counter(kind for _, kind in watch.terminal.values())
            row.extra.update(
                {
                    "rss_before_create_mib": round(rss_before, 1),
                    "finished": dict(finished),
                    "first_complete_s": round(
                        min(at for at, _ in watch.terminal.values()) - (t0 - watch.since), 2
                    ),
                    "kube_writes": dict(sorted(writes.items())),
                    "watch_events": watch.events,
                    "watch_bytes": watch.bytes,
                }
            )
            if finished.get("Failed"):
                row.wrong.append(f"{finished['Failed']} CRs Failed")
        finally:
            if watch is not None:
                watch.done.set()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            kube.purge("bulkterminations", NAMESPACE)
    return row


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, int]
    operator: tuple[tuple[int, int], tuple[int, int]]
    limits: tuple[tuple[int, int], ...]
    sdk_largest: bool


def plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan((100, 300), ((1, 300), (10, 30)), ((3, 100),) if args.limits else (), True)
    return Plan(
        (1_000, 10_000),
        ((1, 10_000), (100, 100)),
        ((10, 1_000), (10, 10_000)) if args.limits else (),
        args.full,
    )


# --- the table -------------------------------------------------------------------------------


def ratios(rows: list[Row], floor: float) -> dict[str, float]:
    """The ratios the issue sets goals for, from this run's rows only."""
    by = {r.key: r for r in rows if r.measured}
    out: dict[str, float] = {}
    for r in by.values():
        if r.client == "engine" and (s := by.get(f"sdk-{r.targets}")) is not None:
            assert r.wall_seconds and s.wall_seconds
            out[f"calls_sdk_over_engine_{r.targets}"] = s.api_calls / max(1, r.api_calls)
            out[f"time_sdk_over_engine_{r.targets}"] = s.wall_seconds / r.wall_seconds
            out[f"overhead_sdk_over_engine_{r.targets}"] = (s.wall_seconds - floor) / max(
                r.wall_seconds - floor, 1e-9
            )
    ops = [r for r in rows if r.client == "operator" and r.measured]
    one = next((r for r in ops if r.crs == 1), None)
    many = next((r for r in ops if r.crs > 1 and one and r.targets == one.targets), None)
    if one and many and one.wall_seconds and many.wall_seconds:
        out["calls_many_over_one_cr"] = many.api_calls / max(1, one.api_calls)
        out["time_many_over_one_cr"] = many.wall_seconds / one.wall_seconds
    return out


def render(rows: list[Row], info: dict[str, Any], console: Console) -> None:
    table = Table(
        title="fleet benchmark: engine vs SDK script, operator 1 CR vs many (one run)",
        caption=_caption(info),
    )
    table.add_column("metric", style="bold")
    for r in rows:
        table.add_column(r.label, justify="right")
    by = {r.key: r for r in rows}
    one_cr = next((r for r in rows if r.client == "operator" and r.crs == 1 and r.measured), None)

    def row(name: str, cell: Callable[[Row], str], *, end: bool = False) -> None:
        table.add_row(
            name,
            *(cell(r) if r.measured else f"[dim]{r.skipped}[/dim]" for r in rows),
            end_section=end,
        )

    row("targets (CRs)", lambda r: f"{r.targets:,}" + (f" ({r.crs})" if r.crs > 1 else ""))
    row("AI API calls (no token)", lambda r: f"[bold]{r.api_calls:,}[/bold]")
    row("  bulk PATCH", lambda r: f"{r.kinds()['bulk_patch']:,}")
    row("  list pages", lambda r: f"{r.kinds()['list']:,}")
    row("  GET one", lambda r: f"{r.kinds()['get_one']:,}")
    row("  other (meta, $count, single)", lambda r: f"{r.kinds()['other']:,}")
    row("token requests", lambda r: f"{r.kinds()['token']:,}", end=True)
    row("wall time", lambda r: f"{r.wall_seconds:.1f} s")
    row("peak RSS", lambda r: f"{r.peak_rss_mib:.0f} MiB")
    row("CPU", lambda r: f"{r.cpu_seconds:.1f} s", end=True)
    row("at target status", _correct_cell, end=True)

    def vs_sdk(value: Callable[[Row], float], word: str) -> Callable[[Row], str]:
        def cell(r: Row) -> str:
            sdk = by.get(f"sdk-{r.targets}")
            if r.client == "sdk":
                return "baseline"
            if r.client != "engine" or sdk is None or not sdk.measured:
                return "—"
            return f"[bold]{value(sdk) / max(value(r), 1e-9):.1f}x {word}[/bold]"

        return cell

    floor = lifecycle_floor(info)
    row("calls: SDK ÷ engine", vs_sdk(lambda r: r.api_calls, "fewer"))
    row("wall time: SDK ÷ engine", vs_sdk(lambda r: r.wall_seconds or 0.0, "faster"))
    row(
        f"time over the {floor:.2f} s lifecycle floor: SDK ÷ engine",
        vs_sdk(lambda r: (r.wall_seconds or 0.0) - floor, "less"),
        end=True,
    )

    def vs_one(value: Callable[[Row], float]) -> Callable[[Row], str]:
        def cell(r: Row) -> str:
            if r.client != "operator" or one_cr is None or r.targets != one_cr.targets:
                return "—"
            if r is one_cr:
                return "baseline"
            return f"[bold]{value(r) / max(value(one_cr), 1e-9):.2f}x[/bold]"

        return cell

    row("calls ÷ 1 CR of the same ids", vs_one(lambda r: r.api_calls))
    row("wall time ÷ 1 CR of the same ids", vs_one(lambda r: r.wall_seconds or 0.0))
    console.print(table)


def _correct_cell(r: Row) -> str:
    text = f"{r.correct:,}/{r.targets:,}"
    if r.ok:
        return f"[green]{text} ✓[/green]"
    problems = r.wrong[:2] + [f"bystander {b}" for b in r.bystanders_touched[:2]]
    if r.violations:
        problems.append(f"{r.violations} violations")
    return f"[red]{text} ✗[/red]\n" + "\n".join(problems)


def _caption(info: dict[str, Any]) -> str:
    return (
        f"{info['date']}, {info['machine']}, commit {info['commit']}; "
        f"seed {info['seed']}, executions {info['executions_share']:.0%} (STOPPED), deployments "
        f"DELETED, bystanders {info['bystanders_share']:.0%} of targets, stop "
        f"{info['timings']['stopping_seconds']} s, deletion {info['timings']['deletion_seconds']} s, "
        f"latency {info['latency_ms']} ms/request (token too), token expires_in "
        f"{info['token_expires_in']} s, bulkUpdates on, pollIntervalSeconds "
        f"{info['poll_interval'] or '10 (default)'}; wall times include process start-up"
    )


def machine_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "--", "operator")
    commit = git("rev-parse", "--short", "HEAD") + (" (operator/ modified)" if dirty else "")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        # A run from an export (``git archive``, no .git) names its commit in the environment.
        "commit": os.environ.get("BULKTERM_BENCH_COMMIT") or commit,
    }


# --- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: N = 100/300, 1x300, 10x30")
    p.add_argument(
        "--full", action="store_true", help="also the SDK script at 10,000 (est. 10+ min)"
    )
    p.add_argument(
        "--limits", action="store_true", help="also the operator with 10x1,000 and 10x10,000"
    )
    p.add_argument("--skip", action="append", default=[], choices=["engine", "sdk", "operator"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--executions-share", type=float, default=0.3)
    p.add_argument("--bystanders", type=float, default=0.2, help="share of targets (0.2)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="added to every request (20)")
    p.add_argument(
        "--token-expires-in",
        type=int,
        default=43199,
        help="43199 (XSUAA's 12 h: the SDK caches its token); <= 3600 makes it fetch one per call",
    )
    p.add_argument("--poll-interval", type=int, help="spec.pollIntervalSeconds (default 10)")
    p.add_argument(
        "--stop-seconds",
        type=float,
        default=STOP_SECONDS,
        help=f"how long a stop takes in the simulator ({STOP_SECONDS})",
    )
    p.add_argument(
        "--delete-seconds",
        type=float,
        default=DELETE_SECONDS,
        help=f"how long a deletion takes in the simulator ({DELETE_SECONDS})",
    )
    p.add_argument(
        "--results",
        type=Path,
        help="folder for latest.json and scaling.png (default bench/results; none with --quick)",
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout (the table on stderr)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind: stop what we started
    the_plan = plan(args)
    setup = Setup(
        seed=args.seed,
        executions_share=args.executions_share,
        bystanders_share=args.bystanders,
        latency_ms=args.latency_ms,
        token_expires_in=args.token_expires_in,
        timings=fleet_timings(0.5 if args.quick else 1.0, args.stop_seconds, args.delete_seconds),
        poll_interval=args.poll_interval or (2 if args.quick else None),
    )
    info = {
        **machine_info(),
        "seed": setup.seed,
        "executions_share": setup.executions_share,
        "bystanders_share": setup.bystanders_share,
        "latency_ms": setup.latency_ms,
        "token_expires_in": setup.token_expires_in,
        "poll_interval": setup.poll_interval,
        "timings": asdict(setup.timings),
        "quick": args.quick,
        "full": args.full,
    }
    log = Console(stderr=True)
    out = log if args.json else Console()
    if not out.is_terminal:
        out.width = max(out.width, 200)
    workdir = Path(tempfile.mkdtemp(prefix="bulkterm-bench-fleet-"))
    plane = Plane(workdir)
    steps: list[tuple[Row, Callable[[], Row]]] = []
    small, large = the_plan.sizes
    for n in (small, large):
        if "engine" not in args.skip:
            steps.append(
                (
                    Row(f"engine-{n}", f"engine, {n:,}", "engine", n),
                    _bind(run_engine, setup, n, workdir),
                )
            )
        if "sdk" not in args.skip:
            sdk = Row(f"sdk-{n}", f"SDK script, {n:,}", "sdk", n)
            if n == large and not the_plan.sdk_largest:
                sdk.skipped = "only with --full"
            steps.append((sdk, _bind(run_sdk, setup, n, workdir)))
    if "operator" not in args.skip:
        for crs, per_cr in (*the_plan.operator, *the_plan.limits):
            label = f"operator, {crs}x{per_cr:,}"
            steps.append(
                (
                    Row(f"operator-{crs}x{per_cr}", label, "operator", crs * per_cr, crs),
                    _bind_operator(setup, plane, crs, per_cr, workdir),
                )
            )
    rows: list[Row] = []
    try:
        for placeholder, step in steps:
            if not placeholder.measured:
                rows.append(placeholder)
                continue
            log.print(f"[dim]running {placeholder.label} …[/dim]")
            row = step()
            log.print(
                f"[dim]  {row.api_calls:,} AI API calls, {row.wall_seconds or 0:.1f} s, "
                f"{row.correct:,}/{row.targets:,} at target status[/dim]"
            )
            rows.append(row)
    finally:
        plane.stop()
        if args.keep:
            log.print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    render(rows, info, out)
    report = {
        "setup": info,
        "rows": [r.as_dict() for r in rows],
        "ratios": ratios(rows, lifecycle_floor(info)),
    }
    results = args.results or (None if args.quick else BENCH / "results")
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        (results / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        import plot  # beside this file; matplotlib only when a plot is asked for

        plot.plot(report, results / "scaling.png")
        log.print(f"[dim]wrote {results / 'latest.json'} and {results / 'scaling.png'}[/dim]")
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    return 0 if all(r.ok for r in rows) else 1


def _bind(
    fn: Callable[[Setup, int, Path], Row], setup: Setup, n: int, workdir: Path
) -> Callable[[], Row]:
    return lambda: fn(setup, n, workdir)


def _bind_operator(
    setup: Setup, plane: Plane, crs: int, per_cr: int, workdir: Path
) -> Callable[[], Row]:
    return lambda: run_operator(setup, plane, crs, per_cr, workdir)


if __name__ == "__main__":
    sys.exit(main())
