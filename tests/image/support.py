"""What the image tests share: the paths, the pins of a hashed lock, and the SBOM checks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

ROOT = Path(__file__).resolve().parents[2]
HACK = ROOT / "hack" / "image"
DOCKERFILE = ROOT / "Dockerfile"
SBOM_SCRIPT = HACK / "sbom.py"
BASE_PACKAGES_SH = HACK / "base-packages.sh"
#: Where the Dockerfile's final stage writes the SBOM inside the image.
SBOM_IN_IMAGE = "/usr/share/doc/bulk-termination-operator/sbom.cdx.json"
PROPERTY = "bulkterm:sbom:"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path) -> dict[str, tuple[str, set[str]]]:
    """``name==version`` entries of a hashed lock -> (version, its sha256 hashes)."""
    pins: dict[str, tuple[str, set[str]]] = {}
    for entry in re.split(r"\n(?=\S)", path.read_text()):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", entry)
        if match:
            hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
            pins[normalize(match[1])] = (match[2], hashes)
    return pins


def schema_errors(document: dict[str, Any]) -> str | None:
    """What the CycloneDX 1.5 JSON schema (cyclonedx-python-lib's copy) says is wrong."""
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    return None if error is None else str(error)


def purl_problems(document: dict[str, Any]) -> list[str]:
    """Components whose purl packageurl-python cannot parse, does not write the same way
    (canonical form), or that name another version than the component's."""
    problems = []
    for component in document["components"]:
        if "purl" not in component:
            continue
        purl = PackageURL.from_string(component["purl"])
        if purl.to_string() != component["purl"]:
            problems.append(f"{component['purl']} is not canonical: {purl.to_string()}")
        if purl.version != component["version"]:
            problems.append(f"{component['purl']}: version is not {component['version']}")
        if component["bom-ref"] != component["purl"]:
            problems.append(f"{component['purl']}: bom-ref {component['bom-ref']}")
    return problems


def of_type(document: dict[str, Any], package_type: str) -> dict[str, dict[str, Any]]:
    """The components of one kind (``deb`` or ``python``), by name (a Python one's normalised:
    Debian names are already, and a dot in them matters)."""
    out = {}
    for component in document["components"]:
        props = {p["name"]: p["value"] for p in component.get("properties", [])}
        if props.get(PROPERTY + "package-type") == package_type:
            name = component["name"]
            out[normalize(name) if package_type == "python" else name] = component
    return out


def sha256s(component: dict[str, Any]) -> set[str]:
    return {h["content"] for h in component.get("hashes", []) if h["alg"] == "SHA-256"}
