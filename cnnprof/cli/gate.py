"""``cnnprof gate record`` and ``cnnprof gate check``: a CI latency-regression gate.

Thin: parse, call ``cnnprof.gate.core``, render with ``report.emit``. Exit codes: 0 pass, 1 a
regression or a changed parameter / MAC count, 2 bad usage or a bad baseline (one line each).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.common import command, progress
from cnnprof.cli.options import (
    DEFAULT_DB,
    DbOpt,
    FormatOpt,
    InputOpt,
    ModelsArg,
    NoDbOpt,
    RevisionOpt,
    OutputOpt,
    ResolutionOpt,
    ThreadsOpt,
    TrustOpt,
    option,
)
from cnnprof.files import REPORTS_DIR
from cnnprof.gate.measure import MAX_INSTANCES
from cnnprof.home import WHERE
from cnnprof.report import Column, Format
from cnnprof.terminal import say

gate_app = typer.Typer(
    help=(
        "Latency-regression gate for CI: record a baseline on the main branch, check pull requests against it.\n\n"
        "Latency is timed in several fresh processes, relative to a fixed calibration network timed between "
        "the models, so a slower or busier machine does not read as a regression.\n\n"
        "Examples:\n\n"
        "  cnnprof gate record mobilenetv3_small ghostnet_100 efficientnet_b0 --baseline reports/baseline.json\n\n"
        "  cnnprof gate check --baseline reports/baseline.json\n\n"
        "  cnnprof gate check --baseline reports/baseline.json --factor 1.05 --strict-env --format md"
    ),
    no_args_is_help=True,
    add_completion=False,
)

EXPERT = "Expert (protocol)"
BaselineOpt = Annotated[Path, typer.Option("--baseline", help="The baseline JSON file (reports/: "
                                           f"{WHERE}).", dir_okay=False)]
DEFAULT_BASELINE = Path(REPORTS_DIR) / "baseline.json"
ProcessesOpt = Annotated[int, typer.Option("--processes", min=1, rich_help_panel=EXPERT,
                                           help="Fresh measurement processes, run one after another.")]
MinTimeOpt = Annotated[float, option("min_time", min=0.0, rich_help_panel=EXPERT,
                                           help="Seconds of timed rounds per process (and at least 12 rounds).")]
BudgetOpt = Annotated[str, typer.Option(
    "--budget", help="How much measuring a check may do: default (4 processes, up to 2 more for ambiguous models, "
    "50 s), thorough (8 processes, up to 4 more, 150 s: for a --factor near 1.03; see docs/gate.md), or seconds "
    "(the default's "
    "processes with that time limit: no process beyond the first three starts that would end later).")]
BudgetProcessesOpt = Annotated[Optional[int], typer.Option(
    "--processes", min=1, rich_help_panel=EXPERT,
    help="Fresh measurement processes, run one after another [default: the budget's: 4; thorough 8].")]
BudgetMinTimeOpt = Annotated[Optional[float], typer.Option(
    "--min-time", min=0.0, rich_help_panel=EXPERT,
    help="Seconds of timed rounds per process, and at least 12 rounds [default: the budget's: 3.0].")]

FactorOpt = Annotated[float, typer.Option("--factor", "--fail", help="Fail (exit 1) only if slower by more than "
                                         "this ratio (and significantly so).")]
WarnOpt = Annotated[Optional[float], typer.Option("--warn", help="Warn (exit 0, verdict `warning` in the table) "
                                                  "when slower by more than this ratio, significantly, but not "
                                                  "by more than --fail; between 1.0 and --fail [default: no "
                                                  "warning level].", show_default=False)]
AlphaOpt = Annotated[float, typer.Option("--alpha", help="Significance level of the test (and 1 - the "
                                         "interval's confidence).")]
StrictEnvOpt = Annotated[bool, typer.Option("--strict-env", help="Make a different environment (torch, CPU, "
                                            "threads, ...) an error (exit 2) instead of a warning.")]
ExtraProcessesOpt = Annotated[Optional[int], typer.Option(
    "--extra-processes", min=0, rich_help_panel=EXPERT,
    help="At most this many more processes for ambiguous models [default: the budget's: 2; thorough 4].")]

RECORD_COLUMNS = [
    Column("model", "model"),
    Column("input", "input"),
    Column("params", "params", "count"),
    Column("macs", "MACs", "macs"),
    Column("median_ms", "median", "ms"),
    Column("normalised", "/ calibration", "float"),
    Column("calibration_ms", "calibration", "ms"),
    Column("processes", "processes", "int"),
    Column("calls", "calls", "int"),
]
RECORD_FIELDS = ["model", "input", "params", "macs", "median_ms", "normalised", "calibration_ms", "processes", "calls"]
CHECK_COLUMNS = [
    Column("model", "model"),
    Column("input", "input"),
    Column("baseline_ms", "baseline", "ms"),
    Column("now_ms", "now", "ms"),
    Column("ratio_ci", "ratio (normalised) [interval]"),
    Column("p_value", "p-value", "float"),
    Column("verdict", "verdict"),
    Column("note", "note", wrap=True, keep=True),  # the verdict's qualifier (a pass that was inconclusive)
]


@gate_app.command("record")
@command
def record_command(
    models: ModelsArg,
    baseline: BaselineOpt = DEFAULT_BASELINE,
    backend: Annotated[str, option("backend", help="torch, compile, onnxruntime or openvino.")] = "torch",
    precision: Annotated[str, option("precision", help="fp32, bf16 or int8 (int8: onnxruntime or "
                                           "openvino); recorded in the baseline and used by check.")] = "fp32",
    threads: ThreadsOpt = "1",
    resolution: ResolutionOpt = None,
    input_shape: InputOpt = None,
    update: Annotated[bool, typer.Option("--update", help="Replace an existing baseline file.")] = False,
    processes: ProcessesOpt = 6,
    min_time: MinTimeOpt = 3.0,
    instances: Annotated[int, typer.Option("--instances", min=1, max=MAX_INSTANCES, rich_help_panel=EXPERT,
                                           help="Copies of every network per process, timed in turn "
                                           "(checks use the baseline's).")] = 4,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    revision: RevisionOpt = None,
) -> None:
    """Measure models and write the baseline: exact params and MACs, latency samples, environment.

    The file is written atomically; an existing one is replaced only with --update. Run it on the
    main branch (and commit the file or keep it as a CI artifact).

    Examples:

      cnnprof gate record mobilenetv3_small ghostnet_100 efficientnet_b0 --baseline reports/baseline.json

      cnnprof gate record 'ghostnet*' --baseline reports/ghost.json --threads 2 --update

      cnnprof gate record mobilenetv3_small --backend openvino --precision int8 --baseline reports/int8.json

      cnnprof gate record 'nets/my_net.py:build(width=2)' --input 3x224x224 --baseline reports/mine.json

    A user's model is stored as its reference and loaded again by `gate check`, so its factory's
    options go in the reference itself, not in --model-arg.
    """
    from cnnprof import targets, timing
    from cnnprof.cli import options, stored
    from cnnprof.errors import UsageError
    from cnnprof.files import check_distinct, check_writable, write_atomic
    from cnnprof.gate import core
    from cnnprof.gate.measure import Settings
    from cnnprof.references import reference_files
    from cnnprof.report import emit
    from cnnprof.rows import RowKind

    started = time.perf_counter()
    if baseline.exists() and not update:
        raise UsageError(f"baseline {str(baseline)!r} exists; pass --update to replace it")
    if baseline.is_dir():
        raise UsageError(f"baseline {str(baseline)!r} is a directory")
    check_writable(output)
    check_distinct([output, baseline], reference_files(models))
    if backend not in timing.BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(timing.BACKENDS)}")
    precision = precision.strip().lower()
    timing.check_options(timing.TimingOptions(backend=backend, precision=precision))
    n_threads = options.parse_threads(threads)
    planned = core.plan(models, targets.parse_resolution(resolution), input_shape=input_shape, backend=backend)
    if str(baseline.parent) and not baseline.parent.exists():  # a fresh CI checkout may lack reports/
        baseline.parent.mkdir(parents=True, exist_ok=True)
    check_writable(baseline)
    settings = Settings(backend=backend, precision=precision, threads=n_threads, processes=processes,
                        min_time_s=min_time, instances=instances)
    recorder = stored.recorder("gate-record", db, no_db, outputs=[output, baseline],
                               revision=options.parse_revision(revision))
    with progress() as update_line:
        result = core.record(planned, settings, threads_spec=threads, on_progress=update_line)
    write_atomic(baseline, result.to_json())
    rows = [_recorded_row(m, settings) for m in result.models]
    emit(rows, columns=RECORD_COLUMNS, fmt=fmt, output=output, fields=RECORD_FIELDS,
         title=f"baseline {baseline} ({backend}, {precision}, {n_threads} thread(s))")
    recorder.save(rows, kind=RowKind.GATE_RECORD, threads=n_threads, context={"baseline": str(baseline)},
                  extra={"backend": backend, "precision": precision, "threads": n_threads, "device": "cpu"})
    say(f"wrote {baseline} ({len(rows)} model(s), {processes} process(es), "
                           f"{time.perf_counter() - started:.0f} s)")


def _recorded_row(m, settings) -> dict:
    """A recorded model as the table shows it: counts, raw and normalised medians, processes, calls."""
    from cnnprof.gate import stats

    return {
        "model": m.name, "input": "x".join(map(str, m.input)), "params": m.params, "macs": m.macs,
        "median_ms": stats.raw_median(m.processes),
        "normalised": stats.normalised_level(m.processes, settings.clock),
        "calibration_ms": stats.calibration_median(m.processes),
        "processes": len(m.processes), "calls": sum(len(p.ms) for p in m.processes),
    }


@gate_app.command("check")
@command
def check_command(
    baseline: BaselineOpt = DEFAULT_BASELINE,
    factor: FactorOpt = 1.10,
    warn: WarnOpt = None,
    alpha: AlphaOpt = 0.01,
    strict_env: StrictEnvOpt = False,
    budget: BudgetOpt = "default",
    processes: BudgetProcessesOpt = None,
    extra_processes: ExtraProcessesOpt = None,
    min_time: BudgetMinTimeOpt = None,
    trust: TrustOpt = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    revision: RevisionOpt = None,
) -> None:
    """Re-measure the baseline's models and fail on a real slowdown.

    A model fails if its params or MACs changed, or if its latency, relative to the calibration
    network, is slower by more than --factor AND the difference is significant at --alpha
    (Welch's t-test on per-process medians). Models whose interval holds the factor are
    measured again in extra processes. Exit 0 pass, 1 regression, 2 bad baseline or usage.
    With --warn, a model slower than --warn (significantly) but not than --fail is a `warning`:
    shown in the table (and the markdown), exit 0.

    The baseline is data: a model it names that would run code other than a registered model, an
    .onnx file or a .py file inside the baseline's folder or git repository (a `package.module:factory`,
    a .py file elsewhere) is refused before anything is imported, unless --trust names it.

    Examples:

      cnnprof gate check --baseline reports/baseline.json

      cnnprof gate check --baseline reports/baseline.json --factor 1.05 --format md --output gate.md

      cnnprof gate check --baseline reports/baseline.json --warn 1.03 --fail 1.10 --format md

      cnnprof gate check --baseline ci/baseline.json --trust mypkg.nets     # the baseline names mypkg.nets:build
    """
    from cnnprof.cli import options, stored
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.gate import core
    from cnnprof.gate.baseline import load_baseline
    from cnnprof.gate.budgets import parse_budget, with_overrides
    from cnnprof.gate.measure import Settings
    from cnnprof.report import emit
    from cnnprof.rows import RowKind

    started = time.perf_counter()
    check_writable(output)
    check_distinct([output], [baseline])
    core.check_arguments(factor, alpha, warn)
    base = load_baseline(baseline, trust=trust or ())
    chosen = with_overrides(parse_budget(budget), processes, extra_processes, min_time)
    settings = Settings(processes=chosen.processes, min_time_s=chosen.min_time_s)
    recorder = stored.recorder("gate-check", db, no_db, outputs=[output, baseline],
                               revision=options.parse_revision(revision))
    with progress() as update_line:
        result = core.check(base, settings, factor=factor, alpha=alpha, source=str(baseline), strict_env=strict_env,
                            extra_processes=chosen.extra_processes, budget_s=chosen.seconds, started=started,
                            on_progress=update_line, warn=warn)
    records = [{**r.to_dict(), "ratio_ci": f"{r.ratio:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"} for r in result.rows]
    fields = [f for f in records[0] if f != "ratio_ci"]
    emit(records, columns=CHECK_COLUMNS, fmt=fmt, output=output, fields=fields,
         title=f"latency gate vs {baseline}: regression = ratio > {factor:g} and p < {alpha:g}"
               + (f", warning = ratio > {warn:g}" if warn is not None else ""))
    recorder.save(result.rows, kind=RowKind.GATE_CHECK, threads=base.threads,
                  context={"baseline": str(baseline), "factor": factor, "alpha": alpha, "warn": warn},
                  extra={"backend": base.backend, "precision": base.precision, "threads": base.threads,
                         "batch": 1, "device": "cpu"})
    _say_outcome(result, warn, started, base.threads)


def _say_outcome(result, warn: float | None, started: float, threads: int = 1) -> None:
    """On stderr: the calibration, any environment difference, what was checked and any warning;
    a failed model raises ``CheckFailed`` (exit 1) naming each."""
    from cnnprof.errors import CheckFailed

    _say_calibration(result.rows)
    if result.environment_differences:
        say("environment differs from the baseline (--strict-env makes this an error): "
            + "; ".join(result.environment_differences))
    say(f"checked {len(result.rows)} model(s) in {time.perf_counter() - started:.0f} s "
        f"({len(result.runs)} measurement process(es))")
    busy = result.busy_cores(threads)
    if busy is not None:
        say(f"machine busy: other processes used {busy:.1f} cores while this check timed on {threads} thread(s) "
            f"of {os.cpu_count()} CPUs; on a machine this busy small slowdowns are often missed (docs/gate.md, "
            "operating points): check again when it is quieter")
    if result.warned:
        say(f"warning: {len(result.warned)} of {len(result.rows)} model(s) slower than --warn {warn:g}: " + ", ".join(
            f"{r.model} ({r.ratio:.3f}x)" for r in result.warned))
    failed = result.failed
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(result.rows)} model(s) failed the gate: " + ", ".join(
            f"{r.model} ({r.verdict}" + (f", {r.ratio:.3f}x)" if r.verdict != "count changed" else ")") for r in failed))


def _say_calibration(rows) -> None:
    """On stderr: the calibration workload's time at the baseline and now, and their ratio."""
    cal_base = sum(r.calibration_baseline_ms for r in rows) / len(rows)
    cal_now = sum(r.calibration_now_ms for r in rows) / len(rows)
    say(f"calibration workload: {cal_base:.2f} ms at the baseline, {cal_now:.2f} ms now "
        f"(this machine is {cal_now / cal_base:.2f}x the baseline's time; ratios are relative to it)")


@gate_app.command("bisect")
@command
def bisect_command(
    models: Annotated[list[str], typer.Argument(help="Models: `file.py:factory` references relative to the "
                                                "repository (or paths inside it).")],
    good: Annotated[str, typer.Option("--good", help="A revision without the slowdown (an ancestor of --bad).")],
    bad: Annotated[str, typer.Option("--bad", help="A revision with it.")],
    repo: Annotated[Path, typer.Option("--repo", help="The model's git repository (its checkout is not "
                                       "touched).", file_okay=False)] = Path("."),
    factor: Annotated[float, typer.Option("--factor", help="Bad: slower than the good revision by more than "
                                          "this ratio, and significantly so.")] = 1.10,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of each step's test.")] = 0.01,
    budget: BudgetOpt = "default",
    processes: BudgetProcessesOpt = None,
    min_time: BudgetMinTimeOpt = None,
    input_shape: InputOpt = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
) -> None:
    """Find the first commit that made a model slower, with `git bisect run`.

    Every candidate is checked out in a temporary git worktree of its own and timed against the
    good revision in the same processes (the gate's protocol: calibration network between calls,
    fresh processes, ambiguous models measured again; a paired t over processes, as every process
    times both). A candidate that cannot be
    imported or run is skipped, not blamed. Your checkout, branches, HEAD and index are not
    touched; the worktrees and the bisection are removed at the end, also on error or Ctrl-C.
    The work tree must have no uncommitted changes to tracked files.

    Cost: 1 + ceil(log2(commits in good..bad)) steps; each step runs the budget's processes
    (default 4, up to 2 more when ambiguous), each timing every model at both revisions. 100
    commits: 8 steps.

    Exit 0 found (the table: the first bad commit against the good revision), 1 nothing found
    (the bad end is not slower, or skipped commits leave it open), 2 bad usage.

    Examples:

      cnnprof gate bisect --good v1.2 --bad HEAD nets/model.py:build

      cnnprof gate bisect --good abc123 --bad main --repo ~/src/nets 'nets/model.py:build(width=2)' --factor 1.05
    """
    from cnnprof.cli import stored
    from cnnprof.errors import CheckFailed
    from cnnprof.files import check_writable
    from cnnprof.gate import bisect, core
    from cnnprof.gate.budgets import parse_budget, with_overrides
    from cnnprof.report import emit
    from cnnprof.rows import RowKind

    check_writable(output)
    core.check_arguments(factor, alpha)
    chosen = with_overrides(parse_budget(budget), processes, None, min_time)
    recorder = stored.recorder("gate-bisect", db, no_db, outputs=[output])
    with progress() as update_line:
        result = bisect.bisect(repo, good, bad, models, budget=chosen, factor=factor, alpha=alpha,
                               input_shape=input_shape, on_progress=update_line)
    for s in result.steps:
        say(f"{s['sha'][:12]} {s['outcome']:4s} {_worst(s)}  {s['subject'][:60]}"
            + (f"  ({s['reason']})" if s["reason"] else ""))
    if result.first_bad is None:
        raise CheckFailed(result.message)
    records = [{**r, "ratio_ci": f"{r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                "note": f"first bad commit {result.first_bad[:12]} {result.subject}"} for r in result.rows]
    title = (f"first bad commit {result.first_bad} ({result.subject}), against {result.plan.good[:12]}: "
             f"{len(result.steps)} step(s), factor {factor:g}")
    emit(records, columns=CHECK_COLUMNS, fmt=fmt, output=output,
         fields=[f for f in records[0] if f != "ratio_ci"], title=title)
    recorder.save(records, kind=RowKind.GATE_CHECK, context={
        "bisect": {"repo": result.plan.root, "good": result.plan.good, "bad": result.plan.bad,
                   "first_bad": result.first_bad, "subject": result.subject, "factor": factor, "alpha": alpha,
                   "budget": chosen.name, "steps": [{k: s[k] for k in ("sha", "outcome", "reason", "seconds")}
                                                    for s in result.steps]}},
        extra={"backend": "torch", "precision": "fp32", "threads": 1, "batch": 1, "device": "cpu"})


def _worst(step: dict) -> str:
    rows = [r for r in step["rows"] if r.get("ratio") is not None]
    if not rows:
        return "-"
    r = max(rows, key=lambda r: r["ratio"])
    return f"{r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


@gate_app.command("_bisect-step", hidden=True)
def bisect_step_command(state: Annotated[Path, typer.Argument()]) -> None:
    """One step of `gate bisect` (what `git bisect run` calls): exit 0 good, 1 bad, 125 skip, 128 abort."""
    from cnnprof.gate import bisect

    code = bisect.run_step(state)
    raise typer.Exit(code)
