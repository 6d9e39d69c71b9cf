"""The words claim rows hold: where a claim comes from (its ``source`` starts with one of these
prefixes) and which clock a timing was read on (``Measurement.clock``).

The bottom of ``claims/``: ``claims/__init__`` re-exports these, and ``common.py`` (which the
package imports) takes them from here.
"""

from __future__ import annotations

# How a timing was read (``Measurement.clock``): the calling thread's CPU clock, the wall clock, or
# CUDA events (a GPU's own clock)
THREAD_CLOCK, WALL_CLOCK, CUDA_CLOCK = "thread CPU", "wall", "CUDA events"

SEED_PREFIX = "seed §"
PAPER_PREFIX = "paper: "
RELEASED_PREFIX = "released: "
SOURCE_PREFIXES = (SEED_PREFIX, PAPER_PREFIX, RELEASED_PREFIX)
