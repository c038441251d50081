"""The paper's one-layer, one-head masked-token model, and its CBOW baseline.

Wibisono & Wang, "Bidirectional Attention as a Mixture of Continuous Word Experts" (UAI 2023, arXiv 2307.04057):
input u_j = e_{x_j} + p_j (word + position, no LayerNorm), q = W_Q u, k = W_K u, v = W_V u, one head,
gate a_ij = softmax_j(q_i·k_j/√d) over all valid j (j = i included), no FFN, no LayerNorm, and
logits_i = ρ·(Σ_j a_ij v_j) + b — affine in the head output. Hence logits_i = Σ_j a_ij z_j exactly with
z_j = ρ·v_j + b (the continuous word experts).

``gate="uniform"`` is the non-attention predecessor: a_ij uniform over the context positions j ≠ i (CBOW).
It has no query/key parameters; its scores are all zero and the context mask does the rest.

Attention goes through transformers' attention interface, so the project's capture and substitution plans
see this model exactly as they see BERT. The model type is registered with transformers' Auto classes from
this module (the project's own code; never remote code).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from . import attention as _attention  # noqa: F401  (registers the project's attention function)

MODEL_TYPE = "expertlens-paper"


class PaperConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 8000, hidden_size: int = 128, max_position_embeddings: int = 128,
                 gate: str = "attention", pad_token_id: int = 0, initializer_range: float = 0.02, **kwargs):
        if gate not in ("attention", "uniform"):
            raise ValueError(f"gate must be 'attention' or 'uniform', not {gate!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.gate = gate
        self.initializer_range = initializer_range
        self.num_hidden_layers = 1
        self.num_attention_heads = 1
        super().__init__(pad_token_id=pad_token_id, **kwargs)


def _eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


class PaperAttention(nn.Module):
    """One head over the whole embedding (d_h = d). No output projection: the head output is Σ_j a_ij v_j."""

    def __init__(self, config: PaperConfig):
        super().__init__()
        d = config.hidden_size
        self.config = config
        self.layer_idx = 0
        self.uniform = config.gate == "uniform"
        self.query = None if self.uniform else nn.Linear(d, d, bias=False)
        self.key = None if self.uniform else nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.scaling = d ** -0.5
        self.training_dropout = 0.0

    def project(self, u: torch.Tensor):
        b, n, d = u.shape
        v = self.value(u).view(b, n, 1, d).transpose(1, 2)
        if self.uniform:
            zeros = torch.zeros_like(v)
            return zeros, zeros, v
        q = self.query(u).view(b, n, 1, d).transpose(1, 2)
        k = self.key(u).view(b, n, 1, d).transpose(1, 2)
        return q, k, v

    def forward(self, u: torch.Tensor, mask: torch.Tensor):
        q, k, v = self.project(u)
        fn = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, _eager)
        out, probs = fn(self, q, k, v, mask, scaling=self.scaling, dropout=0.0)
        return out.reshape(u.shape[0], u.shape[1], -1), probs


class PaperForMaskedLM(PreTrainedModel):
    config_class = PaperConfig
    base_model_prefix = "paper"
    _supports_attention_backend = True
    _supports_sdpa = False

    def __init__(self, config: PaperConfig):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.attention = PaperAttention(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.word_embeddings

    def gate_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Boolean batch × 1 × n × n: valid keys; for the CBOW gate also j ≠ i."""
        valid = attention_mask.bool()
        n = valid.shape[1]
        mask = valid[:, None, None, :].expand(-1, 1, n, n)
        if self.attention.uniform:
            mask = mask & ~torch.eye(n, dtype=torch.bool, device=valid.device)
        return mask

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False, return_dict: bool = True,
                **kwargs) -> MaskedLMOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        u = self.embed(input_ids)
        context, probs = self.attention(u, self.gate_mask(attention_mask))
        logits = self.decoder(context)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits,
                              hidden_states=(u, context) if output_hidden_states else None,
                              attentions=(probs,) if output_attentions else None)


AutoConfig.register(MODEL_TYPE, PaperConfig)
AutoModelForMaskedLM.register(PaperConfig, PaperForMaskedLM)
