"""AI API clients for every CR of one operator process, sharing per tenant what must be shared.

A tenant is an AI API URL and a client id (the resource group is not part of it: one token
serves every group). Ten BulkTerminations against one tenant must not fetch ten tokens nor send
ten times the configured rate, so every client the pool hands out for a tenant shares:

* one rate limiter (the concurrency cap and the rate limit of ``ClientSettings``), and
* one token cache *per credentials*: a rotated Secret (same client id, new secret or
  certificate) gets a token cache of its own, so a token fetched with the old credentials is
  never used in the name of the new ones.

The runs of one tenant, credentials and resource group share one :class:`AiApiClient`, and
through it their listings (:mod:`bulkterm.k8s.fleet`): each run gets a
:class:`~bulkterm.k8s.fleet.FleetApi`, its view of that client and of the group's
:class:`~bulkterm.k8s.fleet.SharedReads`. A token cache is no client's: the pool holds it
(:func:`~bulkterm.aiapi.transport.token_cache`, with its own connection to the token endpoint)
and hands it to the client of every group that uses those credentials.

A tenant, its groups' clients and its token caches live while a run uses them; the last one
out closes them, so no credentials outlive the runs that read them, and no run that ends
closes a client another run of its group still uses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bulkterm.aiapi.auth import TokenProvider
from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.ratelimit import RateLimiter
from bulkterm.aiapi.transport import token_cache
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.fleet import FleetApi, SharedReads


@dataclass
class _Tokens:
    """The token cache of one set of credentials, shared by the clients of its groups."""

    cache: TokenProvider
    users: int = 0


@dataclass
class _Group:
    """One resource group under one set of credentials: its client and its shared reads."""

    client: AiApiClient
    shared: SharedReads
    #: The token cache its client uses.
    tokens: _Tokens
    users: int = 0


@dataclass
class _Tenant:
    limiter: RateLimiter
    tokens: dict[str, _Tokens] = field(default_factory=dict)
    #: By (credentials, resource group).
    groups: dict[tuple[str, str | None], _Group] = field(default_factory=dict)
    users: int = 0


class ClientPool:
    """Hands out views of :class:`AiApiClient` instances, one per tenant, credentials and
    resource group, that share a tenant's limiter and a credentials' token cache."""

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
        """A run's client for ``key`` and ``resource_group``, released on exit.

        Raises what :class:`AiApiClient` raises for a key or group it cannot use
        (``CredentialsError``, ``ValueError``) before anything is shared."""
        settings = self._settings
        tenant_id = (key.api_url, key.client_id)
        credentials = _fingerprint(key)
        tenant = self._tenants.get(tenant_id)
        tokens = tenant.tokens.get(credentials) if tenant is not None else None
        group = tenant.groups.get((credentials, resource_group)) if tenant is not None else None
        limiter = (
            tenant.limiter
            if tenant is not None
            else RateLimiter(settings.concurrency, settings.rate_limit_per_second)
        )
        if group is None:
            cache = tokens.cache if tokens is not None else None
            try:
                if cache is None:
                    cache = token_cache(key, settings)
                client = AiApiClient(key, resource_group, settings, tokens=cache, limiter=limiter)
            except BaseException:
                if tokens is None and cache is not None:
                    await cache.aclose()
                raise
            group = _Group(client, SharedReads(client), tokens or _Tokens(cache))
        tokens = group.tokens
        # No await from the look-ups to the yield: concurrent callers see one tenant, one token
        # cache, one client per group.
        if tenant is None:
            tenant = self._tenants[tenant_id] = _Tenant(limiter)
        tenant.tokens.setdefault(credentials, tokens)
        tenant.groups.setdefault((credentials, resource_group), group)
        tenant.users += 1
        tokens.users += 1
        group.users += 1
        try:
            yield FleetApi(group.client, group.shared)
        finally:
            tenant.users -= 1
            tokens.users -= 1
            group.users -= 1
            # The bookkeeping first, with no await in between (as on the way in); then close.
            last_in_group = group.users == 0
            last_of_tokens = tokens.users == 0
            if last_in_group:
                del tenant.groups[(credentials, resource_group)]
            if last_of_tokens:
                del tenant.tokens[credentials]
            if tenant.users == 0:
                del self._tenants[tenant_id]
            try:
                if last_in_group:
                    try:
                        await group.shared.close()
                    finally:
                        await group.client.aclose()
            finally:
                if last_of_tokens:
                    await tokens.cache.aclose()


def _fingerprint(key: ServiceKey) -> str:
    """Identifies the credentials (token URL, client id, secret or certificate and key) without
    holding them: a digest, never logged or shown."""
    secrets = (key.client_secret, key.certificate, key.private_key)
    parts = (key.token_url, key.client_id, *(s.get_secret_value() if s else "" for s in secrets))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
