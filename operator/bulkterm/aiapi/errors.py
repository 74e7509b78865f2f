"""Typed errors of the AI API client.

The engine decides what to do by the *type* of error, never by parsing messages:
Transient → back off and retry; Auth → stall and ask a human; NotFound → the item is gone;
Permanent → record against the target and stop trying it. Messages never contain secrets
or tokens: they are built from status codes and the API's own error body only.
"""

from __future__ import annotations


class AiApiError(Exception):
    """Base of every error the client raises."""

    #: CamelCase category, used as a reason in status, events and metrics.
    reason: str = "ApiError"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id


class TransientError(AiApiError):
    """429, 5xx, timeouts and connection failures: worth retrying after ``retry_after`` seconds."""

    reason = "TransientApiError"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        not_executed: bool = False,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, request_id=request_id)
        self.retry_after = retry_after
        #: True when the server certainly did not act on the request (429, 502-504, no
        #: connection): only then may a write be sent again without re-observing first.
        self.not_executed = not_executed


class AuthError(AiApiError):
    """401/403, or the token endpoint refused the credentials: a human must fix the key."""

    reason = "Unauthorized"


class NotFoundError(AiApiError):
    """404 on a single item: for a DELETED target that is success, for STOPPED a failure."""

    reason = "NotFound"


class PermanentError(AiApiError):
    """Any other 4xx (400, 412, …): retrying the same request cannot succeed."""

    reason = "Rejected"


class BulkUnsupportedError(PermanentError):
    """The server refused a bulk PATCH as unsupported: the engine falls back to single calls."""

    reason = "BulkUpdatesUnsupported"


class InvalidBatchError(ValueError):
    """A caller tried to send a bulk request the AI API would refuse (>100 items, duplicate id).

    Raised before anything is sent: it is a programming error in the caller, not an API error.
    """


class CredentialsError(ValueError):
    """A service key is malformed. The message names the missing or bad field, never a value."""

    reason = "InvalidServiceKey"
