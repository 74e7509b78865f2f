"""What the simulated runtime says it can do (``GET /lm/meta``), and the bulk PATCH it serves.

``bulkUpdates`` is per kind and can change at runtime; a bulk PATCH of a kind whose
capability is off is refused (the status is :attr:`SimulatorConfig.bulk_refusal_status`: how
AI Core refuses it is unknown) and recorded, since ``/lm/meta`` told the client not to send it.

Not thread-safe by itself: :class:`~bulkterm.simulator.backend.Backend` holds its lock around
every call.
"""

from __future__ import annotations

from bulkterm.aiapi.models import Kind
from bulkterm.simulator.config import SimulatorConfig
from bulkterm.simulator.recording import ViolationSpec
from bulkterm.simulator.rules import CODE_BULK_UNSUPPORTED
from bulkterm.simulator.wire import JSON, ApiFailure

#: Version the simulator claims in ``/lm/meta``: the spec it follows.
API_VERSION = "2.42.0"


class Meta:
    """The runtime's capabilities: the config's, with ``bulkUpdates`` changeable per kind."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        #: The ``bulkUpdates`` capability per kind.
        self.bulk_updates: dict[Kind, bool] = {kind: config.bulk_updates for kind in Kind}

    def set_bulk_updates(self, enabled: bool, kind: Kind | None = None) -> None:
        for each in (Kind(kind),) if kind is not None else tuple(Kind):
            self.bulk_updates[each] = enabled

    def json(self) -> JSON:
        """``MetaCapabilities``: schema defaults except what the simulator actually does."""
        bulk = self.bulk_updates
        return {
            "runtimeIdentifier": "aicore",
            "runtimeApiVersion": API_VERSION,
            "description": "bulkterm AI API simulator (not SAP AI Core)",
            "aiApi": {
                "version": API_VERSION,
                "capabilities": {
                    "multitenant": True,
                    "shareable": True,
                    "staticDeployments": False,
                    "userDeployments": True,
                    "userExecutions": True,
                    "timeToLiveDeployments": False,
                    "executionSchedules": self.config.execution_schedules,
                    "logs": {"executions": False, "deployments": False},
                    "bulkUpdates": {
                        "executions": bulk[Kind.EXECUTION],
                        "deployments": bulk[Kind.DEPLOYMENT],
                    },
                },
                "limits": {
                    "executions": {"maxRunningCount": -1},
                    "deployments": {"maxRunningCount": -1},
                    "timeToLiveDeployments": {"minimum": "10m", "maximum": "-1"},
                },
            },
            "extensions": {"resourceGroups": {"version": "1.0.0"}},
        }

    def bulk_refusal(self, kind: Kind, *, injected: bool = False) -> ApiFailure | None:
        """The refusal of a bulk PATCH of ``kind``: while ``bulkUpdates`` is off (a violation:
        the client was told), or ``injected`` although it is on (a fault, no violation)."""
        advertised = self.bulk_updates[kind]
        if advertised and not injected:
            return None
        status = self.config.bulk_refusal_status
        message = f"Bulk updates of {kind.collection} are not enabled"
        if not advertised:
            message += f" (meta: aiApi.capabilities.bulkUpdates.{kind.collection} is false)"
        violation = (
            None if advertised else ViolationSpec("BulkUpdatesDisabled", message + ".", kind)
        )
        return ApiFailure(
            status,
            CODE_BULK_UNSUPPORTED,
            message + ".",
            violation=violation,
            headers={"Allow": "GET, POST"} if status == 405 else None,
        )
