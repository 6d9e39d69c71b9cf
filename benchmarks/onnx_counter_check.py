"""The ONNX-graph MAC counter against fvcore's conv + linear count, for every registered model.

Each model is exported (at its native input, TorchScript exporter, opset 17), its graph counted
by cnnprof.onnx_count (shapes only) and its module by cnnprof.counting (fvcore trace). They must
agree within 0.5%; where they do not, the per-layer difference is printed.

Usage: .venv/bin/python benchmarks/onnx_counter_check.py [PATTERN] [--docs docs/counting.md]
(default: all models). ``--docs PAGE`` also writes the table into PAGE's ``onnx-counter-check``
block, with the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from cnnprof import api
from cnnprof.exporting import export_and_check
from docblock import add_option

DOCS_PAGE = "docs/counting.md"
DOCS_BLOCKS = ("onnx-counter-check",)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", default="*")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args()
    targets = api.resolve_targets([args.pattern])
    table: list[str] = []

    def out(line: str = "", **kwargs) -> None:
        """Print a line of the table and keep it for --docs."""
        table.append(line)
        print(line, **kwargs)

    out("| model | input | MACs fvcore | MACs ONNX graph | diff | status | max abs ORT - torch | export s |")
    out("|---|---|---:|---:|---:|---|---:|---:|")
    worst = 0.0
    disagree = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            row = export_and_check(target, output=f"{tmp}/{target.name}.onnx")
            worst = max(worst, row.macs_rel_diff)
            out(f"| {row.model} | {row.input} | {row.macs:,} | {row.macs_onnx:,} | {100 * row.macs_rel_diff:.4f}% | "
                f"{row.counts_status} | {row.parity_max_abs:.2e} | {row.export_s:.1f} |", flush=True)
            if not row.counters_agree:
                disagree.append(row)
    out(f"\n{len(targets)} models, largest difference {100 * worst:.4f}%, "
        f"{len(disagree)} over 0.5%; {time.perf_counter() - t_all:.0f} s")
    for row in disagree:
        out(f"\n{row.model}: per-layer differences")
        for d in row.layer_diffs:
            out(f"  {d.module}: fvcore {d.macs_fvcore:,} vs ONNX {d.macs_onnx:,}")
    if args.docs:
        from docblock import write_block

        write_block(args.docs, "onnx-counter-check", "\n".join(table))
        print(f"wrote the table into {args.docs}", file=sys.stderr)
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
