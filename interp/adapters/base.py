"""The adapter contract: one uniform view of an encoder's layers, embeddings and output head.

An adapter only *reads and calls* the model's own modules; it never changes them. Each family (BERT, RoBERTa,
ALBERT, ModernBERT, ...) is one subclass in its own file, registered with :func:`interp.adapters.register`.
The BERT wiring is the default implemented here; a family overrides only what differs.

The LayerNorm form of a layer (see docs/MATH.md §2):

* ``post`` (BERT): attention output = LN(dense_i + x_i); identity 2 freezes the scale σ_i of that LayerNorm.
* ``pre``  (ModernBERT): the residual stream after attention = x_i + dense_i; the LayerNorm acts on the layer
  *input*, so it is already inside every message (o_j = W_O W_V LN(x_j)) and identity 2 is the plain sum.
* ``none`` (the paper model): attention output = dense output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn


@dataclass
class Projection:
    """A slice of a fused projection (e.g. ModernBERT's ``Wqkv``), with the ``weight``/``bias`` of an nn.Linear."""
    weight: torch.Tensor          # out × in
    bias: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y


@dataclass
class LayerParts:
    """Layer l. ``q, k, v`` project the attention input (weights out × d, rows h·d_h…(h+1)·d_h per head); ``o``
    is the attention output dense (None: identity); ``ln`` the post-attention LayerNorm (post-norm layers only);
    ``ffn`` maps the sublayer output to the layer output (the model's own feed-forward block, residual and
    norm); ``module`` is the whole layer; ``norm`` the LayerNorm form (``post``/``pre``/``none``)."""
    q: nn.Module | Projection | None
    k: nn.Module | Projection | None
    v: nn.Module | Projection
    o: nn.Linear | None
    ln: nn.LayerNorm | None
    ffn: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module
    attention_module: nn.Module
    n_heads: int
    head_dim: int
    norm: str = "post"

    def after_attention(self, dense: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(sublayer output, σ) from the dense output and the layer input (both … × d). σ_i = sqrt(var(dense_i +
        x_i) + eps) is the post-attention LayerNorm scale (post-norm only; None otherwise)."""
        if self.norm == "post":
            pre = dense + x
            # var from the centred row's norm: the same quantity as var(unbiased=False), ~10× faster on the CPU
            centred = pre - pre.mean(-1, keepdim=True)
            sigma = torch.sqrt(torch.linalg.vector_norm(centred, dim=-1).square() / pre.shape[-1] + self.ln.eps)
            return self.ln(pre), sigma
        if self.norm == "pre":
            return x + dense, None
        return dense, None


@dataclass
class EmbeddingParts:
    """Layer-0 input = proj(LN(word + position + segment)) (``proj_first``: LN(proj(...)), as in DeBERTa); LN and
    proj may be absent. Each part: n × e (zeros where the model has no such embedding)."""
    word: torch.Tensor
    position: torch.Tensor
    segment: torch.Tensor
    ln: nn.LayerNorm | None
    proj: nn.Linear | None
    proj_first: bool = False


class Adapter:
    """BERT wiring; the base of every family. ``model`` is the loaded transformers model (with or without MLM
    head). Class attributes describe the family; subclasses override the methods whose wiring differs."""

    model_types: ClassVar[tuple[str, ...]] = ()
    display_name: ClassVar[str] = ""
    head_prefixes: ClassVar[tuple[str, ...]] = ()
    uses_token_types: ClassVar[bool] = True
    accepts_mask_aliases: ClassVar[bool] = True
    #: padding token id of the small random configurations
    default_pad: ClassVar[int] = 0
    #: True when attention goes through transformers' attention interface (and so through interp/attention.py);
    #: otherwise the trace reads the probabilities the model returns and plans cannot substitute rows.
    attention_via_interface: ClassVar[bool] = True
    #: why sampled/counterfactual rows cannot be substituted inside the model (families outside the interface)
    no_plan_reason: ClassVar[str | None] = None
    #: why the layer-0 gate-score split is refused (None: it is exact for this family)
    gate_split_refusal: ClassVar[str | None] = None
    #: where layer 0's word/position split stands for this family (shown with the split)
    layer0_note: ClassVar[str] = "absolute position embeddings: each layer-0 message splits into word + position " \
                                 "+ segment/bias parts (exact, embedding LayerNorm scale frozen)"

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config
        self.model_type = self.config.model_type
        reason = self.refusal(self.config)
        if reason:
            raise ValueError(reason)
        self.base = self._base()
        self.layers = [self._layer(m) for m in self._layer_modules()]
        self.layer_of = self._layer_index()
        self.has_mlm_head = self._has_head()

    # --- family description -------------------------------------------------------------------------------
    @classmethod
    def refusal(cls, config) -> str | None:
        """One line saying why this configuration cannot be decomposed exactly, or None."""
        return None

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        """A small random configuration of this family (tests and offline fallbacks); ``options`` carries
        ``model_type`` (and family-specific choices)."""
        raise NotImplementedError

    @classmethod
    def position_offset(cls, config) -> int:
        """Positions the model reserves before the first token (RoBERTa-style: pad_token_id + 1)."""
        return 0

    # --- structure ------------------------------------------------------------------------------------------
    def _base(self) -> nn.Module:
        prefix = getattr(self.model, "base_model_prefix", "")
        return getattr(self.model, prefix, self.model) if prefix else self.model

    def _layer_modules(self) -> list[nn.Module]:
        return list(self.base.encoder.layer)

    def _layer(self, layer: nn.Module) -> LayerParts:
        cfg = self.config
        att = layer.attention
        return LayerParts(att.self.query, att.self.key, att.self.value, att.output.dense, att.output.LayerNorm,
                          lambda x, blk=layer: blk.output(blk.intermediate(x), x), layer, att.self,
                          cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)

    def _layer_index(self) -> dict[int, int | tuple[int, ...]]:
        """id(attention module) → layer, or → the layers in call order where one module is shared (ALBERT)."""
        seen: dict[int, list[int]] = {}
        for i, p in enumerate(self.layers):
            seen.setdefault(id(p.attention_module), []).append(i)
        return {k: (v[0] if len(v) == 1 else tuple(v)) for k, v in seen.items()}

    def _head_module(self) -> nn.Module | None:
        return getattr(self.model, "cls", None)

    def _has_head(self) -> bool:
        return self._head_module() is not None

    # --- pieces of the forward pass, each the model's own modules ---------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.layers[0].n_heads

    def layer_mask(self, valid: torch.Tensor, layer: int | None = None) -> torch.Tensor | None:
        """The boolean mask (batch × 1 × n × n, True = attend) of ``layer`` for key validity ``valid``
        (batch × n); None when every key is valid everywhere."""
        n = valid.shape[1]
        if bool(valid.all()):
            return None
        return valid[:, None, None, :].expand(-1, 1, n, n)

    def call_layer(self, layer: int, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Layer ``layer`` of the model on ``hidden`` (batch × n × d) with key validity ``valid``."""
        return self.layers[layer].module(hidden, self.layer_mask(valid, layer))

    def run_layers(self, hidden: torch.Tensor, valid: torch.Tensor, start: int) -> torch.Tensor:
        """Run layers ``start..L-1`` on ``hidden`` (batch × n × d) with the model's own layer modules; returns
        the model's last hidden state (any final norm applied)."""
        for l in range(start, self.n_layers):
            hidden = self.call_layer(l, hidden, valid)
        return self.finish(hidden)

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last layer's output → the model's last hidden state (a final norm where the family has one)."""
        return hidden

    def layer_states(self, out) -> tuple[torch.Tensor, ...]:
        """L + 1 tensors (batch × n × d): the input of every layer, then the last layer's output (before any
        final norm), from the model's output object."""
        return tuple(out.hidden_states)

    def output(self, final_hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """What the model outputs: MLM logits (batch × n × V) when it has a head, else the mean-pooled
        sentence embedding over valid tokens (batch × d), as sentence-transformers computes before normalising."""
        if self.has_mlm_head:
            return self.mlm_logits(final_hidden)
        w = valid.to(final_hidden.dtype)[..., None]
        return (final_hidden * w).sum(-2) / w.sum(-2).clamp(min=1)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """MLM logits (… × V) from the model's last hidden state (… × d)."""
        return self._head_module()(h)

    def decoder(self) -> nn.Module:
        """The Linear that maps the MLM head's hidden state to vocabulary logits."""
        return self.model.get_output_embeddings()

    def output_embeddings(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W: V × d, b: V or None) of the vocabulary projection, for the vocabulary lens: the MLM decoder when
        present, otherwise the tied input word embeddings (no bias)."""
        if self.has_mlm_head:
            dec = self.decoder()
            return dec.weight, getattr(dec, "bias", None)
        return self.word_embedding_module().weight, None

    def word_embedding_module(self) -> nn.Embedding:
        return self.base.embeddings.word_embeddings

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Absolute position ids (same shape as ``input_ids``)."""
        n = input_ids.shape[-1]
        return torch.arange(n, device=input_ids.device).expand_as(input_ids)

    def embedding_parts(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> EmbeddingParts:
        """Raw word/position/segment vectors of one example (``input_ids``: n)."""
        emb = self.base.embeddings
        word = emb.word_embeddings(input_ids)
        pos_emb = getattr(emb, "position_embeddings", None)
        position = pos_emb(self.position_ids(input_ids[None])[0]) if pos_emb is not None else torch.zeros_like(word)
        tte = getattr(emb, "token_type_embeddings", None)
        if tte is not None:
            tt = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            segment = tte(tt)
        else:
            segment = torch.zeros_like(word)
        return EmbeddingParts(word, position, segment, emb.LayerNorm, self._embedding_projection())

    def _embedding_projection(self) -> nn.Linear | None:
        return getattr(self.base, "embeddings_project", None)

    def score_bias(self, layer: int, n: int) -> torch.Tensor | None:
        """An additive, input-independent part of the gate scores (H × n × n; e.g. a relative-position bias),
        or None. Used by the layer-0 gate-score split."""
        return None

    def recompute_attention(self, layer: int, hidden_in: torch.Tensor, probs: torch.Tensor):
        """For families outside the attention interface: Q, K, V (batch × H × n × d_h) from the layer input with
        the model's own projections, and the head outputs Σ_j a_ij v_j (batch × n × H·d_h)."""
        parts = self.layers[layer]
        B, n, _ = hidden_in.shape
        H, dh = parts.n_heads, parts.head_dim

        def split(t):
            return t.view(B, n, H, dh).transpose(1, 2)

        q, k, v = split(parts.q(hidden_in)), split(parts.k(hidden_in)), split(parts.v(hidden_in))
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, n, H * dh)
        return q, k, v, ctx
