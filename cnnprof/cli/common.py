"""Small helpers the commands share: the progress line on stderr."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from cnnprof.terminal import say, stderr_console

QUIET_S = 2.0


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator:
    """A status line on stderr; yields ``update(message)``. When stderr is not a terminal, each
    message is printed plainly once it comes more than a couple of seconds into the work (so CI
    logs show where long runs spend their time, and quick commands and errors stay one line)."""
    start = time.perf_counter()
    if not enabled:
        yield lambda message: None
        return
    console = stderr_console()
    if console.is_terminal:
        from rich.text import Text

        with console.status("") as status:
            yield lambda message: status.update(
                Text.assemble(message, (f"  {time.perf_counter() - start:.0f}s", "dim")))
    else:
        def update(message: str) -> None:
            elapsed = time.perf_counter() - start
            if elapsed >= QUIET_S:
                say(f"[{elapsed:5.1f}s] {message}")

        yield update
