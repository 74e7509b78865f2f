"""What every ``kubectl bulkterm`` command shares: kubectl's flags for the cluster, and how a
refusal ends the command (one line on stderr and the exit code, never a traceback)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from bulkterm.plugin.kube import PluginError
from bulkterm.plugin.render import UnreadableStatus

F = TypeVar("F", bound=Callable[..., Any])


def kube_options(function: F) -> F:
    """kubectl's flags for finding the cluster and the namespace."""
    for decorator in reversed(
        [
            click.option(
                "--kubeconfig",
                metavar="PATH",
                help="Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).",
            ),
            click.option("--context", help="The kubeconfig context to use."),
            click.option(
                "-n",
                "--namespace",
                help="Namespace of the BulkTermination (default: the context's).",
            ),
        ]
    ):
        function = decorator(function)
    return function


def fail(error: PluginError) -> NoReturn:
    click.echo(f"error: {error.message}", err=True)
    sys.exit(error.code)


def reported(function: F) -> F:
    """One line on stderr and the exit code for what the API server or the status said."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PluginError as error:
            fail(error)
        except UnreadableStatus as error:
            name = kwargs.get("name") or "it"
            fail(PluginError(f"the status of {name} is not one this version reads: {error}"))

    return wrapper  # type: ignore[return-value]
