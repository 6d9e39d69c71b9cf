"""Count and time targets into report rows: what ``profile``, ``compare`` and ``bench`` print.

``count_rows`` counts each target once; ``bench_rows`` counts, then times every target x batch x
backend under one ``TimingOptions``, yielding each row as it is done (so a long run shows
progress and Ctrl-C keeps what was measured). A model that fails becomes a row with ``error``
set; the others go on.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from cnnprof.errors import CnnprofError, UsageError
from cnnprof.rows import Counts, ProfileRow, counts_row, with_latency
from cnnprof.targets import Target, check_batch, count_target, running, target_input

if TYPE_CHECKING:  # pragma: no cover
    from cnnprof.timing.protocol import Protocol

Progress = Callable[[str], None]


def count_rows(
    targets: Sequence[Target],
    *,
    resolution: tuple[int, int] | None = None,
    batch: int = 1,
    on_progress: Progress | None = None,
) -> list[tuple[ProfileRow, Counts | None]]:
    """Count each target; a model that fails becomes a row with ``error`` set."""
    check_batch(batch)
    shapes = [target_input(t, resolution, batch=batch) for t in targets]  # validate all before any work
    out: list[tuple[ProfileRow, Counts | None]] = []
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"counting {target.name}" + (f" at {shape[1]}x{shape[2]}" if len(shape) == 3 else ""))
        try:
            counts = count_target(target, shape, batch=batch)
        except CnnprofError as exc:
            if len(targets) == 1:
                raise
            out.append((ProfileRow(model=target.name, family=target.family, batch=batch, error=str(exc)), None))
            continue
        out.append((counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch),
                    counts))
    return out


def bench_rows(
    targets: Sequence[Target],
    *,
    backends: Sequence[str] = ("torch",),
    device: str = "cpu",
    batches: Sequence[int] = (1,),
    threads: int = 1,
    channels_last: bool = False,
    train: bool = False,
    resolution: tuple[int, int] | None = None,
    protocol: Protocol | None = None,
    onnx_dir: str | None = None,
    on_progress: Progress | None = None,
) -> Iterator[ProfileRow]:
    """Count and time every target x batch x backend, yielding one row as each is done.

    A model that fails on one backend (export, compile, session) yields a row with ``error``
    and the others go on. Counting happens once per target, at batch 1.
    """
    from cnnprof import counting, timing
    from cnnprof.timing.environment import fingerprint

    base_opts = timing.TimingOptions(device=device, threads=threads, channels_last=channels_last, train=train)
    if protocol is not None:
        base_opts = dataclasses.replace(base_opts, protocol=protocol)
    if onnx_dir is not None:
        base_opts = dataclasses.replace(base_opts, onnx_dir=onnx_dir)
    for backend in backends:
        timing.check_options(dataclasses.replace(base_opts, backend=backend))
    for b in batches:
        check_batch(b)
    shapes = [target_input(t, resolution, batch=max(batches)) for t in targets]
    for target, shape in zip(targets, shapes):
        if on_progress:
            on_progress(f"{target.name}: counting")
        try:
            base = count_target(target, shape)
        except CnnprofError as exc:
            yield ProfileRow(model=target.name, family=target.family, error=str(exc))
            continue
        for batch in batches:
            counts = base if target.onnx_path else counting.scale_to_batch(base, batch)
            row = counts_row(model=target.name, family=target.family, counts=counts, input_shape=shape, batch=batch)
            for backend in backends:
                opts = dataclasses.replace(base_opts, backend=backend, batch=batch)
                if on_progress:
                    on_progress(f"{target.name}: timing {backend} on {device}, batch {batch}, {threads} thread(s)")
                try:
                    if target.onnx_path is not None:
                        if backend != "onnxruntime":
                            raise UsageError(f"{target.name} is an ONNX file: it is timed with onnxruntime only")
                        if batch != counts.input_shape[0]:
                            counts = count_target(target, shape, batch=batch)
                            row = counts_row(model=target.name, family=target.family, counts=counts,
                                             input_shape=shape, batch=batch)
                        latency = timing.time_model(None, shape, name=target.name, opts=opts,
                                                    onnx_path=target.onnx_path)
                    else:
                        model = target.build(shape=shape)
                        with running(target.name):
                            latency = timing.time_model(model, shape, name=target.name, opts=opts)
                except CnnprofError as exc:
                    yield dataclasses.replace(row, backend=backend, device=device, threads=threads, error=str(exc))
                    continue
                yield dataclasses.replace(with_latency(row, latency, counts.macs), environment=fingerprint(threads))
