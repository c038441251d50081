"""BERT (and MiniLM, which is a BERT): post-norm, absolute positions, token types. The base wiring."""
from __future__ import annotations

from . import register
from .base import Adapter


@register
class BertAdapter(Adapter):
    model_types = ("bert",)
    display_name = "BERT/MiniLM"
    head_prefixes = ("cls.predictions.",)

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import BertConfig
        return BertConfig(pad_token_id=pad, **small)
