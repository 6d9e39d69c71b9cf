"""Filling a latency table: which blocks to time (a search space's grid, a model's parts), timing
each distinct block once, skipping what this environment already measured, and saving as it goes.

FBNet's table (paper Sec. 3.2) has one latency per candidate block per searchable layer: 9 x 22
cells plus the fixed stem and head. Cells that compute the same thing on the same input (layers
2-4 of a stage all see 24 x 56 x 56, for instance) share one key, so one measurement serves them
all: the FBNet space at 224 has 111 distinct entries for its 198 cells, stem and two heads.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.keys import block_key, head_key, split
from cnnprof.lut.measure import BLOCK_PROTOCOL, ROUNDS, WHOLE_PROTOCOL, Measured, Timer, combine, make_timer, per_round
from cnnprof.lut.table import Entry, SpaceIndex, Table, TableError, env_differences, env_id, environment, load
from cnnprof.timing.protocol import Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.models.fbnet import SearchSpace
    from cnnprof.targets import Target

FBNET_SPACE_NAME = "fbnet@224"
CALIBRATION_MODELS = ("fbnet_a", "fbnet_b", "fbnet_c")


@dataclass(frozen=True)
class Job:
    """A block to time: its key, a readable label, its input (C, H, W), how to build it."""

    key: str
    label: str
    input: tuple[int, ...]
    make: Callable[[], "nn.Module"]
    group: str


@dataclass
class BuildReport:
    path: Path
    seconds: float = 0.0
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> counts and ms
    foreign: list[str] = field(default_factory=list)  # environment differences of kept entries
    calibration: dict | None = None
    interrupted: bool = False
    networks: int = 0  # in-context builds: networks timed in place now


# -- what to time --------------------------------------------------------------------------------
def space_jobs(
    space: "SearchSpace", *, name: str = "fbnet", head_widths: Sequence[int] = (), layers: Sequence[int] | None = None
) -> tuple[list[Job], SpaceIndex]:
    """Jobs for every (layer, candidate) of ``space`` (or only ``layers``), its stem and heads, and
    the space's full index of keys (always complete, so a partial build shows what is missing)."""
    import torch
    from torch import nn

    from cnnprof.models.blocks.fbnet import FBNetNetwork

    meta = torch.device("meta")  # keys need shapes and hyper-parameters only: no allocation, no init
    shapes = space.block_input_shapes()
    wanted = set(range(len(space.layers))) if layers is None else set(layers)
    bad = sorted(i for i in wanted if not 0 <= i < len(space.layers))
    if bad:
        raise UsageError(f"--layers: {bad[0]} is not a layer of the {name} space (0..{len(space.layers) - 1})")
    jobs: list[Job] = []
    grid = []
    for i, shape in enumerate(shapes):
        row = []
        for cand in space.names:
            with meta:
                key = block_key(space.build_block(i, cand), shape)
            row.append(key)
            if i in wanted:
                jobs.append(Job(key, f"{name} L{i:02d} {cand}", shape, lambda i=i, c=cand: space.build_block(i, c),
                                f"{name} blocks"))
        grid.append(tuple(row))
    with meta:
        stem_key = block_key(space.build_stem(), space.input)
    jobs.append(Job(stem_key, f"{name} stem", space.input, space.build_stem, f"{name} stem+heads"))
    last = space.layers[-1]
    head_in = (last.out_chs, *(-(-hw // last.stride) for hw in last.in_hw))
    heads = {}
    for width in dict.fromkeys([space.head_chs, *head_widths]):
        def make(width: int = width) -> "nn.Module":
            return FBNetNetwork(nn.Identity(), nn.Identity(), space.build_head(head_chs=width))

        with meta:
            key = head_key(make(), head_in)
        heads[str(width)] = key
        jobs.append(Job(key, f"{name} head {width}", head_in, make, f"{name} stem+heads"))
    index = SpaceIndex(tuple(space.names), tuple(grid), stem_key, heads, str(space.head_chs), tuple(space.input))
    return jobs, index


def fbnet_space_jobs(layers: Sequence[int] | None = None) -> tuple[list[Job], SpaceIndex]:
    """The FBNet space at 224 with the search space's 1984 head and FBNet-A's 1504 head."""
    from cnnprof.models.fbnet import FBNET_HEAD_CHS, FBNET_SPACE

    return space_jobs(FBNET_SPACE, name="fbnet", head_widths=sorted(set(FBNET_HEAD_CHS.values())), layers=layers)


def model_jobs(target: "Target") -> list[Job]:
    """The parts of a model (stem, each block, head) as jobs, labelled ``<model> <part>``."""
    model = target.build()
    return [
        Job(p.key, f"{target.name} {p.label}", p.input, lambda m=p.module: m, target.name)
        for p in split(model, target.input, name=target.name)
    ]


# -- the build ------------------------------------------------------------------------------------
def open_table(path: str | Path, *, backend: str, threads: int, force: bool, clock: str = "wall",
               mode: str = "isolated", allocator: str = "default") -> Table:
    """The table at ``path`` to add to, or a new one (a corrupt file, or one of entries measured the
    other way, is replaced only with ``force``)."""
    p = Path(path)
    if not p.exists():
        return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
    try:
        table = load(p)
    except TableError:
        if force:
            return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
        raise
    if (table.backend, table.threads, table.clock) != (backend, threads, clock):
        raise UsageError(
            f"{str(p)!r} holds {table.backend} entries at {table.threads} thread(s) ({table.clock} clock), not "
            f"{backend} at {threads} ({clock} clock): choose another --output"
        )
    if (table.mode, table.allocator) != (mode, allocator):
        if force:
            return Table(backend=backend, threads=threads, clock=clock, mode=mode, allocator=allocator)
        raise UsageError(
            f"{str(p)!r} holds {table.mode} entries measured with the {table.allocator} allocator, not {mode} ones "
            f"with the {allocator} one: choose another --output, or --force to replace it"
        )
    return table


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
    allocator: str = "default",
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
        from cnnprof.lut.measure import use_allocator

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


# -- calibration ----------------------------------------------------------------------------------
def calibrate(
    table: Table,
    *,
    path: str | Path,
    models: Sequence[str] = CALIBRATION_MODELS,
    protocol: Protocol = WHOLE_PROTOCOL,
    rounds: int = ROUNDS,
    timer: Timer | None = None,
) -> dict | None:
    """Time ``models`` whole, compare with their block sums, store one scale factor in the table.

    The whole networks are timed in ``rounds`` interleaved rounds (as the table's entries). The
    scale is the geometric mean of measured / predicted (it minimises the squared log error,
    i.e. relative error in both directions). It is kept beside the raw table and offered as a
    *calibrated* prediction, reported as such; the raw sum is always reported first. Returns the
    calibration, or None when a model has blocks missing from the table."""
    import tempfile

    from cnnprof import targets
    from cnnprof.lut.predict import predict_parts

    here = environment(table.backend, table.threads, table.clock)
    built = []
    for target in targets.resolve_targets(list(models)):
        model = target.build()
        predicted, missing = predict_parts(table, split(model, target.input, name=target.name))
        if missing:
            return None
        built.append((target, model, predicted))
    times: dict[str, list[Measured]] = {target.name: [] for target, _, _ in built}
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        timer = timer or make_timer(backend=table.backend, threads=table.threads, protocol=per_round(protocol, rounds),
                                    onnx_dir=onnx_dir, clock=table.clock, allocator=table.allocator)
        for _ in range(rounds):
            for target, model, _ in built:
                times[target.name].append(timer(model, target.input, target.name))
    fitted = {}
    for target, _, predicted in built:
        measured = combine(times[target.name]).median_ms
        fitted[target.name] = {"predicted_ms": predicted, "measured_ms": measured, "ratio": predicted / measured}
    scale = math.exp(sum(math.log(v["measured_ms"] / v["predicted_ms"]) for v in fitted.values()) / len(fitted))
    table.calibration = {
        "scale": scale,
        "method": "geometric mean of whole-network / sum-of-blocks latency",
        "fitted_on": fitted,
        "env": env_id(here),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    table.save(path)
    return table.calibration


__all__ = [
    "BuildReport", "Job", "build", "calibrate", "env_differences", "fbnet_space_jobs",
    "model_jobs", "open_table", "space_jobs",
]
