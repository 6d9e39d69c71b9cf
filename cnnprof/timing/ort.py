"""ONNX Runtime backends: the model's ONNX file (exported once to ``models/``; its int8 QDQ or
fp16 copy for those precisions, see ``cnnprof.timing.quantize``), one session with the requested
intra-op threads, on ``CPUExecutionProvider``, the CUDA provider (``--device cuda``, with
``onnxruntime-gpu``), or TensorRT through ONNX Runtime's TensorRT provider (``--backend
tensorrt``). Export, session creation (for TensorRT: the engine build, which happens on the first
run) and the first run are reported apart from the steady state.

Nothing here imports torch: a measurement process timing a file needs only numpy and ONNX Runtime.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cnnprof.errors import UsageError
from cnnprof.timing.names import Precision

ONNXRUNTIME_GPU = ("pip uninstall -y onnxruntime && pip install onnxruntime-gpu "
                   "(a build matching this machine's CUDA; see the README)")


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError(f"onnxruntime has no CUDAExecutionProvider here: {ONNXRUNTIME_GPU}")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def tensorrt_providers(precision: Precision | str) -> list:
    """ONNX Runtime's TensorRT provider, building an engine of ``precision`` (int8: from the QDQ
    file's scales, no calibration table), falling back to CUDA for nodes TensorRT does not take."""
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise UsageError("onnxruntime has no TensorrtExecutionProvider here: install onnxruntime-gpu and TensorRT "
                         "(see the README)")
    p = Precision(precision)
    options = {"device_id": 0, "trt_fp16_enable": p is Precision.fp16, "trt_int8_enable": p is Precision.int8,
               "trt_engine_cache_enable": False}
    return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]


def session_options(threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def make_session(path: str | Path, *, threads: int, device: str = "cpu", profile_prefix: str | None = None,
                 providers: list | None = None):
    """A session as cnnprof times it: ``threads`` intra-op threads, sequential, every graph
    optimisation, quiet; with ``profile_prefix``, ONNX Runtime's profiler writes its trace there."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads, profile_prefix),
                                providers=providers or providers_for(device))


class OrtRunner:
    """One session on one input; ``step()`` times one ``run``."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, example: np.ndarray, *, device: str = "cpu", threads: int = 1,
                 precision: str = "fp32", export_s: float | None = None):
        self.path = Path(path)
        self.precision = precision
        self.export_s = export_s
        t0 = time.perf_counter()
        self.session = make_session(self.path, threads=threads, device=device, providers=self._providers(device))
        self.input_name = self.session.get_inputs()[0].name
        self.feed = {self.input_name: np.ascontiguousarray(example, dtype=np.float32)}
        self.setup_s = time.perf_counter() - t0
        self.first_run_ms = self.step()

    def _providers(self, device: str) -> list:
        return providers_for(device)

    def step(self) -> float:
        t0 = time.perf_counter()
        self.session.run(None, self.feed)
        return (time.perf_counter() - t0) * 1e3

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The first output for input ``x`` (same shape as the timed input), as float32."""
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


class TensorrtRunner(OrtRunner):
    """TensorRT through ONNX Runtime: the engine is built on the first run, so set-up is session
    creation plus that run, and ``first_run_ms`` is the run after it."""

    name = "tensorrt"

    def __init__(self, path: str | Path, example: np.ndarray, *, threads: int = 1, precision: str = "fp32",
                 export_s: float | None = None):
        super().__init__(path, example, device="cuda", threads=threads, precision=precision, export_s=export_s)
        self.setup_s += self.first_run_ms / 1e3
        self.first_run_ms = self.step()

    def _providers(self, device: str) -> list:
        return tensorrt_providers(self.precision)
