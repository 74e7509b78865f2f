#!/usr/bin/env python3
"""Write a CycloneDX 1.5 JSON SBOM of an image's file system.

It lists, each with its version and a package URL (purl):

* every Debian package dpkg has installed (``<root>/var/lib/dpkg/status``), with its
  architecture, source package and maintainer;
* every Python distribution on the interpreter's path (or on the ``--path`` folders), from its
  installed metadata (``*.dist-info`` / ``*.egg-info``), with its license expression when the
  metadata has one, and a sha256: that of the wheel it was installed from when ``--wheels``
  names the folder that wheel came from (a component's own ``hashes``), else, for a
  distribution ``--lock`` pins at that version, the sha256 of each file that lock accepted for
  it (``externalReferences``: ``pip install --require-hashes`` installed one of them);
* the Python interpreter itself when dpkg does not own it (``python:*-slim`` builds CPython
  into /usr/local; the local Debian base's python3 is a Debian package, listed as such);
* the operating system (``/etc/os-release``, ``/etc/debian_version``).

Standard library only, on purpose: the Dockerfile's final stage runs it with the image's own
``python3 -I`` from a bind mount of the build context, as the last step that changes the file
system, so the SBOM describes what the image holds and nothing is installed to write it
(docs/dependencies.md, "Supply chain"). dpkg's status file keeps no hash of the .deb a package
came from, so Debian packages carry none.

    python3 -I hack/image/sbom.py --subject bulk-termination-operator \\
        --lock requirements/runtime.lock --wheels /wheels \\
        --output /usr/share/doc/bulk-termination-operator/sbom.cdx.json

``--root`` reads another file system (dpkg's files, os-release); with it, give the folders to
look for Python distributions in with ``--path`` (the running interpreter's own path would
describe this interpreter, not that root). SOURCE_DATE_EPOCH, when set, is the timestamp.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

SPEC_VERSION = "1.5"
TOOL = "bulk-termination-operator hack/image/sbom.py"
PROPERTY = "bulkterm:sbom:"


class SbomError(Exception):
    """Something the SBOM cannot be written without (said on stderr, exit status 1)."""


# --- Debian packages --------------------------------------------------------------------


def deb822(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian control-style file (dpkg's status): field -> value, with
    continuation lines joined by newlines."""
    fields: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def os_release(root: Path) -> dict[str, str]:
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.is_file():
            out = {}
            for line in path.read_text(errors="replace").splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.startswith("#"):
                    out[key.strip()] = value.strip().strip("\"'")
            return out
    return {}


def purl(kind: str, namespace: str | None, name: str, version: str, **qualifiers: str) -> str:
    """A package URL (github.com/package-url/purl-spec) in its canonical form: name, version
    and qualifier values percent-encoded but for ``:`` (never encoded), qualifiers sorted."""
    path = "/".join(quote(part, safe=":") for part in (namespace, name) if part)
    out = f"pkg:{kind}/{path}@{quote(version, safe=':')}"
    if qualifiers:
        out += "?" + "&".join(
            f"{key}={quote(value, safe=':')}" for key, value in sorted(qualifiers.items()) if value
        )
    return out


def debian_packages(root: Path, release: dict[str, str]) -> list[dict[str, Any]]:
    """One component per package whose dpkg status is "installed" (not config-files, not
    half-installed): the packages that are on the file system."""
    status = root / "var" / "lib" / "dpkg" / "status"
    if not status.is_file():
        print(f"sbom: no {status}: no Debian packages listed", file=sys.stderr)
        return []
    namespace = release.get("ID", "debian")
    distro = "-".join(part for part in (namespace, release.get("VERSION_ID", "")) if part)
    components = []
    for fields in deb822(status.read_text(errors="replace")):
        if fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture", "")
        ref = purl("deb", namespace, name, version, arch=arch, distro=distro)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": name,
            "version": version,
            "purl": ref,
        }
        if fields.get("Maintainer"):
            component["publisher"] = fields["Maintainer"]
        if fields.get("Description"):
            component["description"] = fields["Description"].splitlines()[0]
        properties = [{"name": PROPERTY + "package-type", "value": "deb"}]
        if fields.get("Source"):
            properties.append({"name": PROPERTY + "debian-source", "value": fields["Source"]})
        component["properties"] = properties
        components.append(component)
    return components


def dpkg_owns(root: Path, path: Path) -> bool:
    """Whether ``path`` (absolute, inside ``root``) is a file of an installed Debian package."""
    info = root / "var" / "lib" / "dpkg" / "info"
    if not info.is_dir() or not path.is_relative_to(root):
        return False
    wanted = "/" + str(path.relative_to(root)).lstrip("/")
    for listing in info.glob("*.list"):
        if wanted in listing.read_text(errors="replace").splitlines():
            return True
    return False


# --- Python distributions ---------------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 name normalisation (what purl's pypi type asks for)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``name==version`` pins of a hashed lock (requirements/*.lock) -> (version, sha256s)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw[0].isspace():
            requirement = line.split(";")[0].rstrip(" \\").strip()
            name, sep, version = requirement.partition("==")
            current = normalize(name.split("[")[0]) if sep else None
            if current:
                pins[current] = (version.strip(), [])
        if current:
            pins[current][1].extend(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return pins


def wheel_hashes(folders: Iterable[Path]) -> dict[tuple[str, str], list[str]]:
    """(normalised name, version) -> sha256 of each ``*.whl`` of ``folders`` for that release."""
    out: dict[tuple[str, str], list[str]] = {}
    for folder in folders:
        for wheel in sorted(folder.glob("*.whl")):
            name, version = wheel.name.split("-")[:2]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            out.setdefault((normalize(name), version), []).append(digest)
    return out


def python_distributions(
    paths: Iterable[str],
    root: Path,
    lock: dict[str, tuple[str, list[str]]],
    wheels: dict[tuple[str, str], list[str]],
) -> list[dict[str, Any]]:
    components: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions(path=list(paths)):
        name, version = dist.metadata["Name"], dist.version
        if not name or not version:
            continue
        ref = purl("pypi", None, normalize(name), version)
        if ref in components:  # the same release twice on the path: listed once
            continue
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": name,
            "version": version,
            "purl": ref,
        }
        if dist.metadata["Summary"]:
            component["description"] = dist.metadata["Summary"]
        if dist.metadata["License-Expression"]:
            component["licenses"] = [{"expression": dist.metadata["License-Expression"]}]
        pinned = lock.get(normalize(name))
        installed_from = wheels.get((normalize(name), version), [])
        if len(installed_from) == 1:
            component["hashes"] = [{"alg": "SHA-256", "content": installed_from[0]}]
        elif pinned and pinned[0] == version and pinned[1]:
            component["externalReferences"] = [
                {
                    "type": "distribution",
                    "url": f"https://pypi.org/project/{normalize(name)}/{version}/",
                    "comment": "the files of this release the hashed lock accepted; "
                    "pip --require-hashes installed one of them",
                    "hashes": [{"alg": "SHA-256", "content": h} for h in pinned[1]],
                }
            ]
        location = Path(str(dist.locate_file(""))).resolve()
        try:
            shown = "/" + str(location.relative_to(root.resolve()))
        except ValueError:
            shown = str(location)
        component["properties"] = [
            {"name": PROPERTY + "package-type", "value": "python"},
            {"name": PROPERTY + "location", "value": shown},
        ]
        components[ref] = component
    return list(components.values())


def interpreter(root: Path) -> dict[str, Any] | None:
    """The running CPython, unless a Debian package already lists it."""
    executable = Path(os.path.realpath(sys.executable))
    if dpkg_owns(root, executable):
        return None
    version = platform.python_version()
    ref = purl("generic", None, "python", version)
    return {
        "type": "application",
        "bom-ref": ref,
        "name": "python",
        "version": version,
        "description": f"CPython {version} ({executable})",
        "purl": ref,
        "cpe": f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*",
        "properties": [{"name": PROPERTY + "location", "value": str(executable)}],
    }


# --- the document -----------------------------------------------------------------------


def timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def operating_system(root: Path, release: dict[str, str]) -> dict[str, Any] | None:
    if not release:
        return None
    version = release.get("VERSION_ID", "")
    debian_version = root / "etc" / "debian_version"
    if debian_version.is_file():
        version = debian_version.read_text().strip() or version
    component: dict[str, Any] = {
        "type": "operating-system",
        "bom-ref": "os",
        "name": release.get("ID", "linux"),
        "version": version,
    }
    if release.get("PRETTY_NAME"):
        component["description"] = release["PRETTY_NAME"]
    return component


def sbom(
    *,
    root: Path,
    paths: list[str] | None,
    subject: str,
    lock: dict[str, tuple[str, list[str]]],
    wheels: dict[tuple[str, str], list[str]] | None = None,
) -> dict[str, Any]:
    release = os_release(root)
    search = paths if paths is not None else sys.path
    python = python_distributions(search, root, lock, wheels or {})
    version = next(
        (c["version"] for c in python if normalize(c["name"]) == normalize(subject)), None
    )
    if version is None:
        raise SbomError(f"no Python distribution named {subject!r} on the path")
    components = [*debian_packages(root, release), *python]
    if paths is None:
        components += [c for c in [interpreter(root)] if c]
    components.sort(key=lambda c: (c["type"], c["name"].lower(), c["version"], c["bom-ref"]))
    if (system := operating_system(root, release)) is not None:
        components.insert(0, system)
    stamp = timestamp()
    # The same contents at the same time get the same serial number (reproducible builds).
    digest = hashlib.sha256(json.dumps([stamp, subject, components], sort_keys=True).encode())
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.UUID(bytes=digest.digest()[:16], version=4)}",
        "version": 1,
        "metadata": {
            "timestamp": stamp,
            "tools": {"components": [{"type": "application", "name": TOOL}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": subject,
                "version": version,
            },
        },
        "components": components,
        # What the image holds; the packages' own dependencies are not recorded.
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components]}],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/"), help="the file system (default /)")
    parser.add_argument(
        "--path",
        action="append",
        help="a folder to find Python distributions in (repeatable; default: this interpreter's "
        "sys.path, only with --root /)",
    )
    parser.add_argument("--subject", required=True, help="the image's Python distribution")
    parser.add_argument("--lock", type=Path, help="a hashed lock (requirements/runtime.lock)")
    parser.add_argument(
        "--wheels",
        type=Path,
        action="append",
        default=[],
        help="a folder of the wheels the distributions were installed from (repeatable)",
    )
    parser.add_argument("--output", default="-", help="the file to write (default stdout)")
    args = parser.parse_args(argv)
    if args.path is None and args.root.resolve() != Path("/"):
        parser.error("with --root other than /, give the Python folders with --path")
    try:
        document = sbom(
            root=args.root,
            paths=args.path,
            subject=args.subject,
            lock=read_lock(args.lock) if args.lock else {},
            wheels=wheel_hashes(args.wheels),
        )
    except (SbomError, OSError) as exc:
        print(f"sbom: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
