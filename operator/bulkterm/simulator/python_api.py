"""The simulator's Python API: seeding, inspection and runtime control, the same for both
runners (:class:`~bulkterm.simulator.server.Simulator` in an event loop,
:class:`~bulkterm.simulator.server.SimulatorThread` beside synchronous code).

Every method only touches the lock-guarded :class:`~bulkterm.simulator.backend.Backend`, so
calling them from a test thread while the server thread serves requests is safe.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator.backend import Backend
from bulkterm.simulator.clock import Clock, SimClock
from bulkterm.simulator.config import Faults, SimulatorConfig, Timings
from bulkterm.simulator.recording import Violation
from bulkterm.simulator.schedules import DEFAULT_CRON, DEFAULT_PERIOD_SECONDS, ScheduleView
from bulkterm.simulator.store import ItemView


class SimulatorControls:
    """Seeding, inspection and runtime control, shared by both runners."""

    backend: Backend
    #: What every ``/_sim`` request must carry as ``Authorization: Bearer``; ``None``: open.
    control_token: str | None

    @property
    def url(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def config(self) -> SimulatorConfig:
        return self.backend.config

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    # -- items -------------------------------------------------------------------------

    def add_item(
        self,
        kind: Kind,
        item_id: str,
        status: Status,
        *,
        resource_group: str = "default",
        target_status: str | None = None,
        goes_dead: bool = False,
        hold: bool = False,
        configuration_id: str | None = None,
        execution_schedule_id: str | None = None,
        created_at: datetime | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
    ) -> None:
        """Seed one item in ``status`` (replaces an item with the same id in the group); the
        resource group exists from then on.

        ``goes_dead``: PENDING/RUNNING end in DEAD instead of RUNNING/COMPLETED. ``hold``: the
        status never changes (a stuck item); deletion still completes. ``created_at``
        back-dates the item (for age-based selection); default now. ``scenario_id`` and
        ``executable_id`` put its configuration (``configuration_id``, required with them)
        in that scenario, for selection by scenario or executable.
        """
        self.backend.add_item(
            kind,
            item_id,
            status,
            resource_group=resource_group,
            target_status=target_status,
            goes_dead=goes_dead,
            hold=hold,
            configuration_id=configuration_id,
            execution_schedule_id=execution_schedule_id,
            created_at=created_at,
            scenario_id=scenario_id,
            executable_id=executable_id,
        )

    def seed(
        self, deployments: int = 0, executions: int = 0, resource_group: str = "default"
    ) -> list[tuple[Kind, str, Status]]:
        """Create items with fresh ids in a mix of every status (reproducible with a seed)."""
        return self.backend.seed(deployments, executions, resource_group)

    def state_of(self, kind: Kind, item_id: str, resource_group: str = "default") -> Status | None:
        """The item's status now; ``None`` once it is gone (deleted, or never existed)."""
        view = self.backend.item(kind, item_id, resource_group)
        return None if view is None else view.status

    def item(self, kind: Kind, item_id: str, resource_group: str = "default") -> ItemView | None:
        """The whole item now (``deleting`` shows a deletion in progress); ``None`` if gone."""
        return self.backend.item(kind, item_id, resource_group)

    def items(self, kind: Kind | None = None, resource_group: str | None = None) -> list[ItemView]:
        return self.backend.items(kind, resource_group)

    def clear_items(self) -> None:
        """Forget every item and execution schedule (resource groups stay: they belong to the
        tenant, not to items)."""
        self.backend.clear_items()

    def plan_change(
        self,
        kind: Kind,
        item_id: str,
        after: float,
        status: Status | None,
        *,
        resource_group: str = "default",
    ) -> None:
        """Make an item take ``status`` by itself ``after`` seconds of the clock from now (it
        dies, completes, resolves), or vanish then (``None``: its TTL, someone else's DELETE).
        An accepted stop or delete cancels a planned status change, not a planned vanishing."""
        self.backend.plan_change(kind, item_id, after, status, resource_group=resource_group)

    def remove_item(self, kind: Kind, item_id: str, resource_group: str = "default") -> bool:
        """Make an item vanish now, as if someone else deleted it; ``False`` if there was none."""
        return self.backend.remove_item(kind, item_id, resource_group)

    # -- execution schedules -----------------------------------------------------------------

    def add_execution_schedule(
        self,
        schedule_id: str,
        *,
        configuration_id: str,
        resource_group: str = "default",
        status: ScheduleStatus = ScheduleStatus.ACTIVE,
        period_seconds: float = DEFAULT_PERIOD_SECONDS,
        cron: str = DEFAULT_CRON,
        name: str | None = None,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        created_at: datetime | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Seed one execution schedule (replaces one with the same id in the group).

        While ACTIVE it starts an execution of ``configuration_id`` (with its
        ``executionScheduleId``) every ``period_seconds`` of the simulator's clock, the first
        one period from now; ``cron`` is shown on the wire, not interpreted. ``scenario_id``
        and ``executable_id`` place the configuration as :meth:`add_item` does.
        """
        self.backend.add_schedule(
            schedule_id,
            configuration_id=configuration_id,
            resource_group=resource_group,
            status=status,
            period_seconds=period_seconds,
            cron=cron,
            name=name,
            scenario_id=scenario_id,
            executable_id=executable_id,
            created_at=created_at,
            start=start,
            end=end,
        )

    def execution_schedule(
        self, schedule_id: str, resource_group: str = "default"
    ) -> ScheduleView | None:
        """The schedule now (its runs so far started); ``None`` if deleted or never seeded."""
        return self.backend.execution_schedule(schedule_id, resource_group)

    def execution_schedules(self, resource_group: str | None = None) -> list[ScheduleView]:
        return self.backend.schedules(resource_group)

    # -- resource groups -------------------------------------------------------------------

    def add_resource_group(self, resource_group: str) -> None:
        """Make a resource group exist; requests naming a group that does not get 403."""
        self.backend.add_resource_group(resource_group)

    def resource_groups(self) -> list[str]:
        """Every existing resource group, sorted: ``default``, the config's, the seeded ones."""
        return self.backend.resource_groups()

    # -- counters and violations ---------------------------------------------------------

    @property
    def counters(self) -> Counter[str]:
        """A snapshot of requests per route key, e.g. ``counters["PATCH /lm/deployments"]``."""
        with self.backend.lock:
            return Counter(self.backend.recorder.requests)

    @property
    def responses(self) -> Counter[str]:
        """A snapshot of answers per route key and status, e.g. ``"GET /lm/meta 200"``."""
        with self.backend.lock:
            return Counter(self.backend.recorder.responses)

    @property
    def violations(self) -> list[Violation]:
        """A snapshot of the protocol violations recorded so far (empty for a correct client)."""
        with self.backend.lock:
            return list(self.backend.recorder.violations)

    def reset_counters(self) -> None:
        with self.backend.lock:
            self.backend.recorder.reset_counters()

    def clear_violations(self) -> None:
        with self.backend.lock:
            self.backend.recorder.clear_violations()

    # -- runtime settings ----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.backend.faults

    def set_faults(self, faults: Faults) -> None:
        self.backend.set_faults(faults)

    @property
    def timings(self) -> Timings:
        return self.backend.timings

    def set_timings(self, timings: Timings) -> None:
        self.backend.set_timings(timings)

    def set_bulk_updates(self, enabled: bool, kind: Kind | None = None) -> None:
        """Turn the ``bulkUpdates`` capability on/off for one kind or both."""
        self.backend.set_bulk_updates(enabled, kind)

    def issue_token(self) -> str:
        """A valid bearer token without the HTTP round trip (for raw-HTTP tests)."""
        with self.backend.lock:
            return self.backend.tokens.issue()

    def revoke_tokens(self) -> None:
        """Invalidate every issued token: the next call of each client gets a 401."""
        with self.backend.lock:
            self.backend.tokens.revoke_all()

    def advance(self, seconds: float) -> float:
        """Move a :class:`SimClock` forward; a real clock cannot be moved (``TypeError``)."""
        clock = self.backend.clock
        if not isinstance(clock, SimClock):
            raise TypeError("advance() needs the simulator to run on a SimClock")
        return clock.advance(seconds)

    # -- service key ---------------------------------------------------------------------

    def service_key(self) -> dict[str, Any]:
        """A secret-based AI Core service key pointing at this simulator."""
        base = self.url
        return {
            "clientid": self.config.client_id,
            "clientsecret": self.config.client_secret,
            "url": base,
            "identityzone": "sim",
            "serviceurls": {"AI_API_URL": base},
        }

    def write_service_key(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`service_key` as JSON, readable by the owner only (it holds a secret)."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.service_key(), handle, indent=2)
            handle.write("\n")
        os.chmod(target, 0o600)
        return target
