"""``cnnprof eval``: top-1 / top-5 of a model on the user's labelled images, per backend and
precision, each against fp32 PyTorch eager on the same images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnnprof.cli.options import (
    option,
    DEFAULT_DB,
    BackendOpt,
    DbOpt,
    DeviceOpt,
    ForceOpt,
    FormatOpt,
    NoDbOpt,
    OutputOpt,
    PrecisionOpt,
    ThreadsOpt,
)
from cnnprof.report import Column, Format, emit

PANEL = "Images and preprocessing"
COLUMNS = [
    Column("model", "model", priority=0),
    Column("weights", "weights", priority=3),
    Column("backend", "backend", priority=0),
    Column("precision", "precision", priority=0),
    Column("images", "images", "int", priority=1),
    Column("top1", "top-1", "pct", priority=0),
    Column("top1_low", "top-1 low", "pct", priority=2),
    Column("top1_high", "top-1 high", "pct", priority=2),
    Column("top5", "top-5", "pct", priority=1),
    Column("top1_drop", "top-1 drop", "pct", priority=1),
    Column("top1_agreement", "top-1 agree", "pct", priority=1),
    Column("images_per_s", "images/s", "float", priority=3),
    Column("calibration_images", "calib.", "int", priority=3),
    Column("crop_pct", "crop", "float", priority=3),
    Column("interpolation", "interp.", priority=3),
    Column("warnings", "warnings", wrap=True, priority=3),
    Column("error", "error", wrap=True, priority=1),
]

WeightsOpt = Annotated[
    Optional[str], option("weights", help="The model's weights: random, a .pt/.pth/.safetensors state dict, "
                                "or 'package' (an installed weights package). Default: random.")
]


ImagesOpt = Annotated[Path, typer.Option(
    "--images", help="Folder of labelled images: class sub-folders named by WordNet id (n02123045) or class index "
    "(281), or any layout with --labels.", file_okay=False, rich_help_panel=PANEL)]
LabelsOpt = Annotated[Optional[Path], typer.Option(
    "--labels", help="CSV of path,label (path relative to --images; label a class index or WordNet id).",
    dir_okay=False, rich_help_panel=PANEL)]
CalibrationOpt = Annotated[int, typer.Option(
    "--calibration", "--calibration-samples", min=1,
    help="int8: images of the folder set apart (never evaluated) to calibrate activation ranges on.")]
CropPctOpt = Annotated[Optional[float], typer.Option(
    "--crop-pct", rich_help_panel=PANEL, help="Center crop as a share of the resized shorter side (timm's "
    "crop_pct); default: the model's published value (0.875 for most; EfficientNet: size/(size+32)).")]
InterpolationOpt = Annotated[Optional[str], typer.Option(
    "--interpolation", rich_help_panel=PANEL, help="bilinear, bicubic or nearest; default: the model's "
    "published one.")]
MeanOpt = Annotated[Optional[str], typer.Option(
    "--mean", rich_help_panel=PANEL,
    help="R,G,B on the 0..1 scale; default: the model's (ImageNet's 0.485,0.456,0.406 for most).")]
StdOpt = Annotated[Optional[str], typer.Option(
    "--std", rich_help_panel=PANEL, help="R,G,B; default: the model's (ImageNet's 0.229,0.224,0.225 for most).")]
SkipBadOpt = Annotated[bool, typer.Option(
    "--skip-bad", rich_help_panel=PANEL, help="Evaluate the readable images and name the unreadable ones "
    "(default: one unreadable image stops the run).")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", min=0, max=64, rich_help_panel=PANEL,
    help="Processes decoding images while the model runs (0: decode in this process, one image after another).")]


def _floats(text: Optional[str], what: str) -> Optional[tuple[float, ...]]:
    from cnnprof.errors import UsageError

    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"{what} needs three numbers R,G,B (e.g. 0.485,0.456,0.406), got {text!r}") from None


def eval_command(
    model: Annotated[str, typer.Argument(help="A classifier: a registered name (see `cnnprof list`) or a user model.")],
    images: ImagesOpt,
    labels: LabelsOpt = None,
    weights: WeightsOpt = None,
    backend: BackendOpt = "torch",
    precision: PrecisionOpt = "fp32",
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = "1",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, max=1024, help="Images per call.")] = 1,
    calibration: CalibrationOpt = 32,
    calibration_method: Annotated[str, typer.Option(
        "--calibration-method", help="int8 calibration: minmax, entropy or percentile.")] = "minmax",
    crop_pct: CropPctOpt = None,
    interpolation: InterpolationOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    skip_bad: SkipBadOpt = False,
    workers: WorkersOpt = 2,
    force: ForceOpt = False,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDbOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Accuracy as deployed: top-1 and top-5 (95% Wilson intervals) on your labelled images, for
    every backend and precision, each with its top-1 drop and top-1 agreement against fp32
    PyTorch eager on the same images.

    Images are preprocessed as timm's validate.py does (resize the shorter side to size/crop-pct,
    center crop, normalise; grey, palette and RGBA images converted to RGB); every setting is
    recorded in the row. int8 is the static QDQ quantisation bench times, calibrated on
    --calibration images of the folder that are then left out of every row's evaluation. With
    random weights (the default) the figures are those of an untrained network: give --weights.
    See docs/accuracy.md.

    Examples:

      cnnprof eval mobilenetv3_small --weights mnv3.pth --images val/

      cnnprof eval efficientnet_b0 --weights b0.pt --images val/ --backend torch,onnxruntime -p fp32,int8

      cnnprof eval efficientnet_b0 --weights b0.pt --images photos/ --labels labels.csv --crop-pct 1.0
    """
    from cnnprof import eval as evaluation
    from cnnprof.bench import configurations
    from cnnprof.cli import options, stored
    from cnnprof.cli.timed import collect, fail_on_error_rows, say_precision_context
    from cnnprof.files import check_writable
    from cnnprof.store.columns import Kind
    from cnnprof.targets import resolve_targets
    from cnnprof.timing.quantize import QuantOptions

    check_writable(output)
    backends, all_backends = options.parse_backends(backend)
    precisions, all_precisions = options.parse_precisions(precision)
    method = QuantOptions(method=calibration_method.strip().lower()).check().method
    # several pairs: those that cannot run here are left out and said why (torch has no int8)
    only_runnable = all_backends or all_precisions or len(backends) * len(precisions) > 1
    _, skipped = configurations(backends, precisions, device=device, force=force, only_runnable=only_runnable)
    n_threads = options.parse_threads(threads)
    target = resolve_targets([model], weights=weights)[0]
    pre = _preprocess(target, crop_pct, interpolation, mean, std)
    recorder = stored.recorder("eval", db, no_db, outputs=[output])
    say_precision_context(precisions, skipped, device)
    rows, interrupted = collect(lambda update: evaluation.evaluate(
        target, images, labels=labels, backends=backends, precisions=precisions, device=device, threads=n_threads,
        batch=batch, calibration=calibration, method=method, preprocess=pre, skip_bad=skip_bad,
        workers=workers, force=force, only_runnable=only_runnable, on_progress=update))
    if rows:
        _report(rows, images, fmt, output, interrupted)
        recorder.save(rows, kind=Kind.EVAL, partial=interrupted, threads=n_threads)
    if interrupted:
        raise SystemExit(130)
    fail_on_error_rows(rows)


def _preprocess(target, crop_pct: Optional[float], interpolation: Optional[str], mean: Optional[str],
                std: Optional[str]):
    """The model's published preprocessing with what the command line changed (checked)."""
    from cnnprof import eval as evaluation
    from cnnprof.imagefolder import Preprocess

    base = evaluation.default_preprocess(target, target.input)
    given = any(v is not None for v in (crop_pct, interpolation, mean, std))
    pre = Preprocess(base.size, base.crop_pct if crop_pct is None else crop_pct,
                     base.interpolation if interpolation is None else interpolation.strip().lower(),
                     _floats(mean, "--mean") or base.mean, _floats(std, "--std") or base.std,
                     f"{base.source}; changed on the command line" if given else base.source)
    pre.check()
    return pre


def _report(rows, images: Path, fmt: Format, output: Optional[Path], interrupted: bool) -> None:
    """The rows as a table (or ``--format``) and each row's warnings on stderr."""
    from cnnprof import eval as evaluation
    from cnnprof.cli.common import say_warnings

    emit([r.to_dict() for r in rows], columns=COLUMNS, fmt=fmt, output=output,
         fields=evaluation.EvalRow.field_names(), partial=interrupted,
         title=f"accuracy on {rows[0].images or 0} image(s) of {images}")
    for r in rows:
        say_warnings(f"{r.model} ({r.backend} {r.precision})", r.warnings)
