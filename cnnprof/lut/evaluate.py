"""``lut predict`` as a library call: predicted rows for models and sampled architectures, with
measurements, errors, the loss ranking, accuracy summaries and the prediction rate.

Rows are ``PredictRow`` (one per network; ``ROW_FIELDS`` are their columns) and ``SummaryRow``;
relative errors are fractions ((predicted - measured) / measured), never rounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.builder import FBNET_SPACE_NAME
from cnnprof.lut.predict import (
    FBNET_ALPHA,
    FBNET_BETA,
    SpaceMatrix,
    arch_code,
    error_stats,
    fbnet_loss,
    missing_text,
    predict_parts,
    sample_choices,
)
from cnnprof.lut.table import Table, environment
from cnnprof.rows import Note, Row

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.lut.measure import Timer
    from cnnprof.targets import Target
    from cnnprof.timing.protocol import Protocol

@dataclass
class PredictRow(Row):
    """One network: its predicted latency (the sum of its blocks'), and measured with ``--measure``."""

    model: str
    arch: str = ""  # one digit per searchable layer (sampled architectures)
    parts: int | None = None
    missing_parts: int | None = None
    predicted_ms: float | None = None
    calibrated_ms: float | None = None
    measured_ms: float | None = None
    error: float | None = None  # (predicted - measured) / measured
    calibrated_error: float | None = None
    ratio: float | None = None  # predicted / measured
    loss: float | None = None
    rank: int | None = None
    missing: str = ""  # blocks missing from the table
    warnings: str = ""


@dataclass(frozen=True)
class SummaryRow(Row):
    """One accuracy figure of a group of networks, for the raw sum and the calibrated one;
    ``kind`` says how to show it (a ``report.Kind`` value)."""

    group: str
    metric: str
    raw: float | None
    calibrated: float | None = None
    kind: str = "float"


ROW_FIELDS = PredictRow.field_names()
SUMMARY_FIELDS = ["group", "metric", "raw", "calibrated"]
ALL_ROWS_UP_TO = 1000  # more sampled networks than this: show the --top best only


@dataclass
class PredictResult:
    rows: list[PredictRow] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    rate: dict[str, float] | None = None
    incomplete: list[str] = field(default_factory=list)  # models with blocks missing from the table
    shown: int = 0
    sampled: int = 0
    used: int = 0  # distinct table entries the predictions used
    flagged: dict[str, int] = field(default_factory=dict)  # warning kind -> entries used that carry it


def predict(
    table: Table,
    targets: Sequence["Target"] = (),
    *,
    sample: int = 0,
    seed: int = 0,
    measure: bool = False,
    loss_ce: float | None = None,
    alpha: float = FBNET_ALPHA,
    beta: float = FBNET_BETA,
    threads: int | None = None,
    backend: str | None = None,
    strict_env: bool = False,
    top: int | None = None,
    protocol: "Protocol | None" = None,
    rounds: int = 3,
    timer: "Timer | None" = None,
    on_progress: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> PredictResult:
    """Predict (and with ``measure`` time) ``targets`` and ``sample`` random architectures of the
    FBNet space. The environment of the entries used is compared with this one first: a
    difference is a warning, or with ``strict_env`` an error (exit 2) before any timing.

    Whole networks are timed with ``protocol`` (default ``WHOLE_PROTOCOL``) spread over
    ``rounds`` passes over all of them (``measure.combine``), so a busy spell of a shared
    machine spoils one round of several networks rather than all of a few."""
    import tempfile

    import numpy as np

    from cnnprof.lut.keys import SplitError, split
    from cnnprof.lut.measure import WHOLE_PROTOCOL, combine, make_timer, per_round

    backend = backend or table.backend
    threads = threads or table.threads
    progress = on_progress or (lambda message: None)
    result = PredictResult()
    scale = float(table.calibration["scale"]) if table.calibration else None

    # 1. split the models and look their parts up (cheap), before any timing
    split_models = []
    used_keys: list[str] = []
    for target in targets:
        progress(f"splitting {target.name}")
        if target.builder is None:
            result.rows.append(PredictRow(target.name,
                                          warnings=f"{target.name} is an ONNX file: it has no blocks to look up"))
            result.incomplete.append(target.name)
            continue
        model = target.build()
        try:
            parts = split(model, target.input, name=target.name)
        except SplitError as exc:
            result.rows.append(PredictRow(target.name, warnings=str(exc)))
            result.incomplete.append(target.name)
            continue
        predicted, missing = predict_parts(table, parts)
        used_keys += [p.key for p in parts if p.key in table.entries]
        row = PredictRow(target.name, parts=len(parts), missing_parts=len(missing), predicted_ms=predicted)
        if missing:
            row.missing = missing_text(missing)
            result.incomplete.append(target.name)
        result.rows.append(row)
        split_models.append((row, model, target.input))
    matrix = None
    if sample:
        matrix = SpaceMatrix.from_table(table, FBNET_SPACE_NAME)
        used_keys += list(matrix.keys)

    # 2. the environment check, and how the entries used were measured
    used = list(dict.fromkeys(used_keys))
    result.used = len(used)
    for key in used:
        for kind in {Note.parse(w).kind for w in table.entries[key].warnings}:
            result.flagged[kind] = result.flagged.get(kind, 0) + 1
    here = environment(backend, threads, table.clock)
    foreign = table.foreign(used_keys, here)
    if foreign:
        message = f"the table was measured in another environment ({'; '.join(foreign)})"
        if strict_env:
            raise UsageError(message + " (--strict-env)")
        if on_warning:
            on_warning(message + ": its predictions may not hold here")

    # 3. sampled architectures: vectorised prediction
    sample_rows: list[PredictRow] = []
    choices_of: dict[int, Any] = {}  # id(row) -> its architecture (sampled rows)
    if matrix is not None:
        t0 = time.perf_counter()
        choices = sample_choices(sample, matrix.layers, len(matrix.candidates), seed=seed)
        t1 = time.perf_counter()
        predicted = matrix.predict(choices)
        t2 = time.perf_counter()
        result.rate = {"n": sample, "sample_s": t1 - t0, "predict_s": t2 - t1, "rate_per_s": sample / max(t2 - t1, 1e-9)}
        result.sampled = sample
        if top is None and sample > ALL_ROWS_UP_TO:
            top = 20
        order = np.arange(sample)
        if top is not None:
            ranking = fbnet_loss(loss_ce, predicted, alpha=alpha, beta=beta) if loss_ce is not None else predicted
            order = np.argsort(ranking, kind="stable")[:top]
        width = len(str(sample - 1))
        for i in order:
            sample_rows.append(PredictRow(f"sample-{int(i):0{width}d}", arch=arch_code(choices[i]),
                                          parts=matrix.layers + 2, missing_parts=0, predicted_ms=float(predicted[i])))
            choices_of[id(sample_rows[-1])] = choices[i]
        result.rows += sample_rows

    # 4. measure the whole networks
    rows = [r for r in result.rows if r.predicted_ms is not None]
    if measure and rows:
        import torch

        from cnnprof.models.fbnet import FBNET_SPACE

        def sampled(row: PredictRow) -> Callable[[], Any]:
            def make() -> Any:  # rebuilt each round: a few hundred sampled networks need not fit in memory
                torch.manual_seed(0)
                return FBNET_SPACE.build_network(matrix.names(choices_of[id(row)])).eval()

            return make

        jobs = [(row, (lambda m=model: m), shape) for row, model, shape in split_models if row.predicted_ms is not None]
        jobs += [(row, sampled(row), FBNET_SPACE.input) for row in sample_rows]
        times: dict[int, list] = {id(row): [] for row, _, _ in jobs}
        with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
            timer = timer or make_timer(backend=backend, threads=threads,
                                        protocol=per_round(protocol or WHOLE_PROTOCOL, rounds), onnx_dir=onnx_dir,
                                        clock=table.clock)
            for r in range(rounds):
                for n, (row, make, shape) in enumerate(jobs):
                    progress(f"round {r + 1}/{rounds}: timing {row.model} whole ({n + 1}/{len(jobs)})")
                    times[id(row)].append(timer(make(), shape, row.model))
        for row, _, _ in jobs:
            row.measured_ms = combine(times[id(row)]).median_ms
    for row in result.rows:
        p = row.predicted_ms
        if p is None:
            continue
        if scale is not None:
            row.calibrated_ms = p * scale
        if row.measured_ms is not None:
            m = row.measured_ms
            row.error = (p - m) / m
            row.ratio = p / m
            if scale is not None:
                row.calibrated_error = (p * scale - m) / m

    # 5. the loss ranking
    if loss_ce is not None:
        ranked = [r for r in result.rows if r.predicted_ms is not None]
        for r in ranked:
            r.loss = fbnet_loss(loss_ce, r.predicted_ms, alpha=alpha, beta=beta)
        for rank, r in enumerate(sorted(ranked, key=lambda r: r.loss), start=1):
            r.rank = rank
        result.rows.sort(key=lambda r: (r.rank is None, r.rank or 0))
    result.shown = len(sample_rows)

    # 6. accuracy summaries
    groups = (("models", [r for r, _, _ in split_models]), ("samples", sample_rows))
    for group, members in groups:
        done = [r for r in members if r.measured_ms is not None and r.predicted_ms is not None]
        if done:
            result.summary += summary_rows(group, done, scale)
    return result


def summary_rows(group: str, rows: Sequence[PredictRow], scale: float | None) -> list[SummaryRow]:
    """The accuracy of the raw sum (and of the calibrated one) over ``rows``, one metric a row."""
    pred = [r.predicted_ms for r in rows]
    meas = [r.measured_ms for r in rows]
    raw = error_stats(pred, meas)
    cal = error_stats([p * scale for p in pred], meas) if scale is not None else {}
    names = (
        ("n", "networks", "int"), ("within_10", "within +-10%", "pct"), ("mean_abs_error", "mean |error|", "pct"),
        ("median_abs_error", "median |error|", "pct"), ("p90_abs_error", "p90 |error|", "pct"),
        ("median_ratio", "median predicted/measured", "ratio"), ("spearman", "Spearman rho", "float"),
    )
    return [SummaryRow(group, label, raw[key], cal.get(key), kind) for key, label, kind in names]
