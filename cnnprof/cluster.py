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
and in ``sweep.ray_executor`` and ``lut.on_cluster``, only when a command is given ``--cluster``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnnprof import cluster_address
from cnnprof.cluster_address import ClusterError
from cnnprof.errors import one_line, shorten

SLOT = "cnnprof_slot"
GPU_SLOT = "cnnprof_gpu_slot"
KIND_LABEL = "cnnprof-kind"
NODE_LABEL = "ray.io/node-id"  # Ray's own label on every node
UNLABELLED = "unlabelled"
RAY_MIN_VERSION = (2, 49)  # node labels and task label selectors
PROBE_TIMEOUT_S = 120.0
# ray.init after the address answered: a join that takes longer is abandoned (Ray itself gives up
# looking for its node on this machine after 60 s, and says so)
JOIN_TIMEOUT_S = 90.0
DEFAULT_RETRIES = 2
# what must be the same on a node as on the driver for its measurements to be taken
IDENTITY_KEYS = ("cnnprof", "revision", "source", "torch")
INSTALL_HINT = "pip install 'cnnprof[cluster]'"


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
    from cnnprof.timing.environment import fingerprint
    from cnnprof.version import __version__

    fp = fingerprint(1)
    env = fp.to_dict()
    return {"cnnprof": __version__, "revision": fp.revision, "source": source_digest(),
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
                node.problem = "the probe failed there: " + error_line(exc)
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
        with contextlib.suppress(Exception):
            self.ray.shutdown()


def error_line(exc: BaseException) -> str:
    """A Ray error in one line: a RayTaskError's text ends with the remote exception, so its last
    line says what it was."""
    return shorten(one_line(exc, typed=False, last=True, limit=None), 200)


def connect(address: str) -> Cluster:
    """Join the Ray cluster at ``address`` (``auto``, ``host:port``, ``ray://host:port``) as a
    driver; one line when that fails. Nothing is started: ``local`` is refused, the address is
    probed with a timeout first (``cluster_address``), the driver binds to the interface that
    reaches the cluster, and a join that still hangs is abandoned after ``JOIN_TIMEOUT_S``. Ray's
    token authentication, where the cluster uses it, is read by Ray from ``RAY_AUTH_MODE`` /
    ``RAY_AUTH_TOKEN`` (or ``~/.ray/auth_token``)."""
    target = cluster_address.parse(address)
    ray = require_ray()
    if target.host is None and target.text == "auto":
        target = _found(target)
    cluster_address.probe(target)
    bind = None if target.client else cluster_address.driver_address(target)
    loopback = cluster_address.is_loopback(bind)
    kwargs: dict[str, Any] = {}
    if bind is not None:
        if loopback:
            _keep_loopback()
        kwargs["_node_ip_address"] = bind
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    shown = shorten(target.text, 60)
    try:
        with _abandoned_after(JOIN_TIMEOUT_S, f"cannot join the Ray cluster at {shown!r}: no answer in "
                                              f"{JOIN_TIMEOUT_S:.0f} s"):
            ray.init(address=target.text, logging_level="ERROR", log_to_driver=False, configure_logging=True,
                     **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray's many ways of not connecting: one line each
        hint = ""
        if loopback and any("No node info found" in str(e) for e in (exc, exc.__cause__)):
            hint = ("; no Ray node of this machine is on loopback (one started without --node-ip-address 127.0.0.1 "
                    "is at the machine's LAN address): give that address")
        raise ClusterError(f"cannot join the Ray cluster at {shown!r}: {error_line(exc)}{hint}") from None
    if loopback and not cluster_address.is_loopback(ray.util.get_node_ip_address()):
        ray.shutdown()
        raise ClusterError(f"cannot join the Ray cluster at {shown!r} on loopback: this Ray moves the driver to "
                           f"{ray.util.get_node_ip_address()}, where it would listen on every interface")
    return Cluster(ray, target.text)


def _found(target: cluster_address.Target) -> cluster_address.Target:
    """``auto``: the address of the cluster Ray would join (from this machine's Ray session), so
    that it is probed and bound to as a named one is."""
    try:
        from ray._private import services

        found = services.get_ray_address_from_environment("auto", None)
    except Exception:  # noqa: BLE001 - none found (Ray says so when joining), or a Ray that finds it otherwise
        return target
    parsed = cluster_address.split_host_port(str(found or ""))
    return cluster_address.Target(target.text, *parsed) if parsed else target


def _keep_loopback() -> None:
    """Keep Ray from replacing a loopback address by this machine's LAN address (it does so
    unless told the cluster is a one-machine one): the driver then listens on loopback only."""
    try:
        from ray._private import ray_constants
    except ImportError:  # checked after joining: a driver off loopback is refused
        return
    ray_constants.ENABLE_RAY_CLUSTER = False


@contextlib.contextmanager
def _abandoned_after(seconds: float, line: str):
    """Run the block; if it has not returned after ``seconds`` (Ray's join retries an unreachable
    cluster forever, in code that no signal interrupts), say ``line`` and end the process with
    exit status 2. Nothing has been written when a cluster is joined, so nothing is left half done."""

    def give_up() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"cnnprof: error: {line}\n")
            sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


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
