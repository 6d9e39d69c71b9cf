"""The terminal: one place that makes rich consoles and prints plain lines.

Data goes to stdout (``stdout_console``); progress, warnings and where files went go to stderr
(``say``). Messages are printed as plain text: a model name or path with brackets in it is never
read as rich markup, and long lines are not wrapped (they are copied from logs).
"""

from __future__ import annotations


def stderr_console():
    """A console on stderr that prints text as given: no markup, no highlighting, no wrapping."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def say(message: str) -> None:
    """One plain line on stderr."""
    stderr_console().print(message)


def stdout_console():
    """A console for stdout; wide when stdout is not a terminal (pipes, files, CI logs), so
    tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    return console if console.is_terminal else Console(width=200, highlight=False, markup=False)
