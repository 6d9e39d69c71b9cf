"""The allocator part of the cause: one block's isolated latency depends on what the process ran before.

PyTorch's CPU tensors come from glibc ``malloc``. A large block (above glibc's mmap threshold,
raised on the fly up to 32 MiB) is served by ``mmap`` and returned on ``free``; a heap top
larger than the trim threshold is given back too. Either way the next allocation of that size
faults fresh pages in, which the kernel must map and zero. Which buffers are given back depends
on every allocation and free before: the process's history.

1. The cost of a page fault here: touching every page of a freshly ``mmap``-ed 4.8 MB buffer
   (FBNet's 96 x 112 x 112 activation) against touching it again.
2. The same blocks (layer 1 ``k3_e6`` of FBNet-B/C, layer 5 ``k5_e6``, and their neighbours)
   timed in isolation, each in a fresh process, after three histories: the space's blocks of
   layers 0-5 in table order (how ``lut build --entries isolated`` meets them), in reverse
   order, and nothing else. Thread CPU time and minor page faults per call.

Prints a markdown report. About a minute.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_allocator.py [--docs docs/lut.md]

``--docs PAGE`` also writes the report into PAGE's ``lut-allocator`` block, with the command, the
date and the machine.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import statistics
import subprocess
import sys
import time

from docblock import add_option, captured

DOCS_PAGE = "docs/lut.md"
DOCS_BLOCKS = ("lut-allocator",)

WATCH = ((1, "k3_e6"), (1, "k3_e3"), (5, "k5_e6"), (2, "k5_e6"))


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def fault_cost(size: int = 96 * 112 * 112 * 4, repeats: int = 40) -> dict[str, float]:
    fresh, again, count = [], [], []
    for _ in range(repeats):
        m = mmap.mmap(-1, size)
        f0, t0 = faults(), time.thread_time_ns()
        for off in range(0, size, 4096):
            m[off] = 1
        fresh.append((time.thread_time_ns() - t0) / 1e6)
        count.append(faults() - f0)
        t0 = time.thread_time_ns()
        for off in range(0, size, 4096):
            m[off] = 2
        again.append((time.thread_time_ns() - t0) / 1e6)
        m.close()
    return {"bytes": size, "fresh_ms": statistics.median(fresh), "again_ms": statistics.median(again),
            "faults": statistics.median(count)}


def history(order: str, calls: int) -> dict[str, list[float]]:
    """Run in a child: time the space's blocks of layers 0-5 in ``order`` (table / reverse / only)."""
    import torch

    from cnnprof.models.fbnet import FBNET_SPACE

    torch.set_num_threads(1)
    shapes = FBNET_SPACE.block_input_shapes()
    jobs = [(layer, cand) for layer in range(6) for cand in FBNET_SPACE.names]
    if order == "reverse":
        jobs = jobs[::-1]
    elif order == "only":
        jobs = list(WATCH)
    out = {}
    with torch.inference_mode():
        for layer, cand in jobs:
            torch.manual_seed(0)
            block = FBNET_SPACE.build_block(layer, cand).eval()
            x = torch.randn(1, *shapes[layer], generator=torch.Generator().manual_seed(0))
            times, flts = [], []
            for i in range(calls + 3):
                f0, t0 = faults(), time.thread_time_ns()
                block(x)
                if i >= 3:
                    times.append((time.thread_time_ns() - t0) / 1e6)
                    flts.append(faults() - f0)
            out[f"{layer}:{cand}"] = [statistics.median(times), statistics.median(flts)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(history(args.child, args.calls)))
        return 0
    with captured(args.docs, "lut-allocator"):
        return report(args)


def report(args) -> int:
    load = os.getloadavg()[0]
    cost = fault_cost()
    results = {}
    for order in ("table", "reverse", "only"):
        out = subprocess.run([sys.executable, __file__, "--child", order, "--calls", str(args.calls)],
                             capture_output=True, text=True, check=True, env={**os.environ})
        results[order] = json.loads(out.stdout)
    print("### The same block, three process histories (torch eager, 1 thread, thread CPU time)\n")
    print(f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    per_page = (cost["fresh_ms"] - cost["again_ms"]) / max(cost["faults"], 1) * 1e3
    print(f"Page faults: touching a fresh {cost['bytes'] / 1e6:.1f} MB mapping costs {cost['fresh_ms']:.3f} ms "
          f"({cost['faults']:.0f} faults), touching it again {cost['again_ms']:.3f} ms: "
          f"about {per_page:.2f} us a fault.\n")
    print("| block | after layers 0-5 in table order | in reverse order | alone |")
    print("|---|---:|---:|---:|")
    for layer, cand in WATCH:
        cells = []
        for order in ("table", "reverse", "only"):
            v = results[order].get(f"{layer}:{cand}")
            cells.append("-" if v is None else f"{v[0]:.3f} ms ({v[1]:.0f} faults)")
        print(f"| L{layer:02d} {cand} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
