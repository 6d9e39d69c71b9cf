"""Measure cnnprof's timing harness itself (issue: timing protocol). Not part of the test suite.

1. cnnprof's median for efficientnet_b0 (torch eager, 1 thread) against
   torch.utils.benchmark.Timer(...).blocked_autorange with the same thread count, in the same
   process, alternated in ROUNDS rounds (each with the default protocol, about 2 s) so that
   neither runs only in a quieter or busier moment; the ratio of the medians over the rounds.
2. Harness overhead per timed iteration: the protocol loop around a call that does nothing,
   as a share of efficientnet_b0's latency.
3. ONNX Runtime / torch eager latency ratio (batch 1, 1 thread) for five models.
4. `cnnprof compare espnetv2 ghostnet` end to end, in a fresh folder (``CNNPROF_HOME`` there:
   exports included) and again (exports reused).

Usage: flock /tmp/cnnprof-timing.lock .venv/bin/python benchmarks/timing_protocol.py [--docs docs/timing.md]
(``--docs PAGE`` also writes the report into PAGE's ``timing-protocol`` block, with the command, the
date and the machine.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnprof import api
from cnnprof.timing import TimingOptions, time_model, torch_threads
from cnnprof.timing.protocol import Protocol, run
from docblock import add_option, captured

DOCS_PAGE = "docs/timing.md"
DOCS_BLOCKS = ("timing-protocol",)
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 6


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def section(title: str) -> None:
    print(f"\n### {title}\n", flush=True)


def agreement_with_torch_benchmark() -> float:
    from torch.utils.benchmark import Timer

    target = api.resolve_targets(["efficientnet_b0"])[0]
    model = target.build()
    x = torch.randn(1, *target.input)
    ours, theirs = [], []
    for _ in range(ROUNDS):
        lat = time_model(model, target.input, name=target.name, opts=TimingOptions())
        ours.append(lat.median)
        with torch.inference_mode():
            timer = Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=1)
            m = timer.blocked_autorange(min_run_time=2.0)
        theirs.append(m.median * 1e3)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        print(f"- round {i + 1}: cnnprof median {a:.3f} ms, blocked_autorange median {b:.3f} ms, ratio {a / b:.3f}")
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"\ncnnprof / torch.utils.benchmark = {ratio:.3f} (difference {100 * (ratio - 1):+.1f}%)")
    return statistics.median(ours)


def harness_overhead(model_ms: float) -> None:
    def noop():
        return None

    def step() -> float:
        t0 = time.perf_counter()
        noop()
        return (time.perf_counter() - t0) * 1e3

    protocol = Protocol(warmup_runs=100, warmup_s=0.1, min_runs=200_000, min_time_s=1.0)
    t0 = time.perf_counter()
    samples = run(step, protocol)
    per_iter_ms = (time.perf_counter() - t0) * 1e3 / (len(samples) + 100)  # warm-up included: an upper bound
    print(f"protocol loop around a no-op call: {per_iter_ms * 1e3:.2f} us per timed iteration "
          f"({len(samples)} iterations); efficientnet_b0 median {model_ms:.2f} ms -> overhead "
          f"{100 * per_iter_ms / model_ms:.4f}% of the latency")


def ort_vs_torch() -> None:
    names = ["efficientnet_b0", "ghostnet_100", "mobilenetv3_large", "fbnet_c", "espnetv2_100"]
    print("| model | torch eager median ms | onnxruntime median ms | torch / onnxruntime |")
    print("|---|---:|---:|---:|")
    with torch_threads(1):
        for target in api.resolve_targets(names):
            rows = {}
            for backend in ("torch", "onnxruntime"):
                rows[backend] = time_model(target.build(), target.input, name=target.name,
                                           opts=TimingOptions(backend=backend))
            t, o = rows["torch"].median, rows["onnxruntime"].median
            print(f"| {target.name} | {t:.2f} | {o:.2f} | {t / o:.2f}x |", flush=True)


def compare_end_to_end() -> None:
    exe = [sys.executable, "-c", "from cnnprof.cli import main; main()", "compare", "espnetv2", "ghostnet"]
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("fresh folder (ONNX exports made)", "again (exports reused)"):
            t0 = time.perf_counter()
            proc = subprocess.run(exe, cwd=tmp, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT), "CNNPROF_HOME": tmp})
            wall = time.perf_counter() - t0
            print(f"- `cnnprof compare espnetv2 ghostnet`, {label}: {wall:.1f} s wall (exit {proc.returncode})")
        table = "\n".join(line.rstrip() for line in proc.stdout.rstrip().splitlines())
        print(f"\n```\n{table}\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    with captured(args.docs, "timing-protocol"):
        report()


def report() -> None:
    print(f"load average at start: {load()}")
    section("1. cnnprof vs torch.utils.benchmark (efficientnet_b0, torch eager, 1 thread)")
    model_ms = agreement_with_torch_benchmark()
    section("2. harness overhead")
    harness_overhead(model_ms)
    section("3. ONNX Runtime vs torch eager (batch 1, 1 thread)")
    ort_vs_torch()
    section("4. compare end to end")
    compare_end_to_end()
    print(f"\nload average at end: {load()}")


if __name__ == "__main__":
    main()
