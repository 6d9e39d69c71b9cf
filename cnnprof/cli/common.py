"""Small helpers the commands share: the command wrapper, the progress line on stderr."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, Iterator, TypeVar

from cnnprof.terminal import markup_safe, printable, reports_only, say, stderr_console

F = TypeVar("F", bound=Callable)
ARGV: list[str] = []  # the command line being run (``cnnprof bench ...``), set by the app


def command(func: F) -> F:
    """Every command's body runs under this: stdout is kept for the report (anything else that
    prints there, such as a user's model, goes to stderr)."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        with reports_only():
            return func(*args, **kwargs)

    return run  # type: ignore[return-value]

QUIET_S = 2.0


def _safe(fields: dict) -> dict:
    """A progress bar's fields with their text made safe: the bar's text columns read rich markup,
    and a model name may hold brackets or escape sequences."""
    return {k: markup_safe(v) if isinstance(v, str) else v for k, v in fields.items()}


@contextlib.contextmanager
def counted_progress(
    *,
    columns: Callable,
    fields: Callable[..., dict],
    counts: Callable[..., tuple[int, int]],
    line: Callable[..., str],
    initial: dict | None = None,
    last_line_always: bool = False,
    enabled: bool = True,
) -> Iterator:
    """A progress bar on stderr for work counted in steps; yields ``update(*args)``.

    On a terminal, a rich bar with ``columns(rich.progress)``, updated with ``fields(*args)``
    (``initial``: the task's fields before the first update). Otherwise a plain line
    ``line(*args, elapsed_s)`` at most every 5 s, and when the work ends (``counts(*args)`` gives
    done and total) after 5 s, or always with ``last_line_always``."""
    if not enabled:
        yield lambda *args: None
        return
    console = stderr_console()
    if console.is_terminal:
        from rich import progress as rp

        with rp.Progress(*columns(rp), console=console, transient=True) as bar:
            fields0 = _safe(initial or {})
            task = bar.add_task(fields0.pop("description", ""), total=None, **fields0)
            yield lambda *args: bar.update(task, **_safe(fields(*args)))
        return
    start = time.perf_counter()
    last = [start]

    def update_plain(*args) -> None:
        now = time.perf_counter()
        done, total = counts(*args)
        ended = done >= total and (last_line_always or now - start >= 5.0)
        if now - last[0] >= 5.0 or ended:
            last[0] = now
            say(f"[{now - start:5.0f}s] " + line(*args, now - start))

    yield update_plain


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
                Text.assemble(printable(message), (f"  {time.perf_counter() - start:.0f}s", "dim")))
    else:
        def update(message: str) -> None:
            elapsed = time.perf_counter() - start
            if elapsed >= QUIET_S:
                say(f"[{elapsed:5.1f}s] {message}")

        yield update


def say_warnings(label: str, warnings) -> None:
    """On stderr, one line per warning a measurement carries (noisy, few runs, machine busy, ...):
    ``warning: <label>: <note>``; ``profile --timing`` and ``bench`` say them alike."""
    for w in warnings:
        say(f"warning: {printable(label)}: {printable(w)}")
