"""The accuracy claims, measured where the user gives trained weights and labelled images.

A paper's ImageNet top-1 is ``cited`` in every run (no ImageNet here, and random weights say
nothing of it). ``cnnprof claims --model NAME --weights FILE --images DIR`` evaluates NAME once,
fp32 PyTorch eager, on the user's images (``cnnprof.eval``), and the claims that concern NAME
become measurements: the top-1 over those images with its 95% Wilson interval, judged against the
claim's figure and tolerance like any interval (``holds`` / ``deviates`` where the whole interval
is inside / outside, ``inconclusive`` where it straddles). The verdict is about the user's images:
on ImageNet's 50,000 validation images it is the paper's claim; on a few hundred photos it says
how the weights do there, and its detail says so.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

from cnnprof.claims.tolerance import absolute

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.claims import ClaimResult
    from cnnprof.eval import EvalRow

# Each accuracy claim and the registered model it is about.
MODELS = {
    "effnet-b0-top1": "efficientnet_b0",
    "fbnet-b-top1": "fbnet_b",
    "ghostnet-130-top1": "ghostnet_130",
    "ghostnetv2-100-top1": "ghostnetv2_100",
    "mobilenetv3-large-top1": "mobilenetv3_large",
}
# A top-1 within one point of the paper's (each claim's own tolerance, pinned with it):
# re-implementations and re-trainings of these networks land within about a point of the
# published figure (timm's and torchvision's own weights).
TOLERANCE = absolute(1.0)
IMAGENET_VAL = 50_000


def claims_of(model: str) -> list[str]:
    """The accuracy claims about ``model`` (registered name)."""
    return [cid for cid, name in MODELS.items() if name == model]


def measured(results: Sequence["ClaimResult"], row: "EvalRow", source: str) -> list["ClaimResult"]:
    """``results`` with each accuracy claim about ``row.model`` judged on ``row``'s top-1."""
    from cnnprof.claims import all_claims

    ids = set(claims_of(row.model))
    tolerances = {c.id: c.tolerance for c in all_claims() if c.id in ids}
    out = []
    for r in results:
        if r.id not in ids or r.expected is None:
            out.append(r)
            continue
        low, high = 100 * row.top1_low, 100 * row.top1_high
        tolerance = tolerances.get(r.id) or TOLERANCE
        verdict = tolerance.judge_interval(r.expected, low, high)
        few = "" if row.images >= IMAGENET_VAL else (
            f"; {row.images} images are not ImageNet's {IMAGENET_VAL:,} validation images: the verdict is about "
            "these images")
        detail = (f"top-1 of {row.model} ({row.weights}) on {row.images} image(s) of {source}, fp32 PyTorch eager, "
                  f"95% Wilson interval {low:.1f}-{high:.1f}%; preprocessing crop {row.crop_pct}, {row.interpolation}, "
                  f"mean {row.mean}, std {row.std}{few}")
        out.append(dataclasses.replace(
            r, measured=100 * row.top1, ci_low=low, ci_high=high, tolerance=tolerance.describe(), verdict=verdict,
            detail=detail, judged="raw 95% CI", device="cpu"))
    return out



def evaluate_for_claims(model: str | None, weights: str | None, images, labels=None, *,
                        on_progress=None) -> "EvalRow | None":
    """The evaluation ``claims --images`` asks for (None without ``--images``), checked first:
    the model must be one an accuracy claim is about, and its weights trained ones."""
    from cnnprof.errors import UsageError

    if images is None:
        if model is not None or weights is not None:
            raise UsageError("--model and --weights measure the accuracy claims with --images DIR (labelled images)")
        return None
    about = sorted(set(MODELS.values()))
    if model is None or model not in about:
        raise UsageError(f"--images: name the model evaluated with --model, one of {', '.join(about)} "
                         f"(the models an accuracy claim is about), got {model!r}")
    if weights in (None, "", "random"):
        raise UsageError("--images: give the model's trained weights with --weights (random weights say nothing "
                         "of a paper's accuracy)")
    from cnnprof.eval import evaluate
    from cnnprof.targets import resolve_targets

    (row,) = evaluate(resolve_targets([model], weights=weights)[0], images, labels=labels, on_progress=on_progress)
    return row
