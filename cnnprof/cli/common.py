"""Small helpers the commands share: stderr console, progress, resolution of options."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator:
    """A status line on stderr; yields ``update(message)``. Silent when stderr is not a terminal
    (messages are then printed plainly once each, so CI logs show where time went)."""
    console = stderr_console()
    start = time.perf_counter()
    if not enabled:
        yield lambda message: None
        return
    if console.is_terminal:
        with console.status("") as status:
            yield lambda message: status.update(f"{message}  [dim]{time.perf_counter() - start:.0f}s[/dim]")
    else:
        yield lambda message: console.print(f"[{time.perf_counter() - start:5.1f}s] {message}", highlight=False, markup=False)
