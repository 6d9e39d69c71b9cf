"""In-context latency-table entries: every block read in place, inside whole networks of the space.

Why. An isolated block called again and again on the same input does not cost what it costs in
a network (``benchmarks/lut_cause.py``, README): its weights and input stay in the caches, and
the allocator hands it back the buffers it freed a moment ago. In a network the previous
block's output is hot but the block's own weights are not, and which large buffers glibc's
``malloc`` returns to the kernel (so that the next call faults fresh, zeroed pages in: about
1.3 microseconds a 4 KiB page here) depends on everything allocated before. FBNet-B's
``k3_e6`` block at 112x112 costs 3.0 ms or 8.1 ms in isolation depending on what the process ran
before it (0 or 4,672 page faults a call). ONNX Runtime fuses batch norms, activations and
residual additions into its convolutions and keeps the whole network in its blocked layout:
an exported block alone reorders its input and output, which the network does once.

What. A few networks of the space are built so that every candidate sits at every layer in
``contexts`` different networks (a random Latin square per context: network j takes candidate
``perm_l[j]`` at layer l, so nine networks cover the 198 cells once). Each network is timed in
place (``measure.make_in_place_timer``: forward hooks on PyTorch, the profiler on ONNX Runtime)
in ``rounds`` interleaved passes; a block's entry is the mean of its in-place times over all the
networks and rounds it was read in (``context_ms`` keeps them; their spread is how much the
context moves the block, which ``lut calibrate`` uses to choose what to measure). The stem, the
heads and the glue (time outside every part) are entries too, so the parts of every measured
network add up to its latency. Every call is probed (``probe.SpeedProbe``): entries are at the
table's reference speed.

Networks are seeded and their batch norms calibrated (``targets.calibrate_model``), as every
registered model is, so that a sampled network and FBNet-A/B/C are built the same way.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.keys import glue_key, space_index, split
from cnnprof.lut.measure import InPlaceTimer, make_in_place_timer
from cnnprof.lut.probe import SpeedProbe, use_allocator
from cnnprof.lut.space import FBNET_SPACE_NAME, fbnet_head_widths, space_network
from cnnprof.lut.table import Allocator, BuildReport, Entry, Mode, SpaceIndex, Table, env_id, environment, open_table
from cnnprof.timing.protocol import LUT_CONTEXT, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.models.fbnet import SearchSpace
    from cnnprof.targets import Target

CONTEXTS = 4  # networks each cell is read in (4 x 9 = 36 networks for the FBNet space)
ROUNDS = 2  # passes over those networks


@dataclass(frozen=True)
class Design:
    """One network of the space to read blocks in: a candidate index per layer and a head."""

    label: str
    choices: tuple[int, ...]
    head: str  # head width, a key of the space index's heads

    @property
    def code(self) -> str:
        return "".join(str(c) for c in self.choices) + f"/{self.head}"


def designs(candidates: int, layers: int, heads: Sequence[str], *, contexts: int = CONTEXTS,
            seed: int = 0) -> list[Design]:
    """``contexts`` random Latin squares: every candidate at every layer once per square (one
    network per candidate index j, taking ``perm_l[j]`` at layer l); heads taken in turn."""
    import numpy as np

    if contexts < 1:
        raise UsageError(f"--contexts must be at least 1, got {contexts}")
    if not heads:
        raise ValueError("designs: no head")
    rng = np.random.default_rng(seed)
    out = []
    for c in range(contexts):
        perms = [rng.permutation(candidates) for _ in range(layers)]
        for j in range(candidates):
            n = c * candidates + j
            out.append(Design(f"context {n + 1:02d}", tuple(int(p[j]) for p in perms), heads[j % len(heads)]))
    return out


@dataclass(frozen=True)
class Network:
    """A network to read blocks in: an id (for resume), a label, how to build it, its input, and
    how to label its parts' entries (part index -> label; None: '<label> <part label>')."""

    id: str
    label: str
    make: Callable[[], "nn.Module"]
    input: tuple[int, ...]
    part_labels: Callable[[int, str], str] | None = None
    prefix: str = ""  # what its entries' labels and report groups start with: the space or the model


def space_networks(space: "SearchSpace", index: SpaceIndex, *, name: str = "fbnet", contexts: int = CONTEXTS,
                   seed: int = 0) -> list[Network]:
    """The networks that put every candidate of ``space`` at every layer in ``contexts`` networks."""
    heads = [index.default_head] + [h for h in index.heads if h != index.default_head]
    out = []
    for d in designs(len(index.candidates), len(index.layers), heads, contexts=contexts, seed=seed):
        names = [index.candidates[c] for c in d.choices]

        def part_label(i: int, role: str, names=names, head=d.head) -> str:
            if role == "block":
                return f"{name} L{i - 1:02d} {names[i - 1]}"
            return f"{name} head {head}" if role == "head" else f"{name} {role}"

        out.append(Network(d.code, f"{name} {d.label}", lambda n=names, h=int(d.head): space_network(space, n, h),
                           tuple(space.input), part_label, name))
    return out


def target_networks(targets: Sequence["Target"]) -> list[Network]:
    """Registered models as their own contexts (their parts read inside themselves)."""
    return [Network(f"model:{t.name}:{'x'.join(map(str, t.input))}", t.name, t.build, tuple(t.input), None, t.name)
            for t in targets]


def networks_of(spec: dict) -> tuple[list[Network], dict[str, SpaceIndex]]:
    """The networks of a build and its space indexes, from a picklable description (``space``:
    fbnet or none, ``contexts``, ``seed``, ``models``): what ``lut build`` and a cluster node
    compute alike."""
    from cnnprof.models.fbnet import FBNET_SPACE
    from cnnprof.targets import resolve_targets

    networks: list[Network] = []
    spaces: dict[str, SpaceIndex] = {}
    if spec.get("space") == "fbnet":
        index = space_index(FBNET_SPACE, head_widths=fbnet_head_widths())
        spaces[FBNET_SPACE_NAME] = index
        networks += space_networks(FBNET_SPACE, index, contexts=int(spec.get("contexts") or CONTEXTS),
                                   seed=int(spec.get("seed") or 0))
    if spec.get("models"):
        networks += target_networks(resolve_targets(list(spec["models"])))
    return networks, spaces


def merge_readings(table: Table, part: Table, rounds: int) -> set[str]:
    """Add an in-context table built elsewhere (``part``: other networks, the same probe reference)
    to ``table``: each entry's readings are pooled with those already there and its statistics
    recomputed, as if one process had read every network. Returns the keys it touched."""
    values = {k: list(e.context_ms) for k, e in table.entries.items() if e.contexts}
    labels = {k: (e.label, e.input) for k, e in table.entries.items()}
    runs = {k: e.runs for k, e in table.entries.items()}
    for key, e in part.entries.items():
        values.setdefault(key, []).extend(e.context_ms)
        labels.setdefault(key, (e.label, e.input))
        runs[key] = runs.get(key, 0) + e.runs
        table.entries[key] = _entry(key, labels, values, runs, e.env, table.entries.get(key), rounds)
    table.contexts.update(part.contexts)
    table.environments.update(part.environments)
    table.spaces.update(part.spaces)
    table.protocol = part.protocol
    table.mode = Mode.IN_CONTEXT
    return set(part.entries)


def group_of(label: str) -> str:
    """The report group of an entry label: '<prefix> blocks' for a space cell or a model's block,
    else '<prefix> stem, heads, glue'."""
    prefix, _, rest = label.partition(" ")
    return f"{prefix} blocks" if rest.startswith(("L", "blocks")) else f"{prefix} stem, heads, glue"


def build_in_context(
    networks: Sequence[Network],
    *,
    path: str | Path,
    backend: str = "torch",
    threads: int = 1,
    clock: str = "wall",
    protocol: Protocol = LUT_CONTEXT,
    rounds: int = ROUNDS,
    force: bool = False,
    spaces: dict[str, SpaceIndex] | None = None,
    timer: InPlaceTimer | None = None,
    probe: SpeedProbe | None = None,
    max_networks: int | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    save_every_s: float = 15.0,
    allocator: Allocator = Allocator.STEADY,
) -> tuple[Table, BuildReport]:
    """Time ``networks`` in place in ``rounds`` passes and keep every part's in-place times as
    in-context entries of the table at ``path`` (saved as it goes; Ctrl-C keeps what was done).

    ``allocator`` (``steady``, the default, or ``default``) is set for the process before timing
    (``probe.use_allocator``) and recorded: every check of the table does the same.

    Networks this environment already read (same id and round) are skipped unless ``force``, so
    an interrupted build resumes; entries and the probe reference from another environment are
    dropped (an in-context table is in the units of one machine's probe), as are all entries
    when the table was normalised by another probe than ``probe``, and so is a calibration when
    any network is timed now (it was fitted to the entries as they were). ``timer`` and ``probe``
    replace real timing in tests."""
    import tempfile

    start = time.perf_counter()
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {rounds}")
    if timer is None:
        allocator = use_allocator(allocator)  # what this process can have: the table records it
    table = open_table(path, backend=backend, threads=threads, force=force, clock=clock, mode=Mode.IN_CONTEXT,
                       allocator=allocator)
    here = environment(backend, threads, clock)
    eid = env_id(here)
    if probe is None:
        probe = SpeedProbe(clock, backend=backend, threads=threads)
    other_unit = table.probe is not None and table.probe.get("name") != probe.name  # another probe's units
    if force or other_unit or table.probe is None or table.probe.get("env") != eid:
        keep = not (force or other_unit)
        table.entries = {k: e for k, e in table.entries.items() if keep and e.env == eid}
        table.contexts = {k: v for k, v in table.contexts.items() if keep and v == eid}
        table.probe = None
    table.environments[eid] = here
    table.mode = Mode.IN_CONTEXT
    table.protocol = {"warmup_runs": protocol.warmup_runs, "warmup_s": protocol.warmup_s,
                      "min_runs": protocol.min_runs, "min_time_s": protocol.min_time_s, "rounds": rounds,
                      "entries": Mode.IN_CONTEXT}
    report = BuildReport(path=Path(path))
    if table.probe and probe.reference_ms is None:
        probe.reference_ms = float(table.probe["reference_ms"])
    todo = [(r, net) for r in range(rounds) for net in networks
            if force or table.contexts.get(f"{net.id}#{r}") != eid]
    if max_networks is not None:
        todo = todo[:max_networks]
    if todo and table.calibration is not None:
        table.calibration = None  # fitted to entries that are about to change
        report.calibration = {"dropped": True}
    values: dict[str, list[float]] = {k: list(e.context_ms) for k, e in table.entries.items() if e.contexts}
    labels: dict[str, tuple[str, tuple[int, ...]]] = {}
    runs: dict[str, int] = {k: e.runs for k, e in table.entries.items()}
    touched: set[str] = set()
    space_of = dict(spaces or {})
    glue_keys: dict[str, str] = {}  # prefix -> glue key
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        timer = timer or make_in_place_timer(backend=backend, threads=threads, protocol=protocol, onnx_dir=onnx_dir,
                                             clock=clock, probe=probe)
        if probe.reference_ms is None:
            from cnnprof.timing import torch_threads

            with torch_threads(threads):
                probe.settle()
        table.probe = {**probe.to_dict(), "env": eid}
        last_save = time.perf_counter()
        try:
            for n, (r, net) in enumerate(todo):
                if on_progress:
                    on_progress(n, len(todo), f"{net.label} (round {r + 1})")
                model = net.make()
                parts = split(model, net.input, name=net.label)
                result = timer(model, net.input, parts, net.label)
                gkey = glue_key(type(model).__name__, net.input)
                prefix = net.prefix or net.label
                glue_keys[prefix] = gkey
                for i, (part, value) in enumerate(zip(parts, result.parts)):
                    label = net.part_labels(i, part.role) if net.part_labels else f"{net.label} {part.label}"
                    labels.setdefault(part.key, (label, part.input))
                    values.setdefault(part.key, []).append(value)
                    runs[part.key] = runs.get(part.key, 0) + result.whole.runs
                    touched.add(part.key)
                labels.setdefault(gkey, (f"{prefix} glue ({type(model).__name__}, outside the parts)", net.input))
                values.setdefault(gkey, []).append(result.glue_ms)
                runs[gkey] = runs.get(gkey, 0) + result.whole.runs
                touched.add(gkey)
                table.contexts[f"{net.id}#{r}"] = eid
                for key in (p.key for p in parts):
                    table.entries[key] = _entry(key, labels, values, runs, eid, table.entries.get(key), rounds)
                table.entries[gkey] = _entry(gkey, labels, values, runs, eid, table.entries.get(gkey), rounds)
                if time.perf_counter() - last_save > save_every_s:
                    _finish_spaces(table, space_of, glue_keys)
                    table.save(path)
                    last_save = time.perf_counter()
            if on_progress:
                on_progress(len(todo), len(todo), "done")
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            _finish_spaces(table, space_of, glue_keys)
            table.save(path)
    for key, e in table.entries.items():
        g = report.groups.setdefault(group_of(e.label), {"entries": 0, "measured": 0, "reused": 0, "sum_ms": 0.0})
        g["entries"] += 1
        g["measured" if key in touched else "reused"] += 1
        g["sum_ms"] += e.latency_ms
    report.networks = len({net.id for _, net in todo})
    report.seconds = time.perf_counter() - start
    return table, report


def _finish_spaces(table: Table, spaces: dict[str, SpaceIndex], glue_keys: dict[str, str]) -> None:
    """The space indexes with the glue key of their networks."""
    for name, index in spaces.items():
        gkey = glue_keys.get(name.split("@")[0]) or index.glue
        table.spaces[name] = dataclasses.replace(index, glue=gkey)


def _entry(key: str, labels: dict, values: dict[str, list[float]], runs: dict[str, int], eid: str,
           old: Entry | None, rounds: int) -> Entry:
    import numpy as np

    label, shape = labels.get(key, (old.label if old else key, old.input if old else ()))
    v = np.asarray(values[key], dtype=float)
    p10, p25, p75, p90 = (float(np.percentile(v, q)) for q in (10, 25, 75, 90))
    return Entry(
        label=label, input=tuple(shape), median_ms=float(np.median(v)), iqr_ms=p75 - p25, p10_ms=p10, p90_ms=p90,
        runs=max(1, runs.get(key, 1)), env=eid, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        rounds=rounds, contexts=len(v), mean_ms=float(v.mean()), spread_ms=float(v.std()),
        context_ms=tuple(float(x) for x in v),
    )


def context_summary(table: Table, space: str) -> dict[str, float]:
    """How much the context moves the space's cells: the median over cells of spread / mean."""
    index = table.spaces[space]
    rel = [table.entries[k].spread_ms / table.entries[k].latency_ms for row in index.layers for k in row
           if k in table.entries and table.entries[k].contexts > 1 and table.entries[k].latency_ms > 0]
    return {"cells": len(rel), "median_relative_spread": statistics.median(rel) if rel else float("nan")}


__all__ = ["CONTEXTS", "Design", "Network", "build_in_context", "context_summary", "designs", "group_of",
           "merge_readings", "networks_of", "space_networks", "target_networks"]
