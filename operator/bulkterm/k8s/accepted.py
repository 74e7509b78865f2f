"""What the AI API accepted, or may have, for the runs of one tenant and resource group.

The runs share their reads and their writes (:mod:`bulkterm.k8s.fleet`); this is the memory
that keeps one run from acting blind on an item another run just wrote to. The reasoning and
the alternatives are in ``docs/adr/0002-fleet-shares-what-was-accepted.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.models import ItemState, Kind, Status, TargetStatus

#: How long another run's accepted action counts as under way for a run that has not seen it
#: (the engine's default resend timeouts: a lost action is sent again after them).
UNDER_WAY_SECONDS = {TargetStatus.STOPPED: 60.0, TargetStatus.DELETED: 600.0}


@dataclass(frozen=True)
class _Seen:
    action: TargetStatus
    at: float
    #: Only possibly accepted: the answer never came (500, 502, 504, a timeout, a lost answer).
    maybe: bool = False
    #: The run whose write it was (``None``: accepted, whoever asked).
    writer: int | None = None


class AcceptedActions:
    """What the AI API accepted, or may have, for the runs of one tenant and resource group.

    A run decides from its own last look; another run's STOP or DELETE accepted since then is
    invisible to it (``$select=status`` hides ``targetStatus``), so it would send the same
    action again and be refused ("being deleted"). Reads handed to a run show such actions as
    the API would with ``targetStatus``, for as long as the action may still take effect
    (:data:`UNDER_WAY_SECONDS`); after that a run that finds no effect may send it again.

    An accepted action is also the answer to a later submission of it, which is then not
    sent. A write whose outcome is unknown may have been acted on: reads show it under way
    too, and another run's submission of that item is held back (:meth:`held_for`) until the
    run that wrote it has read the item whole (:meth:`learn`), which settles it either way.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[tuple[Kind, str], _Seen] = {}

    def note(
        self,
        kind: Kind,
        item_id: str,
        action: TargetStatus,
        *,
        maybe: bool = False,
        writer: int | None = None,
    ) -> None:
        current = self._entry(kind, item_id)
        if maybe and current is not None and not current.maybe:
            if current.action in (action, TargetStatus.DELETED):
                return  # known accepted: a later unknown outcome takes nothing from that
        self._seen[(kind, item_id)] = _Seen(action, self._clock(), maybe, writer if maybe else None)

    def learn(self, kind: Kind, state: ItemState) -> None:
        """A whole read (``targetStatus`` included) settles what is under way for the item."""
        if state.target_status == TargetStatus.DELETED.value:
            self.note(kind, state.id, TargetStatus.DELETED)
        elif state.target_status == TargetStatus.STOPPED.value or state.status in (
            Status.STOPPING,
            Status.STOPPED,
        ):
            self.note(kind, state.id, TargetStatus.STOPPED)  # under way, or done
        else:
            current = self._seen.get((kind, state.id))
            if current is not None and current.maybe:
                del self._seen[(kind, state.id)]  # it never happened: anyone may send

    def _entry(self, kind: Kind, item_id: str) -> _Seen | None:
        """The item's entry while its action may still be taking effect. Older ones are kept
        for reads that began before them (:meth:`overlay`)."""
        entry = self._seen.get((kind, item_id))
        if entry is not None and self._clock() - entry.at > UNDER_WAY_SECONDS[entry.action]:
            return None
        return entry

    def under_way(self, kind: Kind, item_id: str) -> TargetStatus | None:
        """The action accepted (certainly) and maybe still taking effect."""
        entry = self._entry(kind, item_id)
        return entry.action if entry is not None and not entry.maybe else None

    def covers(self, kind: Kind, item_id: str, action: TargetStatus) -> bool:
        """Whether ``action`` on the item is already under way (a DELETE answers a STOP too)."""
        under_way = self.under_way(kind, item_id)
        return under_way is action or under_way is TargetStatus.DELETED

    def held_for(self, kind: Kind, item_id: str, writer: int) -> TransientError | None:
        """Why ``writer`` may not write the item now: another run's write to it has an
        unknown outcome, not settled yet. Not acted on, so the run just looks again."""
        entry = self._entry(kind, item_id)
        if entry is None or not entry.maybe or entry.writer == writer:
            return None
        return TransientError(
            f"another run's {entry.action} of {kind.value.lower()} {item_id} has an unknown "
            "outcome; looking again before writing to it",
            not_executed=True,
        )

    def overlay(self, kind: Kind, state: ItemState, read_at: float) -> ItemState:
        """``state``, from a read begun at ``read_at``, as a full read would show it given the
        actions accepted meanwhile: those still taking effect, and any written after the read
        began (a slow walk of many pages can return long after another run's write)."""
        if state.target_status is not None:
            return state
        entry = self._seen.get((kind, state.id))
        if entry is None or (entry.at < read_at and self._entry(kind, state.id) is None):
            return state
        action = entry.action
        if action is TargetStatus.DELETED:
            return state.model_copy(update={"target_status": TargetStatus.DELETED.value})
        if action is TargetStatus.STOPPED and state.status in (Status.PENDING, Status.RUNNING):
            return state.model_copy(update={"target_status": TargetStatus.STOPPED.value})
        return state


def maybe_acted_on(error: BaseException) -> bool:
    """A failure after which the server may have acted: 500, 502, 504, a timeout, a lost answer."""
    return isinstance(error, TransientError) and not error.not_executed
