"""``record`` and ``check``: the two things the gate does, as library calls.

``record`` measures models in several fresh processes (see ``measure``) while counting their
parameters and MACs, and returns a ``Baseline``. ``check`` re-measures the baseline's models the
same way, compares counts (exact: any change fails) and normalised latency (see ``stats``), then
measures *only the ambiguous models* again in extra processes, as long as the cap and the time
budget allow, and returns one ``ModelCheck`` per model.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from cnnprof.errors import UsageError, shorten
from cnnprof.gate import stats
from cnnprof.gate.baseline import SCHEMA, Baseline, ModelRecord, ProcessSamples, check_models_exist
from cnnprof.gate.calibration import CALIBRATION_INPUT, CALIBRATION_NAME, CALIBRATION_VERSION
from cnnprof.gate.measure import PROTOCOL_VERSION, GateModel, Run, Settings, measure, next_process_s
from cnnprof.rows import Row

Progress = Callable[[str], None]
# What makes two environments time differently (the fingerprint's other keys, load and tool
# revision, change from run to run and say nothing about comparability).
ENV_KEYS = ("torch", "cpu", "cores", "threads", "python", "env")


def plan(refs: Sequence[str], resolution: tuple[int, int] | None = None, *, input_shape: str | None = None,
         backend: str = "torch") -> list[GateModel]:
    """Names, aliases, patterns or a user's references -> the models to gate, at their native
    input, ``resolution``, or ``input_shape`` (CxHxW, needed by a user model that declares none).

    A user's factory options must be part of the reference (``file.py:factory(width=2)``): the
    baseline stores the reference and a check resolves it again."""
    from cnnprof.references import same_model
    from cnnprof.targets import resolve_targets, target_input
    from cnnprof.timing.backends import ONNX_BACKENDS, Backend

    targets = resolve_targets(refs, input_shape=input_shape)
    seen: dict[tuple, str] = {}
    for t in targets:  # a check would refuse a baseline holding one model twice
        first = seen.setdefault(same_model(t.name), t.name)
        if first != t.name:
            raise UsageError(f"{shorten(t.name)!r} and {shorten(first)!r} are the same model: give it once")
        if t.onnx_path is not None and not (Backend.parse(backend) or Backend.torch).is_onnx:
            raise UsageError(f"{t.name} is an ONNX file: gate it with --backend {' or '.join(ONNX_BACKENDS)}")
    return [GateModel(t.name, target_input(t, resolution)) for t in targets]


def count_models(models: Sequence[GateModel]) -> dict[str, tuple[int, int]]:
    """Exact (params, MACs) of each model at its input, from the built model (``counting.count``)."""
    from cnnprof.targets import count_target, resolve_one

    out = {}
    for m in models:
        c = count_target(resolve_one(m.name, m.input), m.input)
        out[m.name] = (c.params, c.macs)
    return out


def _fingerprint(threads: int) -> dict:
    from cnnprof.timing.environment import fingerprint

    return fingerprint(threads).to_dict()


def environment_differences(base: Mapping, now: Mapping, backend: str) -> list[str]:
    from cnnprof.timing.backends import Backend
    from cnnprof.timing.environment import differences

    known = Backend.parse(backend)
    keys = ENV_KEYS + (known.record.env_keys if known is not None else ())
    return differences(dict(base), dict(now), keys=keys)


def record(models: Sequence[GateModel], settings: Settings, *, threads_spec: str | None = None,
           on_progress: Progress | None = None) -> Baseline:
    """Measure and count ``models``: a baseline ready to be written."""
    if not models:
        raise UsageError("gate record needs at least one model")
    counts: dict[str, tuple[int, int]] = {}

    def count_now() -> None:
        if on_progress:
            on_progress("counting params and MACs while the first process starts")
        counts.update(count_models(models))

    samples, runs = measure(models, settings, while_first_starts=count_now, on_progress=on_progress)
    return Baseline(
        schema=SCHEMA,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        backend=settings.backend,
        precision=settings.precision,
        threads=settings.threads,
        threads_spec=threads_spec or str(settings.threads),
        calibration={"version": CALIBRATION_VERSION, "name": CALIBRATION_NAME, "input": list(CALIBRATION_INPUT)},
        protocol=settings.protocol(),
        environment=_fingerprint(settings.threads),
        runs=tuple(r.to_dict() for r in runs),
        models=tuple(
            ModelRecord(name=m.name, input=m.input, params=counts[m.name][0], macs=counts[m.name][1],
                        processes=tuple(samples[m.name]))
            for m in models
        ),
    )


@dataclass(frozen=True)
class ModelCheck(Row):
    """One model's row of the verdict table (times in ms, ratios now / baseline); its verdict word
    is a ``stats.GateVerdict``."""

    model: str
    input: str
    verdict: str
    ratio: float | None = None  # normalised (calibration-relative) latency, now / baseline
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    baseline_ms: float | None = None  # median of all calls, raw
    now_ms: float | None = None
    raw_ratio: float | None = None  # now_ms / baseline_ms: what a naive gate would look at
    calibration_baseline_ms: float | None = None
    calibration_now_ms: float | None = None
    params_baseline: int | None = None
    params_now: int | None = None
    macs_baseline: int | None = None
    macs_now: int | None = None
    processes_baseline: int = 0
    processes_now: int = 0
    method: str = ""
    note: str = ""


Verdict = ModelCheck  # its name before ModelCheck (cnnprof.gate.Verdict)


BUSY_SPARE_CORES = 0.5  # see CheckResult.busy_cores


@dataclass
class CheckResult:
    rows: list[ModelCheck]
    factor: float
    alpha: float
    environment_differences: list[str]
    environment: dict
    runs: list[Run] = field(default_factory=list)
    elapsed_s: float = 0.0
    samples: dict[str, list[ProcessSamples]] = field(default_factory=dict)  # per model, in process order

    warn: float | None = None

    @property
    def failed(self) -> list[ModelCheck]:
        return [r for r in self.rows if r.verdict in (stats.REGRESSION, stats.COUNT_CHANGED)]

    @property
    def warned(self) -> list[ModelCheck]:
        return [r for r in self.rows if r.verdict == stats.WARNING]

    def busy_cores(self, threads: int, cpus: int | None = None) -> float | None:
        """The other processes' mean CPU use (cores) while this check timed, when it left the timing
        threads less than half a core to spare: ``others >= cpus - threads + 0.5``. Else None.
        On such a machine the operating-point trials (docs/gate.md) caught fewer small slowdowns."""
        others = [r.others_cores for r in self.runs if r.others_cores is not None]
        if not others:
            return None
        mean = sum(others) / len(others)
        cpus = cpus or os.cpu_count() or 1
        return mean if mean >= cpus - threads + BUSY_SPARE_CORES else None


def check_arguments(factor: float, alpha: float, warn: float | None = None) -> None:
    if not factor >= 1.0:
        raise UsageError(f"--factor/--fail must be at least 1.0 (1.10 = 10% slower), got {factor}")
    if warn is not None and not 1.0 <= warn <= factor:
        raise UsageError(f"--warn must be at least 1.0 and at most --fail ({factor:g}), got {warn}")
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")


def prepare(baseline: Baseline, *, source: str, strict_env: bool,
            threads: int | None = None) -> tuple[int, dict, list[str]]:
    """Checks that need no measurement: models still exist, same yardstick, environment.

    Returns (threads to use, this environment, differences from the baseline's)."""
    from cnnprof import timing
    from cnnprof.timing import environment

    check_models_exist(baseline, source)
    version = baseline.calibration.get("version")
    if version != CALIBRATION_VERSION:
        raise UsageError(f"baseline {source!r} was recorded with calibration workload v{version}, this cnnprof has "
                         f"v{CALIBRATION_VERSION}; record the baseline again (`cnnprof gate record ... --update`)")
    if baseline.protocol.get("version") != PROTOCOL_VERSION:
        raise UsageError(f"baseline {source!r} was measured with protocol v{baseline.protocol.get('version')}, this "
                         f"cnnprof uses v{PROTOCOL_VERSION}; record the baseline again (`cnnprof gate record ... --update`)")
    if timing.Backend.parse(baseline.backend) is None:
        raise UsageError(f"baseline {source!r} names backend {baseline.backend!r}; cnnprof has {', '.join(timing.BACKENDS)}")
    why = timing.runnable(baseline.backend, "cpu", baseline.precision)
    if why:
        raise UsageError(f"baseline {source!r} was recorded with {baseline.backend} {baseline.precision}, which "
                         f"cannot run here: {why}")
    # the baseline's threads as --threads takes them: at most the cores this process may use (a
    # capped count shows below as an environment difference)
    n_threads = threads if threads is not None else environment.capped_threads(
        environment.parse_threads(baseline.threads_spec))[0]
    env = _fingerprint(n_threads)
    diffs = environment_differences(baseline.environment, env, baseline.backend)
    if strict_env and diffs:
        raise UsageError(f"environment differs from baseline {source!r} (--strict-env): {'; '.join(diffs)}")
    return n_threads, env, diffs


def choose_clock(baseline: Baseline, threads: int) -> str:
    """The CPU clock when the baseline used it and both sides have one thread and CPU times, else wall."""
    procs = [p for m in baseline.models for p in m.processes]
    if baseline.protocol.get("clock") == "cpu" and baseline.threads == 1 and threads == 1 and all(
            p.has_cpu for p in procs):
        return "cpu"
    return "wall"


def judge(base: ModelRecord, now: Sequence[ProcessSamples], *, input_shape: tuple[int, int, int],
          counts: tuple[int, int] | None, factor: float, alpha: float, clock: str = "wall",
          warn: float | None = None) -> ModelCheck:
    """The verdict for one model from its samples on both sides (and its counts, if compared)."""
    if clock == "cpu" and not all(p.has_cpu for p in now):
        clock = "wall"
    c = stats.compare(base.processes, now, alpha=alpha, clock=clock)
    verdict = stats.decide(c, factor=factor, alpha=alpha, warn=warn)
    notes = [f"warning: slower than --warn {warn:g} (fails above {factor:g})"] if verdict == stats.WARNING else []
    if counts is not None and counts != (base.params, base.macs):
        verdict = stats.COUNT_CHANGED
        if counts[0] != base.params:
            notes.append(f"params {base.params:,} -> {counts[0]:,}")
        if counts[1] != base.macs:
            notes.append(f"MACs {base.macs:,} -> {counts[1]:,}")
    if c.method.startswith("within-process"):
        notes.append("1 process per side: p-value ignores process-to-process noise")
    base_ms, now_ms = stats.raw_median(base.processes), stats.raw_median(now)
    return ModelCheck(
        model=base.name, input="x".join(map(str, input_shape)), verdict=verdict, ratio=c.ratio, ci_low=c.ci_low,
        ci_high=c.ci_high, p_value=c.p_value, baseline_ms=base_ms, now_ms=now_ms, raw_ratio=now_ms / base_ms,
        calibration_baseline_ms=stats.calibration_median(base.processes),
        calibration_now_ms=stats.calibration_median(now),
        params_baseline=base.params, params_now=None if counts is None else counts[0],
        macs_baseline=base.macs, macs_now=None if counts is None else counts[1],
        processes_baseline=c.processes_base, processes_now=c.processes_now, method=f"{c.method}, {clock} clock",
        note="; ".join(notes),
    )


def check(baseline: Baseline, settings: Settings, *, factor: float = 1.10, alpha: float = 0.01,
          source: str = "baseline", strict_env: bool = False, extra_processes: int = 2, budget_s: float = 50.0,
          inputs: Mapping[str, tuple[int, int, int]] | None = None, compare_counts: bool = True,
          started: float | None = None, on_progress: Progress | None = None,
          warn: float | None = None) -> CheckResult:
    """Re-measure the baseline's models and judge each one.

    ``settings`` gives the protocol (its backend, precision, threads and instances are replaced by
    the baseline's).
    No process (beyond the first three) starts that would likely end more than ``budget_s`` seconds
    after ``started``; ``extra_processes`` caps the re-measurement of ambiguous models. ``inputs``
    replaces a model's input (the benchmark plants slowdowns that way, with ``compare_counts=False``).
    ``warn``: a model slower than it (significantly), but not than ``factor``, is a ``warning``.
    """
    started = time.perf_counter() if started is None else started
    check_arguments(factor, alpha, warn)
    threads, env, diffs = prepare(baseline, source=source, strict_env=strict_env)
    # same backend, threads and instances per process as the baseline (instances change how warm
    # the caches are, hence the level); the number and length of processes may differ
    instances = baseline.protocol.get("instances", 1)
    settings = dataclasses.replace(settings, backend=baseline.backend, precision=baseline.precision, threads=threads,
                                   instances=instances if isinstance(instances, int) and instances > 0 else 1)
    clock = choose_clock(baseline, threads)
    models = [GateModel(m.name, tuple((inputs or {}).get(m.name, m.input))) for m in baseline.models]
    counts: dict[str, tuple[int, int]] = {}

    def count_now() -> None:
        if compare_counts:
            if on_progress:
                on_progress("counting params and MACs while the first process starts")
            counts.update(count_models(models))

    deadline = started + budget_s
    samples, runs = measure(models, settings, while_first_starts=count_now, deadline=deadline,
                            min_processes=min(3, settings.processes), on_progress=on_progress)
    first_pass = len(runs)
    extra_done: dict[str, int] = {m.name: 0 for m in models}

    def judge_all() -> list[ModelCheck]:
        return [judge(baseline.model(m.name), samples[m.name], input_shape=m.input, counts=counts.get(m.name),
                      factor=factor, alpha=alpha, clock=clock, warn=warn) for m in models]

    rows = judge_all()
    budget_note = ""
    for _ in range(extra_processes):
        unsure = [m for m, r in zip(models, rows) if r.verdict != stats.COUNT_CHANGED
                  and stats.ambiguous(_comparison(r), factor=factor)]
        if not unsure:
            break
        if time.perf_counter() + next_process_s(runs, settings.min_time_s) > deadline:
            budget_note = f"not re-measured: the {budget_s:.0f} s budget is spent"
            break
        more, more_runs = measure(unsure, settings, processes=1, on_progress=on_progress)
        for name, s in more.items():
            samples[name].extend(s)
            extra_done[name] += 1
        runs.extend(more_runs)
        rows = judge_all()
    final = []
    for m, r in zip(models, rows):
        notes = [r.note] if r.note else []
        if first_pass < settings.processes:
            notes.append(f"{first_pass} of {settings.processes} processes: the {budget_s:.0f} s budget")
        if extra_done[m.name]:
            notes.append(f"re-measured in {extra_done[m.name]} more process(es)")
        if r.verdict != stats.COUNT_CHANGED and stats.ambiguous(_comparison(r), factor=factor):
            notes.append(f"inconclusive: interval holds {factor:g}" + (f" ({budget_note})" if budget_note else ""))
        final.append(dataclasses.replace(r, note="; ".join(notes)))
    return CheckResult(final, factor, alpha, diffs, env, runs, time.perf_counter() - started, samples, warn)


def _comparison(v: ModelCheck) -> stats.Comparison:
    return stats.Comparison(v.ratio, v.ci_low, v.ci_high, v.p_value, v.method, v.processes_baseline,
                            v.processes_now)
