"""The CR's status: reading it (terminal? resumable?) and writing records to it.

A record (:class:`Progress`) becomes the status with ``observedGeneration`` on top and on each
condition, and is sent as a JSON merge patch of what changed since the last write that landed,
paced by the :class:`StatusThrottle`. Which record is written, and whether it must land before
the run goes on, the run decides (:mod:`bulkterm.engine.reporting`); this module only writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from bulkterm.engine import ConditionType, Progress, with_observed_generation
from bulkterm.engine.run import fresh_record
from bulkterm.k8s.throttle import CLOSE_RETRY_DELAYS, StatusThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrRef:
    """Which BulkTermination, and which generation of its spec, is being reconciled."""

    namespace: str
    name: str
    generation: int
    #: When the API server created it (the admission check of its Secret's use dates from then).
    created: datetime | None = None


class StatusWriteError(RuntimeError):
    """The API server kept refusing the final status write."""


class StatusPatcher(Protocol):
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int | None:
        """Returns the CR's ``metadata.generation`` as the API server answered (None: not
        known)."""
        ...


def _terminal_condition(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") in (ConditionType.COMPLETE, ConditionType.FAILED)
            and condition.get("status") == "True"
        ):
            return condition
    return None


def is_terminal(status: Mapping[str, Any] | None) -> bool:
    """Complete or Failed is True (the daemon's ``when`` filter and the TTL's trigger).

    Read from the raw status dict: kopf evaluates it on every watch event, where parsing the
    whole record into :class:`Progress` would be wasted work."""
    return _terminal_condition(status) is not None


#: Why a later spec change of a finished run is not acted on (the Event's message).
IGNORED = (
    "the spec changed to generation {generation} after the run finished and was ignored: "
    "a BulkTermination runs once; create a new one to run again"
)
#: The same for a change that reached the API server while the run was running (one the CRD
#: could not refuse): the run went on with the spec it started with, and its status (the
#: verdict, the indexes) is about that spec.
IGNORED_DURING_RUN = (
    "the spec changed to generation {generation} while the run was running and was ignored: "
    "the run went on with the spec of generation {ran}, which its status describes; a "
    "BulkTermination runs once; create a new one to run again"
)
#: How each note in a condition's message begins (a later note replaces an earlier one).
_NOTE_START = " (the spec changed to generation"


def ignored_message(generation: int, *, ran: int | None = None) -> str:
    """Why ``generation`` is not acted on: it came after the run finished, or (``ran``: the
    generation the run was started with) while the run was running."""
    if ran is None:
        return IGNORED.format(generation=generation)
    return IGNORED_DURING_RUN.format(generation=generation, ran=ran)


def unacknowledged(status: Mapping[str, Any] | None, generation: int) -> bool:
    """A finished run whose spec changed afterwards (a change the CRD could not refuse, e.g.
    under an older CRD): its ``observedGeneration`` lags behind, and kstatus would call it
    InProgress for ever."""
    if not is_terminal(status) or status is None:
        return False
    observed = status.get("observedGeneration")
    return isinstance(observed, int) and observed != generation


def acknowledgement(
    status: Mapping[str, Any], generation: int, *, ran: int | None = None
) -> dict[str, Any]:
    """The status patch that acknowledges ``generation`` on a finished run: the conditions
    keep their status, reason and transition time (terminal conditions never flip back);
    ``observedGeneration`` moves, and each message says that the change was ignored, and
    when it came (see :func:`ignored_message`)."""
    note = " (" + ignored_message(generation, ran=ran) + ")"
    conditions = []
    for raw in status.get("conditions") or ():
        condition = dict(raw)
        message = str(condition.get("message", "")).split(_NOTE_START)[0]
        condition["message"] = message + note
        condition["observedGeneration"] = generation
        conditions.append(condition)
    return {"observedGeneration": generation, "conditions": conditions}


def finished_at(status: Mapping[str, Any] | None) -> datetime | None:
    """When the run became terminal: the terminal condition's ``lastTransitionTime``."""
    condition = _terminal_condition(status)
    if condition is None:
        return None
    try:
        return datetime.fromisoformat(str(condition["lastTransitionTime"]))
    except (KeyError, TypeError, ValueError):
        return None


def restore(ref: CrRef, status: Mapping[str, Any], total: int) -> Progress:
    """The saved record (resume after a restart), or a fresh one for ``total`` targets."""
    if status.get("conditions"):
        try:
            record = Progress.model_validate(dict(status))
            if record.total == total:
                return record
        except ValidationError:
            log.warning(
                "%s/%s: status unreadable; starting from fresh observations",
                ref.namespace,
                ref.name,
            )
    return fresh_record(total)


class StatusWriter:
    """Writes the records of one CR to its ``/status``."""

    def __init__(
        self,
        kube: StatusPatcher,
        ref: CrRef,
        current: Mapping[str, Any],
        *,
        interval: float,
        run_spec_hash: str | None = None,
        suspend_only: Callable[[], int | None] | None = None,
    ) -> None:
        """``run_spec_hash`` is written with every status (``runSpecHash``), so that a later
        run can tell a change of ``spec.suspend`` from one of the spec it acts on;
        ``suspend_only`` gives the newest generation when it differs from the one the run
        started with only in ``spec.suspend`` (None otherwise): that generation is the one
        the run now acts on, so its status observes it."""
        self._kube = kube
        self._ref = ref
        self._run_spec_hash = run_spec_hash
        self._suspend_only = suspend_only
        self._written_keys: set[str] = set(current)
        #: The status as the last write left it on the server (empty: nothing written yet, so
        #: the first write sends every key).
        self._landed: dict[str, Any] = {}
        self._throttle = StatusThrottle(self._write, interval)
        #: The newest ``metadata.generation`` the API server's answers to these writes showed.
        #: Above ``ref.generation``: the spec changed while the run was running (a change the
        #: CRD could not refuse); the run goes on with the spec it started with.
        self.newest_generation = ref.generation

    async def offer(self, record: Progress, *, force: bool = False, urgent: bool = False) -> bool:
        """Offer ``record``; returns whether it is on the server (see ``StatusThrottle``).

        Only a forced offer waits for its write: the others are written in the background
        (at once when ``urgent``), so a run never waits for the API server to store a record
        that need not land before it goes on."""
        self._adopt_suspend_change()
        status = with_observed_generation(record, self._ref.generation).to_status()
        if self._run_spec_hash is not None:
            status["runSpecHash"] = self._run_spec_hash
        return await self._throttle.offer(
            self._acknowledged(status), force=force, wait=force, urgent=urgent
        )

    def _adopt_suspend_change(self) -> None:
        """A newer generation that only suspended or resumed the run is the one it acts on."""
        newer = self._suspend_only() if self._suspend_only is not None else None
        if newer is not None and newer > self._ref.generation:
            self._ref = replace(self._ref, generation=newer)
            self.newest_generation = max(self.newest_generation, newer)

    def _acknowledged(self, status: dict[str, Any]) -> dict[str, Any]:
        """A terminal ``status`` written after the API server has shown a newer generation
        acknowledges it in the same write, as a change *during* the run: no status ever says
        "finished" for a spec the server has at a newer generation, so nothing later (the
        ``acknowledge`` handler) can take that change for one after the end."""
        if self.newest_generation <= self._ref.generation or not is_terminal(status):
            return status
        ran = self._ref.generation
        return {**status, **acknowledgement(status, self.newest_generation, ran=ran)}

    async def finish(self, record: Progress) -> bool:
        """The terminal write of ``record`` (forced); whether it landed. A spec change during
        the run that only this write's answer shows still came before the end was on the
        server: one more write acknowledges it (see :meth:`_acknowledged`)."""
        landed = await self.offer(record, force=True)
        written = self._landed.get("observedGeneration")
        if landed and isinstance(written, int) and self.newest_generation > written:
            landed = await self.offer(record, force=True)
        return landed

    @property
    def changed_during_run(self) -> int | None:
        """The generation of a spec change the API server showed during the run (one the CRD
        could not refuse), None if there was none."""
        return self.newest_generation if self.newest_generation > self._ref.generation else None

    def abandon(self) -> None:
        """Write nothing more: another operator has taken the run over and writes its status."""
        self._throttle.gone = True

    @property
    def gone(self) -> bool:
        """The API server answered a write with 404: the BulkTermination was deleted."""
        return self._throttle.gone

    async def close(
        self,
        retry_delays: tuple[float, ...] = CLOSE_RETRY_DELAYS,
        *,
        stop: asyncio.Event | None = None,
    ) -> bool:
        """Write what is held back and stop writing; False if the last status never landed
        (retried until ``stop`` is set)."""
        return await self._throttle.close(retry_delays, stop=stop)

    async def _write(self, status: dict[str, Any]) -> None:
        # Merge patch: only the keys that changed since the last write landed (a key left out
        # keeps its value, so a large, unchanging one such as ``selection`` is sent once), and
        # a key that disappeared as null, or the old value would stay.
        patch = {k: v for k, v in status.items() if k not in self._landed or self._landed[k] != v}
        for gone in self._written_keys - status.keys():
            patch[gone] = None
        if patch:
            answered = await self._kube.patch_status(self._ref.namespace, self._ref.name, patch)
            if isinstance(answered, int) and answered > self.newest_generation:
                self.newest_generation = answered
        self._written_keys = set(status)
        self._landed = dict(status)
