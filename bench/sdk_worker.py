"""Child process of the fleet benchmark: the SDK script alone (``bench/fleet.py`` starts it).

Reads ``{"key", "resource_group", "jobs": [[kind, id, target], ...], "deadline_s"}`` (a JSON
file named on the command line), runs :func:`sdk_baseline.cleanup` against the simulator the
parent runs, and prints the outcome as JSON. A process of its own, as ``bulkterm apply`` is
for the engine, so that the parent can read the script's peak RSS and CPU seconds from
``wait4`` and compare them with the engine's on equal terms (interpreter start-up included in
both).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from ai_api_client_sdk.models.target_status import TargetStatus

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sdk_baseline  # beside this file: ``bench/`` is not a package


def main() -> None:
    order = json.loads(Path(sys.argv[1]).read_text())
    jobs = [
        sdk_baseline.Job(kind=kind, id=id_, target=TargetStatus(target))
        for kind, id_, target in order["jobs"]
    ]
    outcome = sdk_baseline.cleanup(
        order["key"], jobs, order["resource_group"], deadline_s=order["deadline_s"]
    )
    json.dump(
        {
            "done": dict(Counter(outcome.done.values())),
            "failed": len(outcome.failed),
            "failures": [f"{j.kind}/{j.id}: {why}" for j, why in list(outcome.failed.items())[:20]],
            "rounds": outcome.rounds,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
