"""How cnnprof's OpenVINO, ONNX Runtime and int8 figures compare with the vendors' own tools.

Three parts, each printed as a markdown table (``--part`` runs one):

* ``vendor``: cnnprof's OpenVINO fp32 median against OpenVINO's ``benchmark_app`` on the same ONNX
  file (same threads, latency hint, fp32 inference precision, fp32 input), and cnnprof's ONNX
  Runtime fp32 median against a plain ``InferenceSession.run`` loop in its own process; the four
  are run alternately, round after round, each in a fresh process, and each one's figure is the
  median of its rounds' medians.
* ``int8``: int8 against fp32 on ONNX Runtime and OpenVINO for efficientnet_b0, mobilenetv3_large,
  ghostnet_100, fbnet_c and espnetv2_100: speed-up, SQNR, top-1 agreement (over the parity
  inputs, against fp32 PyTorch eager), model file size and peak memory, each row timed by
  cnnprof in a fresh worker as ``cnnprof bench`` does.
* ``quantize``: how long quantising efficientnet_b0 takes (calibration included), per calibration
  method, from a fresh export.
* ``sensitivity``: how much each (random-weight, batch-norm-calibrated) network amplifies a small
  perturbation of its input, in fp32 PyTorch eager with no quantisation at all: the output's SQNR
  when Gaussian noise at 40 dB and 30 dB SQNR is added to the input. A network that turns 40 dB
  at its input into 16 dB at its output will show a low int8 SQNR whatever the quantiser does.

Usage: .venv/bin/python benchmarks/precision_check.py [--part vendor|int8|quantize|sensitivity|all] [--rounds 5]
       [--threads 1] [--seconds 3] [--int8-rounds 5] [--models a,b] [--docs docs/precision.md]
Run it alone on the machine (``flock /tmp/cnnprof-timing.lock ...``): it measures latency.
``--docs PAGE`` also writes each part's table into PAGE's ``precision-check-PART`` block, with
the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docblock import add_option, captured

DOCS_PAGE = "docs/precision.md"
DOCS_BLOCKS = ("precision-check-vendor", "precision-check-quantize", "precision-check-int8",
               "precision-check-sensitivity")
INT8_MODELS = ("efficientnet_b0", "mobilenetv3_large", "ghostnet_100", "fbnet_c", "espnetv2_100")
VENDOR_MODELS = ("mobilenetv3_large", "efficientnet_b0")

PLAIN_ORT_LOOP = """
import json, sys, time
import numpy as np
import onnxruntime as ort
path, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
feed = {inp.name: np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)}
for _ in range(10):
    session.run(None, feed)
times = []
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    t0 = time.perf_counter()
    session.run(None, feed)
    times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"median_ms": float(np.median(times)), "runs": len(times)}))
"""


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepared(name: str, folder: Path):
    """The calibrated model, its target and its fp32 export (in ``folder``)."""
    from cnnprof import timing
    from cnnprof.onnx_export import cached_export
    from cnnprof.targets import resolve_targets

    target = resolve_targets([name])[0]
    model = target.build(shape=target.input)
    path, export_s, _ = cached_export(model, timing.example_input(1, target.input), name=name, folder=folder)
    return target, model, path, export_s


def benchmark_app(path: Path, threads: int, seconds: float) -> float:
    """benchmark_app's median latency (ms): latency hint, ``threads`` inference threads, fp32."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.json")
        config.write_text(json.dumps({"CPU": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads),
                                              "INFERENCE_PRECISION_HINT": "f32"}}))
        tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
        out = subprocess.run([tool, "-m", str(path), "-d", "CPU", "-hint", "latency", "-load_config", str(config),
                              "-ip", "f32", "-t", str(int(seconds))], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Median:\s+([0-9.]+) ms", out)
    if not m:
        raise RuntimeError("benchmark_app printed no median:\n" + out[-2000:])
    return float(m.group(1))


def plain_ort(path: Path, threads: int, seconds: float) -> float:
    out = subprocess.run([sys.executable, "-c", PLAIN_ORT_LOOP, str(path), str(threads), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"]


def part_vendor(rounds: int, threads: int, seconds: float, models=VENDOR_MODELS) -> None:
    from cnnprof.timing import TimingOptions
    from cnnprof.bench.isolated import IsolatedModel
    from cnnprof.timing.protocol import DEFAULT, with_limits

    protocol = with_limits(DEFAULT, min_time_s=seconds)
    print(f"\n### cnnprof against the runtimes' own loops ({threads} thread(s), fp32, {rounds} alternating rounds, "
          f"about {seconds:g} s of timed calls each)\n")
    print(f"load before: {load()}\n")
    print("| model | runtime | cnnprof median (ms) | reference | reference median (ms) | cnnprof / reference | "
          "rounds: cnnprof | rounds: reference |")
    print("|---|---|---:|---|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            target, model, path, _ = prepared(name, Path(tmp))
            got: dict[str, list[float]] = {"cnnprof openvino": [], "benchmark_app": [], "cnnprof onnxruntime": [],
                                           "plain loop": []}
            with IsolatedModel(name=name, input_shape=target.input, batch=1, model=model, recipe=target.recipe,
                               onnx_path=str(path), parity=False) as iso:
                for r in range(rounds):
                    say(f"{name}: round {r + 1} of {rounds} (load {load()})")
                    got["cnnprof openvino"].append(iso.time(TimingOptions(
                        backend="openvino", threads=threads, protocol=protocol, parity=False)).median)
                    got["benchmark_app"].append(benchmark_app(path, threads, seconds))
                    got["cnnprof onnxruntime"].append(iso.time(TimingOptions(
                        backend="onnxruntime", threads=threads, protocol=protocol, parity=False)).median)
                    got["plain loop"].append(plain_ort(path, threads, seconds))
            for ours, theirs, runtime in (("cnnprof openvino", "benchmark_app", "OpenVINO"),
                                          ("cnnprof onnxruntime", "plain loop", "ONNX Runtime")):
                a, b = statistics.median(got[ours]), statistics.median(got[theirs])
                rounds_a = ", ".join(f"{v:.2f}" for v in got[ours])
                rounds_b = ", ".join(f"{v:.2f}" for v in got[theirs])
                reference = "benchmark_app -hint latency" if theirs == "benchmark_app" else "InferenceSession.run loop"
                print(f"| {name} | {runtime} | {a:.3f} | {reference} | {b:.3f} | {a / b:.3f} | {rounds_a} | "
                      f"{rounds_b} |", flush=True)
    print(f"\nload after: {load()}")


def part_int8(threads: int, models=INT8_MODELS, rounds: int = 3) -> None:
    from cnnprof.timing.quantize import QuantOptions, cached_int8
    from cnnprof.timing import TimingOptions
    from cnnprof.bench.isolated import IsolatedModel

    print(f"\n### int8 against fp32 ({threads} thread(s), batch 1; latency: median of {rounds} alternating rounds, "
          "each a fresh process; parity over 16 inputs against fp32 PyTorch eager; QDQ, per-channel int8 weights, "
          "uint8 activations, minmax calibration on 32 synthetic images)\n")
    print(f"load before: {load()}\n")
    print("| model | backend | fp32 ms | int8 ms | int8 speed-up | int8 SQNR dB | int8 top-1 agreement | "
          "fp32 file | int8 file | fp32 peak memory | int8 peak memory | quantisation s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            target, model, path, _ = prepared(name, Path(tmp))
            t0 = time.perf_counter()
            int8_path, _, _ = cached_int8(path, QuantOptions(), folder=tmp)
            quant_s = time.perf_counter() - t0
            configs = [(b, p) for b in ("onnxruntime", "openvino") for p in ("fp32", "int8")]
            got: dict[tuple[str, str], list] = {c: [] for c in configs}
            with IsolatedModel(name=name, input_shape=target.input, batch=1, model=model, recipe=target.recipe) as iso:
                for r in range(rounds):
                    say(f"{name}: round {r + 1} of {rounds} (load {load()})")
                    for backend, precision in configs:
                        got[backend, precision].append(iso.time(TimingOptions(
                            backend=backend, precision=precision, threads=threads, onnx_dir=tmp,
                            parity=r == 0)))
            for backend in ("onnxruntime", "openvino"):
                fp32, int8 = got[backend, "fp32"], got[backend, "int8"]
                fp32_ms = statistics.median(x.median for x in fp32)
                int8_ms = statistics.median(x.median for x in int8)
                fp32_mem = statistics.median(x.peak_memory_bytes for x in fp32)
                int8_mem = statistics.median(x.peak_memory_bytes for x in int8)
                first = int8[0]
                flagged = " (flagged)" if any(n.kind == "parity" for n in first.warnings) else ""
                print(f"| {name} | {backend} | {fp32_ms:.3f} | {int8_ms:.3f} | {fp32_ms / int8_ms:.2f}x | "
                      f"{first.parity_sqnr_db:.1f}{flagged} | {100 * first.parity_top1_agreement:.1f}% | "
                      f"{path.stat().st_size / 1e6:.2f} MB | {int8_path.stat().st_size / 1e6:.2f} MB | "
                      f"{fp32_mem / 1e6:.1f} MB | {int8_mem / 1e6:.1f} MB | {quant_s:.1f} |", flush=True)
    print(f"\nload after: {load()}")


def part_quantize() -> None:
    from cnnprof.timing.quantize import CALIBRATION_METHODS, QuantOptions, cached_int8

    print("\n### quantising efficientnet_b0 (fresh export, calibration included, 32 synthetic images)\n")
    print(f"load before: {load()}\n")
    print("| model | calibration | seconds | under 60 s |")
    print("|---|---|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        _, _, path, export_s = prepared("efficientnet_b0", Path(tmp))
        for method in CALIBRATION_METHODS:
            t0 = time.perf_counter()
            cached_int8(path, QuantOptions(method=method), folder=Path(tmp, method))
            seconds = time.perf_counter() - t0
            print(f"| efficientnet_b0 | {method} | {seconds:.1f} | {'yes' if seconds < 60 else 'no'} |", flush=True)
        print(f"\n(the fp32 export before it: {export_s:.1f} s)")
    print(f"load after: {load()}")


def part_sensitivity(models=INT8_MODELS) -> None:
    import numpy as np
    import torch

    from cnnprof.targets import resolve_targets
    from cnnprof.timing.parity import ParityMeter, parity_batches

    print("\n### how far each network carries input noise (fp32 PyTorch eager, no quantisation; 16 inputs)\n")
    print("| model | input SQNR 40 dB: output SQNR | top-1 agreement | input SQNR 30 dB: output SQNR | "
          "top-1 agreement |")
    print("|---|---:|---:|---:|---:|")
    torch.set_num_threads(1)
    for name in models:
        target = resolve_targets([name])[0]
        model = target.build(shape=target.input)
        cells = []
        for db in (40.0, 30.0):
            rng = np.random.default_rng(3)
            meter = ParityMeter()
            with torch.inference_mode():
                for x in parity_batches(rng.standard_normal((1, *target.input), dtype=np.float32), 1, 16):
                    noise = rng.standard_normal(x.shape).astype(np.float32)
                    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (db / 10))
                    ref = model(torch.from_numpy(x)).numpy()
                    meter.add(model(torch.from_numpy(x + noise)).numpy(), ref)
            p = meter.result()
            cells += [f"{p.sqnr_db:.1f}", f"{100 * p.top1_agreement:.1f}%"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("vendor", "int8", "quantize", "sensitivity", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--int8-rounds", type=int, default=5)
    parser.add_argument("--models", help="comma-separated models instead of the parts' own lists")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    models = args.models.split(",") if args.models else None
    started = time.perf_counter()
    from cnnprof.timing.environment import fingerprint

    print(f"environment: {fingerprint(args.threads).describe()}")
    if args.part in ("quantize", "all"):
        with captured(args.docs, "precision-check-quantize", threads=args.threads):
            part_quantize()
    if args.part in ("vendor", "all"):
        with captured(args.docs, "precision-check-vendor", threads=args.threads):
            part_vendor(args.rounds, args.threads, args.seconds, models or VENDOR_MODELS)
    if args.part in ("int8", "all"):
        with captured(args.docs, "precision-check-int8", threads=args.threads):
            part_int8(args.threads, models or INT8_MODELS, rounds=args.int8_rounds)
    if args.part in ("sensitivity", "all"):
        with captured(args.docs, "precision-check-sensitivity", threads=args.threads):
            part_sensitivity(models or INT8_MODELS)
    print(f"\n[{time.perf_counter() - started:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
