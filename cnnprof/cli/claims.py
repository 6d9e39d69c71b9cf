"""``cnnprof claims``: every quantitative claim of the seed chapter, checked by measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnprof.cli.common import progress
from cnnprof.cli.options import DEFAULT_DB, DbOpt, DeviceOpt, FormatOpt, NoDbOpt, OutputOpt
from cnnprof.files import check_writable
from cnnprof.report import Column, Format, emit
from cnnprof.terminal import say

COLUMNS = [
    Column("id", "id"),
    Column("verdict", "verdict"),
    Column("expected_text", "expected"),
    Column("measured_text", "measured"),
    Column("tolerance", "tolerance"),
    Column("statement", "statement", wrap=True),
]
MD_COLUMNS = COLUMNS + [Column("detail", "how it was measured", wrap=True)]


def format_value(value: float | None, unit: str) -> str:
    """A claim's number for the terminal, in its unit (files keep the exact number)."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.4g}x"
    if unit == "MACs":
        return f"{value / 1e6:.1f}M MACs"
    if unit == "params":
        return f"{value / 1e6:.4g}M params"
    if unit == "architectures":
        return f"{value:.3e}"
    if unit == "% top-1":
        return f"{value:g}% top-1"
    if unit == "relative drop":
        return f"{100 * value:.1f}%"
    if unit == "max |diff|":
        return f"{value:.2g}"
    if unit in ("exponent", "hole share", "ratio"):
        return f"{value:.3f}"
    return f"{value:.4g}"


def _check_plot_dir(path: Path | None) -> None:
    from cnnprof.errors import UsageError

    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"--plot wants a folder, and {str(path)!r} is a file")
    if not path.exists() and not path.parent.is_dir():
        raise UsageError(f"--plot: cannot create {str(path)!r}: folder {str(path.parent)!r} does not exist")


def claims_command(
    family: Annotated[str | None, typer.Option(
        "--family", help="Only these families (comma-separated): espnet, espnetv2, fbnet, fbnetv2, efficientnet, "
                         "efficientnetv2, ghostnet, ghostnetv2, mobilenetv3.")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 if any measured claim deviates (after printing the report).")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Folder for the pictures (created if needed): esp-hff-gridding.png, "
                       "fbnetv2-masking-cost.png, efficientnet-compound-scaling.png, "
                       "ghostnetv2-dfc-vs-fc.png.")] = None,
    device: DeviceOpt = "cpu",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
) -> None:
    """Check every quantitative claim of the seed chapter by measuring cnnprof's own modules.

    One row per claim: the expected figure (from the seed or the paper it cites), the measured one,
    the tolerance and the verdict: holds, deviates, or cited (accuracy and anything else that
    cannot be measured offline, with the reason). --format json/csv/md adds the source and a
    detail saying how each figure was measured. Timing claims (FBNet additivity, EfficientNetV2)
    use short interleaved protocols on this machine's CPU, one thread (--device cuda times the
    EfficientNetV2 training steps on the GPU); the whole run takes one to two minutes on a 2-core
    machine.

    Examples:

      cnnprof claims

      cnnprof claims --family espnet,espnetv2,fbnetv2 --plot claims-plots

      cnnprof claims --format json --output claims.json --strict
    """
    from cnnprof import claims as registry
    from cnnprof.cli import stored
    from cnnprof.errors import CheckFailed, UsageError
    from cnnprof.store.columns import Kind

    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available on this machine")
    families = registry.parse_families(family)
    check_writable(output)
    _check_plot_dir(plot)
    selected = registry.select(registry.all_claims(), families)
    recorder = stored.recorder("claims", db, no_db, outputs=[output])
    with progress() as update:
        run = registry.run_claims(selected, on_progress=update, device=device)
    records = []
    for r in run.results:
        rec = r.to_dict()
        rec["expected_text"] = format_value(r.expected, r.unit)
        rec["measured_text"] = "cited" if r.verdict is registry.Verdict.CITED else format_value(r.measured, r.unit)
        records.append(rec)
    if fmt == Format.table and output is None:
        emit(records, columns=COLUMNS, title="claims of the seed chapter, measured on this machine "
             "(--format json for the source and how each was measured)")
    else:
        emit(records, columns=MD_COLUMNS, fmt=fmt, output=output, fields=registry.RESULT_FIELDS)
    recorder.save(run.results, kind=Kind.CLAIM, extra={"device": device})
    if plot is not None and run.plots:
        plot.mkdir(exist_ok=True)
        for p in run.plots:
            p.draw(plot / p.filename)
            say(f"wrote {plot / p.filename}")
    counts = {v: sum(r.verdict is v for r in run.results) for v in registry.Verdict}
    held, deviated, cited = (counts[v] for v in (registry.Verdict.HOLDS, registry.Verdict.DEVIATES, registry.Verdict.CITED))
    say(f"{len(run.results)} claims: {held} hold, {deviated} deviate, {cited} cited")
    if strict and run.deviating:
        ids = ", ".join(r.id for r in run.deviating)
        raise CheckFailed(f"--strict: {len(run.deviating)} measured claim(s) deviate: {ids}")
