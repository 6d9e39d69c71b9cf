"""The registry: registration rules, lookup, patterns, natural sort, suggestions; the one-way
imports spec <- catalog <- registry, and ``ModelSpec.build``."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from cnnprof.errors import UnknownModelError, UsageError
from cnnprof.models.registry import Figure, ModelSpec, Registry, get, list_models, natural_key, resolve


def _spec(name, family="toy"):
    return ModelSpec(name=name, family=family, variant=name, paper="A. Author, Toy Nets, 2024",
                     builder="tests.toy:build", input=(3, 32, 32))


def test_duplicate_name_is_an_error():
    reg = Registry()
    reg.register(_spec("toy_a"))
    with pytest.raises(ValueError, match="already registered"):
        reg.register(_spec("toy_a"))


def test_alias_must_point_at_a_model_and_cannot_shadow_one():
    reg = Registry()
    reg.register(_spec("toy_a"))
    reg.register(_spec("toy_b"))
    reg.alias("toy", "toy_a")
    assert reg.get("toy").name == "toy_a"
    with pytest.raises(ValueError):
        reg.alias("other", "missing")
    with pytest.raises(ValueError):
        reg.alias("toy_b", "toy_a")


def test_natural_sort_puts_b2_before_b10():
    reg = Registry()
    for n in ["net_b10", "net_b2", "net_b1"]:
        reg.register(_spec(n))
    assert reg.names() == ["net_b1", "net_b2", "net_b10"]
    assert sorted(["x10", "x9"], key=natural_key) == ["x9", "x10"]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownModelError) as err:
        get("efficentnet_b0")
    assert "efficientnet_b0" in err.value.suggestions
    assert "did you mean" in str(err.value)


def test_patterns_aliases_and_order():
    assert list_models("efficientnet_b?") == [f"efficientnet_b{i}" for i in range(8)]
    assert resolve(["ghostnet", "espnetv2"]) == ["ghostnet_100", "espnetv2_100"]
    assert resolve(["mobilenetv3_*", "mobilenetv3_large"]) == ["mobilenetv3_large", "mobilenetv3_small"]
    assert get("EfficientNet").name == "efficientnet_b0"
    with pytest.raises(UsageError, match="matches no model"):
        resolve(["nothing*"])


DESIGN_NAMES = (
    [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_lite{i}" for i in range(5)]
    + ["efficientnetv2_s", "efficientnetv2_m", "efficientnetv2_l"] + [f"efficientnetv2_b{i}" for i in range(4)]
    + ["mobilenetv3_large", "mobilenetv3_small"]
    + ["ghostnet_050", "ghostnet_100", "ghostnet_130", "ghostnetv2_100", "ghostnetv2_130", "ghostnetv2_160"]
    + ["espnet", "espnet_c"] + [f"espnetv2_{s}" for s in ("050", "100", "125", "150", "200")]
    + ["fbnet_a", "fbnet_b", "fbnet_c"] + [f"fbnetv2_{v}" for v in ("f1", "f2", "f3", "f4", "l1", "l2")]
    + [f"fbnetv3_{v}" for v in "abcdefg"]
)


def test_catalog_holds_exactly_the_design_names():
    assert sorted(list_models()) == sorted(DESIGN_NAMES)


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_spec_carries_a_citation_and_a_reference(name):
    spec = get(name)
    assert spec.paper and "20" in spec.paper  # author, title, venue year
    assert isinstance(spec.reference, Figure) and spec.reference.params and spec.reference.macs
    assert spec.reference.source
    assert spec.input[0] == 3 and min(spec.input[1:]) >= spec.min_input


# -- module structure and ModelSpec.build --------------------------------------------------------
MODELS_DIR = Path(__file__).resolve().parents[1] / "cnnprof" / "models"


def _models_imports(module: str) -> set[str]:
    """The ``cnnprof.models`` modules that ``cnnprof/models/<module>.py`` imports, anywhere in it."""
    tree = ast.parse((MODELS_DIR / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found |= {n for n in names if n.startswith("cnnprof.models")}
    return found


def test_imports_run_one_way_spec_catalog_registry():
    assert _models_imports("spec") == set()
    assert _models_imports("catalog") == {"cnnprof.models.spec"}
    assert _models_imports("registry") == {"cnnprof.models.catalog", "cnnprof.models.spec"}


def test_registry_serves_the_catalog_and_re_exports_the_types():
    from cnnprof import models
    from cnnprof.models import catalog, registry, spec

    assert registry.REGISTRY is catalog.CATALOG is models.REGISTRY
    assert (registry.ModelSpec, registry.Figure, registry.Registry) == (spec.ModelSpec, spec.Figure, spec.Registry)
    assert registry.natural_key is spec.natural_key
    assert set(models.__all__) == {"REGISTRY", "Figure", "ModelSpec", "get", "list_models", "resolve"}


@pytest.mark.parametrize("module", ["cnnprof.models.registry", "cnnprof.models.catalog", "cnnprof.models.spec"])
def test_importing_the_registry_does_not_import_torch(module):
    code = (
        f"import sys, {module}; from cnnprof.models import registry; registry.list_models(); "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_build_calls_the_builder_with_options_then_overrides():
    spec = ModelSpec(name="toy", family="toy", variant="toy", paper="A. Author, Toy Nets, 2024",
                     builder="builtins:dict", input=(3, 32, 32), options=(("width_mult", 1.0), ("depth", 2)))
    assert spec.build() == {"width_mult": 1.0, "depth": 2}
    assert spec.build(width_mult=0.5, extra="x") == {"width_mult": 0.5, "depth": 2, "extra": "x"}
    assert list(inspect.signature(ModelSpec.build).parameters) == ["self", "overrides"]  # no calibration here
