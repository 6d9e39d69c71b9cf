"""Output parity of a timed configuration against fp32 PyTorch eager on the same inputs.

Three figures over every parity input (``PARITY_INPUTS`` images, in batches of the timed batch
size): the largest absolute difference, the signal-to-quantization-noise ratio
``10 log10(sum ref^2 / sum (out - ref)^2)`` in dB, and the top-1 agreement: the share of inputs
whose arg-max class is the same (for a segmentation map, the share of pixels). Inputs are
standard-normal like the timed input: the timed input first, then a fixed stream (seed 1), so
every configuration of a model sees the same ones (int8 calibration draws from another stream).

A row whose parity is worse than its precision should give is flagged with a ``parity`` note,
never dropped (``LIMITS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnprof.rows import Note
from cnnprof.timing.names import Precision

PARITY_INPUTS = 16
PARITY_SEED = 1
PARITY = "parity"  # the kind of note a row gets when its parity is below its precision's limit

# The limits below which a row is flagged: int8 by its SQNR (dB), float precisions by the largest
# difference relative to the output's scale (max |reference|). fp16 keeps 11 significant bits and
# bf16 8, so bf16's limit is 8 times fp16's; fp32 differs from eager only by operation order.
SQNR_LIMITS_DB = {Precision.int8: 15.0}
RELATIVE_LIMITS = {Precision.fp32: 1e-3, Precision.fp16: 1e-2, Precision.bf16: 8e-2}


@dataclass(frozen=True)
class Parity:
    max_abs: float  # inf where the output held a non-finite value
    sqnr_db: float | None  # None: identical outputs (no noise)
    top1_agreement: float | None  # None: the output is not a score per class (one channel)
    scale: float  # max |reference|
    inputs: int  # images compared
    nonfinite: int = 0  # output values that were inf or NaN
    reference_nonfinite: int = 0  # values of fp32 eager's own output that were inf or NaN

    @property
    def relative(self) -> float:
        return self.max_abs / self.scale if self.scale > 0 else self.max_abs


class ParityMeter:
    """Accumulates parity over batches: ``add(output, reference)`` then ``result()``."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.scale = 0.0
        self.agree = 0
        self.total = 0
        self.inputs = 0
        self.nonfinite = 0
        self.reference_nonfinite = 0
        self.classes = True

    def add(self, output, reference) -> None:
        out = np.asarray(output, dtype=np.float64)
        ref = np.asarray(reference, dtype=np.float64)
        if out.shape != ref.shape:
            raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
        finite = np.isfinite(out)
        ref_finite = np.isfinite(ref)
        self.nonfinite += int(out.size - finite.sum())
        self.reference_nonfinite += int(ref.size - ref_finite.sum())
        diff = np.where(finite & ref_finite, out - ref, 0.0)
        ref = np.where(ref_finite, ref, 0.0)
        self.signal += float(np.sum(ref * ref))
        self.noise += float(np.sum(diff * diff))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(diff))) if diff.size else 0.0)
        self.scale = max(self.scale, float(np.max(np.abs(ref))) if ref.size else 0.0)
        self.inputs += int(ref.shape[0]) if ref.ndim else 1
        if ref.ndim >= 2 and ref.shape[1] > 1:
            same = np.argmax(np.where(finite, out, -np.inf), axis=1) == np.argmax(ref, axis=1)
            self.agree += int(same.sum())
            self.total += int(same.size)
        else:
            self.classes = False

    def result(self) -> Parity:
        if self.nonfinite:
            max_abs = math.inf
        else:
            max_abs = self.max_abs
        if self.noise > 0:
            sqnr = 10 * math.log10(self.signal / self.noise) if self.signal > 0 else -math.inf
        else:
            sqnr = None
        top1 = self.agree / self.total if (self.classes and self.total) else None
        return Parity(max_abs=max_abs, sqnr_db=sqnr, top1_agreement=top1, scale=self.scale, inputs=self.inputs,
                      nonfinite=self.nonfinite, reference_nonfinite=self.reference_nonfinite)


def parity_notes(parity: Parity, precision: Precision | str) -> list[Note]:
    """The ``parity`` warnings of a row: non-finite outputs, SQNR or relative difference past its
    precision's limit."""
    p = Precision(precision)
    notes = []
    if parity.reference_nonfinite:  # the model's own output: nothing this backend did
        return [reference_note(parity.reference_nonfinite)]
    if parity.nonfinite:
        notes.append(Note.tagged(PARITY, f"{parity.nonfinite} output values were inf or NaN (overflow?)"))
        return notes
    limit_db = SQNR_LIMITS_DB.get(p)
    if limit_db is not None and parity.sqnr_db is not None and parity.sqnr_db < limit_db:
        notes.append(Note.tagged(PARITY, f"SQNR {parity.sqnr_db:.1f} dB is below {limit_db:g} dB for {p}"))
    limit = RELATIVE_LIMITS.get(p)
    if limit is not None and parity.relative > limit:
        notes.append(Note.tagged(PARITY, f"max |diff| is {parity.relative:.2g} of the output's scale "
                                         f"({parity.max_abs:.3g} of {parity.scale:.3g}), above {limit:g} for {p}"))
    return notes


def reference_note(nonfinite: int) -> Note:
    """The ``parity`` warning of a model whose own fp32 PyTorch eager output holds inf or NaN: its
    timings are of a network that computes nothing usable, and no backend can be compared with it."""
    return Note.tagged(PARITY, f"the model's own output (fp32 PyTorch eager) holds {nonfinite} inf or NaN "
                               "value(s): nothing to compare against")


def output_notes(output) -> list[Note]:
    """The reference configuration's check of its own output (it has no other to compare with)."""
    out = np.asarray(output, dtype=np.float64)
    bad = int(out.size - np.isfinite(out).sum())
    return [reference_note(bad)] if bad else []


def check_images_fit(images: int, image_shape, what: str) -> None:
    """Refuse (one line, exit 2) synthetic images that would not fit in half the free memory."""
    import os

    from cnnprof.errors import UsageError

    need = 4 * int(images) * int(np.prod(image_shape))
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > free / 2:
        shape = "x".join(str(int(d)) for d in image_shape)
        raise UsageError(f"{what}: {images} images of {shape} need {need / 1e9:.3g} GB, more than half the "
                         f"{free / 1e9:.3g} GB free here")


def parity_batches(example, batch: int, inputs: int = PARITY_INPUTS):
    """The parity inputs as numpy batches of ``example``'s shape (float32): ``example`` itself
    first, then standard-normal batches from seed ``PARITY_SEED``, until ``inputs`` images."""
    first = np.asarray(example, dtype=np.float32)
    check_images_fit(-(-inputs // first.shape[0]) * first.shape[0], first.shape[1:], "--parity-inputs")
    out = [first]
    rng = np.random.default_rng(PARITY_SEED)
    done = first.shape[0]
    while done < inputs:
        out.append(rng.standard_normal(first.shape, dtype=np.float32))
        done += first.shape[0]
    return out
