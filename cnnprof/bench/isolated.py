"""Time one configuration in a fresh worker process, which also measures its peak memory.

Why a process per configuration: peak memory is measured as the growth of a process's resident
set (``cnnprof.timing.memory``), and in a process that already ran other models the allocator
hands back memory they freed without the resident set growing; the figure would depend on what
ran before. A fresh interpreter costs its imports (about 1 s for ONNX Runtime or OpenVINO, which
need no torch in the worker; 2-5 s where torch is imported), paid once per row, and buys the
row the same clean start a deployed process has.

The parent (``IsolatedModel``) does what is shared by every configuration of one model and batch
size, once: the timed input and the parity inputs (``inputs.npy``), the fp32 eager outputs on
them (``references.npy``), the calibrated weights (``state.pt``, for the torch backends, which
rebuild the module from its ``Target.recipe``), and the ONNX file and its int8 / fp16 copies (for
the ONNX backends, so the worker only loads a file). The worker
(``python -m cnnprof.bench.worker JOB RESULT``, started through ``cnnprof.workers``, the one
process boundary) times under the same protocol as ``time_model`` and sends back its
``Latency``: samples, parity and peak memory.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from cnnprof.errors import UsageError
from cnnprof.rows import Latency
from cnnprof.timing import TimingOptions, check_options, onnx_file
from cnnprof.timing.backends import ONNX_BACKENDS
from cnnprof.workers import spawn

WORKER_TIMEOUT_S = 1800.0  # a TensorRT engine build or torch.compile of a large model takes minutes


@dataclass(frozen=True)
class TimingJob:
    """What a timing worker is sent: the model (an ONNX file, or a ``Target.recipe`` and the
    parent's weights), the options, and the files of inputs and fp32 references."""

    name: str
    input_shape: tuple[int, ...]
    options: TimingOptions
    inputs: str
    references: str | None = None
    onnx_path: str | None = None
    export_s: float | None = None
    recipe: str = ""
    state: str | None = None


@dataclass(frozen=True)
class TimingResult:
    latency: Latency


class IsolatedModel:
    """One model at one batch size, ready to be timed in fresh workers (a context manager: its
    temporary files go when it closes)."""

    def __init__(self, *, name: str, input_shape: tuple[int, ...], batch: int, model=None, recipe: str = "",
                 onnx_path: str | None = None, parity: bool = True, parity_inputs: int = 16,
                 timeout_s: float = WORKER_TIMEOUT_S):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.batch = batch
        self.model = model
        self.recipe = recipe
        self.onnx_path = onnx_path
        self.parity = parity and model is not None
        self.parity_inputs = parity_inputs
        self.timeout_s = timeout_s
        self.folder = Path(tempfile.mkdtemp(prefix="cnnprof-row-"))
        self._inputs: Path | None = None
        self._references: Path | None = None
        self._state: Path | None = None

    def __enter__(self) -> "IsolatedModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- what the workers share ------------------------------------------------------------------
    def example(self):
        from cnnprof.timing import example_input

        return example_input(self.batch, self.input_shape)

    def inputs_file(self) -> Path:
        """The timed input, then the parity inputs, as one array (n_batches, batch, C, H, W)."""
        if self._inputs is None:
            import numpy as np

            from cnnprof.timing.parity import parity_batches

            batches = parity_batches(self.example().numpy(), self.batch, self.parity_inputs if self.parity else 1)
            path = self.folder / "inputs.npy"
            np.save(path, np.stack(batches))
            self._inputs = path
        return self._inputs

    def references_file(self) -> Path | None:
        """fp32 eager outputs on every parity input, written batch by batch (a segmentation
        network's maps are large: they never all sit in memory)."""
        if not self.parity:
            return None
        if self._references is None:
            import numpy as np
            import torch

            from cnnprof.timing import torch_threads

            inputs = np.load(self.inputs_file(), mmap_mode="r")
            path = self.folder / "references.npy"
            out = None
            model = self.model.eval()
            # one thread, as counting does: several OpenMP threads on a busy machine can spin-wait
            # a pass tens of times slower, and one thread gives the same sums every time
            with torch.inference_mode(), torch_threads(1):
                for i in range(inputs.shape[0]):
                    y = model(torch.from_numpy(np.array(inputs[i]))).float().numpy()
                    if out is None:
                        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                                        shape=(inputs.shape[0], *y.shape))
                    out[i] = y
            out.flush()
            del out
            self._references = path
        return self._references

    def state_file(self) -> Path:
        if self._state is None:
            import torch

            if not self.recipe:
                raise UsageError(f"{self.name}: its options cannot be passed to a measurement process "
                                 "(use plain literals), or time it with --in-process")
            path = self.folder / "state.pt"
            torch.save(self.model.state_dict(), path)
            self._state = path
        return self._state

    # -- one configuration -------------------------------------------------------------------------
    def time(self, opts: TimingOptions, *, checked: bool = False,
             prepared: tuple[Path, float | None] | None = None) -> Latency:
        """Time ``opts`` in a fresh worker; a failure is a ``CnnprofError`` (the row's error).
        ``checked``: ``opts`` already passed ``check_options``; ``prepared``: the ONNX (file,
        export seconds) already made for ``opts`` (``onnx_file``)."""
        if not checked:
            check_options(opts)
        job = TimingJob(name=self.name, input_shape=self.input_shape, options=opts, inputs=str(self.inputs_file()))
        if self.parity and opts.parity and not opts.is_reference and not opts.train:
            job = replace(job, references=str(self.references_file()))
        if opts.backend.is_onnx:
            if self.model is None and self.onnx_path is None:
                raise UsageError(f"{self.name}: nothing to export")
            path, export_s = prepared or onnx_file(self.model, self.example(), opts, self.name, self.onnx_path)
            job = replace(job, onnx_path=str(path), export_s=export_s)
        else:
            if self.model is None:
                raise UsageError(f"{self.name} is an ONNX file: it is timed with {', '.join(ONNX_BACKENDS)} only")
            job = replace(job, recipe=self.recipe, state=str(self.state_file()))
        return run_worker(job, timeout_s=self.timeout_s)


def run_worker(job: TimingJob, *, timeout_s: float = WORKER_TIMEOUT_S) -> Latency:
    """Run ``python -m cnnprof.bench.worker`` on ``job``; its ``Latency``, or a one-line error."""
    return spawn("cnnprof.bench.worker", job, timeout_s=timeout_s, result=TimingResult).latency
