"""Text → tokens → one forward pass of the model, captured once into a :class:`Trace`.

The capture goes through the project's attention function (see ``attention.py``): per layer it records the
model's own Q, K, V, attention probabilities and head outputs; hidden states and logits come from the same
forward pass (``output_hidden_states``). The attention ``dense`` output and the post-attention LayerNorm are the
model's own modules applied to the captured head outputs. Everything else in ``interp`` reads from the trace.
"""
from __future__ import annotations

import re
import unicodedata
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from .attention import AttentionPlan, attention_plan
from .loader import LoadedModel


class InputError(ValueError):
    """Bad input text; ``str(err)`` is one clear line for the UI and the CLI (English). ``code`` and ``params``,
    when given, let a user interface word it in its own language (i18n key ``inerr.<code>``)."""

    def __init__(self, message: str, code: str | None = None, **params):
        super().__init__(message)
        self.code, self.params = code, dict(params)


NOTE_EN = {       # the English wording of each note about the input (the CLI's); the UI words them by code
    "truncated": "input is {total} tokens; the model reads at most {kept}: analysed up to character {char}, cut "
                 "{cut} tokens starting “{preview}”",
    "bom": "removed a byte-order mark (BOM) at the start",
    "controls": "removed {n} control/format character(s)",
    "unknown": "{n} piece(s) unknown to this model's vocabulary became {unk}",
}


class Note(str):
    """A note about the input: its English text (a ``str``, as before) that also carries a code and the values
    it was formatted with, so a user interface can word it in its own language (i18n key ``note.<code>``)."""
    code: str
    params: dict

    def __new__(cls, code: str, **params):
        self = super().__new__(cls, NOTE_EN[code].format(**params))
        self.code, self.params = code, dict(params)
        return self

    def __reduce__(self):
        return (_make_note, (self.code, self.params))


def _make_note(code: str, params: dict) -> Note:
    return Note(code, **params)


@dataclass
class Truncation:
    """The text was longer than the model's positions: what was kept and what was cut."""
    tokens_total: int      # tokens the full text needs (special tokens included)
    tokens_kept: int
    cut_from_char: int     # first character of the text that was cut
    cut_text_preview: str

    def message(self) -> Note:
        """The English line (a :class:`Note` with code ``truncated`` and its values)."""
        return Note("truncated", total=self.tokens_total, kept=self.tokens_kept, char=self.cut_from_char,
                    cut=self.tokens_total - self.tokens_kept, preview=self.cut_text_preview)


@dataclass
class Encoded:
    input_ids: torch.Tensor            # B × n
    attention_mask: torch.Tensor       # B × n (1 = real token)
    token_type_ids: torch.Tensor | None
    tokens: list[list[str]]            # per example, real tokens only
    special: torch.Tensor              # B × n bool
    notes: list[list[str]]
    truncation: list[Truncation | None]


_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")   # category Cc, except \t \n \r
_PLAIN_BACKENDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def plain_backend(tok):
    """A private copy of a fast tokenizer's Rust backend with truncation and padding off, so a batch is encoded
    in one call without Python-side conversion of each text; the shared tokenizer is never changed. ``None`` for
    tokenizers without a Rust backend (the caller then uses the tokenizer's own call)."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        plain = _PLAIN_BACKENDS.get(tok)
    except TypeError:
        return None
    if plain is None:
        from tokenizers import Tokenizer
        plain = Tokenizer.from_str(backend.to_str())
        plain.no_truncation()
        plain.no_padding()
        _PLAIN_BACKENDS[tok] = plain
    return plain


def clean_text(text: str) -> tuple[str, list[str]]:
    """Normalise what tokenizers mishandle; report every change. Raises InputError on empty text."""
    if text is None:
        raise InputError("no text given: type a sentence", "no_text")
    notes: list[str] = []
    if text.startswith("\ufeff"):
        text = text.lstrip("\ufeff")
        notes.append(Note("bom"))
    if text.isascii():           # fast path: ASCII has control characters (Cc) but no format characters (Cf)
        controls = _ASCII_CONTROL.findall(text)
        if controls:
            text = _ASCII_CONTROL.sub(" ", text)
    else:
        controls = [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t\r"]
        if controls:
            text = "".join(" " if c in controls and unicodedata.category(c) == "Cc" else c
                           for c in text if not (unicodedata.category(c) == "Cf" and c in controls))
    if controls:
        notes.append(Note("controls", n=len(controls)))
    if not text.strip():
        raise InputError("empty text: type a sentence (use [MASK] where the model should predict a word)", "empty")
    return text, notes


def encode(lm: LoadedModel, texts: list[str]) -> Encoded:
    """Tokenise a batch with special tokens, right padding, and explicit truncation reports."""
    tok = lm.tokenizer
    max_len = lm.max_tokens
    rows, notes, truncs, toks = [], [], [], []
    cleaned = []
    for text in texts:
        text, note = clean_text(text)
        if lm.adapter.accepts_mask_aliases and getattr(tok, "mask_token", None):
            text = _normalise_mask(text, tok.mask_token)
        cleaned.append(text)
        notes.append(note)
    # one tokenizer call for the whole batch (each text is tokenised on its own, exactly as a single call would):
    # the Rust backend's own batch call where there is one, else the tokenizer's
    plain = plain_backend(tok)
    if plain is not None:
        encodings = plain.encode_batch(cleaned, add_special_tokens=True)
    else:
        batch = tok(cleaned, truncation=False, return_offsets_mapping=True, add_special_tokens=True, verbose=False)
    unk = getattr(tok, "unk_token_id", None)
    for j, text in enumerate(cleaned):
        note = notes[j]
        if plain is not None:
            e = encodings[j]
            ids, offsets, types, pieces = list(e.ids), e.offsets, list(e.type_ids), list(e.tokens)
        else:
            ids = list(batch["input_ids"][j])
            offsets = batch["offset_mapping"][j]
            types = list(batch["token_type_ids"][j]) if "token_type_ids" in batch else [0] * len(ids)
            pieces = None
        trunc = None
        if len(ids) > max_len:
            keep = max_len - 1  # keep the final special token ([SEP] / </s>)
            cut_char = next((s for s, e in offsets[keep:] if e > s), len(text))  # first cut piece
            trunc = Truncation(len(ids), max_len, int(cut_char), text[cut_char:cut_char + 40])
            ids = ids[:keep] + ids[-1:]
            types = types[:keep] + types[-1:]
            if pieces is not None:
                pieces = pieces[:keep] + pieces[-1:]
            note.append(trunc.message())
        n_unk = ids.count(unk) if unk is not None else 0
        if n_unk:
            note.append(Note("unknown", n=n_unk, unk=tok.unk_token))
        rows.append((ids, types))
        truncs.append(trunc)
        toks.append(pieces if pieces is not None else tok.convert_ids_to_tokens(ids))
    n = max(len(r[0]) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    B = len(rows)
    ids_np = np.full((B, n), pad, dtype=np.int64)
    types_np = np.zeros((B, n), dtype=np.int64)
    lens = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=B)
    for b, (ids, tt) in enumerate(rows):
        ids_np[b, :len(ids)] = ids
        types_np[b, :len(ids)] = tt[:len(ids)]
    input_ids = torch.from_numpy(ids_np)
    mask = torch.from_numpy((np.arange(n)[None, :] < lens[:, None]).astype(np.int64))
    types = torch.from_numpy(types_np)
    special_ids = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    special = torch.isin(input_ids, special_ids) & mask.bool()
    return Encoded(input_ids, mask, types if lm.adapter.uses_token_types else None, toks, special, notes, truncs)


def _normalise_mask(text: str, mask_token: str) -> str:
    """Accept [MASK], [mask] and <mask> for whatever the model's mask token is."""
    for alias in ("[MASK]", "[mask]", "<mask>", "[Mask]"):
        if alias != mask_token:
            text = text.replace(alias, mask_token)
    return text


@dataclass
class LayerTrace:
    """One layer of one example (n real tokens, d model width, H heads of width d_h)."""
    hidden_in: torch.Tensor     # n × d       input hidden states X
    q: torch.Tensor             # H × n × d_h
    k: torch.Tensor             # H × n × d_h
    v: torch.Tensor             # H × n × d_h
    probs: torch.Tensor         # H × n × n   gates a^h_ij (the model's attention probabilities)
    context: torch.Tensor       # n × (H·d_h) concatenated head outputs Σ_j a_ij v_j
    dense_out: torch.Tensor     # n × d       attention output dense (= context when the model has none)
    attn_out: torch.Tensor      # n × d       the attention sublayer's output: LN(dense + x) post-norm, x + dense
                                #             pre-norm, dense without a LayerNorm
    ln_sigma: torch.Tensor | None  # n       post-norm LayerNorm scale σ_i = sqrt(var(dense_out_i + x_i) + eps)
    hidden_out: torch.Tensor    # n × d       the layer's output in the model's own forward pass
    gate_terms: torch.Tensor | None = None  # H × n × 3 per query, from the gate logits s_ij = q·k·scaling of the
                                            # same call: Σ_j a_ij s_ij, Σ_{j non-special} a_ij s_ij, logsumexp_j s_ij
                                            # (the entropies' terms; the n × n logits are not kept)


@dataclass
class Trace:
    """One example's forward pass. ``output`` is MLM logits (n × V) or, without an MLM head, the mean-pooled
    sentence embedding (d)."""
    model_name: str
    tokens: list[str]
    input_ids: torch.Tensor
    token_type_ids: torch.Tensor | None
    special: torch.Tensor          # n bool
    layers: list[LayerTrace]
    final_hidden: torch.Tensor     # n × d  the model's last hidden state (after any final norm)
    output: torch.Tensor
    has_mlm_head: bool
    notes: list[str] = field(default_factory=list)
    truncation: Truncation | None = None

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.layers[0].probs.shape[0]

    def mask_positions(self, mask_token_id: int | None) -> list[int]:
        if mask_token_id is None:
            return []
        return [i for i, t in enumerate(self.input_ids.tolist()) if t == mask_token_id]


@dataclass
class BatchTrace:
    """A batch's forward pass (right-padded); :meth:`example` gives each example's :class:`Trace`."""
    model_name: str
    encoded: Encoded
    q: list[torch.Tensor]          # per layer B × H × n × d_h
    k: list[torch.Tensor]
    v: list[torch.Tensor]
    probs: list[torch.Tensor]      # per layer B × H × n × n
    context: list[torch.Tensor]    # per layer B × n × H·d_h
    hidden: tuple[torch.Tensor, ...]  # L+1 of B × n × d
    output: torch.Tensor           # B × n × V logits, or B × d pooled
    has_mlm_head: bool
    adapter: object
    final: torch.Tensor | None = None   # B × n × d the model's last hidden state (None: hidden[-1])
    gate_terms: list[torch.Tensor] | None = None  # per layer B × H × n × 3 (see LayerTrace; interface families)

    @property
    def batch_size(self) -> int:
        return self.encoded.input_ids.shape[0]

    def example(self, b: int) -> Trace:
        enc = self.encoded
        n = int(enc.attention_mask[b].sum())
        layers = []
        ad = self.adapter
        for l, parts in enumerate(ad.layers):
            x = self.hidden[l][b, :n]
            ctx = self.context[l][b, :n]
            dense = parts.o(ctx) if parts.o is not None else ctx
            attn_out, sigma = parts.after_attention(dense, x)
            layers.append(LayerTrace(hidden_in=x, q=self.q[l][b, :, :n], k=self.k[l][b, :, :n],
                                     v=self.v[l][b, :, :n], probs=self.probs[l][b, :, :n, :n], context=ctx,
                                     dense_out=dense, attn_out=attn_out, ln_sigma=sigma,
                                     hidden_out=self.hidden[l + 1][b, :n],
                                     gate_terms=None if self.gate_terms is None else self.gate_terms[l][b, :, :n]))
        out = self.output[b, :n] if self.has_mlm_head else self.output[b]
        final = self.final[b, :n] if self.final is not None else self.hidden[-1][b, :n]
        return Trace(model_name=self.model_name, tokens=enc.tokens[b], input_ids=enc.input_ids[b, :n],
                     token_type_ids=None if enc.token_type_ids is None else enc.token_type_ids[b, :n],
                     special=enc.special[b, :n], layers=layers, final_hidden=final, output=out,
                     has_mlm_head=self.has_mlm_head, notes=enc.notes[b], truncation=enc.truncation[b])


class CapturePlan(AttentionPlan):
    """Records each layer's Q, K, V, probabilities and head outputs (detached), and per query the terms of the
    gate entropies from the logits of the same call (``gate_terms``, see :class:`LayerTrace`): the n × n logits
    themselves are read once while they are at hand and not kept (keeping them doubled the memory a trace
    allocates, and the time of the pass). ``nonspecial``: B × n, True for keys that are not special tokens."""

    def __init__(self, layer_of: dict[int, int], nonspecial: torch.Tensor | None = None):
        super().__init__(layer_of)
        self.q, self.k, self.v, self.probs, self.context, self.gate_terms = {}, {}, {}, {}, {}, {}
        self.nonspecial = nonspecial
        self._special_keys: torch.Tensor | None = None

    def rows(self, layer, query, key, value, scores, probs, key_valid):
        with torch.no_grad():
            e = probs * scores                     # a_ij s_ij; masked keys: a = 0 exactly, s = dtype min → −0
            total = e.sum(-1)
            if self.nonspecial is None:
                plain = total
            elif e.shape[0] == 1:                  # one text: subtract its few special keys' columns
                if self._special_keys is None:     # found on the CPU once (no device synchronisation per layer)
                    self._special_keys = (~self.nonspecial[0].cpu()).nonzero()[:, 0].to(e.device)
                plain = total - e[..., self._special_keys].sum(-1)
            else:
                plain = (e * self.nonspecial.to(device=e.device, dtype=e.dtype)[:, None, None, :]).sum(-1)
            del e
            # logsumexp_j s_ij = max_j s_ij − log max_j a_ij: the softmax's largest gate is exp(max − lse), at the
            # same key as the largest logit (two max passes instead of an exp pass)
            lse = scores.amax(-1) - probs.amax(-1).log()
            self.gate_terms[layer] = torch.stack([total, plain, lse], -1)
        return None

    def observe(self, layer, query, key, value, probs, output):
        self.q[layer], self.k[layer], self.v[layer] = query.detach(), key.detach(), value.detach()
        self.probs[layer] = probs.detach()
        self.context[layer] = output.detach().flatten(2)


def forward(lm: LoadedModel, enc: Encoded, plan: AttentionPlan | None = None, hidden_states: bool = False,
            attentions: bool = False):
    """One call of the model itself on an encoded batch, under ``plan``; returns the model's output object.
    Families that compute attention outside transformers' attention interface refuse a plan (ValueError)."""
    if plan is not None and not lm.adapter.attention_via_interface:
        raise ValueError(lm.adapter.no_plan_reason)
    dev = lm.device
    kwargs = dict(input_ids=enc.input_ids.to(dev), attention_mask=enc.attention_mask.to(dev))
    if enc.token_type_ids is not None:
        kwargs["token_type_ids"] = enc.token_type_ids.to(dev)
    if attentions:
        kwargs["output_attentions"] = True
    with torch.no_grad(), attention_plan(plan):
        return lm.model(**kwargs, output_hidden_states=hidden_states)


def model_output(lm: LoadedModel, out, enc: Encoded) -> torch.Tensor:
    """MLM logits (B × n × V), or the mean-pooled embedding (B × d) for encoders without an MLM head."""
    if lm.has_mlm_head:
        return out.logits
    last = out.last_hidden_state if getattr(out, "last_hidden_state", None) is not None else out.hidden_states[-1]
    return lm.adapter.output(last, enc.attention_mask.to(last.device).bool())


def capture(lm: LoadedModel, texts: list[str] | str) -> BatchTrace:
    """Tokenise and run one forward pass, capturing everything the analyses need."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise InputError("no texts given")
    return capture_encoded(lm, encode(lm, texts))


def capture_encoded(lm: LoadedModel, enc: Encoded) -> BatchTrace:
    """One forward pass of the model on ``enc``, captured (see the module docstring). Families outside the
    attention interface return their probabilities (``output_attentions``); their Q, K, V are the model's own
    projections applied to each captured layer input."""
    ad = lm.adapter
    L = lm.n_layers
    if ad.attention_via_interface:
        plan = CapturePlan(ad.layer_of, ~enc.special)
        out = forward(lm, enc, plan, hidden_states=True)
        missing = [l for l in range(L) if l not in plan.probs]
        if missing:  # pragma: no cover - would mean the model bypassed the attention interface
            raise RuntimeError(f"attention of layers {missing} was not captured")
        states = list(ad.layer_states(out))
        q, k, v = [plan.q[l] for l in range(L)], [plan.k[l] for l in range(L)], [plan.v[l] for l in range(L)]
        probs, ctx = [plan.probs[l] for l in range(L)], [plan.context[l] for l in range(L)]
        gate_terms = [plan.gate_terms[l] for l in range(L)]
    else:
        out = forward(lm, enc, None, hidden_states=True, attentions=True)
        states = list(ad.layer_states(out))
        probs = [a.detach() for a in out.attentions]
        gate_terms = None
        q, k, v, ctx = [], [], [], []
        with torch.no_grad():
            for l in range(L):
                ql, kl, vl, cl = ad.recompute_attention(l, states[l], probs[l])
                q.append(ql), k.append(kl), v.append(vl), ctx.append(cl)
    final = None
    if states[-1] is None:   # the model reports only the final-normed state: rebuild the last layer's output
        parts = ad.layers[-1]
        with torch.no_grad():
            dense = parts.o(ctx[-1]) if parts.o is not None else ctx[-1]
            states[-1] = parts.ffn(parts.after_attention(dense, states[-2])[0])
        final = out.hidden_states[-1]
    return BatchTrace(model_name=lm.name, encoded=enc, q=q, k=k, v=v, probs=probs, context=ctx,
                      hidden=tuple(states), output=model_output(lm, out, enc), has_mlm_head=lm.has_mlm_head,
                      adapter=ad, final=final, gate_terms=gate_terms)


def trace_text(lm: LoadedModel, text: str) -> Trace:
    """The usual entry point: one text → one :class:`Trace`."""
    return capture(lm, [text]).example(0)
