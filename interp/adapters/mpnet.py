"""MPNet: BERT-like post-norm layers plus a learned relative-position bias added to every gate score.

MPNet computes attention inside its own module (not through transformers' attention interface), so the trace
reads the probabilities the model returns (``output_attentions``) and recomputes Q, K, V from each layer's input
with the model's own projections. The messages are still o_j = W_O W_V x_j (+ biases), so identities 1 and 2 hold
as for BERT. The gate-score split gains a fifth exact part, the relative-position bias."""
from __future__ import annotations

import torch

from . import register
from .base import Adapter, LayerParts


@register
class MPNetAdapter(Adapter):
    model_types = ("mpnet",)
    display_name = "MPNet"
    head_prefixes = ("lm_head.",)
    default_pad = 1
    uses_token_types = False
    attention_via_interface = False
    no_plan_reason = ("MPNet computes attention inside its own module (with a relative-position bias), so sampled "
                      "or substituted attention rows cannot be placed into its forward pass")

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import MPNetConfig
        cfg = MPNetConfig(pad_token_id=pad, bos_token_id=0, eos_token_id=2, **small)
        cfg.max_position_embeddings = small["max_position_embeddings"] + pad + 1
        return cfg

    @classmethod
    def position_offset(cls, config) -> int:
        return 2   # MPNet's embeddings use padding index 1: positions start at 2

    def _layer(self, layer) -> LayerParts:
        cfg = self.config
        att = layer.attention
        return LayerParts(att.attn.q, att.attn.k, att.attn.v, att.attn.o, att.LayerNorm,
                          lambda x, blk=layer: blk.output(blk.intermediate(x), x), layer, att.attn,
                          cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)

    def _head_module(self):
        return getattr(self.model, "lm_head", None)

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        keep = (input_ids != 1).long()
        return torch.cumsum(keep, dim=-1) * keep + 1

    def call_layer(self, layer, hidden, valid):
        ext = torch.zeros(valid.shape[0], 1, 1, valid.shape[1], dtype=hidden.dtype, device=hidden.device)
        ext = ext.masked_fill(~valid[:, None, None, :], torch.finfo(hidden.dtype).min)
        bias = self.base.encoder.compute_position_bias(hidden)
        return self.layers[layer].module(hidden, ext, bias)[0]

    def score_bias(self, layer: int, n: int):
        x = torch.zeros(1, n, 1, device=self.base.encoder.relative_attention_bias.weight.device)
        return self.base.encoder.compute_position_bias(x)[0]          # H × n × n, the same in every layer
