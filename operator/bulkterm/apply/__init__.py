"""``bulkterm apply``: the engine without Kubernetes, for pipelines, laptops and demos.

:mod:`~bulkterm.apply.command` is the command (its exit codes are part of the interface),
:mod:`~bulkterm.apply.terminal` hosts each run on the terminal, :mod:`~bulkterm.apply.inputs`
reads ``-f``, :mod:`~bulkterm.apply.output` prints, and :mod:`~bulkterm.apply.embedded` supplies
the credentials (a service key, or the embedded simulator of ``--simulator``).
"""

from bulkterm.apply.command import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_TERMINATED,
    run_apply,
)
from bulkterm.apply.options import ApplyOptions

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "ApplyOptions",
    "run_apply",
]
