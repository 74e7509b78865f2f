"""The configurations each resource group's items and execution schedules use.

The simulator knows no configuration nobody uses: one is registered the first time an item or
a schedule names it, with the scenario and executable given then (or the catalogue's, see
:func:`~bulkterm.simulator.seeding.configuration_for`), and keeps them: in AI Core a
configuration belongs to one scenario and one executable. ``GET /lm/configurations`` lists
them, which is how a client finds the configurations, and so the schedules, of a scenario.

Not thread-safe by itself: :class:`~bulkterm.simulator.backend.Backend` holds its lock around
every call.
"""

from __future__ import annotations

import re

from bulkterm.aiapi.models import ID_PATTERN, Kind
from bulkterm.simulator.clock import Timebase
from bulkterm.simulator.queries import ConfigurationQuery
from bulkterm.simulator.seeding import CONFIGURATIONS, Configuration, configuration_for
from bulkterm.simulator.wire import JSON, configuration_json, paged


class ConfigurationBook:
    """``(group, id)`` → the configuration and its creation (wall) time."""

    def __init__(self, time: Timebase) -> None:
        self.time = time
        self._known: dict[tuple[str, str], tuple[Configuration, float]] = {}

    def configuration(
        self,
        resource_group: str,
        kind: Kind,
        configuration_id: str,
        *,
        scenario_id: str | None = None,
        executable_id: str | None = None,
        created: float | None = None,
    ) -> Configuration:
        """The configuration ``configuration_id`` of the group, registered on first use.

        First use takes the scenario and executable given, else the catalogue's (or made-up
        ones for an id the catalogue lacks). Later uses must agree: a configuration belongs
        to one scenario and one executable (``ValueError`` otherwise). ``created`` (wall
        time, default now) back-dates it when an item using it is older.
        """
        if not re.match(ID_PATTERN, configuration_id):
            raise ValueError(f"configuration id {configuration_id!r} does not match {ID_PATTERN}")
        for name, value in (("scenario id", scenario_id), ("executable id", executable_id)):
            if value is not None and not re.match(ID_PATTERN, value):
                raise ValueError(f"{name} {value!r} does not match {ID_PATTERN}")
        key = (resource_group, configuration_id)
        known = self._known.get(key)
        stamp = self.time.wall(self.time.now()) if created is None else created
        if known is None:
            base = configuration_for(kind, configuration_id)
            configuration = Configuration(
                base.id,
                base.name,
                scenario_id or base.scenario_id,
                executable_id or base.executable_id,
            )
            self._known[key] = (configuration, stamp)
            return configuration
        configuration, since = known
        for name, given, held in (
            ("scenario", scenario_id, configuration.scenario_id),
            ("executable", executable_id, configuration.executable_id),
        ):
            if given is not None and given != held:
                raise ValueError(
                    f"configuration {configuration_id} belongs to {name} {held}, not {given}"
                )
        if stamp < since:  # a back-dated item: the configuration is at least as old
            self._known[key] = (configuration, stamp)
        return configuration

    def known(self, resource_group: str, kind: Kind, configuration_id: str) -> bool:
        """Whether the group has the configuration: one an item or schedule used, or one of
        the simulator's catalogue for ``kind``."""
        return (resource_group, configuration_id) in self._known or any(
            c.id == configuration_id for c in CONFIGURATIONS[kind]
        )

    def list(
        self, resource_group: str, query: ConfigurationQuery, *, max_rows: int | None, count: str
    ) -> JSON:
        """``AiConfigurationList`` in the order of first use, paged by ``$top``/``$skip``;
        ``count`` is ``"total"`` or ``"page"`` (:attr:`SimulatorConfig.list_count`)."""
        matching = [
            (configuration, created)
            for (group, _), (configuration, created) in self._known.items()
            if group == resource_group
            and (query.scenario_id is None or configuration.scenario_id == query.scenario_id)
            and (
                query.executable_ids is None or configuration.executable_id in query.executable_ids
            )
        ]
        page, total = paged(
            matching,
            query.skip,
            query.top,
            max_rows=max_rows,
            list_count=count,
            what="list configurations",
        )
        return {"count": total, "resources": [configuration_json(c, at) for c, at in page]}

    def clear(self) -> None:
        self._known.clear()
