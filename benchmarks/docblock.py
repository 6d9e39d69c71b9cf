"""Write a benchmark's table into its page under docs/, between two markers, so it is regenerated
rather than retyped:

    <!-- begin: NAME -->
    ... replaced on every run: the command, the date, the machine, then the table ...
    <!-- end: NAME -->

Everything outside the markers is left as it was; a page without both markers (in that order,
once each) is an error, and the page is written in one rename once the new text is complete.

A script that writes blocks names its page and blocks at the top (``DOCS_PAGE``, ``DOCS_BLOCKS``:
tests/test_docblocks.py reads them, and fails when a page lacks one of them), registers ``--docs
PAGE`` with :func:`add_option` (the page is checked before anything is measured) and prints its
report inside ``with captured(args.docs, NAME):``, which also writes what was printed into NAME's
block.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import shlex
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The first line of a block whose text was moved from an earlier page rather than written by a run.
CARRIED_OVER = "Carried over from an earlier run of this script; the next run of the command rewrites this block."
# The first line of a block no run has written yet.
NOT_YET = "No run of this script has written this block yet; the command below writes it."


def markers(name: str) -> tuple[str, str]:
    return f"<!-- begin: {name} -->", f"<!-- end: {name} -->"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with what lies between NAME's markers replaced by ``body`` (markers kept)."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"the page needs exactly one {begin} and one {end}")
    head, rest = text.split(begin)
    old, tail = rest.split(end)
    if not old.startswith("\n") and old:
        raise ValueError(f"{begin} must end its line")
    return f"{head}{begin}\n{body.strip(chr(10))}\n{end}{tail}"


def provenance(command: str, environment: str, when: datetime.datetime | None = None) -> str:
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return f"Written by `{command}` on {when:%Y-%m-%d %H:%M} UTC.\nEnvironment: {environment}.\n"


def command_line() -> str:
    """How this script was called, as a person would type it (from the repository root)."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script.name
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def write_block(page: str | Path, name: str, table: str, *, threads: int = 1) -> Path:
    """Replace NAME's block of ``page`` with the command, date, environment and ``table``."""
    from cnnprof.files import write_atomic
    from cnnprof.timing.environment import fingerprint

    path = Path(page)
    text = path.read_text(encoding="utf-8")
    body = provenance(command_line(), fingerprint(threads).describe()) + "\n" + table.strip("\n")
    return write_atomic(path, replace_block(text, name, body))


def check_page(page: str | Path, names: Iterable[str]) -> None:
    """Raise ValueError (OSError for a page that cannot be read) unless ``page`` has each name's
    markers, once each, begin before end."""
    text = Path(page).read_text(encoding="utf-8")
    for name in names:
        begin, end = markers(name)
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise ValueError(f"{page} needs exactly one {begin} followed by one {end}")


def add_option(parser: argparse.ArgumentParser, page: str, blocks: Iterable[str]) -> None:
    """``--docs PAGE``: also write the report into PAGE's blocks; a page without them is refused
    (one line, exit 2) before anything runs."""
    names = tuple(blocks)

    def page_with_blocks(value: str) -> Path:
        try:
            check_page(value, names)
        except (OSError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return Path(value)

    parser.add_argument("--docs", metavar="PAGE", type=page_with_blocks,
                        help=f"also write the report into PAGE ({page}), between the markers of "
                             f"{', '.join(names)}, with the command, date and environment")


class _Tee(io.TextIOBase):
    def __init__(self, out) -> None:
        self.out, self.kept = out, io.StringIO()

    def write(self, text: str) -> int:
        self.out.write(text)
        return self.kept.write(text)

    def flush(self) -> None:
        self.out.flush()


@contextlib.contextmanager
def captured(page: str | Path | None, name: str, *, threads: int = 1, fence: bool = False) -> Iterator[None]:
    """Print as usual; with a page, what the body printed is also written into NAME's block of
    it (in a code fence with ``fence``) once the body ends without an error."""
    if page is None:
        yield
        return
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    text = tee.kept.getvalue().strip("\n")
    write_block(page, name, f"```\n{text}\n```" if fence else text, threads=threads)
    print(f"wrote {name} into {page}", file=sys.stderr, flush=True)
