"""Reading ``-f`` arguments as ``kubectl apply -f`` does: files, directories, stdin."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

from bulkterm.manifest import Manifest, ManifestError, load_manifests

#: Files ``-f DIR`` reads, as ``kubectl apply -f DIR`` does.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def read_manifests(files: Sequence[str], *, recursive: bool = False) -> list[Manifest]:
    manifests: list[Manifest] = []
    problems: list[str] = []
    for name in files:
        try:
            if name == "-":
                manifests.extend(load_manifests(sys.stdin.read(), source="stdin"))
                continue
            for path in _manifest_files(name, recursive=recursive):
                manifests.extend(load_manifests(_read_file(path), source=path))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    seen: dict[tuple[str | None, str], int] = {}
    for m in manifests:
        key = (m.namespace, m.name)
        if key in seen:
            problems.append(f"document {m.document} ({m.name}): the name {m.name!r} is used twice")
        seen[key] = m.document
    if problems:
        raise ManifestError(problems)
    return manifests


def _manifest_files(name: str, *, recursive: bool) -> list[str]:
    """``name`` itself, or for a directory (as ``kubectl apply -f DIR [-R]``) its ``.yaml``,
    ``.yml`` and ``.json`` files in lexical order, subdirectories (not followed through
    symlinks) in their place when ``recursive``."""
    if not os.path.isdir(name):
        return [name]
    found = list(_walk(name, recursive=recursive))
    if not found:
        where = " or its subdirectories" if recursive else ""
        raise ManifestError([f"{name}: no .yaml, .yml or .json files in it{where}"])
    return found


def _walk(directory: str, *, recursive: bool) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise ManifestError([f"{directory}: cannot read ({exc.strerror})"]) from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(entry.path, recursive=True)
        elif entry.name.endswith(MANIFEST_SUFFIXES) and entry.is_file():
            yield entry.path


def _read_file(name: str) -> str:
    try:
        with open(name, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ManifestError([f"{name}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ManifestError([f"{name}: not UTF-8 text"]) from None
