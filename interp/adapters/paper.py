"""The paper's one-layer model (and its CBOW baseline): word + position, one head, no LayerNorm, no FFN."""
from __future__ import annotations

import torch

from .. import paper_model
from . import register
from .base import Adapter, EmbeddingParts, LayerParts


@register
class PaperAdapter(Adapter):
    model_types = (paper_model.MODEL_TYPE,)
    display_name = ""
    head_prefixes = ("decoder.",)
    uses_token_types = False
    accepts_mask_aliases = False
    layer0_note = "the paper's model: messages split exactly into word + position parts (no LayerNorm)"

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        return paper_model.PaperConfig(vocab_size=small["vocab_size"], hidden_size=small["hidden_size"],
                                       max_position_embeddings=small["max_position_embeddings"], gate=options.get("gate", "attention"),
                                       pad_token_id=pad)

    def _base(self):
        return self.model

    def _layer_modules(self):
        return [self.model]

    def _layer(self, layer) -> LayerParts:
        att = layer.attention
        return LayerParts(att.query, att.key, att.value, None, None, lambda x: x, layer, att, 1,
                          self.config.hidden_size, norm="none")

    def _has_head(self) -> bool:
        return True

    def layer_mask(self, valid, layer=None):
        return self.model.gate_mask(valid.long())

    def call_layer(self, layer, hidden, valid):
        out, _ = self.layers[layer].attention_module(hidden, self.layer_mask(valid))
        return out

    def mlm_logits(self, h):
        return self.model.decoder(h)

    def decoder(self):
        return self.model.decoder

    def word_embedding_module(self):
        return self.model.word_embeddings

    def embedding_parts(self, input_ids, token_type_ids) -> EmbeddingParts:
        word = self.model.word_embeddings(input_ids)
        position = self.model.position_embeddings(self.position_ids(input_ids[None])[0])
        return EmbeddingParts(word, position, torch.zeros_like(word), None, None)
