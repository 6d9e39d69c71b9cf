"""The model registry: every variant of the catalog by name, with lookup, patterns and aliases.

Imports run one way: ``spec`` (the data types) <- ``catalog`` (fills ``CATALOG``) <- this module,
which serves the catalog through ``get``, ``list_models`` and ``resolve`` and re-exports the data
types, so ``from cnnprof.models.registry import ModelSpec`` keeps working.

No module on that path imports torch: listing models is instant, and a variant's network is only
imported when it is built (``ModelSpec.build``).
"""

from __future__ import annotations

from collections.abc import Iterable

from cnnprof.models.catalog import CATALOG
from cnnprof.models.spec import Figure, ModelSpec, Registry, natural_key

__all__ = ["REGISTRY", "Figure", "ModelSpec", "Registry", "get", "list_models", "natural_key", "resolve"]

REGISTRY: Registry = CATALOG


def get(name: str) -> ModelSpec:
    return REGISTRY.get(name)


def list_models(pattern: str = "*") -> list[str]:
    return REGISTRY.list(pattern)


def resolve(refs: Iterable[str]) -> list[str]:
    return REGISTRY.resolve(refs)
