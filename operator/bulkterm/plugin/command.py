"""``kubectl bulkterm``: the click group behind the ``kubectl-bulkterm`` executable.

kubectl runs an executable named ``kubectl-<name>`` on the PATH for ``kubectl <name>`` (krew's
convention), passing the rest of the command line; the flags kubectl users type
(``--kubeconfig``, ``--context``, ``-n``) are therefore the plugin's own. The same commands are
``bulkterm status|suspend|resume`` (:mod:`bulkterm.cli`), and ``split`` is ``bulkterm split``.

Exit status: 0 done; 1 the API server said no (not found, forbidden, unreachable) or the
request would do nothing (suspending a finished run); 2 usage (bad flags, no kubeconfig).
"""

from __future__ import annotations

import click
from rich.console import Console

from bulkterm import __version__
from bulkterm.plugin.flags import kube_options, reported
from bulkterm.plugin.kube import BulkTerminations, KubeOptions, PluginError
from bulkterm.plugin.render import (
    SUSPENDED_MEANS,
    UnreadableStatus,
    as_data,
    ending,
    record_of,
    render,
    render_plan,
)
from bulkterm.plugin.restore import restore_command
from bulkterm.spec import API_GROUP, APPROVED_PLAN_ANNOTATION
from bulkterm.split import split_command


def _connect(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> BulkTerminations:
    return BulkTerminations(
        KubeOptions(kubeconfig=kubeconfig, context=context, namespace=namespace)
    )


@click.command("status")
@click.argument("name")
@kube_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml"]),
    help="Print the status as data instead of text.",
)
@click.option("--all-ids", is_flag=True, help="List every id, not the first few of each group.")
@reported
def status_command(
    name: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    output: str | None,
    all_ids: bool,
) -> None:
    """Show where a BulkTermination stands: Ready, progress, what is in flight, failures by
    reason, the frozen selection, and whether it is suspended."""
    obj = _connect(kubeconfig, context, namespace).get(name)
    if output:
        click.echo(as_data(obj, output), nl=False)
        return
    render(obj, _console(), all_ids=all_ids)


def _set_suspend(name: str, suspend: bool, options: KubeOptions) -> None:
    api = BulkTerminations(options)
    what = f"bulktermination.{API_GROUP}/{name}"
    obj = api.get(name)
    try:
        end = ending(record_of(obj))
    except UnreadableStatus:
        end = None
    if end is not None:
        verb = "suspend" if suspend else "resume"
        raise PluginError(
            f"{what} in namespace {api.namespace} is already finished ({end.type} {end.reason}): "
            f"a finished run never sends again, so {verb} would do nothing"
        )
    if bool((obj.get("spec") or {}).get("suspend")) == suspend:
        state = "suspended" if suspend else "not suspended"
        click.echo(f"{what} is already {state}; nothing changed")
        return
    patched = api.merge_patch(name, {"spec": {"suspend": suspend}})
    generation = (patched.get("metadata") or {}).get("generation")
    if suspend:
        click.echo(
            f"{what} suspended (spec.suspend: true, generation {generation}): {SUSPENDED_MEANS}; "
            "activeDeadlineSeconds does not run out meanwhile.\n"
            f"Resume with: kubectl bulkterm resume {name} -n {api.namespace}"
        )
    else:
        click.echo(
            f"{what} resumed (spec.suspend: false, generation {generation}): the operator sends "
            "again from its record; activeDeadlineSeconds counts anew."
        )


@click.command("suspend")
@click.argument("name")
@kube_options
@reported
def suspend_command(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Suspend a BulkTermination (spec.suspend: true), as a Job: nothing new is sent to the AI
    API; actions already sent are still watched and recorded."""
    _set_suspend(name, True, KubeOptions(kubeconfig, context, namespace))


@click.command("resume")
@click.argument("name")
@kube_options
@reported
def resume_command(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Resume a suspended BulkTermination (spec.suspend: false): it goes on from its record."""
    _set_suspend(name, False, KubeOptions(kubeconfig, context, namespace))


@click.command("plan")
@click.argument("name")
@kube_options
@click.option("--all-ids", is_flag=True, help="List every planned target the status holds.")
@reported
def plan_command(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None, all_ids: bool
) -> None:
    """Show the plan a BulkTermination waits with (spec.requireApproval) or made (dryRun):
    what would be stopped, deleted, left and predicted to fail, and the digest to approve."""
    render_plan(_connect(kubeconfig, context, namespace).get(name), _console(), all_ids=all_ids)


@click.command("approve")
@click.argument("name")
@kube_options
@click.option("--yes", "-y", is_flag=True, help="Approve without asking.")
@reported
def approve_command(
    name: str, kubeconfig: str | None, context: str | None, namespace: str | None, yes: bool
) -> None:
    """Approve the plan a BulkTermination waits with (spec.requireApproval): show it, ask (or
    --yes), then write its digest to the annotation aiapi.bulkops.dev/approved-plan. Needs the
    verb approve on the BulkTermination (the API server checks it)."""
    _approve(name, KubeOptions(kubeconfig, context, namespace), yes=yes)


def _approve(name: str, options: KubeOptions, *, yes: bool) -> None:
    api = BulkTerminations(options)
    what = f"bulktermination.{API_GROUP}/{name}"
    obj = api.get(name)
    record = record_of(obj)
    if not (obj.get("spec") or {}).get("requireApproval"):
        raise PluginError(f"{what} does not require approval (spec.requireApproval is false)")
    if record.approved_plan:
        click.echo(f"{what} was approved already ({record.approved_plan}); nothing changed")
        return
    if record.plan is None or not record.plan.digest:
        raise PluginError(f"{what} has no plan yet: the operator writes it first; try again")
    render_plan(obj, _console())
    digest = record.plan.digest
    if not yes and not click.confirm(f"Approve this plan ({digest})?", default=False):
        raise PluginError("not approved; nothing changed")
    api.merge_patch(name, {"metadata": {"annotations": {APPROVED_PLAN_ANNOTATION: digest}}})
    click.echo(
        f"{what} approved: {APPROVED_PLAN_ANNOTATION}={digest}. The operator sends once its "
        "next look still finds this plan; if the targets moved meanwhile, the plan and its "
        "digest change and it waits for a new approval."
    )


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubectl-bulkterm")
def main() -> None:
    """kubectl bulkterm: read and steer BulkTerminations in a cluster."""


main.add_command(status_command)
main.add_command(suspend_command)
main.add_command(resume_command)
main.add_command(plan_command)
main.add_command(approve_command)
main.add_command(split_command)
main.add_command(restore_command)
