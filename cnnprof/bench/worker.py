"""One configuration timed in a fresh process: ``python -m cnnprof.bench.worker JOB.json RESULT.json``.

``cnnprof.bench.isolated`` writes the job and reads the result; this side imports what the
backend needs (no torch for an ONNX backend on the CPU), notes its idle resident set, loads the
model (the ONNX file, or the module rebuilt from its recipe with the parent's weights) and sets
up the runtime, resets the resident high-water mark, runs the protocol, reads the peak, then
checks parity on the parent's inputs against the parent's fp32 eager outputs, and writes the
``Latency`` as JSON (atomically). A ``CnnprofError`` is written as the result's one-line error.
"""

from __future__ import annotations

import sys


def import_backend(opts) -> None:
    """Import the runtime before the idle resident set is taken: its libraries are not the run's
    (the backend's record names them; on CUDA torch comes too, which reads the device's memory)."""
    import importlib

    from cnnprof.timing.backends import CUDA, Backend, record

    names = record(opts.backend).imports
    if opts.device == CUDA:
        names = names + Backend.torch.record.imports
    for name in dict.fromkeys(names):
        importlib.import_module(name)


def run_job(job: "TimingJob") -> "TimingResult":
    import numpy as np

    from cnnprof import timing
    from cnnprof.bench.isolated import TimingResult
    from cnnprof.timing import memory

    opts = job.options
    import_backend(opts)
    inputs = np.load(job.inputs, mmap_mode="r")
    example = np.array(inputs[0])
    if opts.device == "cuda":
        meter = memory.CudaPeak(torch_allocator=opts.backend.is_torch)
    else:
        meter = memory.CpuPeak()
    meter.start()

    if opts.backend.is_onnx:
        def make():
            return timing.onnx_runner(job.onnx_path, example, opts, job.export_s)
    else:
        def make():
            import torch

            from cnnprof.targets import from_recipe, running

            target = from_recipe(job.recipe)
            with running(target.name):
                model = target.build(seed=0, calibrate=False)
                model.load_state_dict(torch.load(job.state, map_location="cpu", weights_only=True))
                return timing.make_runner(model.eval(), torch.from_numpy(example), opts, job.name)

    parity_data = None
    if job.references:
        references = np.load(job.references, mmap_mode="r")
        parity_data = ([inputs[i] for i in range(inputs.shape[0])], [references[i] for i in range(references.shape[0])])
    shape = "x".join(str(d) for d in job.input_shape)
    from cnnprof.errors import memory_guard

    with memory_guard(f"{job.name} at input {shape}, batch {opts.batch}, on {opts.backend},"):
        latency = timing.measure(make, opts, parity_data=parity_data, memory=meter)
    return TimingResult(latency)


def main(argv: list[str]) -> None:
    from cnnprof.bench.isolated import TimingJob
    from cnnprof.workers import serve

    serve(run_job, job=TimingJob, argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
