"""Wire-level vocabulary of the AI API, shared by the client, the engine and the simulator.

The enums mirror ``AI_CORE_API.yaml`` (v2.42.0). Only the fields the product reads are modelled
strictly; everything else the server sends is ignored, so a newer server never breaks us.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: The id pattern of deployments and executions: ``^[\w.-]{4,64}$`` in the spec, where ``\w``
#: is ASCII (as in Go's RE2, which the API server uses for the CRD). Spelled out here because
#: pydantic's regex engine reads ``\w`` as Unicode and would accept ids the server rejects.
ID_PATTERN = r"^[A-Za-z0-9_.-]{4,64}$"
#: The resource-group id pattern (``AI-Resource-Group`` header in the spec).
RESOURCE_GROUP_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9.-]{1,251}[a-zA-Z0-9]$"
#: The AI API refuses bulk requests above this size (``maxItems: 100``).
MAX_BULK_ITEMS = 100
#: ``executableIds`` of a list or ``$count`` names at most this many ids (``AiexecutableIdsList``).
MAX_EXECUTABLE_IDS = 1000


class Kind(StrEnum):
    """The two kinds of AI API items the product terminates."""

    DEPLOYMENT = "Deployment"
    EXECUTION = "Execution"

    @property
    def collection(self) -> str:
        """Path segment and JSON key of the collection: ``deployments`` / ``executions``."""
        return "deployments" if self is Kind.DEPLOYMENT else "executions"


class Status(StrEnum):
    """``status`` of a deployment or execution (the same seven values for both kinds)."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    DEAD = "DEAD"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class TargetStatus(StrEnum):
    """What a bulk PATCH item may ask for; also what a ``BulkTermination`` target must reach."""

    STOPPED = "STOPPED"
    DELETED = "DELETED"


class ScheduleStatus(StrEnum):
    """``status`` of an execution schedule (``AiExecutionScheduleStatus``): an ACTIVE schedule
    starts executions, an INACTIVE one starts none until it is set ACTIVE again."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class ItemState(BaseModel):
    """One observation of an item: what a list (``$select=status``) or a GET returned.

    ``target_status`` is ``None`` when the server left it out (``$select=status`` may);
    ``DELETED`` there means deletion is in progress.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    id: str
    status: Status
    target_status: str | None = Field(default=None, alias="targetStatus")
    status_message: str | None = Field(default=None, alias="statusMessage")
    #: Only in a whole item (a GET without ``$select``): what a restore creates it again from.
    configuration_id: str | None = Field(default=None, alias="configurationId")


class ApiErrorBody(BaseModel):
    """The AI API error object (``AiApiError``): ``code`` is the API's own code, not HTTP."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    code: str
    message: str
    request_id: str | None = Field(default=None, alias="requestId")
    target: str | None = None


class BulkItemResult(BaseModel):
    """One item of a 202 bulk PATCH answer: either scheduled (``message``) or refused (``error``)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    id: str
    message: str | None = None
    error: ApiErrorBody | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


class BulkUpdates(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    deployments: bool = False
    executions: bool = False

    def supports(self, kind: Kind) -> bool:
        return self.deployments if kind is Kind.DEPLOYMENT else self.executions


class Capabilities(BaseModel):
    """What ``GET /v2/lm/meta`` tells the engine. Absent ``bulkUpdates`` means no bulk PATCH."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    runtime_identifier: str | None = Field(default=None, alias="runtimeIdentifier")
    api_version: str | None = None
    bulk_updates: BulkUpdates = Field(default_factory=BulkUpdates)
    #: ``capabilities.executionSchedules``: the runtime serves ``/lm/executionSchedules``
    #: (absent means false, the schema's default).
    execution_schedules: bool = False


class ItemSummary(BaseModel):
    """One item as a selector sees it: what it is, where it came from and how old it is.

    Read from the full item (``AiDeployment``/``AiExecution``), because the spec's ``$select``
    has only ``status``, whose answer lacks ``scenarioId``, ``targetStatus`` and
    ``executionScheduleId``. ``created_at`` (never ``modified_at``) is what age means: every
    status change moves ``modifiedAt``. Fields the spec does not require are optional.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    id: str
    status: Status
    created_at: AwareDatetime = Field(alias="createdAt")
    configuration_id: str = Field(alias="configurationId")
    target_status: str | None = Field(default=None, alias="targetStatus")
    modified_at: AwareDatetime | None = Field(default=None, alias="modifiedAt")
    scenario_id: str | None = Field(default=None, alias="scenarioId")
    executable_id: str | None = Field(default=None, alias="executableId")
    #: Executions a schedule started carry its id; ``None`` for deployments and manual runs.
    execution_schedule_id: str | None = Field(default=None, alias="executionScheduleId")

    @property
    def deleting(self) -> bool:
        """A deletion was accepted and is under way (``targetStatus: DELETED``)."""
        return self.target_status == TargetStatus.DELETED


class ScheduleSummary(BaseModel):
    """One execution schedule (``AiExecutionSchedule``): what a selector pauses.

    ``id`` and ``status`` are not required by the spec's schema, but a schedule without an id
    cannot be paused and one without a status cannot be judged, so both are required here.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    id: str
    status: ScheduleStatus
    configuration_id: str = Field(alias="configurationId")
    name: str
    cron: str
    created_at: AwareDatetime = Field(alias="createdAt")
    modified_at: AwareDatetime = Field(alias="modifiedAt")
    start: datetime | None = None
    end: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status is ScheduleStatus.ACTIVE
