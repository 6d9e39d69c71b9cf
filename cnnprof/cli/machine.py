"""``cnnprof machine``: this machine's roofs (peak GMAC/s, bandwidth GB/s), measured once, cached."""

from __future__ import annotations

from typing import Annotated

import typer

from cnnprof.cli.common import progress
from cnnprof.cli.options import FormatOpt, OutputOpt, ThreadsOpt
from cnnprof.files import check_writable
from cnnprof.report import Column, Format, emit
from cnnprof.terminal import say

COLUMNS = [
    Column("cpu", "CPU"),
    Column("threads", "threads", "int"),
    Column("peak_gmacs", "peak GMAC/s", "float"),
    Column("bandwidth_gbs", "bandwidth GB/s", "float"),
    Column("ridge_macs_per_byte", "ridge MACs/byte", "float"),
    Column("gemm_n", "GEMM n", "int"),
    Column("gemm_gmacs_median", "GEMM median GMAC/s", "float"),
    Column("bandwidth_gbs_median", "copy median GB/s", "float"),
    Column("measured_at", "measured"),
    Column("source", "source"),
]
FIELDS = [
    "cpu", "threads", "torch", "peak_gmacs", "bandwidth_gbs", "ridge_macs_per_byte", "gemm_gmacs_median",
    "bandwidth_gbs_median", "gemm_n", "copy_mib", "repeats", "measured_at", "source", "cache",
]


def machine_command(
    refresh: Annotated[bool, typer.Option("--refresh", help="Measure again even if a cached figure exists.")] = False,
    threads: ThreadsOpt = "1",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Measure this machine's roofs once and cache them: peak multiply-add rate and memory bandwidth.

    Peak: the best of 15 runs each of 512^3, 768^3 and 1024^3 fp32 matrix products; bandwidth:
    the best of 15 copies of 256 MiB (bytes read + written); both at the thread count in use,
    with the ridge point between them (MACs per byte).

    The cache ($XDG_CACHE_HOME/cnnprof/machine.json, else ~/.cache/cnnprof/machine.json) is
    keyed by CPU model, threads and torch version; `profile --timing` and its roofline use it.

    Examples:

      cnnprof machine

      cnnprof machine --refresh --threads all

      cnnprof machine -f json
    """
    from cnnprof import machine
    from cnnprof.cli import options

    check_writable(output)
    n_threads = options.parse_threads(threads)
    with progress() as update:
        update(f"measuring peak GMAC/s and bandwidth at {n_threads} thread(s)")
        not_kept: list[str] = []
        roofs, cached = machine.roofs(n_threads, refresh=refresh, on_warning=not_kept.append)
    for message in not_kept:
        say(f"warning: {message}")
    cache = str(machine.cache_path()) + (" (not kept)" if not_kept else "")
    row = {**roofs.to_dict(), "source": "cached" if cached else "measured now", "cache": cache}
    emit([row], columns=COLUMNS, fmt=fmt, output=output, fields=FIELDS, title="this machine's roofs")
    if fmt == Format.table and output is None:
        from cnnprof.terminal import stdout_console

        stdout_console().print(
            f"cache: {cache} (key: {roofs.key()}); `cnnprof machine --refresh` measures again",
            soft_wrap=True,
        )
    from cnnprof.timing.precision import bf16_capability

    say(f"bf16 on this CPU: {bf16_capability()[1]} (bench --precision bf16 refuses an emulated one without --force)")
