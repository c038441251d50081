"""Per-input triage scores, the corpus norm of expert concentration, and the combined suspicion score.

For a batch of cleaned texts this computes, per input:

* dense **confidence** and **margin** (exact): at the compared positions (the [MASK] positions; with no [MASK],
  every non-special token, or each masked variant of the ``mask-each`` policy) the model's own softmax
  p = softmax(logits); confidence = min over positions of p_(1), margin = min over positions of p_(1) − p_(2)
  (p_(1) ≥ p_(2) the two largest probabilities). Not defined without an MLM head (NaN).
* sampled-vs-dense **instability**, with the sampling library's substitution plan (the scheme substituted
  into the model itself, S seeds, per-input seeds derived from an intrinsic key: the content hash of the token
  ids, as the sampling library and the explorer derive them),
  equal to ``downstream_effect`` on the input alone but sharing the dense pass that the other scores need:
  flip rate, KL(p‖p̂), top-1 agreement; cosine of pooled embeddings without an MLM head; the **worst head**
  by TV (mean over real queries and seeds).
* **expert concentration** per head (exact for the input, heuristic as an anomaly signal): for each query i the
  effective number of experts e_i = exp(H(a_i·)) (``decompose.effective_experts``), normalised as
  c_i = log(e_i)/log(n) ∈ [0, 1] (0: one expert, 1: uniform over the n real tokens, so inputs of different
  lengths compare), averaged over the non-special real queries. Its anomaly is a robust z-score against the
  corpus norm of that head (see :class:`ConcentrationNorm`).
* **agreement** of the dense top-1 at the [MASK] positions with the logged prediction and label.
* **suspicion**: the weighted mean of the terms in :data:`TERMS` that apply (formula: :data:`SUSPICION_FORMULA`).
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..attention import AttentionPlan
from ..decompose import effective_experts
from ..loader import LoadedModel
from ..sampling.downstream import head_at_positions, last_hidden, logits_at, on_device
from ..sampling.seeds import content_key
from ..sampling.transfer import Fetch, to_device
from ..trace import Encoded, encode, forward, model_output
from .schema import Scored, ScoredColumns, empty_columns

MASK_POLICIES = {
    "auto": "the [MASK] positions when the text has any; otherwise the input as it is (every non-special token, "
            "or the pooled embedding for a model without an MLM head)",
    "mask": "the [MASK] positions; a text without [MASK] is skipped",
    "mask-each": "the [MASK] positions when the text has any; otherwise each content token masked in turn "
                 "(at most the cap, evenly spread), one variant per masked token",
    "unmasked": "the input as it is: the MLM output at every non-special token, or the pooled embedding",
}


@dataclass(frozen=True)
class ScoreSettings:
    """How inputs are scored. ``scheme``/``k``/``seeds``/``seed`` go to the sampling library; ``layers`` and
    ``heads`` choose where the scheme is substituted (None = everywhere). ``extras``: the optional scores
    switched on, as (name, options JSON) pairs (see :mod:`interp.triage.registry`; build with
    ``registry.with_score``); empty by default."""
    scheme: str = "A"
    k: int = 8
    seeds: int = 4
    seed: int = 0
    mask_policy: str = "auto"
    mask_cap: int = 8
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    extras: tuple[tuple[str, str], ...] = ()

    def check(self, lm: LoadedModel | None = None) -> None:
        from ..sampling.schemes import SCHEMES, check_params
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}: choose one of {', '.join(SCHEMES)}")
        check_params(self.scheme, self.k)
        if int(self.seeds) < 1:
            raise ValueError(f"seeds must be at least 1, not {self.seeds}")
        if self.mask_policy not in MASK_POLICIES:
            raise ValueError(f"unknown mask policy {self.mask_policy!r}: choose one of {', '.join(MASK_POLICIES)}")
        if int(self.mask_cap) < 1:
            raise ValueError(f"mask cap must be at least 1, not {self.mask_cap}")
        if lm is not None and self.mask_policy in ("mask", "mask-each") and not lm.has_mlm_head:
            raise ValueError(f"mask policy {self.mask_policy!r} needs a model with an MLM head; {lm.name} has "
                             "none: use 'unmasked' (pooled-embedding stability)")
        from . import registry
        registry.check(self, lm)


def example_key(input_ids) -> str:
    """The intrinsic key of an input: the content hash of its real token ids, the same key the sampling library
    (and so the explorer's sampled-vs-dense views) uses by default. Seeds derive from it, so an input's scores
    do not depend on its batch or on where it sits in the file, and the explorer reproduces its draws."""
    return content_key(input_ids)


# ------------------------------------------------------------------------------------ concentration ---

class _ConcentrationPlan(AttentionPlan):
    """Observes each layer's probabilities and keeps, per example and head, the mean over queries of
    log(e_i)/log(n) and of e_i (e_i = exp(H(a_i·))); nothing else is kept, so memory stays small."""

    def __init__(self, layer_of, lengths: torch.Tensor, query_mask: torch.Tensor):
        super().__init__(layer_of)
        self.lengths = lengths
        self.query_mask = query_mask
        self.conc: dict[int, torch.Tensor] = {}
        self.eff: dict[int, torch.Tensor] = {}
        self._per_pass: tuple | None = None

    def observe(self, layer, query, key, value, probs, output):
        e = effective_experts(probs.to(torch.float32))                                  # B×H×n
        if self._per_pass is None or self._per_pass[0] != e.device:
            # the same for every layer: moved and made once per pass, not once per layer (kernel launches)
            self.query_mask = to_device(self.query_mask, e.device)
            self.lengths = to_device(self.lengths, e.device)
            qm_ = self.query_mask.to(torch.float32)[:, None, :]                        # B×1×n
            logn_ = torch.log(self.lengths.to(torch.float32)).clamp(min=1e-12)[:, None]
            self._per_pass = (e.device, qm_, qm_.sum(-1).clamp(min=1), logn_[..., None])
        _, qm, denom, logn = self._per_pass
        c = torch.log(e.clamp(min=1.0)) / logn
        self.conc[layer] = (c * qm).sum(-1) / denom          # stays on the device: one transfer per batch
        self.eff[layer] = (e * qm).sum(-1) / denom


def concentration(lm: LoadedModel, enc: Encoded) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """One dense forward pass of the model itself: (B × L·H normalised concentration c, B × L·H mean effective
    experts, the model output). Queries are the real non-special tokens (all real tokens if none)."""
    fetch = Fetch()
    handle, out = queue_concentration(lm, enc, fetch)
    fetch.run()
    both = fetch.get(handle)
    return both[0], both[1], out


def queue_concentration(lm: LoadedModel, enc: Encoded, fetch: Fetch) -> tuple[int, torch.Tensor]:
    """:func:`concentration` queued on the device: (the ``fetch`` handle of the 2 × B × L·H (c, e) array, the
    model output, still on the device; its last hidden states when ``downstream.head_at_positions``)."""
    real = enc.attention_mask.bool()
    qmask = real & ~enc.special
    empty = ~qmask.any(1)
    qmask[empty] = real[empty]
    plan = _ConcentrationPlan(lm.adapter.layer_of, enc.attention_mask.sum(1), qmask)
    denc = on_device(enc, lm.device)
    hid = head_at_positions(lm)
    out = last_hidden(lm, denc, plan) if hid else forward(lm, denc, plan)
    L = lm.n_layers
    both = torch.stack([torch.stack([plan.conc[l] for l in range(L)], 1).flatten(1),
                        torch.stack([plan.eff[l] for l in range(L)], 1).flatten(1)])
    return fetch.add(both), (out if hid else model_output(lm, out, denc))


class ConcentrationNorm:
    """The corpus norm of each head's concentration, for a robust z-score z_h = (c_h − median_h) /
    (1.4826·MAD_h), with MAD floored at ``mad_floor``.

    Estimated from a bounded, order-independent sample: the ``size`` inputs whose content keys have the smallest
    hashes (a bottom-k sketch; one entry per distinct key). The sample, hence the norm, is the same whatever the
    batch size, the file order or where a run was interrupted. While a run is in progress scores use the
    sample so far; when the run ends every input is re-scored against the final norm (the ``concentration_z``
    and ``suspicion`` in results.parquet are the final ones). Fewer than ``min_count`` inputs: no norm (NaN)."""

    def __init__(self, n_heads_total: int, size: int = 2048, min_count: int = 20, mad_floor: float = 1e-3):
        self.dim = int(n_heads_total)
        self.size = int(size)
        self.min_count = int(min_count)
        self.mad_floor = float(mad_floor)
        self.hashes = np.zeros(0, dtype=np.uint64)
        self.values = np.zeros((0, self.dim), dtype=np.float32)
        self._stats: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def key_hash(keys: list[str]) -> np.ndarray:
        return np.array([int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little")
                         for k in keys], dtype=np.uint64)

    def add(self, keys: list[str], values: np.ndarray) -> None:
        if not len(keys):
            return
        values = np.asarray(values, dtype=np.float32).reshape(len(keys), self.dim)
        h = np.concatenate([self.hashes, self.key_hash(keys)])
        v = np.concatenate([self.values, values])
        uniq, first = np.unique(h, return_index=True)      # sorted by hash; one entry per distinct key
        keep = first[: self.size]
        self.hashes, self.values = h[keep], v[keep]
        self._stats = None

    @property
    def count(self) -> int:
        return len(self.hashes)

    def stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(median, scale) per head, scale = max(1.4826·MAD, floor); None below ``min_count`` inputs."""
        if self.count < self.min_count:
            return None
        if self._stats is None:
            med = np.median(self.values, axis=0)
            mad = np.median(np.abs(self.values - med), axis=0)
            self._stats = (med, np.maximum(1.4826 * mad, self.mad_floor))
        return self._stats

    def z(self, values: np.ndarray) -> np.ndarray:
        """Robust z per head (rows × heads); NaN when there is no norm yet."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, self.dim)
        st = self.stats()
        if st is None:
            return np.full(values.shape, np.nan)
        return (values - st[0]) / st[1]

    def describe(self) -> str:
        return (f"robust z-score per head: (c − median)/(1.4826·MAD), median and MAD over a hash-selected "
                f"sample of up to {self.size} distinct inputs (bottom-k sketch of content hashes, independent of "
                f"order and batching); no norm below {self.min_count} inputs; every input re-scored against the "
                "final norm when the run ends")


def worst_concentration(z: np.ndarray, n_heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the signed z of the head with the largest |z|, its layer and head (−1 when no norm)."""
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape[0], np.nan)
    layer = np.full(z.shape[0], -1, dtype=np.int64)
    head = np.full(z.shape[0], -1, dtype=np.int64)
    ok = ~np.all(np.isnan(z), axis=1) if z.size else np.zeros(z.shape[0], bool)
    if ok.any():
        idx = np.nanargmax(np.abs(z[ok]), axis=1)
        out[ok] = z[ok][np.arange(idx.size), idx]
        layer[ok], head[ok] = idx // n_heads, idx % n_heads
    return out, layer, head


# --------------------------------------------------------------------------------------- suspicion ---

@dataclass(frozen=True)
class Term:
    """One term of the suspicion score: ``fn`` maps a results column to [0, 1] (NaN: does not apply)."""
    weight: float
    column: str
    expr: str
    fn: Callable[[np.ndarray], np.ndarray]
    meaning: str


def _clip01(x):
    return np.clip(x, 0.0, 1.0)


TERMS: dict[str, Term] = {
    "flip": Term(0.30, "flip_rate", "flip_rate", lambda x: _clip01(x),
                 "share of compared positions whose sampled top-1 differs from the dense one in some seed"),
    "kl": Term(0.15, "kl", "(1 − e^(−kl))", lambda x: _clip01(1.0 - np.exp(-np.maximum(x, 0.0))),
               "mean KL(dense ‖ sampled) over the vocabulary, in nats"),
    "drift": Term(0.45, "cosine", "(1 − e^(−(1 − cosine)/0.01))",
                  lambda x: _clip01(1.0 - np.exp(-np.maximum(1.0 - x, 0.0) / 0.01)),
                  "pooled-embedding drift under sampling (models without an MLM head)"),
    "confidence": Term(0.15, "confidence", "(1 − confidence)", lambda x: _clip01(1.0 - x),
                       "lowest dense top-1 probability over the compared positions"),
    "margin": Term(0.10, "margin", "(1 − margin)", lambda x: _clip01(1.0 - x),
                   "smallest dense top-1 minus top-2 probability"),
    "concentration": Term(0.15, "concentration_z", "clip((|concentration_z| − 3)/3, 0, 1)",
                          lambda x: _clip01((np.abs(x) - 3.0) / 3.0),
                          "the most anomalous head's robust z of expert concentration"),
    "disagreement": Term(0.15, "agreement", "(1 − agreement)", lambda x: _clip01(1.0 - x),
                         "mean agreement of the dense top-1 with the logged prediction and label"),
}

SUSPICION_FORMULA = (
    "suspicion = ( " + " + ".join(f"{t.weight:.2f}·{t.expr}" for t in TERMS.values()) + " ) / (sum of the "
    "weights of the terms that apply) — a term is left out when it does not apply to the input: flip_rate, kl, "
    "confidence, margin need an MLM head; cosine only without one; agreement needs a logged prediction or label "
    "and [MASK]; concentration_z needs a corpus norm (≥ 20 inputs). 0 = nothing suspicious, 1 = every term at "
    "its worst.")


def agreement_column(agrees_prediction: np.ndarray, agrees_label: np.ndarray) -> np.ndarray:
    """Mean of the available agreements (NaN where neither is available)."""
    a = np.stack([np.asarray(agrees_prediction, float), np.asarray(agrees_label, float)])
    n = (~np.isnan(a)).sum(0)
    s = np.nansum(a, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def suspicion(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Weighted mean of the applicable terms (see :data:`SUSPICION_FORMULA`); NaN if none applies."""
    num = den = None
    for t in TERMS.values():
        x = t.fn(np.asarray(columns[t.column], dtype=np.float64))
        ok = ~np.isnan(x)
        num = np.where(ok, x * t.weight, 0.0) if num is None else num + np.where(ok, x * t.weight, 0.0)
        den = np.where(ok, t.weight, 0.0) if den is None else den + np.where(ok, t.weight, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# --------------------------------------------------------------------------------------- agreement ---

def normalise_token(s) -> str:
    """A predicted word as compared with a logged one: stripped, case-folded, subword markers removed."""
    if type(s) is str:
        return _normalise_str(s)
    return _normalise(s)


def _normalise(s) -> str:
    s = str(s).strip()
    for mark in ("##", "Ġ", "▁"):
        if s.startswith(mark):
            s = s[len(mark):]
    return s.casefold()


@functools.lru_cache(maxsize=1 << 14)
def _normalise_str(s: str) -> str:
    """:func:`_normalise` of a string, remembered (predicted and logged words repeat; bounded memory)."""
    return _normalise(s)


def _as_list(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [normalise_token(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value) is str:
        got = _str_list(value)
        return None if got is None else list(got)
    return _words(str(value))


@functools.lru_cache(maxsize=1 << 14)
def _str_list(value: str) -> tuple | None:
    """:func:`_words` of a logged string, remembered (logged predictions and labels repeat; bounded memory)."""
    got = _words(value)
    return None if got is None else tuple(got)


def _words(s: str) -> list[str] | None:
    s = s.strip()
    if s.startswith("[") and s.endswith("]"):
        try:
            import json
            parsed = json.loads(s)
            if isinstance(parsed, list):
                return [normalise_token(v) for v in parsed]
        except ValueError:
            pass
    return [normalise_token(x) for x in s.split()] if s else None


def agreement(predicted: list[str], logged) -> float:
    """Share of [MASK] positions whose dense top-1 equals the logged word (a string with one word per [MASK],
    separated by spaces, or a JSON list); NaN when nothing is logged or the counts differ."""
    want = _as_list(logged)
    if not want or not predicted:
        return float("nan")
    got = [normalise_token(p) for p in predicted]
    if len(want) != len(got):
        if len(got) == 1:
            want = [" ".join(want)]
        else:
            return float("nan")
    # the mean of the matches as NumPy takes it (an exact count over a count, one correctly rounded division)
    return sum(a == b for a, b in zip(got, want)) / len(got)


def logged_correct(prediction, label) -> float:
    """1 when the logged prediction equals the label (normalised), 0 when not, NaN when either is missing."""
    a, b = _as_list(prediction), _as_list(label)
    if not a or not b:
        return float("nan")
    return float(a == b)


# ------------------------------------------------------------------------------------------ scoring ---

def _stack(rows: list[tuple[list[int], list[int], list[str], bool]], pad: int, has_types: bool) -> Encoded:
    """An Encoded batch from (ids, types, tokens, truncated) rows with right padding (special: from ids)."""
    n = max(len(r[0]) for r in rows)
    B = len(rows)
    ids_np = np.full((B, n), pad, dtype=np.int64)
    types_np = np.zeros((B, n), dtype=np.int64)
    lens = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=B)
    for b, (i, t, _, _) in enumerate(rows):
        ids_np[b, :len(i)] = i
        types_np[b, :len(t)] = t
    ids = torch.from_numpy(ids_np)
    mask = torch.from_numpy((np.arange(n)[None, :] < lens[:, None]).astype(np.int64))
    types = torch.from_numpy(types_np)
    return Encoded(ids, mask, types if has_types else None, [r[2] for r in rows], torch.zeros_like(ids, dtype=torch.bool),
                   [[] for _ in rows], [None for _ in rows])


def _mask_variants(lm: LoadedModel, enc: Encoded, b: int, cap: int) -> list[tuple[int, list[int], list[str]]]:
    """Each content (non-special) token of example b replaced by the mask token in turn, at most ``cap``
    positions spread evenly: (position, ids, tokens)."""
    n = int(enc.attention_mask[b].sum())
    ids = enc.input_ids[b, :n].tolist()
    plain = [i for i in range(n) if not bool(enc.special[b, i])]
    if len(plain) > cap:
        pick = sorted({int(round(x)) for x in np.linspace(0, len(plain) - 1, cap)})
        plain = [plain[i] for i in pick]
    tok = lm.tokenizer
    out = []
    for pos in plain:
        v = list(ids)
        v[pos] = tok.mask_token_id
        t = list(enc.tokens[b])
        t[pos] = tok.mask_token
        out.append((pos, v, t))
    return out


def _top2(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p_(1), p_(2), argmax) of softmax over the last axis, in float32."""
    p = torch.softmax(logits.to(torch.float32), -1)
    top = torch.topk(p, 2, dim=-1)
    return top.values[..., 0], top.values[..., 1], top.indices[..., 0]


def sampled_effect(lm: LoadedModel, enc: Encoded, dense: torch.Tensor, settings: ScoreSettings, keys: list,
                   max_rows: int | None = None, cells: int | None = None, positions: list | None = None):
    """The effect of substituting ``settings.scheme`` into the model, given the dense output of the same batch
    (``dense``: B × n × V logits, or B × d pooled) so that the dense pass is not run twice: the sampling
    library's own sampled passes (:func:`interp.sampling.downstream.sampled_passes`, the code path of
    ``downstream_effect``). Returns its per-example :class:`~interp.sampling.downstream.PassEffect`."""
    fetch = Fetch()
    finish = queue_sampled_effect(lm, enc, dense, settings, keys, fetch, max_rows, cells, positions)
    fetch.run()
    return finish()


def queue_sampled_effect(lm: LoadedModel, enc: Encoded, dense: torch.Tensor, settings: ScoreSettings, keys: list,
                         fetch: Fetch, max_rows: int | None = None, cells: int | None = None,
                         positions: list | None = None):
    """:func:`sampled_effect` queued on the device (``downstream.queue_sampled_passes``): returns ``finish()``,
    the :class:`PassEffect` once ``fetch`` has run."""
    from ..sampling.downstream import queue_sampled_passes, resolve_targets
    from ..sampling.schemes import check_params
    h, m = check_params(settings.scheme, settings.k)
    B = enc.input_ids.shape[0]
    targets = resolve_targets(lm.n_layers, lm.n_heads, settings.layers, settings.heads)
    max_rows = int(max_rows or max(64, B * int(settings.seeds)))
    return queue_sampled_passes(lm, enc, settings.scheme, settings.k, h, m, int(settings.seeds), settings.seed,
                                keys, targets, fetch, dense, max_rows, cells, positions)


def score_batch(lm: LoadedModel, texts: list[str], settings: ScoreSettings, keys: list[str] | None = None,
                predictions: list | None = None, labels: list | None = None, max_rows: int | None = None,
                enc: Encoded | None = None, cells: int | None = None, defer: bool = False, columns: bool = False):
    """Score cleaned, non-empty texts (see the module docstring). The result of each input does not depend on
    the other inputs of the batch (seeds derive from ``keys``, default :func:`example_key` of the token ids).

    Named steps: :func:`encode` → :func:`concentration` (the one dense pass of the inputs: attention observed
    for the concentration, output kept as the dense reference) → :func:`compared_units` (what is compared under
    sampling, and the dense confidences) → :func:`variant_pass` (one dense pass of the masked variants,
    mask-each only) → :func:`sampled_units` (the S sampled passes) → :func:`assemble` (one :class:`Scored`
    per input). The device work of all the steps is queued first and every number the host needs leaves the
    device in one transfer (:class:`~interp.sampling.transfer.Fetch`). ``enc``: the batch already encoded
    (``trace.encode`` of ``texts``). The optional scores of the registry are computed by the caller
    (``runner.score_step``). ``defer``: return ``finish()`` instead (see :func:`queue_batch`): the device work
    is queued, the rows are built when it is called. ``columns``: the batch's scores as one
    :class:`~interp.triage.schema.ScoredColumns` (:func:`assemble_columns`, the same values) instead of a list."""
    finish = queue_batch(lm, texts, settings, keys, predictions, labels, max_rows, enc, cells, columns)
    return finish if defer else finish()


def queue_batch(lm: LoadedModel, texts: list[str], settings: ScoreSettings, keys: list[str] | None = None,
                predictions: list | None = None, labels: list | None = None, max_rows: int | None = None,
                enc: Encoded | None = None, cells: int | None = None,
                columns: bool = False) -> Callable[[], list[Scored] | ScoredColumns]:
    """:func:`score_batch` in two halves: this queues the batch's device work and the one transfer of its
    results (started, not awaited) and returns ``finish()``, which waits for the transfer and builds the
    :class:`Scored` rows on the host. Between the two the host is free (to queue the next batch, say)."""
    B = len(texts)
    enc = enc if enc is not None else encode(lm, texts)
    if keys is None:
        ids_all, lengths = enc.input_ids.tolist(), enc.attention_mask.sum(1).tolist()
        keys = [example_key(ids_all[b][:int(lengths[b])]) for b in range(B)]
    keys = list(keys)
    fetch = Fetch()
    conc_h, out = queue_concentration(lm, enc, fetch)
    out = out.to(torch.float32)
    units = compared_units(lm, enc, out, settings, keys, fetch)
    vout = variant_pass(lm, enc, units, fetch)
    finish_res = sampled_units(lm, enc, out, vout, units, settings, max_rows, cells, fetch)
    del out, vout
    fetch.start()
    predictions = predictions or [None] * B
    labels = labels or [None] * B

    def finish() -> list[Scored]:
        fetch.wait()
        units.resolve(fetch, per_input=False)
        both = fetch.get(conc_h)
        build = assemble_columns if columns else assemble
        return build(lm, enc, units, finish_res(), both[0], both[1], keys, predictions, labels)
    return finish


@dataclass
class Units:
    """What is compared under sampling: each input itself, or its masked variants (mask-each). Per unit: its
    (ids, types, tokens, truncated) row, its seed key, where its dense output is (("orig", b) or ("var", j)),
    the input that owns it and the masked position (−1 for the input itself). Per input: its mode and its
    dense (p1, p2, top-1 id, position) per compared position. ``variants``: (b, pos, ids, types, tokens) of
    the masked variants that need a dense pass of their own."""
    rows: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    dense_at: list = field(default_factory=list)
    owner: list = field(default_factory=list)
    pos: list = field(default_factory=list)
    modes: list = field(default_factory=list)
    dense_conf: list = field(default_factory=list)
    variants: list = field(default_factory=list)
    positions: list = field(default_factory=list)   # per unit, its compared positions (MLM models)
    pending: list = field(default_factory=list)     # (fetch handle of 3 × P (p1, p2, top), (b, pos) arrays)
    conf: tuple | None = None                       # (b, p1, p2, top-1 id, position) flat, by input (resolve)

    def resolve(self, fetch: Fetch, per_input: bool = True) -> None:
        """Read the dense confidences from the transfer: :attr:`conf`, flat arrays ordered by input (each
        input's positions in the order they were queued), and with ``per_input`` also ``dense_conf`` (a
        list of (p1, p2, top-1 id, position) per input)."""
        got = [(np.asarray(wb, dtype=np.int64), np.asarray(wp, dtype=np.int64), fetch.get(h))
               for h, (wb, wp) in self.pending]
        self.pending = []
        if not got:
            return
        b = np.concatenate([g[0] for g in got])
        pos = np.concatenate([g[1] for g in got])
        vals = np.concatenate([g[2] for g in got], axis=1)
        if self.conf is not None:
            ob, o1, o2, ot, op = self.conf
            b, pos = np.concatenate([ob, b]), np.concatenate([op, pos])
            vals = np.concatenate([np.stack([o1, o2, ot.astype(np.float64)]), vals], axis=1)
        order = np.argsort(b, kind="stable")
        self.conf = (b[order], vals[0][order], vals[1][order], vals[2][order].astype(np.int64), pos[order])
        if per_input:
            for i in range(len(self.dense_conf)):
                self.dense_conf[i] = []
            for bb, a, c, t, ps in zip(*(x.tolist() for x in self.conf)):
                self.dense_conf[bb].append((a, c, int(t), ps))


def _queue_top2(units: Units, fetch: Fetch | None, logits: torch.Tensor, where: tuple) -> None:
    """Queue the dense top-2 of ``logits`` (one row per compared position; ``where``: (inputs, positions))."""
    p1, p2, top = _top2(logits)
    handle_fetch = fetch if fetch is not None else Fetch()
    handle = handle_fetch.add(torch.stack([p1.to(torch.float64), p2.to(torch.float64), top.to(torch.float64)]))
    units.pending.append((handle, where))
    if fetch is None:
        handle_fetch.run()
        units.resolve(handle_fetch)


def compared_units(lm: LoadedModel, enc: Encoded, out: torch.Tensor, settings: ScoreSettings,
                   keys: list, fetch: Fetch | None = None) -> Units:
    """Step: the units compared under sampling, and the dense confidences at the inputs' compared positions
    (queued with ``fetch`` when given, and read by ``units.resolve(fetch)`` after it runs; else read now)."""
    from ..sampling.downstream import positions_in
    B = enc.input_ids.shape[0]
    mlm = lm.has_mlm_head
    mask_id = getattr(lm.tokenizer, "mask_token_id", None)
    u = Units(dense_conf=[[] for _ in range(B)])
    if not (mlm and settings.mask_policy == "mask-each"):
        return _units_as_inputs(lm, enc, out, keys, fetch, u, mask_id)
    lengths = enc.attention_mask.sum(1).tolist()          # the batch leaves the tensors once, not per input
    ids_all = enc.input_ids.tolist()
    types_all = enc.token_type_ids.tolist() if enc.token_type_ids is not None else None
    special_all = enc.special.tolist()
    at_b, at_pos = [], []                                   # every compared (input, position) of the batch
    for b in range(B):
        n = int(lengths[b])
        ids = ids_all[b][:n]
        types = types_all[b][:n] if types_all is not None else [0] * n
        has_mask = mask_id is not None and mask_id in ids
        if mlm and settings.mask_policy == "mask-each" and not has_mask:
            for pos, v, t in _mask_variants(lm, enc, b, settings.mask_cap):
                u.positions.append([pos])              # the variant's one [MASK] (the input has none)
                u.dense_at.append(("var", len(u.variants)))
                u.variants.append((b, pos, v, types, t))
                u.rows.append((v, types, t, False))
                u.keys.append((keys[b], pos))
                u.owner.append(b)
                u.pos.append(pos)
            u.modes.append("mask-each")
            continue
        u.rows.append((ids, types, enc.tokens[b], False))
        u.keys.append(keys[b])
        u.dense_at.append(("orig", b))
        u.owner.append(b)
        u.pos.append(-1)
        if not mlm:
            u.modes.append("pooled")
            continue
        where, kind = positions_in(ids, special_all[b][:n], mask_id)
        u.positions.append(where)
        u.modes.append(kind)
        at_b.extend([b] * len(where))
        at_pos.extend(where)
    if at_b:      # the dense top-2 of all compared positions at once: one transfer for the batch
        dev = out.device
        _queue_top2(u, fetch, logits_at(lm, out[to_device(torch.tensor(at_b), dev),
                                               to_device(torch.tensor(at_pos), dev)], head_at_positions(lm)),
                    (at_b, at_pos))
    return u


def _units_as_inputs(lm: LoadedModel, enc: Encoded, out: torch.Tensor, keys: list, fetch: Fetch | None,
                     u: Units, mask_id) -> Units:
    """:func:`compared_units` when every unit is its input (every policy but mask-each), for the whole batch
    at once: the compared positions of ``downstream.positions_in`` (the [MASK] positions; else the non-special
    real ones; else every real one) found with array operations. ``rows`` are left empty: the batch itself is
    the units' encoding."""
    B = enc.input_ids.shape[0]
    u.keys = list(keys)
    u.dense_at = [("orig", b) for b in range(B)]
    u.owner = list(range(B))
    u.pos = [-1] * B
    if not lm.has_mlm_head:
        u.modes = ["pooled"] * B
        return u
    ids = enc.input_ids.cpu().numpy()
    real = enc.attention_mask.cpu().numpy().astype(bool)
    is_mask = (ids == mask_id) & real if mask_id is not None else np.zeros_like(real)
    plain = real & ~enc.special.cpu().numpy().astype(bool)
    has = is_mask.any(1)
    sel = np.where(has[:, None], is_mask, np.where(plain.any(1)[:, None], plain, real))
    at_b, at_pos = np.nonzero(sel)                              # by input, positions ascending
    counts = sel.sum(1)
    u.positions = [p.tolist() for p in np.split(at_pos, np.cumsum(counts)[:-1])] if B else []
    u.modes = ["mask" if h else "non-special" for h in has.tolist()]
    if at_b.size:
        dev = out.device
        _queue_top2(u, fetch, logits_at(lm, out[to_device(torch.from_numpy(at_b.astype(np.int64)), dev),
                                               to_device(torch.from_numpy(at_pos.astype(np.int64)), dev)],
                                        head_at_positions(lm)), (at_b, at_pos))
    return u


def _pad_id(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else 0


def variant_pass(lm: LoadedModel, enc: Encoded, units: Units, fetch: Fetch | None = None) -> torch.Tensor | None:
    """Step: one dense pass of the masked variants (None when there are none); adds their confidences
    (queued with ``fetch`` when given, as in :func:`compared_units`)."""
    if not units.variants:
        return None
    tok = lm.tokenizer
    venc = _stack([(v, ty, t, False) for (_, _, v, ty, t) in units.variants], _pad_id(tok),
                  enc.token_type_ids is not None)
    venc.special = _special(tok, venc)
    denc = on_device(venc, lm.device)
    hid = head_at_positions(lm)
    vout = last_hidden(lm, denc) if hid else model_output(lm, forward(lm, denc), denc).to(torch.float32)
    pos = [v[1] for v in units.variants]
    dev = vout.device
    _queue_top2(units, fetch, logits_at(lm, vout[torch.arange(len(pos), device=dev),
                                                 to_device(torch.tensor(pos), dev)], hid),
                ([v[0] for v in units.variants], pos))
    return vout


def sampled_units(lm: LoadedModel, enc: Encoded, out: torch.Tensor, vout: torch.Tensor | None, units: Units,
                  settings: ScoreSettings, max_rows: int | None, cells: int | None, fetch: Fetch | None = None):
    """Step: the S sampled passes of the units against their dense outputs (:func:`sampled_effect`). With
    ``fetch``: queued, returns ``finish()`` (see :func:`queue_sampled_effect`); without: the effect."""
    tok = lm.tokenizer
    B = out.shape[0]
    as_is = units.dense_at == [("orig", b) for b in range(B)]
    if as_is:                      # every unit is its input, in order: the batch itself (same ids, mask, flags)
        uenc = enc
    else:
        uenc = _stack(units.rows, _pad_id(tok), enc.token_type_ids is not None)
        uenc.special = _special(tok, uenc)
    n_u = uenc.input_ids.shape[1]
    mlm = lm.has_mlm_head

    def dense_row(kind: str, i: int) -> torch.Tensor:
        row = (out if kind == "orig" else vout)[i]
        if not mlm:
            return row
        if row.shape[0] >= n_u:
            return row[:n_u]
        return torch.cat([row, row.new_zeros((n_u - row.shape[0], row.shape[1]))])
    if as_is and (not mlm or out.shape[1] == n_u):
        dense_u = out                     # every unit is its input, in order: the dense output as it is
    else:
        dense_u = torch.stack([dense_row(k_, i) for k_, i in units.dense_at])
    # the compared positions found above (the sampled passes would otherwise find them again, input by input)
    positions = units.positions if mlm and len(units.positions) == len(units.keys) else None
    if fetch is None:
        return sampled_effect(lm, uenc, dense_u, settings, units.keys, max_rows, cells, positions)
    return queue_sampled_effect(lm, uenc, dense_u, settings, units.keys, fetch, max_rows, cells, positions)


def assemble(lm: LoadedModel, enc: Encoded, units: Units, res, conc: np.ndarray, eff: np.ndarray, keys: list,
             predictions: list, labels: list) -> list[Scored]:
    """Step: one :class:`Scored` per input from its units' sampled effects and its dense confidences: the rows
    of :func:`assemble_columns` (the one implementation; the per-input rule is pinned by a test)."""
    return assemble_columns(lm, enc, units, res, conc, eff, keys, predictions, labels).rows()


def _special(tok, enc: Encoded) -> torch.Tensor:
    """Special-token flags exactly as ``trace.encode`` sets them."""
    special_ids = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    return torch.isin(enc.input_ids, special_ids) & enc.attention_mask.bool()


def tokens_of(lm: LoadedModel, ids: list[int]) -> list[str]:
    """``tokenizer.convert_ids_to_tokens(ids)``, each id converted once per model and remembered (the
    tokenizer's own conversion, so the same strings; a vocabulary is small)."""
    memo = getattr(lm, "_triage_tokens", None)
    if memo is None:
        memo = {}
        try:
            lm._triage_tokens = memo
        except AttributeError:  # pragma: no cover
            pass
    missing = [i for i in dict.fromkeys(ids) if i not in memo]
    if missing:
        memo.update(zip(missing, lm.tokenizer.convert_ids_to_tokens(missing)))
    return [memo[i] for i in ids]


def assemble_columns(lm: LoadedModel, enc: Encoded, units: Units, res, conc: np.ndarray, eff: np.ndarray,
                     keys: list, predictions: list, labels: list) -> ScoredColumns:
    """:func:`assemble` column by column: a :class:`~interp.triage.schema.ScoredColumns` of the batch, with
    the values of the per-input rule (pinned by a test), built with one NumPy call per score where the rule
    allows; only the few inputs compared as several units (mask-each) and the word-level fields (top-1 words,
    agreement with the logged words) are handled input by input."""
    B = enc.input_ids.shape[0]
    H = lm.n_heads
    mlm = lm.has_mlm_head
    tok = lm.tokenizer
    owner = np.asarray(units.owner, dtype=np.int64)
    counts = np.bincount(owner, minlength=B) if B else np.zeros(0, np.int64)
    if (counts == 0).any():                  # an input without a unit: as the per-input rule fails on it
        raise KeyError(int(np.flatnonzero(counts == 0)[0]))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if B else np.zeros(0, np.int64)
    # units are appended input by input, so input b's units are starts[b] .. starts[b] + counts[b] − 1
    first = starts.astype(np.int64)
    multi = np.flatnonzero(counts > 1).tolist()
    tv = res.head_tv[first].copy()                                   # B × L × H
    for b in multi:
        tv[b] = np.nanmean(res.head_tv[first[b]:first[b] + counts[b]], axis=0)
    flat_tv = tv.reshape(B, -1)
    none = np.isnan(flat_tv).all(1)
    worst = np.nanargmax(np.where(none[:, None], 0.0, flat_tv), axis=1) if B else np.zeros(0, np.int64)
    worst_tv = flat_tv[np.arange(B), worst]
    c = empty_columns(B)
    for name, src in (("flip_rate", "flip_rate"), ("kl", "kl_mean"), ("kl_max", "kl_max"),
                      ("top1_agreement", "top1_agreement"), ("cosine", "cosine_mean"), ("cosine_min", "cosine_min")):
        c[name] = np.asarray(getattr(res, src)[first], dtype=np.float64).copy()
    for b in multi:
        us = slice(first[b], first[b] + counts[b])
        for name, src, fn in (("flip_rate", "flip_rate", np.nanmean), ("kl", "kl_mean", np.nanmean),
                              ("kl_max", "kl_max", np.nanmax), ("top1_agreement", "top1_agreement", np.nanmean),
                              ("cosine", "cosine_mean", np.nanmean), ("cosine_min", "cosine_min", np.nanmin)):
            vals = getattr(res, src)[us]
            c[name][b] = float(fn(vals)) if not np.all(np.isnan(vals)) else float("nan")
    c["worst_layer"] = np.where(none, -1, worst // H).astype(np.int64)
    c["worst_head"] = np.where(none, -1, worst % H).astype(np.int64)
    c["worst_tv"] = np.where(none, np.nan, worst_tv).astype(np.float64)
    c["eff_experts"] = np.mean(eff, axis=1).astype(np.float64) if B else np.zeros(0)
    c["key"][:] = keys
    c["n_tokens"] = np.asarray(enc.attention_mask.sum(1).tolist(), dtype=np.int64)
    c["truncated"] = np.fromiter((t is not None for t in enc.truncation), dtype=bool, count=B)
    c["mode"][:] = units.modes
    # the dense confidences: flat (input, p1, p2, top-1 id, position), by input (Units.resolve)
    if units.conf is not None:
        cb, cp1, cp2, ctop, cpos = units.conf
    else:
        cb = ctop = cpos = np.zeros(0, np.int64)
        cp1 = cp2 = np.zeros(0)
    n_conf = np.bincount(cb, minlength=B) if B else np.zeros(0, np.int64)
    c["n_targets"] = n_conf.astype(np.int64) if mlm else np.zeros(B, np.int64)
    c["confidence"] = np.full(B, np.nan)
    c["margin"] = np.full(B, np.nan)
    c["query"] = np.full(B, -1, dtype=np.int64)
    all_tokens = []
    has = n_conf > 0
    at0 = np.concatenate([[0], np.cumsum(n_conf)[:-1]]).astype(np.int64) if B else np.zeros(0, np.int64)
    if cb.size:
        c["confidence"][has] = np.minimum.reduceat(cp1, at0[has])
        c["margin"][has] = np.minimum.reduceat(cp1 - cp2, at0[has])
        all_tokens = tokens_of(lm, ctop.tolist())
    modes = units.modes
    is_mask = np.fromiter((m == "mask" for m in modes), dtype=bool, count=B) & has
    if is_mask.any():
        c["query"][is_mask] = cpos[at0[is_mask]]
    for b in range(B):
        if modes[b] == "mask-each":
            us = slice(first[b], first[b] + counts[b])
            kl_u = res.kl_mean[us]
            ps = units.pos[us]
            c["query"][b] = ps[int(np.nanargmax(kl_u))] if not np.all(np.isnan(kl_u)) else ps[0]
    top1 = c["dense_top1"]
    a_pred = c["agrees_prediction"]
    a_lab = c["agrees_label"]
    a_pred[:] = np.nan
    a_lab[:] = np.nan
    at = 0
    for b in range(B):
        k = int(n_conf[b])
        predicted = all_tokens[at:at + k]
        at += k
        top1[b] = " ".join(predicted[:8])
        if modes[b] == "mask":
            a_pred[b] = agreement(predicted, predictions[b])
            a_lab[b] = agreement(predicted, labels[b])
    return ScoredColumns(c, conc.astype(np.float32), [list(n) for n in enc.notes],
                         {"agreement": agreement_column(a_pred, a_lab)})
