"""ALBERT: BERT-like post-norm layers whose parameters are shared across depth.

Layer i of the analysis is the i-th *call* of a shared ``AlbertLayer`` (group ⌊i·G/L⌋, then each inner layer);
the same attention module is called once per layer, so plans map it to its layers in call order. Embeddings are
narrower than the model and projected by ``embedding_hidden_mapping_in`` after the embedding LayerNorm, so the
layer-0 word/position split is exact as for BERT (the projection is linear)."""
from __future__ import annotations

from . import register
from .base import Adapter, LayerParts


@register
class AlbertAdapter(Adapter):
    model_types = ("albert",)
    display_name = "ALBERT"
    head_prefixes = ("predictions.",)

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import AlbertConfig
        return AlbertConfig(embedding_size=16, pad_token_id=pad, **small)

    def _layer_modules(self):
        cfg = self.config
        enc = self.base.encoder
        L, G = cfg.num_hidden_layers, cfg.num_hidden_groups
        out = []
        for i in range(L):
            group = enc.albert_layer_groups[int(i / (L / G))]
            out.extend(group.albert_layers)
        return out

    def _layer(self, layer) -> LayerParts:
        cfg = self.config
        att = layer.attention
        return LayerParts(att.query, att.key, att.value, att.dense, att.LayerNorm,
                          lambda x, blk=layer: blk.full_layer_layer_norm(blk.ff_chunk(x) + x), layer, att,
                          cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)

    def _head_module(self):
        return getattr(self.model, "predictions", None)

    def _embedding_projection(self):
        return self.base.encoder.embedding_hidden_mapping_in
