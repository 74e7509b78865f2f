"""Progress output: a live bar on a terminal, one line per change in logs."""

from __future__ import annotations

import io
from dataclasses import dataclass

from bulkterm.display import ProgressView


@dataclass
class Counts:
    total: int = 10
    pending: int = 10
    active: int = 0
    succeeded: int = 0
    failed: int = 0


def test_logs_get_one_line_per_change_and_nothing_for_an_unchanged_poll() -> None:
    out = io.StringIO()
    view = ProgressView(out, force_terminal=False)
    view.update("job", Counts())
    view.update("job", Counts())
    view.update("job", Counts(pending=4, active=6))
    view.update("job", Counts(pending=0, active=0, succeeded=9, failed=1))
    view.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "job: 0/10 done: succeeded 0, failed 0, active 0, pending 10",
        "job: 0/10 done: succeeded 0, failed 0, active 6, pending 4",
        "job: 10/10 done: succeeded 9, failed 1, active 0, pending 0",
    ]


def test_a_terminal_gets_a_progress_bar() -> None:
    out = io.StringIO()
    view = ProgressView(out, force_terminal=True)
    view.update("job", Counts(pending=0, succeeded=10))
    view.close()
    rendered = out.getvalue()
    assert "job" in rendered and "10/10" in rendered
    assert "done:" not in rendered  # the bar, not the log lines
