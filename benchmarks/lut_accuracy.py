"""How good is the sum-of-blocks latency prediction on this machine, and how fast is it?

Builds the FBNet latency table if it is missing (``cnnprof lut build``, same defaults), then:

1. the vectorised predictor's rate: sampling and predicting 10^6 architectures, a few repeats;
2. FBNet-A/B/C: predicted (raw sum, calibrated) vs measured whole network;
3. a uniform sample of the space: the share within +-10 % (nn-Meter's accuracy figure), |error|
   mean / median / p90, the median ratio predicted / measured, Spearman's rank correlation.

Prints a markdown report on stdout (progress on stderr). Not part of the test suite: it times
things (a few minutes on a 2-core machine; note the machine's load, printed with the report).

    .venv/bin/python benchmarks/lut_accuracy.py --sample 50
    .venv/bin/python benchmarks/lut_accuracy.py --clock cpu --sample 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    parser.add_argument("--table", default=None, help="table file (default: models/lut-<backend>-t<threads>.json)")
    parser.add_argument("--sample", type=int, default=50, help="sampled architectures to time whole")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-n", type=int, default=1_000_000, help="architectures for the rate figure")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the rate figure")
    args = parser.parse_args(argv)

    from cnnprof import api
    from cnnprof.lut import builder, evaluate
    from cnnprof.lut.predict import SpaceMatrix, prediction_rate
    from cnnprof.lut.table import default_path, load

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    path = args.table or str(default_path(args.backend, args.threads, args.clock))
    load_before = os.getloadavg()
    if not os.path.exists(path):
        say(f"building {path}")
        jobs, index = builder.fbnet_space_jobs()
        t0 = time.perf_counter()
        table, _ = builder.build(jobs, path=path, backend=args.backend, threads=args.threads, clock=args.clock,
                                      spaces={builder.FBNET_SPACE_NAME: index})
        builder.calibrate(table, path=path)
        say(f"built in {time.perf_counter() - t0:.0f} s")
    table = load(path)
    matrix = SpaceMatrix.from_table(table, builder.FBNET_SPACE_NAME)

    rates = [prediction_rate(matrix, args.rate_n, seed=args.seed + i) for i in range(args.repeats)]
    targets = api.resolve_targets(["fbnet_a", "fbnet_b", "fbnet_c"])
    say("timing FBNet-A/B/C and the sample (whole networks)")
    result = evaluate.predict(table, targets, sample=args.sample, seed=args.seed, measure=True,
                              on_progress=say, on_warning=lambda m: say(f"warning: {m}"))
    load_after = os.getloadavg()

    print(f"## Latency-table accuracy ({table.backend}, {table.threads} thread(s), {table.clock} clock)\n")
    print(f"table: {path}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs\n")
    print("| architectures | sample s | predict s | per second |\n|---:|---:|---:|---:|")
    for r in rates:
        print(f"| {r['n']:,} | {r['sample_s']:.3f} | {r['predict_s']:.3f} | {r['rate_per_s']:,.0f} |")
    print("\n| network | predicted ms | calibrated ms | measured ms | error | calibrated error |\n"
          "|---|---:|---:|---:|---:|---:|")
    for row in result.rows:
        if not row.model.startswith("sample"):
            cal = row.calibrated_ms
            print(f"| {row.model} | {row.predicted_ms:.2f} | {cal:.2f} | {row.measured_ms:.2f} | "
                  f"{100 * row.error:+.1f}% | {100 * row.calibrated_error:+.1f}% |" if cal is not None else
                  f"| {row.model} | {row.predicted_ms:.2f} | - | {row.measured_ms:.2f} | "
                  f"{100 * row.error:+.1f}% | - |")
    print("\n| group | metric | raw sum | calibrated |\n|---|---|---:|---:|")
    def cell(value: float | None, kind: str) -> str:
        return "-" if value is None else (f"{100 * value:.1f}%" if kind == "pct" else f"{value:.3g}")

    for s in result.summary:
        metric = s.metric.replace("|", "\\|")
        print(f"| {s.group} | {metric} | {cell(s.raw, s.kind)} | {cell(s.calibrated, s.kind)} |")
    if table.calibration:
        print(f"\ncalibration scale {table.calibration['scale']:.3f} (fitted on "
              f"{', '.join(table.calibration['fitted_on'])} by `lut build`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
