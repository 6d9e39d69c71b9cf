"""Opening a cnnprof page in a real browser for the tests: Debian's ``chromium`` (``.ci/run``
installs it when missing), driven with Playwright's Python package, with everything the page does
that a test may need to refuse recorded: dialogs (``alert``), console messages, uncaught errors and
every request."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`.ci/run` installs it)")

# Run before any script of the page: a record of every script that a payload in the data could run
# (each payload calls one of these or sets the global), read back by the test.
HOOK = """
window.__ran = [];
window.__cnnprofRan = function (what) { window.__ran.push(String(what)); };
"""


@dataclass
class Seen:
    dialogs: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]


@contextlib.contextmanager
def opened(path: Path, *, width: int = 1342, height: int = 900, wait_for_charts: bool = True) -> Iterator:
    """(page, seen): ``path`` opened in headless Chromium at ``width`` x ``height`` CSS pixels, the
    charts drawn (``body[data-charts-rendered]``) unless ``wait_for_charts`` is false."""
    sync_api = pytest.importorskip("playwright.sync_api")
    seen = Seen()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.add_init_script(HOOK)

            def dialog(d) -> None:
                seen.dialogs.append(d.message)
                d.dismiss()

            page.on("dialog", dialog)
            page.on("console", lambda m: seen.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: seen.errors.append(str(e)))
            page.on("request", lambda r: seen.requests.append(r.url))
            page.goto(path.as_uri())
            if wait_for_charts:
                assert drawn(page, seen, 60.0), ("the charts were never drawn", seen.errors, seen.console_errors())
            yield page, seen
        finally:
            browser.close()


def drawn(page, seen: Seen, timeout_s: float = 30.0) -> bool:
    """Whether the page's charts finish drawing within ``timeout_s``; gives up at once when the page
    raised an error or a payload ran (a broken page never sets the mark)."""
    import time

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if page.evaluate("document.body !== null && document.body.hasAttribute('data-charts-rendered')"):
            return True
        if seen.errors or seen.dialogs or page.evaluate("(window.__ran || []).length"):
            return False
        page.wait_for_timeout(200)
    return False
