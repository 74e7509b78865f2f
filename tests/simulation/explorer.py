"""Deterministic simulation of whole runs under fault schedules, and the judge of their promises.

The product promises, for every target and through every fault:

1. nothing the AI API accepted is sent again;
2. the report equals the truth on the AI API;
3. a run never looks healthy while it cannot work: it ends, or says it is Stalled and why,
   within bounded time, and never with a traceback.

:func:`play` runs one :class:`~tests.simulation.scenario.Scenario` (the real engine, the real
HTTP client, the operator's fleet sharing of reads and bulk requests, and the real simulator
application) on a virtual-time event loop, injecting the scenario's faults, and
:func:`judge` checks the three promises against the simulator's ground truth. A seed that
breaks one replays exactly: ``python -m tests.simulation.explorer --seed N -v``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import random
import sys
import time
import traceback
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import AuthError, ConfigurationError
from bulkterm.aiapi.models import Kind, Status
from bulkterm.aiapi.ratelimit import RateLimiter
from bulkterm.aiapi.settings import ClientSettings
from bulkterm.engine import EngineSettings, Progress, Run, RunEvent
from bulkterm.engine.restore_points import decode_points
from bulkterm.k8s.fleet import FleetApi, SharedReads
from bulkterm.simulator import Simulator, SimulatorConfig, Timings
from bulkterm.simulator.server import build_app
from bulkterm.spec import BulkTerminationSpec, Target
from tests.simulation import vtime
from tests.simulation.bridge import AppTransport
from tests.simulation.scenario import DELETED, STOPPED, Item, RunPlan, Scenario

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: Simulated seconds every run must end (or stall) within.
BOUND_SECONDS = 4 * 3600.0
#: The address the service key names; nothing is sent over any network.
NOMINAL_URL = "http://127.0.0.1:9"
TERMINAL = {"Complete", "Failed"}
#: Items no run names: they must stay untouched.
NEIGHBOURS = 6
_STOPPED_OR_STOPPING = (Status.STOPPING, Status.STOPPED)
#: Which run (and which life of it) a request was made for, for the trace.
_RUN: contextvars.ContextVar[str] = contextvars.ContextVar("run", default="-")


@dataclass
class RunOutcome:
    plan: RunPlan
    final: Progress | None = None
    error: str | None = None
    #: The engine raised (AuthError, ConfigurationError) after recording Stalled.
    stalled: str | None = None
    ended_at: float | None = None


@dataclass
class Play:
    scenario: Scenario
    sim: Simulator
    runs: list[RunOutcome] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    wire_faults: Counter[str] = field(default_factory=Counter)
    #: Per run (its name), the items its own writes named (a lost answer's included).
    written: defaultdict[str, set[tuple[Kind, str]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    #: Every write as sent, with the simulated second: what ``-v`` prints for a failing seed.
    trace: list[str] = field(default_factory=list)


class _FlakyStatus:
    """The run's host as an API server that refuses some status writes: a refused checkpoint
    holds the run's sends back; ``durable`` is what a restarted process would read."""

    def __init__(self, durable: Progress | None, rng: random.Random, failure_rate: float) -> None:
        self.durable = durable
        self._rng = rng
        self._failure_rate = failure_rate

    async def checkpoint(self, record: Progress) -> bool:
        return await self._write(record)

    async def progress(self, record: Progress, *, urgent: bool) -> None:
        await self._write(record)

    def event(self, event: RunEvent) -> None:
        pass

    async def _write(self, record: Progress) -> bool:
        await asyncio.sleep(0)  # a status write is an await, like a PATCH to the API server
        if self._rng.random() < self._failure_rate:
            return False
        self.durable = Progress.model_validate(record.to_status())
        return True


def configuration_of(item_id: str) -> str:
    """The configuration an item is seeded with: what its restore point must name."""
    return f"cfg-{zlib.crc32(item_id.encode()) % 5}"


def _spec(plan: RunPlan) -> BulkTerminationSpec:
    return BulkTerminationSpec.model_validate(
        {
            "targets": [Target(kind=k, id=i, target_status=t) for k, i, t in plan.targets],
            "pollIntervalSeconds": 5,
            "unknownGracePeriodSeconds": 30,
            "activeDeadlineSeconds": int(BOUND_SECONDS),
        }
    )


def _simulator(sc: Scenario, clock: vtime.VirtualTimeLoop) -> Simulator:
    cap = sc.page_cap
    config = SimulatorConfig(
        seed=sc.seed,
        bulk_updates=sc.bulk_updates,
        timings=Timings(),
        max_result_rows=cap.rows if cap is not None and cap.how == "413" else None,
        silent_page_rows=cap.rows if cap is not None and cap.how == "silent" else None,
        list_count=cap.count if cap is not None else "total",
    )
    sim = Simulator(config, clock=clock.time)
    for item in sc.items:
        if item.status is None:
            continue
        target = "STOPPED" if item.status is Status.STOPPING else None
        sim.add_item(
            item.kind,
            item.id,
            item.status,
            target_status=target,
            hold=item.held,
            configuration_id=configuration_of(item.id),
        )
    for n in range(NEIGHBOURS):  # neighbours no run names: they must stay untouched
        sim.add_item(Kind.DEPLOYMENT if n % 2 else Kind.EXECUTION, f"other-{n:04d}", Status.RUNNING)
    sim._url = NOMINAL_URL
    return sim


async def play(sc: Scenario) -> Play:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, vtime.VirtualTimeLoop), "the explorer needs virtual time"
    sim = _simulator(sc, loop)
    result = Play(sc, sim)
    wire_rng = random.Random(f"wire:{sc.seed}")

    def pick(request: httpx.Request):  # type: ignore[no-untyped-def]
        route = f"{request.method} {request.url.path}"
        result.requests[route] += 1
        fault = None
        if not request.url.path.endswith("/oauth/token") and sc.faults:
            roll, which = wire_rng.random(), wire_rng.randrange(len(sc.faults))
            if roll < sc.fault_rate:
                fault = sc.faults[which]
                result.wire_faults[fault.value] += 1
        if request.method != "GET" and "token" not in route:
            result.written[_RUN.get().split(".")[0]].update(_written_ids(request))
        if request.method != "GET":
            body = request.content.decode()[:300] if "token" not in route else ""
            hit = f" [{fault.value}]" if fault is not None else ""
            result.trace.append(f"{loop.time():8.2f} {_RUN.get()} {route} {body}{hit}")
        return fault

    transport = AppTransport(build_app(sim.backend), pick, timeout_seconds=30.0)
    key = sim.service_key()
    settings = ClientSettings()
    limiter = RateLimiter(settings.concurrency, settings.rate_limit_per_second)

    def jitter(name: str):  # type: ignore[no-untyped-def]
        return random.Random(f"client:{sc.seed}:{name}").random  # retry jitter, replayable

    owner = AiApiClient.from_service_key(
        key, "default", settings, transport=transport, limiter=limiter, rng=jitter("owner")
    )
    reader = AiApiClient.from_service_key(
        key,
        "default",
        settings,
        transport=transport,
        limiter=limiter,
        tokens=owner.tokens,
        rng=jitter("reader"),
    )
    shared = SharedReads(reader, clock=loop.time)
    meddler = AiApiClient.from_service_key(
        key, "default", settings, transport=AppTransport(build_app(sim.backend)), rng=jitter("m")
    )

    async def meddle() -> None:
        for m in sorted(sc.meddling, key=lambda m: m.at):
            await asyncio.sleep(max(0.0, m.at - loop.time()))
            try:
                if m.action is STOPPED:
                    await meddler.stop(m.kind, m.id)
                else:
                    await meddler.delete(m.kind, m.id)
            except Exception:
                pass

    async def drive(plan: RunPlan, outcome: RunOutcome) -> None:
        await asyncio.sleep(plan.starts_at)
        spec = _spec(plan)
        durable: Progress | None = None
        writes = random.Random(f"writes:{sc.seed}:{plan.name}")
        kills = [plan.starts_at + k for k in plan.kills]
        lives = 0
        while True:
            own = AiApiClient.from_service_key(
                key,
                "default",
                settings,
                transport=transport,
                limiter=limiter,
                tokens=owner.tokens,
                rng=jitter(f"{plan.name}:{lives}"),
            )
            api: AiApi = FleetApi(own, shared, clock=loop.time) if sc.fleet else own
            host = _FlakyStatus(durable, writes, sc.write_failure_rate)
            run = Run(
                spec,
                host,
                durable,
                settings=EngineSettings(),
                clock=lambda: EPOCH + timedelta(seconds=loop.time()),
                rng=random.Random(f"engine:{sc.seed}:{plan.name}:{lives}"),
            )
            _RUN.set(f"{plan.name}.{lives}")
            task = asyncio.create_task(run.drive(api))
            kill_at = next((k for k in kills if k > loop.time()), None)
            try:
                if kill_at is None:
                    outcome.final = await task
                else:
                    done, _ = await asyncio.wait({task}, timeout=kill_at - loop.time())
                    if not done:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                        durable = host.durable
                        kills.remove(kill_at)
                        lives += 1
                        await own.aclose()
                        await asyncio.sleep(1.0)  # the replacement process starts
                        continue
                    outcome.final = task.result()
            except (AuthError, ConfigurationError) as e:
                outcome.stalled = f"{type(e).__name__}: {e.message}"
                outcome.final = run.record
            finally:
                await own.aclose()
            outcome.ended_at = loop.time()
            return

    meddling = asyncio.create_task(meddle())
    tasks = []
    for plan in sc.runs:
        outcome = RunOutcome(plan)
        result.runs.append(outcome)
        tasks.append(asyncio.create_task(_guarded(drive(plan, outcome), outcome)))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), BOUND_SECONDS + 600)
    except TimeoutError:
        for o in result.runs:
            if o.final is None and o.error is None:
                o.error = f"did not end within {BOUND_SECONDS + 600:.0f} simulated seconds"
    meddling.cancel()
    await asyncio.gather(meddling, return_exceptions=True)
    await shared.close()
    for client in (reader, owner, meddler):
        await client.aclose()
    return result


async def _guarded(coro, outcome: RunOutcome) -> None:  # type: ignore[no-untyped-def]
    try:
        await coro
    except Exception:
        outcome.error = traceback.format_exc()


# --- the judge ---


def _resolved_by_itself(sc: Scenario, kind: Kind, item_id: str | None) -> bool:
    item = next((i for i in sc.items if i.kind is kind and i.id == item_id), None)
    return item is not None and item.status is Status.UNKNOWN and not item.held


def _item(sc: Scenario, kind: Kind, item_id: str) -> Item:
    return next(i for i in sc.items if i.kind is kind and i.id == item_id)


def _written_ids(request: httpx.Request) -> set[tuple[Kind, str]]:
    """The items a PATCH or DELETE to ``/lm/deployments`` or ``/lm/executions`` names."""
    parts = request.url.path.rstrip("/").split("/")
    collection = {k.collection: k for k in Kind}
    if parts[-1] in collection:  # a bulk PATCH: the ids are in the body
        kind = collection[parts[-1]]
        items = json.loads(request.content or b"{}").get(kind.collection, [])
        return {(kind, str(i.get("id"))) for i in items}
    if len(parts) >= 2 and parts[-2] in collection:
        return {(collection[parts[-2]], parts[-1])}
    return set()


def judge(p: Play) -> list[str]:
    """The promises each run broke, as sentences; empty when every promise held."""
    sc, sim = p.scenario, p.sim
    broken: list[str] = []
    meddled = sc.meddled
    # Promise 1: every refusal the simulator recorded is a re-send (or a send no rule allows).
    for v in sim.violations:
        if v.id is not None and v.kind is not None and (v.kind, v.id) in meddled:
            continue  # raced with someone else's change: not a re-send of ours
        if v.code == "ResultTooLarge":
            continue  # a 413 is how a server says its page cap: learnt, not a write
        if v.code == "IllegalStop" and ("COMPLETED" in v.what or "DEAD" in v.what):
            continue  # it ended by itself between the look and the STOP: the API's race
        if (
            v.code == "IllegalDelete"
            and v.kind is not None
            and _resolved_by_itself(sc, v.kind, v.id)
        ):
            # An UNKNOWN item the API resolved to PENDING between a look and the DELETE that
            # look called for: a race the API makes, not a re-send (the run looks again).
            continue
        broken.append(f"promise 1: refused {v.route} {v.kind} {v.id}: {v.code}: {v.what}")
    touched_by: Counter[tuple[Kind, str]] = Counter()
    for plan in sc.runs:
        for k, i, _ in plan.targets:
            touched_by[(k, i)] += 1
    for other in sim.items():
        touched = other.target_status in ("STOPPED", "DELETED") or other.deleting
        if other.id.startswith("other-") and (touched or other.status in _STOPPED_OR_STOPPING):
            broken.append(
                f"promise 2: {other.id}, named by no run, was changed: {other.status} targetStatus {other.target_status}"
            )
    neighbours = sum(1 for v in sim.items() if v.id.startswith("other-"))
    if neighbours != NEIGHBOURS:
        broken.append(f"promise 2: {NEIGHBOURS - neighbours} items named by no run were deleted")
    for o in p.runs:
        name = o.plan.name
        if o.error is not None:
            broken.append(
                f"promise 3: {name} ended with {o.error.strip().splitlines()[-1]}\n{o.error}"
            )
            continue
        final = o.final
        assert final is not None
        phase = {c.type for c in final.conditions if c.status == "True"}
        if o.stalled is not None:
            broken.append(f"promise 3: {name} stalled: {o.stalled}")
            continue
        if not phase & TERMINAL:
            broken.append(f"promise 3: {name} ended neither Complete nor Failed: {sorted(phase)}")
            continue
        broken += [f"promise 2: {name}: {b}" for b in _report_vs_truth(sc, sim, o, touched_by)]
        if not sc.fleet:  # a fleet's shared requests carry several runs' items
            broken += [f"promise 2: {name}: {b}" for b in _restore_vs_truth(sc, p, o)]
    return broken


def _report_vs_truth(
    sc: Scenario, sim: Simulator, o: RunOutcome, touched_by: Counter[tuple[Kind, str]]
) -> list[str]:
    final = o.final
    assert final is not None
    wrong: list[str] = []
    if final.total != final.succeeded + final.failed:
        wrong.append(f"total {final.total} != succeeded {final.succeeded} + failed {final.failed}")
    failures = {f.id: f for f in final.failures}
    others = sc.meddled
    for kind, item_id, goal in o.plan.targets:
        item = _item(sc, kind, item_id)
        now = sim.state_of(kind, item_id)
        shared = touched_by[(kind, item_id)] > 1 or (kind, item_id) in others
        failure = failures.get(item_id)
        if failure is None:
            if goal is DELETED and now is not None:
                wrong.append(f"{kind} {item_id}: reported deleted, but it is {now}")
            if goal is STOPPED and now in (Status.PENDING, Status.RUNNING, Status.STOPPING):
                wrong.append(f"{kind} {item_id}: reported stopped, but it is {now}")
            if goal is STOPPED and now is Status.UNKNOWN and not shared:
                wrong.append(f"{kind} {item_id}: reported stopped, but it is UNKNOWN")
            continue
        reason = failure.reason
        if reason == "NotFound":
            if item.status is not None and not shared:
                wrong.append(f"{kind} {item_id}: reported NotFound, but it exists ({now})")
        elif reason == "CannotStopUnknown":
            if not item.held and not shared:
                wrong.append(f"{kind} {item_id}: CannotStopUnknown, but it was never stuck UNKNOWN")
        elif not shared:
            wrong.append(f"{kind} {item_id}: failed {reason}: {failure.message}")
    if not others:
        # Without anybody else deleting: NotFound outcomes are exactly the absent DELETED targets.
        # A kind none of whose targets exists fails them all NotFound (NoTargetsFound).
        found = {k for k, i, _ in o.plan.targets if _item(sc, k, i).status is not None}
        absent = sum(
            1
            for k, i, g in o.plan.targets
            if g is DELETED and _item(sc, k, i).status is None and k in found
        )
        shared_ids = [(k, i) for k, i, _ in o.plan.targets if touched_by[(k, i)] > 1]
        reported = final.outcomes.get("NotFound", 0)
        if not shared_ids and reported != absent:
            wrong.append(f"{reported} targets reported NotFound (deleted), {absent} never existed")
    return wrong


def _restore_vs_truth(sc: Scenario, p: Play, o: RunOutcome) -> list[str]:
    """Every item this run wrote to has a restore point naming its configuration, unless it
    was gone when read (never seeded, or removed by someone else)."""
    final = o.final
    assert final is not None
    spec = _spec(o.plan)
    points = {
        (q.kind, q.id): q
        for q in (
            decode_points(final.restore.points, spec.targets) if final.restore else {}
        ).values()
    }
    wrong: list[str] = []
    for kind, item_id in sorted(p.written.get(o.plan.name, ())):
        point = points.get((kind, item_id))
        if point is None:
            wrong.append(f"{kind} {item_id}: written to, but has no restore point")
        elif point.configuration_id is None:
            if _item(sc, kind, item_id).status is not None and (kind, item_id) not in sc.meddled:
                wrong.append(f"{kind} {item_id}: restore point without a configuration")
        elif point.configuration_id != configuration_of(item_id):
            wrong.append(f"{kind} {item_id}: restore point names {point.configuration_id}")
    return wrong


# --- running seeds ---


@dataclass
class SeedResult:
    seed: int
    broken: list[str]
    description: str
    simulated_seconds: float
    requests: int
    #: Every write with its simulated time and fault: equal on every replay of the seed.
    trace: list[str]

    @property
    def ok(self) -> bool:
        return not self.broken


def explore(seed: int) -> SeedResult:
    sc = Scenario.from_seed(seed)
    loop_time: list[float] = []

    async def main() -> Play:
        p = await play(sc)
        loop_time.append(asyncio.get_running_loop().time())
        return p

    p = vtime.run(main())
    return SeedResult(
        seed, judge(p), sc.describe(), loop_time[0], sum(p.requests.values()), p.trace
    )


def replay_hint(seed: int) -> str:
    return f"replay: python -m tests.simulation.explorer --seed {seed} -v"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds to explore")
    parser.add_argument("--start", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--keep-going", action="store_true", help="do not stop at the first failure"
    )
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    started = time.perf_counter()
    failed: list[SeedResult] = []
    count = 0
    requests = 0
    for seed in seeds:
        r = explore(seed)
        count += 1
        requests += r.requests
        if args.verbose:
            print(r.description)
            print("\n".join(r.trace))
        if not r.ok:
            failed.append(r)
            print(f"FAIL {r.description}", file=sys.stderr)
            for b in r.broken:
                print(f"  {b}", file=sys.stderr)
            print(f"  {replay_hint(seed)}", file=sys.stderr)
            if not args.keep_going:
                break
    wall = time.perf_counter() - started
    print(
        f"explored {count} seeds ({requests} AI API requests) in {wall:.1f} s: "
        f"{count - len(failed)} kept every promise, {len(failed)} broke one"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
