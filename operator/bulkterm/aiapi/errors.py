"""Typed errors of the AI API client.

The engine decides what to do by the *type* of error, never by parsing messages:
Transient → back off and retry; Auth → stall and ask a human; NotFound → the item is gone;
EndpointNotFound → the service key's URL is wrong (a human must fix it, no item is judged);
Permanent → record against the target and stop trying it. Messages never contain secrets
or tokens: they are built from status codes, the request URL without its query, and the API's
own error body only.
"""

from __future__ import annotations

from bulkterm.aiapi.models import BulkItemResult


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
    """429, 5xx, timeouts, connection failures, no token: worth trying again later.

    What it says about a write (``PATCH``/``DELETE``), the only thing that decides whether the
    write may be sent again without first re-observing its items:

    * ``sent`` False: the request never left this client (no connection could be made, or no
      token could be obtained to send it with). Nothing reached the AI API.
    * ``not_executed`` True: the server certainly did not act on it: never sent, or answered
      429 or 503. Safe to resend as it is.
    * ``not_executed`` False: the outcome is unknown (500, 502, 504, a read timeout, a
      dropped connection): the server may have acted. Re-observe before sending again.

    The client resends reads on any transient error, writes only when ``not_executed``.
    """

    reason = "TransientApiError"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        not_executed: bool = False,
        sent: bool = True,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, request_id=request_id)
        self.retry_after = retry_after
        #: False when the request never left this client: nothing reached the AI API.
        self.sent = sent
        #: True when the server certainly did not act on the request (429, 503, never sent):
        #: only then may a write be sent again without re-observing first.
        self.not_executed = not_executed or not sent


class UnreachableError(TransientError):
    """No connection could be made (refused, DNS, no route): the request never left."""

    reason = "AiApiUnreachable"


class NotAiApiError(TransientError):
    """A 2xx answer that is not the AI API's: not JSON, or JSON without the shape the spec
    requires (a gateway's health page, a single-page app's catch-all). Nothing can be learnt
    about any item from it; the URL in the service key is almost certainly wrong. A write so
    answered may have reached something, so its outcome is unknown."""

    reason = "NotTheAiApi"


class AuthError(AiApiError):
    """401/403, or the token endpoint refused the credentials: a human must fix the key."""

    reason = "Unauthorized"


class NotFoundError(AiApiError):
    """The AI API's own 404 (its error envelope) on a single item: for a DELETED target that is
    success, for STOPPED a failure. On ``GET /lm/meta`` (the spec's ``MetaNotFound``): the
    server has no meta endpoint, so no capabilities."""

    reason = "NotFound"


class PermanentError(AiApiError):
    """Any other 4xx (400, 412, …): retrying the same request cannot succeed."""

    reason = "Rejected"


class ConfigurationError(AiApiError):
    """The service key or resource group points somewhere the AI API is not: like
    :class:`AuthError`, only a human can fix it, so it stops the run (stalls the resource)
    instead of being judged per target like a :class:`PermanentError`."""

    reason = "Misconfigured"


class EndpointNotFoundError(ConfigurationError):
    """404 where no item's absence can be meant: a configuration error, never "item gone".

    Raised by every call on a 404 *without* the AI API's error envelope (the URL is not served
    at all: typically ``serviceurls.AI_API_URL`` in the service key has a wrong path), and by
    list and ``$count`` on any 404 (the spec declares none for them: no item is addressed, so it
    is the collection that is not served there). ``url`` is the request URL without query,
    fragment or credentials.
    """

    reason = "EndpointNotFound"

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status_code: int | None = 404,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, request_id=request_id)
        self.url = url


class ListPagingError(PermanentError):
    """A list could not be paged to its end: the server repeated a full page (it ignores
    ``$skip``), or it kept answering full pages beyond what its first page counted. The list
    is not complete and must not be read as the collection: observe item by item instead."""

    reason = "ListPagingFailed"


class ResultTooLargeError(PermanentError):
    """The server serves fewer rows per page than ``$top`` asked for: it answered 413 ("Result
    set exceeds the maximum of N rows", seen on another ``/v2/lm`` endpoint), or it returned a
    short page while its ``count`` says more items match (a silent cap). ``limit`` is the most
    rows a page may hold there: the list can be read again in pages of that size."""

    reason = "ResultTooLarge"

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, request_id=request_id)
        self.limit = limit


class BulkUnsupportedError(PermanentError):
    """The server refused a bulk PATCH as unsupported: the engine falls back to single calls."""

    reason = "BulkUpdatesUnsupported"


class PartialBulkError(AiApiError):
    """A bulk call went out as more than one request (merged with other runs' items) and one
    of them failed as a whole: the items of the others have their answers in ``results``, the
    ``failed`` ids share ``error``, which says what to do about them as for any call."""

    def __init__(
        self, results: list[BulkItemResult], failed: frozenset[str], error: AiApiError
    ) -> None:
        super().__init__(
            f"{len(failed)} of the call's items were in a request that failed: {error.message}",
            status_code=error.status_code,
            code=error.code,
            request_id=error.request_id,
        )
        self.reason = error.reason
        self.results = results
        self.failed = failed
        self.error = error


class InvalidBatchError(ValueError):
    """A caller tried to send a bulk request the AI API would refuse (>100 items, duplicate id).

    Raised before anything is sent: it is a programming error in the caller, not an API error.
    """


class CredentialsError(ValueError):
    """A service key is malformed. The message names the missing or bad field, never a value."""

    reason = "InvalidServiceKey"
