"""Count and time targets into report rows: what ``profile``, ``compare`` and ``bench`` print.

``count_rows`` counts each target once; ``bench_rows`` counts, then times every target x batch x
backend x precision under one ``TimingOptions``, yielding each row as it is done (so a long run
shows progress and Ctrl-C keeps what was measured). A model that fails becomes a row with
``error`` set; the others go on. By default each configuration is timed in a fresh worker
process, which also measures its peak memory (``cnnprof.bench.isolated``); ``isolate=False``
times in this process (faster, no memory figure). ``fastest`` picks, per model, the quickest
configuration and its speed-up over fp32 PyTorch eager.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.rows import Counts, Note, Notes, ProfileRow, Row, counts_row, with_latency
from cnnprof.targets import Target, check_batch, count_target, running, target_input
from cnnprof.timing.backends import CPU, ONNX_BACKENDS, REFERENCE, Backend, Precision

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.timing import TimingOptions
    from cnnprof.timing.quantize import QuantOptions
    from cnnprof.timing.protocol import Protocol

Progress = Callable[[str], None]


def count_rows(
    targets: Sequence[Target],
    *,
    resolution: tuple[int, int] | None = None,
    batch: int = 1,
    on_progress: Progress | None = None,
) -> list[tuple[ProfileRow, Counts | None]]:
    """Count each target; a model that fails becomes a row with ``error`` set."""
    check_batch(batch)
    shapes = [target_input(t, resolution, batch=batch) for t in targets]  # validate all before any work
    out: list[tuple[ProfileRow, Counts | None]] = []
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"counting {target.name}" + (f" at {shape[1]}x{shape[2]}" if len(shape) == 3 else ""))
        try:
            counts = count_target(target, shape, batch=batch)
            weights = target.weights_label
        except CnnprofError as exc:
            if len(targets) == 1:
                raise
            out.append((ProfileRow(model=target.name, family=target.family, batch=batch, weights=target.weights,
                                   error=str(exc)), None))
            continue
        row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch)
        out.append((dataclasses.replace(row, weights=weights), counts))
    return out


@dataclass(frozen=True)
class Plan:
    """What one run times: every configuration (backend x precision) as ``TimingOptions`` checked
    once, here, and why the others were left out (``--backend all`` / ``--precision all``)."""

    options: tuple[TimingOptions, ...]
    skipped: tuple[str, ...] = ()

    @property
    def pairs(self) -> list[tuple[Backend, Precision]]:
        return [(o.backend, o.precision) for o in self.options]


def make_plan(backends: Sequence[Backend | str], precisions: Sequence[Precision | str], *, device: str = "cpu",
              threads: int = 1, channels_last: bool = False, train: bool = False, protocol: Protocol | None = None,
              onnx_dir: str | None = None, quant: QuantOptions | None = None, force: bool = False,
              cuda_graphs: bool = False, parity_inputs: int | None = None, only_runnable: bool = False) -> Plan:
    """Check every backend x precision under the run's options (``timing.check_options``, once each).

    With ``only_runnable`` (``--backend all`` or ``--precision all``) the pairs this machine
    cannot run are left out (and said why); otherwise any such pair is a one-line error."""
    from cnnprof import timing

    given = dict(protocol=protocol, onnx_dir=onnx_dir, quant=quant, parity_inputs=parity_inputs)
    base = timing.TimingOptions(device=device, threads=threads, channels_last=channels_last, train=train, force=force,
                                **{k: v for k, v in given.items() if v is not None})
    checked, skipped = [], []
    for backend in backends:
        known = Backend.parse(backend)
        graphs = cuda_graphs and known is not None and known.record.cuda_graphs
        for precision in precisions:
            opts = dataclasses.replace(base, backend=backend, precision=precision, cuda_graphs=graphs)
            try:
                timing.check_options(opts)
            except UsageError as exc:
                if not only_runnable:
                    raise
                skipped.append(f"{backend} {precision}: {exc}")
                continue
            checked.append(opts)
    if not checked:
        raise UsageError("nothing to time: " + "; ".join(skipped) if skipped else "nothing to time")
    return Plan(tuple(checked), tuple(skipped))


def configurations(backends: Sequence[Backend | str], precisions: Sequence[Precision | str], *, device: str = "cpu",
                   force: bool = False, cuda_graphs: bool = False,
                   only_runnable: bool = False) -> tuple[list[tuple[Backend, Precision]], list[str]]:
    """The (backend, precision) pairs to time, and why the others were left out (``make_plan``
    under default options)."""
    plan = make_plan(backends, precisions, device=device, force=force, cuda_graphs=cuda_graphs,
                     only_runnable=only_runnable)
    return plan.pairs, list(plan.skipped)


def bench_rows(
    targets: Sequence[Target],
    *,
    backends: Sequence[Backend | str] = ("torch",),
    precisions: Sequence[Precision | str] = ("fp32",),
    device: str = "cpu",
    batches: Sequence[int] = (1,),
    threads: int = 1,
    channels_last: bool = False,
    train: bool = False,
    resolution: tuple[int, int] | None = None,
    protocol: Protocol | None = None,
    onnx_dir: str | None = None,
    quant: QuantOptions | None = None,
    force: bool = False,
    cuda_graphs: bool = False,
    parity_inputs: int | None = None,
    only_runnable: bool = False,
    isolate: bool = True,
    on_progress: Progress | None = None,
    plan: Plan | None = None,
) -> Iterator[ProfileRow]:
    """Count and time every target x batch x backend x precision, yielding one row as each is done.

    A model that fails on one configuration (export, quantisation, compile, session) yields a row
    with ``error`` and the others go on. Counting happens once per target, at batch 1.
    ``isolate`` times each configuration in a fresh process and measures its peak memory.
    ``plan``: the configurations already checked by ``make_plan`` (a command checks them before
    it resolves any model); it then stands for every option from ``backends`` to ``only_runnable``.
    """
    from cnnprof import counting, timing
    from cnnprof.timing.environment import fingerprint

    if plan is None:
        plan = make_plan(backends, precisions, device=device, threads=threads, channels_last=channels_last,
                         train=train, protocol=protocol, onnx_dir=onnx_dir, quant=quant, force=force,
                         cuda_graphs=cuda_graphs, parity_inputs=parity_inputs, only_runnable=only_runnable)
    configs = plan.options
    base_opts = configs[0]
    device, threads = base_opts.device, base_opts.threads
    for b in batches:
        check_batch(b)
    onnx_files = [t.name for t in targets if t.onnx_path is not None]
    if onnx_files and not any(o.backend.is_onnx for o in configs):
        raise UsageError(f"{onnx_files[0]} is an ONNX file: it is timed with {', '.join(ONNX_BACKENDS)} only, not "
                         f"{', '.join(dict.fromkeys(o.backend.value for o in configs))}: "
                         "time it with --backend onnxruntime")
    shapes = [target_input(t, resolution, batch=max(batches)) for t in targets]
    _check_synthetic_inputs(shapes, batches, base_opts, [o.precision for o in configs])
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"{target.name}: counting")
        try:
            base = count_target(target, shape)
            weights = target.weights_label
        except CnnprofError as exc:
            yield ProfileRow(model=target.name, family=target.family, weights=target.weights, error=str(exc))
            continue
        model = None
        if isolate and target.onnx_path is None:
            try:  # one calibrated build: exported, weighed and run as the parity reference for every row
                model = target.build(shape=shape)
            except CnnprofError as exc:
                yield ProfileRow(model=target.name, family=target.family, weights=weights, error=str(exc))
                continue
        for batch in batches:
            counts = base if target.onnx_path else counting.scale_to_batch(base, batch)
            row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch)
            row = dataclasses.replace(row, weights=weights)
            if target.onnx_path is not None and batch != counts.input_shape[0]:
                try:
                    counts = count_target(target, shape, batch=batch)
                except CnnprofError as exc:
                    yield dataclasses.replace(row, error=str(exc))
                    continue
                row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape,
                                 batch=batch)
                row = dataclasses.replace(row, weights=weights)
            prepared = _prepare_files(target, model, shape, batch, configs, single=len(targets) == 1)
            isolated = None
            if isolate:
                from cnnprof.bench.isolated import IsolatedModel

                isolated = IsolatedModel(name=target.name, input_shape=shape, batch=batch, model=model,
                                         recipe=target.recipe, onnx_path=target.onnx_path,
                                         parity=base_opts.parity, parity_inputs=base_opts.parity_inputs)
            try:
                for checked in configs:
                    opts = dataclasses.replace(checked, batch=batch)
                    backend, precision = opts.backend, opts.precision
                    if on_progress:
                        on_progress(f"{target.name}: timing {backend} {precision} on {device}, batch {batch}, "
                                    f"{threads} thread(s)" + (" in a fresh process" if isolate else ""))
                    try:
                        file = prepared.get((backend, precision))
                        if isinstance(file, CnnprofError):
                            raise file
                        if target.onnx_path is not None and not backend.is_onnx:
                            raise UsageError(f"{target.name} is an ONNX file: it is timed with "
                                             f"{', '.join(ONNX_BACKENDS)} only")
                        if isolated is not None:
                            with running(target.name):
                                latency = isolated.time(opts, checked=True, prepared=file)
                        elif target.onnx_path is not None:
                            latency = timing.time_model(None, shape, name=target.name, opts=opts,
                                                        onnx_path=target.onnx_path, checked=True, prepared=file)
                        else:
                            fresh = target.build(shape=shape)
                            with running(target.name):
                                latency = timing.time_model(fresh, shape, name=target.name, opts=opts, checked=True,
                                                            prepared=file)
                    except CnnprofError as exc:
                        yield dataclasses.replace(row, backend=backend.value, device=device, threads=threads,
                                                  precision=precision.value, error=str(exc))
                        continue
                    timed = with_latency(row, latency, counts.macs)  # its notes and the tails note
                    yield dataclasses.replace(timed, warnings=Notes(list(timed.warnings) + _precision_notes(opts)),
                                              environment=fingerprint(threads))
            finally:
                if isolated is not None:
                    isolated.close()


def _check_synthetic_inputs(shapes, batches, opts, precisions) -> None:
    """The parity and calibration images must fit in memory: refused before any work (exit 2)."""
    from cnnprof.timing.parity import check_images_fit

    for shape in shapes:
        if shape:
            b = max(batches)
            check_images_fit(-(-opts.parity_inputs // b) * b, shape, "--parity-inputs")
            if Precision.int8 in precisions:
                check_images_fit(-(-opts.quant.samples // b) * b, shape, "--calibration-samples")


def _prepare_files(target: Target, model, shape, batch: int, configs: Sequence[TimingOptions], *,
                   single: bool) -> dict[tuple[Backend, Precision], tuple | CnnprofError]:
    """Export and quantise (or convert to fp16) what the ONNX configurations need, before anything
    is timed: with one model a failure is one line and exit 2 at once; with several it becomes the
    error of that model's configurations, and the other rows are measured. Returns, per
    configuration, the prepared (file, export seconds), which its timing then uses as is, or its
    error."""
    from cnnprof import timing

    prepared: dict[tuple[Backend, Precision], tuple | CnnprofError] = {}
    for checked in configs:
        if not checked.backend.is_onnx or checked.precision not in (Precision.int8, Precision.fp16):
            continue
        opts = dataclasses.replace(checked, batch=batch)
        try:
            source = model if model is not None or target.onnx_path else target.build(shape=shape)
            with running(target.name):
                prepared[opts.backend, opts.precision] = timing.onnx_file(
                    source, timing.example_input(batch, shape), opts, target.name, target.onnx_path)
        except CnnprofError as exc:
            if single:
                raise
            prepared[opts.backend, opts.precision] = exc
    return prepared


def _precision_notes(opts) -> list[Note]:
    """A bf16 row on a CPU that would only emulate it (timed because of --force) says so."""
    if opts.precision is not Precision.bf16 or opts.device != CPU:
        return []
    from cnnprof.timing.precision import bf16_capability

    native, how = bf16_capability()
    return [] if native else [Note.tagged("precision", f"bf16 on this CPU is {how}")]


@dataclass(frozen=True)
class FastestRow(Row):
    """Per model (and batch): the fastest configuration timed, and how it compares with fp32 eager."""

    model: str
    batch: int
    backend: str
    precision: str
    latency_ms_median: float
    speedup_vs_fp32_eager: float | None  # fp32 torch eager median / this median (None: eager not timed)
    fp32_eager_ms: float | None
    parity_max_abs: float | None
    parity_sqnr_db: float | None
    parity_top1_agreement: float | None
    peak_memory_bytes: int | None
    configurations: int  # how many were timed for this model and batch
    warnings: Notes = Notes()


def fastest(rows: Sequence[ProfileRow]) -> list[FastestRow]:
    """For every model and batch with a latency: its fastest configuration, with its speed-up over
    fp32 PyTorch eager (on the same device) and its parity."""
    groups: dict[tuple[str, int], list[ProfileRow]] = {}
    for r in rows:
        if r.latency_ms_median is not None and not r.error:
            groups.setdefault((r.model, r.batch), []).append(r)
    out = []
    for (model, batch), group in groups.items():
        best = min(group, key=lambda r: r.latency_ms_median)
        eager = next((r for r in group if (r.backend, r.precision) == REFERENCE and r.device == best.device), None)
        out.append(FastestRow(
            model=model, batch=batch, backend=best.backend, precision=best.precision,
            latency_ms_median=best.latency_ms_median,
            speedup_vs_fp32_eager=(eager.latency_ms_median / best.latency_ms_median) if eager else None,
            fp32_eager_ms=eager.latency_ms_median if eager else None,
            parity_max_abs=best.parity_max_abs, parity_sqnr_db=best.parity_sqnr_db,
            parity_top1_agreement=best.parity_top1_agreement, peak_memory_bytes=best.peak_memory_bytes,
            configurations=len(group), warnings=Notes(best.warnings),
        ))
    return out
