"""Provenance of the claims: every claim taken from the seed chapter names one of the seed's own
headings and quotes a phrase found verbatim in that section; every other claim names its paper
(or released implementation); the seed's errata quote it verbatim too.

The seed is a textbook chapter the project quotes but does not ship. It is read from the file
$CNNPROF_SEED names, else from ``../shared/seed/*.txt`` beside the checkout; when it is not there,
every test that needs it is skipped and the skip reason says where it was looked for.
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
    "effnet-compound-constraint", "eesp-vs-esp-params", "esp-activations-vs-conv", "esp-receptive-field",
    "effnet-resolution-exponent", "fbnetv2-mask-memory", "fbnetv2-step-b-equals-c",
}


SEED_ENV = "CNNPROF_SEED"
SEED_DIR = REPO.parent / "shared" / "seed"


def find_seed(env: dict[str, str] | None = None, seed_dir: Path = SEED_DIR) -> tuple[Path | None, str]:
    """The seed chapter's path, or None and the reason it is not here (said in the skip)."""
    env = os.environ if env is None else env
    if env.get(SEED_ENV):
        path = Path(env[SEED_ENV])
        if path.is_file():
            return path, ""
        return None, f"{SEED_ENV}={path} is not a file: the seed chapter (the claims' quotes) is not here"
    if (seed_dir / SEED_FILE).is_file():
        return seed_dir / SEED_FILE, ""
    found = sorted(seed_dir.glob("*.txt")) if seed_dir.is_dir() else []
    if len(found) == 1:
        return found[0], ""
    where = f"{len(found)} .txt files in {seed_dir}" if found else f"no {seed_dir}/*.txt"
    return None, (f"the seed chapter is not here ({where}; the repository does not ship it): "
                  f"put it at {seed_dir}/{SEED_FILE} or set {SEED_ENV} to its path")


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    """The seed's headings (without their #s and spaces) -> the text under each, up to the next."""
    path, why = find_seed()
    if path is None:
        pytest.skip(why)
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
    by_id = {e.id: e for e in errata()}
    reward, beta = by_id["effnetv2-reward-v"], by_id["fbnet-loss-beta"]
    assert "2^-0.05 = 0.966" in reward.consequence and "2^-5 = 0.031" in reward.consequence
    assert "multiplies the paper's latency factor by 1.079" in beta.consequence  # (ln 30 / ln 20)^0.6
    assert "the printed one by 1.135" in beta.consequence  # ln 30 / ln 20
    flops, esp = by_id["effnet-flops-exponent"], by_id["esp-reduce-kernels"]
    # 1.2 * 1.1^2 * 1.15^2 = 1.92027: to the power φ in the paper, times φ as printed
    assert "φ = 2: 3.7x as written in the paper, 3.84x as printed" in flops.consequence
    assert "φ = 7: 96.3x as written in the paper, 13.44x as printed" in flops.consequence
    # the built ESP(128, K=4) reduces to N/K = 32 channels; K = 4 kernels would leave 4 (and 4x4 = 16 after concat)
    assert "d = 32 kernels (4,096 weights)" in esp.consequence and "concatenate to 128 channels" in esp.consequence
    assert "a 4-channel map (512 weights) and a concatenation of K·K = 16 channels" in esp.consequence


def test_the_identities_are_counted_apart():
    all_ = {c.id: c for c in claims.all_claims()}
    assert IDENTITIES <= set(all_)
    assert all(all_[i].identity for i in IDENTITIES)
    assert len(all_) >= 55
    # a deviation needs a figure somebody verified: the paper's FBNet-B 4.5M comes back cited
    assert all_["fbnet-b-params"].source.startswith(PAPER_PREFIX)
    assert Verdict.IDENTITY in claims.VERDICTS and Verdict.INCONCLUSIVE in claims.VERDICTS


def test_the_seed_is_not_shipped():
    assert not list((REPO / "docs").glob("*.txt")), "the seed chapter is read from ../shared/seed, never copied"


def test_find_seed_reads_the_shared_folder_or_the_env_var(tmp_path):
    folder = tmp_path / "seed"
    folder.mkdir()
    path, why = find_seed({}, folder)
    assert path is None and str(folder) in why and SEED_ENV in why
    (folder / SEED_FILE).write_text("# a\n", encoding="utf-8")
    assert find_seed({}, folder) == (folder / SEED_FILE, "")
    other = tmp_path / "chapter.txt"
    other.write_text("# b\n", encoding="utf-8")
    assert find_seed({SEED_ENV: str(other)}, folder) == (other, "")


def test_an_env_var_pointing_nowhere_skips_with_its_reason(tmp_path):
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / SEED_FILE).write_text("# a\n", encoding="utf-8")
    nowhere = tmp_path / "missing.txt"
    path, why = find_seed({SEED_ENV: str(nowhere)}, folder)  # the variable wins over the folder
    assert path is None and f"{SEED_ENV}={nowhere} is not a file" in why
