"""The status writer: one comparison, with what the last write left on the server."""

from __future__ import annotations

from typing import Any

from bulkterm.engine import Progress
from bulkterm.k8s.status import CrRef, StatusWriter


class Patches:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int:
        self.sent.append(status)
        return 1


def writer(kube: Patches) -> StatusWriter:
    return StatusWriter(kube, CrRef("ns", "cr", 1), {}, interval=60.0)


async def test_an_unchanged_status_is_never_sent_again() -> None:
    kube = Patches()
    status = writer(kube)
    record = Progress(total=3, pending=3, progress="0/3")
    assert await status.offer(record, force=True)
    assert await status.offer(record, force=True)
    assert len(kube.sent) == 1


async def test_a_write_sends_only_what_changed_and_nulls_what_went() -> None:
    kube = Patches()
    status = writer(kube)
    await status.offer(Progress(total=3, pending=3, progress="0/3", seen_indexes="0"), force=True)
    await status.offer(Progress(total=3, pending=2, succeeded=1, progress="1/3"), force=True)
    assert kube.sent[1] == {"pending": 2, "succeeded": 1, "progress": "1/3", "seenIndexes": None}
