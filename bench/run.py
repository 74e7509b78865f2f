"""Benchmark: bulkterm's engine against a careful script on SAP's official Python client.

``make bench`` runs this file, which hands over to ``fleet.py`` (the fleet benchmark: engine vs
SDK script at 1,000 and 10,000 targets, the operator with 1 x 10,000 and 100 x 100, one table,
``bench/results/latest.json`` and ``scaling.png``). ``--classic`` runs the single-N
comparison below instead:

One run seeds fresh, identically configured simulators with the same targets in the same
statuses and drives each to completion with:

  (a) the engine, bulk updates on;
  (b) the engine against a simulator whose ``/meta`` says ``bulkUpdates: false`` (single calls);
  (c) ``sdk_baseline.cleanup``: ``ai-api-client-sdk`` 2.6.1, as a careful user would write it;
  (d) a scale run: the engine alone with ``--scale-targets`` (10,000) targets, in a child
      process so that its peak RSS and ``tracemalloc`` peak are the engine's, not the simulator's.

It reports what the simulator saw (requests by route, token requests, bulk PATCHes, single
calls, polling), wall time, protocol violations and whether every target ended at its target
status. Counts are the metric; wall time is secondary. See ``bench/README.md``.

    .venv/bin/python bench/run.py --classic                     # the classic run (~1-2 min)
    .venv/bin/python bench/run.py --classic --targets 50 --quick --json   # smoke, JSON on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ai_api_client_sdk.models.target_status import TargetStatus as SdkTargetStatus
from rich.console import Console
from rich.table import Table

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimulatorConfig, SimulatorThread
from bulkterm.spec import BulkTerminationSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # beside this file: ``bench/`` is not a package
import sdk_baseline
from common import (
    NOT_RUNNING,
    api_calls,
    bench_timings,
    bystander_ids,
    categorize,
    parse_faults,
    seed_simulator,
)
from targets import DEADLINE_SECONDS, RESOURCE_GROUP, compact_json, engine_run, make_spec

# --- results -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    label: str
    targets: int
    requests: dict[str, int]
    wall_seconds: float
    violations: list[dict[str, Any]]
    #: Targets whose final state (read from the simulator) is their target status.
    correct: int
    #: ``"Deployment/dep-1-000007: want DELETED, is STOPPED"`` for every other target.
    wrong: list[str]
    #: Bystanders that were touched (stopped, deleted) although not in the spec.
    bystanders_touched: list[str]
    #: What the client itself says failed (engine: ``Progress.failed``; script: its failures).
    self_reported_failed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def api_calls(self) -> int:
        return api_calls(self.requests)

    @property
    def ok(self) -> bool:
        return not self.wrong and not self.bystanders_touched

    def categories(self) -> dict[str, int]:
        return categorize(self.requests)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_requests"] = self.total_requests
        data["api_calls"] = self.api_calls
        data["categories"] = self.categories()
        data["ok"] = self.ok
        return data


def verify(
    sim: SimulatorThread, spec: BulkTerminationSpec, bystanders: Sequence[str]
) -> tuple[int, list[str], list[str]]:
    """Read the truth from the simulator: which targets reached their target status.

    DELETED: the item is gone. STOPPED: it is not running (STOPPED, or DEAD/COMPLETED, which
    cannot be stopped and are the engine's ``AlreadyStopped``) and not being deleted.
    """
    correct, wrong = 0, []
    for target in spec.targets:
        view = sim.item(target.kind, target.id, RESOURCE_GROUP)
        if target.target_status is TargetStatus.DELETED:
            ok = view is None
        else:
            ok = view is not None and view.status in NOT_RUNNING and not view.deleting
        if ok:
            correct += 1
            continue
        seen = (
            "gone" if view is None else view.status.value + (" (deleting)" if view.deleting else "")
        )
        wrong.append(
            f"{target.kind.value}/{target.id}: want {target.target_status.value}, is {seen}"
        )
    touched = []
    for item_id in bystanders:
        view = sim.item(Kind.DEPLOYMENT, item_id, RESOURCE_GROUP)
        if view is None or view.status is not Status.RUNNING or view.target_status != "RUNNING":
            touched.append(f"Deployment/{item_id}")
    return correct, wrong, touched


def _violations(sim: SimulatorThread) -> list[dict[str, Any]]:
    return [v.as_dict() for v in sim.violations]


# --- the variants --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    targets: int
    executions_share: float
    bystanders: int
    seed: int
    config: SimulatorConfig


def _simulator(setup: Setup, *, bulk: bool) -> SimulatorThread:
    """A simulator with ``bulkUpdates`` set explicitly: the simulator's (and AI Core's)
    default is off, and every variant but "engine, bulk off" measures the bulk path."""
    return SimulatorThread(replace(setup.config, bulk_updates=bulk))


def run_engine(setup: Setup, *, bulk: bool) -> Result:
    spec = make_spec(setup.targets, setup.executions_share, setup.seed)
    others = bystander_ids(setup.bystanders, setup.seed)
    with _simulator(setup, bulk=bulk) as sim:
        mix = seed_simulator(sim, spec.targets, others)
        started = time.perf_counter()
        progress, calls = asyncio.run(engine_run(spec, sim.service_key()))
        wall = time.perf_counter() - started
        correct, wrong, touched = verify(sim, spec, others)
        status = progress.to_status()
        return Result(
            name="engine_bulk" if bulk else "engine_single",
            label="engine, bulk on" if bulk else "engine, bulk off",
            targets=len(spec.targets),
            requests=dict(sim.counters),
            wall_seconds=wall,
            violations=_violations(sim),
            correct=correct,
            wrong=wrong,
            bystanders_touched=touched,
            self_reported_failed=progress.failed,
            extra={
                "responses": dict(sorted(sim.responses.items())),
                "seeded_mix": dict(sorted(mix.items())),
                "client_calls": dict(sorted(calls.items())),
                "outcomes": progress.outcomes,
                "failures": [f.model_dump(mode="json", by_alias=True) for f in progress.failures],
                "status_json_bytes": len(compact_json(status)),
            },
        )


def run_sdk(setup: Setup) -> Result:
    spec = make_spec(setup.targets, setup.executions_share, setup.seed)
    others = bystander_ids(setup.bystanders, setup.seed)
    jobs = [
        sdk_baseline.Job(
            kind="execution" if t.kind is Kind.EXECUTION else "deployment",
            id=t.id,
            target=SdkTargetStatus(t.target_status.value),
        )
        for t in spec.targets
    ]
    with _simulator(setup, bulk=True) as sim:
        seed_simulator(sim, spec.targets, others)
        started = time.perf_counter()
        outcome = sdk_baseline.cleanup(
            sim.service_key(), jobs, RESOURCE_GROUP, deadline_s=DEADLINE_SECONDS
        )
        wall = time.perf_counter() - started
        correct, wrong, touched = verify(sim, spec, others)
        return Result(
            name="sdk",
            label="SDK script (bulk on)",
            targets=len(spec.targets),
            requests=dict(sim.counters),
            wall_seconds=wall,
            violations=_violations(sim),
            correct=correct,
            wrong=wrong,
            bystanders_touched=touched,
            self_reported_failed=len(outcome.failed),
            extra={
                "responses": dict(sorted(sim.responses.items())),
                "rounds": outcome.rounds,
                "failures": [f"{j.kind}/{j.id}: {why}" for j, why in outcome.failed.items()],
            },
        )


def run_scale(setup: Setup, *, tracemalloc_on: bool) -> Result:
    """The engine with many targets, in a child process; the simulator stays here."""
    spec = make_spec(setup.targets, setup.executions_share, setup.seed)
    others = bystander_ids(setup.bystanders, setup.seed)
    worker = Path(__file__).resolve().parent / "scale_worker.py"
    with _simulator(setup, bulk=True) as sim:
        order = {
            "key": sim.service_key(),
            "targets": setup.targets,
            "executions_share": setup.executions_share,
            "seed": setup.seed,
            "tracemalloc": tracemalloc_on,
        }
        with subprocess.Popen(
            [sys.executable, str(worker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(order) + "\n")
            child.stdin.flush()
            if child.stdout.readline().strip() == "ready":
                seed_simulator(sim, spec.targets, others)
                child.stdin.write("go\n")
                child.stdin.flush()
            out, err = child.communicate(timeout=DEADLINE_SECONDS + 60)
        if child.returncode != 0:
            raise RuntimeError(f"scale worker failed ({child.returncode}):\n{err}")
        report: dict[str, Any] = json.loads(out)
        correct, wrong, touched = verify(sim, spec, others)
        return Result(
            name="engine_scale",
            label=f"engine, {setup.targets:,} targets",
            targets=len(spec.targets),
            requests=dict(sim.counters),
            wall_seconds=report["wall_seconds"],
            violations=_violations(sim),
            correct=correct,
            wrong=wrong,
            bystanders_touched=touched,
            self_reported_failed=report["failed"],
            extra={
                "responses": dict(sorted(sim.responses.items())),
                **{k: v for k, v in report.items() if k not in ("wall_seconds", "failed")},
            },
        )


def run_scale_measured(setup: Setup, *, tracemalloc_on: bool, separate: bool = True) -> Result:
    """The scale run for calls, wall time and RSS; then, if asked, once more under tracemalloc.

    ``tracemalloc`` slows Python down by 2-3x, so its run only contributes the heap peak; the
    table's wall time and counts come from the untraced run. ``separate=False`` (``--quick``)
    traces the one and only run instead: its wall time then includes tracemalloc's overhead.
    """
    if not separate:
        result = run_scale(setup, tracemalloc_on=tracemalloc_on)
        result.extra["wall_includes_tracemalloc"] = tracemalloc_on
        return result
    result = run_scale(setup, tracemalloc_on=False)
    if tracemalloc_on:
        traced = run_scale(setup, tracemalloc_on=True)
        result.extra["tracemalloc_peak_mib"] = traced.extra["tracemalloc_peak_mib"]
        result.extra["traced_run"] = {
            "wall_seconds": traced.wall_seconds,
            "total_requests": traced.total_requests,
            "ok": traced.ok,
            "violations": len(traced.violations),
        }
        result.wrong += [f"(traced run) {w}" for w in traced.wrong]
        result.violations += traced.violations
    return result


# --- output ---------------------------------------------------------------------------------


def _ratio(baseline: float, value: float, better: str) -> str:
    if value <= 0 or baseline <= 0:
        return "—"
    r = baseline / value
    return f"{r:.1f}x {better}" if r >= 1 else f"{1 / r:.1f}x more"


def _violation_cell(result: Result) -> str:
    if not result.violations:
        return "0"
    codes = Counter(v["code"] for v in result.violations)
    return f"{len(result.violations)} ({', '.join(f'{c} {n}' for c, n in codes.most_common())})"


def _correct_cell(result: Result) -> str:
    text = f"{result.correct}/{result.targets}"
    if result.ok:
        return f"[green]{text} ✓[/green]"
    names = (result.wrong + result.bystanders_touched)[:3]
    more = len(result.wrong) + len(result.bystanders_touched) - len(names)
    suffix = f" (+{more} more)" if more > 0 else ""
    return f"[red]{text} ✗[/red]\n" + "\n".join(names) + suffix


def render(results: list[Result], setup_info: dict[str, Any], console: Console) -> None:
    baseline = next((r for r in results if r.name == "sdk"), None)
    table = Table(
        title="bulk termination: bulkterm engine vs SAP ai-api-client-sdk (same simulator, same seed)",
        caption=_caption(setup_info),
        show_lines=False,
    )
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.label, justify="right")
    cats = [r.categories() for r in results]

    def row(name: str, cell: Callable[[int, Result], str], *, end: bool = False) -> None:
        table.add_row(name, *(cell(i, r) for i, r in enumerate(results)), end_section=end)

    row("targets", lambda i, r: f"{r.targets:,}", end=True)
    row("HTTP requests (all)", lambda i, r: f"[bold]{r.total_requests:,}[/bold]")
    row("  token (POST /oauth/token)", lambda i, r: f"{cats[i]['token']:,}")
    row("  AI API calls (no token)", lambda i, r: f"{r.api_calls:,}")
    row("  meta", lambda i, r: f"{cats[i]['meta']:,}")
    row("  list pages (GET collection)", lambda i, r: f"{cats[i]['list']:,}")
    row("  $count", lambda i, r: f"{cats[i]['count']:,}")
    row("  GET one (polling)", lambda i, r: f"{cats[i]['get_one']:,}")
    row("  bulk PATCH", lambda i, r: f"{cats[i]['bulk_patch']:,}")
    row("  single PATCH (stop)", lambda i, r: f"{cats[i]['single_patch']:,}")
    row("  single DELETE", lambda i, r: f"{cats[i]['single_delete']:,}", end=True)
    row("requests per target", lambda i, r: f"{r.total_requests / max(1, r.targets):.2f}")
    row("wall time", lambda i, r: f"{r.wall_seconds:.1f} s", end=True)
    row("protocol violations", lambda i, r: _violation_cell(r))
    row("at target status", lambda i, r: _correct_cell(r))
    row("failed (self-reported)", lambda i, r: str(r.self_reported_failed), end=True)
    if baseline is not None:

        def vs(value: Callable[[Result], float], better: str) -> Callable[[int, Result], str]:
            def cell(i: int, r: Result) -> str:
                if r is baseline:
                    return "baseline"
                if r.targets != baseline.targets:
                    return "—"
                return _ratio(value(baseline), value(r), better)

            return cell

        row("requests vs SDK", vs(lambda r: r.total_requests, "fewer"))
        row("AI API calls vs SDK", vs(lambda r: r.api_calls, "fewer"))
        row("wall time vs SDK", vs(lambda r: r.wall_seconds, "faster"), end=True)
    scale = [r for r in results if r.name == "engine_scale"]
    if scale:

        def extra(key: str, fmt: str) -> Callable[[int, Result], str]:
            def cell(i: int, r: Result) -> str:
                value = r.extra.get(key)
                return "—" if value is None else fmt.format(value)

            return cell

        def rss(i: int, r: Result) -> str:
            peak, before = r.extra.get("peak_rss_mib"), r.extra.get("rss_before_run_mib")
            if peak is None:
                return "—"
            return f"{peak:.0f} MiB" + ("" if before is None else f" ({before:.0f} before run)")

        row("peak RSS of engine process", rss)
        row("tracemalloc peak", extra("tracemalloc_peak_mib", "{:.1f} MiB"))
        row("final status JSON", extra("status_json_bytes", "{:,} B"))
    console.print(table)


def _caption(info: dict[str, Any]) -> str:
    faults = info["faults"] or "none"
    return (
        f"seed {info['seed']}, executions {info['executions_share']:.0%}, "
        f"bystanders {info['bystanders_share']:.0%} of targets, latency {info['latency_ms']} ms/request, "
        f"token expires_in {info['token_expires_in']} s, faults: {faults}, "
        "bulkUpdates turned on explicitly (AI Core's default: off) except in 'engine, bulk off'"
    )


# --- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--targets", type=int, default=1000, help="targets per variant (default 1000)")
    p.add_argument("--executions-share", type=float, default=0.3, help="share of executions (0.3)")
    p.add_argument(
        "--bystanders",
        type=float,
        default=0.2,
        help="untouchable RUNNING deployments in the group, as a share of targets (0.2)",
    )
    p.add_argument(
        "--token-expires-in",
        type=int,
        default=1800,
        help="expires_in of tokens (1800: the SDK refetches on every call; 43199: it caches)",
    )
    p.add_argument("--latency-ms", type=float, default=5.0, help="added to every request (5)")
    p.add_argument("--faults", help='e.g. "429=0.05,503=0.02,retry_after=1" (default: none)')
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale-targets", type=int, default=10_000, help="0 skips the scale run")
    p.add_argument(
        "--no-tracemalloc", action="store_true", help="skip the second, traced scale run"
    )
    p.add_argument(
        "--skip", action="append", default=[], choices=["bulk", "single", "sdk", "operator"]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (<15 s with --targets 50): one traced 300-target scale run, faster lifecycles",
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout (the table goes to stderr)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.targets <= 10_000 or not 0 <= args.scale_targets <= 10_000:
        raise SystemExit("--targets must be in 1..10000 and --scale-targets in 0..10000")
    if args.quick:
        args.scale_targets = min(args.scale_targets, 300)
    faults = parse_faults(args.faults, args.latency_ms)
    config = SimulatorConfig(
        host="127.0.0.1",
        port=0,
        seed=args.seed,
        timings=bench_timings(0.5 if args.quick else 1.0),
        faults=faults,
        token_expires_in=args.token_expires_in,
    )
    setup = Setup(
        args.targets,
        args.executions_share,
        round(args.targets * args.bystanders),
        args.seed,
        config,
    )
    info = {
        "seed": args.seed,
        "targets": args.targets,
        "executions_share": args.executions_share,
        "bystanders": setup.bystanders,
        "bystanders_share": args.bystanders,
        "latency_ms": args.latency_ms,
        "token_expires_in": args.token_expires_in,
        "faults": args.faults,
        # The simulator's default is off, as on AI Core: the bulk variants turn it on.
        "bulk_updates": {
            "engine, bulk on": True,
            "engine, bulk off": False,
            "SDK script": True,
            "scale run": True,
        },
        "timings": asdict(config.timings),
        "python": sys.version.split()[0],
    }
    log = Console(stderr=True)
    table_console = log if args.json else Console()
    if not table_console.is_terminal:
        table_console.width = max(table_console.width, 132)  # piped to a file: do not wrap
    steps: list[tuple[str, Callable[[], Result]]] = []
    if "bulk" not in args.skip:
        steps.append(("engine, bulk on", lambda: run_engine(setup, bulk=True)))
    if "single" not in args.skip:
        steps.append(("engine, bulk off", lambda: run_engine(setup, bulk=False)))
    if "sdk" not in args.skip:
        steps.append(("SDK script", lambda: run_sdk(setup)))
    if args.scale_targets:
        scale_setup = replace(
            setup,
            targets=args.scale_targets,
            bystanders=round(args.scale_targets * args.bystanders),
        )
        steps.append(
            (
                f"engine, {args.scale_targets:,} targets (child process)",
                lambda: run_scale_measured(
                    scale_setup, tracemalloc_on=not args.no_tracemalloc, separate=not args.quick
                ),
            )
        )
    results: list[Result] = []
    for title, step in steps:
        log.print(f"[dim]running {title} …[/dim]")
        result = step()
        log.print(
            f"[dim]  {result.total_requests:,} requests, {result.wall_seconds:.1f} s, "
            f"{result.correct}/{result.targets} at target status[/dim]"
        )
        results.append(result)
    render(results, info, table_console)
    if args.json:
        print(json.dumps({"setup": info, "results": [r.as_dict() for r in results]}, indent=2))
    engine_violations = any(r.violations for r in results if r.name.startswith("engine"))
    operator_ok = "operator" in args.skip or run_operator_vs_apply(args.quick)
    return 0 if all(r.ok for r in results) and not engine_violations and operator_ok else 1


def run_operator_vs_apply(quick: bool) -> bool:
    """``operator_vs_apply.py``: the operator on a real kube-apiserver against ``bulkterm
    apply`` on the same 10,000 targets (200 with ``--quick``); its table goes to stderr, and
    it fails if the two end with different outcomes. A child process: it starts its own
    control plane and simulators."""
    targets = "200" if quick else "10000"
    script = Path(__file__).resolve().parent / "operator_vs_apply.py"
    print(f"running the operator vs bulkterm apply ({targets} targets) …", file=sys.stderr)
    done = subprocess.run([sys.executable, str(script), "--targets", targets], check=False)
    return done.returncode == 0


def entry(argv: Sequence[str] | None = None) -> int:
    """``make bench``: the fleet benchmark (``fleet.py``: one table, ``bench/results``);
    ``--classic`` first runs this file's single-N comparison instead (engine bulk on/off, SDK
    script, the 10,000-target scale run, then ``operator_vs_apply.py``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--classic" in args:
        args.remove("--classic")
        return main(args)
    return fleet.main(args)


if __name__ == "__main__":
    sys.exit(entry())
