"""DeBERTa-v2 and -v3: disentangled attention, post-norm layers.

The gate is computed differently: a_ij = softmax_j((q_i·k_j + c2p_ij + p2c_ij)/√(s·d_h)) with content-to-position
and position-to-content terms read from shared relative-position embeddings. The experts do not change: the
message of position j is still o_j = W_O (W_V x_j + b_V), so identities 1 and 2 hold exactly as for BERT.
DeBERTa computes attention inside its own module (not through transformers' attention interface), so the trace
reads the probabilities the model returns and recomputes Q, K, V from each layer's input with the model's own
projections.

Refused: configurations with a convolution after layer 0 (``conv_kernel_size`` > 0), which mixes neighbouring
positions into layer 0's output, so a layer's output is no longer a per-position function of its attention
output. The layer-0 gate-score split is refused (the relative terms are not word/position parts)."""
from __future__ import annotations

import torch

from . import register
from .base import Adapter, EmbeddingParts, LayerParts


@register
class DebertaV2Adapter(Adapter):
    model_types = ("deberta-v2",)
    display_name = "DeBERTa-v2/v3"
    head_prefixes = ("cls.predictions.", "lm_predictions.")
    attention_via_interface = False
    no_plan_reason = ("DeBERTa computes its disentangled attention inside its own module, so sampled or "
                      "substituted attention rows cannot be placed into its forward pass")
    gate_split_refusal = ("DeBERTa's gate adds content-to-position and position-to-content terms from relative "
                          "positions: its score has no word/position parts to split")
    layer0_note = ("relative positions: with position_biased_input off (v3) positions live only in the gate, so "
                   "layer-0 messages have no position part")

    @classmethod
    def refusal(cls, config) -> str | None:
        if getattr(config, "conv_kernel_size", 0) > 0:
            return ("this DeBERTa-v2 has a convolution after layer 0 that mixes neighbouring positions, so its "
                    "layers cannot be decomposed per position exactly")
        return None

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import DebertaV2Config
        return DebertaV2Config(pad_token_id=pad, relative_attention=True, position_buckets=16,
                               pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
                               norm_rel_ebd="layer_norm", max_relative_positions=-1, legacy=True, **small)

    def _layer(self, layer) -> LayerParts:
        cfg = self.config
        att = layer.attention
        return LayerParts(att.self.query_proj, att.self.key_proj, att.self.value_proj, att.output.dense,
                          att.output.LayerNorm, lambda x, blk=layer: blk.output(blk.intermediate(x), x), layer,
                          att.self, cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)

    def _has_head(self) -> bool:
        return hasattr(self.model, "cls") or hasattr(self.model, "lm_predictions")

    def mlm_logits(self, h):
        m = self.model
        if hasattr(m, "cls"):
            return m.cls(h)
        return m.lm_predictions(h, self.word_embedding_module())

    def decoder(self):
        m = self.model
        if hasattr(m, "cls"):
            return m.cls.predictions.decoder
        return _TiedDecoder(self.word_embedding_module().weight, m.lm_predictions.lm_head.bias)

    def call_layer(self, layer, hidden, valid):
        enc = self.base.encoder
        mask = enc.get_attention_mask(valid.long())
        return self.layers[layer].module(hidden, mask, relative_pos=enc.get_rel_pos(hidden),
                                         rel_embeddings=enc.get_rel_embedding())[0]

    def run_layers(self, hidden, valid, start):
        enc = self.base.encoder
        if start < self.n_layers:
            mask = enc.get_attention_mask(valid.long())
            rel_pos, rel_emb = enc.get_rel_pos(hidden), enc.get_rel_embedding()
            for l in range(start, self.n_layers):
                hidden = self.layers[l].module(hidden, mask, relative_pos=rel_pos, rel_embeddings=rel_emb)[0]
        return hidden

    def embedding_parts(self, input_ids, token_type_ids) -> EmbeddingParts:
        emb = self.base.embeddings
        word = emb.word_embeddings(input_ids)
        zero = torch.zeros_like(word)
        position = zero
        if emb.position_embeddings is not None and emb.position_biased_input:
            position = emb.position_embeddings(self.position_ids(input_ids[None])[0])
        segment = zero
        if emb.token_type_embeddings is not None:
            tt = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            segment = emb.token_type_embeddings(tt)
        return EmbeddingParts(word, position, segment, emb.LayerNorm, emb.embed_proj, proj_first=True)


class _TiedDecoder:
    """The non-legacy DeBERTa head's vocabulary projection: the word embeddings and the head's bias."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias
