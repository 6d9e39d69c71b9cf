"""The one process boundary (``cnnprof.workers``): the typed codec and ``spawn``'s one-line errors."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from cnnprof.errors import CnnprofError, one_line
from cnnprof.rows import Latency, Note, Notes
from cnnprof.timing import TimingOptions
from cnnprof.timing.precision import Precision
from cnnprof.timing.protocol import Protocol
from cnnprof.timing.quantize import QuantOptions
from cnnprof.workers import WorkerFailed, crash_reason, decode, encode, spawn

TESTS = str(Path(__file__).resolve().parent)


def _through(value, tp):
    """What the other process gets: encoded, as JSON text, decoded."""
    return decode(json.loads(json.dumps(encode(value))), tp)


def test_timing_options_cross_with_their_nested_types():
    opts = TimingOptions(backend="onnxruntime", precision=Precision.int8, threads=2,
                         protocol=Protocol(warmup_runs=1, min_runs=5, min_time_s=0.25),
                         quant=QuantOptions(method="percentile", samples=8))
    back = _through(opts, TimingOptions)
    assert back == TimingOptions(backend="onnxruntime", precision="int8", threads=2,
                                 protocol=Protocol(warmup_runs=1, min_runs=5, min_time_s=0.25),
                                 quant=QuantOptions(method="percentile", samples=8))
    assert type(back.protocol) is Protocol and type(back.quant) is QuantOptions


def test_a_latency_keeps_its_notes_kinds_tuples_and_nan():
    notes = Notes([Note.tagged("noisy", "IQR is 40% of the median"), Note("machine busy", "machine busy: 1.5 cores")])
    lat = Latency(backend="torch", device="cpu", threads=1, batch=1, samples=(1.0, 2.0, 3.0), median=2.0,
                  mean=2.0, std=1.0, p10=1.2, p90=2.8, p99=float("nan"), iqr=1.0, min=1.0, ci_low=1.0,
                  ci_high=3.0, warnings=notes, parity_max_abs=float("inf"), parity_sqnr_db=-float("inf"),
                  parity_top1_agreement=None, peak_memory_bytes=123)
    back = _through(lat, Latency)
    assert type(back.warnings) is Notes and [type(n) for n in back.warnings] == [Note, Note]
    assert back.warnings.kinds() == ["noisy", "machine busy"] and str(back.warnings) == str(notes)
    assert back.samples == (1.0, 2.0, 3.0) and isinstance(back.samples, tuple)
    assert math.isnan(back.p99)  # a float crosses as it is: an overflowed output's parity is inf, not a gap
    assert back.parity_max_abs == float("inf") and back.parity_sqnr_db == -float("inf")
    assert back.parity_top1_agreement is None and back.peak_memory_bytes == 123
    assert back.p90 == 2.8 and back.median == 2.0


def test_nan_and_infinity_are_null_where_data_leaves_for_a_file():
    from cnnprof.rows import finite

    assert finite({"a": float("nan"), "b": (1.0, float("inf")), "c": [float("-inf")], "d": "x"}) == \
        {"a": None, "b": [1.0, None], "c": [None], "d": "x"}


def test_spawn_returns_the_typed_result():
    from worker_cases import Answer, Case

    got = spawn("worker_cases", Case("sum", (1.5, 2.5)), timeout_s=120, result=Answer, env={"PYTHONPATH": TESTS})
    assert got == Answer(total=4.0, values=(1.5, 2.5))


def test_the_handshake_lets_the_parent_work_first(tmp_path):
    from worker_cases import Answer, Case

    done = []
    got = spawn("worker_cases", Case("handshake", (1.0,)), timeout_s=120, result=Answer, env={"PYTHONPATH": TESTS},
                handshake=True, while_starting=lambda: done.append("counted"))
    assert done == ["counted"] and got.total == 1.0


@pytest.mark.parametrize("case, expected, own", [
    ("raise", "the job's own error\nsecond line", True),
    ("kill", "measurement process failed: killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)",
     False),
    ("exit", "measurement process failed: something went wrong here", False),
])
def test_a_worker_that_fails_is_one_line(case, expected, own):
    from worker_cases import Case

    with pytest.raises(WorkerFailed) as info:
        spawn("worker_cases", Case(case), timeout_s=120, env={"PYTHONPATH": TESTS})
    assert str(info.value) == expected and info.value.own is own
    assert isinstance(info.value, CnnprofError)


def test_a_worker_past_its_timeout_is_killed_and_says_so():
    from worker_cases import Case

    with pytest.raises(WorkerFailed, match=r"^the measurement process ran longer than 1 s$"):
        spawn("worker_cases", Case("hang"), timeout_s=1, env={"PYTHONPATH": TESTS})


def test_crash_reasons():
    assert crash_reason(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert crash_reason(-signal.SIGKILL).startswith("killed by SIGKILL (out of memory?")
    assert crash_reason(3) == "exit code 3"


def test_one_line():
    err = RuntimeError("\n  first line  \nsecond line\n")
    assert one_line(err) == "RuntimeError: first line"
    assert one_line(err, typed=False) == "first line"
    assert one_line(err, typed=False, last=True) == "second line"
    assert one_line(ValueError("")) == "ValueError"
    assert one_line(ValueError("x" * 400)) == "ValueError: " + "x" * 300
    assert one_line(ValueError("x" * 400), typed=False, limit=None) == "x" * 400
