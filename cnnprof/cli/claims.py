"""``cnnprof claims``: the checkable claims of the seed chapter, measured (or cited, with the reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnprof.cli.common import counted_eta, counted_progress, eta_column
from cnnprof.cli.options import DEFAULT_DB, DbOpt, DeviceOpt, FormatOpt, NoDbOpt, OutputOpt, option
from cnnprof.files import check_writable, write_atomic
from cnnprof.report import Column, Format, emit
from cnnprof.terminal import data_stream, say

COLUMNS = [
    Column("id", "id"),
    Column("verdict_text", "verdict", wrap=True, priority=0),  # the answer: it folds, never goes
    Column("expected_text", "expected"),
    Column("measured_text", "measured"),
    Column("interval_text", "95% interval"),
    # which interval the verdict judged, and whether the machine was busy (the last line counts them)
    Column("judged_text", "judged"),
    Column("tolerance", "tolerance"),
    Column("statement", "statement", wrap=True),
]
MD_COLUMNS = COLUMNS + [Column("detail", "how it was measured", wrap=True)]
FAMILY_COLUMNS = [
    Column("family", "family"),
    Column("rows", "claims", kind="int"),
    Column("measured", "measured", kind="int"),
    Column("cited", "cited", kind="int"),
    Column("seconds", "seconds", kind="float"),
]
ERRATA_COLUMNS = [
    Column("id", "erratum"),
    Column("seed_text", "the seed prints"),
    Column("correct", "correct", wrap=True),
    Column("consequence", "what it changes", wrap=True),
]


def _check_plot_dir(path: Path | None) -> None:
    from cnnprof.errors import UsageError

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"--plot wants a folder, and {str(path)!r} is a file")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"--plot: cannot create {str(path)!r}: folder {str(path.parent)!r} does not exist")


def _machine(device: str) -> str:
    import torch

    from cnnprof.claims.common import device_text

    return f"{device_text(device=device)}, torch {torch.__version__}"


def family_records(results) -> list[dict]:
    """One record per family: its rows, how many measured and cited, and its seconds."""
    from cnnprof.claims import Verdict, family_seconds

    records = []
    for family, rows, seconds in family_seconds(results):
        cited = sum(r.verdict is Verdict.CITED for r in results if r.family == family)
        records.append({"family": family, "rows": rows, "measured": rows - cited, "cited": cited,
                        "seconds": round(seconds, 1)})
    return records


def claim_kind(claim) -> str:
    """What a claim costs: timed (latency, slowest), counted (built and counted) or cited."""
    return "timed" if claim.timed else "counted" if claim.measure is not None else "cited"


def progress_bar(selected: list):
    """The run's progress on stderr, ``update(done)``: a bar whose ETA is, per kind of claim, the
    measured mean seconds of those done times those left (``claim_kind``)."""
    total, eta = len(selected), counted_eta([claim_kind(c) for c in selected])

    def label(done: int) -> str:
        return f"{selected[done].id} ({claim_kind(selected[done])})" if done < total else "done"

    return counted_progress(
        columns=lambda rp: (rp.TextColumn("claim"), rp.MofNCompleteColumn(), rp.BarColumn(), rp.TimeElapsedColumn(),
                            eta_column(rp), rp.TextColumn("{task.description}")),
        fields=lambda done: {"completed": done, "total": total, "description": label(done)[:48]},
        counts=lambda done: (done, total),
        line=lambda done, elapsed: f"claim {min(done + 1, total)}/{total}: {label(done)}",
        eta=lambda done: eta(done, total),
    )
FamilyOpt = Annotated[str | None, typer.Option(
    "--family", help="Only these families (comma-separated): espnet, espnetv2, fbnet, fbnetv2, fbnetv3, "
                     "efficientnet, efficientnetv2, ghostnet, ghostnetv2, mobilenetv3.")]
PlotOpt = Annotated[Path | None, typer.Option(
    "--plot", help="Folder for the pictures (created if needed): esp-hff-gridding.png, "
                   "fbnetv2-masking-cost.png, efficientnet-compound-scaling.png, "
                   "ghostnetv2-dfc-vs-fc.png.")]
ImagesOpt = Annotated[Path | None, typer.Option(
    "--images", file_okay=False, rich_help_panel="Accuracy", help="Labelled images (as `cnnprof eval` reads "
    "them): the accuracy claims about --model become measurements on them.")]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", dir_okay=False, rich_help_panel="Accuracy",
                                                help="CSV of path,label for --images.")]
ModelOpt = Annotated[str | None, typer.Option("--model", rich_help_panel="Accuracy",
                                              help="The model --weights are for (e.g. efficientnet_b0).")]
WeightsOpt = Annotated[str | None, option("weights", rich_help_panel="Accuracy",
                                          help="Its trained weights (a state dict file, or 'package').")]


def claims_command(
    family: FamilyOpt = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 if any measured claim deviates (after printing the report).")] = False,
    plot: PlotOpt = None,
    device: DeviceOpt = "cpu",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    images: ImagesOpt = None,
    labels: LabelsOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
) -> None:
    """Check the checkable claims of the seed chapter by measuring cnnprof's own modules.

    Each run says how many it measured and how many it cites (title and last line), and how long
    each family took.

    One row per claim: the expected figure (from the seed or the paper behind it), the measured
    one with its 95% interval where it has one (timings, seeds), the tolerance and the verdict:
    holds / deviates (a measurement that could have gone either way), inconclusive (its interval
    straddles the tolerance), identity (the value follows from how the module is built: a
    consistency check, counted apart) or cited (not measurable here: accuracy, trained feature
    maps, unverified figures; with the reason; with --model, --weights and --images the accuracy
    claims about that model are measured on those images: top-1 in fp32 PyTorch eager, its 95%
    interval judged against the claim's tolerance). Timed rows name the device and the clock, and
    "judged" says which interval the verdict looked at: "raw 95% CI" on a quiet machine, or
    "widened xN, busy" where other processes competed (x1.05 for timings on the thread CPU clock,
    which they do not stretch; x1.25 on the wall clock; x1.2 for FBNet's additivity ratio).
    --format md writes a
    readable report grouped by family (the seed's words, formula, measurement, verdict, device,
    how it was measured) with the seed's errata; json/csv give every field. Timings run on this
    machine's CPU at one thread (--device cuda times the training steps on the GPU); the whole
    run takes one and a half to three minutes on a 2-core machine.

    Examples:

      cnnprof claims

      cnnprof claims --family espnet,espnetv2,fbnetv2 --plot claims-plots

      cnnprof claims --format md --output claims.md

      cnnprof claims --format json --output claims.json --strict

      cnnprof claims --family efficientnet --model efficientnet_b0 --weights b0.pth --images val/
    """
    from cnnprof import claims as registry
    from cnnprof.claims.errata import errata
    from cnnprof.cli import stored
    from cnnprof.errors import CheckFailed
    from cnnprof.rows import RowKind

    _check_device(device)
    families = registry.parse_families(family)
    check_writable(output)
    _check_plot_dir(plot)
    selected = registry.select(registry.all_claims(), families)
    recorder = stored.recorder("claims", db, no_db, outputs=[output])
    from cnnprof.claims.accuracy import evaluate_for_claims, measured

    accuracy = evaluate_for_claims(model, weights, images, labels)  # before the claims: bad input fails at once
    with progress_bar(selected) as update:
        update(0)  # the bar's total at once, while torch loads
        run = registry.run_claims(selected, on_count=update, device=device)
    if accuracy is not None:
        run.results[:] = measured(run.results, accuracy, str(images))
    fixes = [e for e in errata() if families is None or e.family in families]
    _report(run, fixes, fmt=fmt, output=output, device=device)
    recorder.save(run.results, kind=RowKind.CLAIM, extra={"device": device})
    _draw(run.plots, plot)
    say(f"{run.coverage()}; {run.summary()}")
    _say_widened(run.results)
    if strict and run.deviating:
        ids = ", ".join(r.id for r in run.deviating)
        raise CheckFailed(f"--strict: {len(run.deviating)} measured claim(s) deviate: {ids}")


def _check_device(device: str) -> None:
    from cnnprof.errors import UsageError

    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available on this machine")


def _draw(plots, folder: Path | None) -> None:
    """The run's pictures into ``folder`` (created), each named on stderr."""
    if folder is None or not plots:
        return
    folder.mkdir(exist_ok=True)
    for p in plots:
        p.draw(folder / p.filename)
        say(f"wrote {folder / p.filename}")


def _report(run, fixes, *, fmt: Format, output: Path | None, device: str) -> None:
    """The markdown document (--format md, or a .md --output), else the rows: on a terminal with
    the seconds per family and the errata, else as --format asks."""
    from cnnprof import claims as registry
    from cnnprof.claims.document import format_value, interval_text, markdown
    from cnnprof.claims.errata import ERRATA_FIELDS

    if fmt == Format.md or (fmt == Format.table and output is not None and Path(output).suffix.lower() == ".md"):
        text = markdown(run.results, fixes, machine=_machine(device))
        if output is None:
            data_stream().write(text)
        else:
            write_atomic(output, text)
        return
    records = []
    for r in run.results:
        rec = r.to_dict()
        rec["verdict_text"] = r.verdict_text
        rec["expected_text"] = format_value(r.expected, r.unit)
        rec["measured_text"] = format_value(r.measured, r.unit)
        rec["interval_text"] = interval_text(r)
        rec["judged_text"] = r.judged_text
        records.append(rec)
    if fmt != Format.table or output is not None:
        emit(records, columns=MD_COLUMNS, fmt=fmt, output=output, fields=registry.RESULT_FIELDS)
        return
    emit(records, columns=COLUMNS, title=f"{run.coverage()}, on this machine "
         "(--format md for a report with the seed's words and how each was measured)")
    emit(family_records(run.results), columns=FAMILY_COLUMNS,
         title=f"seconds per family ({sum(r.seconds for r in run.results):.1f} s in all)")
    if fixes:
        emit(fixes, columns=ERRATA_COLUMNS, title="errata: formulas the seed prints wrongly (not claims)",
             fields=ERRATA_FIELDS)


def _say_widened(results) -> None:
    """On stderr: how many rows were judged on a widened interval, and how many of them timed busy."""
    widened = [r for r in results if r.judged.startswith("widened")]
    if widened:
        busy = sum(bool(r.busy) for r in widened)
        say(f"{len(widened)} of the {sum(bool(r.judged) for r in results)} rows with an interval were judged on "
            f"their interval widened, {busy} of them timed on a busy machine (the judged column and field say why "
            "and by how much)")
