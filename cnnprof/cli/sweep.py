"""``cnnprof sweep``: a matrix of configurations, each cell in a fresh worker, stored as it goes."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from cnnprof.cli.common import counted_progress
from cnnprof.cli.options import (DEFAULT_DB, DbOpt, FormatOpt, OutputOpt, RevisionOpt, TrustOpt, grouped, option,
                                 option_group)
from cnnprof.errors import UsageError
from cnnprof.files import check_distinct, check_writable, same_file
from cnnprof.report import Column, Format
from cnnprof.terminal import say

COLUMNS = [
    Column("model", "model", priority=0),
    Column("backend", "backend", priority=0),
    Column("precision", "precision", priority=3),
    Column("batch", "batch", "int", priority=1),
    Column("threads", "threads", "int", priority=3),
    Column("input", "input", priority=3),
    Column("params", "params", "count", priority=3),
    Column("macs", "MACs", "macs", priority=2),
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("latency_ms_iqr", "IQR", "ms"),
    Column("runs", "runs", "int", priority=3),
    Column("passes", "passes", "int"),
    Column("warnings", "warnings", wrap=True, priority=3),
    Column("error", "error", wrap=True, priority=1),
]
CLUSTER_COLUMNS = [Column("kind", "kind", priority=0), Column("host", "node", priority=2)]
OVERHEAD_LABELS = {"start_s": "start", "import_s": "import", "resolve_s": "resolve", "count_s": "count",
                   "build_s": "build", "calibrate_s": "calibrate", "ray_s": "Ray", "measure_s": "measuring",
                   "worker_s": "whole worker"}
CLUSTER = "Cluster (Ray)"

ListOpt = Optional[str]


@option_group
@dataclasses.dataclass(frozen=True)
class Cells:
    """The matrix and how its cells run (each option replaces the --config file's value)."""

    backend: Annotated[ListOpt, option("backend", help="Backends, comma-separated: torch, compile, onnxruntime, "
                                       "openvino, tensorrt [default: torch,onnxruntime].", show_default=False)] = None
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Count only (params, MACs): no backend; cells run "
                                            "in parallel (--parallel).")] = False
    precision: Annotated[ListOpt, option("precision", help="Precisions, comma-separated: fp32, fp16, bf16, int8 "
                                         "[default: fp32].", show_default=False)] = None
    batch: Annotated[ListOpt, option("batch", help="Batch sizes, comma-separated [default: 1].",
                                     show_default=False)] = None
    threads: Annotated[ListOpt, option("threads", help="Thread counts (N or all), comma-separated [default: 1].",
                                       show_default=False)] = None
    resolution: Annotated[ListOpt, option("resolution", help="Inputs: native, N or HxW, comma-separated "
                                          "[default: native].", show_default=False)] = None
    device: Annotated[ListOpt, option("device", help="cpu, cuda (comma-separated) [default: cpu].",
                                      show_default=False)] = None
    input_shape: Annotated[Optional[str], option("input", help="Input CxHxW of user models that declare "
                                                 "none.")] = None
    passes: Annotated[Optional[int], typer.Option("--passes", min=1, help="Passes over all cells, each in its own "
                                                  "random order; a cell pools its passes [default: 2; counting: 1].",
                                                  show_default=False)] = None
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=1.0, help="Seconds a cell's worker may run "
                                                     "before it is stopped (that cell's error) [default: 600].",
                                                     show_default=False)] = None
    min_time: Annotated[Optional[float], option("min_time", min=0.0, help="Seconds measured per cell and pass "
                                                "[default: bench's 2 s shared by the passes].",
                                                show_default=False)] = None
    min_runs: Annotated[Optional[int], option("min_runs", min=1, help="Calls measured per cell and pass, at least "
                                              "[default: bench's 10 shared by the passes].",
                                              show_default=False)] = None
    parallel: Annotated[Optional[int], typer.Option("--parallel", "-j", min=1, help="Counting only: workers at "
                                                    "once [default: the cores]. Timing cells run one at a time.",
                                                    show_default=False)] = None
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Seed of the shuffled orders [default: 0].",
                                                show_default=False)] = None
    memory_limit: Annotated[Optional[float], typer.Option("--memory-limit", min=0.1, help="GB of address space "
                                                          "per worker, up to 1,000,000 (beyond it: that cell's "
                                                          "out-of-memory error).", show_default=False)] = None


@option_group
@dataclasses.dataclass(frozen=True)
class OnCluster:
    """Where the cells run when not here: a Ray cluster."""

    cluster: Annotated[Optional[str], typer.Option("--cluster", rich_help_panel=CLUSTER, help="Run the cells on "
                                                   "the running Ray cluster at this address (auto, "
                                                   "HOST:PORT, ray://HOST:PORT; cnnprof starts none, so "
                                                   "'local' is refused): each cell pass on a node of each kind, one "
                                                   "at a time per node; needs `pip install 'cnnprof[cluster]'` "
                                                   "(README).", show_default=False)] = None
    on: Annotated[Optional[str], typer.Option("--on", rich_help_panel=CLUSTER, help="With --cluster: only on "
                                              "nodes of these kinds (their cnnprof-kind label), comma-separated "
                                              "[default: every kind, one result per kind].",
                                              show_default=False)] = None
    retries: Annotated[Optional[int], typer.Option("--retries", min=0, max=20, rich_help_panel=CLUSTER, help="With "
                                                   "--cluster: times a cell pass whose node dies is run again on "
                                                   "another node of its kind before it is an error [default: 2].",
                                                   show_default=False)] = None


def progress_bar(enabled: bool = True) -> Iterator:
    """The sweep's progress on stderr: cell passes done of all, failed, time left; a plain line
    every few seconds when stderr is not a terminal. Yields ``update(status)``."""
    first: list = []  # (time, passes done) at the first update: the time left is from the rate since

    def counts(status) -> tuple[int, int]:
        if not first:
            first.append((time.perf_counter(), status.done))
        return status.done, status.total

    def line(status, elapsed: float) -> str:
        t0, d0 = first[0]
        eta = ""
        if d0 < status.done < status.total:
            rate = (time.perf_counter() - t0) / (status.done - d0)
            eta = f", about {rate * (status.total - status.done):.0f} s left"
        failed = f", {status.failed} failed" if status.failed else ""
        return (f"{status.done}/{status.total} cell passes{failed}{eta}"
                + (f"; last: {status.current}" if status.current else ""))

    return counted_progress(
        columns=lambda rp: (rp.TextColumn("sweep"), rp.BarColumn(), rp.MofNCompleteColumn(),
                            rp.TextColumn("{task.fields[failed]}"), rp.TimeElapsedColumn(), rp.TextColumn("eta"),
                            rp.TimeRemainingColumn(), rp.TextColumn("{task.description}")),
        fields=lambda status: {"completed": status.done, "total": status.total,
                               "failed": f"[{status.failed} failed]" if status.failed else "",
                               "description": ("stopping: " if status.stopping else "") + status.current[:40]},
        counts=counts,
        line=line,
        initial={"failed": ""},
        last_line_always=True,
        enabled=enabled,
    )


@grouped
def sweep_command(
    models: Annotated[Optional[list[str]], typer.Argument(help="Model names, aliases, patterns ('ghostnet*', '*') or "
                                                          "references; or `models` in --config.",
                                                          show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", dir_okay=False, help="A TOML file with the matrix "
                                                   "and the run settings (format: `cnnprof sweep --help`, README). "
                                                   "Options given here replace its values.")] = None,
    c: Cells = Cells(),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished sweep of these cells at this "
                                         "revision on this machine (its stored passes are kept), and skip cells "
                                         "another sweep measured completely.")] = False,
    where: OnCluster = OnCluster(),
    list_cells: Annotated[bool, typer.Option("--list", help="Print the cells and exit.")] = False,
    trust: TrustOpt = None,
    revision: RevisionOpt = None,
    db: DbOpt = DEFAULT_DB,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Measure a matrix of configurations, each cell in a fresh worker process, every result stored.

    The matrix is models x backends x precisions x batch sizes x threads x resolutions x
    devices. Cells run in passes (--passes, default 2), each pass in its own random order, each
    cell pass in a new Python process; a cell's row pools the samples of its passes. A worker that
    crashes, runs past --timeout or out of memory is that cell's error; the sweep goes on. Each
    pass is stored in the results database as it ends, so a killed sweep keeps every finished
    pass and `--resume` continues it (refused while that sweep still runs). Ctrl-C stops after
    the running cell (twice, or SIGTERM: at once). Counting-only sweeps (--no-timing) run --parallel workers at once; timing cells one at a time.

    The rows of this run are printed at the end (--format, --output); all runs: `cnnprof db rows`,
    `cnnprof report`.

    A sweep file is data: a model it names that would run code other than a registered model, an
    .onnx file or a .py file inside the file's folder or git repository is refused, unless --trust
    names it.

    Examples:

      cnnprof sweep '*'                                  # the whole zoo: torch + onnxruntime, batch 1

      cnnprof sweep 'ghostnet*' espnetv2 --backend torch,onnxruntime --batch 1,4

      cnnprof sweep '*' --no-timing                      # params and MACs of every model

      cnnprof sweep --config sweep.toml --resume

      cnnprof sweep 'ghostnet*' --cluster auto                # every kind of node of a Ray cluster

      cnnprof sweep espnetv2 --cluster ray://head:10001 --on cpu-avx512
    """
    from cnnprof.sweep import matrix as mx

    check_writable(output)
    from cnnprof.cli.options import parse_revision

    given_revision = parse_revision(revision)
    spec = mx.read_toml(config) if config is not None else {}
    refs = _models(models, config, spec, trust, output)
    matrix = _matrix(c, spec, config, refs, where)
    cells = matrix.cells(mx.expand_models(refs))
    if output is not None and same_file(output, db):
        raise UsageError(f"{str(output)!r} is the results database (--db): choose another output path")
    result = _run(matrix, cells, where, db, resume=resume, list_cells=list_cells, revision=given_revision)
    if result is not None:
        _summary(result, db, fmt=fmt, output=output, on_cluster=where.cluster is not None)


def _models(models, config, spec: dict, trust, output) -> list[str]:
    """The models named here, else the --config file's (then only those --trust allows)."""
    from cnnprof.references import check_trusted, reference_files

    refs = list(models or []) or spec.get("models") or []
    if not refs:
        raise UsageError("no model given: name models (e.g. 'ghostnet*', or '*' for the whole zoo) or give "
                         "--config with `models`")
    if not models and config is not None:  # the file's models are data: only what the user trusts runs
        check_trusted(refs, source=config, trusted=trust or (), what="sweep file")
    check_distinct([output], reference_files(refs) + ([config] if config else []))
    return refs


def _listed(text, spec: dict, config, key, what, choices=None):
    """An option's comma-separated values, else the --config file's (checked against ``choices``)."""
    from cnnprof.cli import options

    if text is not None:
        return options.parse_list(text, what=what, choices=choices)
    values = spec.get(key)
    if values is not None and choices is not None:
        bad = [v for v in values if v not in choices]
        if bad:
            raise UsageError(f"{config}: {key!r}: unknown {what} {bad[0]!r}; choose from {', '.join(choices)}")
    return values


def _matrix(c: Cells, spec: dict, config, refs: list[str], where: OnCluster):
    """The sweep's matrix from the options, the --config file and the defaults, each value checked."""
    from cnnprof import timing
    from cnnprof.cli import options
    from cnnprof.numbers import MAX_MEMORY_GB, real
    from cnnprof.sweep import matrix as mx
    from cnnprof.timing.environment import cpu_count

    def listed(text, key, what, choices=None):
        return _listed(text, spec, config, key, what, choices)

    backends: list[str] = []
    if not c.no_timing:
        backends = listed(c.backend, "backends", "backend", timing.BACKENDS)
        backends = list(mx.Matrix.backends) if backends is None else backends
    precisions = mx.check_precisions(listed(c.precision, "precisions", "precision") or [mx.DEFAULT_PRECISION])
    batches = options.parse_batches(c.batch) if c.batch is not None else spec.get("batches", [1])
    thread_items = options.parse_list(c.threads, what="threads") if c.threads is not None else spec.get("threads", ["1"])
    thread_counts = list(dict.fromkeys(options.parse_threads(t) for t in thread_items))
    resolutions = mx.parse_resolutions(listed(c.resolution, "resolutions", "resolution") or [mx.NATIVE])
    devices = listed(c.device, "devices", "device", timing.DEVICES) or ["cpu"]
    _kinds(where)  # checked here, used when the cells are placed
    if where.cluster is None and (where.on is not None or where.retries is not None):
        raise UsageError("--on and --retries go with --cluster ADDRESS")
    for b in backends:
        for d in devices:  # on a cluster, the nodes have the devices: only the names are checked here
            timing.check_options(timing.TimingOptions(backend=b, device="cpu" if where.cluster else d))
    memory_limit_gb = c.memory_limit or spec.get("memory_limit")
    if memory_limit_gb is not None:
        memory_limit_gb = real(memory_limit_gb, "--memory-limit (GB)", lo=0.1, hi=MAX_MEMORY_GB)
    return mx.Matrix(
        models=tuple(refs), backends=tuple(backends), precisions=tuple(precisions), batches=tuple(batches),
        threads=tuple(thread_counts), resolutions=tuple(resolutions), devices=tuple(devices),
        input=c.input_shape or spec.get("input"),
        passes=c.passes or spec.get("passes", mx.DEFAULT_PASSES),
        timeout_s=c.timeout or spec.get("timeout", mx.DEFAULT_TIMEOUT_S),
        min_time_s=c.min_time if c.min_time is not None else spec.get("min_time"),
        min_runs=c.min_runs or spec.get("min_runs"),
        parallel=options.capped_parallel(c.parallel or spec.get("parallel") or cpu_count()),
        seed=c.seed if c.seed is not None else spec.get("seed", 0),
        memory_limit_gb=memory_limit_gb,
    )


def _kinds(where: OnCluster) -> list[str] | None:
    """--on: the kinds of node asked for (None: every kind)."""
    from cnnprof.cli import options

    return options.parse_list(where.on, what="kind") if where.on is not None else None


def _run(matrix, cells, where: OnCluster, db, *, resume: bool, list_cells: bool, revision: str | None = None):
    """Run the cells (here or on the cluster), each pass stored as it ends; with --list only print
    them (returns None)."""
    from cnnprof.cli.common import ARGV
    from cnnprof.store import Store
    from cnnprof.sweep.driver import Sweep
    from cnnprof.sweep.executor import LocalExecutor
    from cnnprof.timing.environment import fingerprint

    with contextlib.ExitStack() as stack:
        if where.cluster is not None:
            connection, cells, executor = _on_cluster(where.cluster, _kinds(where), cells, matrix, where.retries)
            stack.callback(connection.shutdown)
            how = f"(on {len({c.kind for c in cells})} kind(s) of node, one cell at a time per node)"
        else:
            executor = LocalExecutor(timeout_s=matrix.timeout_s, parallel=1 if matrix.timing else matrix.parallel)
            how = "(timing, one cell at a time)" if matrix.timing else f"(counting, {executor.parallel} at once)"
        if list_cells:
            for c in cells:
                print(c.describe(), file=_stdout())
            say(f"{len(cells)} cell(s) x {matrix.effective_passes} pass(es)")
            return None
        store = stack.enter_context(Store.open(db, write=True))  # closed (checked) before the summary
        run = Sweep(matrix, cells, store, executor, environment=fingerprint(1).to_dict(),
                    argv=ARGV or ["cnnprof", "sweep"], resume=resume, input_shape=matrix.input, on_notice=say,
                    revision=revision)
        run.on_start = lambda: say(f"sweep: {len(cells)} cell(s) x {matrix.effective_passes} pass(es) {how}; "
                                   f"results in {db}")
        with progress_bar() as update:
            run.on_progress = update
            result = run.run()
        store.close()
    return result


def _summary(result, db, *, fmt, output, on_cluster: bool) -> None:
    """This run's rows (--format, --output), the overheads, where they are stored; exit 130/143
    after an interruption, 1 when a cell failed."""
    from cnnprof import sweep as sweep_pkg
    from cnnprof.cli.timed import fail_on_error_rows
    from cnnprof.report import emit

    rows = result.rows
    if rows:
        title = f"sweep run {result.run_id}: {len(rows)} cell(s)" + (" (partial)" if result.interrupted else "")
        columns = COLUMNS[:2] + CLUSTER_COLUMNS + COLUMNS[2:] if on_cluster else COLUMNS
        emit(rows, columns=columns, fmt=fmt, output=output, fields=_fields(rows), title=title,
             partial=result.interrupted)
    summary = sweep_pkg.overhead_summary(result.passes)
    if summary:
        say("per cell pass (medians): " + ", ".join(f"{OVERHEAD_LABELS[k]} {v:.2f} s" for k, v in summary.items()))
    failed = len(result.failed)
    if not result.run_id:
        return
    say(f"sweep run {result.run_id} in {db}: {len(rows)} cell(s) stored" + (f", {failed} failed" if failed else "")
        + (f", {result.skipped_cells} skipped (measured by another sweep)" if result.skipped_cells else ""))
    if result.interrupted:
        say("interrupted: every finished pass is stored; run the same command with --resume to continue")
        raise SystemExit(143 if result.terminated else 130)
    fail_on_error_rows([_Row(r) for r in rows])


class _Row:
    def __init__(self, record: dict):
        self.model = record.get("model")
        self.error = record.get("error")


def _fields(rows: list[dict]) -> list[str]:
    from cnnprof.rows import ProfileRow

    fields = ProfileRow.field_names()
    extra = ("cell", "passes", "passes_planned", "pass_medians", "pass_errors", "kind", "host", "node", "nodes")
    return fields + [k for k in extra if k not in fields and (k not in ("kind", "host", "node", "nodes")
                                                             or any(k in r for r in rows))]


def _on_cluster(address: str, kinds_asked, cells, matrix, retries: int):
    """Join the cluster, check its nodes, and give every cell a kind of node: those asked, or
    each kind (a GPU cell only where the kind's nodes have GPU slots). Returns (cluster, cells,
    executor). Refused nodes are said here, one line each."""
    import dataclasses

    from cnnprof import cluster as cl
    from cnnprof.sweep.ray_executor import RayExecutor

    note = cl.auth_note()
    connection = cl.connect(address)
    try:
        say(f"checking the nodes of the cluster at {address}")
        accepted, refused = connection.check()
        for node in refused:
            say(f"refused node {node.describe()}: {node.problem}; it gets no cell")
        kinds = connection.choose_kinds(kinds_asked)
        out, left_out = [], []
        for kind in kinds:
            for c in cells:
                if connection.nodes_of(kind, cl.resource_for(c.device)):
                    out.append(dataclasses.replace(c, kind=kind))
                else:
                    left_out.append(f"{c.describe()} on {kind}")
        if left_out:
            if kinds_asked:
                from cnnprof.errors import UsageError

                raise UsageError(f"no node of kind {left_out[0].rsplit(' on ', 1)[1]} has a {cl.GPU_SLOT}: "
                                 f"{left_out[0]} cannot run there")
            say(f"left out {len(left_out)} cell(s) whose device no node of that kind has (e.g. {left_out[0]})")
        if not out:
            from cnnprof.errors import UsageError

            raise UsageError("no cell can run on the cluster's nodes")
        say(connection.describe() + "; nodes: " + ", ".join(n.describe() for n in accepted))
        if note:
            say(note)
    except BaseException:
        connection.shutdown()
        raise
    return connection, out, RayExecutor(connection, timeout_s=matrix.timeout_s,
                                        retries=cl.DEFAULT_RETRIES if retries is None else retries)


def _stdout():
    from cnnprof.terminal import data_stream

    return data_stream()
