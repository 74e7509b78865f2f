"""Child process of the scale run: the engine alone, measured (``bench/run.py`` starts it).

Reads ``{"key", "targets", "executions_share", "seed", "tracemalloc"}`` as one JSON line on
stdin, answers ``ready``, waits for ``go`` (the parent seeds the simulator in between), drives
the targets with the engine against the simulator the parent runs, and prints what it
measured as JSON on stdout. Only the engine, its client and the spec are imported, so the
peak RSS is the engine's (plus the interpreter), not the simulator's.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import compact_json, engine_run, make_spec


def _current_rss_mib() -> float | None:
    """Resident set size now (Linux ``/proc``); ``ru_maxrss`` only gives the high-water mark."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    order = json.loads(sys.stdin.readline())
    spec = make_spec(order["targets"], order["executions_share"], order["seed"])
    # Handshake: the parent seeds the simulator only now, so lifecycles start with the run.
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("scale worker: expected 'go'")
    rss_before_mib = _current_rss_mib()
    if order["tracemalloc"]:
        tracemalloc.start()
    started = time.perf_counter()
    progress, calls = asyncio.run(engine_run(spec, order["key"]))
    wall = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
    tracemalloc.stop()
    status = progress.to_status()
    report = {
        "wall_seconds": wall,
        "failed": progress.failed,
        "succeeded": progress.succeeded,
        "outcomes": progress.outcomes,
        "client_calls": dict(sorted(calls.items())),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_run_mib": rss_before_mib,
        "tracemalloc_peak_mib": None if peak is None else peak / 2**20,
        "status_json_bytes": len(compact_json(status)),
        "status_keys": sorted(status),
        "completed_indexes": status.get("completedIndexes"),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
