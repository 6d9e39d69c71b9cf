"""Running on a Ray cluster: connecting, the nodes that measure, checking that each runs the
driver's cnnprof and torch, and pinning work to a kind of node.

cnnprof writes no scheduler: Ray places the work. What cnnprof asks of a node is two things it
advertises when it is started (README, "Measuring on a Ray cluster"):

* a custom resource, ``cnnprof_slot: 1`` (and ``cnnprof_gpu_slot: G``, one per GPU, for GPU
  cells), which every measurement requests, so a node runs one measurement at a time;
* a label ``cnnprof-kind=<kind>`` (``cpu-avx512``, ``gpu-h100``, ...) that names its kind of
  device; ``--on KIND`` pins work to nodes of that kind. A measuring node without the label is
  of kind ``unlabelled``.

Before any work, ``Cluster.check`` sends a tiny probe pinned to each measuring node (by Ray's own
``ray.io/node-id`` label): the node answers with its cnnprof version, git revision, a digest of
its cnnprof source files, its torch version and its environment fingerprint. A node whose
cnnprof or torch differs from the driver's, or that does not answer, is reported and refused:
the work's label selector names the accepted nodes only, so nothing runs there. A result is
filed under the node and kind the driver sent it to, checked against that node's probe
(``Cluster.tag``): a node's answer never names another node.

Ray is an optional dependency (``pip install 'cnnprof[cluster]'``); it is imported only here
and in ``sweep.ray_executor``, only when a command is given ``--cluster``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnnprof.errors import UsageError, shorten

SLOT = "cnnprof_slot"
GPU_SLOT = "cnnprof_gpu_slot"
KIND_LABEL = "cnnprof-kind"
NODE_LABEL = "ray.io/node-id"  # Ray's own label on every node
UNLABELLED = "unlabelled"
RAY_MIN_VERSION = (2, 49)  # node labels and task label selectors
PROBE_TIMEOUT_S = 120.0
DEFAULT_RETRIES = 2
# what must be the same on a node as on the driver for its measurements to be taken
IDENTITY_KEYS = ("cnnprof", "revision", "source", "torch")
INSTALL_HINT = "pip install 'cnnprof[cluster]'"


class ClusterError(UsageError):
    """The cluster cannot be used as asked: one line, exit 2."""


def require_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    try:
        version = tuple(int(p) for p in ray.__version__.split(".")[:2])
    except ValueError:
        version = RAY_MIN_VERSION
    if version < RAY_MIN_VERSION:
        need = ".".join(map(str, RAY_MIN_VERSION))
        raise ClusterError(f"--cluster needs Ray {need} or newer (node labels); Ray {ray.__version__} is installed: "
                           f"{INSTALL_HINT} --upgrade")
    return ray


# -- what a node is ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def source_digest() -> str:
    """A digest of this cnnprof's Python source (file names and contents): two installs with the
    same digest run the same code, whatever their git state says."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def identity() -> dict[str, Any]:
    """What this process runs: cnnprof (version, revision, source digest), torch, Python, host,
    and its environment fingerprint."""
    from cnnprof.store.columns import revision_of
    from cnnprof.timing.environment import fingerprint
    from cnnprof.version import __version__

    env = fingerprint(1).to_dict()
    return {"cnnprof": __version__, "revision": revision_of(str(env.get("tool", ""))), "source": source_digest(),
            "torch": env.get("torch"), "python": env.get("python"), "host": socket.gethostname(), "environment": env}


def probe() -> dict[str, Any]:
    """The probe task (runs on a node, from the node's own cnnprof): its identity and Ray's id of it."""
    import ray

    return {**identity(), "node_id": ray.get_runtime_context().get_node_id()}


def differences(here: Mapping[str, Any], there: Mapping[str, Any]) -> list[str]:
    """'cnnprof 0.1.0 here, 0.2.0 there' for each of ``IDENTITY_KEYS`` that differs."""
    out = []
    for key in IDENTITY_KEYS:
        if here.get(key) != there.get(key):
            what = {"source": "cnnprof source digest", "revision": "cnnprof revision"}.get(key, key)
            out.append(f"{what} {here.get(key) or '?'} here, {there.get(key) or '?'} there")
    return out


@dataclass
class Node:
    id: str
    kind: str
    slots: float
    gpu_slots: float
    address: str = ""
    host: str = ""  # from the node's probe
    probe: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the node was refused

    @property
    def short(self) -> str:
        return self.id[:8]

    @property
    def label(self) -> str:
        """What its rows' machine is called: the host and the kind (two nodes of one host differ)."""
        return f"{self.host or self.address} ({self.kind})"

    def describe(self) -> str:
        return f"{self.short} on {self.host or self.address} (kind {self.kind})"

    def has(self, resource: str) -> bool:
        return (self.gpu_slots if resource == GPU_SLOT else self.slots) > 0


def resource_for(device: str) -> str:
    """The slot a cell on ``device`` claims."""
    return GPU_SLOT if str(device).startswith("cuda") else SLOT


# -- the cluster ---------------------------------------------------------------------------------
class Cluster:
    """A connection to a Ray cluster (``connect``), its measuring nodes and the checks on them."""

    def __init__(self, ray, address: str):
        self.ray = ray
        self.address = address
        self.accepted: list[Node] = []
        self.refused: list[Node] = []

    # nodes
    def measuring_nodes(self) -> list[Node]:
        """Alive nodes that advertise a cnnprof slot."""
        out = []
        for n in self.ray.nodes():
            res = n.get("Resources") or {}
            if not n.get("Alive") or (res.get(SLOT, 0) <= 0 and res.get(GPU_SLOT, 0) <= 0):
                continue
            labels = n.get("Labels") or {}
            out.append(Node(id=n["NodeID"], kind=labels.get(KIND_LABEL) or UNLABELLED, slots=res.get(SLOT, 0.0),
                            gpu_slots=res.get(GPU_SLOT, 0.0), address=n.get("NodeManagerAddress", "")))
        return out

    def alive_ids(self) -> set[str]:
        return {n["NodeID"] for n in self.ray.nodes() if n.get("Alive")}

    def check(self, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[list[Node], list[Node]]:
        """Probe every measuring node (in parallel); accept those that run the driver's cnnprof and
        torch. Returns (accepted, refused), each refused node with its ``problem``."""
        ray = self.ray
        here = identity()
        nodes = self.measuring_nodes()
        if not nodes:
            raise ClusterError(f"no node of the cluster at {self.address} measures: start nodes with "
                               f"--resources '{{\"{SLOT}\": 1}}' (README, \"Measuring on a Ray cluster\")")
        task = ray.remote(probe)
        refs = {task.options(num_cpus=0, max_retries=1, label_selector={NODE_LABEL: n.id}).remote(): n
                for n in nodes}
        ready, waiting = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in waiting:
            refs[ref].problem = f"did not answer the probe in {timeout_s:.0f} s"
            ray.cancel(ref, force=True)
        for ref in ready:
            node = refs[ref]
            try:
                answer = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - whatever the node said, it is refused with it
                node.problem = "the probe failed there: " + _first_line(exc)
                continue
            node.probe = answer
            node.host = str(answer.get("host") or "")
            if answer.get("node_id") != node.id:
                node.problem = f"the probe sent to it was answered by node {str(answer.get('node_id'))[:8]}"
                continue
            diff = differences(here, answer)
            if diff:
                node.problem = "; ".join(diff)
        self.accepted = [n for n in nodes if not n.problem]
        self.refused = [n for n in nodes if n.problem]
        return self.accepted, self.refused

    def kinds(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.accepted:
            out.setdefault(n.kind, []).append(n)
        return dict(sorted(out.items()))

    def choose_kinds(self, on: Sequence[str] | None) -> list[str]:
        """The kinds to run on: ``on`` (each must have an accepted node), or every kind."""
        kinds = self.kinds()
        if not on:
            if not kinds:
                raise ClusterError("no node of the cluster can measure: " + self.refusals())
            return list(kinds)
        for kind in on:
            if kind not in kinds:
                refused = [n for n in self.refused if n.kind == kind]
                if refused:
                    raise ClusterError(f"--on {kind}: every node of that kind was refused: " + self.refusals(kind))
                known = ", ".join(sorted(set(kinds) | {n.kind for n in self.refused})) or "none"
                raise ClusterError(f"--on {shorten(kind, 40)!r}: no node of that kind (label {KIND_LABEL}); "
                                   f"kinds here: {known}")
        return list(dict.fromkeys(on))

    def refusals(self, kind: str | None = None) -> str:
        return "; ".join(f"node {n.describe()}: {n.problem}" for n in self.refused if kind in (None, n.kind))

    def nodes_of(self, kind: str, resource: str = SLOT) -> list[Node]:
        return [n for n in self.accepted if n.kind == kind and n.has(resource)]

    def selector(self, kind: str, resource: str = SLOT) -> dict[str, str]:
        """The label selector of work pinned to ``kind``: its accepted nodes only (by Ray's node id)."""
        ids = [n.id for n in self.nodes_of(kind, resource)]
        selector = {NODE_LABEL: "in(" + ",".join(ids) + ")"}
        if kind != UNLABELLED:
            selector[KIND_LABEL] = kind
        return selector

    def options(self, kind: str, device: str = "cpu", retries: int = DEFAULT_RETRIES) -> dict[str, Any]:
        """Ray task options for one measurement on ``kind``: its slot, Ray's retries when the
        node or worker dies (never when the work itself fails), the node selector."""
        resource = resource_for(device)
        opts: dict[str, Any] = {"num_cpus": 0, "resources": {resource: 1}, "max_retries": retries,
                                "retry_exceptions": False, "label_selector": self.selector(kind, resource)}
        if resource == GPU_SLOT:
            opts["num_gpus"] = 1
        return opts

    def tag(self, kind: str, answer: Mapping[str, Any]) -> dict[str, Any]:
        """Where a result was measured, as the driver knows it: the accepted node of ``kind`` the
        answer says it ran on, with the host that node's probe gave. Raises ``ValueError`` when the
        answer names a node that was not accepted for ``kind`` or a host that is not that node's."""
        node_id = str(answer.get("node_id") or "")
        node = next((n for n in self.accepted if n.id == node_id), None)
        if node is None or node.kind != kind:
            raise ValueError(f"the result names node {node_id[:8] or '?'}, which was not accepted for kind {kind}")
        if answer.get("node_host") not in (None, node.host):
            named = shorten(str(answer.get("node_host")), 40)
            raise ValueError(f"the result from node {node.short} names host {named!r}, not {node.host!r} (its probe's)")
        return {"id": node.id, "kind": kind, "host": node.host, "label": node.label}

    def describe(self) -> str:
        kinds = self.kinds()
        parts = [f"{k} ({len(v)} node{'s' if len(v) != 1 else ''})" for k, v in kinds.items()]
        return f"cluster {self.address}: " + (", ".join(parts) if parts else "no accepted node")

    def shutdown(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # a RayTaskError's text ends with the remote exception: its last line says what it was
    line = lines[-1] if lines else type(exc).__name__
    return shorten(line, 200)


def connect(address: str) -> Cluster:
    """Join the Ray cluster at ``address`` (``auto``, ``host:port``, ``ray://host:port``) as a
    driver; one line when that fails. Ray's token authentication, where the cluster uses it, is
    read by Ray from ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` (or ``~/.ray/auth_token``)."""
    ray = require_ray()
    text = (address or "").strip()
    if not text:
        raise ClusterError("--cluster needs an address: auto, HOST:PORT or ray://HOST:PORT")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=text, logging_level="ERROR", log_to_driver=False, configure_logging=True)
    except Exception as exc:  # noqa: BLE001 - Ray's many ways of not connecting: one line each
        raise ClusterError(f"cannot join the Ray cluster at {shorten(text, 60)!r}: {_first_line(exc)}") from None
    return Cluster(ray, text)


def auth_note() -> str | None:
    """A warning when this driver does not use Ray's token authentication."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return None
    return ("warning: Ray's token authentication is off here (RAY_AUTH_MODE=token): anyone who reaches the "
            "cluster can run code on its nodes; run it on a trusted network only (README)")


def wait_any(ray, refs: Sequence, timeout_s: float) -> list:
    """The refs of ``refs`` that are ready within ``timeout_s``."""
    if not refs:
        time.sleep(min(timeout_s, 0.2))
        return []
    ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout_s)
    return ready


# -- lookup tables -------------------------------------------------------------------------------
def lut_jobs(spec: Mapping[str, Any]) -> list:
    """The jobs of a table build from its picklable description (``space``: fbnet or none,
    ``layers``, ``models``): what the driver and each node compute alike."""
    from cnnprof.lut import builder
    from cnnprof.targets import resolve_targets

    jobs = []
    if spec.get("space") == "fbnet":
        jobs += builder.fbnet_space_jobs(layers=spec.get("layers"))[0]
    for target in resolve_targets(list(spec.get("models") or [])) if spec.get("models") else []:
        jobs += builder.model_jobs(target)
    return jobs


def lut_part(spec: Mapping[str, Any], keys: Sequence[str], table_json: str | None,
             settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task: time the entries ``keys`` of a table on this node (``lut.builder.build``,
    this node's own cnnprof), starting from the driver's table so that entries measured before
    in this node's environment are kept. Returns the part's table document and report."""
    import json
    import tempfile

    import ray

    from cnnprof.lut import builder

    wanted = set(keys)
    jobs = [j for j in lut_jobs(spec) if j.key in wanted]
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-part-") as tmp:
        path = Path(tmp) / "table.json"
        if table_json:
            path.write_text(table_json)
        _, report = builder.build(jobs, path=path, **settings)
        doc = json.loads(path.read_text())
    return {"doc": doc, "groups": report.groups, "seconds": report.seconds, "interrupted": report.interrupted,
            "node_id": ray.get_runtime_context().get_node_id(), "node_host": socket.gethostname()}


def table_path(path: Path, kind: str) -> Path:
    """``models/lut-torch-t1.json`` -> ``models/lut-torch-t1-<kind>.json``: a table per kind of device."""
    return path.with_name(f"{path.stem}-{kind}{path.suffix}")


def lut_kind(cluster: Cluster, on: str | None) -> str:
    """Check the nodes and choose the one kind a table is built on (``--on``, or the only kind)."""
    cluster.check()
    kinds = cluster.choose_kinds([on] if on else None)
    if len(kinds) != 1:
        raise ClusterError(f"a table is for one kind of device: give --on, one of {', '.join(kinds)}")
    return kinds[0]


@dataclass
class LutOutcome:
    nodes: dict[str, int] = field(default_factory=dict)  # node ('id on host') -> entries it timed or kept
    failed: list[str] = field(default_factory=list)  # parts that came back with no entries, and why


def build_lut(cluster: Cluster, kind: str, *, spec: Mapping[str, Any], jobs: Sequence, spaces: Mapping[str, Any],
              path: Path, settings: Mapping[str, Any], max_entries: int | None = None,
              retries: int = DEFAULT_RETRIES, on_progress=None):
    """Build a table on the nodes of ``kind``: its distinct entries dealt round-robin into parts
    (two per node, so that a fast node takes more and a dead node's part runs again elsewhere),
    each part a Ray task claiming a node's slot; every part's entries are merged into the table at
    ``path`` on this machine as they come back (saved after each). Returns (table, report, outcome)
    as ``lut.builder.build`` returns (table, report)."""
    from cnnprof.lut.builder import BuildReport, open_table
    from cnnprof.lut.table import parse

    ray = cluster.ray
    table = open_table(path, backend=settings["backend"], threads=settings["threads"], force=settings["force"],
                       clock=settings["clock"], allocator=settings.get("allocator", "default"))
    table.spaces.update(spaces)
    keys = list(dict.fromkeys(j.key for j in jobs))
    if max_entries is not None:
        keys = keys[:max_entries]
    nodes = cluster.nodes_of(kind)
    count = min(len(keys), 2 * len(nodes)) or 1
    parts = [keys[i::count] for i in range(count)]
    current = table.to_json() if Path(path).exists() else None
    task = ray.remote(lut_part).options(**cluster.options(kind, "cpu", retries))
    refs = {task.remote(dict(spec), part, current, dict(settings)): part for part in parts if part}
    report, outcome = BuildReport(path=Path(path)), LutOutcome()
    start = time.perf_counter()
    done = 0
    try:
        while refs:
            for ref in wait_any(ray, list(refs), 0.5):
                part = refs.pop(ref)
                try:
                    answer = ray.get(ref)
                    node = cluster.tag(kind, answer)
                except Exception as exc:  # noqa: BLE001 - a part that failed is said, the rest kept
                    outcome.failed.append(f"{len(part)} entries: {_first_line(exc)}")
                    continue
                got = parse(answer["doc"])
                for key in part:
                    entry = got.entries.get(key)
                    if entry is not None:
                        table.entries[key] = entry
                        table.environments[entry.env] = got.environments[entry.env]
                        name = f"{node['id'][:8]} on {node['host']}"
                        outcome.nodes[name] = outcome.nodes.get(name, 0) + 1
                table.protocol = got.protocol
                for group, counts in answer["groups"].items():
                    g = report.groups.setdefault(group, {"entries": 0, "measured": 0, "reused": 0, "sum_ms": 0.0})
                    for name in g:
                        g[name] += counts.get(name, 0)
                report.interrupted = report.interrupted or answer["interrupted"]
                table.save(path)
                done += len(part)
                if on_progress:
                    on_progress(done, len(keys), f"{kind}: {len(table.entries)} entries")
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished or gone
                pass
    table.save(path)
    report.seconds = time.perf_counter() - start
    return table, report, outcome


# -- in-context tables ----------------------------------------------------------------------------
def lut_probe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task that fixes an in-context table's unit: the speed probe's reference on this node
    (``lut.measure.SpeedProbe.settle``), with this node's table environment."""
    import ray

    from cnnprof.lut.measure import SpeedProbe, use_allocator
    from cnnprof.lut.table import env_id, environment
    from cnnprof.timing import torch_threads

    use_allocator(settings.get("allocator", "steady"))
    probe = SpeedProbe(settings["clock"])
    with torch_threads(settings["threads"]):
        probe.settle()
    env = environment(settings["backend"], settings["threads"], settings["clock"])
    return {"probe": {**probe.to_dict(), "env": env_id(env)}, "node_id": ray.get_runtime_context().get_node_id(),
            "node_host": socket.gethostname()}


def lut_context_part(spec: Mapping[str, Any], ids: Sequence[str], probe: Mapping[str, Any],
                     settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task: read the networks ``ids`` of an in-context build in place on this node
    (``lut.context.build_in_context``, this node's own cnnprof), at the probe reference ``probe``
    the driver chose, into a table of their readings only (the driver pools them)."""
    import json
    import tempfile

    import ray

    from cnnprof.lut import context
    from cnnprof.lut.builder import open_table

    networks, spaces = context.networks_of(dict(spec))
    wanted = set(ids)
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-part-") as tmp:
        path = Path(tmp) / "table.json"
        start = open_table(path, backend=settings["backend"], threads=settings["threads"], force=True,
                           clock=settings["clock"], mode="in-context", allocator=settings.get("allocator", "steady"))
        start.probe = dict(probe)
        start.save(path)
        table, report = context.build_in_context(
            [n for n in networks if n.id in wanted], path=path, backend=settings["backend"],
            threads=settings["threads"], clock=settings["clock"], protocol=settings["protocol"],
            rounds=settings["rounds"], spaces=spaces, allocator=settings.get("allocator", "steady"))
        doc = json.loads(path.read_text())
    return {"doc": doc, "seconds": report.seconds, "interrupted": report.interrupted,
            "probe_env": (table.probe or {}).get("env"), "node_id": ray.get_runtime_context().get_node_id(),
            "node_host": socket.gethostname()}


def build_lut_in_context(cluster: Cluster, kind: str, *, spec: Mapping[str, Any], networks: Sequence, spaces,
                         path: Path, settings: Mapping[str, Any], max_networks: int | None = None,
                         retries: int = DEFAULT_RETRIES, on_progress=None):
    """Build an in-context table on the nodes of ``kind``: one node settles the speed probe's
    reference (or the table's own, when it is resumed), then the networks not read yet are dealt
    into parts (two per node), each part a Ray task claiming a node's slot that reads its networks
    at that reference; each part's readings are pooled into the table at ``path`` on this machine
    as it comes back (saved after each), so every entry is the mean over all the networks it was
    read in, whichever node read them. Returns (table, report, outcome) as ``build_lut``."""
    from cnnprof.lut import context
    from cnnprof.lut.builder import BuildReport, open_table
    from cnnprof.lut.table import parse

    ray = cluster.ray
    rounds = int(settings["rounds"])
    table = open_table(path, backend=settings["backend"], threads=settings["threads"], force=settings["force"],
                       clock=settings["clock"], mode="in-context", allocator=settings.get("allocator", "steady"))
    if settings["force"]:
        table.entries, table.contexts, table.probe = {}, {}, None
    table.spaces.update(spaces)
    todo = [n for n in networks if any(f"{n.id}#{r}" not in table.contexts for r in range(rounds))]
    if max_networks is not None:
        todo = todo[:max_networks]
    report, outcome = BuildReport(path=Path(path)), LutOutcome()
    report.networks = len(todo)
    start = time.perf_counter()
    options = cluster.options(kind, "cpu", retries)
    if table.probe is None:
        answer = ray.get(ray.remote(lut_probe).options(**options).remote(dict(settings)))
        cluster.tag(kind, answer)
        table.probe = answer["probe"]
    nodes = cluster.nodes_of(kind)
    count = min(len(todo), 2 * len(nodes)) or 1
    parts = [[n.id for n in todo[i::count]] for i in range(count)]
    if todo and table.calibration is not None:
        table.calibration = None  # fitted to entries that are about to change
        report.calibration = {"dropped": True}
    task = ray.remote(lut_context_part).options(**options)
    refs = {task.remote(dict(spec), part, dict(table.probe), dict(settings)): part for part in parts if part}
    touched: set[str] = set()
    done = 0
    try:
        while refs:
            for ref in wait_any(ray, list(refs), 0.5):
                part = refs.pop(ref)
                try:
                    answer = ray.get(ref)
                    node = cluster.tag(kind, answer)
                except Exception as exc:  # noqa: BLE001 - a part that failed is said, the rest kept
                    outcome.failed.append(f"{len(part)} networks: {_first_line(exc)}")
                    continue
                if answer.get("probe_env") != table.probe.get("env"):
                    outcome.failed.append(f"{len(part)} networks: node {node['id'][:8]} is not the machine the "
                                          "probe reference was taken on (another environment)")
                    continue
                got = parse(answer["doc"])
                touched |= context.merge_readings(table, got, rounds)
                name = f"{node['id'][:8]} on {node['host']}"
                outcome.nodes[name] = outcome.nodes.get(name, 0) + len(part)
                report.interrupted = report.interrupted or answer["interrupted"]
                table.save(path)
                done += len(part)
                if on_progress:
                    on_progress(done, len(todo), f"{kind}: {len(table.entries)} entries")
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished or gone
                pass
    table.save(path)
    for key, e in table.entries.items():
        g = report.groups.setdefault(context.group_of(e.label), {"entries": 0, "measured": 0, "reused": 0,
                                                                  "sum_ms": 0.0})
        g["entries"] += 1
        g["measured" if key in touched else "reused"] += 1
        g["sum_ms"] += e.latency_ms
    report.seconds = time.perf_counter() - start
    return table, report, outcome
