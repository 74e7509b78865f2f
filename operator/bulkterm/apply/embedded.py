"""Where ``bulkterm apply`` gets its credentials: a service key, or an embedded simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import IO

from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import CredentialsError
from bulkterm.apply.options import ApplyOptions
from bulkterm.engine import utcnow
from bulkterm.manifest import Manifest


@contextlib.asynccontextmanager
async def credentials(
    manifests: list[Manifest], options: ApplyOptions, err: IO[str]
) -> AsyncIterator[ServiceKey | None]:
    if options.simulator:
        async with _embedded_simulator(manifests, options, err) as key:
            yield key
        return
    try:
        if options.service_key:
            key = ServiceKey.from_file(options.service_key)
        else:
            key = ServiceKey.from_env(os.environ)
    except CredentialsError as exc:
        print(f"error: {exc}", file=err)
        yield None
        return
    try:
        if not options.allow_plain_http:
            key.require_https()
    except CredentialsError as exc:
        print(f"error: {exc}; pass --allow-plain-http only for that", file=err)
        yield None
        return
    yield key


@contextlib.asynccontextmanager
async def _embedded_simulator(
    manifests: list[Manifest], options: ApplyOptions, err: IO[str]
) -> AsyncIterator[ServiceKey]:
    from bulkterm.simulator import Simulator, SimulatorConfig
    from bulkterm.simulator.manifests import demo_timings, seed_selector, seed_targets

    # bulkUpdates on, explicitly (the simulator's own default is off, as on a tenant without
    # it): the demo shows the bulk path, and says so.
    sim = Simulator(
        SimulatorConfig(host="127.0.0.1", port=0, timings=demo_timings(), bulk_updates=True)
    )
    for manifest in manifests:
        group = options.resource_group or manifest.spec.connection.resource_group
        sim.add_resource_group(group)  # known even when every target is simulated as gone
        seed_targets(sim, manifest.spec.targets, resource_group=group)
        if manifest.spec.selector is not None:
            seed_selector(sim, manifest.spec.selector, resource_group=group, now=utcnow())
    url = await sim.start()
    print(f"embedded AI API simulator at {url} (bulkUpdates on)", file=err)
    server_log = logging.getLogger("aiohttp.server")
    quiet = _ClientGone()
    server_log.addFilter(quiet)
    try:
        yield ServiceKey.from_dict(sim.service_key())
    finally:
        await sim.stop()
        server_log.removeFilter(quiet)


class _ClientGone(logging.Filter):
    """An interrupted run drops its requests in flight; the embedded server would log each
    lost connection with a traceback. That is expected then, not an error to show."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionResetError | asyncio.CancelledError)
