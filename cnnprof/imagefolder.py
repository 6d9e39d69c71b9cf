"""A user's labelled images, and the preprocessing that turns each into a model's input.

Labels come from the folder's layout or from a CSV:

* class sub-folders named by WordNet id (``n02123045/``), mapped to ImageNet-1k class indices
  through ``imagenet_classes.tsv`` (the 1000 ILSVRC-2012 synsets in sorted-id order, the order
  PyTorch's and Keras' class indices use; two public copies of Keras' ``imagenet_class_index.json``
  were checked identical before it was written here);
* class sub-folders named by class index (``0/``, ``281/``);
* ``--labels CSV`` with rows ``path,label`` (path relative to the folder; label a class index or
  a WordNet id).

Preprocessing is timm's ``validate.py`` evaluation transform: resize the shorter side to
``floor(size / crop_pct)`` with the chosen interpolation (PIL's, which filters when it shrinks),
center-crop to ``size``, scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel.
Grey-scale, palette, CMYK and RGBA images are converted to RGB first (``Image.convert("RGB")``,
as timm's loader does), not refused.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from cnnprof.errors import UsageError, shorten

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
WNID = re.compile(r"n\d{8}")
CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The ImageNet-1k classes in class-index order: (WordNet id, name)."""
    rows = [line.split("\t") for line in CLASSES_FILE.read_text().splitlines() if line.strip()]
    return tuple((wnid, name) for wnid, name in rows)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class Preprocess:
    """timm's evaluation transform: resize the shorter side, center crop, normalise."""

    size: tuple[int, int]  # H, W of the model's input
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str = ""  # where the defaults come from

    def check(self) -> "Preprocess":
        if not (0 < self.crop_pct <= 1) or not math.isfinite(self.crop_pct):
            raise UsageError(f"--crop-pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise UsageError(f"unknown interpolation {self.interpolation!r}; choose from {', '.join(INTERPOLATIONS)}")
        for name, values in (("--mean", self.mean), ("--std", self.std)):
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise UsageError(f"{name} needs three numbers (R,G,B), got {values}")
        if any(v <= 0 for v in self.std):
            raise UsageError(f"--std must be positive, got {self.std}")
        return self

    @property
    def resize(self) -> int:
        """The shorter side before cropping (timm: ``floor(size / crop_pct)``)."""
        return int(math.floor(min(self.size) / self.crop_pct))

    def apply(self, image):
        """A PIL image -> float32 array C x H x W."""
        import numpy as np
        from PIL import Image

        image = image.convert("RGB")
        w, h = image.size
        short = self.resize
        if w <= h:
            new = (short, max(1, int(short * h / w)))
        else:
            new = (max(1, int(short * w / h)), short)
        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[self.interpolation]
        image = image.resize(new, resample)
        ch, cw = self.size
        top = int(round((new[1] - ch) / 2.0))
        left = int(round((new[0] - cw) / 2.0))
        image = image.crop((left, top, left + cw, top + ch))
        x = np.asarray(image, dtype=np.float32) / 255.0
        x = (x - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


class BadImage(Exception):
    """An image that cannot be read (the caller names it, and skips it only with --skip-bad)."""


def decode(sample: Sample, pre: Preprocess):
    """One sample -> its preprocessed array, or ``BadImage`` naming the file and why."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(sample.path) as image:
            return pre.apply(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadImage(f"{sample.path}: {shorten(why, 120)}") from None


def decode_into(i: int, sample: Sample, pre: Preprocess, array) -> tuple[int, str, float]:
    """Decode sample ``i`` into ``array[i]``: (i, why it is unreadable or "", seconds spent)."""
    import time

    t0 = time.perf_counter()
    try:
        array[i] = decode(sample, pre)
    except BadImage as exc:
        return i, str(exc), 0.0
    return i, "", time.perf_counter() - t0


_OPEN: dict = {}


def open_file(path: str) -> None:
    """A decoding worker's start: the run's memory-mapped images file, opened once."""
    import numpy as np

    _OPEN["array"] = np.load(path, mmap_mode="r+")


def decode_into_file(i: int, sample: Sample, pre: Preprocess) -> tuple[int, str, float]:
    """In a decoding worker: sample ``i`` into row ``i`` of the file ``open_file`` opened."""
    return decode_into(i, sample, pre, _OPEN["array"])


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _class_of(name: str, classes: int) -> int | None:
    """A sub-folder's or CSV's label -> class index: an integer, or a WordNet id (ImageNet-1k)."""
    if re.fullmatch(r"\d+", name):
        return int(name)
    if WNID.fullmatch(name):
        index = {w: i for i, (w, _) in enumerate(imagenet_classes())}.get(name)
        if index is None:
            raise UsageError(f"{name!r} is not one of ImageNet-1k's 1000 WordNet ids")
        if classes != len(imagenet_classes()):
            raise UsageError(f"labels are WordNet ids (ImageNet-1k) but the model has {classes} classes: "
                             "name the folders by class index, or give --labels")
        return index
    return None


def scan(folder: str | Path, *, classes: int, labels: str | Path | None = None) -> tuple[list[Sample], str]:
    """The labelled images of ``folder`` (sorted by path) and how they were labelled."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--images {str(folder)!r} is not a folder")
    samples = _from_csv(root, Path(labels), classes) if labels is not None else _from_folders(root, classes)
    if not samples:
        raise UsageError(f"no images in {root} ({', '.join(SUFFIXES[:5])}, ...)")
    for s in samples:
        if not 0 <= s.label < classes:
            raise UsageError(f"label {s.label} of {s.path} is outside the model's {classes} classes (0..{classes - 1})")
    how = f"labels from {Path(labels).name}" if labels is not None else "labels from class folders"
    return samples, how


def _from_folders(root: Path, classes: int) -> list[Sample]:
    out = []
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES]
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        images = _images_in(sub)
        if not images:
            continue
        label = _class_of(sub.name, classes)
        if label is None:
            raise UsageError(f"class folder {sub.name!r} is neither a WordNet id (e.g. n02123045) nor a class index: "
                             "rename it or give --labels CSV (path,label)")
        out += [Sample(p, label) for p in images]
    if loose and not out:
        raise UsageError(f"{root} holds images but no class folders: put them in folders named by class, "
                         "or give --labels CSV (path,label)")
    return out


def _from_csv(root: Path, labels: Path, classes: int) -> list[Sample]:
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--labels {str(labels)!r}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    out = []
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise UsageError(f"--labels {labels.name}, line {n}: expected path,label, got {len(row)} field(s)")
        path, label = row[0].strip(), row[1].strip()
        if n == 1 and label.lower() in ("label", "class", "target"):
            continue  # a header
        index = _class_of(label, classes)
        if index is None:
            raise UsageError(f"--labels {labels.name}, line {n}: label {label!r} is neither a class index nor a "
                             "WordNet id")
        out.append(Sample(root / path, index))
    return out
