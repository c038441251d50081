"""DistilBERT: post-norm, absolute positions, no token types; layers carry no ``layer_idx``."""
from __future__ import annotations

from . import register
from .base import Adapter, LayerParts


@register
class DistilBertAdapter(Adapter):
    model_types = ("distilbert",)
    display_name = "DistilBERT"
    head_prefixes = ("vocab_projector.", "vocab_transform.")
    uses_token_types = False

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import DistilBertConfig
        return DistilBertConfig(vocab_size=small["vocab_size"], dim=small["hidden_size"],
                                n_layers=small["num_hidden_layers"], n_heads=small["num_attention_heads"],
                                hidden_dim=small["intermediate_size"],
                                max_position_embeddings=small["max_position_embeddings"],
                                dropout=0.0, attention_dropout=0.0, pad_token_id=pad)

    def _layer_modules(self):
        return list(self.base.transformer.layer)

    def _layer(self, layer) -> LayerParts:
        cfg = self.config
        att = layer.attention
        return LayerParts(att.q_lin, att.k_lin, att.v_lin, att.out_lin, layer.sa_layer_norm,
                          lambda x, blk=layer: blk.output_layer_norm(blk.ffn(x) + x), layer, att,
                          cfg.n_heads, cfg.dim // cfg.n_heads)

    def _has_head(self) -> bool:
        return hasattr(self.model, "vocab_projector")

    def mlm_logits(self, h):
        m = self.model
        return m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(h))))

    def decoder(self):
        return self.model.vocab_projector
