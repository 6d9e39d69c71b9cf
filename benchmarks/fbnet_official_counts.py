"""Reproduce the exact FBNet V1/V2/V3 counts that tests/test_models_fbnet.py holds as ``OFFICIAL``.

Those figures are the parameters and conv + linear multiply-adds of the *official* network
definitions, built by the official builder, not by cnnprof. This script builds them again from a
checkout of facebookresearch/mobile-vision (checked at commit bb8465c), counts them with a
counter of its own, and prints them next to the stored table and next to cnnprof's own build:

- definitions: ``MODEL_ARCH`` of ``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py``
  (``fbnet_a`` / ``_b`` / ``_c``), ``..._fbnetv2.py`` (``FBNetV2_F1`` ... ``_L2``, the paper's
  table ``MODEL_ARCH_FBNETV2_PAPER``) and ``..._fbnetv3.py`` (``FBNetV3_A`` ... ``_G``);
- network: ``FBNetBuilder`` with the definition's ``basic_args``, ``unify_arch_def(arch,
  ["blocks"])``, ``build_blocks(blocks, dim_in=3)``; then the classification head of the
  official model zoo (global average pool, then a 1x1 convolution with bias to 1000 classes);
- input: the definition's own ``input_size``, batch 1, 3 channels;
- params: every parameter of the module (batch-norm weights and biases included; running
  statistics are buffers, not parameters);
- MACs: forward hooks on every ``nn.Conv2d`` (output elements x in_channels / groups x kernel
  area) and ``nn.Linear`` (output elements x in_features). Nothing else is counted: the same
  convention as ``cnnprof.counting`` (the papers' "FLOPs").

The released checkpoints' model cards (``model_info*.json``, kept in the catalog as "released")
differ from these by under 1% (e.g. FBNetV3-A: 8.542M params / 356.6M FLOPs there, 8.598M /
355.5M here); the cards do not say how they counted (leaving out the batch norms, or folding them
into the convolutions, reproduces neither), so the exact figures stored are this build's, and the
released ones are compared with a tolerance.

Needs a checkout of the mobile-vision repository (not a PyPI package) and its pure-Python
requirements (iopath, termcolor, tabulate, cloudpickle, diskcache) importable; only its
definitions and builder are imported (not its model zoo, which needs pkg_resources):

    pip install --target /tmp/mv-deps cloudpickle diskcache iopath termcolor tabulate
    PYTHONPATH=/tmp/mv-deps .venv/bin/python benchmarks/fbnet_official_counts.py --mobile-vision PATH

Exit status 1 when the official build, the stored table or cnnprof's build disagree anywhere.
``--docs PAGE`` also writes the table into PAGE's ``fbnet-official-counts`` block, with the
command, the date and the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from docblock import add_option, captured

DOCS_PAGE = "docs/counting.md"
DOCS_BLOCKS = ("fbnet-official-counts",)
ROOT = Path(__file__).resolve().parents[1]

# cnnprof's name -> the official definition's name
OFFICIAL_NAMES = {
    "fbnet_a": "fbnet_a", "fbnet_b": "fbnet_b", "fbnet_c": "fbnet_c",
    **{f"fbnetv2_{v}": f"FBNetV2_{v.upper()}" for v in ("f1", "f2", "f3", "f4", "l1", "l2")},
    **{f"fbnetv3_{v}": f"FBNetV3_{v.upper()}" for v in "abcdefg"},
}


def conv_linear_macs(model, input_shape: tuple[int, int, int]) -> int:
    """Multiply-adds of every Conv2d and Linear in one batch-1 forward pass (forward hooks)."""
    import torch
    from torch import nn

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return total


def official_build(arch_name: str):
    """The official network (builder + the model zoo's classification head) and its input side."""
    import mobile_cv.arch.fbnet_v2  # noqa: F401 - registers every definition in MODEL_ARCH
    from mobile_cv.arch.fbnet_v2 import fbnet_builder, fbnet_modeldef_cls
    from torch import nn

    arch = fbnet_modeldef_cls.MODEL_ARCH.get(arch_name)
    builder = fbnet_builder.FBNetBuilder()
    builder.add_basic_args(**arch.get("basic_args", {}))
    blocks = fbnet_builder.unify_arch_def(arch, ["blocks"])["blocks"]
    body = builder.build_blocks(blocks, dim_in=3)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(builder.last_depth, 1000, 1))
    return nn.Sequential(body, head), int(arch["input_size"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mobile-vision", required=True, type=Path, help="a checkout of facebookresearch/mobile-vision")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    if not (args.mobile_vision / "mobile_cv" / "arch" / "fbnet_v2").is_dir():
        parser.error(f"{args.mobile_vision} is not a mobile-vision checkout (no mobile_cv/arch/fbnet_v2)")
    sys.path.insert(0, str(args.mobile_vision))
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from test_models_fbnet import OFFICIAL

    with captured(args.docs, "fbnet-official-counts"):
        return compare(OFFICIAL)


def compare(official: dict) -> int:
    """Print the official build's counts beside the stored table and cnnprof's build; 1 where any differ."""
    from cnnprof.counting import count
    from cnnprof.models.registry import get

    print("| model | official definition | input | params (official build) | MACs (official build) | "
          "stored table | cnnprof build |")
    print("|---|---|---|---:|---:|---|---|")
    bad = []
    started = time.perf_counter()
    for name, arch_name in OFFICIAL_NAMES.items():
        model, side = official_build(arch_name)
        params = sum(p.numel() for p in model.parameters())
        macs = conv_linear_macs(model, (3, side, side))
        spec = get(name)
        own = count(spec.build(), spec.input, label=name)
        table_ok = official.get(name) == (params, macs)
        own_ok = (own.params, own.macs) == (params, macs) and spec.input == (3, side, side)
        print(f"| {name} | {arch_name} | {side}x{side} | {params:,} | {macs:,} | "
              f"{'same' if table_ok else f'DIFFERS: {official.get(name)}'} | "
              f"{'same' if own_ok else f'DIFFERS: {own.params:,} / {own.macs:,} at {spec.input}'} |", flush=True)
        if not (table_ok and own_ok):
            bad.append(name)
    missing = sorted(set(official) - set(OFFICIAL_NAMES))
    print(f"\n{len(OFFICIAL_NAMES)} definitions built in {time.perf_counter() - started:.0f} s; "
          f"{len(bad)} disagree{': ' + ', '.join(bad) if bad else ''}"
          f"{'; not built: ' + ', '.join(missing) if missing else ''}")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
