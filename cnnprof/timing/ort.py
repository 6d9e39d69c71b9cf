"""ONNX Runtime backend: the model exported once to ``models/`` (one self-contained file), one
session with the requested intra-op threads, ``CPUExecutionProvider`` (or CUDA when asked for
and present). Export time, session-creation time and the first run are reported separately."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnprof.errors import UsageError
from cnnprof.files import MODELS_DIR
from cnnprof.onnx_export import cached_export


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: str | Path, *, threads: int, device: str = "cpu", profile_prefix: str | None = None):
    """A session as cnnprof times it: ``threads`` intra-op threads, sequential, every graph
    optimisation, quiet; with ``profile_prefix``, ONNX Runtime's profiler writes its trace there."""
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
    return ort.InferenceSession(str(path), options, providers=providers_for(device))


class OrtRunner:
    name = "onnxruntime"

    def __init__(self, model: nn.Module, example: torch.Tensor, *, device: str, threads: int, name: str,
                 onnx_dir: str | Path = MODELS_DIR, onnx_path: str | Path | None = None):
        if onnx_path is None:
            onnx_path, self.export_s, _ = cached_export(model.eval(), example, name=name, folder=onnx_dir)
        else:
            self.export_s = None
        self.path = Path(onnx_path)
        t0 = time.perf_counter()
        self.session = make_session(self.path, threads=threads, device=device)
        self.setup_s = time.perf_counter() - t0
        self.feed = {self.session.get_inputs()[0].name: example.numpy()}
        self.first_run_ms = self.step()

    def step(self) -> float:
        t0 = time.perf_counter()
        self.session.run(None, self.feed)
        return (time.perf_counter() - t0) * 1e3

    def output(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.session.run(None, self.feed)[0]))
