"""MobileNetV3, the seed's common baseline: its compute and its accuracy as the other families
quote them (GhostNet compares with MobileNetV3-Large's 219M MAdds and 75.2% top-1)."""

from __future__ import annotations

from cnnprof.claims import Claim, Measurement, absolute, rel
from cnnprof.claims.common import cite, count_registered, paper, seed
from cnnprof.models.catalog import GHOSTNET, MOBILENETV3


def measure_large_macs() -> Measurement:
    c = count_registered("mobilenetv3_large")
    return Measurement(measured=float(c.macs),
                       detail=f"counted mobilenetv3_large at 224x224: {c.params:,} params, {c.macs:,} MACs")


CLAIMS = [
    Claim(
        id="mobilenetv3-large-macs", family="mobilenetv3", source=paper(MOBILENETV3, "Table 3"),
        statement="MobileNetV3-Large 1.0 costs 219M MAdds", expected=219e6, unit="MACs", tolerance=rel(0.02),
        measure=measure_large_macs,
    ),
    Claim(
        id="mobilenetv3-large-top1", family="mobilenetv3", source=seed("GhostNet V1", GHOSTNET + ", ImageNet table"),
        quote="高于 MobileNetV3 的 75.2%",
        statement="MobileNetV3-Large reaches 75.2% top-1 (the figure GhostNet compares with)", expected=75.2,
        unit="% top-1", tolerance=absolute(1.0), cited=cite("Howard et al. 2019, Table 3", "75.2% top-1"),
    ),
]
