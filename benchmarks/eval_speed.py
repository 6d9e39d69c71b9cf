"""How long ``cnnprof eval`` takes: its pass over N images against the model's batch-1 latency x N
plus the decoding, and how long int8 calibration on real images takes.

It writes N JPEG photos-to-be (smooth random colour fields with noise, 500x375 like an average
ImageNet validation image, quality 90) into class folders of a temporary folder, then measures:

* the model's batch-1 latency (torch eager, fp32, 1 thread: ``timing.time_model``, median);
* decoding: every image decoded and preprocessed once, one after another, in this process;
* ``eval.evaluate`` on the folder, torch fp32 on 1 thread, decoding in this process
  (``--workers 0``) and in ``--workers`` processes beside it: the wall time of each pass and its
  images/s (the latency is taken before and after the passes, to show how the machine drifted);
* int8 calibration: ``quantize.cached_int8`` of the model's ONNX export on ``--calibration``
  images of the folder (decoded into the ``.npy`` file eval writes), in a fresh folder (nothing
  reused).

Measured, not asserted: the machine is shared, so the figures move from run to run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/eval_speed.py --images 300 --model efficientnet_b0

``--weights`` builds the model with trained weights (as ``eval --weights`` does; default random).

``--docs PAGE`` also writes the report into PAGE's ``eval-speed`` block (docs/accuracy.md).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from docblock import add_option, captured

DOCS_PAGE = "docs/accuracy.md"
DOCS_BLOCKS = ("eval-speed",)


def write_images(folder: Path, n: int, classes: int = 10, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        pixels = np.asarray(img, dtype=np.int16) + rng.integers(-20, 21, size=(375, 500, 3), dtype=np.int16)
        path = folder / str(i % classes) / f"img{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--weights", default="random", help="random (default), a state dict file or 'package'")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    with captured(args.docs, "eval-speed"):
        return run(args)


def run(args) -> int:
    import numpy as np
    import torch

    from cnnprof import timing
    from cnnprof.eval import _calibration_file, default_preprocess, evaluate
    from cnnprof.imagefolder import decode, scan
    from cnnprof.onnx_export import cached_export
    from cnnprof.timing.quantize import QuantOptions, cached_int8
    from cnnprof.targets import resolve_targets

    torch.set_num_threads(1)
    target = resolve_targets([args.model], weights=args.weights)[0]
    shape = tuple(target.input)
    pre = default_preprocess(target, shape)
    with tempfile.TemporaryDirectory(prefix="cnnprof-eval-speed-") as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, args.images)
        model = target.build(shape=shape)

        def batch1_ms() -> tuple[float, int]:
            opts = timing.TimingOptions(threads=1, parity=False)
            lat = timing.time_model(model, shape, name=target.name, opts=opts)
            return lat.median, lat.runs

        samples, _ = scan(folder, classes=1000)
        t0 = time.perf_counter()
        for s in samples:
            decode(s, pre)
        decode_s = time.perf_counter() - t0
        before = batch1_ms()
        passes = {w: list(evaluate(target, folder, threads=1, workers=w, preprocess=pre))[0]
                  for w in (0, args.workers)}
        after = batch1_ms()
        median_ms = (before[0] + after[0]) / 2
        serial = median_ms / 1e3 * args.images
        print(f"{args.model}, {args.images} JPEG images of 500x375 -> {'x'.join(map(str, shape))} "
              f"(crop {pre.crop_pct}, {pre.interpolation}); weights {target.weights_label}; torch fp32, 1 thread, "
              f"batch 1; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end\n")
        print("| figure | value |\n|---|---|")
        print(f"| batch-1 latency, median of {before[1]} calls before and {after[1]} after the passes | "
              f"{before[0]:.2f} and {after[0]:.2f} ms (mean {median_ms:.2f}) |")
        print(f"| latency x N | {serial:.1f} s |")
        print(f"| decoding and preprocessing, one process, one after another | {decode_s:.1f} s "
              f"({decode_s / args.images * 1e3:.2f} ms an image) |")
        print(f"| latency x N + decoding | {serial + decode_s:.1f} s |")
        for w, row in passes.items():
            how = "decoding in this process (--workers 0)" if w == 0 else f"{w} decoding processes beside the model"
            print(f"| eval's pass, {how} | {row.seconds:.1f} s, {row.images_per_s:.1f} images/s, "
                  f"{row.seconds / (serial + decode_s):.3f} x (latency x N + decoding) |")
        source, _, _ = cached_export(target.build(shape=shape).eval(), timing.example_input(1, shape),
                                     name=target.name, folder=Path(tmp) / "models")
        calib = Path(tmp) / "calib"
        calib.mkdir()
        t0 = time.perf_counter()
        images = _calibration_file(samples[:args.calibration], pre, shape, calib, args.workers, False)
        decode_calib = time.perf_counter() - t0
        _, seconds, reused = cached_int8(source, QuantOptions(samples=args.calibration, images=images),
                                         folder=Path(tmp) / "int8")
        assert not reused and np.load(images).shape[0] == args.calibration
        print(f"| int8 calibration on {args.calibration} images of the folder (QDQ, minmax) | {seconds:.1f} s "
              f"(+ {decode_calib:.1f} s decoding them) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
