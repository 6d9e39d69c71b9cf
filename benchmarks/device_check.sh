#!/usr/bin/env bash
# The CUDA paths, run on a GPU machine: the cuda-marked tests, then bench on CUDA (eager and
# torch.compile, inference and a training step) and ONNX Runtime's CUDA provider when present.
# Usage (on the GPU machine, from the repository root): bash benchmarks/device_check.sh OUTDIR
set -uo pipefail
out=${1:-/tmp/cnnprof-device}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/.devsite:${PYTHONPATH:-}"
py=${PYTHON:-python3}
cnnprof() { "$py" -c "from cnnprof.cli import main; main()" "$@"; }
show() {  # show FILE: the interesting columns of a bench CSV
  "$py" - "$1" <<'PY'
import csv, sys
cols = ["model", "backend", "device", "batch", "latency_ms_median", "latency_ms_iqr", "runs", "throughput_per_s",
        "setup_s", "first_run_ms", "parity_max_abs", "warnings", "error"]
for row in csv.DictReader(open(sys.argv[1])):
    print(" | ".join(f"{c}={row[c]}" for c in cols if row.get(c)))
PY
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0)); print('onnxruntime', o.__version__, o.get_available_providers())"
echo "== cuda tests"
"$py" -m pytest -p no:cacheprovider -m cuda tests/test_timing.py -q 2>&1 | tail -5
echo "== bench on CUDA: eager, batch 1 and 32"
cnnprof bench efficientnet_b0 ghostnet_100 mobilenetv3_large --device cuda --batch 1,32 --min-time 1 -f csv -o "$out/bench_cuda.csv" 2>&1 | tail -3
show "$out/bench_cuda.csv"
echo "== torch.compile on CUDA"
cnnprof bench ghostnet_100 --device cuda --backend compile --min-time 1 -f csv -o "$out/bench_compile.csv" 2>&1 | tail -3
show "$out/bench_compile.csv"
echo "== training step on CUDA"
cnnprof bench efficientnetv2_s --device cuda --train --batch 32 --resolution 224 --min-time 1 -f csv -o "$out/bench_train.csv" 2>&1 | tail -3
show "$out/bench_train.csv"
echo "== onnxruntime with --device cuda"
cnnprof bench ghostnet_100 --device cuda --backend onnxruntime --min-time 1 -f csv -o "$out/bench_ort.csv"; echo "exit $?"
show "$out/bench_ort.csv"
echo "== EfficientNetV2's training-step claims on the GPU"
cnnprof claims --family efficientnetv2 --device cuda -f md 2>&1 | cut -c1-600
