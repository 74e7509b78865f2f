"""AI API clients for every CR of one operator process, sharing per tenant what must be shared.

A tenant is an AI API URL and a client id (the resource group is not part of it: one token
serves every group). Ten BulkTerminations against one tenant must not fetch ten tokens nor send
ten times the configured rate, so every client the pool hands out for a tenant shares:

* one rate limiter (the concurrency cap and the rate limit of ``ClientSettings``), and
* one token cache *per credentials*: a rotated Secret (same client id, new secret or
  certificate) gets a token cache of its own, so a token fetched with the old credentials is
  never used in the name of the new ones.

The runs of one tenant, credentials and resource group also share their listings
(:mod:`bulkterm.k8s.fleet`): each run gets a :class:`~bulkterm.k8s.fleet.FleetApi`, its own
client for writes and item reads, and a :class:`~bulkterm.k8s.fleet.SharedReads` with a client
of its own for the lists every run makes alike.

A tenant and its token caches live while a client uses them; the last one out closes them, so
no credentials outlive the runs that read them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.ratelimit import RateLimiter
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.fleet import FleetApi, SharedReads


@dataclass
class _Tokens:
    #: The client whose token provider (and HTTP connection to the token endpoint) is shared.
    owner: AiApiClient
    users: int = 0


@dataclass
class _Reads:
    shared: SharedReads
    client: AiApiClient
    users: int = 0


@dataclass
class _Tenant:
    limiter: RateLimiter
    tokens: dict[str, _Tokens] = field(default_factory=dict)
    #: Shared reads by (credentials, resource group).
    reads: dict[tuple[str, str | None], _Reads] = field(default_factory=dict)
    users: int = 0


class ClientPool:
    """Hands out :class:`AiApiClient` instances that share a tenant's limiter and tokens."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._tenants: dict[tuple[str, str], _Tenant] = {}

    @classmethod
    def for_config(cls, config: OperatorConfig) -> ClientPool:
        return cls(
            ClientSettings(
                concurrency=config.api_concurrency,
                rate_limit_per_second=config.api_rate_limit,
                ca_bundle=config.ca_bundle,
            )
        )

    @property
    def tenants(self) -> int:
        """Tenants with a client in use."""
        return len(self._tenants)

    @asynccontextmanager
    async def client(self, key: ServiceKey, resource_group: str | None) -> AsyncIterator[FleetApi]:
        """A client for ``key`` and ``resource_group``, closed on exit.

        Raises what :class:`AiApiClient` raises for a key or group it cannot use
        (``CredentialsError``, ``ValueError``) before anything is shared."""
        settings = self._settings
        tenant_id = (key.api_url, key.client_id)
        credentials = _fingerprint(key)
        tenant = self._tenants.get(tenant_id)
        tokens = tenant.tokens.get(credentials) if tenant is not None else None
        limiter = (
            tenant.limiter
            if tenant is not None
            else RateLimiter(settings.concurrency, settings.rate_limit_per_second)
        )
        # The first client of these credentials owns the token cache and its connection to the
        # token endpoint, in the group that is always valid; it sends nothing else.
        owner = tokens.owner if tokens is not None else AiApiClient(key, "default", settings)
        reads = tenant.reads.get((credentials, resource_group)) if tenant is not None else None
        try:
            api = AiApiClient(key, resource_group, settings, tokens=owner.tokens, limiter=limiter)
            if reads is None:
                reader = AiApiClient(
                    key, resource_group, settings, tokens=owner.tokens, limiter=limiter
                )
                reads = _Reads(SharedReads(reader), reader)
        except BaseException:
            if tokens is None:
                await owner.aclose()
            raise
        # No await from here to the yield: concurrent callers see one tenant, one token cache,
        # one set of shared reads.
        if tenant is None:
            tenant = self._tenants[tenant_id] = _Tenant(limiter)
        if tokens is None:
            tokens = tenant.tokens[credentials] = _Tokens(owner)
        tenant.reads.setdefault((credentials, resource_group), reads)
        tenant.users += 1
        tokens.users += 1
        reads.users += 1
        try:
            yield FleetApi(api, reads.shared)
        finally:
            tenant.users -= 1
            tokens.users -= 1
            reads.users -= 1
            # The bookkeeping first, with no await in between (as on the way in); then close.
            closing = [api]
            last_reader = reads.users == 0
            if last_reader:
                del tenant.reads[(credentials, resource_group)]
                closing.append(reads.client)
            if tokens.users == 0:
                del tenant.tokens[credentials]
                closing.append(tokens.owner)
            if tenant.users == 0:
                del self._tenants[tenant_id]
            if last_reader:
                await reads.shared.close()
            for done in closing:
                await done.aclose()


def _fingerprint(key: ServiceKey) -> str:
    """Identifies the credentials (token URL, client id, secret or certificate and key) without
    holding them: a digest, never logged or shown."""
    secrets = (key.client_secret, key.certificate, key.private_key)
    parts = (key.token_url, key.client_id, *(s.get_secret_value() if s else "" for s in secrets))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
