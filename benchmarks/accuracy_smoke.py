"""A smoke test of ``cnnprof eval`` end to end on trained weights: scikit-image's packaged photos,
labelled with the ImageNet class each clearly shows, evaluated with the packaged
EfficientNet-Lite0 weights through every backend and precision. Four photos are not an accuracy
figure: the run shows that the rows come out (top-1/top-5, intervals, drop, agreement) and that
the trained network, its ONNX export and its int8 copies see what the photos show.

The photos and their labels (ImageNet-1k class index and name):

* ``chelsea``: an orange striped cat -> 281 tabby (the striped domestic cat; the other cat classes,
  282-285, are neighbours a top-5 may hold);
* ``coffee``: a cup of coffee on a saucer, seen from above -> 967 espresso (ImageNet's class for a
  cup of coffee; 968 "cup" would be the other defensible label);
* ``camera``: a man photographing with a camera on a tripod (grey-scale: converted to RGB as timm
  does) -> 872 tripod (the most prominent object that is an ImageNet class; no "person" class);
* ``rocket``: a rocket on its launch pad. ImageNet has no "rocket": it is labelled 657 missile, the
  nearest class, and said so in the report.

Left out: ``astronaut`` (no ImageNet class for a person or a space suit), ``stereo_motorcycle``
(ImageNet has moped and motor scooter, not a motorcycle), ``clock`` (too blurred to show a clock
face), and the rest (textures, micrographs, drawings).

int8 is calibrated on real images set apart from the evaluated ones (``--calibration``, default 1
of the 4); ``eval`` reads one folder, so the set-apart photo is named and not evaluated by any
row, int8 or not.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/accuracy_smoke.py [--docs docs/accuracy.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from docblock import add_option, captured

DOCS_PAGE = "docs/accuracy.md"
DOCS_BLOCKS = ("accuracy-smoke",)
MODEL = "efficientnet_lite0"
PHOTOS = {  # scikit-image photo -> (ImageNet class index, its name)
    "chelsea": (281, "tabby"),
    "coffee": (967, "espresso"),
    "camera": (872, "tripod"),
    "rocket": (657, "missile (ImageNet has no rocket: the nearest class)"),
}


def write_photos(folder: Path) -> None:
    """The photos as PNG files in class-index folders (lossless: the pixels scikit-image ships)."""
    from PIL import Image
    from skimage import data

    for name, (label, _) in PHOTOS.items():
        path = folder / str(label) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(data, name)()).save(path)


def pct(x) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def top1_classes(samples) -> str:
    """Each photo's top-1 class in fp32 PyTorch eager, preprocessed as eval does."""
    import numpy as np
    import torch

    from cnnprof.eval import default_preprocess
    from cnnprof.imagefolder import decode
    from cnnprof.targets import resolve_targets

    target = resolve_targets([MODEL], weights="package")[0]
    model, pre = target.build(), default_preprocess(target, target.input)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack([decode(s, pre) for s in samples])))
    return ", ".join(f"{s.path.stem} {int(c)}" for s, c in zip(samples, logits.argmax(1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=1, help="photos set apart for int8 (default: 1)")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    with captured(args.docs, "accuracy-smoke"):
        return run(args)


def run(args) -> int:
    from cnnprof.eval import calibration_split
    from cnnprof.imagefolder import scan

    with tempfile.TemporaryDirectory(prefix="cnnprof-accuracy-smoke-") as tmp:
        folder = Path(tmp) / "photos"
        write_photos(folder)
        samples, _ = scan(folder, classes=1000)
        evaluated, calib = calibration_split(samples, args.calibration, True)
        command = ["eval", MODEL, "--weights", "package", "--images", "DIR", "--backend",
                   "torch,onnxruntime,openvino", "--precision", "fp32,int8", "--calibration", str(args.calibration)]
        argv = [str(folder) if c == "DIR" else c for c in command] + ["--no-db", "--format", "json"]
        proc = subprocess.run([sys.executable, "-c", "from cnnprof.cli import main; main()", *argv],
                              capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            print(f"cnnprof eval exited {proc.returncode}", file=sys.stderr)
            return proc.returncode
        rows = json.loads(proc.stdout)
        print(f"**A smoke test on {len(evaluated)} photos, not an accuracy figure.** `cnnprof {' '.join(command)}` "
              "on a folder of scikit-image's photos written by this script: "
              + "; ".join(f"{name} labelled {label} {what}" for name, (label, what) in PHOTOS.items()) + ". "
              f"Set apart for int8 calibration (and evaluated by no row): "
              f"{', '.join(s.path.stem for s in calib)}; evaluated: {', '.join(s.path.stem for s in evaluated)}. "
              f"fp32 PyTorch's top-1 class of each: {top1_classes(evaluated)}. With {len(evaluated)} images a "
              "95% interval spans most of 0-100%. Weights: " + rows[0]["weights"] + ".\n")
        print("| backend | precision | images | top-1 (95% interval) | top-5 | top-1 drop | top-1 agreement |")
        print("|---|---|---:|---|---:|---:|---:|")
        for r in rows:
            if r.get("error"):
                print(f"| {r['backend']} | {r['precision']} | | error: {r['error']} | | | |")
                continue
            print(f"| {r['backend']} | {r['precision']} | {r['images']} | {pct(r['top1'])} "
                  f"({pct(r['top1_low'])}-{pct(r['top1_high'])}) | {pct(r['top5'])} | {pct(r['top1_drop'])} | "
                  f"{pct(r['top1_agreement'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
