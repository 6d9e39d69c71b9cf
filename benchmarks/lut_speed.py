"""How fast is this core right now? The machine's speed over time, and what the speed probe removes.

On a virtual machine the core runs faster or slower in spells of seconds, whatever runs inside
the guest (a neighbour on the host's sibling hyper-thread, shared memory bandwidth): no clock of
the guest leaves that out. This times FBNet-C (torch eager, 1 thread) again and again for
``--seconds``, each call preceded by ``cnnprof.lut.probe.SpeedProbe``, and reports:

* a map of the spells: per half second, the median call against the fastest half seconds
  (``.`` within 10%, ``o`` 10-30% slower, ``#`` more);
* the spread of the calls as the clock reads them, and after normalising each call by the probe
  around it (time x reference / probe): the coefficient of variation and IQR / median;
* the spread of one-second medians, raw and normalised (what a table entry or a measured network
  would move by from one second to the next).

``--networks N``: instead, N random FBNet networks timed whole in ``--rounds`` interleaved rounds
of ``--calls`` calls on ``--backend``, each call preceded by every probe: cnnprof's (the probe
network on the backend), on ONNX Runtime the same network run by torch, and the first probe
(matrix products and vector additions). Per probe, how much one network's round medians of
time / probe move (the noise floor of any accuracy figure) and how often two halves of the
rounds disagree by more than 10%.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_speed.py --seconds 60 --clock cpu
    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_speed.py --networks 20 --rounds 6 --backend onnxruntime

``--docs PAGE`` also writes the report into PAGE's ``lut-speed`` block (``lut-speed-networks``
with ``--networks``), with the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import time

from docblock import add_option, captured

DOCS_PAGE = "docs/lut.md"
DOCS_BLOCKS = ("lut-speed", "lut-speed-networks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clock", default="cpu", choices=("wall", "cpu"))
    parser.add_argument("--model", default="fbnet_c")
    parser.add_argument("--networks", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=5, help="with --networks: timed calls a network a round")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--allocator", default="steady", choices=("steady", "default"),
                        help="malloc while timing (cnnprof.lut.probe.use_allocator)")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    with captured(args.docs, "lut-speed-networks" if args.networks else "lut-speed"):
        return networks(args) if args.networks else spells(args)


def spells(args) -> int:
    import numpy as np
    import torch

    from cnnprof import targets
    from cnnprof.lut.probe import SpeedProbe, clock_ns

    torch.set_num_threads(1)
    target = targets.resolve_targets([args.model])[0]
    model = target.build()
    x = torch.randn(1, *target.input, generator=torch.Generator().manual_seed(0))
    probe = SpeedProbe(args.clock)
    with torch.inference_mode():
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

    print(f"### Speed of the core over {args.seconds:.0f} s ({args.model}, torch eager, 1 thread, {args.clock} clock)\n")
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


class KernelProbe:
    """The first speed probe, kept here for comparison: two 256x256 matrix products and two 2 MiB
    vector additions (fp32, torch), timed after an untimed pass."""

    def __init__(self, clock: str):
        import torch

        from cnnprof.lut.probe import clock_ns

        gen = torch.Generator().manual_seed(0)
        self.a, self.b, self.c = torch.randn(256, 256, generator=gen), torch.randn(256, 256, generator=gen), \
            torch.empty(256, 256)
        self.u, self.v, self.w = torch.randn(1 << 19, generator=gen), torch.randn(1 << 19, generator=gen), \
            torch.empty(1 << 19)
        self.read = clock_ns(clock)

    def _pass(self) -> None:
        import torch

        for _ in range(2):
            torch.mm(self.a, self.b, out=self.c)
            torch.add(self.u, self.v, out=self.w)

    def run(self) -> float:
        self._pass()
        start = self.read()
        self._pass()
        return (self.read() - start) / 1e6


def networks(args) -> int:
    """N random networks, each call preceded by every probe; per probe, how much a network's
    round medians of time / probe move (the noise floor of any accuracy figure)."""
    import tempfile

    import numpy as np
    import torch

    from cnnprof.lut.probe import SpeedProbe, clock_ns, use_allocator
    from cnnprof.lut.space import space_network
    from cnnprof.models.fbnet import FBNET_SPACE
    from cnnprof.onnx_export import cached_export
    from cnnprof.timing.ort import make_session

    torch.set_num_threads(1)
    use_allocator(args.allocator)
    rng = np.random.default_rng(2024)
    archs = [[FBNET_SPACE.names[i] for i in rng.integers(0, 9, len(FBNET_SPACE.layers))] for _ in range(args.networks)]
    x = torch.randn(1, *FBNET_SPACE.input, generator=torch.Generator().manual_seed(0))
    read = clock_ns(args.clock)
    probes = {f"the probe network ({args.backend}, cnnprof's probe)": SpeedProbe(args.clock, backend=args.backend)}
    if args.backend != "torch":
        probes["the probe network run by torch"] = SpeedProbe(args.clock, backend="torch")
    probes["kernels: 2 mm 256^3 + 2 add 2^19 (the first probe)"] = KernelProbe(args.clock)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        calls = []
        for j, arch in enumerate(archs):
            model = space_network(FBNET_SPACE, arch).eval()
            if args.backend == "torch":
                calls.append(lambda m=model: m(x))
            else:
                path, _, _ = cached_export(model, x, name=f"net{j}", folder=tmp)
                session = make_session(path, threads=1)
                feed = {session.get_inputs()[0].name: x.numpy()}
                calls.append(lambda s=session, f=feed: s.run(None, f))
        raw = np.zeros((args.rounds, args.networks, args.calls))
        probed = {k: np.zeros_like(raw) for k in probes}
        for call in calls:
            call()
        for r in range(args.rounds):
            for j, call in enumerate(calls):
                call()
                for p in probes.values():
                    p.run()
                for c in range(args.calls):
                    for k, p in probes.items():
                        probed[k][r, j, c] = p.run()
                    start = read()
                    call()
                    raw[r, j, c] = (read() - start) / 1e6
            print(f"round {r + 1}/{args.rounds}", file=os.sys.stderr, flush=True)
    print(f"### {args.networks} networks x {args.rounds} rounds x {args.calls} calls ({args.backend}, 1 thread, "
          f"{args.clock} clock, {args.allocator} allocator), each call preceded by every probe\n")
    print(f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; probe medians: "
          + ", ".join(f"{k.split(' (')[0]} {np.median(v):.2f} ms" for k, v in probed.items()) + "\n")
    print("| a network's time | median CV of its round medians | round medians off the network's median by > 10% | "
          "by > 5% | median over the first half of the rounds vs the second, off by > 10% |\n|---|---:|---:|---:|---:|")
    rows = [("as the clock reads it", np.median(raw, axis=2))]
    rows += [(f"/ {k}", np.median(raw / v, axis=2)) for k, v in probed.items()]
    half = args.rounds // 2
    for name, v in rows:
        cv = np.median(v.std(axis=0) / v.mean(axis=0))
        off = np.abs(v / np.median(v, axis=0) - 1)
        a, b = np.median(v[:half], axis=0), np.median(v[half:2 * half], axis=0)
        print(f"| {name} | {cv:.1%} | {np.mean(off > 0.10):.0%} | {np.mean(off > 0.05):.0%} | "
              f"{np.mean(np.abs(a / b - 1) > 0.10):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
