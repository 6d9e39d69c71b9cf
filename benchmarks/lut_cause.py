"""Why the sum of isolated block latencies falls short of the whole network (torch eager, 1 thread).

For FBNet-A/B/C (or the models given) every part (stem, each block, head) is timed five ways,
in interleaved rounds so that all see the same machine state:

* ``iso``: in isolation on a seeded random input, called again and again (how ``lut build``
  measured a table entry before): the block's weights and input stay hot in the caches and the
  allocator hands back the same freed buffers every call;
* ``iso-real``: the same, on the block's real input (the preceding block's output), to rule out
  the values (ReLU zeros, denormals);
* ``iso-flush``: in isolation with a cache flush between calls (a buffer of ``--flush-mib`` MiB
  written, untimed), the working set evicted as a network would;
* ``in-place``: inside the whole network, read by forward pre/post hooks on each part (the time
  between hooks, outside every part, is the framework's glue);
* ``prefix``: the difference between the network cut after part k and cut after part k-1, each
  timed whole (no hooks).

Each call is read on two clocks (the thread's CPU time and ``perf_counter``) and with the
thread's minor page faults (``getrusage(RUSAGE_THREAD)``): a fresh page the kernel has to map
and zero is a fault, and its cost is system time of the calling thread.

Prints a markdown report: per model, the sums by method and clock; per part type, in-place /
isolated; the parts with the largest gap, their faults per call. Takes a few minutes on 2 cores.

``--backend onnxruntime``: each part exported and timed alone, against the same part's share of
the whole network's run in ONNX Runtime's profiler (``lut.measure.make_in_place_timer``), thread
CPU time: what fusion and the network-wide blocked layout change about a "block".

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_cause.py
    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_cause.py --models fbnet_b --rounds 5
    PYTHONPATH=$PWD .venv/bin/python benchmarks/lut_cause.py --backend onnxruntime

``--docs PAGE`` also writes the report into PAGE's ``lut-cause`` block (``lut-cause-onnxruntime``
with ``--backend onnxruntime``), with the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections import defaultdict

from docblock import add_option, captured

DOCS_PAGE = "docs/lut.md"
DOCS_BLOCKS = ("lut-cause", "lut-cause-onnxruntime")


def now() -> tuple[int, float, int]:
    return time.thread_time_ns(), time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def since(start: tuple[int, float, int]) -> tuple[float, float, int]:
    end = now()
    return (end[0] - start[0]) / 1e6, (end[1] - start[1]) * 1e3, end[2] - start[2]


def timed_calls(fn, n: int, warmup: int, between=None) -> list[tuple[float, float, int]]:
    """(cpu ms, wall ms, minor faults) of ``n`` calls of ``fn`` after ``warmup``; ``between``
    runs untimed before each call."""
    out = []
    for i in range(warmup + n):
        if between is not None:
            between()
        start = now()
        fn()
        if i >= warmup:
            out.append(since(start))
    return out


def med(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def part_type(label: str, module) -> str:
    """stem / head / skip / kK_eE[_g2] of a part (FBNet blocks), or the class."""
    from cnnprof.models.blocks.core import ConvBNAct, MBConv
    from cnnprof.models.blocks.fbnet import SkipBlock

    if label in ("stem", "head"):
        return label
    if isinstance(module, SkipBlock):
        return "skip" if type(module.conv).__name__ == "Identity" else "skip(conv)"
    if isinstance(module, MBConv):
        mid = module.conv_dw.conv.in_channels
        cin = module.conv_pw.conv.in_channels if isinstance(module.conv_pw, ConvBNAct) else mid
        kind = f"k{module.conv_dw.conv.kernel_size[0]}_e{round(mid / cin)}"
        return kind + ("_g2" if module.conv_pwl.conv.groups > 1 else "")
    return type(module).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fbnet_a,fbnet_b,fbnet_c")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15, help="timed calls per part and method per round")
    parser.add_argument("--whole-calls", type=int, default=15, help="timed calls of a whole network per round")
    parser.add_argument("--flush-mib", type=int, default=64)
    parser.add_argument("--no-prefix", action="store_true", help="skip the prefix-difference method")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--table", default=None, help="an isolated table (lut build --entries isolated) to show "
                        "beside: its entries for the same parts, as the old method measured them")
    add_option(parser, DOCS_PAGE, DOCS_BLOCKS)
    args = parser.parse_args(argv)
    with captured(args.docs, "lut-cause-onnxruntime" if args.backend == "onnxruntime" else "lut-cause"):
        return main_ort(args) if args.backend == "onnxruntime" else main_torch(args)


def main_torch(args) -> int:
    import torch
    from torch import nn

    from cnnprof import targets
    from cnnprof.lut.keys import split

    torch.set_num_threads(1)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    flush_buf = torch.zeros(args.flush_mib * (1 << 20) // 4)

    def flush() -> None:
        flush_buf.add_(1.0)

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    setups = []
    for target in targets.resolve_targets([m for m in args.models.split(",") if m]):
        model = target.build().eval()
        parts = split(model, target.input, name=target.name)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, *target.input, generator=gen)
        real, y = [], x
        with torch.inference_mode():
            for p in parts:
                real.append(y.clone())
                y = p.module(y)
        rand = [torch.randn(1, *p.input, generator=torch.Generator().manual_seed(1)) for p in parts]
        # the modules as the network runs them: stem, blocks, model.head (the split's head is the
        # model with identities, which runs model.head after two identities)
        live = [model.stem] + [p.module for p in parts[1:-1]] + [model.head]
        prefixes = [nn.Sequential(*live[:k + 1]) for k in range(len(live))]
        setups.append((target, model, parts, real, rand, live, prefixes, x))

    data: dict = defaultdict(list)  # (model, method, part index) -> samples
    with torch.inference_mode():
        for r in range(args.rounds):
            for target, model, parts, real, rand, live, prefixes, x in setups:
                name = target.name
                say(f"round {r + 1}/{args.rounds}: {name}")
                data[(name, "whole", -1)] += timed_calls(lambda: model(x), args.whole_calls, 3)
                # in place, with hooks
                marks: list[tuple[int, str, tuple]] = []
                handles = []
                for i, m in enumerate(live):
                    handles.append(m.register_forward_pre_hook(lambda mod, inp, i=i: marks.append((i, "pre", now()))))
                    handles.append(m.register_forward_hook(lambda mod, inp, out, i=i: marks.append((i, "post", now()))))
                hooked = []
                for c in range(args.whole_calls + 3):
                    marks.clear()
                    start = now()
                    model(x)
                    total = since(start)
                    if c < 3:
                        continue
                    hooked.append(total)
                    opened = {}
                    for i, kind, t in marks:
                        if kind == "pre":
                            opened[i] = t
                        else:
                            s = opened.pop(i)
                            data[(name, "in-place", i)].append(
                                ((t[0] - s[0]) / 1e6, (t[1] - s[1]) * 1e3, t[2] - s[2]))
                for h in handles:
                    h.remove()
                data[(name, "whole-hooked", -1)] += hooked
                # in isolation
                for i, p in enumerate(parts):
                    m = p.module
                    data[(name, "iso", i)] += timed_calls(lambda: m(rand[i]), args.calls, 3)
                    data[(name, "iso-real", i)] += timed_calls(lambda: m(real[i]), args.calls, 3)
                    data[(name, "iso-flush", i)] += timed_calls(lambda: m(rand[i]), args.calls, 2, between=flush)
                if not args.no_prefix:
                    for k, pre in enumerate(prefixes):
                        data[(name, "prefix", k)] += timed_calls(lambda: pre(x), max(5, args.whole_calls // 2), 2)
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()

    def stat(name, method, i, field):
        return med(s[field] for s in data[(name, method, i)])

    entries = {}
    if args.table:
        from cnnprof.lut.table import load

        table = load(args.table)
        for target, _, parts, *_ in setups:
            for i, p in enumerate(parts):
                e = table.entries.get(p.key)
                entries[(target.name, i)] = e.median_ms if e is not None else float("nan")

    print("### Where the sum of isolated blocks falls short (torch eager, 1 thread)\n")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs; "
          f"{args.rounds} interleaved rounds, {args.calls} calls per part and method per round, flush "
          f"{args.flush_mib} MiB; {elapsed:.0f} s\n")
    methods = ["iso", "iso-real", "iso-flush", "in-place"] + ([] if args.no_prefix else ["prefix"])
    for field, clock in ((0, "thread CPU time"), (1, "wall clock")):
        print(f"#### Sums of the parts against the whole network, {clock} (ms; ratio sum / whole)\n")
        print("| model | whole | whole with hooks | " + " | ".join(methods) + " | faults per call: whole, iso sum |")
        print("|---|---:|---:|" + "---:|" * len(methods) + "---:|")
        for target, _, parts, *_ in setups:
            name = target.name
            whole = stat(name, "whole", -1, field)
            cells = []
            for method in methods:
                n = len(parts)
                if method == "prefix":
                    pre = [stat(name, "prefix", k, field) for k in range(n)]
                    total = pre[-1]
                else:
                    total = sum(stat(name, method, i, field) for i in range(n))
                cells.append(f"{total:.2f} ({total / whole:.3f})")
            faults = f"{stat(name, 'whole', -1, 2):.0f}, {sum(stat(name, 'iso', i, 2) for i in range(len(parts))):.0f}"
            print(f"| {name} | {whole:.2f} | {stat(name, 'whole-hooked', -1, field):.2f} | " + " | ".join(cells)
                  + f" | {faults} |")
        print()
    if entries:
        print(f"#### The isolated table `{args.table}` ({table.clock} clock) against the whole network and in place\n")
        print("| model | whole (thread CPU) | table sum | ratio | in-place sum | largest gaps in place - table |")
        print("|---|---:|---:|---:|---:|---|")
        for target, _, parts, *_ in setups:
            name = target.name
            whole = stat(name, "whole", -1, 0)
            tsum = sum(entries[(name, i)] for i in range(len(parts)))
            gaps = sorted(((stat(name, "in-place", i, 0) - entries[(name, i)], parts[i].label,
                            part_type(parts[i].label, parts[i].module)) for i in range(len(parts))), reverse=True)[:3]
            gap_text = ", ".join(f"{label} {kind} {g:+.2f} ms" for g, label, kind in gaps)
            inplace = sum(stat(name, "in-place", i, 0) for i in range(len(parts)))
            print(f"| {name} | {whole:.2f} | {tsum:.2f} | {tsum / whole:.3f} | {inplace:.2f} | {gap_text} |")
        print()

    field = 0
    print("#### By part type: sum over FBNet-A/B/C of in-place and isolated medians (thread CPU time)\n")
    print("| part type | parts | iso ms | iso-flush ms | in-place ms | in-place / iso | in-place / iso-flush | "
          "faults per call iso | faults per call in-place |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_type: dict[str, list] = defaultdict(list)
    for target, _, parts, *_ in setups:
        for i, p in enumerate(parts):
            by_type[part_type(p.label, p.module)].append((target.name, i))
    for kind, members in sorted(by_type.items()):
        iso = sum(stat(n, "iso", i, field) for n, i in members)
        fl = sum(stat(n, "iso-flush", i, field) for n, i in members)
        inp = sum(stat(n, "in-place", i, field) for n, i in members)
        fi = sum(stat(n, "iso", i, 2) for n, i in members) / len(members)
        fp = sum(stat(n, "in-place", i, 2) for n, i in members) / len(members)
        print(f"| {kind} | {len(members)} | {iso:.2f} | {fl:.2f} | {inp:.2f} | {inp / iso:.3f} | {inp / fl:.3f} | "
              f"{fi:.1f} | {fp:.1f} |")
    print()
    for target, _, parts, *_ in setups:
        name = target.name
        print(f"#### {name}: every part (thread CPU ms; faults = minor page faults per call)\n")
        cols = "| part | type | input | iso | iso-real | iso-flush | in-place |"
        cols += "" if args.no_prefix else " prefix diff |"
        cols += " table |" if entries else ""
        print(cols + " in-place - iso | faults iso | faults in-place |")
        print("|---|---|---|---:|---:|---:|---:|" + ("" if args.no_prefix else "---:|") + ("---:|" if entries else "")
              + "---:|---:|---:|")
        prev = 0.0
        for i, p in enumerate(parts):
            row = [stat(name, m, i, field) for m in ("iso", "iso-real", "iso-flush", "in-place")]
            cells = [f"{v:.3f}" for v in row]
            if not args.no_prefix:
                cur = stat(name, "prefix", i, field)
                cells.append(f"{cur - prev:.3f}")
                prev = cur
            if entries:
                cells.append(f"{entries[(name, i)]:.3f}")
            shape = "x".join(str(s) for s in p.input)
            print(f"| {p.label} | {part_type(p.label, p.module)} | {shape} | " + " | ".join(cells)
                  + f" | {row[3] - row[0]:+.3f} | {stat(name, 'iso', i, 2):.0f} | {stat(name, 'in-place', i, 2):.0f} |")
        print()
    return 0


def main_ort(args) -> int:
    """Isolated exports against in-place profiler shares, ONNX Runtime, 1 thread, thread CPU time."""
    import dataclasses
    import tempfile

    import torch

    from cnnprof import targets
    from cnnprof.lut.keys import split
    from cnnprof.lut.measure import combine, make_in_place_timer, make_timer
    from cnnprof.timing.protocol import LUT_CONTEXT, LUT_ENTRY

    torch.set_num_threads(1)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    entry = dataclasses.replace(LUT_ENTRY, min_time_s=LUT_ENTRY.min_time_s / args.rounds)
    setups = []
    for target in targets.resolve_targets([m for m in args.models.split(",") if m]):
        model = target.build().eval()
        setups.append((target, model, split(model, target.input, name=target.name)))
    iso: dict = defaultdict(list)
    inplace: dict = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="cnnprof-cause-") as onnx_dir:
        alone = make_timer(backend="onnxruntime", threads=1, protocol=entry, onnx_dir=onnx_dir, clock="cpu")
        in_net = make_in_place_timer(backend="onnxruntime", threads=1, protocol=LUT_CONTEXT, onnx_dir=onnx_dir,
                                     clock="cpu")
        for r in range(args.rounds):
            for target, model, parts in setups:
                say(f"round {r + 1}/{args.rounds}: {target.name}")
                inplace[target.name].append(in_net(model, target.input, parts, target.name))
                for i, p in enumerate(parts):
                    iso[(target.name, i)].append(alone(p.module, p.input, f"{target.name} {p.label}"))
    print("### ONNX Runtime: parts exported alone against their share of the network's run (1 thread, thread CPU "
          "time)\n")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {args.rounds} interleaved "
          f"rounds; {time.perf_counter() - t_start:.0f} s\n")
    print("| model | whole | sum of parts alone | ratio | in-place parts + glue | of which glue |")
    print("|---|---:|---:|---:|---:|---:|")
    for target, _, parts in setups:
        runs = inplace[target.name]
        whole = statistics.median(x.whole.median_ms for x in runs)
        alone_sum = sum(combine(iso[(target.name, i)]).median_ms for i in range(len(parts)))
        glue = statistics.median(x.glue_ms for x in runs)
        print(f"| {target.name} | {whole:.2f} | {alone_sum:.2f} | {alone_sum / whole:.3f} | {whole:.2f} | {glue:.3f} |")
    print()
    table = None
    if args.table:
        from cnnprof.lut.predict import parts_with_glue
        from cnnprof.lut.table import load

        table = load(args.table)
        print(f"#### The table `{args.table}` ({table.mode} entries) for the same parts\n")
        print("| model | whole (in place, plain calls) | table sum (with glue) | ratio |\n|---|---:|---:|---:|")
        for target, _, parts in setups:
            whole = statistics.median(x.whole.median_ms for x in inplace[target.name])
            keys = [p.key for p in parts_with_glue(table, parts)]
            tsum = sum(table.entries[k].latency_ms for k in keys if k in table.entries)
            print(f"| {target.name} | {whole:.2f} | {tsum:.2f} | {tsum / whole:.3f} |")
        print()
    for target, _, parts in setups:
        runs = inplace[target.name]
        print(f"#### {target.name}: every part (thread CPU ms)\n")
        extra = " table |" if table else ""
        print(f"| part | type | alone | in place |{extra} alone - in place |\n|---|---|---:|---:|"
              + ("---:|" if table else "") + "---:|")
        for i, p in enumerate(parts):
            a = combine(iso[(target.name, i)]).median_ms
            b = statistics.median(x.parts[i] for x in runs)
            t = ""
            if table:
                e = table.entries.get(p.key)
                t = f" {e.latency_ms:.3f} |" if e else " - |"
            print(f"| {p.label} | {part_type(p.label, p.module)} | {a:.3f} | {b:.3f} |{t} {a - b:+.3f} |")
        print(f"| glue | | | {statistics.median(x.glue_ms for x in runs):.3f} |" + (" |" if table else "") + " |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
