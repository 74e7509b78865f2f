"""A fault schedule, drawn from one seed: the world, the runs, and what goes wrong when.

Everything random about a schedule is drawn here, up front or from streams named for what
they decide, so that one seed replays exactly: the same items, the same runs, the same
faults on the same requests, the same restarts at the same simulated moments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from tests.simulation.bridge import WireFault

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
STOPPED, DELETED = TargetStatus.STOPPED, TargetStatus.DELETED

_STATUSES = {
    D: [
        Status.UNKNOWN,
        Status.PENDING,
        Status.RUNNING,
        Status.STOPPING,
        Status.STOPPED,
        Status.DEAD,
    ],
    E: [
        Status.UNKNOWN,
        Status.PENDING,
        Status.RUNNING,
        Status.STOPPING,
        Status.STOPPED,
        Status.DEAD,
        Status.COMPLETED,
    ],
}


@dataclass(frozen=True)
class Item:
    """One id the runs may name; ``status`` ``None``: it does not exist."""

    kind: Kind
    id: str
    status: Status | None
    #: Stuck: the status never changes by itself (an UNKNOWN that never resolves).
    held: bool = False


@dataclass(frozen=True)
class RunPlan:
    """One BulkTermination: its targets, and when its process is killed and restarted."""

    name: str
    targets: tuple[tuple[Kind, str, TargetStatus], ...]
    #: Simulated seconds after the start at which the run's process dies (it restarts from
    #: its last durably written record a moment later).
    kills: tuple[float, ...] = ()
    #: Simulated second at which the run starts.
    starts_at: float = 0.0


@dataclass(frozen=True)
class Meddling:
    """Someone else changes an item underneath the runs (a human in AI Launchpad)."""

    at: float
    kind: Kind
    id: str
    action: TargetStatus


@dataclass(frozen=True)
class PageCap:
    """How the list endpoint limits its pages."""

    #: ``"413"``: refuses a larger ``$top`` out loud; ``"silent"``: serves fewer rows.
    how: str
    rows: int
    #: ``"total"`` or ``"page"``: what a page's ``count`` counts.
    count: str = "total"


@dataclass(frozen=True)
class Scenario:
    seed: int
    items: tuple[Item, ...]
    runs: tuple[RunPlan, ...]
    bulk_updates: bool
    page_cap: PageCap | None
    #: Chance that a request (other than the token's) meets a fault, and which ones.
    fault_rate: float
    faults: tuple[WireFault, ...]
    #: Chance that a status write (the durable record) fails.
    write_failure_rate: float
    meddling: tuple[Meddling, ...] = field(default=())
    #: The runs share reads and bulk requests as the operator's runs of one tenant do.
    fleet: bool = True

    @property
    def meddled(self) -> frozenset[tuple[Kind, str]]:
        return frozenset((m.kind, m.id) for m in self.meddling)

    def describe(self) -> str:
        cap = (
            "none"
            if self.page_cap is None
            else f"{self.page_cap.how} {self.page_cap.rows} rows, count={self.page_cap.count}"
        )
        runs = "; ".join(
            f"{r.name}: {len(r.targets)} targets from {r.starts_at:.1f}s, kills at "
            f"{[round(k, 1) for k in r.kills]}"
            for r in self.runs
        )
        return (
            f"seed {self.seed}: {len(self.items)} items, bulk={self.bulk_updates}, page cap "
            f"{cap}, faults {self.fault_rate:.2f} of {[f.value for f in self.faults]}, status "
            f"write failures {self.write_failure_rate:.2f}, meddling {len(self.meddling)}, "
            f"fleet={self.fleet}; {runs}"
        )

    @classmethod
    def from_seed(cls, seed: int) -> Scenario:
        rng = random.Random(f"scenario:{seed}")
        n = rng.randint(3, 24)
        items: list[Item] = []
        for k in range(n):
            kind = rng.choice([D, E])
            status: Status | None = rng.choice([*_STATUSES[kind], None])
            held = status is Status.UNKNOWN and rng.random() < 0.3
            items.append(
                Item(kind, f"{kind.value[:3].lower()}-{seed % 1000:03d}-{k:03d}", status, held)
            )
        run_count = rng.choice([1, 1, 2, 2, 3])
        runs: list[RunPlan] = []
        for r in range(run_count):
            chosen = [it for it in items if rng.random() < (1.0 if run_count == 1 else 0.7)]
            if not chosen:
                chosen = [rng.choice(items)]
            targets = tuple((it.kind, it.id, rng.choice([STOPPED, DELETED])) for it in chosen)
            kills = tuple(
                sorted(rng.uniform(0.0, 40.0) for _ in range(rng.choice([0, 0, 1, 1, 2, 3])))
            )
            starts_at = 0.0 if r == 0 else rng.choice([0.0, 0.0, rng.uniform(0.0, 15.0)])
            runs.append(RunPlan(f"run-{r}", targets, kills, starts_at))
        page_cap: PageCap | None = None
        roll = rng.random()
        if roll < 0.15:
            page_cap = PageCap("413", rng.randint(2, 8))
        elif roll < 0.35:
            page_cap = PageCap("silent", rng.randint(2, 8), rng.choice(["total", "page"]))
        vocabulary = list(WireFault)
        faults = tuple(rng.sample(vocabulary, rng.randint(1, len(vocabulary))))
        fault_rate = rng.choice([0.0, 0.05, 0.1, 0.2, 0.3])
        write_failure_rate = rng.choice([0.0, 0.0, 0.1, 0.3])
        meddling: list[Meddling] = []
        if rng.random() < 0.25:
            for _ in range(rng.randint(1, 3)):
                it = rng.choice(items)
                if it.status is not None:
                    meddling.append(
                        Meddling(
                            rng.uniform(0.0, 30.0), it.kind, it.id, rng.choice([STOPPED, DELETED])
                        )
                    )
        return cls(
            seed=seed,
            items=tuple(items),
            runs=tuple(runs),
            bulk_updates=rng.random() < 0.7,
            page_cap=page_cap,
            fault_rate=fault_rate,
            faults=faults,
            write_failure_rate=write_failure_rate,
            meddling=tuple(meddling),
            fleet=run_count > 1 or rng.random() < 0.5,
        )
