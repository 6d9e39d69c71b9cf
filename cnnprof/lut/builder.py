"""Filling a latency table: which blocks to time (a search space's grid, a model's parts), timing
each distinct block once, skipping what this environment already measured, and saving as it goes.

FBNet's table (paper Sec. 3.2) has one latency per candidate block per searchable layer: 9 x 22
cells plus the fixed stem and head. Cells that compute the same thing on the same input (layers
2-4 of a stage all see 24 x 56 x 56, for instance) share one key, so one measurement serves them
all: the FBNet space at 224 has 111 distinct entries for its 198 cells, stem and two heads.

These are isolated entries (each block alone, called again and again); in-context entries, read
inside whole networks, are ``cnnprof.lut.context``'s. The two share only what lies below them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.keys import head_input, space_index, split
from cnnprof.lut.measure import BLOCK_PROTOCOL, ROUNDS, Measured, Timer, combine, make_timer, per_round
from cnnprof.lut.probe import use_allocator
from cnnprof.lut.space import fbnet_head_widths, head_network
from cnnprof.lut.table import Allocator, BuildReport, Entry, SpaceIndex, Table, env_id, environment, open_table
from cnnprof.timing.protocol import Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.models.fbnet import SearchSpace
    from cnnprof.targets import Target


@dataclass(frozen=True)
class Job:
    """A block to time: its key, a readable label, its input (C, H, W), how to build it."""

    key: str
    label: str
    input: tuple[int, ...]
    make: Callable[[], "nn.Module"]
    group: str


# -- what to time --------------------------------------------------------------------------------
def space_jobs(
    space: "SearchSpace", *, name: str = "fbnet", head_widths: Sequence[int] = (), layers: Sequence[int] | None = None
) -> tuple[list[Job], SpaceIndex]:
    """Jobs for every (layer, candidate) of ``space`` (or only ``layers``), its stem and heads, and
    the space's full index of keys (always complete, so a partial build shows what is missing)."""
    wanted = set(range(len(space.layers))) if layers is None else set(layers)
    bad = sorted(i for i in wanted if not 0 <= i < len(space.layers))
    if bad:
        raise UsageError(f"--layers: {bad[0]} is not a layer of the {name} space (0..{len(space.layers) - 1})")
    index = space_index(space, head_widths=head_widths)
    shapes = space.block_input_shapes()
    jobs = [Job(key, f"{name} L{i:02d} {cand}", shapes[i], lambda i=i, c=cand: space.build_block(i, c),
                f"{name} blocks")
            for i, row in enumerate(index.layers) if i in wanted for cand, key in zip(index.candidates, row)]
    jobs.append(Job(index.stem, f"{name} stem", space.input, space.build_stem, f"{name} stem+heads"))
    for width, key in index.heads.items():
        jobs.append(Job(key, f"{name} head {width}", head_input(space), lambda w=int(width): head_network(space, w),
                        f"{name} stem+heads"))
    return jobs, index


def fbnet_space_jobs(layers: Sequence[int] | None = None) -> tuple[list[Job], SpaceIndex]:
    """The FBNet space at 224 with the search space's 1984 head and FBNet-A's 1504 head."""
    from cnnprof.models.fbnet import FBNET_SPACE

    return space_jobs(FBNET_SPACE, name="fbnet", head_widths=fbnet_head_widths(), layers=layers)


def model_jobs(target: "Target") -> list[Job]:
    """The parts of a model (stem, each block, head) as jobs, labelled ``<model> <part>``."""
    model = target.build()
    return [
        Job(p.key, f"{target.name} {p.label}", p.input, lambda m=p.module: m, target.name)
        for p in split(model, target.input, name=target.name)
    ]


# -- the build ------------------------------------------------------------------------------------
def build(
    jobs: Sequence[Job],
    *,
    path: str | Path,
    backend: str = "torch",
    threads: int = 1,
    clock: str = "wall",
    protocol: Protocol = BLOCK_PROTOCOL,
    rounds: int = ROUNDS,
    force: bool = False,
    spaces: dict[str, SpaceIndex] | None = None,
    timer: Timer | None = None,
    max_entries: int | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    save_every_s: float = 15.0,
    allocator: Allocator = Allocator.DEFAULT,
) -> tuple[Table, BuildReport]:
    """Time every distinct job not already measured in this environment and save the table.

    ``protocol`` is what one entry gets in all; it is spread over ``rounds`` passes over all the
    jobs, and an entry keeps the median of its round medians (``measure.combine``). Entries
    measured here before (same CPU model, backend, threads, clock, torch / onnxruntime versions,
    at least as many rounds) are kept unless ``force``; the file is rewritten atomically after
    every round, every ``save_every_s`` seconds and at the end (also on Ctrl-C, so a rebuild
    resumes). ``timer`` replaces real timing in tests.
    """
    import tempfile

    start = time.perf_counter()
    if timer is None:
        allocator = use_allocator(allocator)  # what this process can have: the table records it
    table = open_table(path, backend=backend, threads=threads, force=force, clock=clock, allocator=allocator)
    here = environment(backend, threads, clock)
    eid = env_id(here)
    table.environments[eid] = here
    table.protocol = {"warmup_runs": protocol.warmup_runs, "warmup_s": protocol.warmup_s,
                      "min_runs": protocol.min_runs, "min_time_s": protocol.min_time_s, "rounds": rounds}
    table.spaces.update(spaces or {})
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.key, job)
    report = BuildReport(path=Path(path))
    todo = []
    for key, job in unique.items():
        g = report.groups.setdefault(job.group, {"entries": 0, "measured": 0, "reused": 0, "sum_ms": 0.0})
        g["entries"] += 1
        old = table.entries.get(key)
        if old is not None and old.env == eid and old.rounds >= rounds and not force:
            g["reused"] += 1
            g["sum_ms"] += old.median_ms
        else:
            todo.append(job)
    if max_entries is not None:
        todo = todo[:max_entries]
    measured: dict[str, list[Measured]] = {job.key: [] for job in todo}
    total = rounds * len(todo)
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        timer = timer or make_timer(backend=backend, threads=threads, protocol=per_round(protocol, rounds),
                                    onnx_dir=onnx_dir, clock=clock, allocator=allocator)
        last_save = time.perf_counter()
        try:
            for r in range(rounds):
                for n, job in enumerate(todo):
                    if on_progress:
                        on_progress(r * len(todo) + n, total, job.label)
                    measured[job.key].append(timer(job.make(), job.input, job.label))
                    table.entries[job.key] = _entry(job, combine(measured[job.key]), eid, r + 1)
                    if time.perf_counter() - last_save > save_every_s:
                        table.save(path)
                        last_save = time.perf_counter()
                table.save(path)
                last_save = time.perf_counter()
            if on_progress:
                on_progress(total, total, "done")
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            table.save(path)
    for job in todo:
        if measured[job.key]:
            g = report.groups[job.group]
            g["measured"] += 1
            g["sum_ms"] += table.entries[job.key].median_ms
    keys = list(unique)
    report.foreign = [d for d in table.foreign(keys, here)]
    report.seconds = time.perf_counter() - start
    return table, report


def _entry(job: Job, m: Measured, eid: str, rounds: int) -> Entry:
    return Entry(
        label=job.label, input=tuple(job.input), median_ms=m.median_ms, iqr_ms=m.iqr_ms, p10_ms=m.p10_ms,
        p90_ms=m.p90_ms, runs=m.runs, env=eid, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        warnings=m.warnings, rounds=rounds,
    )


__all__ = ["Job", "build", "fbnet_space_jobs", "model_jobs", "space_jobs"]
