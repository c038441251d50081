"""ELECTRA: BERT's layers; embeddings may be narrower than the model (``embeddings_project``)."""
from __future__ import annotations

from . import register
from .base import Adapter


@register
class ElectraAdapter(Adapter):
    model_types = ("electra",)
    display_name = "ELECTRA"
    head_prefixes = ("generator_lm_head.", "generator_predictions.")

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import ElectraConfig
        return ElectraConfig(embedding_size=16, pad_token_id=pad, **small)

    def _has_head(self) -> bool:
        return hasattr(self.model, "generator_lm_head")

    def mlm_logits(self, h):
        m = self.model
        return m.generator_lm_head(m.generator_predictions(h))

    def decoder(self):
        return self.model.generator_lm_head
