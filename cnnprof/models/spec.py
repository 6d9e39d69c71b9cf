"""The data types of the model zoo: a variant's spec, its published figures, and the registry
that holds specs by name.

``Registry.register`` refuses a duplicate name, ``get`` answers an unknown name with the closest
known names, ``resolve`` turns the names, family aliases and wildcard patterns a user typed into
registered names (natural sort: ``b2`` before ``b10``).

This module imports neither torch nor any other module of ``cnnprof.models``: the catalog
(``catalog.py``) fills a ``Registry`` from these types, and ``registry.py`` serves it. A variant's
network is only imported when it is built (``ModelSpec.build``).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cnnprof.errors import UnknownModelError, UsageError, shorten


@dataclass(frozen=True)
class Figure:
    """A published or reference figure, with where it comes from. Stored only to compare with."""

    source: str
    params: int | None = None
    macs: int | None = None  # multiply-adds (the papers' "FLOPs")
    top1: float | None = None  # ImageNet top-1 %, or the task's headline metric
    input: str | None = None  # resolution the figure refers to, e.g. "224x224"
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """Everything cnnprof knows about one variant before building it.

    ``builder`` is ``"module:function"``; ``options`` are its keyword arguments. ``published``
    holds the papers' (and official releases') figures; ``reference`` is the count of the
    official implementation that the built model must match: its parameters within
    ``params_slack`` (exactly, where the reference is an exact count), its MACs within
    ``macs_tol`` (relative).
    """

    name: str
    family: str
    variant: str
    paper: str
    builder: str
    input: tuple[int, int, int]
    options: tuple[tuple[str, Any], ...] = ()
    task: str = "classification"
    published: tuple[Figure, ...] = ()
    reference: Figure | None = None
    # the reference's parameter count is quoted to a multiple of this many (1: an exact count)
    params_rounded_to: int = 1
    params_tol: float = 0.0  # relative, on top of the rounding: a known, explained difference only
    macs_tol: float = 0.01
    min_input: int = 32  # smallest H and W the network's downsampling accepts
    notes: str = ""

    def build(self, **overrides: Any):
        """Instantiate the network with random weights: import the builder named by ``builder``
        (torch and the family module load here, on first use) and call it with ``options``, any
        ``overrides`` taking precedence."""
        module_name, _, func_name = self.builder.partition(":")
        builder = getattr(importlib.import_module(module_name), func_name)
        return builder(**{**dict(self.options), **overrides})

    @property
    def params_slack(self) -> int:
        """How many parameters a built model may differ from ``reference.params``: half the unit
        the reference is quoted to (0 for an exact count), plus ``params_tol`` of it."""
        ref = self.reference.params if self.reference is not None and self.reference.params else 0
        return self.params_rounded_to // 2 + int(self.params_tol * ref)

    @property
    def paper_figure(self) -> Figure | None:
        """The first published figure: the paper's own, where there is one."""
        return self.published[0] if self.published else None


def natural_key(name: str) -> list[Any]:
    """Sort key that orders digits by value: efficientnet_b2 before efficientnet_b10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


_WILDCARD = re.compile(r"[*?\[]")


@dataclass
class Registry:
    """Specs by name, plus family aliases (``ghostnet`` -> ``ghostnet_100``)."""

    specs: dict[str, ModelSpec] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def register(self, spec: ModelSpec) -> ModelSpec:
        if spec.name in self.specs or spec.name in self.aliases:
            raise ValueError(f"model {spec.name!r} is already registered")
        self.specs[spec.name] = spec
        return spec

    def alias(self, alias: str, target: str) -> None:
        """A family alias (``ghostnet`` -> ``ghostnet_100``). An alias may equal its target."""
        if target not in self.specs:
            raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
        if alias in self.aliases or (alias in self.specs and alias != target):
            raise ValueError(f"alias {alias!r} is already taken")
        self.aliases[alias] = target

    def names(self) -> list[str]:
        return sorted(self.specs, key=natural_key)

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` names close to ``name``, one per model (an alias and its variant are one)."""
        candidates = list(dict.fromkeys([*self.specs, *self.aliases]))
        found = difflib.get_close_matches(name.lower()[:100], candidates, n=3 * n, cutoff=0.5)
        if not found:  # a prefix or family the user half-remembered
            found = [c for c in self.names() if c.startswith(name.lower()[:4])]
        models: dict[str, str] = {}
        for c in found:
            models.setdefault(self.aliases.get(c, c), c)
        return list(models.values())[:n]

    def get(self, name: str) -> ModelSpec:
        key = name.strip().lower()
        key = self.aliases.get(key, key)
        if key in self.specs:
            return self.specs[key]
        raise UnknownModelError(name, self.closest(key))

    def list(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, natural-sorted."""
        pattern = pattern.strip().lower()
        return [n for n in self.names() if fnmatch.fnmatchcase(n, pattern)]

    def resolve(self, refs: Iterable[str]) -> list[str]:
        """Names, aliases and patterns -> registered names, in the order given, no repeats."""
        out: list[str] = []
        for ref in refs:
            if _WILDCARD.search(ref):
                matched = self.list(ref)
                if not matched:
                    raise UsageError(f"pattern {shorten(ref)!r} matches no model (see `cnnprof list`)")
            else:
                matched = [self.get(ref).name]
            out.extend(m for m in matched if m not in out)
        if not out:
            raise UsageError("no model given")
        return out
