"""Accuracy as deployed: top-1 and top-5 of a model on the user's labelled images, for every
backend and precision it runs on, each against fp32 PyTorch eager on the same images.

``evaluate`` builds the model once (its weights from ``--weights``; batch norms are calibrated
only for random weights), scans the folder (``cnnprof.imagefolder``), sets ``calibration``
images apart for int8 when int8 is asked (they are never evaluated; real images, not synthetic
ones), decodes the rest once in worker processes while fp32 PyTorch eager (the reference) runs on
them, keeps the decoded images in a memory-mapped file, and runs every other configuration on
those through the same runners ``bench`` times (``timing.make_runner``: the ONNX export, its int8
QDQ copy, ONNX Runtime, OpenVINO, TensorRT). A row gives top-1 and top-5 with 95% Wilson
intervals over its images, the drop of top-1 against the reference (points, as a fraction) and
the share of images whose top-1 class is the reference's. A configuration that fails is that
row's error when several are asked; the others go on.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.imagefolder import IMAGENET_MEAN, IMAGENET_STD, BadImage, Preprocess, Sample, decode, scan
from cnnprof.rows import Note, Notes, Row
from cnnprof.targets import Target, running

Progress = Callable[[str], None]
Z95 = 1.959963984540054
CALIBRATION_IMAGES = 32
SPLIT_SEED = 0
TF_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)  # EfficientNet-Lite: (x - 127) / 128 on 0..255
TF_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


@dataclass(frozen=True)
class EvalRow(Row):
    """One model x backend x precision evaluated on labelled images."""

    model: str
    family: str = ""
    weights: str = ""  # random, a file's name and digest, or a package
    input: str = ""  # CxHxW
    batch: int = 1
    backend: str = ""
    device: str = ""
    threads: int | None = None
    precision: str = ""
    images: int | None = None  # evaluated (calibration images and skipped ones excluded)
    top1: float | None = None  # share of images, 0..1
    top1_low: float | None = None  # 95% Wilson interval
    top1_high: float | None = None
    top5: float | None = None  # None with 5 classes or fewer (it would always be 1)
    top5_low: float | None = None
    top5_high: float | None = None
    top1_drop: float | None = None  # fp32 PyTorch eager's top-1 minus this row's (positive: lost)
    top1_agreement: float | None = None  # share of images whose top-1 class is fp32 PyTorch eager's
    crop_pct: float | None = None
    interpolation: str = ""
    resize: int | None = None  # the shorter side before the center crop
    mean: str = ""  # R,G,B
    std: str = ""
    preprocess_source: str = ""
    labels: str = ""
    calibration_images: int | None = None  # int8 rows: images of the folder set apart to calibrate on
    skipped_images: int | None = None  # unreadable ones (only with --skip-bad)
    seconds: float | None = None  # this configuration's pass over the images (the first: decoding too)
    images_per_s: float | None = None
    decode_s: float | None = None  # seconds spent decoding, summed over the workers (the first pass only)
    warnings: Notes = Notes()
    error: str = ""


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion k/n."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def default_preprocess(target: Target, shape: Sequence[int]) -> Preprocess:
    """The model's published evaluation transform at ``shape`` (C, H, W)."""
    size = (int(shape[1]), int(shape[2]))
    name, family = target.name, target.family
    if "lite" in name and family.startswith("efficientnet"):
        # tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py (MEAN_RGB 127, STDDEV_RGB 128);
        # preprocessing.py: center crop of image_size / (image_size + 32), bicubic
        return Preprocess(size, round(min(size) / (min(size) + 32), 4), "bicubic", TF_MEAN, TF_STD,
                          "EfficientNet-Lite (tensorflow/tpu): crop size/(size+32), bicubic, (x-127)/128")
    if family == "efficientnetv2":
        return Preprocess(size, 1.0, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                          "EfficientNetV2 (timm tf_efficientnetv2_*): no crop, bicubic, mean/std 0.5")
    if family == "efficientnet":
        return Preprocess(size, round(min(size) / (min(size) + 32), 4), "bicubic", IMAGENET_MEAN, IMAGENET_STD,
                          "EfficientNet (tensorflow/tpu preprocessing.py: CROP_PADDING 32), bicubic, ImageNet mean/std")
    if family == "fbnetv3":
        return Preprocess(size, 0.95, "bicubic", IMAGENET_MEAN, IMAGENET_STD, "FBNetV3 (timm fbnetv3_*): crop 0.95, "
                          "bicubic, ImageNet mean/std")
    return Preprocess(size, 0.875, "bilinear", IMAGENET_MEAN, IMAGENET_STD,
                      "resize 256 / crop 224 (0.875), bilinear, ImageNet mean/std (timm's and torchvision's default)")


def _load(target: Target, shape: Sequence[int]):
    """The model to evaluate and where its weights come from, built as every command builds it
    (``Target.build``): the target's weights (``with_weights``: a file or a package) loaded with
    nothing calibrated, else a registered model's random weights with its batch norms calibrated
    at ``shape``, or a user's model as its factory returns it."""
    model = target.build(shape=shape)
    if target.weights != "random":
        return model, target.weights_label
    return model, ("random" if target.spec is not None else "factory")


class Decoded:
    """The evaluated images, decoded once into a memory-mapped file of the run (image ``i`` at
    row ``i``) by ``workers`` worker processes (``imagefolder.decode_into``; 0: in this thread).
    Processes, not threads: decoding threads hold the GIL between their C calls, and every
    operator of the model waits for it (200 images beside MobileNetV3-Small took 9.5 s in a thread
    pool against 7.0 s one after the other)."""

    def __init__(self, samples: Sequence[Sample], pre: Preprocess, shape, *, folder: Path, workers: int,
                 skip_bad: bool):
        import numpy as np

        self.samples, self.pre, self.workers, self.skip_bad = list(samples), pre, workers, skip_bad
        self.path = folder / "images.npy"
        self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32,
                                               shape=(len(self.samples), *shape))
        self.array.flush()
        self.kept: list[int] = []  # the readable images, in order
        self.bad: list[str] = []
        self.decode_s = 0.0

    @property
    def count(self) -> int:
        return len(self.kept)

    @property
    def labels(self) -> list[int]:
        return [self.samples[i].label for i in self.kept]

    def _results(self) -> Iterator[tuple[int, str, float]]:
        """(index, why it is unreadable or "", seconds) of each image, in order, as decoded."""
        from cnnprof.imagefolder import decode_into

        if self.workers < 1:
            for i, sample in enumerate(self.samples):
                yield decode_into(i, sample, self.pre, self.array)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        from cnnprof.imagefolder import decode_into_file, open_file

        # forked: a worker needs nothing but PIL and numpy (no OpenMP, no torch), and a fork neither
        # re-imports nor re-runs the caller's script (spawn would, in a script without a main guard)
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=open_file, initargs=(str(self.path),))
        pending: deque = deque()
        todo = iter(enumerate(self.samples))
        try:
            for i, sample in todo:
                pending.append(pool.submit(decode_into_file, i, sample, self.pre))
                if len(pending) >= 8 * self.workers:
                    break
            while pending:
                try:
                    result = pending.popleft().result()
                except BrokenProcessPool:
                    raise CnnprofError("a process decoding the images ended abruptly (out of memory?); "
                                       "--workers 0 decodes in this process") from None
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(decode_into_file, nxt[0], nxt[1], self.pre))
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def stream(self) -> Iterator:
        """Each readable image's array, in order, as it is decoded."""
        for i, why, spent in self._results():
            if why:
                if not self.skip_bad:
                    raise UsageError(f"unreadable image {why} (--skip-bad evaluates the others)")
                self.bad.append(why)
                continue
            self.decode_s += spent
            self.kept.append(i)
            yield self.array[i]

    def stored(self, batch: int) -> Iterator:
        for i in range(0, self.count, batch):
            yield self.array[self.kept[i:i + batch]]


def _batched(arrays: Iterator, batch: int) -> Iterator:
    import numpy as np

    chunk = []
    for x in arrays:
        chunk.append(x)
        if len(chunk) == batch:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def _predict(runner, batches: Iterator, batch: int, on_batch: Callable[[int], None]):
    """Top-5 class indices (best first) of every image; a short last batch is padded with zeros."""
    import numpy as np

    out = []
    for xb in batches:
        n = len(xb)
        if n < batch:
            xb = np.concatenate([xb, np.zeros((batch - n, *xb.shape[1:]), dtype=np.float32)])
        logits = np.asarray(runner.infer(np.ascontiguousarray(xb, dtype=np.float32)), dtype=np.float32)[:n]
        if logits.ndim != 2:
            raise UsageError(f"the model's output has shape {tuple(logits.shape)}: eval scores classifiers "
                             "(one score per class) only")
        k = min(5, logits.shape[1])
        out.append(np.argsort(-logits, axis=1, kind="stable")[:, :k])
        on_batch(n)
    return np.concatenate(out) if out else np.zeros((0, 5), dtype=np.int64)


def calibration_split(samples: list[Sample], calibration: int, needed: bool) -> tuple[list[Sample], list[Sample]]:
    """(evaluated, calibration): with int8, ``calibration`` images drawn with a fixed seed."""
    if not needed:
        return samples, []
    if calibration >= len(samples):
        raise UsageError(f"--calibration {calibration}: the folder holds {len(samples)} image(s); at least one "
                         "must be left to evaluate")
    import numpy as np

    chosen = set(np.random.default_rng(SPLIT_SEED).permutation(len(samples))[:calibration].tolist())
    return ([s for i, s in enumerate(samples) if i not in chosen], [s for i, s in enumerate(samples) if i in chosen])


def evaluate(target: Target, images: str | Path, *, labels: str | Path | None = None,
             backends: Sequence[str] = ("torch",), precisions: Sequence[str] = ("fp32",), device: str = "cpu",
             threads: int = 1, batch: int = 1, calibration: int = CALIBRATION_IMAGES, method: str = "minmax",
             preprocess: Preprocess | None = None, skip_bad: bool = False,
             workers: int = 4, force: bool = False, only_runnable: bool = False,
             onnx_dir: str | None = None, on_progress: Progress | None = None) -> Iterator[EvalRow]:
    """Evaluate ``target`` on the labelled images of ``images`` for every backend x precision, with
    the target's weights (``targets.resolve_targets(..., weights=...)`` or ``Target.with_weights``)."""
    import numpy as np

    from cnnprof import timing
    from cnnprof.bench import configurations
    from cnnprof.timing.quantize import QuantOptions

    say = on_progress or (lambda _: None)
    configs, _ = configurations(backends, precisions, device=device, force=force, only_runnable=only_runnable)
    shape = tuple(target.input)
    pre = (preprocess or default_preprocess(target, shape)).check()
    if tuple(pre.size) != tuple(shape[1:]):
        raise UsageError(f"preprocessing crops to {pre.size}, the model's input is {shape}")
    base = timing.TimingOptions(device=device, threads=threads, batch=batch, parity=False, force=force)
    if onnx_dir is not None:
        base = dataclasses.replace(base, onnx_dir=onnx_dir)
    reference = dataclasses.replace(base, backend="torch", precision="fp32", device="cpu")
    configs = sorted(configs, key=lambda c: not dataclasses.replace(base, backend=c[0], precision=c[1]).is_reference)
    say(f"{target.name}: building")
    model, weights_label = _load(target, shape)
    example = timing.example_input(batch, shape)
    with timing.torch_threads(threads):
        ref_runner = timing.make_runner(model, example, reference, target.name)
        out = np.asarray(ref_runner.infer(example.numpy()))
    if out.ndim != 2:
        raise UsageError(f"{target.name}'s output has shape {tuple(out.shape)}: eval scores classifiers (one score "
                         "per class) only")
    classes = int(out.shape[1])
    samples, how = scan(images, classes=classes, labels=labels)
    needs_int8 = any(str(p) == "int8" for _, p in configs)
    evaluated, calib = calibration_split(samples, calibration, needs_int8)
    common = dict(model=target.name, family=target.family, weights=weights_label, input="x".join(map(str, shape)),
                  batch=batch, device=device, threads=threads, crop_pct=pre.crop_pct, interpolation=pre.interpolation,
                  resize=pre.resize, mean=",".join(f"{v:g}" for v in pre.mean),
                  std=",".join(f"{v:g}" for v in pre.std), preprocess_source=pre.source, labels=how)
    with tempfile.TemporaryDirectory(prefix="cnnprof-eval-") as tmp:
        folder = Path(tmp)
        data = Decoded(evaluated, pre, shape, folder=folder, workers=workers, skip_bad=skip_bad)
        done = [0]

        def tick(n: int, what: str) -> None:
            done[0] += n
            say(f"{target.name}: {what}: {done[0]}/{len(evaluated)} images")

        t0 = time.perf_counter()
        with timing.torch_threads(threads):
            ref_top = _predict(ref_runner, _batched(data.stream(), batch), batch, lambda n: tick(n, "fp32 torch"))
        ref_seconds = time.perf_counter() - t0
        if data.count == 0:
            raise UsageError(f"none of the {len(evaluated)} images of {images} could be read")
        truth = np.asarray(data.labels)
        ref_top1 = float(np.mean(ref_top[:, 0] == truth))
        quant = QuantOptions(method=method, samples=max(1, len(calib)),
                             images=_calibration_file(calib, pre, shape, folder, workers, skip_bad) if calib else None)
        notes = [Note.tagged("images", f"{len(data.bad)} unreadable image(s) skipped: {'; '.join(data.bad[:3])}")] \
            if data.bad else []
        if weights_label == "random":
            notes.append(Note.tagged("weights", "random weights: the accuracy of an untrained network "
                                                "(give --weights)"))
        for backend, precision in configs:
            opts = dataclasses.replace(base, backend=backend, precision=precision, quant=quant)
            row = EvalRow(**common, backend=backend, precision=precision, skipped_images=len(data.bad),
                          calibration_images=len(calib) if str(precision) == "int8" else None, warnings=Notes(notes))
            if opts.is_reference:
                top, seconds, decode_s = ref_top, ref_seconds, data.decode_s
            else:
                done[0] = 0
                try:
                    say(f"{target.name}: preparing {backend} {precision}")
                    with running(target.name), timing.torch_threads(threads):
                        runner = timing.make_runner(copy.deepcopy(model), example, opts, target.name)
                        t0 = time.perf_counter()
                        top = _predict(runner, data.stored(batch), batch, lambda n: tick(n, f"{backend} {precision}"))
                        seconds, decode_s = time.perf_counter() - t0, None
                except CnnprofError as exc:
                    if len(configs) == 1:
                        raise
                    yield dataclasses.replace(row, error=str(exc))
                    continue
            yield _scored(row, top, truth, ref_top, ref_top1, seconds, decode_s, classes)


def _calibration_file(samples, pre, shape, folder: Path, workers: int, skip_bad: bool) -> str:
    """The calibration images, decoded into a ``.npy`` file that int8 quantisation reads."""
    import numpy as np

    part = folder / "calibration"
    part.mkdir()
    data = Decoded(samples, pre, shape, folder=part, workers=workers, skip_bad=skip_bad)
    for _ in data.stream():
        pass
    if data.count == 0:
        raise UsageError("none of the calibration images could be read")
    path = folder / "calibration.npy"
    np.save(path, np.asarray(data.array[data.kept]))
    return str(path)


def _scored(row: EvalRow, top, truth, ref_top, ref_top1: float, seconds: float, decode_s: float | None,
            classes: int) -> EvalRow:
    import numpy as np

    n = len(truth)
    k1 = int(np.sum(top[:, 0] == truth))
    k5 = int(np.sum(np.any(top == truth[:, None], axis=1)))
    low1, high1 = wilson(k1, n)
    five = classes > 5
    low5, high5 = wilson(k5, n) if five else (None, None)
    warnings = list(row.warnings)
    if not five:
        warnings.append(Note.tagged("top-5", f"the model has {top.shape[1]} classes: top-5 would always be 100%"))
    return dataclasses.replace(
        row, images=n, top1=k1 / n, top1_low=low1, top1_high=high1, top5=k5 / n if five else None,
        top5_low=low5, top5_high=high5, top1_drop=ref_top1 - k1 / n,
        top1_agreement=float(np.mean(top[:, 0] == ref_top[:, 0])), seconds=seconds,
        images_per_s=n / seconds if seconds > 0 else None, decode_s=decode_s, warnings=Notes(warnings))
