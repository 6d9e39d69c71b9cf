"""OpenVINO backend (CPU): the same ONNX file ONNX Runtime times (for int8 its QDQ copy, which
OpenVINO runs as int8), compiled with the latency hint and the requested number of inference
threads, timed with synchronous ``infer()`` calls on one request.

OpenVINO picks bf16 by itself on a CPU with bf16 instructions; cnnprof sets the inference
precision explicitly (f32 for fp32 and int8, bf16 for bf16) so that a row is the precision it
says. Nothing here imports torch.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cnnprof.errors import UsageError
from cnnprof.timing.names import Precision

INSTALL = "pip install openvino"


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise UsageError(f"openvino is not installed ({INSTALL})") from None
    return openvino


def compile_config(threads: int, precision: Precision | str) -> dict:
    """The properties cnnprof compiles with (also what ``benchmarks/`` passes to benchmark_app)."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads),
            "INFERENCE_PRECISION_HINT": "bf16" if Precision(precision) is Precision.bf16 else "f32"}


class OpenVinoRunner:
    name = "openvino"

    def __init__(self, path: str | Path, example: np.ndarray, *, threads: int = 1, precision: str = "fp32",
                 export_s: float | None = None):
        ov = require_openvino()
        self.path = Path(path)
        self.export_s = export_s
        t0 = time.perf_counter()
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(self.path)), "CPU", compile_config(threads, precision))
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.x = np.ascontiguousarray(example, dtype=np.float32)
        self.request.set_input_tensor(ov.Tensor(self.x))
        self.setup_s = time.perf_counter() - t0
        self.first_run_ms = self.step()

    def step(self) -> float:
        t0 = time.perf_counter()
        self.request.infer()
        return (time.perf_counter() - t0) * 1e3

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        result = np.array(out[0], dtype=np.float32, copy=True)
        self.request.set_input_tensor(self._ov_tensor(self.x))  # the timed input again
        return result

    @staticmethod
    def _ov_tensor(x: np.ndarray):
        import openvino as ov

        return ov.Tensor(x)
