"""``cnnprof lut build``: FBNet-style latency lookup tables, and the ``lut`` group's shared options
(``lut calibrate`` and ``lut predict`` live in ``cli/lut_calibrate.py`` and ``cli/lut_predict.py``).

Thin: parse, call ``cnnprof.lut``, render with ``report.emit``. Exit codes: 0 success, 1 a model
has blocks missing from the table, 2 bad usage or a bad table (one line each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from cnnprof.cli.common import command, counted_eta, counted_progress, eta_column
from cnnprof.cli.options import WHERE, FormatOpt
from cnnprof.report import Column, Format
from cnnprof.terminal import say
from cnnprof.timing.protocol import LUT_CONTEXT, LUT_ENTRY

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
    space: Annotated[str, typer.Option("--space", help="Search space to fill: fbnet (9 candidates x 22 layers, "
                                       "stem, heads) or none.")] = "fbnet",
    models: Annotated[Optional[list[str]], typer.Option("--models", "-m", help="Also add the blocks of these models "
                                                         "(comma-separated or repeated; names or patterns).")] = None,
    entries: Annotated[str, typer.Option("--entries", help="in-context (the default: every block read in place "
                                         "inside networks of the space; models inside themselves) or isolated "
                                         "(each block alone, called again and again).")] = "in-context",
    backend: LutBackendOpt = None,
    threads: LutThreadsOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False, help="Table file (default: "
                                                   f"models/lut-<backend>-t<threads>[-cpu].json; {WHERE}).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-measure what this environment already measured (and "
                                        "replace a table of the other kind of entries).")] = False,
    calibrate: Annotated[bool, typer.Option("--calibrate/--no-calibrate", help="Isolated entries: also time "
                                            "FBNet-A/B/C whole and store one scale factor (whole / sum of blocks). "
                                            "For the learned correction, run `cnnprof lut calibrate`.")] = False,
    clock: ClockOpt = "wall",
    allocator: Annotated[Optional[str], typer.Option(
        "--allocator", rich_help_panel=EXPERT,
        help="steady (in-context default: malloc keeps what it frees, so no call pays page faults that depend on "
             "what the process ran before) or default (glibc as it starts; isolated default).")] = None,
    contexts: Annotated[int, typer.Option("--contexts", min=1, rich_help_panel=EXPERT,
                                          help="In-context: networks each block is read in (9 networks each).")] = 4,
    min_time: Annotated[Optional[float], typer.Option(
        "--min-time", min=0.0, rich_help_panel=EXPERT,
        help=f"Seconds of timed calls per entry over all rounds (isolated, default {LUT_ENTRY.min_time_s}), or per "
             f"network and round (in-context, default {LUT_CONTEXT.min_time_s}).")] = None,
    rounds: Annotated[Optional[int], typer.Option("--rounds", min=1, rich_help_panel=EXPERT,
                                                  help="Passes over all entries or networks (default 3 isolated, "
                                                  "2 in-context).")] = None,
    min_runs: Annotated[Optional[int], typer.Option("--min-runs", min=1, rich_help_panel=EXPERT,
                                                    help="Timed calls per entry (or network and round), at "
                                                    "least.")] = None,
    layers: Annotated[Optional[str], typer.Option("--layers", rich_help_panel=EXPERT,
                                                  help="Isolated: only these searchable layers, e.g. 0,1 (index "
                                                  "stays whole).")] = None,
    max_entries: Annotated[Optional[int], typer.Option("--max-entries", min=0, rich_help_panel=EXPERT,
                                                       help="Measure at most this many entries (in-context: "
                                                       "networks) now; with --cluster, the first this many.")] = None,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=EXPERT, help="In-context: seed of the networks "
                                      "the blocks are read in.")] = 0,
    cluster: Annotated[Optional[str], typer.Option("--cluster", rich_help_panel="Cluster (Ray)", help="Build the "
                                                   "table on nodes of the running Ray cluster at this address "
                                                   "(auto, HOST:PORT, ray://HOST:PORT; cnnprof starts none, so "
                                                   "'local' is refused), spread over the nodes of the "
                                                   "kind, and write it here (default name: ...-<kind>.json).",
                                                   show_default=False)] = None,
    on: Annotated[Optional[str], typer.Option("--on", rich_help_panel="Cluster (Ray)", help="With --cluster: the "
                                              "kind of node (its cnnprof-kind label) the table is for [default: "
                                              "the cluster's only kind].", show_default=False)] = None,
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
    from cnnprof.cli import options
    from cnnprof.errors import UsageError
    from cnnprof.files import check_writable
    from cnnprof.lut import builder as lut_build
    from cnnprof.lut import context
    from cnnprof.lut.table import default_path
    from cnnprof.report import emit
    from cnnprof.targets import resolve_targets
    from cnnprof.timing.protocol import with_limits

    backend_name = _backend(backend, "torch")
    n_threads = options.parse_threads(threads or "1")
    clock = _clock(clock, n_threads)
    mode = entries.strip().lower()
    if mode not in ("in-context", "isolated"):
        raise UsageError(f"unknown --entries {entries!r}; choose in-context or isolated")
    alloc = (allocator or ("steady" if mode == "in-context" else "default")).strip().lower()
    if alloc not in ("steady", "default"):
        raise UsageError(f"unknown --allocator {allocator!r}; choose steady or default")
    path = output or default_path(backend_name, n_threads, clock)
    if cluster is None and on is not None:
        raise UsageError("--on goes with --cluster ADDRESS")
    if cluster is not None and calibrate:
        raise UsageError("--calibrate times FBNet-A/B/C whole on this machine: build with --cluster without it")
    if space not in ("fbnet", "none"):
        raise UsageError(f"unknown --space {space!r}; choose fbnet or none")
    layer_list = None
    if layers is not None:
        if mode != "isolated":
            raise UsageError("--layers picks blocks to time alone: use it with --entries isolated")
        try:
            layer_list = sorted({int(v) for v in layers.split(",") if v.strip()})
        except ValueError:
            raise UsageError(f"--layers takes layer numbers such as 0,1; got {layers!r}") from None
    if calibrate and mode != "isolated":
        raise UsageError("--calibrate fits one scale to isolated entries; for an in-context table run "
                         "`cnnprof lut calibrate`")
    names = [n.strip() for item in (models or []) for n in item.split(",") if n.strip()]
    if space == "none" and not names:
        raise UsageError("nothing to build: give --space fbnet or --models")
    connection = None
    if cluster is not None:  # (Ray leaves the cluster when this process ends)
        from cnnprof import cluster as cl
        from cnnprof.lut import on_cluster

        connection = cl.connect(cluster)
        kind = on_cluster.lut_kind(connection, on)
        for node in connection.refused:
            say(f"refused node {node.describe()}: {node.problem}; it gets no entry")
        path = output or on_cluster.table_path(path, kind)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path)
    targets = resolve_targets(names) if names else []
    spaces = {}
    with progress_bar() as update:
        if mode == "isolated":
            jobs = []
            if space == "fbnet":
                space_jobs, index = lut_build.fbnet_space_jobs(layers=layer_list)
                jobs += space_jobs
                spaces[lut_build.FBNET_SPACE_NAME] = index
            for target in targets:
                jobs += lut_build.model_jobs(target)
            protocol = with_limits(LUT_ENTRY, min_time_s=min_time, min_runs=min_runs)
            rounds = rounds or 3
            if connection is not None:
                settings = {"backend": backend_name, "threads": n_threads, "clock": clock, "protocol": protocol,
                            "rounds": rounds, "force": force, "allocator": alloc}
                table, report, outcome = on_cluster.build_lut(
                    connection, kind, spec={"space": space, "layers": layer_list, "models": names}, jobs=jobs,
                    spaces=spaces, path=path, settings=settings, max_entries=max_entries, on_progress=update)
            else:
                table, report = lut_build.build(jobs, path=path, backend=backend_name, threads=n_threads,
                                                clock=clock, protocol=protocol, rounds=rounds, force=force,
                                                spaces=spaces, max_entries=max_entries, on_progress=update,
                                                allocator=alloc)
        else:
            protocol = with_limits(LUT_CONTEXT, min_time_s=min_time, min_runs=min_runs)
            rounds = rounds or context.ROUNDS
            spec = {"space": space, "models": names, "contexts": contexts, "seed": seed}
            networks, spaces = context.networks_of(spec)
            if connection is not None:
                settings = {"backend": backend_name, "threads": n_threads, "clock": clock, "protocol": protocol,
                            "rounds": rounds, "force": force, "allocator": alloc}
                table, report, outcome = on_cluster.build_lut_in_context(
                    connection, kind, spec=spec, networks=networks, spaces=spaces, path=path, settings=settings,
                    max_networks=max_entries, on_progress=update)
            else:
                table, report = context.build_in_context(
                    networks, path=path, backend=backend_name, threads=n_threads, clock=clock, protocol=protocol,
                    rounds=rounds, force=force, spaces=spaces, max_networks=max_entries, on_progress=update,
                    allocator=alloc)
    rows = [{"group": g, **counts} for g, counts in report.groups.items()]
    emit(rows, columns=BUILD_COLUMNS, fmt=fmt, fields=["group", "entries", "measured", "reused", "sum_ms"],
         title=f"latency table {path} ({backend_name}, {n_threads} thread(s), {clock} clock, {mode} entries, "
               f"{table.allocator} allocator)")
    measured = sum(int(g["measured"]) for g in report.groups.values())
    done = f" in {report.networks} network(s)" if mode == "in-context" else ""
    say(f"wrote {path}: {len(table.entries)} entries ({measured} measured now{done}) in {report.seconds:.0f} s")
    if mode == "in-context" and lut_build.FBNET_SPACE_NAME in table.spaces:
        spread = context.context_summary(table, lut_build.FBNET_SPACE_NAME)
        if spread["cells"]:
            say(f"how much the context moves a block: median spread over its networks "
                f"{100 * spread['median_relative_spread']:.1f}% of its mean ({spread['cells']} cells); "
                f"probe reference {table.probe['reference_ms']:.3f} ms")
    if report.calibration and report.calibration.get("dropped"):
        say("the table's calibration was fitted to the entries before this build and was dropped: run "
            "`cnnprof lut calibrate` again")
    if report.foreign:
        say("warning: some entries come from another environment and were not re-measured: " + "; ".join(report.foreign))
    if connection is not None:
        unit = "networks" if mode == "in-context" else "entries"
        say(f"built on {kind} nodes: " + ", ".join(f"{label} {n} {unit}" for label, n in outcome.nodes.items()))
    if report.interrupted:
        say("interrupted: kept the entries measured so far; run the same command again to resume")
        raise SystemExit(130)
    if connection is not None and outcome.failed:
        from cnnprof.errors import CheckFailed

        raise CheckFailed("some parts of the table came back with no entries (run the same command again to "
                          "fill them): " + "; ".join(outcome.failed))
    full = space == "fbnet" and layer_list is None and max_entries is None
    stale = table.calibration is None or measured > 0 or force or table.calibration.get("env") != _env_id(table)
    if calibrate and not full:
        say("--calibrate needs the whole FBNet space (no --layers or --max-entries): skipped")
    if calibrate and full and stale:
        say("timing FBNet-A/B/C whole for the calibration")
        cal = lut_build.calibrate(table, path=path, rounds=rounds)
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
