"""``cnnprof report``: one self-contained HTML page from the results database or report files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.options import DEFAULT_DB, WHERE, option
from cnnprof.files import REPORTS_DIR
from cnnprof.terminal import say

DEFAULT_OUTPUT = Path(REPORTS_DIR) / "report.html"


def report_command(
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="CSV or JSON reports of cnnprof commands to show instead of the database.", show_default=False,
        dir_okay=False)] = None,
    db: Annotated[Path, option("db", help=f"The results database (reports/: {WHERE}).", dir_okay=False,
                                     envvar="CNNPROF_DB")] = DEFAULT_DB,
    output: Annotated[Path, option("output", dir_okay=False,
                                         help=f"The HTML file to write (atomically; reports/: {WHERE}).")
                      ] = DEFAULT_OUTPUT,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Only these models (names or "
                                                       "patterns; repeatable).")] = None,
    title: Annotated[str, typer.Option("--title", help="The page's title.")] = "cnnprof report",
    compare: Annotated[Optional[tuple[str, str]], typer.Option(
        "--compare", metavar="A B", help="The two runs (ids) or revisions (or prefixes of them) the comparison "
        "shows, B against A. Default: the two newest revisions.", show_default=False)] = None,
) -> None:
    """Write one self-contained HTML page: tables, Pareto charts, scaling, rooflines, claims, history.

    From the results database (default) or from CSV/JSON reports given as arguments. The page
    holds everything it shows (styles, the chart library, the data) and makes no network request:
    it opens offline and prints legibly. Sections: the latest result of each configuration
    (sortable, filterable); latency against MACs and against params with the Pareto front, one
    marker per backend and precision, one panel per machine; the compound-scaling curve (from
    `cnnprof scale` runs, else EfficientNet-B0...B7); rooflines of per-layer timings (`profile
    --timing`); the claims and their verdicts; each model's latency across revisions with the
    gate's verdicts; the runs; and a comparison of two runs or revisions (--compare): per
    configuration timed in both, the latency ratio B/A with its interval and the gate's verdict,
    regressions first.

    Examples:

      cnnprof report --output report.html

      cnnprof report reports/bench-*.csv claims.json --output bench.html

      cnnprof report --model 'ghostnet*' --title "GhostNet on this laptop"

      cnnprof report --compare 0abc001 0abc002 --output compare.html
    """
    import time

    from cnnprof import htmlreport
    from cnnprof.cli import options
    from cnnprof.files import check_distinct, check_writable, write_atomic
    from cnnprof.htmlreport import data as sources

    started = time.perf_counter()
    check_writable(output)
    check_distinct([output], list(inputs or []) + ([] if inputs else [db]))
    models = [m for item in (model or []) for m in options.parse_list(item, what="model")]
    if inputs:
        dataset = sources.from_files(inputs)
        if models:
            import fnmatch

            for kind, rows in dataset.rows.items():
                dataset.rows[kind] = [r for r in rows if kind == "claim" or any(
                    fnmatch.fnmatchcase(str(r.get("model")), m) for m in models)]
    else:
        from cnnprof.store import Store

        with Store.open(db, write=False) as store:
            dataset = sources.from_store(store, models=models)
    page = htmlreport.build(dataset, title=title, compare=compare)
    write_atomic(output, page)
    rows = sum(len(v) for v in dataset.rows.values())
    say(f"wrote {output} ({len(page.encode()) / 1e6:.2f} MB, {rows} row(s)) in {time.perf_counter() - started:.2f} s")
