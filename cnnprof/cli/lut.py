"""``cnnprof lut build``: FBNet-style latency lookup tables, and the ``lut`` group's shared options
(``lut calibrate`` and ``lut predict`` live in ``cli/lut_calibrate.py`` and ``cli/lut_predict.py``).

Thin: parse, call ``cnnprof.lut``, render with ``report.emit``. Exit codes: 0 success, 1 a model
has blocks missing from the table, 2 bad usage or a bad table (one line each).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer

from cnnprof.cli.common import command, counted_eta, counted_progress, eta_column
from cnnprof.cli.options import WHERE, FormatOpt
from cnnprof.lut.table import Allocator, Mode
from cnnprof.report import Column, Format
from cnnprof.terminal import say
from cnnprof.timing.protocol import LUT_CONTEXT, LUT_ENTRY

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.cluster import Cluster
    from cnnprof.lut.table import BuildReport, Table
    from cnnprof.targets import Target

lut_app = typer.Typer(
    help=(
        "Latency lookup tables (FBNet): time every candidate block on this machine (inside networks of the "
        "space), learn a small correction from whole networks, then predict a network's latency as the sum of "
        "its blocks' and see how far that holds here.\n\n"
        "Examples:\n\n"
        "  cnnprof lut build --clock cpu\n\n"
        "  cnnprof lut calibrate --clock cpu\n\n"
        "  cnnprof lut predict --clock cpu --sample 100 --measure\n\n"
        "  cnnprof lut predict --sample 1000000 --loss 2.0 --top 10"
    ),
    no_args_is_help=True,
    add_completion=False,
)

EXPERT = "Expert"
TableOpt = Annotated[Optional[Path], typer.Option("--table", dir_okay=False, help="The table file (default: "
                                                  f"models/lut-<backend>-t<threads>[-cpu].json; {WHERE}).")]
LutBackendOpt = Annotated[Optional[str], typer.Option("--backend", help="torch or onnxruntime (build default: torch; "
                                                      "predict default: the table's).")]
ClockOpt = Annotated[
    str, typer.Option("--clock", rich_help_panel=EXPERT, help="wall (perf_counter, the default) or cpu (the calling "
                      "thread's CPU time: leaves out pre-emption by other processes; --threads 1 only).")]
LutThreadsOpt = Annotated[Optional[str], typer.Option("--threads", "-t", help="Intra-op threads: N or 'all' (build "
                                                      "default 1; predict default: the table's).")]

# `lut build`'s own options
SpaceOpt = Annotated[str, typer.Option("--space", help="Search space to fill: fbnet (9 candidates x 22 layers, stem, "
                                       "heads) or none.")]
ModelsOpt = Annotated[Optional[list[str]], typer.Option("--models", "-m", help="Also add the blocks of these models "
                                                        "(comma-separated or repeated; names or patterns).")]
EntriesOpt = Annotated[Mode, typer.Option("--entries", case_sensitive=False, help="in-context (the default: every "
                                          "block read in place inside networks of the space; models inside "
                                          "themselves) or isolated (each block alone, called again and again).")]
BuildOutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False, help="Table file (default: "
                                                        f"models/lut-<backend>-t<threads>[-cpu].json; {WHERE}).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-measure what this environment already measured (and "
                                        "replace a table of the other kind of entries).")]
CalibrateOpt = Annotated[bool, typer.Option("--calibrate/--no-calibrate", help="Isolated entries: also time "
                                            "FBNet-A/B/C whole and store one scale factor (whole / sum of blocks). "
                                            "For the learned correction, run `cnnprof lut calibrate`.")]
AllocatorOpt = Annotated[Optional[Allocator], typer.Option(
    "--allocator", case_sensitive=False, rich_help_panel=EXPERT,
    help="steady (in-context default: malloc keeps what it frees, so no call pays page faults that depend on "
         "what the process ran before) or default (glibc as it starts; isolated default).")]
ContextsOpt = Annotated[int, typer.Option("--contexts", min=1, rich_help_panel=EXPERT,
                                          help="In-context: networks each block is read in (9 networks each).")]
BuildMinTimeOpt = Annotated[Optional[float], typer.Option(
    "--min-time", min=0.0, rich_help_panel=EXPERT,
    help=f"Seconds of timed calls per entry over all rounds (isolated, default {LUT_ENTRY.min_time_s}), or per "
         f"network and round (in-context, default {LUT_CONTEXT.min_time_s}).")]
BuildRoundsOpt = Annotated[Optional[int], typer.Option("--rounds", min=1, rich_help_panel=EXPERT,
                                                       help="Passes over all entries or networks (default 3 isolated, "
                                                       "2 in-context).")]
MinRunsOpt = Annotated[Optional[int], typer.Option("--min-runs", min=1, rich_help_panel=EXPERT,
                                                   help="Timed calls per entry (or network and round), at least.")]
LayersOpt = Annotated[Optional[str], typer.Option("--layers", rich_help_panel=EXPERT,
                                                  help="Isolated: only these searchable layers, e.g. 0,1 (index "
                                                  "stays whole).")]
MaxEntriesOpt = Annotated[Optional[int], typer.Option("--max-entries", min=0, rich_help_panel=EXPERT,
                                                      help="Measure at most this many entries (in-context: "
                                                      "networks) now; with --cluster, the first this many.")]
ContextSeedOpt = Annotated[int, typer.Option("--seed", rich_help_panel=EXPERT, help="In-context: seed of the networks "
                                             "the blocks are read in.")]
ClusterOpt = Annotated[Optional[str], typer.Option("--cluster", rich_help_panel="Cluster (Ray)", help="Build the "
                                                   "table on nodes of the running Ray cluster at this address "
                                                   "(auto, HOST:PORT, ray://HOST:PORT; cnnprof starts none, so "
                                                   "'local' is refused), spread over the nodes of the "
                                                   "kind, and write it here (default name: ...-<kind>.json).",
                                                   show_default=False)]
OnOpt = Annotated[Optional[str], typer.Option("--on", rich_help_panel="Cluster (Ray)", help="With --cluster: the "
                                              "kind of node (its cnnprof-kind label) the table is for [default: "
                                              "the cluster's only kind].", show_default=False)]

BUILD_COLUMNS = [
    Column("group", "part of the table"),
    Column("entries", "entries", "int"),
    Column("measured", "measured now", "int"),
    Column("reused", "reused", "int"),
    Column("sum_ms", "sum of medians", "ms"),
]
SUMMARY_COLUMNS = [Column("group", "group"), Column("metric", "metric"), Column("raw", "raw sum"),
                   Column("calibrated", "calibrated")]


def progress_bar() -> Iterator:
    """The build's progress on stderr: ``update(done, total, label)``; ETA from measured item times."""
    eta = counted_eta()
    return counted_progress(
        columns=lambda rp: (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                            rp.TimeElapsedColumn(), eta_column(rp)),
        fields=lambda done, total, label: {"completed": done, "total": total, "description": f"timing {label[:32]:32}"},
        counts=lambda done, total, label: (done, total),
        line=lambda done, total, label, elapsed: f"{done}/{total} {label}",
        initial={"description": "timing blocks"},
        eta=lambda done, total, label: eta(done, total),
    )


def _backend(text: str | None, default: str) -> str:
    from cnnprof.errors import UsageError
    from cnnprof.lut.table import BACKENDS

    value = (text or default).strip().lower()
    if value not in BACKENDS:
        raise UsageError(f"unknown backend {value!r}; a table is built with {' or '.join(BACKENDS)}")
    return value


@lut_app.command("build")
@command
def build_command(
    space: SpaceOpt = "fbnet",
    models: ModelsOpt = None,
    entries: EntriesOpt = Mode.IN_CONTEXT,
    backend: LutBackendOpt = None,
    threads: LutThreadsOpt = None,
    output: BuildOutputOpt = None,
    force: ForceOpt = False,
    calibrate: CalibrateOpt = False,
    clock: ClockOpt = "wall",
    allocator: AllocatorOpt = None,
    contexts: ContextsOpt = 4,
    min_time: BuildMinTimeOpt = None,
    rounds: BuildRoundsOpt = None,
    min_runs: MinRunsOpt = None,
    layers: LayersOpt = None,
    max_entries: MaxEntriesOpt = None,
    seed: ContextSeedOpt = 0,
    cluster: ClusterOpt = None,
    on: OnOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Time every block of the space on this machine and save the table with its environment.

    The FBNet space at 224x224 has 9 candidates at each of 22 layers plus the stem and the heads
    (1984, and FBNet-A's 1504). In-context entries (the default) are read in place inside whole
    networks of the space: every candidate sits at every layer in --contexts networks (4 x 9 = 36
    networks), each timed in --rounds passes with forward hooks (torch) or the profiler (ONNX
    Runtime); an entry is the mean over the networks it was read in. Every call is preceded by a
    speed probe (one fixed network of the space, on the same backend), and entries are stored at
    the probe's reference speed (the machine's speed varies from second to second on a shared
    host). Isolated entries time each distinct block alone: they miss what a block costs in a
    network (see the README). Entries this environment already measured are kept unless --force,
    so an interrupted build resumes.

    Examples:

      cnnprof lut build --clock cpu

      cnnprof lut build --backend onnxruntime --clock cpu

      cnnprof lut build --space none --models mobilenetv3_large,ghostnet_100 -o models/lut-models.json

      cnnprof lut build --entries isolated -o models/lut-torch-isolated.json
      cnnprof lut build --cluster auto --on cpu-avx512    # models/lut-torch-t1-cpu-avx512.json
    """
    plan = _build_plan(space=space, models=models, mode=entries, backend=backend, threads=threads, output=output,
                       force=force, calibrate=calibrate, clock=clock, allocator=allocator, contexts=contexts,
                       min_time=min_time, rounds=rounds, min_runs=min_runs, layers=layers, max_entries=max_entries,
                       seed=seed, cluster=cluster, on=on)
    if cluster is not None:
        plan = _connect(plan, cluster, on, output)
    targets = _prepare(plan)
    with progress_bar() as update:
        built = _run_build(plan, targets, update)
    _report_build(plan, built, fmt)
    _calibrate_after_build(plan, built)


@dataclass
class BuildPlan:
    """What ``lut build`` was asked for, checked: the settings every way of building takes alike."""

    mode: Mode
    space: str  # fbnet or none
    names: list[str]  # --models, split
    layers: list[int] | None
    path: Path
    settings: dict[str, Any]  # backend, threads, clock, protocol, rounds, force, allocator
    max_entries: int | None
    contexts: int
    seed: int
    calibrate: bool
    connection: "Cluster | None" = None
    kind: str = ""  # the kind of cluster node the table is built on


@dataclass
class Built:
    table: "Table"
    report: "BuildReport"
    failed: list[str] = field(default_factory=list)  # cluster parts that came back with nothing
    nodes: dict[str, int] = field(default_factory=dict)  # cluster node -> entries or networks it took


def _build_plan(*, space: str, models: list[str] | None, mode: Mode, backend: str | None, threads: str | None,
                output: Path | None, force: bool, calibrate: bool, clock: str, allocator: Allocator | None,
                contexts: int, min_time: float | None, rounds: int | None, min_runs: int | None, layers: str | None,
                max_entries: int | None, seed: int, cluster: str | None, on: str | None) -> BuildPlan:
    """The options of ``lut build`` checked (one line, exit 2, for the first that is wrong)."""
    from cnnprof.cli import options
    from cnnprof.errors import UsageError
    from cnnprof.lut.context import ROUNDS as CONTEXT_ROUNDS
    from cnnprof.lut.table import default_path
    from cnnprof.timing.protocol import with_limits

    backend_name = _backend(backend, "torch")
    n_threads = options.parse_threads(threads or "1")
    clock = _clock(clock, n_threads)
    alloc = allocator or (Allocator.STEADY if mode == Mode.IN_CONTEXT else Allocator.DEFAULT)
    path = output or default_path(backend_name, n_threads, clock)
    if cluster is None and on is not None:
        raise UsageError("--on goes with --cluster ADDRESS")
    if cluster is not None and calibrate:
        raise UsageError("--calibrate times FBNet-A/B/C whole on this machine: build with --cluster without it")
    if space not in ("fbnet", "none"):
        raise UsageError(f"unknown --space {space!r}; choose fbnet or none")
    layer_list = None
    if layers is not None:
        if mode != Mode.ISOLATED:
            raise UsageError("--layers picks blocks to time alone: use it with --entries isolated")
        try:
            layer_list = sorted({int(v) for v in layers.split(",") if v.strip()})
        except ValueError:
            raise UsageError(f"--layers takes layer numbers such as 0,1; got {layers!r}") from None
    if calibrate and mode != Mode.ISOLATED:
        raise UsageError("--calibrate fits one scale to isolated entries; for an in-context table run "
                         "`cnnprof lut calibrate`")
    names = [n.strip() for item in (models or []) for n in item.split(",") if n.strip()]
    if space == "none" and not names:
        raise UsageError("nothing to build: give --space fbnet or --models")
    isolated = mode == Mode.ISOLATED
    protocol = with_limits(LUT_ENTRY if isolated else LUT_CONTEXT, min_time_s=min_time, min_runs=min_runs)
    settings = {"backend": backend_name, "threads": n_threads, "clock": clock, "protocol": protocol,
                "rounds": rounds or (3 if isolated else CONTEXT_ROUNDS), "force": force, "allocator": alloc}
    return BuildPlan(mode, space, names, layer_list, path, settings, max_entries, contexts, seed, calibrate)


def _connect(plan: BuildPlan, address: str, on: str | None, output: Path | None) -> BuildPlan:
    """Join the Ray cluster at ``address`` and choose the kind of node (Ray leaves the cluster when
    this process ends); the table's default name then ends in that kind."""
    from cnnprof import cluster as cl
    from cnnprof.lut import on_cluster

    connection = cl.connect(address)
    kind = on_cluster.lut_kind(connection, on)
    for node in connection.refused:
        say(f"refused node {node.describe()}: {node.problem}; it gets no entry")
    return replace(plan, connection=connection, kind=kind, path=output or on_cluster.table_path(plan.path, kind))


def _prepare(plan: BuildPlan) -> list["Target"]:
    """The table's folder made and the file checked writable; the models of --models resolved."""
    from cnnprof.files import check_writable
    from cnnprof.targets import resolve_targets

    if not plan.path.parent.exists():
        plan.path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(plan.path)
    return resolve_targets(plan.names) if plan.names else []


def _run_build(plan: BuildPlan, targets: list["Target"], update) -> Built:
    """The table built as ``plan`` says: isolated or in-context entries, here or on the cluster."""
    from cnnprof.lut import builder, context
    from cnnprof.lut.space import FBNET_SPACE_NAME

    if plan.mode == Mode.ISOLATED:
        spec = {"space": plan.space, "layers": plan.layers, "models": plan.names}
        jobs, spaces = [], {}
        if plan.space == "fbnet":
            space_jobs, spaces[FBNET_SPACE_NAME] = builder.fbnet_space_jobs(layers=plan.layers)
            jobs += space_jobs
        for target in targets:
            jobs += builder.model_jobs(target)
        if plan.connection is None:
            return Built(*builder.build(jobs, path=plan.path, spaces=spaces, max_entries=plan.max_entries,
                                        on_progress=update, **plan.settings))
        from cnnprof.lut import on_cluster

        table, report, outcome = on_cluster.build_lut(
            plan.connection, plan.kind, spec=spec, jobs=jobs, spaces=spaces, path=plan.path, settings=plan.settings,
            max_entries=plan.max_entries, on_progress=update)
        return Built(table, report, outcome.failed, outcome.nodes)
    spec = {"space": plan.space, "models": plan.names, "contexts": plan.contexts, "seed": plan.seed}
    networks, spaces = context.networks_of(spec)
    if plan.connection is None:
        return Built(*context.build_in_context(networks, path=plan.path, spaces=spaces, max_networks=plan.max_entries,
                                               on_progress=update, **plan.settings))
    from cnnprof.lut import on_cluster

    table, report, outcome = on_cluster.build_lut_in_context(
        plan.connection, plan.kind, spec=spec, networks=networks, spaces=spaces, path=plan.path,
        settings=plan.settings, max_networks=plan.max_entries, on_progress=update)
    return Built(table, report, outcome.failed, outcome.nodes)


def _report_build(plan: BuildPlan, built: Built, fmt: Format) -> None:
    """The table's groups on stdout, what was done on stderr; exit 130 when interrupted, 1 when
    parts of a cluster build came back with nothing."""
    from cnnprof.errors import CheckFailed
    from cnnprof.lut.context import context_summary
    from cnnprof.lut.space import FBNET_SPACE_NAME
    from cnnprof.report import emit

    table, report, s = built.table, built.report, plan.settings
    rows = [{"group": g, **counts} for g, counts in report.groups.items()]
    emit(rows, columns=BUILD_COLUMNS, fmt=fmt, fields=["group", "entries", "measured", "reused", "sum_ms"],
         title=f"latency table {plan.path} ({s['backend']}, {s['threads']} thread(s), {s['clock']} clock, "
               f"{plan.mode} entries, {table.allocator} allocator)")
    measured = sum(int(g["measured"]) for g in report.groups.values())
    in_context = plan.mode == Mode.IN_CONTEXT
    done = f" in {report.networks} network(s)" if in_context else ""
    say(f"wrote {plan.path}: {len(table.entries)} entries ({measured} measured now{done}) in {report.seconds:.0f} s")
    if in_context and FBNET_SPACE_NAME in table.spaces:
        spread = context_summary(table, FBNET_SPACE_NAME)
        if spread["cells"]:
            say(f"how much the context moves a block: median spread over its networks "
                f"{100 * spread['median_relative_spread']:.1f}% of its mean ({spread['cells']} cells); "
                f"probe reference {table.probe['reference_ms']:.3f} ms")
    if report.calibration and report.calibration.get("dropped"):
        say("the table's calibration was fitted to the entries before this build and was dropped: run "
            "`cnnprof lut calibrate` again")
    if report.foreign:
        say("warning: some entries come from another environment and were not re-measured: "
            + "; ".join(report.foreign))
    if plan.connection is not None:
        unit = "networks" if in_context else "entries"
        say(f"built on {plan.kind} nodes: " + ", ".join(f"{label} {n} {unit}" for label, n in built.nodes.items()))
    if report.interrupted:
        say("interrupted: kept the entries measured so far; run the same command again to resume")
        raise SystemExit(130)
    if plan.connection is not None and built.failed:
        raise CheckFailed("some parts of the table came back with no entries (run the same command again to "
                          "fill them): " + "; ".join(built.failed))


def _calibrate_after_build(plan: BuildPlan, built: Built) -> None:
    """``--calibrate``: FBNet-A/B/C timed whole and one scale stored, when the whole space is in the
    table and the stored scale is missing, stale or from another environment."""
    from cnnprof.lut.learn import calibrate_scale

    table = built.table
    measured = sum(int(g["measured"]) for g in built.report.groups.values())
    full = plan.space == "fbnet" and plan.layers is None and plan.max_entries is None
    stale = (table.calibration is None or measured > 0 or plan.settings["force"]
             or table.calibration.get("env") != _env_id(table))
    if plan.calibrate and not full:
        say("--calibrate needs the whole FBNet space (no --layers or --max-entries): skipped")
    if plan.calibrate and full and stale:
        say("timing FBNet-A/B/C whole for the calibration")
        cal = calibrate_scale(table, path=plan.path, rounds=plan.settings["rounds"])
        if cal is not None:
            ratios = ", ".join(f"{m} {v['ratio']:.3f}" for m, v in cal["fitted_on"].items())
            say(f"sum of blocks / whole network: {ratios}; calibration scale {cal['scale']:.3f} (stored in the table)")


def _clock(text: str, threads: int) -> str:
    from cnnprof.errors import UsageError

    value = text.strip().lower()
    if value not in ("wall", "cpu"):
        raise UsageError(f"unknown --clock {text!r}; choose wall or cpu")
    if value == "cpu" and threads != 1:
        raise UsageError("--clock cpu times the calling thread only: use it with --threads 1")
    return value


def _env_id(table) -> str:
    from cnnprof.lut.table import env_id, environment

    return env_id(environment(table.backend, table.threads, table.clock))


def _emit_summary(rows, fmt, output, title: str, *, calibrated: bool) -> None:
    from cnnprof.lut import evaluate
    from cnnprof.report import emit, human

    columns = SUMMARY_COLUMNS if calibrated else SUMMARY_COLUMNS[:3]
    if fmt == Format.table and output is None:
        shown = [{"group": r.group, "metric": r.metric, "raw": human(r.raw, r.kind),
                  "calibrated": human(r.calibrated, r.kind)} for r in rows]
        emit(shown, columns=columns, fmt=fmt, fields=evaluate.SUMMARY_FIELDS, title=title)
    else:
        emit(rows, columns=columns, fmt=fmt, output=output, fields=evaluate.SummaryRow, title=title)
