"""What the benchmark scripts share about the simulator and the processes they measure.

The simulator's timings and faults, how its targets and bystanders are seeded, how its route
counters are folded into kinds of calls, and how a child process's CPU and memory are read.
Imported by ``run.py``, ``fleet.py`` and ``operator_vs_apply.py``; imports none of them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Faults, SimulatorThread, Timings
from bulkterm.simulator.manifests import simulated_status
from bulkterm.spec import Target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import RESOURCE_GROUP  # beside this file: ``bench/`` is not a package

TOKEN_ROUTE = "POST /oauth/token"
#: What a target that must be STOPPED may end as: not running (DEAD and COMPLETED cannot be
#: stopped, the engine's ``AlreadyDead``/``AlreadyCompleted``).
NOT_RUNNING = frozenset({Status.STOPPED, Status.DEAD, Status.COMPLETED})
#: The issue's simulator: a stop takes 2.5 s, a deletion 2 s.
STOP_SECONDS = 2.5
DELETE_SECONDS = 2.0


# --- the simulator -------------------------------------------------------------------------


def bench_timings(scale: float = 1.0) -> Timings:
    """Fast lifecycles that still leave every status observable.

    UNKNOWN resolves after 1 s (a target that must be STOPPED waits for it, then is stopped);
    executions never complete on their own (long training runs), so the seeded mix is what
    every client sees, however slow it is. Stop and deletion take well under a second.
    """
    return Timings(
        unknown_seconds=1.0 * scale,
        pending_seconds=2.0 * scale,
        execution_run_seconds=None,
        stop_delay_seconds=0.05 * scale,
        stopping_seconds=0.3 * scale,
        deletion_seconds=0.5 * scale,
    )


def fleet_timings(
    scale: float = 1.0, stop: float = STOP_SECONDS, deletion: float = DELETE_SECONDS
) -> Timings:
    """:func:`bench_timings` with the issue's slow stop (2.5 s) and deletion (2 s)."""
    return replace(
        bench_timings(scale), stopping_seconds=stop * scale, deletion_seconds=deletion * scale
    )


def parse_faults(text: str | None, latency_ms: float) -> Faults:
    """``"429=0.05,503=0.02,retry_after=1"`` → :class:`Faults` (plus the fixed latency)."""
    settings: dict[str, Any] = {"latency_ms": latency_ms}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, value = part.partition("=")
        if not value:
            raise argparse.ArgumentTypeError(f"--faults: {part!r} is not NAME=VALUE")
        if name == "429":
            settings["throttle_rate"] = float(value)
        elif name.isdigit() and 500 <= int(name) <= 599:
            settings["error_rate"] = float(value)
            settings["error_status"] = int(name)
        elif name == "drop":
            settings["drop_rate"] = float(value)
        elif name == "retry_after":
            settings["retry_after"] = int(value)
        else:
            raise argparse.ArgumentTypeError(f"--faults: unknown fault {name!r}")
    errors = any(k in settings for k in ("throttle_rate", "error_rate", "drop_rate"))
    # Latency on the token endpoint too (XSUAA is a network hop), unless error faults are on:
    # those stay off the token endpoint, since SAP's SDK 2.6.1 cannot retry a token request.
    settings["include_token_endpoint"] = not errors
    return Faults(**settings)


def bystander_ids(n: int, seed: int) -> list[str]:
    return [f"other-{seed}-{i:06d}" for i in range(n)]


def seed_simulator(
    sim: SimulatorThread, targets: Iterable[Target], bystanders: Sequence[str]
) -> Counter[str]:
    """Seed every target in its :func:`simulated_status` (``None``: missing id), plus bystanders.

    UNKNOWN items that must be DELETED are held in UNKNOWN (stuck in sync: the reason one
    deletes them), so that every client sees them UNKNOWN however long its first sweep takes.
    Bystanders are RUNNING deployments in the same resource group that nobody may touch.
    Returns the seeded mix (``"Deployment/RUNNING"``, ``"Execution/missing"``: count).
    """
    mix: Counter[str] = Counter()
    for target in targets:
        status = simulated_status(target)
        mix[f"{target.kind.value}/{status.value if status else 'missing'}"] += 1
        if status is None:
            continue
        hold = status is Status.UNKNOWN and target.target_status is TargetStatus.DELETED
        sim.add_item(target.kind, target.id, status, resource_group=RESOURCE_GROUP, hold=hold)
    for item_id in bystanders:
        sim.add_item(Kind.DEPLOYMENT, item_id, Status.RUNNING, resource_group=RESOURCE_GROUP)
    return mix


# --- what the simulator counted --------------------------------------------------------------


def categorize(requests: dict[str, int]) -> dict[str, int]:
    """Route counters (``"PATCH /lm/deployments"``) folded into what they mean for a client."""
    out = Counter(
        {
            "token": 0,
            "meta": 0,
            "list": 0,
            "count": 0,
            "get_one": 0,
            "bulk_patch": 0,
            "single_patch": 0,
            "single_delete": 0,
            "other": 0,
        }
    )
    for route, n in requests.items():
        method, _, path = route.partition(" ")
        if route == TOKEN_ROUTE:
            out["token"] += n
        elif path == "/lm/meta":
            out["meta"] += n
        elif path.endswith("/$count"):
            out["count"] += n
        elif path in ("/lm/deployments", "/lm/executions"):
            out["list" if method == "GET" else "bulk_patch" if method == "PATCH" else "other"] += n
        elif path.endswith("/{id}"):
            key = {"GET": "get_one", "PATCH": "single_patch", "DELETE": "single_delete"}
            out[key.get(method, "other")] += n
        else:
            out["other"] += n
    return dict(out)


def api_calls(requests: dict[str, int]) -> int:
    """AI API calls: every counted request but the token requests."""
    return sum(n for route, n in requests.items() if route != TOKEN_ROUTE)


# --- processes -------------------------------------------------------------------------------


def wait_child(proc: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """(exit code, peak RSS MiB, CPU s) of a child, from ``wait4``'s rusage."""
    _, wait_status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a live process, MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]
