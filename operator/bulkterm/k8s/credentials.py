"""The CR's Secret → a service key the AI API accepts, or the reason it cannot be had.

Every way this fails is one a human must fix, so each ends in a :class:`CredentialsProblem`
whose ``reason`` becomes the reason of the ``Stalled`` condition and of the Warning Event:

========================== ==========================================================
reason                     meaning
========================== ==========================================================
SecretRefMissing           ``spec.connection.secretRef`` is absent
CrossNamespaceSecretRefused the reference names another namespace
SecretNotFound             the Secret does not exist
SecretUseUnverified        the operator cannot verify that the BulkTermination's author may
                           use the Secret (the admission policy that checks the verb ``use``
                           is missing or altered, or the CR predates it: :mod:`.secret_use`)
SecretNotGranted           with name grants allowed, where the identity check cannot be made:
                           the Secret's annotation does not name this BulkTermination
OutsideSecretBounds        the run would spend the key outside the Secret's bounds (resource
                           groups, STOP or DELETE, how many targets: :mod:`.secret_bounds`)
InvalidSecretBounds        a bound annotation cannot be read (fails closed)
SecretKeyNotFound          the Secret has no such key
SecretForbidden            the operator may not read the Secret (RBAC)
SecretUnreadable           the API server failed to return it
InvalidServiceKey          the value is not a usable service key (the field is named)
PlainHttpRefused           the key's URLs are plain HTTP and the operator does not allow it
                           (``BULKTERM_ALLOW_PLAIN_HTTP``, Helm ``allowPlainHttp``)
Unauthorized               the token endpoint or the AI API refused the credentials
========================== ==========================================================

Messages name the Secret, the key and the field at fault, never a value.

Who may use the Secret and for what are checked where the Secret is read
(:func:`bulkterm.k8s.secret_use.check_secret_use`), before anything here parses the key: a key
whose use is not verified, or asked for outside its bounds, is never parsed, used or sent.
"""

from __future__ import annotations

from typing import Protocol

from bulkterm.aiapi.base import AiApi
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AiApiError, AuthError, ConfigurationError, CredentialsError
from bulkterm.aiapi.models import Kind
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.k8s.secret_use import (
    SECRET_NOT_GRANTED,
    SECRET_USE_UNVERIFIED,
    Requester,
    SecretProblem,
)
from bulkterm.spec import SecretRef

SECRET_REF_MISSING = "SecretRefMissing"
CROSS_NAMESPACE = "CrossNamespaceSecretRefused"
INVALID_SERVICE_KEY = "InvalidServiceKey"
PLAIN_HTTP_REFUSED = "PlainHttpRefused"
UNAUTHORIZED = "Unauthorized"
__all__ = [
    "SECRET_NOT_GRANTED",
    "SECRET_USE_UNVERIFIED",
    "CredentialsProblem",
    "SecretReader",
    "read_service_key",
]


class SecretReader(Protocol):
    async def read_secret_value(
        self,
        namespace: str,
        name: str,
        key: str,
        *,
        requester: Requester | None = None,
        use: SecretUse | None = None,
    ) -> bytes:
        """The value, only if ``requester``'s author may use the Secret and ``use`` is within
        its bounds (else :class:`SecretProblem`: ``SecretUseUnverified``,
        ``SecretNotGranted``, ``OutsideSecretBounds``, ``InvalidSecretBounds``)."""
        ...


class CredentialsProblem(Exception):
    """The credentials cannot be used; ``reason`` is a CamelCase condition/Event reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def read_service_key(
    kube: SecretReader,
    namespace: str,
    ref: SecretRef | None,
    requester: Requester | None = None,
    use: SecretUse | None = None,
) -> ServiceKey:
    """The service key ``ref`` points at, from the Secret in the CR's own ``namespace``, if
    the author of ``requester`` (the BulkTermination asking) may use it."""
    if ref is None:
        raise CredentialsProblem(SECRET_REF_MISSING, "spec.connection.secretRef is required")
    if ref.namespace is not None and ref.namespace != namespace:
        raise CredentialsProblem(
            CROSS_NAMESPACE,
            f"spec.connection.secretRef.namespace {ref.namespace!r}: the Secret must be in "
            f"the BulkTermination's own namespace {namespace!r}",
        )
    try:
        raw = await kube.read_secret_value(
            namespace, ref.name, ref.key, requester=requester, use=use
        )
        return ServiceKey.from_json(raw, source=f"Secret {ref.name} key {ref.key!r}")
    except SecretProblem as exc:
        raise CredentialsProblem(exc.reason, exc.message) from None
    except CredentialsError as exc:
        raise CredentialsProblem(INVALID_SERVICE_KEY, str(exc)) from None


def require_https(key: ServiceKey, *, allow_plain_http: bool) -> None:
    """Raise :class:`CredentialsProblem` for a plain-HTTP key the operator does not allow."""
    if allow_plain_http:
        return
    try:
        key.require_https()
    except CredentialsError as exc:
        raise CredentialsProblem(
            PLAIN_HTTP_REFUSED,
            f"{exc}; set BULKTERM_ALLOW_PLAIN_HTTP=true (Helm: allowPlainHttp) only for that",
        ) from None


def unusable(exc: CredentialsError | ValueError) -> CredentialsProblem:
    """A key that parsed but a client cannot use (e.g. an x509 key whose PEMs do not load)."""
    return CredentialsProblem(INVALID_SERVICE_KEY, str(exc))


def refused(exc: AuthError | ConfigurationError) -> CredentialsProblem:
    """The AI API refused the key (Unauthorized), or the key's URL is not one the AI API
    serves (EndpointNotFound, naming the URL): either way a human must fix the Secret."""
    if isinstance(exc, ConfigurationError):
        return CredentialsProblem(exc.reason, exc.message)
    return CredentialsProblem(UNAUTHORIZED, f"AI API refused the credentials: {exc.message}")


async def check_accepted(api: AiApi) -> None:
    """Raise :class:`CredentialsProblem` unless the AI API accepts the credentials.

    Used before resuming a stalled run, so a still-broken key keeps the CR Stalled instead of
    flapping Reconciling on every retry. ``$count`` carries the resource group (``meta`` does
    not), so a 403 for the wrong group is caught too. Other errors are not about credentials:
    the engine backs off from them as usual."""
    try:
        await api.count(Kind.DEPLOYMENT)
    except (AuthError, ConfigurationError) as exc:
        raise refused(exc) from None
    except AiApiError:
        pass
