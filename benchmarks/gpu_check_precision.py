"""The GPU paths of precisions and runtimes, on a machine with a CUDA device.

What it runs (each configuration in a fresh worker, as ``cnnprof bench`` does, so peak memory is
measured: ``max_memory_allocated`` for torch, device memory in use for ONNX Runtime / TensorRT):

* torch eager on CUDA in fp32, fp16 and bf16 (autocast), with and without ``--cuda-graphs``;
* torch.compile in fp16;
* ONNX Runtime's CUDA provider in fp32 and fp16 (an fp16 copy of the ONNX file), when
  ``onnxruntime-gpu`` is installed;
* TensorRT through ONNX Runtime's TensorRT provider in fp32, fp16 and int8 (the QDQ file),
  engine build reported as set-up, when the provider is there;

then the ``cuda``-marked tests (``tests/test_precision.py``, ``tests/test_timing.py``). What is
not installed is said, not faked. Prints one markdown table.

Usage (on the GPU machine, repository root): python benchmarks/gpu_check_precision.py
       [--models mobilenetv3_large,efficientnet_b0] [--min-time 1] [--no-tests]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv3_large,efficientnet_b0")
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--no-tests", action="store_true")
    args = parser.parse_args()

    import onnxruntime
    import torch

    from cnnprof.bench import bench_rows
    from cnnprof.targets import resolve_targets
    from cnnprof.timing.protocol import DEFAULT, with_limits

    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check")
        return 2
    providers = onnxruntime.get_available_providers()
    print(f"GPU: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}); torch {torch.__version__}; "
          f"onnxruntime {onnxruntime.__version__} providers {providers}")
    plans = [("torch", ["fp32", "fp16", "bf16"], False), ("torch", ["fp32", "fp16"], True),
             ("compile", ["fp16"], False)]
    if "CUDAExecutionProvider" in providers:
        plans.append(("onnxruntime", ["fp32", "fp16"], False))
    else:
        print("not checked: ONNX Runtime CUDA (no CUDAExecutionProvider: install onnxruntime-gpu)")
    if "TensorrtExecutionProvider" in providers:
        plans.append(("tensorrt", ["fp32", "fp16", "int8"], False))
    else:
        print("not checked: TensorRT (no TensorrtExecutionProvider: onnxruntime-gpu with TensorRT libraries)")

    protocol = with_limits(DEFAULT, min_time_s=args.min_time)
    targets = resolve_targets(args.models.split(","))
    print("\n| model | backend | precision | CUDA graphs | median ms | set-up s | max abs diff | SQNR dB | "
          "top-1 agree | peak memory MB | notes / error |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    started = time.perf_counter()
    for backend, precisions, graphs in plans:
        for row in bench_rows(targets, backends=[backend], precisions=precisions, device="cuda", batches=[args.batch],
                              protocol=protocol, cuda_graphs=graphs):
            def f(value, fmt):
                return "-" if value is None else format(value, fmt)

            mem = None if row.peak_memory_bytes is None else row.peak_memory_bytes / 1e6
            top1 = None if row.parity_top1_agreement is None else 100 * row.parity_top1_agreement
            print(f"| {row.model} | {row.backend} | {row.precision} | {'yes' if graphs else 'no'} | "
                  f"{f(row.latency_ms_median, '.3f')} | {f(row.setup_s, '.2f')} | {f(row.parity_max_abs, '.3g')} | "
                  f"{f(row.parity_sqnr_db, '.1f')} | {f(top1, '.1f')} | {f(mem, '.1f')} | "
                  f"{row.error or str(row.warnings) or ''} |", flush=True)
    print(f"\n[{time.perf_counter() - started:.0f} s of measurements]")
    if not args.no_tests:
        print("\n== cuda-marked tests")
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "cuda",
                               "tests/test_precision.py", "tests/test_timing.py"], capture_output=True, text=True)
        print("\n".join(done.stdout.strip().splitlines()[-15:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
