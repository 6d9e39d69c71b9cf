"""The accuracy claims become measurements where the user gives trained weights and labelled
images (``cnnprof claims --model --weights --images``), judged on the top-1's 95% interval; without
them they stay cited."""

from __future__ import annotations

import pytest

from cnnprof.claims import Verdict, all_claims, evaluate
from cnnprof.claims.accuracy import MODELS, measured
from cnnprof.eval import EvalRow, wilson


def _row(correct: int, images: int, model: str = "efficientnet_b0") -> EvalRow:
    low, high = wilson(correct, images)
    return EvalRow(model=model, weights="b0.pth (sha256 1234)", images=images, top1=correct / images, top1_low=low,
                   top1_high=high, crop_pct=0.875, interpolation="bicubic", mean="0.485,0.456,0.406",
                   std="0.229,0.224,0.225", backend="torch", precision="fp32")


@pytest.fixture(scope="module")
def cited():
    return [evaluate(c)[0] for c in all_claims() if c.id in MODELS or c.family == "efficientnet" and c.measure is None]


@pytest.mark.parametrize("correct, images, verdict", [
    (38_560, 50_000, Verdict.HOLDS),  # 77.1% over ImageNet's validation set: interval 76.7-77.5%
    (35_000, 50_000, Verdict.DEVIATES),  # 70.0%: the whole interval is more than a point below
    (77, 100, Verdict.INCONCLUSIVE),  # 77% of 100 images: the interval (68-84%) straddles 76.1-78.1%
])
def test_the_claims_about_the_model_evaluated_are_judged_on_its_interval(cited, correct, images, verdict):
    assert all(r.verdict is Verdict.CITED for r in cited)
    out = measured(cited, _row(correct, images), "val/")
    (b0,) = [r for r in out if r.id == "effnet-b0-top1"]
    assert b0.verdict is verdict
    assert b0.measured == pytest.approx(100 * correct / images)
    assert b0.ci_low < b0.measured < b0.ci_high and b0.tolerance
    assert f"{images} image(s) of val/" in b0.detail
    assert ("not ImageNet's" in b0.detail) == (images < 50_000)
    others = [r for r in out if r.id != "effnet-b0-top1"]
    assert others == [r for r in cited if r.id != "effnet-b0-top1"]  # other models' claims stay cited


def test_every_accuracy_claim_names_a_registered_model_and_has_a_pinned_tolerance():
    from cnnprof.models import registry

    by_id = {c.id: c for c in all_claims()}
    for cid, model in MODELS.items():
        assert registry.get(model).name == model
        assert by_id[cid].unit == "% top-1" and by_id[cid].tolerance is not None and by_id[cid].measure is None


@pytest.mark.parametrize("args, needle", [
    (["--images", "{tmp}"], "--model"),
    (["--images", "{tmp}", "--model", "efficientnet_b0"], "--weights"),
    (["--images", "{tmp}", "--model", "espnetv2_100", "--weights", "x.pt"], "one of"),
    (["--model", "efficientnet_b0"], "--images"),
])
def test_claims_accuracy_options_refuse_what_cannot_be_measured(cli, tmp_path, args, needle):
    result = cli("claims", "--family", "efficientnet", "--no-db", *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
