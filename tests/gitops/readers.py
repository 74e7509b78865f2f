"""The three readers of a BulkTermination's health, run here the way their tools run them.

* :func:`argocd_health`: ``deploy/argocd/.../health.lua`` in Lua 5.1 (lupa's ``lua51``) with
  only what Argo CD (util/lua/lua.go) opens for a check from argocd-cm: the base and table
  libraries, ``os.time``/``os.date`` and ``require`` of those; no string or math library, and
  no string methods (``("x"):upper()``) either, as gopher-lua sets the string metatable only
  when it opens the string library. The result is read as Argo CD reads it: ``status`` and
  ``message``, and an unknown status becomes ``Unknown`` / "Lua returned an invalid health
  status".
* :func:`flux_health`: the ``healthCheckExprs`` of ``deploy/flux/kustomization.yaml`` in the
  order Flux's StatusEvaluator (fluxcd/pkg runtime/cel) applies them: an
  ``observedGeneration`` that differs from ``metadata.generation`` is InProgress before any
  expression runs; then inProgress, failed, current; none true is InProgress. Each
  expression sees the object's top-level fields as variables (``status``, ``metadata``, ...).
  cel-python stands in for cel-go: the expressions use core CEL only (``has``, ``exists``,
  ``in``), which both implement alike.
* :func:`kstatus`: kstatus's own ``status.Compute`` (sigs.k8s.io/cli-utils, ``hack/kstatus``).

Why here and not in the tests: the tests state what each tool concludes for each captured
object; how a tool is made to run is one concern, kept in one place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import celpy
import yaml
from celpy.adapter import json_to_cel
from celpy.celtypes import BoolType
from lupa import lua51  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd" / "aiapi.bulkops.dev" / "BulkTermination"
HEALTH_LUA = ARGOCD / "health.lua"
HEALTH_TEST = ARGOCD / "health_test.yaml"
TESTDATA = ARGOCD / "testdata"
FLUX_KUSTOMIZATION = ROOT / "deploy" / "flux" / "kustomization.yaml"
KSTATUS_BUILD = ROOT / "hack" / "kstatus" / "build.sh"

#: Argo CD's valid health codes (isValidHealthStatusCode).
ARGOCD_STATUSES = ("Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing")

# The sandbox: a fresh environment holding Lua 5.1's base functions (as gopher-lua's
# OpenBase registers them), table, the safe os and a require that knows only those.
_SANDBOX = """
function(script, obj)
  local chunk, err = loadstring(script, "=health.lua")
  if chunk == nil then error(err, 0) end
  local env = {}
  for _, name in ipairs({
    "assert", "error", "getfenv", "getmetatable", "ipairs", "load", "loadstring", "next",
    "pairs", "pcall", "print", "rawequal", "rawget", "rawset", "select", "setfenv",
    "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
  }) do
    env[name] = _G[name]
  end
  local tab = {}
  for k, v in pairs(table) do tab[k] = v end
  local os_safe = {time = os.time, date = os.date}
  local modules = {table = tab, os = os_safe}
  env.table, env.os, env._G = tab, os_safe, env
  env.require = function(name)
    local m = modules[name]
    if m == nil then error("module " .. tostring(name) .. " not found", 2) end
    return m
  end
  env.obj = obj
  debug.setmetatable("", nil)
  setfenv(chunk, env)
  return chunk()
end
"""


#: What a Lua error raises (a syntax error, indexing nil, a library Argo CD does not open).
LuaError: type[Exception] = lua51.LuaError


@dataclass(frozen=True)
class Health:
    """Argo CD's HealthStatus: what the UI and ``argocd app wait --health`` show."""

    status: str
    message: str


def load(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(path.read_text()))


def captured(name: str) -> dict[str, Any]:
    """A BulkTermination captured by hack/gitops/capture.py (``running``, ``new``, ...)."""
    return load(TESTDATA / f"{name}.yaml")


def _to_lua(runtime: Any, value: Any) -> Any:
    """Like Argo CD's decodeValue: maps and lists become tables, null becomes nil."""
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def argocd_health(obj: dict[str, Any], script: str | None = None) -> Health:
    """Run ``health.lua`` (or ``script``) on ``obj`` as Argo CD does; raise on a Lua error."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    run = runtime.eval(_SANDBOX)
    result = run(script if script is not None else HEALTH_LUA.read_text(), _to_lua(runtime, obj))
    kind = lua51.lua_type(result) or type(result).__name__
    if kind != "table":
        raise TypeError(f"expect table output from Lua script, not {kind}")
    status = result["status"] or ""
    if status not in ARGOCD_STATUSES:
        return Health("Unknown", "Lua returned an invalid health status")
    return Health(str(status), str(result["message"] or ""))


def health_tests() -> list[tuple[str, Health]]:
    """The cases of ``health_test.yaml``: (inputPath, expected health)."""
    cases = load(HEALTH_TEST)["tests"]
    return [
        (c["inputPath"], Health(c["healthStatus"]["status"], c["healthStatus"].get("message", "")))
        for c in cases
    ]


def flux_expressions() -> dict[str, str]:
    """The BulkTermination entry of the Kustomization's ``healthCheckExprs``."""
    (entry,) = [
        e
        for e in load(FLUX_KUSTOMIZATION)["spec"]["healthCheckExprs"]
        if e["kind"] == "BulkTermination"
    ]
    return {k: v for k, v in entry.items() if k in ("current", "failed", "inProgress")}


def flux_health(obj: dict[str, Any], exprs: dict[str, str] | None = None) -> str:
    """Flux's verdict (Current, Failed or InProgress); raise when an expression errs, as
    Flux does (the health check then waits until its timeout)."""
    exprs = exprs if exprs is not None else flux_expressions()
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    if observed is not None and generation is not None and observed != generation:
        return "InProgress"
    env = celpy.Environment()
    activation = {k: json_to_cel(v) for k, v in obj.items()}
    for key, verdict in (
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ):
        if not exprs.get(key):
            continue
        value = env.program(env.compile(exprs[key])).evaluate(activation)
        if not isinstance(value, BoolType):
            raise TypeError(f"failed to evaluate CEL expression as boolean: {exprs[key]!r}")
        if bool(value):
            return verdict
    return "InProgress"


class GoMissing(RuntimeError):
    """Go is not installed, so hack/kstatus cannot be built."""


def kstatus_binary() -> Path:
    """hack/kstatus, built on first use and cached outside the clone (hack/kstatus/build.sh)."""
    # build.sh answers from its cache first; it exits 2 only when it would have to build
    # and Go is missing.
    result = subprocess.run(
        ["bash", str(KSTATUS_BUILD)], capture_output=True, text=True, timeout=900
    )
    if result.returncode == 2 and shutil.which("go") is None:
        raise GoMissing(result.stderr.strip())
    if result.returncode != 0:
        raise RuntimeError(f"hack/kstatus/build.sh failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def kstatus(*files: Path) -> dict[str, dict[str, str]]:
    """kstatus's verdict per file: {"status": Current|InProgress|Failed|..., "message": ...}."""
    out = subprocess.run(
        [str(kstatus_binary()), *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {
        Path(v["file"]).name: {"status": v["status"], "message": v["message"]}
        for v in map(json.loads, out.splitlines())
    }


#: What kstatus (and so Flux) says of each captured object (``testdata/<name>.yaml``).
STATUS_OF_CAPTURE = {
    "new": "InProgress",
    "running": "InProgress",
    "stalled": "Failed",
    "complete": "Current",
    "failed": "Failed",
    "dry-run": "Current",
    "spec-changed": "InProgress",
    "acknowledged": "Current",
    "suspended": "InProgress",
    "awaiting-approval": "InProgress",
}
