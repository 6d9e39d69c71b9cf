"""The environment fingerprint every timing report carries."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from cnnprof.rows import Environment

# Variables that change how fast the same code runs.
TIMING_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME",
    "KMP_AFFINITY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES", "CUDA_VISIBLE_DEVICES",
    "ORT_DISABLE_ALL_OPTIMIZATION", "TORCHINDUCTOR_FREEZING", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_threads(text: str | int) -> int:
    """``"1"`` -> 1, ``"all"`` -> the cores this process may use. More threads than cores are
    kept as asked (``capped_threads`` says what a run should use)."""
    from cnnprof.errors import UsageError, shorten

    s = str(text).strip().lower()
    if s == "all":
        return cpu_count()
    # ASCII digits only: str.isdigit also accepts '²' and other digits int() refuses
    if not (s.isascii() and s.isdigit()) or len(s) > 9 or int(s) < 1:
        raise UsageError(f"threads must be a positive integer or 'all', got {shorten(str(text), 40)!r}")
    return int(s)


def capped_threads(threads: int) -> tuple[int, bool]:
    """(the threads to run with, whether that is fewer than asked): never more than the cores this
    process may use, since oversubscribed OpenMP threads spin against each other (seen 100x)."""
    cores = cpu_count()
    return (cores, True) if threads > cores else (threads, False)


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """'Intel(R) Xeon(R) ... [avx512f amx]' from /proc/cpuinfo, or the platform's guess."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags_line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    flags = set(flags_line.split(":", 1)[1].split()) if flags_line else set()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    name = name or platform.processor() or platform.machine()
    return f"{name} [{' '.join(isa)}]" if isa else name


@functools.lru_cache(maxsize=None)
def git_revision() -> str:
    """The git revision of this cnnprof's checkout ("abc1234", "+dirty" with uncommitted changes);
    "" when installed (site-packages: not the revision of a repository it sits in) or unknown."""
    from cnnprof.home import checkout_root

    root = Path(__file__).resolve().parents[2]
    if checkout_root(root) != root:
        return ""
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev, dirty = "", ""
    return f"{rev}{'+dirty' if dirty else ''}" if rev else ""


def tool_revision() -> str:
    """The tool as people read it: "cnnprof 0.1.0 (abc1234+dirty)", or "cnnprof 0.1.0"."""
    from cnnprof.version import __version__

    rev = git_revision()
    return f"cnnprof {__version__}" + (f" ({rev})" if rev else "")


def revision() -> str:
    """What a row's revision is: the git revision, or the version outside a checkout."""
    from cnnprof.version import __version__

    return git_revision() or __version__


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def gpu_name() -> str:
    if "torch" not in sys.modules:
        return ""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return ""


def fingerprint(threads: int) -> Environment:
    """Where and how this process times: versions, CPU, GPU, threads, env vars, load."""
    torch_version = _version("torch")
    if "torch" in sys.modules:
        torch_version = sys.modules["torch"].__version__
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu_model(),
        cores=cpu_count(),
        torch=torch_version,
        onnxruntime=_version("onnxruntime") or _version("onnxruntime-gpu"),
        gpu=gpu_name(),
        threads=threads,
        env={k: os.environ[k] for k in TIMING_ENV_VARS if k in os.environ},
        loadavg=tuple(round(v, 2) for v in os.getloadavg()) if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0),
        tool=tool_revision(),
        openvino=_version("openvino"),
        revision=revision(),
    )


def differences(a: dict, b: dict, keys=("torch", "onnxruntime", "cpu", "threads", "gpu", "cores")) -> list[str]:
    """Human-readable differences between two fingerprints (as dicts) on the keys that matter."""
    out = []
    for k in keys:
        if a.get(k) != b.get(k):
            out.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    return out
