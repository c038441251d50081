"""ModernBERT: pre-norm layers, rotary positions, alternating local (sliding-window) and global attention, no
biases by default, a final LayerNorm before the head.

* Pre-norm: each layer adds Wo(attention(LN(x))) to the residual stream, so identity 2 is the residual sum
  x_i + b_O + Σ_h Σ_j a_ij o_j (exact, no scale to freeze); the input LayerNorm is inside every message.
* Rotary positions live in the gate (q_i·R_{j−i} k_j), not in the messages: layer 0's messages are word-only
  (layer 0 has no input norm; the embedding LayerNorm acts on the word embedding alone), and the gate score has
  no additive position term, so the layer-0 gate-score split is refused.
* Local layers see keys within the sliding window only; the mask is transformers' own."""
from __future__ import annotations

import torch

from . import register
from .base import Adapter, EmbeddingParts, LayerParts, Projection


@register
class ModernBertAdapter(Adapter):
    model_types = ("modernbert",)
    display_name = "ModernBERT"
    head_prefixes = ("head.", "decoder.")
    uses_token_types = False
    gate_split_refusal = ("ModernBERT puts positions into the gate by rotation (q_i·R(j−i)k_j): the gate score has "
                          "no additive word/position parts to split")
    layer0_note = ("rotary positions: positions live in the gate, not in the messages; layer-0 messages are "
                   "word-only (the position part is zero)")

    @classmethod
    def random_config(cls, small: dict, pad: int, **options):
        from transformers import ModernBertConfig
        return ModernBertConfig(vocab_size=small["vocab_size"], hidden_size=small["hidden_size"],
                                num_hidden_layers=max(3, small["num_hidden_layers"]),
                                num_attention_heads=small["num_attention_heads"],
                                intermediate_size=small["intermediate_size"],
                                max_position_embeddings=small["max_position_embeddings"],
                                global_attn_every_n_layers=2, local_attention=8, pad_token_id=pad,
                                bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3,
                                attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0)

    def _layer_modules(self):
        return list(self.base.layers)

    def _layer(self, layer) -> LayerParts:
        cfg = self.config
        att = layer.attn
        H = cfg.num_attention_heads
        dh = cfg.hidden_size // H
        W, b = att.Wqkv.weight, att.Wqkv.bias
        proj = [Projection(W[i * H * dh:(i + 1) * H * dh], None if b is None else b[i * H * dh:(i + 1) * H * dh])
                for i in range(3)]
        return LayerParts(proj[0], proj[1], proj[2], att.Wo, None,
                          lambda x, blk=layer: x + blk.mlp(blk.mlp_norm(x)), layer, att, H, dh, norm="pre")

    def _head_module(self):
        return getattr(self.model, "head", None)

    def mlm_logits(self, h):
        return self.model.decoder(self.model.head(h))

    def decoder(self):
        return self.model.decoder

    def finish(self, hidden):
        return self.base.final_norm(hidden)

    def layer_states(self, out):
        # transformers reports the final-normed state as the last entry; the last layer's own output is
        # rebuilt by the trace from the captured attention (see trace.capture_encoded)
        return tuple(out.hidden_states[:-1]) + (None,)

    def word_embedding_module(self):
        return self.base.embeddings.tok_embeddings

    def _masks(self, hidden, valid):
        from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask
        kw = {"config": self.config, "inputs_embeds": hidden, "attention_mask": valid.long()}
        return {"full_attention": create_bidirectional_mask(**kw),
                "sliding_attention": create_bidirectional_sliding_window_mask(**kw)}

    def layer_mask(self, valid, layer=None):
        n = valid.shape[1]
        out = valid[:, None, None, :].expand(-1, 1, n, n)
        if layer is not None and self.config.layer_types[layer] == "sliding_attention":
            idx = torch.arange(n, device=valid.device)
            out = out & ((idx[:, None] - idx[None, :]).abs() <= self.config.sliding_window)[None, None]
        elif bool(valid.all()):
            return None
        return out

    def run_layers(self, hidden, valid, start):
        if start < self.n_layers:
            masks = self._masks(hidden, valid)
            pos = torch.arange(hidden.shape[1], device=hidden.device)[None]
            rope = {t: self.base.rotary_emb(hidden, pos, t) for t in set(self.config.layer_types)}
            for l in range(start, self.n_layers):
                blk = self.layers[l].module
                hidden = blk(hidden, attention_mask=masks[blk.attention_type],
                             position_embeddings=rope[blk.attention_type])
        return self.finish(hidden)

    def call_layer(self, layer, hidden, valid):
        masks = self._masks(hidden, valid)
        pos = torch.arange(hidden.shape[1], device=hidden.device)[None]
        blk = self.layers[layer].module
        return blk(hidden, attention_mask=masks[blk.attention_type],
                   position_embeddings=self.base.rotary_emb(hidden, pos, blk.attention_type))

    def embedding_parts(self, input_ids, token_type_ids) -> EmbeddingParts:
        emb = self.base.embeddings
        word = emb.tok_embeddings(input_ids)
        zero = torch.zeros_like(word)
        return EmbeddingParts(word, zero, zero, emb.norm, None)
