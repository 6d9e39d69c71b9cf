"""What ``bench`` and ``compare`` share: running the measurements with progress, keeping what was
measured when interrupted, the environment line, the latency columns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from cnnprof.cli.common import progress
from cnnprof.cli.options import Measure
from cnnprof.errors import RowsFailed, shorten
from cnnprof.files import REPORTS_DIR, ensure_folder, write_atomic
from cnnprof.report import Column, Format, render_text
from cnnprof.rows import ProfileRow
from cnnprof.terminal import say

LATENCY_COLUMNS = [
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("latency_ms_p90", "p90", "ms"),
    Column("latency_ms_iqr", "IQR", "ms"),
    Column("runs", "runs", "int", priority=3),
]
PARITY_COLUMNS = [
    Column("parity_max_abs", "max |diff|", "float"),
    Column("parity_sqnr_db", "SQNR dB", "float"),
    Column("parity_top1_agreement", "top-1 agree", "pct"),
    Column("peak_memory_bytes", "peak memory", "bytes"),
]
FASTEST_COLUMNS = [
    Column("model", "model", priority=0),
    Column("batch", "batch", "int", priority=3),
    Column("backend", "backend", priority=1),
    Column("precision", "precision", priority=1),
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("speedup_vs_fp32_eager", "vs fp32 eager", "ratio", priority=1),
    Column("parity_max_abs", "max |diff|", "float"),
    Column("parity_sqnr_db", "SQNR dB", "float"),
    Column("parity_top1_agreement", "top-1 agree", "pct"),
    Column("peak_memory_bytes", "peak memory", "bytes"),
    Column("configurations", "timed", "int", priority=3),
    Column("warnings", "warnings", wrap=True, priority=3),
]


def quant_options(method: str, samples: int):
    """``--calibration`` / ``--calibration-samples`` checked (one line, exit 2, when wrong)."""
    from cnnprof.timing.quantize import QuantOptions

    return QuantOptions(method=method.strip().lower(), samples=samples).check()


def say_precision_context(precisions, skipped: list[str], device: str) -> None:
    """On stderr: the CPU's bf16 capability when bf16 was asked for, and what 'all' left out."""
    if "bf16" in precisions and device == "cpu":
        from cnnprof.timing.precision import bf16_capability

        say(f"bf16 on this CPU: {bf16_capability()[1]}")
    for line in skipped:
        say(f"not timed here: {line}")


def show_fastest(rows: list[ProfileRow], *, to_terminal: bool) -> None:
    """Per model, the fastest configuration and its speed-up over fp32 eager: a table after the
    report on a terminal, else one line each on stderr (stdout holds only the report)."""
    from cnnprof.bench import fastest
    from cnnprof.report import emit

    best = [b for b in fastest(rows) if b.configurations > 1]
    if not best:
        return
    if to_terminal:
        emit(best, columns=FASTEST_COLUMNS,
             title="fastest configuration per model (speed-up over fp32 PyTorch eager)")
        return
    for b in best:
        speed = f", {b.speedup_vs_fp32_eager:.2f}x fp32 eager" if b.speedup_vs_fp32_eager else ""
        sqnr = f", SQNR {b.parity_sqnr_db:.1f} dB" if b.parity_sqnr_db is not None else ""
        say(f"fastest: {b.model} (batch {b.batch}): {b.backend} {b.precision}, {b.latency_ms_median:.3f} ms"
            f"{speed}{sqnr}")


def say_parity_weights(rows: list[ProfileRow]) -> None:
    """Say on stderr which weights the parity figures (max |diff|, SQNR, top-1 agreement) are for:
    on random weights they show how a backend and precision move this random network's outputs,
    not how much accuracy a trained network keeps."""
    labels = list(dict.fromkeys(r.weights for r in rows if r.parity_sqnr_db is not None
                                or r.parity_top1_agreement is not None))
    if not labels:
        return
    if labels == ["random"]:
        say("parity on random weights: it shows how each backend and precision moves a random network's outputs, "
            "not the accuracy a trained one keeps (--weights FILE or package measures that)")
        return
    say("parity on " + ", ".join("random weights" if w == "random" else f"trained weights ({w})" for w in labels))


def collect(rows: Iterable) -> tuple[list, bool]:
    """Consume a row generator under a progress line; Ctrl-C keeps the rows already measured."""
    out = []
    with progress() as update:
        try:
            for row in rows(update) if callable(rows) else rows:
                out.append(row)
        except KeyboardInterrupt:
            return out, True
    return out, False


class ReportCopy:
    """The CSV copy of a run kept under reports/: its folder checked (or created) before any
    measuring, so a ``reports`` that is a file or read-only fails in one line at once; ``save``
    never replaces another run's copy (names to the millisecond, then -2, -3, ...)."""

    def __init__(self, kind: str, *, enabled: bool = True):
        self.kind = kind
        self.folder = ensure_folder(REPORTS_DIR) if enabled else None

    def save(self, records: list[dict], fields: list[str], *, partial: bool = False) -> Path | None:
        if self.folder is None:
            return None
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
        path = self.folder / f"{self.kind}-{stamp}{'-partial' if partial else ''}.csv"
        saved = write_atomic(path, render_text(records, fields, [], Format.csv, partial=partial), exclusive=True)
        say(f"saved {saved}")
        return saved


def finish(rows: list[ProfileRow], interrupted: bool) -> None:
    """Say on stderr where things stand; exit 130 after an interruption (rows already written,
    marked partial), exit 1 when some rows carry an error."""
    env = next((r.environment for r in rows if r.environment is not None), None)
    if env is not None:
        say(f"environment: {env.describe()}")
    if interrupted:
        say(f"interrupted: kept the {len(rows)} row(s) measured so far (written as partial)")
        raise SystemExit(130)
    fail_on_error_rows(rows)


def fail_on_error_rows(rows) -> None:
    """Exit 1 ("some rows failed") when a row of a multi-model run carries an error: the run
    went on, but CI must be able to tell."""
    failed = [r.model for r in rows if r.error]
    if failed:
        names = ", ".join(dict.fromkeys(failed))
        raise RowsFailed(f"some rows failed: {len(failed)} of {len(rows)} ({shorten(names, 120)}); "
                         "see their error column")


@dataclass
class Plan:
    """A measuring command's options checked and resolved before anything is measured."""

    targets: list
    backends: list[str]
    precisions: list[str]
    configs: list
    only_runnable: bool
    all_backends: bool  # --backend all: every backend that runs here
    quant: Any
    batches: list[int]
    threads: int
    resolution: tuple[int, int] | None
    protocol: Any
    copy: ReportCopy
    recorder: Any
    run: Any = None  # bench.make_plan's: every configuration checked once, under the run's options


def plan(name: str, models: Sequence[str], m: Measure, *, backend: str, batch: str, timed: bool = True,
         cuda_graphs: bool = False, channels_last: bool = False, train: bool = False) -> Plan:
    """What ``bench`` and ``compare`` check before measuring, in this order: the output paths, the
    batches, threads, the backends and precisions (``timed``, checked once), the models, the resolution, the report
    copy's folder and the database; a bad one is one line, exit 2, before any model is built."""
    from cnnprof import bench
    from cnnprof.cli import options, stored
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.plots import check_plot_path
    from cnnprof.references import reference_files
    from cnnprof.targets import parse_resolution, resolve_targets
    from cnnprof.timing.protocol import DEFAULT, with_limits

    check_writable(m.output)
    check_plot_path(m.plot)
    check_distinct([m.output, m.plot], reference_files(models))
    backends, precisions, configs, skipped, only_runnable, quant, run = [], [], [], [], False, None, None
    all_backends = False
    batches = options.parse_batches(batch)
    threads = options.parse_threads(m.threads)
    protocol = with_limits(DEFAULT, min_time_s=m.min_time, min_runs=m.min_runs)
    if timed:
        backends, all_backends = options.parse_backends(backend)
        precisions, all_precisions = options.parse_precisions(m.precision)
        only_runnable = all_backends or all_precisions
        quant = quant_options(m.calibration, m.calibration_samples)
        options.check_cuda_graphs(cuda_graphs, backends, m.device)
        run = bench.make_plan(backends, precisions, device=m.device, threads=threads, channels_last=channels_last,
                              train=train, protocol=protocol, quant=quant, force=m.force, cuda_graphs=cuda_graphs,
                              parity_inputs=m.parity_inputs, only_runnable=only_runnable)
        configs, skipped = run.pairs, list(run.skipped)
    targets = resolve_targets(models, input_shape=m.input_shape, model_args=m.model_arg, keep_errors=len(models) > 1,
                              weights=m.weights)
    resolution = parse_resolution(m.resolution)
    copy = ReportCopy(name, enabled=not m.no_save)
    recorder = stored.recorder(name, m.db, m.no_db, outputs=[m.output, m.plot],
                               revision=options.parse_revision(m.revision))
    if timed:
        say_precision_context(precisions, skipped, m.device)
    return Plan(targets=targets, backends=backends, precisions=precisions, configs=configs,
                only_runnable=only_runnable, all_backends=all_backends, quant=quant, batches=batches, threads=threads, resolution=resolution,
                protocol=protocol, copy=copy, recorder=recorder, run=run)


def measure(p: Plan, m: Measure) -> Callable:
    """The rows' producer for ``collect``: every target timed on every configuration of ``p``
    (checked once, in ``plan``)."""
    from cnnprof import bench

    def produce(update):
        return bench.bench_rows(p.targets, batches=p.batches, resolution=p.resolution, isolate=not m.in_process,
                                on_progress=update, plan=p.run)

    return produce
