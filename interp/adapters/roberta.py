"""RoBERTa, XLM-RoBERTa and CamemBERT: BERT's layers; positions start after the padding index."""
from __future__ import annotations

import torch

from . import register
from .base import Adapter


@register
class RobertaAdapter(Adapter):
    model_types = ("roberta", "xlm-roberta", "camembert")
    display_name = "RoBERTa/XLM-RoBERTa/CamemBERT"
    head_prefixes = ("lm_head.",)
    default_pad = 1

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import CamembertConfig, RobertaConfig, XLMRobertaConfig
        cfg_cls = {"roberta": RobertaConfig, "xlm-roberta": XLMRobertaConfig,
                   "camembert": CamembertConfig}[options.get("model_type", "roberta")]
        cfg = cfg_cls(pad_token_id=pad, bos_token_id=0, eos_token_id=2, **small)
        cfg.max_position_embeddings = small["max_position_embeddings"] + pad + 1
        return cfg

    @classmethod
    def position_offset(cls, config) -> int:
        return int(config.pad_token_id) + 1

    def _head_module(self):
        return getattr(self.model, "lm_head", None)

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        pad = self.config.pad_token_id
        keep = (input_ids != pad).long()
        return torch.cumsum(keep, dim=-1) * keep + pad
