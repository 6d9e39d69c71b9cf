"""Provenance of the claims: every claim taken from the seed chapter names one of the seed's own
headings and quotes a phrase found verbatim in that section; every other claim names its paper
(or released implementation); the seed's errata quote it verbatim too.

The seed is read from $CNNPROF_SEED, else from the copy the repository keeps
(``docs/seed-chapter.txt``, the chapter the claims come from), else from ``shared/seed/`` beside the
repository; only when the file is nowhere are these tests skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cnnprof import claims
from cnnprof.claims import PAPER_PREFIX, RELEASED_PREFIX, SEED_PREFIX, Verdict
from cnnprof.claims.common import SEED_FILE
from cnnprof.claims.errata import errata

REPO = Path(__file__).resolve().parents[1]
# The rows that only check that the built module is the one described.
IDENTITIES = {
    "ghostnetv2-fc-attention-exponent", "ghostnetv2-dfc-exponent", "fbnetv2-mask-macs", "fbnetv2-naive-cost",
    "fbnetv2-mask-equivalence", "ghost-module-cost-s2", "ghost-module-cost-s3", "ghost-module-cost-s4",
    "eesp-vs-esp-macs", "esp-vs-conv-params", "esp-vs-conv-macs", "esp-vs-conv-same-rf", "fbnet-search-space",
    "effnet-compound-constraint",
}


def seed_path() -> Path | None:
    env = os.environ.get("CNNPROF_SEED")
    candidates = [Path(env)] if env else []
    candidates += [REPO / "docs" / "seed-chapter.txt", REPO.parent / "shared" / "seed" / SEED_FILE,
                   REPO.parent.parent / "shared" / "seed" / SEED_FILE]
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    """The seed's headings (without their #s and spaces) -> the text under each, up to the next."""
    path = seed_path()
    if path is None:
        pytest.skip(f"the seed chapter {SEED_FILE} is not here (set CNNPROF_SEED to its path)")
    out: dict[str, str] = {}
    heading = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#+\s*(.*?)\s*$", line)
        if match:
            heading = match.group(1)
            out.setdefault(heading, "")
        else:
            out[heading] = out.get(heading, "") + line + "\n"
    return out


def test_the_sections_are_read(sections):
    assert "ESP 模块" in sections and "解耦全连接注意力机制 DFC" in sections and "训练感知 NAS 和缩放" in sections
    assert "w=-0.07 和 v=-005" in sections["训练感知 NAS 和缩放"]


@pytest.mark.parametrize("claim", [c for c in claims.all_claims() if c.source.startswith(SEED_PREFIX)],
                         ids=lambda c: c.id)
def test_every_seed_claim_quotes_its_section_verbatim(claim, sections):
    assert claim.heading in sections, f"{claim.id}: no heading {claim.heading!r} in the seed"
    assert claim.quote and claim.quote in sections[claim.heading], (
        f"{claim.id}: {claim.quote!r} is not in the seed's section {claim.heading!r}")


def test_the_quote_check_fails_on_a_paraphrase(sections):
    assert "HFF removes the gridding artifacts" not in sections["HFF 特性"]
    assert "ESP 中的 HFF 消除了网格伪影" in sections["HFF 特性"]
    assert "ESP 中的 HFF 消除了网格伪影" not in sections["ESP 模块"]  # the right phrase under the wrong heading


def test_every_other_claim_names_its_paper_or_release():
    for c in claims.all_claims():
        if c.source.startswith(SEED_PREFIX):
            continue
        assert c.source.startswith((PAPER_PREFIX, RELEASED_PREFIX)), c.id
        if c.source.startswith(PAPER_PREFIX):
            # "paper: <title ..., year (arXiv)>, <section or table>"
            assert re.search(r"\(arXiv:\d{4}\.\d{5}\), \S", c.source), c.id
        assert not c.quote, f"{c.id}: a quote is for the seed's words"


@pytest.mark.parametrize("erratum", errata(), ids=lambda e: e.id)
def test_errata_quote_the_seed_verbatim(erratum, sections):
    heading = erratum.source[len(SEED_PREFIX):]
    assert erratum.seed_text in sections[heading]


def test_errata_consequences_are_computed():
    reward, beta = errata()
    assert "2^-0.05 = 0.966" in reward.consequence and "2^-5 = 0.031" in reward.consequence
    assert "multiplies the paper's latency factor by 1.079" in beta.consequence  # (ln 30 / ln 20)^0.6
    assert "the printed one by 1.135" in beta.consequence  # ln 30 / ln 20


def test_the_identities_are_counted_apart():
    all_ = {c.id: c for c in claims.all_claims()}
    assert IDENTITIES <= set(all_)
    assert all(all_[i].identity for i in IDENTITIES)
    assert len(all_) >= 55
    # a deviation needs a figure somebody verified: the paper's FBNet-B 4.5M comes back cited
    assert all_["fbnet-b-params"].source.startswith(PAPER_PREFIX)
    assert Verdict.IDENTITY in claims.VERDICTS and Verdict.INCONCLUSIVE in claims.VERDICTS
