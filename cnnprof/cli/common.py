"""Small helpers the commands share: stderr console, progress, resolution of options."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


QUIET_S = 2.0


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator:
    """A status line on stderr; yields ``update(message)``. When stderr is not a terminal, each
    message is printed plainly once it comes more than a couple of seconds into the work (so CI
    logs show where long runs spend their time, and quick commands and errors stay one line)."""
    console = stderr_console()
    start = time.perf_counter()
    if not enabled:
        yield lambda message: None
        return
    if console.is_terminal:
        with console.status("") as status:
            yield lambda message: status.update(f"{message}  [dim]{time.perf_counter() - start:.0f}s[/dim]")
    else:
        def update(message: str) -> None:
            elapsed = time.perf_counter() - start
            if elapsed >= QUIET_S:
                console.print(f"[{elapsed:5.1f}s] {message}", highlight=False, markup=False)

        yield update
