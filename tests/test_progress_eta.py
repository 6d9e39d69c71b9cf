"""Progress: an ETA from measured per-item times (by kind), counting down between updates, and a
spinner whose clock runs between messages. Fake clocks throughout: nothing here reads time."""

from __future__ import annotations

import io

import pytest
from rich import progress as rp
from rich.console import Console

from cnnprof.cli.common import Clocked, ItemTimes, clock_text, counted_eta, eta_column, eta_seconds


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_eta_is_the_mean_per_kind_times_those_left():
    spent = {"timed": [30.0, 50.0], "counted": [1.0, 3.0]}
    assert eta_seconds(spent, {"timed": 3, "counted": 10}) == pytest.approx(3 * 40.0 + 10 * 2.0)
    # a kind not seen yet counts at the mean of every finished item
    assert eta_seconds(spent, {"cited": 2}) == pytest.approx(2 * (84.0 / 4))
    assert eta_seconds({}, {"timed": 3}) is None  # nothing finished: no estimate
    assert eta_seconds(spent, {"timed": 0}) == 0


def test_item_times_share_a_jump_and_time_each_item_from_the_last():
    clock = FakeClock()
    times = ItemTimes(clock)
    clock.t += 10
    times.finished(["a", "a"])
    clock.t += 3
    times.finished(["b"])
    assert times.spent == {"a": [5.0, 5.0], "b": [3.0]}


def test_counted_eta_weighs_timed_and_untimed_claims_and_stays_steady():
    clock = FakeClock()
    kinds = ["timed", "counted", "counted", "timed", "counted", "timed"]
    eta = counted_eta(kinds, clock)
    assert eta(0, 6) is None
    clock.t += 60  # a timed claim: a minute
    eta(1, 6)
    clock.t += 2  # a counted one: two seconds
    assert eta(2, 6) == pytest.approx(2 * 60 + 2 * 2)  # left: counted, timed, counted, timed
    clock.t += 2
    assert eta(3, 6) == pytest.approx(2 * 60 + 1 * 2)
    # one kind of item: mean seconds x items left, whatever the last item took (no swing)
    one = counted_eta(clock=clock)
    for done, step in ((1, 10), (2, 10), (3, 1)):
        clock.t += step
        left = one(done, 10)
    assert left == pytest.approx(7 * 7.0)


def _render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue().strip()


def test_the_eta_column_counts_down_between_updates():
    clock = FakeClock()
    column = eta_column(rp, clock)
    with rp.Progress(console=Console(file=io.StringIO())) as bar:
        task = bar.add_task("x", total=10, finish_at=clock() + 90)
        first = _render(column.render(bar.tasks[task]))
        clock.t += 30
        second = _render(column.render(bar.tasks[task]))
        bar.update(task, finish_at=None)
        unknown = _render(column.render(bar.tasks[task]))
    assert (first, second, unknown) == ("eta 1:30", "eta 1:00", "eta -:--")
    assert clock_text(3723) == "1:02:03"


def test_a_spinner_message_shows_a_running_clock():
    clock = FakeClock(50.0)
    message = Clocked("exporting mobilenetv3_small", start=50.0, clock=clock)
    clock.t += 3
    first = _render(message)
    clock.t += 4
    second = _render(message)
    assert first == "exporting mobilenetv3_small  3s" and second == "exporting mobilenetv3_small  7s"


class _Terminal:
    """A stand-in for stderr on a terminal that keeps what the status line was given."""

    is_terminal = True

    def __init__(self):
        self.shown = []

    def status(self, renderable):
        shown = self.shown

        class Status:
            def __enter__(self):
                shown.append(renderable)
                return self

            def __exit__(self, *exc):
                return False

            def update(self, new):
                shown.append(new)

        return Status()


def test_the_status_line_of_a_command_redraws_with_the_clock_running(monkeypatch):
    from cnnprof.cli import common

    terminal, clock = _Terminal(), FakeClock(0.0)
    monkeypatch.setattr(common, "stderr_console", lambda: terminal)
    with common.progress(clock=clock) as update:
        clock.t = 1.0
        update("timing mobilenetv3_small")
    clock.t = 12.0  # no new message for a while: the same line, redrawn, shows the time going on
    drawn = [_render(terminal.shown[-1])]
    clock.t = 40.0
    drawn.append(_render(terminal.shown[-1]))
    assert drawn == ["timing mobilenetv3_small  12s", "timing mobilenetv3_small  40s"]


def test_the_plain_progress_line_ends_with_the_measured_eta(monkeypatch):
    from cnnprof.cli import common

    said, clock = [], FakeClock(0.0)
    monkeypatch.setattr(common, "say", said.append)
    monkeypatch.setattr(common, "stderr_console", lambda: Console(file=io.StringIO(), force_terminal=False))
    eta = counted_eta(clock=clock)
    with common.counted_progress(columns=None, fields=None, counts=lambda d, t: (d, t),
                                 line=lambda d, t, elapsed: f"{d}/{t}", eta=eta, clock=clock) as update:
        for done in range(4):
            update(done, 10)
            clock.t += 6.0
    assert said[-1] == "[   18s] 3/10, eta 0:42"  # 6 s an item, 7 items left
