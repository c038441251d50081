"""The project's attention function, registered once through transformers' attention interface.

By default it computes dense softmax attention exactly as transformers' eager path does (same float32 ops),
and returns the probabilities that fast paths (SDPA/flash) never return. Per call, an optional *plan* read from
a ``contextvars.ContextVar`` may observe Q/K/V/probabilities (capture) or replace probability rows
(substitution of a sampled scheme, counterfactual routing). No hooks are registered and no module is patched,
so the shared model object is never changed, and concurrent sessions (threads) never see each other's plans.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTN_IMPLEMENTATION = "expertlens"

_PLAN: ContextVar["AttentionPlan | None"] = ContextVar("expertlens_attention_plan", default=None)


class AttentionPlan:
    """What to do at each attention call inside ``with attention_plan(plan):``.

    ``layer_of`` maps attention modules (by ``id``) to layer indices for architectures whose modules carry no
    ``layer_idx`` (DistilBERT); a module shared by several layers (ALBERT) maps to the tuple of its layers in
    call order, and its k-th call in a forward pass is layer ``layers[k mod len(layers)]``. Subclasses override
    :meth:`rows` and/or :meth:`observe`.
    """

    def __init__(self, layer_of: dict[int, int | tuple[int, ...]] | None = None):
        self.layer_of = layer_of or {}
        self._calls: dict[int, int] = {}

    def layer(self, module: torch.nn.Module) -> int:
        idx = getattr(module, "layer_idx", None)
        if idx is not None:
            return int(idx)
        where = self.layer_of[id(module)]
        if isinstance(where, tuple):
            k = self._calls.get(id(module), 0)
            self._calls[id(module)] = k + 1
            return where[k % len(where)]
        return where

    def rows(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             scores: torch.Tensor, probs: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor | None:
        """Return replacement probabilities (same shape as ``probs``) or None to keep dense ones. ``scores`` (the
        masked, scaled logits) is this call's own buffer and is not read after this method: a plan may overwrite
        it in place."""
        return None

    def probs_buffer(self, layer: int, scores: torch.Tensor) -> torch.Tensor | None:
        """Where the dense softmax of this call should be written (a tensor shaped, typed and placed like
        ``scores``), or None for a fresh tensor. Lets a plan keep every layer's gates in one stacked buffer
        without copying them; the softmax itself is the same op either way."""
        return None

    def output_buffer(self, layer: int, output: torch.Tensor) -> torch.Tensor | None:
        """Where the head outputs of this call (``output``: batch × n × heads × d_h, a transposed view) should be
        made contiguous (a contiguous tensor of the same shape and type), or None for a fresh tensor. Lets a plan
        keep every layer's head outputs in one stacked buffer; the copy itself is the same op either way."""
        return None

    def observe(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                probs: torch.Tensor, output: torch.Tensor) -> None:
        """See the tensors of one call (query/key/value/probs: batch × heads × n × ·; output: batch × n × heads × d_h)."""


@contextlib.contextmanager
def attention_plan(plan: AttentionPlan | None) -> Iterator[AttentionPlan | None]:
    """Activate ``plan`` for model calls made in this context (thread/task local); always restored."""
    token = _PLAN.set(plan)
    try:
        yield plan
    finally:
        _PLAN.reset(token)


def key_valid_from_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Boolean (batch × 1 × q × k) validity from the mask transformers passes (bool, or additive float)."""
    if attention_mask is None:
        return None
    if attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask > torch.finfo(attention_mask.dtype).min / 2


def expertlens_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                         **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense attention: softmax(QKᵀ·scaling + mask)·V, with an optional per-call plan (see module docstring)."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scaling)      # in place: no second n × n buffer
    valid = key_valid_from_mask(attention_mask)
    if valid is not None:
        scores.masked_fill_(~valid, torch.finfo(scores.dtype).min)
    plan = _PLAN.get()
    layer = None
    buffer = None
    if plan is not None:
        layer = plan.layer(module)
        buffer = plan.probs_buffer(layer, scores)
    if buffer is not None:
        probs = torch.softmax(scores, dim=-1, out=buffer)
    else:
        probs = torch.nn.functional.softmax(scores, dim=-1)
    if plan is not None:
        replaced = plan.rows(layer, query, key, value, scores, probs, valid)
        if replaced is not None:
            probs = replaced
    if dropout and module.training:
        probs = torch.nn.functional.dropout(probs, p=dropout, training=True)
    output = torch.matmul(probs, value).transpose(1, 2)
    out_buffer = plan.output_buffer(layer, output) if plan is not None else None
    output = out_buffer.copy_(output) if out_buffer is not None else output.contiguous()
    if plan is not None:
        plan.observe(layer, query, key, value, probs, output)
    return output, probs


def _boolean_mask(*args, **kwargs):
    """Padding mask as booleans (True = attend); None when nothing is padded."""
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(ATTN_IMPLEMENTATION, expertlens_attention)
AttentionMaskInterface.register(ATTN_IMPLEMENTATION, _boolean_mask)
