"""When the answer to a write is lost, the engine may send it again; the AI API then refuses
it because the action is already under way. That must count as accepted, never as a refusal
that burns the target's retries (the simulator hides targetStatus under ``$select=status``,
as SAP's own client shows the real AI API does)."""

from __future__ import annotations

import asyncio

from bulkterm.aiapi.client import AiApiClient, ClientSettings
from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import Engine, EngineSettings
from bulkterm.simulator import Faults, Simulator, Timings
from tests.engine.support import DELETED, D, spec_of

SLOW_DELETION = Timings(
    unknown_seconds=0.1,
    pending_seconds=0.1,
    stop_delay_seconds=0.05,
    stopping_seconds=0.2,
    deletion_seconds=4.0,
    execution_run_seconds=None,
)


async def test_resent_delete_to_an_item_being_deleted_is_not_a_failure(
    simulator: Simulator,
) -> None:
    simulator.set_timings(SLOW_DELETION)
    simulator.set_bulk_updates(True)  # the DELETEs go as a bulk PATCH, whose answer is lost
    ids = [f"dep-{i:04d}" for i in range(5)]
    for i in ids:
        simulator.add_item(D, i, Status.STOPPED)
    simulator.set_faults(Faults(lost_response_rate=1.0, methods=("PATCH",)))
    settings = EngineSettings(max_poll_seconds=0.3, backoff_base_seconds=0.1)
    async with AiApiClient.from_service_key(
        simulator.service_key(), settings=ClientSettings()
    ) as api:
        engine = Engine(
            spec_of(*[(D, i, DELETED) for i in ids], backoffLimitPerTarget=1),
            api,
            settings=settings,
        )
        task = asyncio.create_task(engine.run())
        for _ in range(1500):  # the simulator is polled: it has no event to wait on
            if simulator.counters["PATCH /lm/deployments"] > 0:
                break
            await asyncio.sleep(0.02)
        simulator.set_faults(Faults())  # the DELETE was applied; only its answer was lost
        final = await asyncio.wait_for(task, 30)
    assert (final.succeeded, final.failed) == (5, 0), final.failures
    assert all(simulator.item(Kind.DEPLOYMENT, i) is None for i in ids)
    assert simulator.responses["PATCH /lm/deployments dropped"] >= 1  # the answer was lost
