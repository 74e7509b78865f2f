"""The ``bulkterm`` command: ``operator``, ``apply``, ``split``, ``simulator``, and the
``kubectl bulkterm`` commands ``status``, ``suspend`` and ``resume``.

Subcommands import their machinery lazily: ``bulkterm apply`` on a laptop never loads kopf, and
``bulkterm operator`` never loads the simulator.
"""

from __future__ import annotations

import importlib
import sys

import click

from bulkterm import __version__


class LazyGroup(click.Group):
    """Subcommands imported on first use (click's documented lazy-loading pattern)."""

    #: name → "module:attribute" of the click command.
    lazy: dict[str, str] = {
        "operator": "bulkterm.k8s.command:operator_command",
        "simulator": "bulkterm.simulator.command:simulator_command",
        "split": "bulkterm.split:split_command",
        # Also `kubectl bulkterm …` (the kubectl-bulkterm executable, bulkterm.plugin.command).
        "status": "bulkterm.plugin.command:status_command",
        "suspend": "bulkterm.plugin.command:suspend_command",
        "resume": "bulkterm.plugin.command:resume_command",
        "plan": "bulkterm.plugin.command:plan_command",
        "approve": "bulkterm.plugin.command:approve_command",
        "restore": "bulkterm.plugin.restore:restore_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bulkterm")
def main() -> None:
    """Stop and delete SAP AI Core deployments and executions in bulk, safely."""


@main.command("apply")
@click.option(
    "-f",
    "--filename",
    "files",
    metavar="PATH",
    multiple=True,
    required=True,
    help="File with one or more BulkTermination documents (YAML or JSON; '-' for stdin), or "
    "a directory: its *.yaml, *.yml and *.json files, in name order. Repeatable.",
)
@click.option(
    "-R",
    "--recursive",
    is_flag=True,
    help="With -f DIR, also read the files in its subdirectories.",
)
@click.option(
    "--service-key",
    type=click.Path(dir_okay=False),
    help="SAP AI Core service key JSON. Default: the AICORE_* environment variables.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=True),
    envvar="BULKTERM_CA_BUNDLE",
    help="PEM file of the CA certificates to trust for the AI API and its token endpoint "
    "instead of the public CAs (a TLS-inspecting proxy, a private CA). Env BULKTERM_CA_BUNDLE. "
    "TLS is always verified.",
)
@click.option(
    "--allow-plain-http",
    is_flag=True,
    envvar="BULKTERM_ALLOW_PLAIN_HTTP",
    help="Accept a service key whose URLs are plain HTTP (a local simulator, tests). Env "
    "BULKTERM_ALLOW_PLAIN_HTTP. Without it such a key is refused (exit 2): its secret and "
    "tokens would cross the network readable.",
)
@click.option(
    "--simulator",
    is_flag=True,
    help="Run against an embedded AI API simulator seeded with the manifest's targets.",
)
@click.option("--resource-group", help="AI-Resource-Group (overrides the manifest).")
@click.option("--dry-run", is_flag=True, help="Observe and print the plan; send no write.")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    help="Give up after this many seconds (each run ends Failed DeadlineExceeded, naming the "
    "last error). Shortens the manifest's activeDeadlineSeconds, never lengthens it.",
)
@click.option(
    "--stall-after",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds the AI API may stay unreadable (unreachable, not the AI API, an outage) "
    "before the run says Stalled on stderr; one that answers but is not the AI API then "
    "ends the run (exit 2) unless --timeout lets it keep trying.",
)
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
    recursive: bool,
    service_key: str | None,
    ca_bundle: str | None,
    allow_plain_http: bool,
    simulator: bool,
    resource_group: str | None,
    dry_run: bool,
    timeout: int | None,
    stall_after: float,
    output: str,
) -> None:
    """Run BulkTerminations to completion without a cluster and print their final status.

    \b
    Exit status:
      0    all targets reached their target status (--dry-run: the plan was made
           and predicts no failure)
      1    some target or run failed (stderr summarises the failures by reason;
           --dry-run: the plan predicts that some target would fail)
      2    invalid input or credentials (nothing was sent): a bad manifest, a
           missing or malformed service key, credentials or a resource group the
           AI API refused before any write, an unusable --ca-bundle, a server
           certificate that did not verify, or a URL that answers but not as the
           AI API (see --stall-after)
      130  interrupted (Ctrl-C, SIGINT)
      143  terminated (SIGTERM, e.g. a cancelled CI job)
    After 130 and 143 the status as far as it got is still printed on stdout.
    """
    from bulkterm.apply import ApplyOptions, run_apply

    if service_key and simulator:
        raise click.UsageError("--service-key and --simulator exclude each other")
    code = run_apply(
        ApplyOptions(
            files=files,
            recursive=recursive,
            service_key=service_key,
            ca_bundle=ca_bundle,
            allow_plain_http=allow_plain_http,
            simulator=simulator,
            resource_group=resource_group,
            dry_run=dry_run,
            timeout_seconds=timeout,
            stall_after_seconds=stall_after,
            output=output,
        )
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
