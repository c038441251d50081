"""Text → tokens → one forward pass of the model, captured once into a :class:`Trace`.

The capture goes through the project's attention function (see ``attention.py``): per layer it records the
model's own Q, K, V, attention probabilities (written into one buffer stacked over layers) and head outputs;
hidden states come from the same forward pass of the base model (``output_hidden_states``); the model's output
(the MLM logits of every position, or the pooled embedding) is its own head applied to that pass's last hidden
state when a view first reads ``output``. The attention ``dense``
output and the post-attention LayerNorm are the model's own modules applied to the captured head outputs, on
first use (the overview does not need them). Everything else in ``interp`` reads from the trace.
"""
from __future__ import annotations

import re
import unicodedata
import weakref
from dataclasses import dataclass, field
from typing import Callable

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


_UNSET = object()


class LayerTrace:
    """One layer of one example (n real tokens, d model width, H heads of width d_h).

    Captured (views of the forward pass's own tensors, no copies):

    * ``hidden_in``  n × d       input hidden states X
    * ``q, k, v``    H × n × d_h
    * ``probs``      H × n × n   gates a^h_ij (the model's attention probabilities)
    * ``context``    n × (H·d_h) concatenated head outputs Σ_j a_ij v_j
    * ``hidden_out`` n × d       the layer's output in the model's own forward pass
    * ``gate_stats`` 4 × H × n or None, per query from the gate logits s_ij = q·k·scaling of the same call:
      Σ_j a_ij s_ij, Σ_{j non-special} a_ij s_ij, max_j s_ij and max_j a_ij (the entropies' terms:
      logsumexp_j s_ij = max_j s_ij − log max_j a_ij; the n × n logits are not kept)

    Computed on first use with the model's own modules and kept (the overview does not need them, so a trace
    does not pay for them until a view asks):

    * ``dense_out`` n × d  attention output dense applied to ``context`` (= context when the model has none)
    * ``attn_out``  n × d  the attention sublayer's output: LN(dense + x) post-norm, x + dense pre-norm, dense
      without a LayerNorm
    * ``ln_sigma``  n      post-norm LayerNorm scale σ_i = sqrt(var(dense_out_i + x_i) + eps); None otherwise
    """

    def __init__(self, hidden_in: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 probs: torch.Tensor, context: torch.Tensor, hidden_out: torch.Tensor, parts=None,
                 dense_out: torch.Tensor | None = None, attn_out: torch.Tensor | None = None,
                 ln_sigma=_UNSET, gate_stats: torch.Tensor | None = None):
        self.hidden_in, self.q, self.k, self.v = hidden_in, q, k, v
        self.probs, self.context, self.hidden_out, self.gate_stats = probs, context, hidden_out, gate_stats
        self._parts = parts
        self._dense_out = dense_out
        self._attn_out = attn_out
        self._ln_sigma = ln_sigma
        if parts is None and (dense_out is None or attn_out is None or ln_sigma is _UNSET):
            raise ValueError("a LayerTrace needs the layer's parts or its dense_out, attn_out and ln_sigma")

    @property
    def dense_out(self) -> torch.Tensor:
        if self._dense_out is None:
            parts = self._parts
            with torch.no_grad():
                self._dense_out = parts.o(self.context) if parts.o is not None else self.context
        return self._dense_out

    def _after_attention(self) -> None:
        with torch.no_grad():
            self._attn_out, self._ln_sigma = self._parts.after_attention(self.dense_out, self.hidden_in)

    @property
    def attn_out(self) -> torch.Tensor:
        if self._attn_out is None:
            self._after_attention()
        return self._attn_out

    @property
    def ln_sigma(self) -> torch.Tensor | None:
        if self._ln_sigma is _UNSET:
            self._after_attention()
        return self._ln_sigma

    def __getstate__(self):
        # a pickled layer carries its computed values, not the model's modules
        state = dict(self.__dict__)
        state["_dense_out"], state["_attn_out"], state["_ln_sigma"] = self.dense_out, self.attn_out, self.ln_sigma
        state["_parts"] = None
        return state


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def _stacked(stack: torch.Tensor | None, parts: list[torch.Tensor]) -> torch.Tensor | None:
    """``stack`` when its slices along the first axis are exactly ``parts`` (the same memory and layout)."""
    if stack is None or len(parts) != stack.shape[0]:
        return None
    return stack if all(_same_view(p, stack[l]) for l, p in enumerate(parts)) else None


@dataclass
class Trace:
    """One example's forward pass. ``output`` is MLM logits (n × V) or, without an MLM head, the mean-pooled
    sentence embedding (d): computed on first access with the model's own head from its last hidden state
    (``output_fn``), then kept (``output_value``); the numbers are those of the model's own forward with its head."""
    model_name: str
    tokens: list[str]
    input_ids: torch.Tensor
    token_type_ids: torch.Tensor | None
    special: torch.Tensor          # n bool
    layers: list[LayerTrace]
    final_hidden: torch.Tensor     # n × d  the model's last hidden state (after any final norm)
    has_mlm_head: bool
    notes: list[str] = field(default_factory=list)
    truncation: Truncation | None = None
    probs_all: torch.Tensor | None = field(default=None, repr=False)  # L × H × n × n, the layers' gates stacked
                                                                        # (a view of the capture's buffer)
    context_all: torch.Tensor | None = field(default=None, repr=False)  # L × n × H·d_h, the layers' head outputs
                                                                          # stacked (a view of the capture's buffer)
    output_value: torch.Tensor | None = field(default=None, repr=False)  # the output once computed
    output_fn: Callable[[], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @property
    def output(self) -> torch.Tensor:
        """MLM logits (n × V) or the pooled embedding (d), computed when first asked for (see the class)."""
        if self.output_value is None:
            if self.output_fn is None:
                raise ValueError("this trace holds no model output")
            self.output_value = self.output_fn()
        return self.output_value

    def __getstate__(self):
        # a pickled trace carries its output, not the function (and the model) that computes it
        state = dict(self.__dict__)
        state["output_value"], state["output_fn"] = self.output, None
        return state

    def stacked_probs(self) -> torch.Tensor | None:
        """Every layer's gates as one L × H × n × n tensor when the layers still hold exactly its slices (a gate
        replaced after the capture makes it None, and readers fall back to the layers one by one)."""
        return _stacked(self.probs_all, [lt.probs for lt in self.layers])

    def stacked_context(self) -> torch.Tensor | None:
        """Every layer's head outputs as one L × n × H·d_h tensor when the layers still hold exactly its slices
        (else None: readers stack the layers' own)."""
        return _stacked(self.context_all, [lt.context for lt in self.layers])

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
    """A batch's forward pass (right-padded); :meth:`example` gives each example's :class:`Trace`. ``output``
    (B × n × V logits, or B × d pooled) is computed on first access with the model's own head (the adapter's
    :meth:`~interp.adapters.base.Adapter.output`) from ``last_hidden``, the base model's last hidden state that
    the head reads in the model's own forward: the same op on the same tensor, so the same numbers; a view that
    never shows the predictions never pays for the B × n × V logits."""
    model_name: str
    encoded: Encoded
    q: list[torch.Tensor]          # per layer B × H × n × d_h
    k: list[torch.Tensor]
    v: list[torch.Tensor]
    probs: list[torch.Tensor]      # per layer B × H × n × n
    context: list[torch.Tensor]    # per layer B × n × H·d_h
    hidden: tuple[torch.Tensor, ...]  # L+1 of B × n × d
    has_mlm_head: bool
    adapter: object
    final: torch.Tensor | None = None   # B × n × d the model's last hidden state (None: hidden[-1])
    gate_stats: torch.Tensor | None = None  # L × 4 × B × H × n (see LayerTrace; interface families), one buffer
    probs_all: torch.Tensor | None = None   # L × B × H × n × n: ``probs`` are its slices (interface families)
    context_all: torch.Tensor | None = None  # L × B × n × H·d_h: ``context`` are its slices (interface families)
    last_hidden: torch.Tensor | None = None  # B × n × d what the model's head reads (None: the final state)
    output_value: torch.Tensor | None = field(default=None, repr=False)  # the output once computed

    @property
    def output(self) -> torch.Tensor:
        """B × n × V MLM logits, or B × d mean-pooled embeddings (computed once, on first access)."""
        if self.output_value is None:
            last = self.last_hidden
            if last is None:
                last = self.final if self.final is not None else self.hidden[-1]
            with torch.no_grad():
                valid = self.encoded.attention_mask.to(last.device).bool()
                self.output_value = self.adapter.output(last, valid)
        return self.output_value

    @property
    def batch_size(self) -> int:
        return self.encoded.input_ids.shape[0]

    def example(self, b: int) -> Trace:
        """Example ``b`` as a :class:`Trace`: views of the batch's tensors (nothing is copied or computed here;
        each layer's dense output and LayerNorm scale are computed when a view first asks for them)."""
        enc = self.encoded
        mask = enc.attention_mask
        n = int(mask[b].numpy().sum() if mask.device.type == "cpu" else mask[b].sum())   # no torch op on the host
        full = n == enc.input_ids.shape[1]

        # an example without padding takes one index per tensor instead of an index and slices (on an
        # accelerator every view is host time, and a trace has ~10 per layer)
        def rows(t):                     # … × n × … with the batch first: example b's n positions
            return t[b] if full else t[b, :n]

        def heads(t):                    # B × H × n × …
            return t[b] if full else t[b, :, :n]

        layers = []
        ad = self.adapter
        gs = self.gate_stats
        hid = self.hidden
        for l, parts in enumerate(ad.layers):
            layers.append(LayerTrace(hidden_in=rows(hid[l]), q=heads(self.q[l]), k=heads(self.k[l]),
                                     v=heads(self.v[l]),
                                     probs=self.probs[l][b] if full else self.probs[l][b, :, :n, :n],
                                     context=rows(self.context[l]), hidden_out=rows(hid[l + 1]),
                                     parts=parts,
                                     gate_stats=None if gs is None else (gs[l, :, b] if full else gs[l, :, b, :, :n])))
        mlm = self.has_mlm_head
        out_fn = (lambda: rows(self.output)) if mlm else (lambda: self.output[b])
        final = rows(self.final) if self.final is not None else rows(hid[-1])
        P, C = self.probs_all, self.context_all
        return Trace(model_name=self.model_name, tokens=enc.tokens[b], input_ids=rows(enc.input_ids),
                     token_type_ids=None if enc.token_type_ids is None else rows(enc.token_type_ids),
                     special=rows(enc.special), layers=layers, final_hidden=final,
                     has_mlm_head=mlm, notes=enc.notes[b], truncation=enc.truncation[b],
                     probs_all=None if P is None else (P[:, b] if full else P[:, b, :, :n, :n]),
                     context_all=None if C is None else (C[:, b] if full else C[:, b, :n]),
                     output_value=None if self.output_value is None else out_fn(), output_fn=out_fn)


class CapturePlan(AttentionPlan):
    """Records each layer's Q, K, V, probabilities and head outputs (views, no copies). The softmax of every
    layer is written into one L × B × H × n × n buffer (``probs_all``; the same op as a fresh softmax), so
    later per-head statistics can run over all layers in one op; likewise the head outputs are made contiguous
    in one L × B × n × H × d_h buffer (``context_all``; the same copy as ``contiguous()``). With ``gate_stats``
    (default: on the CPU only) it also sums, per query, the terms of the gate entropies from the logits of the
    same call (see :class:`LayerTrace`) into one L × 4 × B × H × n buffer: the n × n logits are read once while
    they are at hand and not kept. On the CPU that saves the overview a log pass over every gate; on a GPU, where the
    cost is the number of launched ops rather than passes over memory, the overview computes the entropies
    from the stacked gates in a few ops for all layers instead. ``nonspecial``: B × n, True for keys that are
    not special tokens; ``n_layers``: L."""

    def __init__(self, layer_of: dict[int, int], nonspecial: torch.Tensor | None = None, n_layers: int | None = None,
                 gate_stats: bool | None = None):
        super().__init__(layer_of)
        self.q, self.k, self.v, self.probs, self.context = {}, {}, {}, {}, {}
        self.nonspecial = nonspecial
        self.n_layers = n_layers
        self.want_stats = gate_stats
        self.probs_all: torch.Tensor | None = None
        self.context_all: torch.Tensor | None = None
        self.gate_stats: torch.Tensor | None = None
        self._keys: torch.Tensor | None = None

    def _layer_slot(self, name: str, layer: int, like: torch.Tensor):
        """Layer ``layer``'s slot of the stacked L × ``like.shape`` buffer ``name`` (made on first use), or None
        when there is no layer count or the shape differs from the first layer's."""
        if self.n_layers is None:
            return None
        buf = getattr(self, name)
        if buf is None:
            buf = torch.empty((self.n_layers, *like.shape), dtype=like.dtype, device=like.device)
            setattr(self, name, buf)
        elif buf.shape[1:] != like.shape:   # pragma: no cover - every layer sees the same shape
            return None
        return buf[layer]

    def probs_buffer(self, layer, scores):
        return self._layer_slot("probs_all", layer, scores)

    def output_buffer(self, layer, output):
        return self._layer_slot("context_all", layer, output)

    def rows(self, layer, query, key, value, scores, probs, key_valid):
        if self.want_stats is None:
            self.want_stats = probs.device.type == "cpu"
        if not self.want_stats:
            return None
        # 5 ops per layer, each one pass over the n × n gates or logits, results written into the shared buffer
        B, H, n, _ = probs.shape
        if self.gate_stats is None:
            L = self.n_layers if self.n_layers is not None else layer + 1
            self.gate_stats = torch.empty(L, 4, B, H, n, dtype=probs.dtype, device=probs.device)
            keys = self.nonspecial if self.nonspecial is not None else torch.ones(B, n, dtype=torch.bool)
            self._keys = keys.to(device=probs.device, dtype=probs.dtype)
        out = self.gate_stats[layer]
        torch.amax(scores, -1, out=out[2])
        torch.amax(probs, -1, out=out[3])
        # a_ij s_ij in place: the logits are not read after this call (masked keys: a = 0, s = dtype min → −0)
        e = scores.mul_(probs)
        torch.sum(e, -1, out=out[0])
        if B == 1:
            torch.matmul(e[0], self._keys[0], out=out[1, 0])
        else:
            torch.sum(e.mul_(self._keys[:, None, None, :]), -1, out=out[1])
        return None

    def observe(self, layer, query, key, value, probs, output):
        self.q[layer], self.k[layer], self.v[layer] = query, key, value
        self.probs[layer] = probs
        self.context[layer] = output.flatten(2)


def forward(lm: LoadedModel, enc: Encoded, plan: AttentionPlan | None = None, hidden_states: bool = False,
            attentions: bool = False, module: torch.nn.Module | None = None):
    """One call of the model itself on an encoded batch, under ``plan``; returns the model's output object.
    ``module``: the module called (default the whole model; e.g. ``lm.adapter.base`` for the last hidden state
    without the MLM head). Families that compute attention outside transformers' attention interface refuse a
    plan (ValueError)."""
    if plan is not None and not lm.adapter.attention_via_interface:
        raise ValueError(lm.adapter.no_plan_reason)
    dev = lm.device
    kwargs = dict(input_ids=enc.input_ids.to(dev), attention_mask=enc.attention_mask.to(dev))
    if enc.token_type_ids is not None:
        kwargs["token_type_ids"] = enc.token_type_ids.to(dev)
    if attentions:
        kwargs["output_attentions"] = True
    with torch.no_grad(), attention_plan(plan):
        return (lm.model if module is None else module)(**kwargs, output_hidden_states=hidden_states)


def model_output(lm: LoadedModel, out, enc: Encoded) -> torch.Tensor:
    """MLM logits (B × n × V), or the mean-pooled embedding (B × d) for encoders without an MLM head."""
    if lm.has_mlm_head:
        return out.logits
    last = out.last_hidden_state if getattr(out, "last_hidden_state", None) is not None else out.hidden_states[-1]
    return lm.adapter.output(last, enc.attention_mask.to(last.device).bool())


def capture(lm: LoadedModel, texts: list[str] | str) -> BatchTrace:
    """Tokenise and run one forward pass of the base model, capturing everything the analyses need (the
    model's output, e.g. the MLM logits, is computed when first read: :attr:`BatchTrace.output`)."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise InputError("no texts given")
    return capture_encoded(lm, encode(lm, texts))


def capture_encoded(lm: LoadedModel, enc: Encoded, gate_stats: bool | None = None) -> BatchTrace:
    """One forward pass of the model on ``enc``, captured (see the module docstring). Families outside the
    attention interface return their probabilities (``output_attentions``); their Q, K, V are the model's own
    projections applied to each captured layer input. ``gate_stats``: see :class:`CapturePlan` (None: on the
    CPU only)."""
    ad = lm.adapter
    L = lm.n_layers
    if ad.attention_via_interface:
        plan = CapturePlan(ad.layer_of, ~enc.special, L, gate_stats)
        out = forward(lm, enc, plan, hidden_states=True, module=ad.base)
        missing = [l for l in range(L) if l not in plan.probs]
        if missing:  # pragma: no cover - would mean the model bypassed the attention interface
            raise RuntimeError(f"attention of layers {missing} was not captured")
        states = list(ad.layer_states(out))
        q, k, v = [plan.q[l] for l in range(L)], [plan.k[l] for l in range(L)], [plan.v[l] for l in range(L)]
        probs, ctx = [plan.probs[l] for l in range(L)], [plan.context[l] for l in range(L)]
        gate_stats = plan.gate_stats
        probs_all = plan.probs_all if all(plan.probs[l].data_ptr() == plan.probs_all[l].data_ptr()
                                          for l in range(L)) else None
        context_all = None
        if plan.context_all is not None:
            context_all = plan.context_all.flatten(-2)                        # L × B × n × H·d_h
            if not all(_same_view(ctx[l], context_all[l]) for l in range(L)):  # pragma: no cover
                context_all = None
    else:
        probs_all = context_all = None
        out = forward(lm, enc, None, hidden_states=True, attentions=True, module=ad.base)
        states = list(ad.layer_states(out))
        probs = [a.detach() for a in out.attentions]
        gate_stats = None
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
    # the output (MLM logits, or the pooled embedding) waits until it is asked for (BatchTrace.output); where the
    # base module is the whole model (the paper's) its logits came with the forward pass and are kept
    eager = getattr(out, "logits", None) if lm.has_mlm_head else None
    last = getattr(out, "last_hidden_state", None)
    return BatchTrace(model_name=lm.name, encoded=enc, q=q, k=k, v=v, probs=probs, context=ctx,
                      hidden=tuple(states), has_mlm_head=lm.has_mlm_head,
                      adapter=ad, final=final, gate_stats=gate_stats,
                      probs_all=probs_all, context_all=context_all,
                      last_hidden=last if last is not None else out.hidden_states[-1],
                      output_value=eager)


def trace_text(lm: LoadedModel, text: str) -> Trace:
    """The usual entry point: one text → one :class:`Trace`."""
    return capture(lm, [text]).example(0)
