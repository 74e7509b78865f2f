"""The benchmark harness still runs: every variant ends with every target at its target
status and no protocol violation (the harness exits 1 otherwise). Numbers are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_every_variant_correctly() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--targets", "50", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report, "the benchmark printed no results"
