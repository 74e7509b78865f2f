"""The ``bulkterm`` command: ``operator``, ``apply`` and ``simulator``.

Subcommands import their machinery lazily: ``bulkterm apply`` on a laptop never loads kopf, and
``bulkterm operator`` never loads the simulator.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from bulkterm import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkterm")
def main() -> None:
    """Stop and delete SAP AI Core deployments and executions in bulk, safely."""


@main.command("apply")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    help="YAML file with one or more BulkTermination documents ('-' for stdin). Repeatable.",
)
@click.option(
    "--service-key",
    type=click.Path(dir_okay=False),
    help="SAP AI Core service key JSON. Default: the AICORE_* environment variables.",
)
@click.option(
    "--simulator",
    is_flag=True,
    help="Run against an embedded AI API simulator seeded with the manifest's targets.",
)
@click.option("--resource-group", help="AI-Resource-Group (overrides the manifest).")
@click.option("--dry-run", is_flag=True, help="Observe and print the plan; send no write.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Format of the final status printed on stdout.",
)
def apply_command(
    files: tuple[str, ...],
    service_key: str | None,
    simulator: bool,
    resource_group: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Run BulkTerminations to completion without a cluster and print their final status.

    Exit status: 0 all targets reached their target status, 1 some failed, 2 invalid input or
    credentials (nothing was sent), 130 interrupted.
    """
    from bulkterm.apply import ApplyOptions, run_apply

    if service_key and simulator:
        raise click.UsageError("--service-key and --simulator exclude each other")
    code = run_apply(
        ApplyOptions(
            files=files,
            service_key=service_key,
            simulator=simulator,
            resource_group=resource_group,
            dry_run=dry_run,
            output=output,
        )
    )
    sys.exit(code)


def _mount_lazy(name: str, module: str, attr: str, help_text: str) -> None:
    class _Lazy(click.Command):
        def _real(self) -> click.Command:
            imported = __import__(module, fromlist=[attr])
            command: click.Command = getattr(imported, attr)
            return command

        def get_params(self, ctx: click.Context) -> list[click.Parameter]:
            return self._real().get_params(ctx)

        def invoke(self, ctx: click.Context) -> Any:
            return self._real().invoke(ctx)

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            return self._real().parse_args(ctx, args)

        def get_help(self, ctx: click.Context) -> str:
            return self._real().get_help(ctx)

    main.add_command(_Lazy(name, help=help_text, short_help=help_text))


_mount_lazy(
    "simulator",
    "bulkterm.simulator.command",
    "simulator_command",
    "Run a local AI API simulator (a sandbox for pipelines, demos and tests).",
)
_mount_lazy(
    "operator",
    "bulkterm.k8s.command",
    "operator_command",
    "Run the Kubernetes operator that reconciles BulkTermination resources.",
)


if __name__ == "__main__":
    main()
