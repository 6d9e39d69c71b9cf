"""``cnnprof history MODEL``: a model's latency across revisions and machines, with the gate's flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional, Sequence

import typer

from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendFilterOpt,
    BatchFilterOpt,
    FormatOpt,
    OutputOpt,
    PlotOpt,
    PrecisionFilterOpt,
    ReadDbOpt,
    ThreadsFilterOpt,
    option,
)
from cnnprof.report import Column, Format
from cnnprof.terminal import say

COLUMNS = [
    Column("revision", "revision", priority=0),
    Column("first_seen", "first seen (UTC)", priority=3),
    Column("machine", "machine", wrap=True, priority=2),
    Column("backend", "backend", priority=0),
    Column("precision", "precision", priority=3),
    Column("batch", "batch", "int", priority=1),
    Column("threads", "threads", "int", priority=3),
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("change", "vs previous", "ratio", priority=1),
    Column("runs", "runs", "int", priority=3),
    Column("rows", "rows", "int", priority=3),
    Column("source", "from", priority=3),
    Column("gate", "gate", priority=1),
    Column("gate_ratio", "gate ratio", "ratio", priority=2),
    Column("note", "note", wrap=True, priority=3),
]
FIELDS = ["model", "revision", "first_seen", "machine", "source", "backend", "precision", "batch", "threads",
          "latency_ms_median", "latency_ms_ci_low", "latency_ms_ci_high", "runs", "rows", "change", "gate",
          "gate_ratio", "note", "cnnprof_revision"]
CHANGE_COLUMNS = [
    Column("revision", "first revision after", priority=0),
    Column("previous", "last before", priority=2),
    Column("machine", "machine", wrap=True, priority=2),
    Column("backend", "backend", priority=0),
    Column("precision", "precision", priority=3),
    Column("batch", "batch", "int", priority=1),
    Column("threads", "threads", "int", priority=3),
    Column("before_ms", "before", "ms", priority=1),
    Column("after_ms", "after", "ms", priority=1),
    Column("step", "step [95% interval]", priority=0),
    Column("verdict", "verdict", priority=0),
    Column("revisions", "revisions", priority=3),
    Column("note", "note", wrap=True, priority=3),
]


def with_changes(lines: list[dict]) -> list[dict]:
    """Each line's latency over the same configuration's (machine, backend, precision, batch,
    threads) at the revision before: where a change shows."""
    previous: dict[tuple, float] = {}
    out = []
    for line in lines:
        key = (line.get("machine"), line.get("backend"), line.get("precision"), line.get("batch"), line.get("threads"))
        now = line.get("latency_ms_median")
        before = previous.get(key)
        out.append({**line, "change": now / before if now and before else None})
        if now:
            previous[key] = now
    return out


def history_command(
    model: Annotated[str, typer.Argument(help="A registered model name or a user reference, as recorded.")],
    backend: BackendFilterOpt = None,
    precision: PrecisionFilterOpt = None,
    batch: BatchFilterOpt = None,
    threads: ThreadsFilterOpt = None,
    machine: Annotated[Optional[str], option("machine", help="Only machines whose label contains this.")] = None,
    db: ReadDbOpt = DEFAULT_DB,
    changes: Annotated[bool, typer.Option("--changes", help="Report the change points of each configuration's "
                                          "series instead of its lines (docs/gate.md).")] = False,
    min_size: Annotated[int, typer.Option("--min-size", min=1, max=1000, help="--changes: revisions a segment "
                                          "holds at least, either side of a change point.")] = 2,
    repo: Annotated[Optional[Path], typer.Option("--repo", file_okay=False, help="The git repository whose "
                                                 "commit order the revisions follow [default: the one the "
                                                 "model's file is in, else the current folder's].",
                                                 show_default=False)] = None,
    plot: PlotOpt = None,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """A model's median latency at each revision and on each machine, with each change the gate flagged.

    One line per revision x machine x backend x precision x batch x threads (the newest row of
    each). A revision is the model's own repository's (the git revision of a user's model file,
    or --revision as measured), else cnnprof's; revisions follow the repository's commit order
    when it is reachable (--repo), else the order first seen. `vs previous` compares with the same
    configuration at the revision before; `gate` is the gate's verdict at that revision
    (regression, count changed, improvement, pass), on the lines of the backend, precision, batch
    and threads it measured only. --plot draws the lines, with the
    flagged revisions marked.

    --changes: the change points of each configuration's series (PELT via ruptures, at least
    --min-size revisions a side), each with the first revision after it, the step (ratio of the
    segments' medians) and its 95% interval; a step whose interval holds 1.0 is `inconclusive`.

    Examples:

      cnnprof history ghostnet_100

      cnnprof history efficientnet_b0 --backend onnxruntime --batch 1 --plot b0-history.png

      cnnprof history mobilenetv3_small --format csv --output history.csv

      cnnprof history 'nets/model.py:make' --changes

      cnnprof history ghostnet_100 --changes --repo ~/src/nets --format json
    """
    from cnnprof.cli.db import parse_filters
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.plots import check_plot_path
    from cnnprof.store import Store, query

    check_writable(output)
    check_plot_path(plot)
    check_distinct([output, plot], [db])
    f = parse_filters(kind=None, model=None, family=None, backend=backend, precision=precision, device=None,
                      batch=batch, threads=threads, revision=None, machine=machine, command_name=None, run=None,
                      since=None, errors=None, latest=False)
    with Store.open(db, write=False) as store:
        lines = query.history(store, model, backends=f.backend, precision=f.precision, batch=f.batch,
                              threads=f.threads, machine=machine)
    if not lines:
        from cnnprof.errors import UsageError

        raise UsageError(f"no timed rows of {model!r} in {str(db)!r}" + (" with these filters" if any(
            (backend, precision, batch, threads, machine)) else "") + " (see `cnnprof db rows --model ...`)")
    from cnnprof.changes import order_lines

    lines, order = order_lines(lines, repository(model, repo))
    if changes:
        report_changes(model, lines, order, min_size=min_size, fmt=fmt, output=output, plot=plot)
    else:
        report_lines(model, lines, fmt=fmt, output=output, plot=plot)


def report_lines(model: str, lines: list[dict], *, fmt, output, plot) -> None:
    """``history``: one row per line, with its change over the revision before; the revisions the
    gate flagged on stderr; the picture with ``--plot``."""
    from cnnprof.report import emit

    lines = with_changes(lines)
    revisions = list(dict.fromkeys(ln["revision"] for ln in lines))
    flagged = [ln for ln in lines if ln.get("gate") not in (None, "pass")]
    emit(lines, columns=COLUMNS, fmt=fmt, output=output, fields=FIELDS,
         title=f"{model}: median latency across {len(revisions)} revision(s)")
    if flagged:
        say("the gate flagged: " + "; ".join(dict.fromkeys(f"{ln['revision']} {ln['gate']} ({ln['machine']})"
                                                          for ln in flagged)))
    if plot is not None:
        draw(model, lines, plot)
        say(f"wrote {plot}")


def repository(model: str, repo: Path | None) -> Path | None:
    """Whose commit order revisions follow: ``--repo`` (a folder outside any repository is one
    line, exit 2), else the repository of the model's file, else the current folder's."""
    from cnnprof.gitrev import model_file, repo_revision

    if repo is not None:
        found = repo_revision(repo)
        if found is None:
            from cnnprof.errors import UsageError

            raise UsageError(f"--repo {str(repo)!r} is not in a git repository with a commit")
        return found.repo_root
    path = model_file(model)
    found = repo_revision(path if path is not None else Path.cwd())
    return None if found is None else found.repo_root


def report_changes(model: str, lines: list[dict], order: str, *, min_size: int, fmt, output, plot) -> None:
    """``history --changes``: the change points, one row each (see ``cnnprof.changes``)."""
    from cnnprof.changes import INCONCLUSIVE, change_points, series_of, too_short
    from cnnprof.errors import UsageError
    from cnnprof.report import emit

    longest = max((len(p) for p in series_of(lines).values()), default=0)
    if longest < 2 * min_size:
        raise UsageError(f"{model}: {longest} revision(s) at most in one configuration; a change point needs "
                         f"{2 * min_size} ({min_size} a side, --min-size)")
    for note in too_short(lines, min_size):
        say(f"note: {note}")
    found = change_points(lines, min_size=min_size)
    rows = [{**c.to_dict(), "step": f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]",
             "revisions": f"{c.revisions_before} | {c.revisions_after}"} for c in found]
    from cnnprof.changes import ChangePoint

    emit(rows, columns=CHANGE_COLUMNS, fmt=fmt, output=output, fields=ChangePoint,
         title=f"{model}: change points over {len(dict.fromkeys(ln['revision'] for ln in lines))} revision(s), "
               f"{order}")
    real = [c for c in found if c.verdict != INCONCLUSIVE]
    say(f"{len(real)} change point(s)" + (": " + "; ".join(
        f"{c.revision} {c.verdict} {c.ratio:.3f}x [{c.ci_low:.3f}, {c.ci_high:.3f}] ({c.backend} b{c.batch} "
        f"t{c.threads})" for c in real) if real else "") + (f"; {len(found) - len(real)} inconclusive"
                                                             if len(found) > len(real) else ""))
    if plot is not None:
        draw(model, with_changes(lines), plot, changes=real)
        say(f"wrote {plot}")


def draw(model: str, lines: list[dict], path: Path, changes: Sequence = ()) -> None:
    """Median latency against revision, a line per configuration and machine, flagged revisions marked."""
    from cnnprof.plots import _figure, save

    plt = _figure()
    revisions = list(dict.fromkeys(ln["revision"] for ln in lines))
    x = {r: i for i, r in enumerate(revisions)}
    fig, ax = plt.subplots(figsize=(max(6.5, 0.7 * len(revisions) + 3), 4.5))
    groups: dict[tuple, list[dict]] = {}
    for ln in lines:
        if ln.get("latency_ms_median") is not None:
            key = (ln["backend"], ln["precision"], ln["batch"], ln["threads"], ln["machine"])
            groups.setdefault(key, []).append(ln)
    machines = list(dict.fromkeys(k[4] for k in groups))
    for key, items in groups.items():
        label = f"{key[0]} {key[1]} b{key[2]} t{key[3]}" + (f" ({key[4]})" if len(machines) > 1 else "")
        xs = [x[i["revision"]] for i in items]
        ys = [i["latency_ms_median"] for i in items]
        lo = [i["latency_ms_median"] - (i.get("latency_ms_ci_low") or i["latency_ms_median"]) for i in items]
        hi = [(i.get("latency_ms_ci_high") or i["latency_ms_median"]) - i["latency_ms_median"] for i in items]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=2, label=label,
                    linestyle="--" if machines.index(key[4]) % 2 else "-")
    colours = {"regression": "tab:red", "count changed": "tab:orange", "warning": "tab:olive",
               "improvement": "tab:green"}
    top = max((ln["latency_ms_median"] for ln in lines if ln.get("latency_ms_median")), default=1.0)
    shown = set()
    for ln in lines:
        if ln.get("gate") in colours and (ln["revision"], ln["gate"]) not in shown:
            shown.add((ln["revision"], ln["gate"]))
            ax.axvline(x[ln["revision"]], color=colours[ln["gate"]], alpha=0.3, linewidth=6)
            ax.annotate(f"gate: {ln['gate']}", (x[ln["revision"]], top), textcoords="offset points", xytext=(4, 6),
                        fontsize=8, color=colours[ln["gate"]])
    for c in {(c.revision, c.verdict): c for c in changes}.values():
        colour = colours["regression" if c.verdict == "regression" else "improvement"]
        ax.axvline(x[c.revision] - 0.5, color=colour, linestyle=":", linewidth=1.5)
        ax.annotate(f"change {c.ratio:.2f}x", (x[c.revision] - 0.5, top), textcoords="offset points",
                    xytext=(4, -12), fontsize=8, color=colour)
    ax.set_xticks(range(len(revisions)), revisions, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("revision")
    ax.set_ylabel("median latency (ms), 95% interval")
    ax.set_title(f"{model}: latency across revisions", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, path)
    plt.close(fig)
