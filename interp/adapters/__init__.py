"""Encoder families: one adapter per family, in a registry keyed by ``config.model_type``.

A new family is one file here (a subclass of :class:`Adapter` decorated with :func:`register`) plus its
exactness test; nothing else in ``interp`` branches on the model type.
"""
from __future__ import annotations

from torch import nn

from .base import Adapter, EmbeddingParts, LayerParts, Projection

REGISTRY: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: register an adapter under each of its ``model_types``."""
    for t in cls.model_types:
        REGISTRY[t] = cls
    return cls


def adapter_class(model_type: str) -> type[Adapter]:
    """The adapter of ``model_type``; ValueError with the supported list when there is none."""
    try:
        return REGISTRY[model_type]
    except KeyError:
        raise ValueError(f"model type {model_type or '?'!r} is not supported; supported: "
                         f"{', '.join(supported())}") from None


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter wired to ``model`` (raises ValueError with one line when the model cannot be decomposed)."""
    return adapter_class(model.config.model_type)(model)


def supported() -> tuple[str, ...]:
    return tuple(REGISTRY)


def family_names() -> str:
    """The supported families in words, for messages."""
    seen, out = set(), []
    for cls in REGISTRY.values():
        if cls.display_name and cls.display_name not in seen:
            seen.add(cls.display_name)
            out.append(cls.display_name)
    return ", ".join(out)


# the families (importing a module registers it)
from . import albert, bert, deberta_v2, distilbert, electra, modernbert, mpnet, paper, roberta  # noqa: E402,F401

SUPPORTED = supported()

__all__ = ["Adapter", "EmbeddingParts", "LayerParts", "Projection", "REGISTRY", "SUPPORTED", "adapter_class",
           "adapter_for", "family_names", "register", "supported"]
