"""The words a timing configuration is written in: the precisions, what a backend runs (a PyTorch
module or an ONNX file) and the two devices.

The bottom of ``timing/``: the backends' registry (``backends.py``) and every runner module
import these, and this imports nothing of ``timing/``. ``backends.py`` re-exports them beside
``Backend``.
"""

from __future__ import annotations

from cnnprof.rows import Choice


class Precision(Choice):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"

    @classmethod
    def parse(cls, value) -> "Precision | None":
        try:
            return cls(str(value))
        except ValueError:
            return None


class Runtime(Choice):
    """What a backend runs: the PyTorch module, or an ONNX file."""

    TORCH = "torch"
    ONNX = "onnx"


CPU, CUDA = "cpu", "cuda"
