"""Small helpers the commands share: the command wrapper, the progress line on stderr."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

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


def eta_seconds(spent: Mapping[str, Sequence[float]], remaining: Mapping[str, int]) -> float | None:
    """Seconds the work left should take: for each kind of item, the number left times the mean
    seconds of the finished items of that kind (a kind none of which has finished yet counts at
    the mean of all finished items). None before any item has finished."""
    every = [t for times in spent.values() for t in times]
    if not every:
        return None
    overall = sum(every) / len(every)
    return sum(n * (sum(spent[k]) / len(spent[k]) if spent.get(k) else overall) for k, n in remaining.items() if n > 0)


class ItemTimes:
    """The seconds each finished item took, by kind (items run one after another: an item's time
    runs from the end of the one before), and the ETA they give (``eta_seconds``)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.last = clock()
        self.spent: dict[str, list[float]] = {}

    def finished(self, kinds: Sequence[str]) -> None:
        """Items of these kinds finished since the last call (their time shared equally)."""
        now = self.clock()
        for kind in kinds:
            self.spent.setdefault(kind, []).append((now - self.last) / len(kinds))
        self.last = now

    def eta_s(self, remaining: Mapping[str, int]) -> float | None:
        return eta_seconds(self.spent, remaining)


def counted_eta(kinds: Sequence[str] | None = None,
                clock: Callable[[], float] = time.perf_counter) -> Callable[[int, int], float | None]:
    """``eta(done, total)`` for work reported as a count of items done, in order: each rise of
    ``done`` records the items that finished (``ItemTimes``; ``kinds``: the kind of each item, so
    that, say, a timed claim is expected to take as long as the timed ones before it took)."""
    times, seen = ItemTimes(clock), [0]

    def eta(done: int, total: int) -> float | None:
        kind = (lambda i: kinds[i]) if kinds is not None else (lambda i: "item")
        if done > seen[0]:
            times.finished([kind(i) for i in range(seen[0], done)])
            seen[0] = done
        remaining: dict[str, int] = {}
        for i in range(done, total):
            remaining[kind(i)] = remaining.get(kind(i), 0) + 1
        return times.eta_s(remaining)

    return eta


def clock_text(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``-:--`` when not known yet."""
    if seconds is None:
        return "-:--"
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def eta_column(rp, clock: Callable[[], float] = time.perf_counter):
    """A bar column counting down to the task's ``finish_at`` field (a ``clock()`` time, set by
    ``counted_progress`` from its ``eta``), so the ETA ticks between updates."""

    class EtaColumn(rp.ProgressColumn):
        def render(self, task):
            from rich.text import Text

            finish = task.fields.get("finish_at")
            return Text("eta " + clock_text(None if finish is None else finish - clock()), style="progress.remaining")

    return EtaColumn()


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
    eta: Callable[..., float | None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator:
    """A progress bar on stderr for work counted in steps; yields ``update(*args)``.

    On a terminal, a rich bar with ``columns(rich.progress)``, updated with ``fields(*args)``
    (``initial``: the task's fields before the first update). Otherwise a plain line
    ``line(*args, elapsed_s)`` at most every 5 s, and when the work ends (``counts(*args)`` gives
    done and total) after 5 s, or always with ``last_line_always``. ``eta(*args)``: the seconds
    left, measured (see ``ItemTimes``): the bar's ``eta_column`` counts down from it, and the plain
    line ends with it."""
    if not enabled:
        yield lambda *args: None
        return
    console = stderr_console()
    if console.is_terminal:
        from rich import progress as rp

        with rp.Progress(*columns(rp), console=console, transient=True) as bar:
            fields0 = _safe(initial or {})
            task = bar.add_task(fields0.pop("description", ""), total=None, **fields0)

            def update_bar(*args) -> None:
                extra = {}
                if eta is not None:
                    left = eta(*args)
                    extra["finish_at"] = None if left is None else clock() + left
                bar.update(task, **_safe(fields(*args)), **extra)

            yield update_bar
        return
    start = clock()
    last = [start]

    def update_plain(*args) -> None:
        now = clock()
        done, total = counts(*args)
        ended = done >= total and (last_line_always or now - start >= 5.0)
        if now - last[0] >= 5.0 or ended:
            last[0] = now
            left = eta(*args) if eta is not None and done < total else None
            say(f"[{now - start:5.0f}s] " + line(*args, now - start) + (f", eta {clock_text(left)}" if left else ""))

    yield update_plain


class Clocked:
    """A status line's message with the seconds since ``start``, read when it is drawn: the
    spinner redraws it several times a second, so the clock runs between messages."""

    def __init__(self, message: str, start: float, clock: Callable[[], float] = time.perf_counter):
        self.message, self.start, self.clock = message, start, clock

    def __rich__(self):
        from rich.text import Text

        return Text.assemble(printable(self.message), (f"  {self.clock() - self.start:.0f}s", "dim"))


@contextlib.contextmanager
def progress(enabled: bool = True, clock: Callable[[], float] = time.perf_counter) -> Iterator:
    """A status line on stderr; yields ``update(message)``. When stderr is not a terminal, each
    message is printed plainly once it comes more than a couple of seconds into the work (so CI
    logs show where long runs spend their time, and quick commands and errors stay one line)."""
    start = clock()
    if not enabled:
        yield lambda message: None
        return
    console = stderr_console()
    if console.is_terminal:
        with console.status(Clocked("", start, clock)) as status:
            yield lambda message: status.update(Clocked(message, start, clock))
    else:
        def update(message: str) -> None:
            elapsed = clock() - start
            if elapsed >= QUIET_S:
                say(f"[{elapsed:5.1f}s] {message}")

        yield update


def say_warnings(label: str, warnings) -> None:
    """On stderr, one line per warning a measurement carries (noisy, few runs, machine busy, ...):
    ``warning: <label>: <note>``; ``profile --timing`` and ``bench`` say them alike."""
    for w in warnings:
        say(f"warning: {printable(label)}: {printable(w)}")
