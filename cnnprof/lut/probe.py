"""The machine's state kept out of a latency table's readings: the clock, the allocator, the speed probe.

The speed probe. On a virtual machine the core itself runs faster or slower from one second to
the next (a neighbour on the host's sibling hyper-thread, memory bandwidth shared with other
guests): the same network takes 1.0x to 1.6x its usual time in spells of seconds, on either
clock, with nothing running in this machine (``benchmarks/lut_speed.py``). No clock of the guest
leaves that out. ``SpeedProbe`` is one fixed network of the space (every candidate in turn over
the layers), called once before every timed call on the same backend: a call's time multiplied
by ``reference / probe`` (the probe averaged over the calls before and after it) is its time at
the table's reference speed. Entries of an in-context table and the whole networks they are
checked against are both put in those units, so a table built in a slow spell still predicts a
network measured in a fast one. The probe must slow down as the networks do: divided by a fixed
matrix product and vector addition (the first probe), 38% of 20 networks' round medians were
more than 10% off their network's median; divided by the probe network, 2% (torch,
``benchmarks/lut_speed.py --networks 20``). On ONNX Runtime the probe is an ONNX Runtime session
of that network: 12% of round medians more than 5% off, against 24% with the network run by torch.

The steady allocator. glibc's ``malloc`` gives large freed buffers back to the kernel, and the
next call faults fresh zeroed pages in: how many depends on everything the process allocated
before (``benchmarks/lut_allocator.py``). ``use_allocator("steady")`` stops that for the process.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Callable, Sequence

from cnnprof.errors import UsageError
from cnnprof.lut.space import space_network
from cnnprof.lut.table import ALLOCATORS, Allocator
from cnnprof.timing.protocol import Protocol

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from cnnprof.lut.table import Table


# -- the allocator ----------------------------------------------------------------------------------
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_applied: list[Allocator] = []  # steady, once applied (mallopt cannot be undone)


def use_allocator(name: Allocator | str) -> Allocator:
    """Make this process's ``malloc`` behave as ``name`` says, for every timing after; returns what
    is in force (``steady`` cannot be had without glibc: then ``default``).

    ``steady``: glibc keeps what is freed (trim threshold 1 GiB) and serves blocks up to 32 MiB
    from its heap rather than fresh ``mmap`` s (mmap threshold 32 MiB, which also stops it moving
    its thresholds as the process runs): after the first call a network allocates nothing new from
    the kernel, so no call pays for page faults whose number depends on what the process ran
    before (``benchmarks/lut_allocator.py``). ``default``: glibc as configured at start. Applied
    once per process (``mallopt`` cannot be undone)."""
    if name not in ALLOCATORS:
        raise UsageError(f"unknown allocator {str(name)!r}; choose {' or '.join(ALLOCATORS)}")
    if name == Allocator.DEFAULT:
        return Allocator.STEADY if _applied else Allocator.DEFAULT
    if _applied:
        return Allocator.STEADY
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return Allocator.DEFAULT
    if mallopt(_M_MMAP_THRESHOLD, 32 << 20) and mallopt(_M_TRIM_THRESHOLD, 1 << 30):
        _applied.append(Allocator.STEADY)
        return Allocator.STEADY
    return Allocator.DEFAULT


# -- the speed probe --------------------------------------------------------------------------------
# The probe's network: every candidate of the FBNet space in turn over its 22 layers (each two or
# three times), at the space's input, seeded and calibrated as every network of the space is.
PROBE_ARCH = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip") * 2 + \
    ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6")
PROBE_NAME = "fbnet space network " + "-".join(PROBE_ARCH) + " at 3x224x224, one call on the table's backend"
PROBE_SETTLE_S = 0.5  # probing before a table's first measurement, to fix its reference


def clock_ns(clock: str) -> Callable[[], int]:
    """The reading function of a clock: ``perf_counter_ns`` (wall) or ``thread_time_ns`` (cpu)."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"unknown clock {clock!r}")
    return time.perf_counter_ns if clock == "wall" else time.thread_time_ns


class SpeedProbe:
    """A fixed network of the space that tells how fast the core runs right now for this kind of
    work (see the module's text).

    ``run()`` times one call of it (ms) on ``clock``, on ``backend`` (torch eager, or an ONNX
    Runtime session of its export) at ``threads`` threads; ``reference_ms`` is the time the
    table's entries are normalised to: given (from a table), or set by ``settle()`` (the median
    of the probe over half a second) before a new table's first measurement. ``model`` and
    ``input_shape`` replace the probe's network (tests use a tiny one); the network is built on
    the first ``run()``."""

    def __init__(self, clock: str = "wall", reference_ms: float | None = None, *, backend: str = "torch",
                 threads: int = 1, model: "nn.Module | None" = None, input_shape: tuple | None = None):
        self.clock = clock
        self._read = clock_ns(clock)
        self.reference_ms = reference_ms
        self.backend = backend
        self.threads = threads
        self.name = PROBE_NAME if model is None else f"{type(model).__name__} at {'x'.join(map(str, input_shape))}"
        self._model, self._input = model, input_shape
        self._call: Callable[[], object] | None = None

    def _make_call(self) -> Callable[[], object]:
        import tempfile

        import torch

        from cnnprof.timing.backends import Backend

        if self._model is None:
            from cnnprof.models.fbnet import FBNET_SPACE

            self._model, self._input = space_network(FBNET_SPACE, PROBE_ARCH), FBNET_SPACE.input
        model = self._model.eval()
        x = torch.randn(1, *self._input, generator=torch.Generator().manual_seed(0))
        if Backend(self.backend).is_onnx:
            from cnnprof.onnx_export import cached_export
            from cnnprof.timing.ort import make_session

            with tempfile.TemporaryDirectory(prefix="cnnprof-probe-") as tmp:
                path, _, _ = cached_export(model, x, name="speed-probe", folder=tmp)
                session = make_session(path, threads=self.threads)
            feed = {session.get_inputs()[0].name: x.numpy()}
            return lambda: session.run(None, feed)

        def call() -> object:
            with torch.inference_mode():
                return model(x)
        return call

    def run(self) -> float:
        """One timed call of the probe's network."""
        if self._call is None:
            self._call = self._make_call()
            self._call()  # the first call allocates and warms up: never timed
        start = self._read()
        self._call()
        return (self._read() - start) / 1e6

    def settle(self, seconds: float = PROBE_SETTLE_S) -> float:
        """Set ``reference_ms`` (unless given) from the probe's median over ``seconds``."""
        if self.reference_ms is None:
            for _ in range(3):
                self.run()
            times = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end or len(times) < 5:
                times.append(self.run())
            self.reference_ms = statistics.median(times)
        return self.reference_ms

    def to_dict(self) -> dict:
        return {"name": self.name, "clock": self.clock, "reference_ms": self.reference_ms}

    @classmethod
    def from_table(cls, table: "Table") -> "SpeedProbe | None":
        """The probe of ``table`` (None when its entries are not normalised); a table whose entries
        are in the units of another probe cannot be checked with this one."""
        if not table.probe:
            return None
        if table.probe.get("name") != PROBE_NAME:
            raise UsageError(f"the table's entries are in the units of another speed probe "
                             f"({str(table.probe.get('name'))[:60]!r}); rebuild it with `cnnprof lut build --force`")
        return cls(table.probe.get("clock", table.clock), float(table.probe["reference_ms"]),
                   backend=table.backend, threads=table.threads)


def probed_run(step: Callable[[], Sequence[float]], protocol: Protocol,
               probe: "SpeedProbe | None", *, collect: bool = False) -> tuple[list[Sequence[float]], list[float]]:
    """``protocol``'s warm-up and timed calls of ``step`` (which returns the call's times, ms),
    each call preceded by the probe. Returns the timed calls' values and each call's factor
    ``reference / probe`` (the probe before and after the call averaged; 1.0 without a probe).
    The garbage collector is paused while timing; ``collect`` runs a full collection first."""
    from cnnprof.timing.protocol import run

    records: list[tuple[float | None, Sequence[float]]] = []

    def one() -> float:
        before = probe.run() if probe is not None else None
        values = step()
        records.append((before, values))
        return float(values[0])

    samples = run(one, protocol, collect=collect)
    kept = records[len(records) - len(samples):]
    if probe is None:
        return [v for _, v in kept], [1.0] * len(kept)
    probes = [p for p, _ in kept] + [probe.run()]
    ref = probe.reference_ms if probe.reference_ms is not None else probe.settle()
    factors = [ref / ((probes[i] + probes[i + 1]) / 2) for i in range(len(kept))]
    return [v for _, v in kept], factors
