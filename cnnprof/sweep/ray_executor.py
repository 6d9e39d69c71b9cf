"""The sweep's executor on a Ray cluster: each cell pass a Ray task on a node of the cell's kind.

The task (``run_on_node``) runs on the node with the node's own cnnprof: it starts the same
fresh ``python -m cnnprof.sweep.worker`` process a local sweep starts (``LocalExecutor``, with its
cell timeout, crash and out-of-memory handling), and returns that worker's result with the
node's id and host. Each task claims the node's measurement slot (``cnnprof_slot``, or
``cnnprof_gpu_slot`` for a GPU cell), so a node runs one cell at a time; its label selector names
the accepted nodes of the cell's kind (``cluster.Cluster.options``).

Nothing is lost: when the node (or its Ray worker) dies mid-cell, Ray runs the task again on
another node of that kind, up to ``retries`` times; after that, or when no node of the kind is
left, the cell pass is an error result naming what happened. The driver holds no more tasks in
flight than the kind has slots, so Ctrl-C stops as a local sweep does (after the running cells;
twice: at once, the running tasks cancelled), and the shuffled order of a pass is kept.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from cnnprof.cluster import DEFAULT_RETRIES, GPU_SLOT, Cluster, error_line, resource_for, wait_any
from cnnprof.sweep.executor import Job, OnResult, Result, failure

CHECK_NODES_S = 2.0  # how often the driver looks for nodes that died
GRACE_S = 300.0  # beyond (retries + 1) cell timeouts: a task with no answer by then is cancelled


def run_on_node(job: Job, timeout_s: float) -> Result:
    """The Ray task: one cell pass in a fresh worker process on this node."""
    import ray

    from cnnprof.sweep.executor import LocalExecutor

    got: list[Result] = []
    LocalExecutor(timeout_s=timeout_s, parallel=1).run([job], lambda j, r: got.append(r), lambda: False)
    result = got[0] if got else failure(job, "the worker gave no result")
    result["node_id"] = ray.get_runtime_context().get_node_id()
    result["node_host"] = socket.gethostname()
    return result


@dataclass
class _Flight:
    job: Job
    kind: str
    resource: str
    deadline: float
    submitted: float


@dataclass
class RayExecutor:
    """Runs a sweep's jobs (whose cells carry a ``kind``) on the accepted nodes of ``cluster``."""

    cluster: Cluster
    timeout_s: float = 600.0
    retries: int = DEFAULT_RETRIES
    poll_s: float = 0.2
    _task: Any = field(default=None, init=False, repr=False)

    def _remote(self):
        if self._task is None:
            self._task = self.cluster.ray.remote(run_on_node)
        return self._task

    def _capacity(self, kind: str, resource: str, alive: set[str]) -> int:
        nodes = [n for n in self.cluster.nodes_of(kind, resource) if n.id in alive]
        return int(sum(n.gpu_slots if resource == GPU_SLOT else n.slots for n in nodes))

    def _submit(self, job: Job) -> tuple[Any, _Flight]:
        cell = job["cell"]
        kind, device = cell.get("kind") or "", cell.get("device", "cpu")
        opts = self.cluster.options(kind, device, retries=self.retries)
        ref = self._remote().options(**opts).remote(job, self.timeout_s)
        now = time.monotonic()
        return ref, _Flight(job, kind, resource_for(device), now + self.timeout_s * (self.retries + 1) + GRACE_S, now)

    def _result(self, ref, flight: _Flight) -> Result:
        ray = self.cluster.ray
        from ray import exceptions as rx

        try:
            answer = ray.get(ref)
        except rx.TaskCancelledError:
            return failure(flight.job, "cancelled: no answer from the cluster in time")
        except rx.RayTaskError as exc:
            return failure(flight.job, "the task failed on the node: " + error_line(exc))
        except rx.RayError as exc:  # the node or its worker died, and the retries did too
            return failure(flight.job, f"the node running it went away ({type(exc).__name__}), and "
                                       f"{self.retries} retr{'y' if self.retries == 1 else 'ies'} on other nodes of "
                                       f"kind {flight.kind} did not finish it")
        try:
            answer["node"] = {**self.cluster.tag(flight.kind, answer), "environment": answer.get("environment")}
        except ValueError as exc:
            return failure(flight.job, f"refused: {exc}")
        if isinstance(answer.get("overhead"), dict) and answer.get("seconds") is not None:
            # what Ray adds to the worker's own time: placing the task, its Ray worker, the answer's way back
            answer["overhead"]["ray_s"] = max(0.0, time.monotonic() - flight.submitted - answer["seconds"])
        return answer

    def run(self, jobs: Iterable[Job], on_result: OnResult, should_stop: Callable[[], bool],
            abort: Callable[[], bool] = lambda: False) -> None:
        ray = self.cluster.ray
        pending: dict[tuple[str, str], deque] = {}
        for job in jobs:
            cell = job["cell"]
            pending.setdefault((cell.get("kind") or "", resource_for(cell.get("device", "cpu"))), deque()).append(job)
        flights: dict[Any, _Flight] = {}
        alive = self.cluster.alive_ids()
        checked = time.monotonic()
        try:
            while True:
                if abort():
                    return
                if not should_stop():
                    for (kind, resource), queue in pending.items():
                        room = self._capacity(kind, resource, alive) - sum(
                            1 for f in flights.values() if (f.kind, f.resource) == (kind, resource))
                        while queue and room > 0:
                            ref, flight = self._submit(queue.popleft())
                            flights[ref] = flight
                            room -= 1
                if not flights and (should_stop() or not any(pending.values())):
                    return
                for ref in wait_any(ray, list(flights), self.poll_s):
                    flight = flights.pop(ref)
                    on_result(flight.job, self._result(ref, flight))
                now = time.monotonic()
                if now - checked > CHECK_NODES_S:
                    alive, checked = self.cluster.alive_ids(), now
                    self._fail_orphans(pending, flights, alive, on_result)
                for ref, flight in list(flights.items()):
                    if now > flight.deadline:
                        ray.cancel(ref, force=True)
                        flights.pop(ref)
                        waited = self.timeout_s * (self.retries + 1) + GRACE_S
                        on_result(flight.job, failure(flight.job, f"no answer from the cluster in {waited:.0f} s: "
                                                                  "cancelled"))
        finally:
            for ref in flights:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass

    def _fail_orphans(self, pending, flights, alive: set[str], on_result: OnResult) -> None:
        """Jobs of a kind none of whose accepted nodes is alive any more: their error results."""
        ray = self.cluster.ray
        for (kind, resource), queue in pending.items():
            if self._capacity(kind, resource, alive) > 0:
                continue
            gone = ", ".join(n.short for n in self.cluster.nodes_of(kind, resource))
            error = f"no node of kind {kind} is left (nodes {gone} went away)"
            for ref, flight in list(flights.items()):
                if (flight.kind, flight.resource) == (kind, resource):
                    ray.cancel(ref, force=True)
                    flights.pop(ref)
                    on_result(flight.job, failure(flight.job, error))
            while queue:
                job = queue.popleft()
                on_result(job, failure(job, error))
