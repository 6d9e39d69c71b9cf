"""How far a table's sum holds here: ``lut predict`` as a library call, and ``additivity``.

``predict``: predicted rows for models and sampled architectures, with measurements, errors, the
loss ranking, accuracy summaries and the prediction rate. Rows are ``PredictRow`` (one per
network; ``ROW_FIELDS`` are their columns) and ``SummaryRow``; relative errors are fractions
((predicted - measured) / measured), never rounded.

With ``measure``, a sample of the space is always checked together with FBNet-A/B/C, and it is
held out: none of its networks is one a calibration was fitted on. When the table's entries are
normalised to its speed probe (in-context tables), the whole networks are probed too and the
errors are taken at the table's reference speed; the clock's own reading is kept beside it
(``measured_raw_ms``), with how fast the machine ran (``speed``).

Beside the table, every measured network is also predicted from its MACs (``lut.baseline``): one
ms-per-MAC constant (``macs_ms``) and one constant per op kind (``macs_kind_ms``), each fitted on
the other half of the measured networks, so that the table's accuracy has a baseline to beat.

``additivity``: the claim itself, a network's latency against the sum of its blocks' (FBNet,
paper Eq. 3), from a table or measured now (the blocks alone, or read inside other networks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut import baseline
from cnnprof.lut import measure as lut_measure
from cnnprof.lut.context import build_in_context, space_networks
from cnnprof.lut.keys import SplitError, space_index, split
from cnnprof.lut.predict import (
    FBNET_ALPHA,
    FBNET_BETA,
    SpaceMatrix,
    error_stats,
    fbnet_loss,
    missing_text,
    parts_with_glue,
    predict_model,
    predict_parts,
    spearman,
)
from cnnprof.lut.probe import PROBE_NAME, SpeedProbe
from cnnprof.lut.space import (
    FBNET_SPACE_NAME,
    REFERENCE_MODELS,
    arch_code,
    disjoint_sample,
    fbnet_head_widths,
    sample_choices,
    space_network,
    space_object,
)
from cnnprof.lut.table import Calibration, Mode, Table, default_path, env_id, environment, load
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
    macs: int | None = None  # conv + linear multiply-adds at batch 1 (--measure)
    macs_ms: float | None = None  # baseline: MACs x one constant fitted on the other half (lut.baseline)
    macs_kind_ms: float | None = None  # baseline: MACs per op kind x non-negative constants, likewise
    measured_ms: float | None = None  # at the table's reference speed when it has a probe
    measured_raw_ms: float | None = None  # as the clock read it
    speed: float | None = None  # probe / reference while measuring (1.2 = the machine ran 20% slow)
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
    ``kind`` says how to show it (a ``report.ColumnKind`` value)."""

    group: str
    metric: str
    raw: float | None
    calibrated: float | None = None
    kind: str = "float"
    macs: float | None = None  # the same figure for the MACs baseline (held out; Spearman: MACs themselves)
    macs_by_kind: float | None = None  # for MACs per op kind (held out)


ROW_FIELDS = PredictRow.field_names()
SUMMARY_FIELDS = ["group", "metric", "raw", "calibrated", "macs", "macs_by_kind"]
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
    references: Sequence[str] = REFERENCE_MODELS,
    timer: "Timer | None" = None,
    on_progress: Callable[[str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> PredictResult:
    """Predict (and with ``measure`` time) ``targets`` and ``sample`` random architectures of the
    FBNet space. The environment of the entries used is compared with this one first: a
    difference is a warning, or with ``strict_env`` an error (exit 2) before any timing.

    With ``sample`` and ``measure``, the ``references`` (FBNet-A/B/C) are added to ``targets``
    when missing, and the sample leaves out every network a calibration of the table was fitted
    on. Whole networks are timed with ``protocol`` (default ``WHOLE_PROTOCOL``, or
    ``NETWORK_PROTOCOL`` for a probed table) spread over
    ``rounds`` passes over all of them (``measure.combine``), so a busy spell of a shared
    machine spoils one round of several networks rather than all of a few; with the table's
    speed probe, at its reference speed."""
    import tempfile

    import numpy as np

    from cnnprof.numbers import MAX_SAMPLE, MAX_SEED, real, whole

    # before any work: numbers that would overflow numpy, fill the memory or turn the loss into NaN
    sample = whole(sample, "--sample", lo=0, hi=MAX_SAMPLE)
    seed = whole(seed, "--seed", lo=0, hi=MAX_SEED)
    if loss_ce is not None:
        loss_ce = real(loss_ce, "--loss (a cross-entropy)", lo=0, hi=1e6, above=True)
    alpha = real(alpha, "--alpha", lo=0, hi=1e6, above=True)
    beta = real(beta, "--beta", lo=0, hi=10)
    backend = backend or table.backend
    threads = threads or table.threads
    progress = on_progress or (lambda message: None)
    result = PredictResult()
    calibration = Calibration.from_dict(table.calibration) if table.calibration else None
    if sample and measure and references:
        from cnnprof import targets as targets_mod

        have = {t.name for t in targets}
        extra = [name for name in references if name not in have]
        targets = [*targets_mod.resolve_targets(extra), *targets] if extra else list(targets)

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
        used_keys += [p.key for p in parts_with_glue(table, parts) if p.key in table.entries]
        row = PredictRow(target.name, parts=len(parts), missing_parts=len(missing), predicted_ms=predicted)
        if calibration is not None and predicted is not None:
            row.calibrated_ms = predict_model(table, parts, calibration)[1]
        if missing:
            row.missing = missing_text(missing)
            result.incomplete.append(target.name)
        result.rows.append(row)
        split_models.append((row, target, model))
    matrix = calibrated = None
    if sample:
        matrix = SpaceMatrix.from_table(table, FBNET_SPACE_NAME)
        if calibration is not None:
            calibrated = SpaceMatrix.from_table(table, FBNET_SPACE_NAME, calibration=calibration)
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

    # 3. sampled architectures: vectorised prediction (held out from any calibration when measured)
    sample_rows: list[PredictRow] = []
    choices_of: dict[int, Any] = {}  # id(row) -> its architecture (sampled rows)
    if matrix is not None:
        trained = calibration.trained_on() if calibration is not None else set()
        t0 = time.perf_counter()
        if measure and trained:
            choices = disjoint_sample(sample, matrix.layers, len(matrix.candidates), seed=seed, exclude=trained)
        else:
            choices = sample_choices(sample, matrix.layers, len(matrix.candidates), seed=seed)
        t1 = time.perf_counter()
        predicted = matrix.predict(choices)
        t2 = time.perf_counter()
        result.rate = {"n": sample, "sample_s": t1 - t0, "predict_s": t2 - t1, "rate_per_s": sample / max(t2 - t1, 1e-9)}
        cal_pred = calibrated.predict(choices) if calibrated is not None else None
        result.sampled = sample
        if top is None and sample > ALL_ROWS_UP_TO:
            top = 20
        order = np.arange(sample)
        if top is not None:
            ranking = fbnet_loss(loss_ce, predicted, alpha=alpha, beta=beta) if loss_ce is not None else predicted
            order = np.argsort(ranking, kind="stable")[:top]
        width = len(str(sample - 1))
        for i in order:
            row = PredictRow(f"sample-{int(i):0{width}d}", arch=arch_code(choices[i]), parts=matrix.layers + 2,
                             missing_parts=0, predicted_ms=float(predicted[i]),
                             calibrated_ms=float(cal_pred[i]) if cal_pred is not None else None)
            sample_rows.append(row)
            choices_of[id(row)] = choices[i]
        result.rows += sample_rows

    # 4. measure the whole networks
    rows = [r for r in result.rows if r.predicted_ms is not None]
    if measure and rows:
        space = space_object(FBNET_SPACE_NAME)

        def sampled(row: PredictRow) -> Callable[[], Any]:
            return lambda: space_network(space, matrix.names(choices_of[id(row)]))

        jobs = [(row, (lambda m=model: m), tuple(target.input)) for row, target, model in split_models
                if row.predicted_ms is not None]
        jobs += [(row, sampled(row), tuple(space.input)) for row in sample_rows]
        by_kind: dict[int, dict[str, int]] = {}
        for row, make, shape in jobs:
            progress(f"counting the MACs of {row.model}")
            by_kind[id(row)] = baseline.macs_by_kind(make(), shape)
            row.macs = sum(by_kind[id(row)].values())
        with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
            probe = SpeedProbe.from_table(table) if timer is None else None
            base = protocol or (lut_measure.NETWORK_PROTOCOL if probe is not None else lut_measure.WHOLE_PROTOCOL)
            timer = timer or lut_measure.make_timer(backend=backend, threads=threads,
                                                    protocol=lut_measure.per_round(base, rounds), onnx_dir=onnx_dir,
                                                    clock=table.clock, probe=probe, allocator=table.allocator)
            times = lut_measure.time_networks([(row.model, make, shape) for row, make, shape in jobs], timer,
                                              rounds=rounds, on_progress=progress)
        for (row, _, _), m in zip(jobs, times):
            row.measured_ms = m.median_ms
            row.measured_raw_ms = m.clock_ms
            row.speed = m.speed
        baseline.macs_baselines([row for row, _, _ in jobs], [by_kind[id(row)] for row, _, _ in jobs], seed=seed)
    for row in result.rows:
        p = row.predicted_ms
        if p is None or row.measured_ms is None:
            continue
        m = row.measured_ms
        row.error = (p - m) / m
        row.ratio = p / m
        if row.calibrated_ms is not None:
            row.calibrated_error = (row.calibrated_ms - m) / m

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
            result.summary += summary_rows(group, done)
    return result


SUMMARY_METRICS = (
    ("n", "networks", "int"), ("within_5", "within +-5%", "pct"), ("within_10", "within +-10%", "pct"),
    ("mean_abs_error", "mean |error|", "pct"), ("median_abs_error", "median |error|", "pct"),
    ("p90_abs_error", "p90 |error|", "pct"), ("median_ratio", "median predicted/measured", "ratio"),
    ("spearman", "Spearman rho", "float"),
)


def summary_rows(group: str, rows: Sequence[PredictRow]) -> list[SummaryRow]:
    """The accuracy of the raw sum (and of the calibrated prediction, where every row has one)
    over ``rows``, one metric a row; with a speed probe, also the machine's speed while
    measuring and the share within +-10% of the clock's own (unnormalised) reading."""
    import statistics

    pred = [r.predicted_ms for r in rows]
    meas = [r.measured_ms for r in rows]
    raw = error_stats(pred, meas)
    cal = {}
    if all(r.calibrated_ms is not None for r in rows):
        cal = error_stats([r.calibrated_ms for r in rows], meas)
    base: dict[str, float] = {}
    if all(r.macs_ms is not None for r in rows):
        base = error_stats([r.macs_ms for r in rows], meas)
        base["spearman"] = spearman([r.macs for r in rows], meas)  # MACs themselves: no fit to rank by
    by_kind = error_stats([r.macs_kind_ms for r in rows], meas) if all(
        r.macs_kind_ms is not None for r in rows) else {}
    out = [SummaryRow(group, label, raw[key], cal.get(key), kind, base.get(key), by_kind.get(key))
           for key, label, kind in SUMMARY_METRICS]
    speeds = [r.speed for r in rows if r.speed is not None]
    if speeds and all(r.measured_raw_ms is not None for r in rows):
        clock = [r.measured_raw_ms for r in rows]
        out.append(SummaryRow(group, "machine speed while measuring (probe/reference)", statistics.median(speeds),
                              None, "ratio"))
        out.append(SummaryRow(group, "within +-10% of the clock's reading (unnormalised)",
                              error_stats(pred, clock)["within_10"],
                              error_stats([r.calibrated_ms for r in rows], clock)["within_10"] if cal else None, "pct"))
    return out


# -- the claim: is a network's latency the sum of its blocks'? --------------------------------------
@dataclass(frozen=True)
class AdditivityRow:
    model: str
    predicted_ms: float  # sum of the blocks timed in isolation (stem + blocks + head)
    measured_ms: float  # the whole network, same backend and threads
    ratio: float  # predicted / measured
    source: str  # the table used, or "measured now (N interleaved rounds)"
    # measured now: each round's sum of block medians / that round's whole-network median
    round_ratios: tuple[float, ...] = ()


def additivity(
    table: "Table | str | None" = None,
    models: Sequence[str] = REFERENCE_MODELS,
    *,
    backend: str = "torch",
    threads: int = 1,
    clock: str = "wall",
    rounds: int = 3,
    fresh: bool = False,
    entries: Mode | str = Mode.ISOLATED,
    contexts: int = 2,
    on_progress: Callable[[str], None] | None = None,
    block_protocol: "Protocol | None" = None,
    whole_protocol: "Protocol | None" = None,
) -> list[AdditivityRow]:
    """Sum of per-block latencies against whole-network latency for ``models``.

    ``entries="isolated"`` (the FBNet paper's table): uses ``table`` (a ``Table`` or a path), else
    the default table for ``backend`` / ``threads`` / ``clock`` if it exists, was measured in this
    environment and holds every block of a model; the whole network is then timed now with
    ``WHOLE_PROTOCOL``. Otherwise, or with ``fresh``, it times the model's blocks alone and the
    whole network in ``rounds`` interleaved rounds (every block with a quick protocol, then the
    whole network), so that both see the same machine state; nothing is saved. About a minute
    for FBNet-A/B/C on 2 cores. ``block_protocol`` / ``whole_protocol`` replace the protocols of
    one round (``LUT_QUICK`` / ``LUT_ROUND``); ``round_ratios`` keeps each round's own ratio, so a
    caller can put an interval on the ratio.

    ``entries="in-context"``: the blocks' latencies are read in place inside *other* networks of
    the FBNet space (``cnnprof.lut.context``; FBNet-A/B/C are never among them), from ``table``
    or the default table when it is an in-context one of this environment, else from one built
    now in a temporary file (``contexts`` x 9 networks, one round: about a minute at one thread);
    the sum includes the glue between parts, and the whole networks are timed with the table's
    speed probe, so both are at its reference speed."""
    if rounds < 1:
        raise UsageError(f"rounds must be at least 1, got {rounds}")
    if entries not in (Mode.ISOLATED, Mode.IN_CONTEXT):
        raise UsageError(f"unknown entries {str(entries)!r}; choose isolated or in-context")
    here = environment(backend, threads, clock)
    source = ""
    if fresh:
        table = None
    elif isinstance(table, (str, Path)):
        source, table = str(table), load(table)
    elif table is None and default_path(backend, threads, clock).is_file():
        candidate = load(default_path(backend, threads, clock))
        if (candidate.backend, candidate.threads, candidate.clock) == (backend, threads, clock):
            table, source = candidate, str(default_path(backend, threads, clock))
    progress = on_progress or (lambda message: None)
    if entries == Mode.IN_CONTEXT:
        usable = table is not None and table.mode == Mode.IN_CONTEXT and table.probe is not None and \
            table.probe.get("env") == env_id(here) and table.probe.get("name") == PROBE_NAME
        return _additivity_in_context(table if usable else None, source if usable else "", models, backend=backend,
                                      threads=threads, clock=clock, rounds=rounds, contexts=contexts,
                                      progress=progress)
    return _additivity_isolated(table, source, models, backend=backend, threads=threads, clock=clock, rounds=rounds,
                                here=here, progress=progress, block_protocol=block_protocol,
                                whole_protocol=whole_protocol)


def _additivity_isolated(table, source, models, *, backend, threads, clock, rounds, here, progress,
                         block_protocol=None, whole_protocol=None):
    import statistics
    import tempfile

    from cnnprof import targets
    from cnnprof.timing.protocol import LUT_ROUND

    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as onnx_dir:
        def timer(protocol: "Protocol"):
            return lut_measure.make_timer(backend=backend, threads=threads, protocol=protocol, onnx_dir=onnx_dir,
                                          clock=clock)

        whole = timer(lut_measure.WHOLE_PROTOCOL)
        quick, whole_round = timer(block_protocol or lut_measure.QUICK_PROTOCOL), timer(whole_protocol or LUT_ROUND)
        for target in targets.resolve_targets(list(models)):
            model = target.build()
            parts = split(model, target.input, name=target.name)
            usable = table is not None and table.mode == Mode.ISOLATED and all(
                p.key in table.entries and table.entries[p.key].env == env_id(here) for p in parts)
            if usable:
                predicted = sum(table.entries[p.key].latency_ms for p in parts)
                progress(f"{target.name}: timing the whole network")
                measured = whole(model, target.input, target.name).median_ms
                where = source or "given table"
                per_round: tuple[float, ...] = ()
            else:
                distinct = {p.key: p for p in parts}
                per_part: dict[str, list[float]] = {k: [] for k in distinct}
                per_whole: list[float] = []
                for r in range(rounds):
                    progress(f"{target.name}: round {r + 1}/{rounds}, {len(distinct)} blocks and the whole network")
                    for key, p in distinct.items():
                        per_part[key].append(quick(p.module, p.input, p.label).median_ms)
                    per_whole.append(whole_round(model, target.input, target.name).median_ms)
                predicted = sum(statistics.median(per_part[p.key]) for p in parts)
                measured = statistics.median(per_whole)
                where = f"measured now ({rounds} interleaved rounds)"
                per_round = tuple(sum(per_part[p.key][r] for p in parts) / per_whole[r] for r in range(rounds))
            rows.append(AdditivityRow(target.name, predicted, measured, predicted / measured, where, per_round))
    return rows


def _additivity_in_context(table, source, models, *, backend, threads, clock, rounds, contexts, progress):
    import tempfile

    from cnnprof import targets

    with tempfile.TemporaryDirectory(prefix="cnnprof-lut-") as tmp:
        if table is None:
            index = space_index(space_object(FBNET_SPACE_NAME), head_widths=fbnet_head_widths())
            networks = space_networks(space_object(FBNET_SPACE_NAME), index, contexts=contexts)
            progress(f"building an in-context table: {len(networks)} networks of the FBNet space")
            table, _ = build_in_context(networks, path=Path(tmp) / "lut.json", backend=backend, threads=threads,
                                        clock=clock, rounds=1, spaces={FBNET_SPACE_NAME: index},
                                        on_progress=lambda done, total, label: progress(f"{done}/{total} {label}"))
            source = f"in-context table built now ({len(networks)} networks of the FBNet space)"
        built = []
        for target in targets.resolve_targets(list(models)):
            parts = split(target.build(), target.input, name=target.name)
            predicted, missing = predict_parts(table, parts)
            if predicted is None:
                raise UsageError(f"{target.name}: {len(missing)} part(s) missing from the in-context table: "
                                 f"{missing_text(missing)}")
            built.append((target, predicted))
        timer = lut_measure.make_timer(backend=backend, threads=threads,
                                       protocol=lut_measure.per_round(lut_measure.NETWORK_PROTOCOL, rounds),
                                       onnx_dir=tmp, clock=clock, probe=SpeedProbe.from_table(table),
                                       allocator=table.allocator)
        times = lut_measure.time_networks([(t.name, t.build, tuple(t.input)) for t, _ in built], timer,
                                          rounds=rounds, on_progress=progress)
    return [AdditivityRow(t.name, p, m.median_ms, p / m.median_ms, f"{source} (in-context, at the probe's reference "
                          "speed)" if source else "in-context table") for (t, p), m in zip(built, times)]
