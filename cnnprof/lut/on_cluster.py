"""Lookup tables built on the nodes of one kind of a Ray cluster (``lut build --cluster``).

The work is dealt into parts, two per node of the kind (so that a faster node takes more and a
dead node's part runs again elsewhere, Ray retrying it up to ``retries`` times); each part is a
Ray task that claims a node's measurement slot and runs the same table code as a local build, with
that node's own cnnprof (checked against the driver's by ``cluster.Cluster.check``). The driver
merges each part into the table on this machine as it comes back, saving after each, so an
interrupted build keeps what came back and the same command resumes it.

* Isolated entries: the distinct entries are split; a part returns its entries.
* In-context entries: one node settles the speed probe's reference first (or the table's own, when
  it is resumed); the networks the blocks are read in are split, each node reads its networks at
  that reference, and the driver pools the readings (``context.merge_readings``), so an entry is
  the mean over every network it was read in, whichever node read it. A part read where the
  probe's environment differs from the reference's is refused.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cnnprof.cluster import DEFAULT_RETRIES, Cluster, ClusterError, error_line, wait_any
from cnnprof.lut import builder, context
from cnnprof.lut.probe import SpeedProbe, use_allocator
from cnnprof.lut.table import Allocator, BuildReport, Mode, env_id, environment, open_table, parse


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
    nodes: dict[str, int] = field(default_factory=dict)  # node ('id on host') -> entries / networks it took
    failed: list[str] = field(default_factory=list)  # parts that came back with nothing, and why


def _node_answer(extra: Mapping[str, Any]) -> dict[str, Any]:
    import ray

    return {**extra, "node_id": ray.get_runtime_context().get_node_id(), "node_host": socket.gethostname()}


def _deal(items: Sequence, nodes: int) -> list[list]:
    """``items`` in parts, two per node, round-robin."""
    count = min(len(items), 2 * nodes) or 1
    return [list(items[i::count]) for i in range(count) if items[i::count]]


def _gather(cluster: Cluster, kind: str, refs: dict, *, unit: str, merge: Callable[[dict, dict], str | None],
            report, outcome: LutOutcome, total: int, on_progress=None) -> None:
    """Wait for the parts ``refs`` (Ray ref -> the part's items) and ``merge`` each answer (with
    the node it is filed under); a part that failed, or whose answer ``merge`` refuses (a
    reason), is said in ``outcome.failed``. Ctrl-C cancels what is still running."""
    ray = cluster.ray
    done = 0
    try:
        while refs:
            for ref in wait_any(ray, list(refs), 0.5):
                part = refs.pop(ref)
                try:
                    answer = ray.get(ref)
                    node = cluster.tag(kind, answer)
                except Exception as exc:  # noqa: BLE001 - a part that failed is said, the rest kept
                    outcome.failed.append(f"{len(part)} {unit}: {error_line(exc)}")
                    continue
                refused = merge(answer, node)
                if refused:
                    outcome.failed.append(f"{len(part)} {unit}: {refused}")
                    continue
                name = f"{node['id'][:8]} on {node['host']}"
                outcome.nodes[name] = outcome.nodes.get(name, 0) + len(part)
                report.interrupted = report.interrupted or answer["interrupted"]
                done += len(part)
                if on_progress:
                    on_progress(done, total, f"{kind}: {len(part)} {unit} back from {name}")
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished or gone
                pass


# -- isolated entries ------------------------------------------------------------------------------
def lut_jobs(spec: Mapping[str, Any]) -> list:
    """The jobs of an isolated build from its picklable description (``space``: fbnet or none,
    ``layers``, ``models``): what the driver and each node compute alike."""
    from cnnprof.targets import resolve_targets

    jobs = []
    if spec.get("space") == "fbnet":
        jobs += builder.fbnet_space_jobs(layers=spec.get("layers"))[0]
    for target in resolve_targets(list(spec.get("models") or [])) if spec.get("models") else []:
        jobs += builder.model_jobs(target)
    return jobs


def lut_part(spec: Mapping[str, Any], keys: Sequence[str], table_json: str | None,
             settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task: time the entries ``keys`` of a table on this node (``lut.builder.build``),
    starting from the driver's table so that entries measured before in this node's environment
    are kept. Returns the part's table document and report."""
    import json
    import tempfile

    wanted = set(keys)
    jobs = [j for j in lut_jobs(spec) if j.key in wanted]
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-part-") as tmp:
        path = Path(tmp) / "table.json"
        if table_json:
            path.write_text(table_json)
        _, report = builder.build(jobs, path=path, **settings)
        doc = json.loads(path.read_text())
    return _node_answer({"doc": doc, "groups": report.groups, "seconds": report.seconds,
                         "interrupted": report.interrupted})


def build_lut(cluster: Cluster, kind: str, *, spec: Mapping[str, Any], jobs: Sequence, spaces: Mapping[str, Any],
              path: Path, settings: Mapping[str, Any], max_entries: int | None = None,
              retries: int = DEFAULT_RETRIES, on_progress=None):
    """An isolated table built on the nodes of ``kind`` (see the module's text). Returns
    (table, report, outcome) as ``lut.builder.build`` returns (table, report)."""
    table = open_table(path, backend=settings["backend"], threads=settings["threads"], force=settings["force"],
                       clock=settings["clock"], allocator=settings.get("allocator", Allocator.DEFAULT))
    table.spaces.update(spaces)
    keys = list(dict.fromkeys(j.key for j in jobs))
    if max_entries is not None:
        keys = keys[:max_entries]
    current = table.to_json() if Path(path).exists() else None
    task = cluster.ray.remote(lut_part).options(**cluster.options(kind, "cpu", retries))
    refs = {task.remote(dict(spec), part, current, dict(settings)): part
            for part in _deal(keys, len(cluster.nodes_of(kind)))}
    report, outcome = BuildReport(path=Path(path)), LutOutcome()
    start = time.perf_counter()

    def merge(answer: dict, node: dict) -> None:
        got = parse(answer["doc"])
        part = [k for k in got.entries if k in set(keys)]
        for key in part:
            entry = got.entries[key]
            table.entries[key] = entry
            table.environments[entry.env] = got.environments[entry.env]
        table.protocol = got.protocol
        for group, counts in answer["groups"].items():
            g = report.groups.setdefault(group, {"entries": 0, "measured": 0, "reused": 0, "sum_ms": 0.0})
            for name in g:
                g[name] += counts.get(name, 0)
        table.save(path)

    _gather(cluster, kind, refs, unit="entries", merge=merge, report=report, outcome=outcome, total=len(keys),
            on_progress=on_progress)
    table.save(path)
    report.seconds = time.perf_counter() - start
    return table, report, outcome


# -- in-context entries ----------------------------------------------------------------------------
def lut_probe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task that fixes an in-context table's unit: the speed probe's reference on this node
    (``lut.probe.SpeedProbe.settle``), with this node's table environment."""
    from cnnprof.timing import torch_threads

    use_allocator(settings.get("allocator", Allocator.STEADY))
    probe = SpeedProbe(settings["clock"], backend=settings["backend"], threads=settings["threads"])
    with torch_threads(settings["threads"]):
        probe.settle()
    env = environment(settings["backend"], settings["threads"], settings["clock"])
    return _node_answer({"probe": {**probe.to_dict(), "env": env_id(env)}})


def lut_context_part(spec: Mapping[str, Any], ids: Sequence[str], probe: Mapping[str, Any],
                     settings: Mapping[str, Any]) -> dict[str, Any]:
    """The Ray task: read the networks ``ids`` of an in-context build in place on this node
    (``lut.context.build_in_context``) at the probe reference ``probe`` the driver chose, into a
    table of their readings only (the driver pools them)."""
    import json
    import tempfile

    networks, spaces = context.networks_of(dict(spec))
    wanted = set(ids)
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-part-") as tmp:
        path = Path(tmp) / "table.json"
        start = open_table(path, backend=settings["backend"], threads=settings["threads"], force=True,
                           clock=settings["clock"], mode=Mode.IN_CONTEXT,
                           allocator=settings.get("allocator", Allocator.STEADY))
        start.probe = dict(probe)
        start.save(path)
        table, report = context.build_in_context(
            [n for n in networks if n.id in wanted], path=path, backend=settings["backend"],
            threads=settings["threads"], clock=settings["clock"], protocol=settings["protocol"],
            rounds=settings["rounds"], spaces=spaces, allocator=settings.get("allocator", Allocator.STEADY))
        doc = json.loads(path.read_text())
    return _node_answer({"doc": doc, "seconds": report.seconds, "interrupted": report.interrupted,
                         "probe_env": (table.probe or {}).get("env")})


def build_lut_in_context(cluster: Cluster, kind: str, *, spec: Mapping[str, Any], networks: Sequence, spaces,
                         path: Path, settings: Mapping[str, Any], max_networks: int | None = None,
                         retries: int = DEFAULT_RETRIES, on_progress=None):
    """An in-context table built on the nodes of ``kind`` (see the module's text). Returns
    (table, report, outcome) as ``build_lut``."""
    ray = cluster.ray
    rounds = int(settings["rounds"])
    table = open_table(path, backend=settings["backend"], threads=settings["threads"], force=settings["force"],
                       clock=settings["clock"], mode=Mode.IN_CONTEXT,
                       allocator=settings.get("allocator", Allocator.STEADY))
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
    if todo and table.calibration is not None:
        table.calibration = None  # fitted to entries that are about to change
        report.calibration = {"dropped": True}
    task = ray.remote(lut_context_part).options(**options)
    refs = {task.remote(dict(spec), [n.id for n in part], dict(table.probe), dict(settings)): part
            for part in _deal(todo, len(cluster.nodes_of(kind)))}
    touched: set[str] = set()

    def merge(answer: dict, node: dict) -> str | None:
        if answer.get("probe_env") != table.probe.get("env"):
            return f"node {node['id'][:8]} is not the machine the probe reference was taken on (another environment)"
        touched.update(context.merge_readings(table, parse(answer["doc"]), rounds))
        table.save(path)
        return None

    _gather(cluster, kind, refs, unit="networks", merge=merge, report=report, outcome=outcome, total=len(todo),
            on_progress=on_progress)
    table.save(path)
    for key, e in table.entries.items():
        g = report.groups.setdefault(context.group_of(e.label), {"entries": 0, "measured": 0, "reused": 0,
                                                                  "sum_ms": 0.0})
        g["entries"] += 1
        g["measured" if key in touched else "reused"] += 1
        g["sum_ms"] += e.latency_ms
    report.seconds = time.perf_counter() - start
    return table, report, outcome
