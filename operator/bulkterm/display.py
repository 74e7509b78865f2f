"""Live progress for ``bulkterm apply``: a rich bar on a terminal, one line per change otherwise.

Logs of CI jobs and pipelines are files, where a redrawn bar is noise; there every change of the
counters is one line, and an unchanged poll prints nothing.
"""

from __future__ import annotations

from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Counts(Protocol):
    total: int
    pending: int
    active: int
    succeeded: int
    failed: int


class ProgressView:
    """Shows the progress of one or more named runs."""

    def __init__(self, stream: IO[str], *, force_terminal: bool | None = None) -> None:
        self._console = Console(file=stream, force_terminal=force_terminal, highlight=False)
        self._stream = stream
        self._last: dict[str, tuple[int, int, int, int, int]] = {}
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if self._console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._bar.start()

    def update(self, name: str, counts: Counts, note: str = "") -> None:
        key = (counts.total, counts.pending, counts.active, counts.succeeded, counts.failed)
        if self._last.get(name) == key:
            return
        self._last[name] = key
        done = counts.succeeded + counts.failed
        detail = (
            f"succeeded {counts.succeeded}, failed {counts.failed}, "
            f"active {counts.active}, pending {counts.pending}"
        )
        if self._bar is not None:
            if name not in self._tasks:
                self._tasks[name] = self._bar.add_task(name, total=counts.total, detail=detail)
            self._bar.update(self._tasks[name], completed=done, detail=detail)
        else:
            suffix = f" ({note})" if note else ""
            print(
                f"{name}: {done}/{counts.total} done: {detail}{suffix}",
                file=self._stream,
                flush=True,
            )

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
