"""The claims report as a document a person reads: ``cnnprof claims --format md``.

Grouped by family in the seed's order; for every claim its statement, where it comes from (the
seed's heading and its words, or the paper), the expected and measured values with the
measurement's interval, the paper's formula evaluated beside them, the verdict, the device a
timing ran on (and where the paper measured), and how it was measured; then the seed's errata.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnprof.claims import RAW_CI, SEED_PREFIX, ClaimResult, Verdict, coverage_line, family_seconds, summary_line
from cnnprof.claims.errata import Erratum

FAMILY_NAMES = {
    "espnet": "ESPNet V1", "espnetv2": "ESPNet V2", "fbnet": "FBNet V1", "fbnetv2": "FBNet V2", "fbnetv3": "FBNet V3",
    "efficientnet": "EfficientNet V1", "efficientnetv2": "EfficientNet V2", "ghostnet": "GhostNet V1",
    "ghostnetv2": "GhostNet V2", "mobilenetv3": "MobileNetV3 (the baseline)",
}
VERDICT_MEANING = {
    Verdict.HOLDS: "a measurement that could have gone either way came out within the tolerance",
    Verdict.DEVIATES: "a measurement that could have gone either way came out outside the tolerance",
    Verdict.INCONCLUSIVE: "the measurement's interval straddles the tolerance, or is too wide to tell",
    Verdict.IDENTITY: "the value follows from how the module is built: a consistency check, not evidence",
    Verdict.CITED: "not measurable here; the reason is given",
}


def format_value(value: float | None, unit: str) -> str:
    """A claim's number for people, in its unit (files keep the exact number)."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.4g}x"
    if unit == "MACs":
        return f"{value / 1e6:.1f}M MACs"
    if unit == "params":
        return f"{value:,.0f} params" if abs(value) < 1e5 else f"{value / 1e6:.4g}M params"
    if unit == "architectures":
        return f"{value:.3e}"
    if unit == "% top-1":
        return f"{value:g}% top-1"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "max |diff|":
        return f"{value:.2g}"
    if unit in ("exponent", "ratio"):
        return f"{value:.3f}"
    return f"{value:.4g}"


def expected_text(r: ClaimResult) -> str:
    """'3.6x ±2%', 'above 1x', 'below 1.000': the expected value with what counts as holding."""
    value = format_value(r.expected, r.unit)
    if r.expected is None or not r.tolerance:
        return value
    if r.tolerance == "> expected":
        return f"above {value}"
    if r.tolerance == "< expected":
        return f"below {value}"
    return f"{value} {r.tolerance}"


def interval_text(r: ClaimResult) -> str:
    if r.ci_low is None or r.ci_high is None:
        return ""
    return f"{format_value(r.ci_low, r.unit)} to {format_value(r.ci_high, r.unit)}"


def _source_text(r: ClaimResult) -> str:
    if not r.source.startswith(SEED_PREFIX):
        return r.source
    heading, _, rest = r.source[len(SEED_PREFIX):].partition(";")
    text = f"seed §{heading.strip()}: 「{r.quote}」"
    return text + (f"; {rest.strip()}" if rest.strip() else "")


def _one(r: ClaimResult) -> list[str]:
    lines = [f"### `{r.id}`: {r.verdict_text}", "", f"- **Claim**: {r.statement}", f"- **Source**: {_source_text(r)}"]
    values = [f"**Expected**: {expected_text(r)}"]
    if r.measured is not None:
        values.append(f"**Measured**: {format_value(r.measured, r.unit)}")
    interval = interval_text(r)
    if interval:
        values.append(f"**95% interval**: {interval}")
    if r.judged_text:
        values.append(f"**Judged on**: {r.judged_text}")
    if r.formula is not None:
        values.append(f"**Formula**: {format_value(r.formula, r.unit)}")
    lines.append("- " + " · ".join(values))
    lines.append(f"- **Verdict**: {r.verdict}: {VERDICT_MEANING[r.verdict]}")
    if r.device or r.paper_device:
        device = r.device or "-"
        lines.append(f"- **Device**: {device}" + (f"; {r.paper_device}" if r.paper_device else ""))
    lines.append(f"- **How**: {r.detail}")
    return lines + [""]


def _counts_table(results: Sequence[ClaimResult]) -> list[str]:
    """Verdicts per family, and the seconds each family's measurements took."""
    kinds = list(Verdict)
    lines = ["| family | " + " | ".join(str(k) for k in kinds) + " | seconds |",
             "|---|" + "---:|" * (len(kinds) + 1)]
    for family, _, seconds in family_seconds(results):
        mine = [r for r in results if r.family == family]
        counts = [str(sum(r.verdict is k for r in mine)) for k in kinds]
        lines.append(f"| {FAMILY_NAMES[family]} | " + " | ".join(counts) + f" | {seconds:.1f} |")
    total = sum(r.seconds for r in results)
    lines.append("| all | " + " | ".join(str(sum(r.verdict is k for r in results)) for k in kinds) + f" | {total:.1f} |")
    return lines


def markdown(results: Sequence[ClaimResult], errata: Sequence[Erratum], *, machine: str = "") -> str:
    """The whole report as Markdown."""
    lines = ["# The seed chapter's claims, measured", "", coverage_line(results)[0].upper() + coverage_line(results)[1:]
             + ".", "", summary_line(results) + ".", ""]
    if machine:
        lines += [f"Measured on {machine}.", ""]
    lines += ["Verdicts:", ""]
    lines += [f"- **{v}**: {meaning}" for v, meaning in VERDICT_MEANING.items()]
    lines += ["", f"A row with an interval says which one its verdict judged: `{RAW_CI}` as measured (timings on the "
              "thread CPU clock, which other processes do not stretch), or `widened xN` (a timing taken while other "
              "processes competed for the cores, on the wall clock or for a ratio that a busy machine is known to "
              "move), with `busy` where other processes competed."]
    lines += ["", *_counts_table(results), ""]
    for family, _, _ in family_seconds(results):
        mine = [r for r in results if r.family == family]
        lines += [f"## {FAMILY_NAMES[family]}", ""]
        for r in mine:
            lines += _one(r)
    if errata:
        lines += ["## Errata", "", "Formulas the seed prints wrongly (not claims: nothing is measured).", ""]
        for e in errata:
            lines += [f"### `{e.id}`", "", f"- **Seed** ({e.source}): 「{e.seed_text}」", f"- **Correct**: {e.correct}",
                      f"- **Reference**: {e.reference}", f"- **What it changes**: {e.consequence}", ""]
    return "\n".join(lines).rstrip() + "\n"
