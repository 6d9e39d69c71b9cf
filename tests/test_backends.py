"""The backend registry (``cnnprof.timing.backends``) is the one place that knows the backends:
every ``Backend`` has a record, refusals and dispatch come from it, no module compares backend
names, and a run checks each configuration (and prepares its ONNX file) once."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from cnnprof import timing
from cnnprof.errors import UsageError
from cnnprof.timing import TimingOptions, check_options
from cnnprof.timing import backends as reg
from cnnprof.timing import precision as prec
from cnnprof.timing.backends import Backend, Precision, Runtime
from cnnprof.timing.protocol import Protocol

PACKAGE = Path(timing.__file__).resolve().parents[1]
USER = str(Path(__file__).parent / "user_model.py")
FAST = Protocol(warmup_runs=1, warmup_s=0.0, min_runs=3, min_time_s=0.0)
# a backend name compared as a string: `backend == "torch"`, `b != 'openvino'`, `x.backend in ("torch", ...)`
NAME_COMPARISON = re.compile(r"""backend["'\]]*\s*(==|!=|not in|in)\s*\(?\s*["'](torch|compile|onnxruntime|openvino|"""
                             r"""tensorrt)["']""")


def test_every_backend_has_one_record_naming_itself():
    assert set(reg.RECORDS) == set(Backend)
    for backend, record in reg.RECORDS.items():
        assert record.backend is backend and backend.record is record
        assert record.devices and set(record.devices) <= set(timing.DEVICES)
        assert (record.wrong_device == "") == (set(record.devices) == set(timing.DEVICES))
        assert Precision.fp32 in record.precisions  # every backend times fp32
    assert reg.BACKENDS == ("torch", "compile", "onnxruntime", "openvino", "tensorrt")  # the written names
    assert reg.ONNX_BACKENDS == ("onnxruntime", "openvino", "tensorrt")
    assert [b for b in Backend if b.is_torch] == [Backend.torch, Backend.compile]


def test_enums_are_written_as_their_plain_names():
    opts = TimingOptions(backend="openvino", precision="int8")
    assert opts.backend is Backend.openvino and opts.precision is Precision.int8
    assert f"{opts.backend} {opts.precision}" == "openvino int8" and str(opts.backend) == "openvino"
    assert json.dumps([opts.backend, opts.precision]) == '["openvino", "int8"]'
    assert opts.backend == "openvino" and {"openvino": 1}[opts.backend] == 1  # stored values still match
    unknown = TimingOptions(backend="nope", precision="int4")  # kept as given, refused in one line
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        check_options(unknown)


def test_refusals_come_from_the_records(monkeypatch):
    """Take a backend's refusal out of its record and the combination runs; put one in and it is
    refused with the record's line: nothing else holds a backend's rules."""
    assert prec.refusal("openvino", "cpu", "fp16") == reg.RECORDS[Backend.openvino].refused[Precision.fp16]
    assert prec.refusal("torch", "cpu", "int8").startswith("int8 is not implemented for torch")
    opened = dataclasses.replace(reg.RECORDS[Backend.onnxruntime], refused={}, refused_on={})
    monkeypatch.setitem(reg.RECORDS, Backend.onnxruntime, opened)
    assert prec.refusal("onnxruntime", "cuda", "int8", cuda_bf16=True) is None
    assert prec.refusal("onnxruntime", "cpu", "bf16", cpu_bf16=(True, "native")) is None
    closed = dataclasses.replace(reg.RECORDS[Backend.torch], refused={Precision.fp32: "{backend} is closed today"})
    monkeypatch.setitem(reg.RECORDS, Backend.torch, closed)
    with pytest.raises(UsageError, match="^torch is closed today$"):
        check_options(TimingOptions())


def test_devices_and_runners_come_from_the_records(monkeypatch):
    with pytest.raises(UsageError, match="^openvino times on the CPU: use --device cpu$"):
        check_options(TimingOptions(backend="openvino", device="cuda"))
    made = []

    def fake(model, example, opts, export_s=None):
        made.append((model, opts.backend))
        return "runner"

    monkeypatch.setitem(reg.RECORDS, Backend.compile, dataclasses.replace(reg.RECORDS[Backend.compile], runner=fake))
    assert timing.make_runner("module", None, TimingOptions(backend="compile"), "m") == "runner"
    assert made == [("module", Backend.compile)]
    assert reg.RECORDS[Backend.compile].runtime is Runtime.TORCH


def test_no_module_compares_backend_names_outside_the_registry():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "backends.py" and path.parent.name == "timing":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_COMPARISON.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert NAME_COMPARISON.search('if opts.backend == "torch":') and NAME_COMPARISON.search(
        'cell.backend in ("torch", "compile")') and NAME_COMPARISON.search("job['backend'] == 'compile'")
    assert offenders == []


def test_an_int8_configuration_is_checked_once_and_its_file_prepared_once(monkeypatch, tmp_path):
    from cnnprof import bench
    from cnnprof.timing.quantize import QuantOptions
    from cnnprof.targets import resolve_targets

    calls = {"check_options": 0, "onnx_file": 0}

    def counted(name):
        real = getattr(timing, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(timing, name, wrapper)

    counted("check_options")
    counted("onnx_file")
    targets = resolve_targets([f"{USER}:tiny_net"])
    plan = bench.make_plan(["onnxruntime"], ["int8"], protocol=FAST, onnx_dir=str(tmp_path),
                           quant=QuantOptions(samples=4), parity_inputs=2)
    rows = list(bench.bench_rows(targets, plan=plan, isolate=False))
    assert [(r.backend, r.precision, r.error) for r in rows] == [("onnxruntime", "int8", "")]
    assert rows[0].latency_ms_median > 0
    assert calls == {"check_options": 1, "onnx_file": 1}
