"""Benchmark: the operator against ``bulkterm apply`` on the same 10,000-target work.

Both run the same engine; the operator adds Kubernetes around it (kopf, the watch, status
writes of a ~700 KB object). This measures what that costs, in one run, so the ratio is not
spoilt by a machine that is busier at another time:

* a real kube-apiserver + etcd (``tests/kube/controlplane.py``, binaries from
  ``hack/kube/build.sh``) with the CRD, a namespace and a granted service-key Secret;
* an AI API simulator (in this process, over real HTTP on 127.0.0.1) seeded with the targets
  in the mix every benchmark uses (``common.seed_simulator``), stop taking 2.5 s and
  deletion 2 s;
* ``bulkterm operator`` (a subprocess, admin kubeconfig) running one CR created with
  ``kubectl create -f`` from the manifest file: wall time from the create to the watch event
  that carries ``Complete=True``;
* ``bulkterm apply -f`` (a subprocess) on the same manifest file against a fresh simulator with
  the same seed: wall time of the process.

Reported: wall time, AI API requests by kind (counted by the simulator), peak RSS and CPU
seconds of each process, the operator's status PATCHes (audit log) and the watch events of the
CR (count and bytes, seen by a watch of our own, as any client of the API server would get
them), the size of the object at the end, the time to the first AI API request, and the ratio
operator / apply. ``--profile DIR`` attaches py-spy to the operator (raw stacks in DIR).

    .venv/bin/python bench/operator_vs_apply.py                  # 10,000 targets (~2 min)
    .venv/bin/python bench/operator_vs_apply.py --targets 1000 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bulkterm.simulator import SimulatorConfig, SimulatorThread
from bulkterm.spec import BulkTerminationSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import (  # beside this file: ``bench/`` is not a package
    BULKTERMINATIONS,
    NAMESPACE,
    ROOT,
    ControlPlane,
    Kube,
    Plane,
    admin_client,
    manifest_of,
    put_service_key,
    start_operator,
)
from common import (
    api_calls,
    categorize,
    fleet_timings,
    proc_cpu_seconds,
    proc_rss_mib,
    seed_simulator,
    wait_child,
)
from targets import target_ids

NAME = "bench-10k"
DEADLINE = 600.0


# --- the work ------------------------------------------------------------------------------


def manifest(targets: int, executions_share: float, seed: int, form: str) -> dict[str, Any]:
    """The BulkTermination both variants run: ``targets`` ids from ``make_spec`` (kinds and ids),
    deployments to be DELETED and executions STOPPED, so that the list form (``spec.targets``)
    and the compact form (``spec.deployments``/``spec.executions``) say the same."""
    return manifest_of(target_ids(targets, executions_share, seed), form, NAME)


def simulator(seed: int, spec: BulkTerminationSpec) -> SimulatorThread:
    timings = fleet_timings()
    sim = SimulatorThread(
        SimulatorConfig(host="127.0.0.1", port=0, timings=timings, bulk_updates=True, seed=seed)
    )
    sim.start()
    seed_simulator(sim, spec.targets, [])
    sim.reset_counters()
    return sim


# --- measurements --------------------------------------------------------------------------


class FirstRequest(threading.Thread):
    """Notes when the simulator saw its first request, and its first bulk PATCH."""

    def __init__(self, sim: SimulatorThread, since: float) -> None:
        super().__init__(daemon=True)
        self.sim = sim
        self.since = since
        self.first: float | None = None
        self.first_patch: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.first_patch is None:
            counters = self.sim.counters
            now = time.monotonic() - self.since
            if self.first is None and any(counters.values()):
                self.first = now
            if counters["PATCH /lm/deployments"] or counters["PATCH /lm/executions"]:
                self.first_patch = now
            time.sleep(0.02)


@dataclass
class WatchLog:
    events: int = 0
    bytes: int = 0
    largest: int = 0
    complete_at: float | None = None
    types: Counter[str] = field(default_factory=Counter)


class CrWatch(threading.Thread):
    """A watch on the one CR, as any client (kubectl, Argo CD) would hold: counts the events
    and their bytes, and notes when ``Complete=True`` first arrives."""

    def __init__(self, plane: ControlPlane, since: float) -> None:
        super().__init__(daemon=True)
        self.client = admin_client(plane)
        self.since = since
        self.log = WatchLog()
        self.ready = threading.Event()

    def run(self) -> None:
        """Watch from a list's resourceVersion, again after any answer but 200 (a fresh API
        server answers 429 while its storage initialises) or the end of the stream."""
        path = BULKTERMINATIONS
        selector = f"metadata.name={NAME}"
        while True:
            try:
                listed = self.client.get(path, params={"fieldSelector": selector})
                if listed.status_code != 200:
                    time.sleep(0.2)
                    continue
                params = {
                    "watch": "1",
                    "fieldSelector": selector,
                    "resourceVersion": listed.json()["metadata"]["resourceVersion"],
                    "timeoutSeconds": "900",
                }
                with self.client.stream("GET", path, params=params) as response:
                    if response.status_code != 200:
                        time.sleep(0.2)
                        continue
                    self.ready.set()
                    for line in response.iter_lines():
                        if line and self._seen(line):
                            return
            except httpx.HTTPError:
                time.sleep(0.2)

    def _seen(self, line: str) -> bool:
        """Count one event; True when the watch may end (the CR was deleted)."""
        event = json.loads(line)
        self.log.events += 1
        self.log.bytes += len(line)
        self.log.largest = max(self.log.largest, len(line))
        self.log.types[event.get("type", "?")] += 1
        conditions = (event.get("object", {}).get("status") or {}).get("conditions") or []
        complete = any(
            c.get("type") == "Complete" and c.get("status") == "True" for c in conditions
        )
        if complete and self.log.complete_at is None:
            self.log.complete_at = time.monotonic() - self.since
        return bool(event.get("type") == "DELETED")


def _ts(value: object) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def write_timeline(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every write on the CR (from the audit log): what, when after the create, how long the
    API server took to answer it."""
    writes: list[dict[str, Any]] = []
    for event in audit:
        ref = event.get("objectRef")
        if not isinstance(ref, dict) or ref.get("resource") != "bulkterminations":
            continue
        if event.get("verb") in ("watch", "list", "get"):
            continue
        start = _ts(event["requestReceivedTimestamp"])
        writes.append(
            {
                "what": f"{event.get('verb')} {ref.get('subresource') or 'object'}",
                "user": str((event.get("user") or {}).get("username", ""))[:20],
                "start": start,
                "took_s": round(_ts(event["stageTimestamp"]) - start, 3),
            }
        )
    writes.sort(key=lambda w: w["start"])
    created = next((w["start"] for w in writes if w["what"] == "create object"), None)
    for w in writes:
        w["at_s"] = round(w.pop("start") - (created or 0.0), 3)
    return writes


# --- the variants --------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    wall_seconds: float
    requests: dict[str, int]
    peak_rss_mib: float
    cpu_seconds: float
    first_request_s: float | None
    first_bulk_patch_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, int]:
        return {k: v for k, v in categorize(self.requests).items() if v}

    @property
    def api_calls(self) -> int:
        return api_calls(self.requests)


def run_operator(
    kube: Kube,
    plane: ControlPlane,
    spec: BulkTerminationSpec,
    manifest_path: Path,
    workdir: Path,
    *,
    seed: int,
    extra_flags: list[str],
    profile: Path | None,
    operator_source: Path | None = None,
) -> Variant:
    sim = simulator(seed, spec)
    try:
        put_service_key(kube, sim.service_key())
        log_path = workdir / "operator.log"
        # Another checkout's operator, for an A/B run.
        env = {"PYTHONPATH": str(operator_source)} if operator_source is not None else {}
        proc = start_operator(kube, log_path, extra_flags, env)
        try:
            spy = None
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                        str(proc.pid), "--format", "raw", "--rate", "50", "--threads",
                        "-o", str(profile / "operator.txt"),
                    ],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)
            mark = plane.audit_mark()
            cpu_before = proc_cpu_seconds(proc.pid)
            rss_before, _ = proc_rss_mib(proc.pid)
            t0 = time.monotonic()
            watch = CrWatch(plane, t0)
            watch.start()
            if not watch.ready.wait(60):
                raise TimeoutError("the watch of the CR did not start in 60 s")
            first = FirstRequest(sim, t0)
            first.start()
            created = kube.kubectl("create", "-f", str(manifest_path), timeout=120)
            if created.returncode != 0:
                raise RuntimeError(f"kubectl create failed: {created.stderr}")
            create_seconds = time.monotonic() - t0
            while watch.log.complete_at is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"operator died:\n{log_path.read_text()[-4000:]}")
                if time.monotonic() - t0 > DEADLINE:
                    raise TimeoutError(f"not Complete in {DEADLINE} s")
                time.sleep(0.02)
            wall = watch.log.complete_at
            cpu = proc_cpu_seconds(proc.pid) - cpu_before
            rss_now, rss_peak = proc_rss_mib(proc.pid)
            first.done.set()
            time.sleep(1.0)  # the daemon's last events and writes
            audit: list[dict[str, Any]] = [dict(e) for e in plane.audit_events(mark)]
            obj = kube.get("bulkterminations", NAME, namespace=NAMESPACE)
        finally:
            if profile is not None and spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        object_bytes = len(json.dumps(obj, separators=(",", ":")))
        status_bytes = len(json.dumps(obj.get("status") or {}, separators=(",", ":")))
        writes = Counter(
            f"{e.get('verb')} {(e.get('objectRef') or {}).get('subresource') or 'object'}"
            for e in audit
            if (e.get("objectRef") or {}).get("resource") == "bulkterminations"
            and e.get("verb") not in ("watch", "list", "get")
        )
        timeline = write_timeline(audit)
        annotations = sorted((obj.get("metadata") or {}).get("annotations") or {})
        return Variant(
            name="operator",
            wall_seconds=wall,
            requests=dict(sim.counters),
            peak_rss_mib=rss_peak,
            cpu_seconds=cpu,
            first_request_s=first.first,
            first_bulk_patch_s=first.first_patch,
            extra={
                "kubectl_create_s": round(create_seconds, 2),
                "rss_before_create_mib": round(rss_before, 1),
                "rss_at_complete_mib": round(rss_now, 1),
                "cr_writes": dict(writes),
                "status_patches": writes.get("patch status", 0),
                "write_timeline": timeline,
                "status_patch_server_s": round(
                    sum(w["took_s"] for w in timeline if w["what"] == "patch status"), 3
                ),
                "watch_events": watch.log.events,
                "watch_bytes": watch.log.bytes,
                "watch_event_types": dict(watch.log.types),
                "largest_watch_event_bytes": watch.log.largest,
                "object_bytes": object_bytes,
                "status_bytes": status_bytes,
                "annotations": annotations,
                "finalizers": (obj.get("metadata") or {}).get("finalizers") or [],
                "outcomes": (obj.get("status") or {}).get("outcomes"),
                "log_tail": log_path.read_text(errors="replace").splitlines()[-5:],
            },
        )
    finally:
        kube.kubectl(
            "delete", "bulkterminations", NAME, "-n", NAMESPACE, "--wait=false", timeout=60
        )
        kube.kubectl(
            "patch", "bulkterminations", NAME, "-n", NAMESPACE, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', timeout=60,
        )  # fmt: skip
        sim.stop()


def run_apply(
    spec: BulkTerminationSpec, manifest_path: Path, workdir: Path, *, seed: int
) -> Variant:
    sim = simulator(seed, spec)
    try:
        key = sim.write_service_key(workdir / "service-key.json")
        t0 = time.monotonic()
        first = FirstRequest(sim, t0)
        first.start()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "bulkterm.cli", "apply", "-f", str(manifest_path),
                "--service-key", str(key), "--allow-plain-http", "-o", "json",
            ],
            stdout=subprocess.PIPE, stderr=(workdir / "apply.log").open("wb"), cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, peak_rss_mib, cpu_seconds = wait_child(proc)
        wall = time.monotonic() - t0
        first.done.set()
        if proc.returncode != 0:
            raise RuntimeError(f"bulkterm apply exited {proc.returncode}: {out[-2000:]!r}")
        status = json.loads(out)
        status = status.get("status", status) if isinstance(status, dict) else status
        return Variant(
            name="bulkterm apply",
            wall_seconds=wall,
            requests=dict(sim.counters),
            peak_rss_mib=peak_rss_mib,
            cpu_seconds=cpu_seconds,
            first_request_s=first.first,
            first_bulk_patch_s=first.first_patch,
            extra={"outcomes": status.get("outcomes") if isinstance(status, dict) else None},
        )
    finally:
        sim.stop()


# --- report --------------------------------------------------------------------------------


def table(operator: Variant | None, apply: Variant | None, targets: int, form: str) -> str:
    rows: list[tuple[str, str, str]] = []

    def fmt(v: Variant | None, get: Any) -> str:
        if v is None:
            return "-"
        value = get(v)
        return "-" if value is None else str(value)

    def row(label: str, get: Any) -> None:
        rows.append((label, fmt(operator, get), fmt(apply, get)))

    row("wall s (create→Complete / process)", lambda v: f"{v.wall_seconds:.1f}")
    row("first AI API request s", lambda v: v.first_request_s and f"{v.first_request_s:.2f}")
    row("first bulk PATCH s", lambda v: v.first_bulk_patch_s and f"{v.first_bulk_patch_s:.2f}")
    row("AI API calls (no token)", lambda v: v.api_calls)
    kinds = sorted({k for v in (operator, apply) if v for k in v.kinds})
    for kind in kinds:
        row(f"  {kind}", lambda v, k=kind: v.kinds.get(k, 0))
    row("peak RSS MiB", lambda v: f"{v.peak_rss_mib:.0f}")
    row("CPU s (during the run)", lambda v: f"{v.cpu_seconds:.1f}")
    if operator is not None:
        x = operator.extra
        ops = ", ".join(f"{k} {n}" for k, n in sorted(x["cr_writes"].items()))
        rows += [
            ("status PATCHes", str(x["status_patches"]), "-"),
            ("CR writes by the operator", ops, "-"),
            ("watch events (bytes)", f"{x['watch_events']} ({x['watch_bytes'] / 1e6:.1f} MB)", "-"),
            ("object at the end (status) bytes", f"{x['object_bytes']} ({x['status_bytes']})", "-"),
            ("annotations on the CR", ", ".join(x["annotations"]) or "none", "-"),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"{targets} targets ({form} form)",
        f"{'':{width}}  {'operator':>22}  {'bulkterm apply':>16}",
    ]
    lines += [f"{a:{width}}  {b:>22}  {c:>16}" for a, b, c in rows]
    if operator and apply:
        lines.append(
            f"ratio operator / apply (wall): {operator.wall_seconds / apply.wall_seconds:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--executions-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--form", choices=("compact", "list"), default="compact",
        help="spec.deployments/executions (up to 10,000 ids) or spec.targets (up to 5,000)",
    )  # fmt: skip
    parser.add_argument("--skip", choices=("operator", "apply"), action="append", default=[])
    parser.add_argument("--operator-flag", action="append", default=[], help="passed on")
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the operator here")
    parser.add_argument(
        "--operator-source",
        type=Path,
        help="run the operator from this source root (e.g. OLD/operator of a git worktree)",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the operator and the control plane are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    workdir = Path(tempfile.mkdtemp(prefix="bulkterm-bench-op-"))
    document = manifest(args.targets, args.executions_share, args.seed, args.form)
    spec = BulkTerminationSpec.model_validate(document["spec"])
    manifest_path = workdir / "bulktermination.yaml"
    manifest_path.write_text(yaml.safe_dump(document, sort_keys=False))
    operator = apply = None
    plane = Plane(workdir)
    try:
        if "operator" not in args.skip:
            operator = run_operator(
                plane.start(), plane.plane, spec, manifest_path, workdir, seed=args.seed,
                extra_flags=args.operator_flag, profile=args.profile,
                operator_source=args.operator_source,
            )  # fmt: skip
        if "apply" not in args.skip:
            apply = run_apply(spec, manifest_path, workdir, seed=args.seed)
    finally:
        plane.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder kept: {workdir}", file=sys.stderr)
    print(table(operator, apply, args.targets, args.form), file=sys.stderr)
    if args.json:
        out = {
            "targets": args.targets,
            "form": args.form,
            "variants": [
                {**asdict(v), "api_calls": v.api_calls, "kinds": v.kinds}
                for v in (operator, apply)
                if v is not None
            ],
            "ratio": operator.wall_seconds / apply.wall_seconds if operator and apply else None,
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        print()
    if operator and apply and operator.extra["outcomes"] != apply.extra["outcomes"]:
        print("the operator and bulkterm apply ended with different outcomes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
