"""Loaded at start-up by a measurement process whose PYTHONPATH a test put this folder on
(tests/test_measuring.py): with CNNPROF_TEST_SPY_LOG set, every ONNX Runtime ``run`` and every
OpenVINO ``infer`` appends ``<process id> <intra-op threads of the session or compiled model
that ran it>`` to that file, read from the runtime at the call."""

import os

LOG = os.environ.get("CNNPROF_TEST_SPY_LOG")


def _record(threads) -> None:
    with open(LOG, "a") as fh:
        fh.write(f"{os.getpid()} {int(threads)}\n")


def _spy_onnxruntime() -> None:
    import onnxruntime

    run = onnxruntime.InferenceSession.run

    def spied(self, *args, **kwargs):
        _record(self.get_session_options().intra_op_num_threads)
        return run(self, *args, **kwargs)

    onnxruntime.InferenceSession.run = spied


def _spy_openvino() -> None:
    import openvino

    infer = openvino.InferRequest.infer

    def spied(self, *args, **kwargs):
        _record(self.get_compiled_model().get_property("INFERENCE_NUM_THREADS"))
        return infer(self, *args, **kwargs)

    openvino.InferRequest.infer = spied


if LOG:
    _spy_onnxruntime()
    _spy_openvino()
