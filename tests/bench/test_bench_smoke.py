"""The benchmark harness still runs (``make bench`` at smoke size): every row of the fleet table
is there, every client put every target at its target status without touching a bystander
(the harness exits 1 otherwise), the plot and the JSON are written, and the engine used fewer
AI API calls than the SDK script. That last one is a property of the design (one list page per
kind per round against one GET per target per round), not a timing, so it cannot flake; no
time or ratio is asserted (performance numbers live in bench/, not in timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(450)  # ~1 min here; a real control plane and six clients, on a busy VM
def test_quick_fleet_benchmark_has_every_row_and_the_engine_calls_less(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--json", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    rows = {row["key"]: row for row in report["rows"]}
    assert sorted(rows) == sorted(
        [
            "engine-100",
            "sdk-100",
            "engine-300",
            "sdk-300",
            "operator-1x300",
            "operator-10x30",
        ]
    )
    for row in rows.values():
        assert row["skipped"] is None and row["ok"], row["key"]
        assert row["correct"] == row["targets"] and not row["bystanders_touched"], row["key"]
        assert row["wall_seconds"] > 0 and row["peak_rss_mib"] > 0, row["key"]
    for n in (100, 300):
        engine, sdk = rows[f"engine-{n}"], rows[f"sdk-{n}"]
        assert engine["api_calls"] < sdk["api_calls"], (engine["kinds"], sdk["kinds"])
        assert engine["kinds"]["get_one"] < sdk["kinds"]["get_one"]
    assert set(report["ratios"]) >= {
        "calls_sdk_over_engine_300",
        "time_sdk_over_engine_300",
        "calls_many_over_one_cr",
        "time_many_over_one_cr",
    }
    assert (tmp_path / "latest.json").is_file()
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fleet benchmark" in result.stderr  # the table (on stderr with --json)


@pytest.mark.timeout(320)
def test_classic_benchmark_still_runs() -> None:
    """``--classic``: the single-N comparison (engine bulk on/off, SDK script, scale run)."""
    result = subprocess.run(
        [
            sys.executable, "bench/run.py", "--classic", "--targets", "50", "--quick",
            "--json", "--skip", "operator",
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["name"] for r in json.loads(result.stdout)["results"]} == {
        "engine_bulk",
        "engine_single",
        "sdk",
        "engine_scale",
    }
