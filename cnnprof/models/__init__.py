"""The model zoo: the registry (torch-free: ``spec`` <- ``catalog`` <- ``registry``) and one module per
family (imported when built)."""

from cnnprof.models.registry import REGISTRY, Figure, ModelSpec, get, list_models, resolve

__all__ = ["REGISTRY", "Figure", "ModelSpec", "get", "list_models", "resolve"]
