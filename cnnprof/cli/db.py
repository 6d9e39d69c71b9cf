"""``cnnprof db runs`` and ``cnnprof db rows``: what the results database holds."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.common import command
from cnnprof.cli.options import (
    DEFAULT_DB,
    BackendFilterOpt,
    BatchFilterOpt,
    OutputOpt,
    PrecisionFilterOpt,
    ReadDbOpt,
    ThreadsFilterOpt,
    option,
)
from cnnprof.home import WHERE
from cnnprof.report import Column, Format

db_app = typer.Typer(
    help=(
        "The results database (SQLite, reports/cnnprof.db unless --db or CNNPROF_DB say otherwise; "
        f"{WHERE}): every run of "
        "bench, compare, profile, eval, claims, gate, lut predict --measure, scale and sweep, with its rows.\n\n"
        "Examples:\n\n"
        "  cnnprof db runs\n\n"
        "  cnnprof db rows --model 'ghostnet*' --backend onnxruntime --latest\n\n"
        "  cnnprof db rows --kind profile --format parquet --output rows.parquet"
    ),
    no_args_is_help=True,
    add_completion=False,
)

class DbFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    md = "md"
    parquet = "parquet"


DbFormatOpt = Annotated[DbFormat, option("format", case_sensitive=False,
                                        help="table (terminal), csv, json, md or parquet (needs --output).")]

RUN_COLUMNS = [
    Column("id", "run", "int", priority=0),
    Column("command", "command", priority=0),
    Column("status", "status", priority=1),
    Column("started_at", "started (UTC)", priority=1),
    Column("revision", "revision", priority=1),
    Column("rows", "rows", "int", priority=1),
    Column("errors", "errors", "int"),
    Column("machine", "machine", wrap=True, priority=3),
    Column("argv", "command line", wrap=True, priority=3),
]
ROW_COLUMNS = [
    Column("row_id", "row", "int", priority=0),
    Column("run_id", "run", "int", priority=3),
    Column("revision", "revision"),
    Column("kind", "kind"),
    Column("model", "model", priority=0),
    Column("claim", "claim", priority=3),
    Column("backend", "backend", priority=1),
    Column("precision", "precision"),
    Column("batch", "batch", "int"),
    Column("threads", "threads", "int", priority=3),
    Column("macs", "MACs", "macs", priority=3),
    Column("latency_ms_median", "median", "ms", priority=1),
    Column("verdict", "verdict"),
    Column("passes", "passes", "int", priority=3),
    Column("error", "error", wrap=True, priority=1),
]


def _emit(records: list[dict], fields: list[str], columns: list[Column], fmt: DbFormat, output: Path | None,
          title: str) -> None:
    from cnnprof.errors import UsageError
    from cnnprof.files import write_atomic
    from cnnprof.report import emit
    from cnnprof.store.frames import parquet_bytes

    if fmt == DbFormat.parquet:
        if output is None:
            raise UsageError("--format parquet writes a binary file: give --output FILE.parquet")
        write_atomic(output, parquet_bytes(records, fields))
        return
    if fmt == DbFormat.table and output is None:
        columns = [c for c in columns if c.priority == 0 or any(r.get(c.field) not in (None, "") for r in records)]
    emit(records, columns=columns, fmt=Format(fmt.value), output=output, fields=fields, title=title)


@db_app.command("runs")
@command
def runs_command(
    db: ReadDbOpt = DEFAULT_DB,
    command_name: Annotated[Optional[str], typer.Option("--command", help="Only runs of this command "
                                                        "(bench, sweep, gate-check, ...).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="The newest N runs only.")] = None,
    fmt: DbFormatOpt = DbFormat.table,
    output: OutputOpt = None,
) -> None:
    """List the runs the database holds, newest first: command, status, revision, rows stored.

    A run that is still `running` after its process ended was killed (its rows up to then are kept).

    Examples:

      cnnprof db runs

      cnnprof db runs --command sweep --limit 5 --format json
    """
    from cnnprof.files import check_writable
    from cnnprof.store import Store, query

    check_writable(output)
    with Store.open(db, write=False) as store:
        records = query.runs(store, command=command_name, limit=limit)
    _emit(records, list(query.RUN_FIELDS), RUN_COLUMNS, fmt, output, title=f"runs in {db}")


def parse_filters(*, kind, model, family, backend, precision, device, batch, threads, revision, machine, command_name,
                  run, since, errors, latest):
    """The options of ``db rows`` (and ``report``) -> ``query.Filters``."""
    from cnnprof.cli import options
    from cnnprof.errors import UsageError
    from cnnprof.numbers import whole_list
    from cnnprof.rows import RowKind
    from cnnprof.store.query import Filters, parse_since
    from cnnprof.timing.precision import PRECISIONS

    def listed(text, what, choices=None):
        return options.parse_list(text, what=what, choices=choices) if text else []

    def numbers(text, what):
        return whole_list(text, f"--{what}", lo=0) if text else []

    if errors not in (None, "only", "none"):
        raise UsageError(f"--errors takes only or none, got {errors!r}")
    precisions = listed(precision, "precision", PRECISIONS)
    models = [m for item in (model or []) for m in options.parse_list(item, what="model")]
    return Filters(kind=listed(kind, "kind", RowKind.ALL), model=models, family=listed(family, "family"),
                   backend=listed(backend, "backend"), precision=precisions,
                   device=listed(device, "device"), batch=numbers(batch, "batch"), threads=numbers(threads, "threads"),
                   revision=listed(revision, "revision"), machine=machine, command=listed(command_name, "command"),
                   run=numbers(run, "run"), since=parse_since(since) if since else None, errors=errors, latest=latest)


@db_app.command("rows")
@command
def rows_command(
    db: ReadDbOpt = DEFAULT_DB,
    kind: Annotated[Optional[str], typer.Option("--kind", help="profile, layer, claim, gate-record, gate-check, "
                                                "predict, scale, eval (comma-separated).")] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Model names or patterns "
                                                       "('ghostnet*'; repeatable or comma-separated).")] = None,
    family: Annotated[Optional[str], typer.Option("--family", help="Families, comma-separated.")] = None,
    backend: BackendFilterOpt = None,
    precision: PrecisionFilterOpt = None,
    device: Annotated[Optional[str], option("device", help="Only these devices (comma-separated: cpu, cuda).")] = None,
    batch: BatchFilterOpt = None,
    threads: ThreadsFilterOpt = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="cnnprof revisions (prefixes), "
                                                    "comma-separated.")] = None,
    machine: Annotated[Optional[str], option("machine", help="A part of the machine's label (host, "
                                                   "CPU).")] = None,
    command_name: Annotated[Optional[str], typer.Option("--command", help="Rows of these commands' runs "
                                                        "(bench, sweep, ...).")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run ids, comma-separated (see `db runs`).")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Rows recorded from this UTC date or time on "
                                                 "(2026-11-28, 2026-11-28T05:00).")] = None,
    errors: Annotated[Optional[str], typer.Option("--errors", help="only: rows with an error; none: rows "
                                                  "without.")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Only the newest row of each configuration (model, "
                                         "input, batch, backend, device, threads, precision, machine).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=0, help="The newest N rows only.")] = None,
    records: Annotated[bool, typer.Option("--records", help="Add each row's full record (every field it had, "
                                          "JSON) as a column.")] = False,
    fmt: DbFormatOpt = DbFormat.table,
    output: OutputOpt = None,
) -> None:
    """Rows of the database, filtered, as a table, CSV, JSON, markdown or Parquet.

    Columns: where the row comes from (row and run ids, command, kind, when, revision, machine,
    environment key, sweep cell and passes), then the typed columns (model, backend, precision,
    batch, threads, params, MACs, latency statistics, claim verdicts, gate ratios, ...). --records
    adds the whole row as it was printed.

    Examples:

      cnnprof db rows --model 'ghostnet*' --backend onnxruntime --latest

      cnnprof db rows --kind claim --format csv --output claims.csv

      cnnprof db rows --since 2026-11-01 --format parquet --output rows.parquet
    """
    from cnnprof.files import check_distinct, check_writable
    from cnnprof.store import Store, query

    check_writable(output)
    check_distinct([output], [db])
    filters = parse_filters(kind=kind, model=model, family=family, backend=backend, precision=precision,
                            device=device, batch=batch, threads=threads, revision=revision, machine=machine,
                            command_name=command_name, run=run, since=since, errors=errors, latest=latest)
    with Store.open(db, write=False) as store:
        rows = query.select(store, filters, records=records, limit=limit)
    fields = list(query.ROW_FIELDS) + (["record"] if records else [])
    _emit(rows, fields, ROW_COLUMNS, fmt, output, title=f"{len(rows)} row(s) of {db}")
