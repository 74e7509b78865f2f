"""The simulated AI API without HTTP: one endpoint's state and operations, behind one lock.

:class:`Backend` composes the parts, each owning its state:

* :class:`~bulkterm.simulator.store.ItemStore` — deployments and executions, and their
  lifecycles (:mod:`~bulkterm.simulator.lifecycle`);
* :class:`~bulkterm.simulator.operations.ItemOperations` — the requests on items, judged by
  :mod:`~bulkterm.simulator.rules`;
* :class:`~bulkterm.simulator.schedule_book.ScheduleBook` — execution schedules, which start
  executions into the store;
* :class:`~bulkterm.simulator.configurations.ConfigurationBook` — the configurations in use;
* :class:`~bulkterm.simulator.meta.Meta` — ``/lm/meta`` and the bulk PATCH it allows;
* :class:`~bulkterm.simulator.faults.FaultInjector` — the faults in force;
* the tenant's resource groups, its tokens and the record of what clients did.

The parts are not thread-safe; every public method here takes the one lock, so the aiohttp
handlers (event-loop thread) and a test calling :meth:`Backend.add_item` from another thread
never see a half-applied change. Nothing here awaits; HTTP concerns (headers, bodies, request
faults) live in :mod:`bulkterm.simulator.app`.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable
from datetime import datetime

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status, TargetStatus
from bulkterm.simulator.auth import TokenIssuer
from bulkterm.simulator.clock import Clock, Timebase
from bulkterm.simulator.config import DEFAULT_RESOURCE_GROUP, Faults, SimulatorConfig, Timings
from bulkterm.simulator.configurations import ConfigurationBook
from bulkterm.simulator.faults import FaultInjector
from bulkterm.simulator.meta import API_VERSION, Meta
from bulkterm.simulator.operations import ItemOperations
from bulkterm.simulator.queries import (
    ConfigurationQuery,
    Filters,
    ListQuery,
    ScheduleFilters,
    ScheduleListQuery,
)
from bulkterm.simulator.recording import Recorder, RequestContext, ViolationSpec
from bulkterm.simulator.schedule_book import ScheduleBook
from bulkterm.simulator.schedules import DEFAULT_CRON, DEFAULT_PERIOD_SECONDS, ScheduleView
from bulkterm.simulator.store import ItemStore, ItemView, check_group
from bulkterm.simulator.validation import Creation, Modification, ScheduleModification
from bulkterm.simulator.wire import JSON, ApiFailure

__all__ = ["API_VERSION", "Backend", "ItemView", "RequestContext"]


def _rng(seed: int | None, stream: str) -> random.Random:
    # Separate streams: faults drawn per request must not shift the ids of seeded items.
    return random.Random(None if seed is None else f"{seed}:{stream}")


class Backend:
    """State and operations of one simulated AI API endpoint (all resource groups).

    ``clock`` drives every lifecycle (default ``time.monotonic``); ``wall_origin`` is the
    epoch time its current reading stands for on the wire (default now).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        clock: Clock | None = None,
        *,
        wall_origin: float | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.time = Timebase(clock, wall_origin)
        self.clock: Clock = self.time.clock
        self.recorder = Recorder()
        self.tokens = TokenIssuer(
            config.client_id, config.client_secret, config.token_expires_in, self.clock, self.wall
        )
        self.injector = FaultInjector(config.faults, _rng(config.seed, "faults"))
        self.capabilities = Meta(config)
        self.configuration_book = ConfigurationBook(self.time)
        self.store = ItemStore(
            self.time, config.timings, self.configuration_book, _rng(config.seed, "data")
        )
        self.schedule_book = ScheduleBook(self.time, config, self.store, self.configuration_book)
        self.store.before_executions = self.schedule_book.run_due
        self.operations = ItemOperations(self.time, config, self.store, self.injector, self.record)
        #: The tenant's resource groups: any other is answered 403 (they are never forgotten).
        self._groups: set[str] = {
            DEFAULT_RESOURCE_GROUP,
            config.initial_resource_group,
            *config.resource_groups,
        }
        self._request_ids = itertools.count(1)

    # -- time, ids and settings -------------------------------------------------------------

    def now(self) -> float:
        return self.time.now()

    def wall(self, at: float) -> float:
        """Wall-clock epoch seconds of clock time ``at`` (timestamps on the wire)."""
        return self.time.wall(at)

    def request_id(self) -> str:
        with self.lock:
            return f"sim-{next(self._request_ids):012d}"

    @property
    def timings(self) -> Timings:
        return self.store.timings

    def set_timings(self, timings: Timings) -> None:
        """New durations apply to every phase from now on, counted from when it began."""
        with self.lock:
            self.schedule_book.run_all_due()  # runs owed so far start under the old timings
            self.store.set_timings(timings)

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.injector.faults = faults

    @property
    def bulk_updates(self) -> dict[Kind, bool]:
        """The ``bulkUpdates`` capability per kind (changeable at runtime)."""
        return self.capabilities.bulk_updates

    def set_bulk_updates(self, enabled: bool, kind: Kind | None = None) -> None:
        with self.lock:
            self.capabilities.set_bulk_updates(enabled, kind)

    # -- resource groups -------------------------------------------------------------------

    def add_resource_group(self, resource_group: str) -> None:
        """Make ``resource_group`` exist (no-op if it does), as creating it in AI Core would."""
        check_group(resource_group)
        with self.lock:
            self._groups.add(resource_group)

    def has_resource_group(self, resource_group: str) -> bool:
        with self.lock:
            return resource_group in self._groups

    def resource_groups(self) -> list[str]:
        """Every resource group that exists, sorted (with items or not)."""
        with self.lock:
            return sorted(self._groups)

    # -- seeding and inspection (Python API) ----------------------------------------------

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
        """Put one item in ``status`` now (replacing any item with that id in the group).

        ``target_status`` defaults to what the status implies: STOPPED for STOPPING/STOPPED,
        otherwise the kind's initial target (RUNNING / COMPLETED). ``DELETED`` seeds an item
        whose deletion is in progress. ``scenario_id``/``executable_id`` place the item's
        configuration (``configuration_id``, required with them) in that scenario; a
        configuration keeps the scenario it was first given (``ConfigurationBook.configuration``).
        """
        with self.lock:
            self.store.add_item(
                Kind(kind),
                item_id,
                Status(status),
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
            self._groups.add(resource_group)

    def seed(
        self, deployments: int = 0, executions: int = 0, resource_group: str = "default"
    ) -> list[tuple[Kind, str, Status]]:
        """Create items with fresh ids in a mix of statuses, created up to 3 days ago."""
        with self.lock:
            self.add_resource_group(resource_group)
            return self.store.seed(deployments, executions, resource_group)

    def plan_change(
        self,
        kind: Kind,
        item_id: str,
        after: float,
        status: Status | None,
        *,
        resource_group: str = "default",
    ) -> None:
        """Make an item take ``status`` by itself ``after`` seconds of the clock from now, or
        vanish then (``None``: a TTL, someone else's DELETE). An accepted stop or delete
        cancels a planned status change, not a planned vanishing (see :mod:`lifecycle`)."""
        with self.lock:
            self.store.plan(Kind(kind), item_id, resource_group, after, status)

    def remove_item(self, kind: Kind, item_id: str, resource_group: str = "default") -> bool:
        """Make an item vanish now, as if someone else deleted it; ``False`` if there was none."""
        with self.lock:
            return self.store.remove(Kind(kind), item_id, resource_group)

    def item(self, kind: Kind, item_id: str, resource_group: str = "default") -> ItemView | None:
        with self.lock:
            record = self.store.live(resource_group, Kind(kind), item_id)
            return None if record is None else self.store.view(record)

    def items(self, kind: Kind | None = None, resource_group: str | None = None) -> list[ItemView]:
        """Every live item, optionally of one kind and/or one resource group."""
        with self.lock:
            self.schedule_book.run_all_due()
            return [
                self.store.view(record)
                for group, each in self.store.buckets()
                if (kind is None or each is Kind(kind))
                and (resource_group is None or group == resource_group)
                for record in self.store.live_all(group, each)
            ]

    def clear_items(self) -> None:
        """Forget every item, and the execution schedules and configurations that made them."""
        with self.lock:
            self.store.clear()
            self.schedule_book.clear()
            self.configuration_book.clear()

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{group: {collection: {status: n, "deleting": n}}}`` of the live items."""
        with self.lock:
            self.schedule_book.run_all_due()
            return self.store.summary()

    def record(self, context: RequestContext, spec: ViolationSpec, http_status: int) -> None:
        with self.lock:
            self.recorder.record(context, spec, http_status, self.now())

    # -- operations on items ---------------------------------------------------------------

    def meta(self) -> JSON:
        """``MetaCapabilities``: schema defaults except what the simulator actually does."""
        with self.lock:
            return self.capabilities.json()

    def list_items(self, kind: Kind, resource_group: str, query: ListQuery, base_url: str) -> JSON:
        """``{"count", "resources"}`` in creation order, paged by ``$top``/``$skip``."""
        with self.lock:
            return self.operations.list(kind, resource_group, query, base_url)

    def count(self, kind: Kind, resource_group: str, filters: Filters) -> int:
        with self.lock:
            return self.operations.count(kind, resource_group, filters)

    def get_item(
        self, kind: Kind, resource_group: str, item_id: str, select: bool, base_url: str
    ) -> JSON:
        """One item; 404 when unknown or gone (polling a deleted item is not a violation)."""
        with self.lock:
            return self.operations.get(kind, resource_group, item_id, select, base_url)

    def create(self, kind: Kind, resource_group: str, creation: Creation, base_url: str) -> JSON:
        """A new item, UNKNOWN with the kind's initial target, as AI Core answers a POST."""
        with self.lock:
            return self.operations.create(kind, resource_group, creation, base_url)

    def bulk_refusal(self, kind: Kind) -> ApiFailure | None:
        """The refusal of a bulk PATCH of ``kind``, if it is refused (see :class:`Meta`)."""
        with self.lock:
            return self.capabilities.bulk_refusal(kind, injected=kind in self.injector.bulk_refused)

    def bulk_modify(
        self,
        kind: Kind,
        resource_group: str,
        items: Iterable[tuple[str, TargetStatus]],
        context: RequestContext,
    ) -> JSON:
        """Apply each item on its own; refused items come back as ``{id, error}`` in the 202."""
        with self.lock:
            return self.operations.bulk_modify(kind, resource_group, items, context)

    def modify(
        self, kind: Kind, resource_group: str, item_id: str, modification: Modification
    ) -> JSON:
        """Single PATCH: the bulk rules, answered at request level (404/412)."""
        with self.lock:
            return self.operations.modify(kind, resource_group, item_id, modification)

    def delete(self, kind: Kind, resource_group: str, item_id: str) -> JSON:
        """Single DELETE, answered with AI Core's live text."""
        with self.lock:
            return self.operations.delete(kind, resource_group, item_id)

    # -- execution schedules ---------------------------------------------------------------

    def add_schedule(
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
        """Seed one execution schedule (replacing one with the same id in the group).

        ACTIVE, it starts an execution of ``configuration_id`` every ``period_seconds`` of the
        clock from now on (``cron`` is shown, not interpreted).
        """
        with self.lock:
            self.schedule_book.add(
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
            self._groups.add(resource_group)

    def execution_schedule(
        self, schedule_id: str, resource_group: str = "default"
    ) -> ScheduleView | None:
        with self.lock:
            return self.schedule_book.view(schedule_id, resource_group)

    def schedules(self, resource_group: str | None = None) -> list[ScheduleView]:
        """Every schedule, optionally of one resource group, in creation order per group."""
        with self.lock:
            return self.schedule_book.views(resource_group)

    def list_schedules(self, resource_group: str, query: ScheduleListQuery) -> JSON:
        """``AiExecutionScheduleList`` in creation order, paged by ``$top``/``$skip``."""
        with self.lock:
            return self.schedule_book.list(resource_group, query)

    def count_schedules(self, resource_group: str, filters: ScheduleFilters) -> int:
        with self.lock:
            return self.schedule_book.count(resource_group, filters)

    def get_schedule(self, resource_group: str, schedule_id: str) -> JSON:
        with self.lock:
            return self.schedule_book.get(resource_group, schedule_id)

    def modify_schedule(
        self, resource_group: str, schedule_id: str, change: ScheduleModification
    ) -> JSON:
        """Apply a PATCH (see :meth:`ScheduleBook.modify <bulkterm.simulator.schedule_book.ScheduleBook.modify>`)."""
        with self.lock:
            return self.schedule_book.modify(resource_group, schedule_id, change)

    def delete_schedule(self, resource_group: str, schedule_id: str) -> JSON:
        """Gone at once; the executions it started stay (with its ``executionScheduleId``)."""
        with self.lock:
            return self.schedule_book.delete(resource_group, schedule_id)

    # -- configurations --------------------------------------------------------------------

    def list_configurations(self, resource_group: str, query: ConfigurationQuery) -> JSON:
        """``AiConfigurationList`` of the configurations the group's items and schedules use
        (the simulator knows no others), in the order they were first used."""
        with self.lock:
            return self.configuration_book.list(
                resource_group,
                query,
                max_rows=self.config.max_result_rows,
                count=self.config.list_count,
            )
