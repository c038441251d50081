"""One uniform view of every supported encoder: its layers' Q/K/V/O projections, LayerNorms, feed-forward
blocks, embeddings and output head — always the model's own modules, only read and called, never changed.

Supported: BERT (and MiniLM, which is a BERT), RoBERTa, ELECTRA, DistilBERT and the project's paper/CBOW model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

SUPPORTED = ("bert", "roberta", "electra", "distilbert", "expertlens-paper")


@dataclass
class LayerParts:
    """Layer l: ``q, k, v`` project hidden states; ``o`` is the attention output dense (None: identity);
    ``ln`` the post-attention LayerNorm (None: none); ``ffn`` maps the attention output to the layer output
    (the model's own feed-forward block and LayerNorm); ``module`` is the whole layer, callable on hidden states."""
    q: nn.Linear | None
    k: nn.Linear | None
    v: nn.Linear
    o: nn.Linear | None
    ln: nn.LayerNorm | None
    ffn: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module
    attention_module: nn.Module
    n_heads: int
    head_dim: int


@dataclass
class EmbeddingParts:
    """Layer-0 input = proj(LN(word + position + segment)); LN and proj may be absent (paper model)."""
    word: torch.Tensor          # n × e, raw word embeddings
    position: torch.Tensor      # n × e
    segment: torch.Tensor       # n × e (zeros where the model has no segment embedding)
    ln: nn.LayerNorm | None
    proj: nn.Linear | None      # ELECTRA's embeddings_project (when embedding size ≠ hidden size)


class Adapter:
    """Architecture-specific wiring. ``model`` is the loaded transformers model (with or without MLM head)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config
        self.model_type = self.config.model_type
        if self.model_type not in SUPPORTED:
            raise ValueError(f"unsupported model type {self.model_type!r}")
        self.base = self._base()
        self.layers = [self._layer(m) for m in self._layer_modules()]
        self.layer_of = {id(p.attention_module): i for i, p in enumerate(self.layers)}
        self.has_mlm_head = self._has_head()

    # --- structure -------------------------------------------------------------------------------------
    def _base(self) -> nn.Module:
        if self.model_type == "expertlens-paper":
            return self.model
        prefix = getattr(self.model, "base_model_prefix", "")
        return getattr(self.model, prefix, self.model) if prefix else self.model

    def _layer_modules(self) -> list[nn.Module]:
        if self.model_type == "expertlens-paper":
            return [self.model]
        if self.model_type == "distilbert":
            return list(self.base.transformer.layer)
        return list(self.base.encoder.layer)

    def _layer(self, layer: nn.Module) -> LayerParts:
        cfg = self.config
        if self.model_type == "expertlens-paper":
            att = layer.attention
            return LayerParts(att.query, att.key, att.value, None, None, lambda x: x, layer, att, 1,
                              cfg.hidden_size)
        if self.model_type == "distilbert":
            att = layer.attention
            return LayerParts(att.q_lin, att.k_lin, att.v_lin, att.out_lin, layer.sa_layer_norm,
                              lambda x, blk=layer: blk.output_layer_norm(blk.ffn(x) + x), layer, att,
                              cfg.n_heads, cfg.dim // cfg.n_heads)
        att = layer.attention
        return LayerParts(att.self.query, att.self.key, att.self.value, att.output.dense, att.output.LayerNorm,
                          lambda x, blk=layer: blk.output(blk.intermediate(x), x), layer, att.self,
                          cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)

    def _has_head(self) -> bool:
        t = self.model_type
        if t == "expertlens-paper":
            return True
        if t == "bert":
            return hasattr(self.model, "cls")
        if t == "roberta":
            return hasattr(self.model, "lm_head")
        if t == "distilbert":
            return hasattr(self.model, "vocab_projector")
        return hasattr(self.model, "generator_lm_head")

    # --- pieces of the forward pass, each the model's own modules ---------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.layers[0].n_heads

    @property
    def layer_norm_eps(self) -> float:
        ln = self.layers[0].ln
        return float(ln.eps) if ln is not None else 0.0

    def layer_mask(self, valid: torch.Tensor) -> torch.Tensor | None:
        """The boolean mask a layer module expects (batch × 1 × n × n, True = attend)."""
        n = valid.shape[1]
        if self.model_type == "expertlens-paper":
            return self.model.gate_mask(valid.long())
        if bool(valid.all()):
            return None
        return valid[:, None, None, :].expand(-1, 1, n, n)

    def run_layers(self, hidden: torch.Tensor, valid: torch.Tensor, start: int) -> torch.Tensor:
        """Run layers ``start..L-1`` on ``hidden`` (batch × n × d) with the model's own layer modules."""
        if start >= self.n_layers:
            return hidden
        mask = self.layer_mask(valid)
        for layer in self.layers[start:]:
            if self.model_type == "expertlens-paper":
                hidden, _ = layer.attention_module(hidden, mask)
            else:
                hidden = layer.module(hidden, mask)
        return hidden

    def output(self, final_hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """What the model outputs: MLM logits (batch × n × V) when it has a head, else the mean-pooled
        sentence embedding over valid tokens (batch × d), as sentence-transformers computes before normalising."""
        if self.has_mlm_head:
            return self.mlm_logits(final_hidden)
        w = valid.to(final_hidden.dtype)[..., None]
        return (final_hidden * w).sum(-2) / w.sum(-2).clamp(min=1)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        m, t = self.model, self.model_type
        if t == "expertlens-paper":
            return m.decoder(h)
        if t == "bert":
            return m.cls(h)
        if t == "roberta":
            return m.lm_head(h)
        if t == "distilbert":
            x = m.activation(m.vocab_transform(h))
            return m.vocab_projector(m.vocab_layer_norm(x))
        return m.generator_lm_head(m.generator_predictions(h))

    def output_embeddings(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W, b) of the vocabulary projection, for the vocabulary lens: the MLM decoder when present,
        otherwise the tied input word embeddings (no bias)."""
        m, t = self.model, self.model_type
        if self.has_mlm_head:
            dec = {"expertlens-paper": lambda: m.decoder, "bert": lambda: m.cls.predictions.decoder,
                   "roberta": lambda: m.lm_head.decoder, "distilbert": lambda: m.vocab_projector,
                   "electra": lambda: m.generator_lm_head}[t]()
            return dec.weight, dec.bias
        return self.word_embedding_module().weight, None

    def word_embedding_module(self) -> nn.Embedding:
        if self.model_type == "expertlens-paper":
            return self.model.word_embeddings
        return self.base.embeddings.word_embeddings

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[-1]
        if self.model_type == "roberta":
            pad = self.config.pad_token_id
            keep = (input_ids != pad).long()
            return torch.cumsum(keep, dim=-1) * keep + pad
        return torch.arange(n, device=input_ids.device).expand_as(input_ids)

    def embedding_parts(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> EmbeddingParts:
        """Raw word/position/segment vectors of one example (``input_ids``: n)."""
        ids = input_ids[None]
        pos = self.position_ids(ids)[0]
        if self.model_type == "expertlens-paper":
            word = self.model.word_embeddings(input_ids)
            position = self.model.position_embeddings(pos)
            return EmbeddingParts(word, position, torch.zeros_like(word), None, None)
        emb = self.base.embeddings
        word = emb.word_embeddings(input_ids)
        position = emb.position_embeddings(pos)
        tte = getattr(emb, "token_type_embeddings", None)
        if tte is not None:
            tt = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            segment = tte(tt)
        else:
            segment = torch.zeros_like(word)
        proj = getattr(self.base, "embeddings_project", None)
        return EmbeddingParts(word, position, segment, emb.LayerNorm, proj)
