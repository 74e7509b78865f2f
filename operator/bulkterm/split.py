"""``bulkterm split``: one BulkTermination too large for the API server, as several that fit.

A BulkTermination holds at most 10,000 targets (and ``spec.targets`` 5,000): beyond that the
object no longer fits etcd, or the annotation client-side ``kubectl apply`` writes. For more,
this writes several BulkTerminations in the compact form, each at most ``--max-targets`` ids of
one kind and one target status, named ``<name>-1``, ``<name>-2``, …, with the rest of the spec
(connection, batching, deadlines, dryRun) and the labels copied. The input is validated exactly
as ``bulkterm apply`` validates, but for its size, so every output document is one the API
server and ``bulkterm apply`` take. The parts need no grant the original did not: spending a
Secret's key is RBAC's verb ``use`` on it, checked at admission against each part's author
(:func:`secret_note` says so, and when a name grant would matter).

Pure functions (:func:`split_manifest`) and a thin click command: the split is tested without a
terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.manifest import NAME, Manifest, ManifestError, load_manifests
from bulkterm.spec import API_GROUP, API_VERSION, KIND, MAX_TARGETS

_TARGET_FIELDS = {"listed", "deployments", "executions"}
#: A Secret's name grant (``bulkterm.k8s.secret_use.GRANT_ANNOTATION``; not imported, so that
#: ``bulkterm split`` loads no Kubernetes client).
NAME_GRANT = f"{API_GROUP}/allowed-bulkterminations"
_COMPACT_FIELD = {Kind.DEPLOYMENT: "deployments", Kind.EXECUTION: "executions"}


class SplitError(ValueError):
    """The split cannot be written; the message says which document and why."""


def _groups(manifest: Manifest) -> Iterator[tuple[Kind, TargetStatus, list[str]]]:
    """The targets by (kind, target status), each group in the order written."""
    groups: dict[tuple[Kind, TargetStatus], list[str]] = {}
    for target in manifest.spec.targets:
        groups.setdefault((target.kind, target.target_status), []).append(target.id)
    for (kind, status), ids in groups.items():
        yield kind, status, ids


def split_manifest(manifest: Manifest, max_targets: int = MAX_TARGETS) -> list[dict[str, Any]]:
    """BulkTermination documents that together hold ``manifest``'s targets, each at most
    ``max_targets`` ids, in the compact form. One that already fits comes back as one
    document (under its own name), so the command can be run on any input."""
    if not 1 <= max_targets <= MAX_TARGETS:
        raise SplitError(f"--max-targets must be between 1 and {MAX_TARGETS}, got {max_targets}")
    chunks = [
        (kind, status, ids[start : start + max_targets])
        for kind, status, ids in _groups(manifest)
        for start in range(0, len(ids), max_targets)
    ]
    rest = manifest.spec.model_dump(
        mode="json", by_alias=True, exclude_unset=True, exclude=_TARGET_FIELDS
    )
    width = len(str(len(chunks)))
    documents = []
    for number, (kind, status, ids) in enumerate(chunks, start=1):
        name = manifest.name if len(chunks) == 1 else f"{manifest.name}-{number:0{width}d}"
        if len(name) > 253 or not NAME.fullmatch(name):
            raise SplitError(
                f"document {manifest.document} ({manifest.name}): the name {name!r} of part "
                f"{number} is too long for Kubernetes (at most 253 characters); shorten "
                "metadata.name"
            )
        metadata: dict[str, Any] = {"name": name}
        if manifest.namespace:
            metadata["namespace"] = manifest.namespace
        if manifest.labels:
            metadata["labels"] = dict(manifest.labels)
        spec = {_COMPACT_FIELD[kind]: {"targetStatus": status.value, "ids": ids}, **rest}
        documents.append(
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": KIND,
                "metadata": metadata,
                "spec": spec,
            }
        )
    return documents


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SplitError(f"{path}: cannot be read ({exc.__class__.__name__})") from None


@click.command("split")
@click.option(
    "-f",
    "--filename",
    "path",
    metavar="PATH",
    required=True,
    help="File with one or more BulkTermination documents of any size ('-' for stdin).",
)
@click.option(
    "--max-targets",
    type=int,
    default=MAX_TARGETS,
    show_default=True,
    help=f"Ids per written BulkTermination (1 to {MAX_TARGETS}).",
)
def split_command(path: str, max_targets: int) -> None:
    """Write BulkTerminations too large for the API server as several that fit.

    \b
    The documents go to stdout (YAML, '---' between them), a summary to stderr.
    Each holds ids of one kind and one target status in the compact form
    (spec.deployments or spec.executions), named NAME-1, NAME-2, …; the rest of
    the spec and the labels are copied. Apply them all at once:
      bulkterm split -f big.yaml > parts.yaml && kubectl apply --server-side -f parts.yaml
    The parts need no further grant on the Secret: their author needs the verb
    `use` on it, as for the original (a name grant must cover the parts' names
    only where the operator allows name grants).
    Exit status: 0 written, 2 invalid input (nothing written).
    """
    try:
        manifests = load_manifests(_read(path), source=path, unbounded=True)
        parts = [(m, split_manifest(m, max_targets)) for m in manifests]
    except ManifestError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    except SplitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    documents = [d for _, docs in parts for d in docs]
    click.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)
    for manifest, docs in parts:
        names = [d["metadata"]["name"] for d in docs]
        shown = names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"
        click.echo(
            f"{manifest.name}: {len(manifest.spec.targets)} targets in {len(docs)} "
            f"BulkTermination(s): {shown}",
            err=True,
        )
        if len(docs) > 1:
            click.echo(f"note: {secret_note(manifest)}", err=True)


def secret_note(manifest: Manifest) -> str:
    """What the parts need to spend the original's key: nothing new. Its use is RBAC's verb
    ``use`` on the Secret, checked at admission against whoever creates each part, whatever
    its name (docs/security.md, "Who may spend a key"); only a Secret's name grant, honoured
    where the operator allows name grants, depends on the parts' names."""
    ref = manifest.spec.connection.secret_ref
    secret = ref.name if ref is not None else "(the Secret of spec.connection.secretRef)"
    namespace = f" -n {manifest.namespace}" if manifest.namespace else ""
    return (
        f"the parts spend the key of Secret {secret} as {manifest.name} would, and need no "
        f"further grant: whoever creates them needs the verb `use` on that Secret, as for "
        f"{manifest.name} (`kubectl{namespace} auth can-i use secret/{secret}`). Only where "
        "the operator allows name grants (BULKTERM_ALLOW_NAME_GRANTS, Helm "
        "secretUse.allowNameGrants) and cannot check `use` (no admission policy) does a "
        f"name grant count; there the Secret's annotation {NAME_GRANT} must name the parts "
        f"too, e.g. with the pattern {manifest.name}-*"
    )
