"""``gate bisect``'s step with the measurement replaced: a candidate's speed is read from its
model file (``SPEED = 1.25``), so the bisection logic is tested without a clock.

Run by ``git bisect run`` (``python tests/bisect_stub.py STATE``) in place of the real step; the
tests also use ``fake_compare`` in-process for the bad end's measurement. Everything else (the
worktrees, importing and building the model at each candidate) is the real code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def fake_compare(plan, good_tree, cand_tree, on_progress=None):
    from cnnprof.gate.core import Verdict

    text = Path(cand_tree, "model.py").read_text()
    found = re.search(r"^SPEED = (\S+)", text, re.M)
    if found.group(1) == "'boom'":
        raise RuntimeError("the measurement itself failed")
    speed = float(found.group(1))
    verdict = "regression" if speed > plan.factor else "pass"
    return [Verdict(model=m, input="3x8x8", verdict=verdict, ratio=speed, ci_low=speed * 0.98, ci_high=speed * 1.02,
                    p_value=0.001 if speed != 1.0 else 0.5) for m in plan.models]


if __name__ == "__main__":
    from cnnprof.gate import bisect

    bisect.compare = fake_compare
    sys.exit(bisect.run_step(sys.argv[1]))
