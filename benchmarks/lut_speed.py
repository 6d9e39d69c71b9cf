"""How fast is this core right now? The machine's speed over time, and what the speed probe removes.

On a virtual machine the core runs faster or slower in spells of seconds, whatever runs inside
the guest (a neighbour on the host's sibling hyper-thread, shared memory bandwidth): no clock of
the guest leaves that out. This times FBNet-C (torch eager, 1 thread) again and again for
``--seconds``, each call preceded by ``cnnprof.lut.measure.SpeedProbe``, and reports:

* a map of the spells: per half second, the median call against the fastest half seconds
  (``.`` within 10%, ``o`` 10-30% slower, ``#`` more);
* the spread of the calls as the clock reads them, and after normalising each call by the probe
  around it (time x reference / probe): the coefficient of variation and IQR / median;
* the spread of one-second medians, raw and normalised (what a table entry or a measured network
  would move by from one second to the next).

``--networks N``: instead, N random FBNet networks timed whole in ``--rounds`` interleaved rounds
(``lut.measure.make_timer`` with the probe, as ``lut predict --measure`` times them) on
``--backend``: how much one network's round medians move, raw and at the probe's reference speed
(the noise floor of any accuracy figure), and how often two rounds of the same network differ
by more than 10%.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_speed.py --seconds 60 --clock cpu
    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_speed.py --networks 20 --rounds 5 --backend onnxruntime
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clock", default="cpu", choices=("wall", "cpu"))
    parser.add_argument("--model", default="fbnet_c")
    parser.add_argument("--networks", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--allocator", default="default", choices=("steady", "default"),
                        help="malloc while timing (cnnprof.lut.measure.use_allocator)")
    args = parser.parse_args(argv)
    if args.networks:
        return networks(args)

    import numpy as np
    import torch

    from cnnprof import targets
    from cnnprof.lut.measure import SpeedProbe, clock_ns

    torch.set_num_threads(1)
    target = targets.resolve_targets([args.model])[0]
    model = target.build()
    x = torch.randn(1, *target.input, generator=torch.Generator().manual_seed(0))
    probe = SpeedProbe(args.clock)
    reference = probe.settle()
    read = clock_ns(args.clock)
    load0 = os.getloadavg()[0]
    stamps, calls, probes = [], [], []
    end = time.perf_counter() + args.seconds
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        while time.perf_counter() < end:
            probes.append(probe.run())
            start = read()
            model(x)
            calls.append((read() - start) / 1e6)
            stamps.append(time.perf_counter())
        probes.append(probe.run())
    t = np.array(stamps) - stamps[0]
    raw = np.array(calls)
    p = np.array(probes)
    factor = reference / ((p[:-1] + p[1:]) / 2)
    norm = raw * factor

    def spread(v: np.ndarray) -> tuple[float, float]:
        q75, q25 = np.percentile(v, [75, 25])
        return float(v.std() / v.mean()), float((q75 - q25) / np.median(v))

    bins = (t / 0.5).astype(int)
    half = np.array([np.median(raw[bins == b]) for b in range(bins.max() + 1) if np.any(bins == b)])
    fast = np.percentile(half, 10)
    spells = "".join("." if v < 1.1 * fast else ("o" if v < 1.3 * fast else "#") for v in half)
    secs = (t / 1.0).astype(int)
    per_s_raw = np.array([np.median(raw[secs == s]) for s in range(secs.max() + 1) if np.any(secs == s)])
    per_s_norm = np.array([np.median(norm[secs == s]) for s in range(secs.max() + 1) if np.any(secs == s)])

    print(f"## Speed of the core over {args.seconds:.0f} s ({args.model}, torch eager, 1 thread, {args.clock} clock)\n")
    print(f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; {len(raw)} calls; probe "
          f"reference {reference:.3f} ms, probe median {np.median(p):.3f} ms, min {p.min():.3f}, max {p.max():.3f}\n")
    print("Half-second spells (`.` within 10% of the fastest, `o` 10-30% slower, `#` more):\n")
    print("```\n" + "\n".join(spells[i:i + 80] for i in range(0, len(spells), 80)) + "\n```\n")
    print(f"share of half seconds slower than 1.1x the fastest: {np.mean(half >= 1.1 * fast):.0%}\n")
    print("| | median ms | CV of calls | IQR / median of calls | CV of one-second medians | max/min of one-second "
          "medians |\n|---|---:|---:|---:|---:|---:|")
    for name, v, s in (("clock's reading", raw, per_s_raw), ("at the probe's reference speed", norm, per_s_norm)):
        cv, iqr = spread(v)
        print(f"| {name} | {np.median(v):.2f} | {cv:.1%} | {iqr:.1%} | {s.std() / s.mean():.1%} | "
              f"{s.max() / s.min():.2f} |")
    corr = np.corrcoef(raw, (p[:-1] + p[1:]) / 2)[0, 1]
    print(f"\ncorrelation of the call's time with the probe around it: {corr:.2f}")
    return 0


def networks(args) -> int:
    import tempfile

    import numpy as np
    import torch

    from cnnprof.lut.context import space_network
    from cnnprof.lut.measure import SpeedProbe, make_timer, per_round
    from cnnprof.models.fbnet import FBNET_SPACE
    from cnnprof.timing.protocol import LUT_NETWORK

    torch.set_num_threads(1)
    rng = np.random.default_rng(2024)
    archs = [[FBNET_SPACE.names[i] for i in rng.integers(0, 9, len(FBNET_SPACE.layers))] for _ in range(args.networks)]
    probe = SpeedProbe(args.clock)
    probe.settle()
    load0 = os.getloadavg()[0]
    raw = np.zeros((args.rounds, args.networks))
    norm = np.zeros_like(raw)
    with tempfile.TemporaryDirectory() as tmp:
        timer = make_timer(backend=args.backend, threads=1, protocol=per_round(LUT_NETWORK, 3), onnx_dir=tmp,
                           clock=args.clock, probe=probe, allocator=args.allocator)
        models = [space_network(FBNET_SPACE, a) for a in archs]
        for r in range(args.rounds):
            for j, m in enumerate(models):
                t = timer(m, FBNET_SPACE.input, f"net{j}")
                raw[r, j], norm[r, j] = t.raw_median_ms, t.median_ms
    print(f"## {args.networks} networks x {args.rounds} rounds ({args.backend}, 1 thread, {args.clock} clock, "
          f"{args.allocator} allocator)\n")
    print(f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print("| | median CV of a network's round medians | rounds off their network's median by > 10% | "
          "by > 5% | a network's median over rounds 1-2 vs 3-4, off by > 10% |\n|---|---:|---:|---:|---:|")
    for name, v in (("clock's reading", raw), ("at the probe's reference speed", norm)):
        cv = np.median(v.std(axis=0) / v.mean(axis=0))
        off = np.abs(v / np.median(v, axis=0) - 1)
        half = args.rounds // 2
        a, b = np.median(v[:half], axis=0), np.median(v[half:2 * half], axis=0)
        print(f"| {name} | {cv:.1%} | {np.mean(off > 0.10):.0%} | {np.mean(off > 0.05):.0%} | "
              f"{np.mean(np.abs(a / b - 1) > 0.10):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
