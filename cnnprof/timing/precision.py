"""Which numeric precision each backend can time, on which device, on this machine.

``refusal(backend, device, precision)`` is the whole rule book (each backend's own refusals are
in its record, ``backends.py``): ``None`` where the combination runs, else the one line that
says why not. It is consulted before any work (``check_options``),
and by ``--backend all --precision all`` to keep only what can run here.

* fp32: everywhere.
* fp16: torch and torch.compile under CUDA autocast; ONNX Runtime's CUDA provider on an fp16
  copy of the ONNX file; TensorRT fp16 engines. Not on the CPU.
* bf16: torch and torch.compile under autocast (CPU or CUDA), OpenVINO's bf16 inference
  precision on the CPU; on a CPU only where it has bf16 instructions (``avx512_bf16`` or
  ``amx_bf16``), since elsewhere bf16 is emulated and its latency says nothing about a
  deployment (``--force`` times it anyway). Not on ONNX Runtime (no bf16 kernels).
* int8: a static, post-training QDQ quantisation of the ONNX export (``cnnprof.timing.quantize``),
  run by ONNX Runtime (CPU), OpenVINO or TensorRT. torch eager / compile int8 is not implemented.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cnnprof.timing.backends import (  # noqa: F401 - Precision and the name tuples are public here too
    CUDA, ONNX_BACKENDS, PRECISIONS, TORCH_BACKENDS, Backend, Precision, record)

# CPU flags (Linux /proc/cpuinfo names) that give native bf16 arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (``/proc/cpuinfo``), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.split(":", 1)[1].split()) if line else None


def bf16_capability(flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """(native?, how this CPU was judged): 'native (avx512_bf16, amx_bf16)' or why not."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return False, "unknown (cannot read this CPU's flags)"
    have = [f for f in BF16_FLAGS if f in flags]
    if have:
        return True, f"native ({', '.join(have)})"
    return False, f"emulated (no {' or '.join(BF16_FLAGS)})"


def parse_precisions(text: str) -> list[Precision]:
    """``"fp32,int8"`` -> ["fp32", "int8"]; ``"all"`` -> every precision (callers keep those
    that run here); anything else is a one-line error naming the choices."""
    from cnnprof.errors import UsageError

    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError("precision: empty list")
    if "all" in items:
        return list(Precision)
    bad = [t for t in items if Precision.parse(t) is None]
    if bad:
        raise UsageError(f"unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)} or all")
    return [Precision(t) for t in dict.fromkeys(items)]


def refusal(backend: Backend | str, device: str, precision: Precision | str, *, force: bool = False,
            cpu_bf16: tuple[bool, str] | None = None, cuda_bf16: bool | None = None) -> str | None:
    """Why ``backend`` cannot time ``precision`` on ``device`` here (one line), or None: first the
    backend's own refusals (its record), then what this machine's hardware allows.

    ``cpu_bf16`` / ``cuda_bf16`` override what this machine reports (tests)."""
    backend, precision = Backend(backend), Precision(precision)
    why = record(backend).refusal(device, precision)
    if why is not None:
        return why
    if precision is Precision.fp16 and device != CUDA:
        return (f"fp16 on {backend} runs on CUDA only (autocast, an fp16 ONNX file, a TensorRT engine); "
                "on the CPU time bf16 or int8")
    if precision is not Precision.bf16:
        return None
    if device == CUDA:
        native = cuda_bf16 if cuda_bf16 is not None else _cuda_bf16()
        if not native and not force:
            return "this GPU has no native bf16 (compute capability below 8.0): it would be emulated; --force times it"
        return None
    native, how = cpu_bf16 if cpu_bf16 is not None else bf16_capability()
    if not native and not force:
        return f"bf16 on this CPU is {how}: its latency would not be a deployment's; pass --force to time it anyway"
    return None


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
