"""What a measurement process does while it times, read from inside the timed calls.

The row says how many threads it ran on, which process measured it and how much memory it took;
these tests check each against what the timed calls themselves saw: the intra-op threads in force
(torch from inside the model's forward, ONNX Runtime and OpenVINO from the session or compiled
model that ran the call, through ``tests/spy/sitecustomize.py``), the process id of the calls, and
the peak memory of a forward pass whose allocation is known. Each goes through the real path:
``IsolatedModel.time`` -> ``python -m cnnprof.bench.worker`` -> ``timing.measure``.
"""

import os
from pathlib import Path

import pytest

from cnnprof.targets import resolve_targets
from cnnprof.timing import TimingOptions
from cnnprof.bench.isolated import IsolatedModel
from cnnprof.timing.protocol import Protocol
from probe_model import read_log

HERE = Path(__file__).parent
PROBE = str(HERE / "probe_model.py")
USER = str(HERE / "user_model.py")
FAST = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=5, min_time_s=0.0)
MIB = 1 << 20


def probe_target(**model_args):
    t = resolve_targets([f"{PROBE}:probe"], model_args=model_args)[0]
    return t, t.build(shape=t.input)


def test_torch_threads_in_force_during_the_timed_calls_each_configuration_in_its_own_fresh_process(tmp_path):
    """--threads 1 and 3: every timed forward pass sees that many torch threads (a fresh process
    starts with one per core, so ignoring the option shows), and each configuration ran in its
    own process, not this one."""
    log = tmp_path / "calls.log"
    t, model = probe_target(log=str(log))
    log.unlink(missing_ok=True)  # the build here is not a timed call
    pids = {}
    with IsolatedModel(name=t.name, input_shape=t.input, batch=1, model=model, recipe=t.recipe,
                       parity=False) as iso:
        for threads in (1, 3):
            lat = iso.time(TimingOptions(threads=threads, protocol=FAST, onnx_dir=str(tmp_path)))
            calls = read_log(log)
            log.unlink()
            # first run, warm-up, then the samples (after them, a 1-thread probe for spin-waiting)
            assert len(calls) >= 1 + FAST.warmup_runs + len(lat.samples)
            assert lat.threads == threads
            assert {n for _, n in calls[:1 + FAST.warmup_runs + len(lat.samples)]} == {threads}
            (pid,) = {p for p, _ in calls}  # one process ran every call of this configuration
            pids[threads] = pid
    assert os.getpid() not in pids.values()
    assert pids[1] != pids[3]  # a fresh process per configuration


@pytest.mark.parametrize("backend, thread_counts", [("onnxruntime", (1, 3)), ("openvino", (1,))])
def test_runtime_threads_in_force_during_the_timed_calls(backend, thread_counts, tmp_path, monkeypatch):
    """ONNX Runtime: the intra-op threads of the session every timed ``run`` went through (its
    default, 0, means one per core); OpenVINO: INFERENCE_NUM_THREADS of the compiled model every
    ``infer`` went through (its default is one per core, and it caps at the cores, hence 1)."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CNNPROF_TEST_SPY_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE / "spy"), os.environ.get("PYTHONPATH")])))
    t = resolve_targets([f"{USER}:tiny_net"])[0]
    with IsolatedModel(name=t.name, input_shape=t.input, batch=1, model=t.build(shape=t.input), recipe=t.recipe,
                       parity=False) as iso:
        for threads in thread_counts:
            lat = iso.time(TimingOptions(backend=backend, threads=threads, protocol=FAST, onnx_dir=str(tmp_path)))
            calls = read_log(log)
            log.unlink()
            assert lat.threads == threads and len(calls) >= 1 + FAST.warmup_runs + len(lat.samples)
            assert {n for _, n in calls} == {threads}
            assert os.getpid() not in {p for p, _ in calls}


def test_peak_memory_of_a_known_allocation_is_bounded_from_both_sides():
    """A forward pass that fills a 48 MiB buffer: the row's peak is at least those 48 MiB and at
    most 32 MiB more (the probe's own growth, weights and runtime workspace, is about 8 MiB).
    Without the idle process subtracted, torch alone would add ~230 MiB."""
    t, model = probe_target(alloc_mib=48)
    with IsolatedModel(name=t.name, input_shape=t.input, batch=1, model=model, recipe=t.recipe,
                       parity=False) as iso:
        lat = iso.time(TimingOptions(protocol=FAST))
    assert 48 * MIB <= lat.peak_memory_bytes <= 80 * MIB, lat.peak_memory_bytes / MIB
