"""This machine's roofs: peak multiply-add rate and memory bandwidth, measured once and cached.

A roofline (Williams, Waterman & Patterson, CACM 2009) bounds what a layer can achieve by two
machine figures: the compute roof (here: the best rate of fp32 matrix products of 512^3 to
1024^3 multiply-adds) and the bandwidth roof (the best rate of a copy far larger than the caches,
counting the bytes read and the bytes written). A layer doing ``I`` MACs per byte moved can reach
at most ``min(peak, bandwidth * I)``; the *ridge point* ``peak / bandwidth`` is where the two
meet. The bandwidth roof is main memory's: a layer whose tensors stay in cache between layers
(small maps, small weights) can run above it, and that is information too.

Both are measured at the thread count in use (one by default: the papers' single-core
protocol), take a second or two, and are cached in ``$XDG_CACHE_HOME/cnnprof/machine.json``
(``~/.cache/cnnprof/machine.json`` by default), keyed by CPU model, thread count and torch
version, so a different CPU, thread count or torch build measures anew. ``refresh=True``
re-measures. The best of several runs is kept: a roof is what the hardware *can* do, and on a
shared machine the median mostly measures the neighbours.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cnnprof.errors import CnnprofError, UsageError

CACHE_VERSION = 1
# Square GEMMs of these sizes, interleaved: the library's best blocking differs by size (on a
# 2-core AVX2 VM 768^3 ran ~15% faster than 1024^3), and short runs (4-30 ms) let some of them
# fall in a quiet moment of a shared machine (best of 5 runs of 2048^3 read ~25% low there).
GEMM_SIZES = (512, 768, 1024)
COPY_MIB = 256  # 2 x 256 MiB live: larger than any last-level cache of a CPU this tool targets
REPEATS = 15


@dataclass(frozen=True)
class Roofs:
    """The measured roofs of one machine at one thread count."""

    peak_gmacs: float  # GMAC/s: best rate of the fp32 GEMMs (size gemm_n gave it)
    bandwidth_gbs: float  # GB/s (1e9 bytes): best rate of a copy, read + write bytes
    threads: int
    cpu: str
    torch: str
    measured_at: str  # local time, ISO 8601
    gemm_n: int = GEMM_SIZES[-1]
    copy_mib: int = COPY_MIB
    repeats: int = REPEATS
    gemm_gmacs_median: float | None = None  # median run of size gemm_n: how steady the machine was
    bandwidth_gbs_median: float | None = None

    @property
    def ridge(self) -> float:
        """MACs per byte where the bandwidth roof meets the compute roof."""
        return self.peak_gmacs / self.bandwidth_gbs

    def attainable(self, intensity: float) -> float:
        """The roofline: the most GMAC/s a layer of ``intensity`` MACs/byte can reach here."""
        return min(self.peak_gmacs, self.bandwidth_gbs * intensity)

    def key(self) -> str:
        return cache_key(self.threads, cpu=self.cpu, torch_version=self.torch)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ridge_macs_per_byte": self.ridge}


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/cnnprof/machine.json``, or ``~/.cache/cnnprof/machine.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnprof" / "machine.json"


def cache_key(threads: int, *, cpu: str | None = None, torch_version: str | None = None) -> str:
    """What makes two measurements comparable: CPU model, threads, torch version."""
    from cnnprof.timing.environment import cpu_model

    if torch_version is None:
        import torch

        torch_version = torch.__version__
    return f"{cpu if cpu is not None else cpu_model()} | threads={threads} | torch={torch_version}"


def _best_and_median(rates: list[float]) -> tuple[float, float]:
    ordered = sorted(rates)
    return ordered[-1], ordered[len(ordered) // 2]


def measure(
    threads: int = 1, *, gemm_sizes: tuple[int, ...] = GEMM_SIZES, copy_mib: int = COPY_MIB, repeats: int = REPEATS
) -> Roofs:
    """Time square fp32 matrix products of each of ``gemm_sizes`` (interleaved) and a
    ``copy_mib`` MiB copy, ``repeats`` times each after one warm-up, at ``threads`` intra-op
    threads; keep the best rates."""
    import torch

    from cnnprof.timing import torch_threads
    from cnnprof.timing.environment import cpu_model

    if threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    if not gemm_sizes or min(gemm_sizes) < 1 or copy_mib < 1 or repeats < 1:
        raise UsageError("gemm_sizes, copy_mib and repeats must be positive")
    gen = torch.Generator().manual_seed(0)
    with torch_threads(threads), torch.inference_mode():
        operands = {n: (torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen), torch.empty(n, n))
                    for n in gemm_sizes}
        gemm_rates: dict[int, list[float]] = {n: [] for n in gemm_sizes}
        for i in range(repeats + 1):
            for n, (a, b, c) in operands.items():
                t0 = time.perf_counter()
                torch.mm(a, b, out=c)
                dt = time.perf_counter() - t0
                if i:  # the first round warms up (allocation, thread pool, code paths)
                    gemm_rates[n].append(float(n) ** 3 / dt / 1e9)
        del operands
        gemm_n = max(gemm_sizes, key=lambda n: max(gemm_rates[n]))
        src = torch.ones(copy_mib * 2**20 // 4)  # ones(): every page is touched before timing
        dst = torch.zeros_like(src)
        nbytes = 2.0 * src.numel() * src.element_size()  # read src + write dst
        copy_rates = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            dst.copy_(src)
            dt = time.perf_counter() - t0
            if i:
                copy_rates.append(nbytes / dt / 1e9)
        del src, dst
    peak, peak_median = _best_and_median(gemm_rates[gemm_n])
    bandwidth, bandwidth_median = _best_and_median(copy_rates)
    return Roofs(
        peak_gmacs=peak,
        bandwidth_gbs=bandwidth,
        threads=threads,
        cpu=cpu_model(),
        torch=torch.__version__,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        gemm_n=gemm_n,
        copy_mib=copy_mib,
        repeats=repeats,
        gemm_gmacs_median=peak_median,
        bandwidth_gbs_median=bandwidth_median,
    )


def _read_cache(path: Path) -> dict:
    """The cache's entries; a missing, unreadable or foreign file is an empty cache."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _from_dict(entry: dict) -> Roofs | None:
    fields = {f.name for f in dataclasses.fields(Roofs)}
    try:
        roofs = Roofs(**{k: v for k, v in entry.items() if k in fields})
        if roofs.peak_gmacs > 0 and roofs.bandwidth_gbs > 0:
            return roofs
    except (TypeError, ValueError):
        pass
    return None


def load(threads: int = 1) -> Roofs | None:
    """The cached roofs for this CPU, ``threads`` and torch version, if any."""
    entry = _read_cache(cache_path()).get(cache_key(threads))
    return _from_dict(entry) if isinstance(entry, dict) else None


def store(roofs: Roofs) -> Path:
    """Add (or replace) ``roofs`` in the cache file, atomically; other entries are kept."""
    from cnnprof.files import write_atomic

    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _read_cache(path)
    entries[roofs.key()] = roofs.to_dict()
    return write_atomic(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=2) + "\n")


def roofs(threads: int = 1, *, refresh: bool = False,
          on_warning: Callable[[str], None] | None = None) -> tuple[Roofs, bool]:
    """This machine's roofs at ``threads``: from the cache, or measured (and cached) when absent
    or when ``refresh``. Returns ``(roofs, came_from_cache)``. A cache that cannot be written (a
    read-only home, a file where its folder should be) does not stop the measurement: the roofs
    are returned and ``on_warning`` is told they were not kept."""
    if not refresh:
        cached = load(threads)
        if cached is not None:
            return cached, True
    measured = measure(threads)
    try:
        store(measured)
    except (OSError, CnnprofError) as exc:
        reason = str(exc) if isinstance(exc, CnnprofError) else f"{cache_path()}: {exc.strerror or exc}"
        if on_warning is not None:
            on_warning(f"the roofs were measured but not cached ({reason}); they are measured again next time "
                       f"(set XDG_CACHE_HOME to a writable folder to keep them)")
    return measured, False
