"""Sampled and sparse estimates of attention rows, all computed from the same Q, K, V as the dense pass.

Notation (one head, query i): s_ij = q_i·k_j·scaling (the model's scaling, 1/√d_h), P_ij = softmax_j(s_ij)
over the valid keys 𝒱_i, o_i = Σ_j P_ij v_j. Each scheme returns weights P̂_ij (rows over keys) so that
ô_i = Σ_j P̂_ij v_j. Shapes: inputs S' × B × H × n × · with S' = 1 (the same Q/K/V for every seed) or S'
= S (one forward pass per seed, as when a scheme is substituted into the model); outputs S × B × H × n × n.

* ``A``  Monte-Carlo from the softmax row: k keys i.i.d. from P_i·, P̂_ij = count_j / k. Unbiased,
  E‖ô−o‖² = σ²/k with σ² = Σ_j P_ij‖v_j‖² − ‖o_i‖².
* ``B-uniform`` / ``B-vnorm``  self-normalised importance sampling (MagicPIG, arXiv 2410.16179): k keys from a
  proposal u (uniform over 𝒱_i, or ∝ ‖v_j‖), weights softmax_t(s_iJt − log u_iJt) in log space. Consistent,
  biased O(1/k); effective sample size (Σr)²/Σr².
* ``C``  top-k with renormalisation (Gupta et al., 2021): keep the k largest s_ij (ties: lower index first,
  stable sort), P̂ = P/(1−m) on them. Zero variance; TV = dropped mass m exactly, KL(P̂‖P) = −log(1−m).
* ``D``  positive random features (Performer FAVOR+, Choromanski et al., ICLR 2021), m features
  φ(x) = exp(ω·x − ‖x‖²/2)/√m, ω ~ N(0, I), x = q·√scaling or k·√scaling; P̂_ij ∝ φ(q_i)·φ(k_j).
  Kernel entries unbiased, normalised rows biased.
* ``E``  exact top-h plus a sampled remainder: P̂ = P on the top-h keys, plus (m/k)·count_j for k keys drawn
  from the tail ∝ P (m = tail mass). Unbiased; variance only from the tail; exactly dense when h ≥ n_v.
* ``null``  mean of V: P̂_ij = 1/n_v. The baseline every scheme must beat.

All draws of all S seeds are made at once by inverse-CDF (cumsum + searchsorted(right=True)) in float32, which
never picks a zero-probability key (padded keys have probability zero). On a GPU the cumulative sum runs
keys-major (down columns, one sequential scan per row: :func:`inverse_cdf_keys_major`), which is many times
faster there than the parallel last-axis scan for rows of a few dozen keys; on the CPU the two are the same
sequential loop and give the same bits. A GPU draw can therefore differ from what the former last-axis GPU
scan gave, by one key, only when u·total falls exactly on a CDF step that the two summation orders round
differently (a tie case of float32 rounding). Uniforms come from the counter-based
stream of each (example, layer, replicate) (see ``seeds.py``), drawn on the device for the whole batch at once
and keyed by (head, query, draw), so results do not depend on batch size or padding.

A new scheme is one function plus one decorator line: ``@register("X", flops=...)``.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Callable

import torch

from . import seeds as seeding

NEG = torch.finfo(torch.float32).min


@dataclass
class SchemeInput:
    """One layer's tensors for a scheme. ``valid`` is a bool tensor broadcastable to S'×B×H×n×n (True: key j is
    valid for query i). ``lengths[b]`` = real tokens of example b; ``gens[s][b]`` = the CPU generator of
    replicate s and example b. ``k`` draws / kept keys, ``h`` exact keys (E), ``m`` random features (D)."""
    q: torch.Tensor
    key: torch.Tensor
    v: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor
    valid: torch.Tensor
    lengths: list[int]
    gens: list[list[torch.Generator]]
    k: int
    h: int
    m: int
    scaling: float

    @property
    def n_seeds(self) -> int:
        return len(self.gens)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(S, B, H, n)."""
        _, B, H, n, _ = self.q.shape
        return self.n_seeds, B, H, n


@dataclass
class SchemeOutput:
    """P̂ (S×B×H×n×n, float32); ``touched`` (bool, same shape, or None: keys with P̂>0) marks keys the scheme
    read; ``ess`` (S×B×H×n or None) the effective sample size where the scheme has one."""
    weights: torch.Tensor
    touched: torch.Tensor | None = None
    ess: torch.Tensor | None = None


SchemeFn = Callable[[SchemeInput], SchemeOutput]
FlopsFn = Callable[..., float]

SCHEMES: dict[str, SchemeFn] = {}
FLOPS: dict[str, FlopsFn] = {}
NEEDS_FULL_QK: dict[str, bool] = {}


def register(name: str, flops: FlopsFn, needs_full_qk: bool) -> Callable[[SchemeFn], SchemeFn]:
    """Add a scheme to the registry with its FLOPs per head: ``flops(n_q, n_v, d, k, h, m)``."""
    def deco(fn: SchemeFn) -> SchemeFn:
        SCHEMES[name] = fn
        FLOPS[name] = flops
        NEEDS_FULL_QK[name] = needs_full_qk
        return fn
    return deco


def dense_flops(n_q: int, n_v: int, d: int) -> float:
    """Dense attention per head: QKᵀ (2·n_q·n_v·d) plus PV (2·n_q·n_v·d) = 4·n_q·n_v·d."""
    return 4.0 * n_q * n_v * d


# ---------------------------------------------------------------------------------------------- draws ---

@functools.lru_cache(maxsize=64)
def _lengths_on(lengths: tuple, device: torch.device) -> torch.Tensor:
    """The batch's lengths as a tensor on ``device``, made once per batch and device rather than once per layer
    (a host-to-device copy waits for the device's queued work)."""
    from .transfer import to_device
    return to_device(torch.tensor(lengths, dtype=torch.int64), device)


def uniforms(inp: SchemeInput, count: int) -> torch.Tensor:
    """U(0,1) draws S×B×H×n×count: per (replicate, example), H×n_b×count from its stream (real queries
    only; padded query rows get 0.5). Counter-based streams (``seeds.Streams``) draw on the compute device,
    vectorised; CPU ``torch.Generator`` objects draw per example and are moved there."""
    S, B, H, n = inp.shape
    if seeding.is_streams(inp.gens):
        u = seeding.as_streams(inp.gens, inp.q.device).uniform(H, n, count)
        return torch.where(_real_queries(tuple(inp.lengths), n, u.device), u, 0.5)
    out = torch.full((S, B, H, n, count), 0.5, dtype=torch.float32)
    for s in range(S):
        for b in range(B):
            nb = inp.lengths[b]
            out[s, b, :, :nb] = torch.rand((H, nb, count), generator=inp.gens[s][b], dtype=torch.float32)
    return out.to(inp.q.device)


@functools.lru_cache(maxsize=64)
def _real_queries(lengths: tuple, n: int, device: torch.device) -> torch.Tensor:
    """1×B×1×n×1 flags of the real query rows (made once per batch, width and device)."""
    real = torch.arange(n, device=device)[None, :] < _lengths_on(lengths, device)[:, None]
    return real[None, :, None, :, None]


def keys_major(weights: torch.Tensor, lead: tuple | torch.Size | None = None) -> torch.Tensor:
    """``weights`` (…×n, broadcast to ``lead``×n) as a contiguous float32 n×``lead`` tensor: the key axis first,
    so that the cumulative sum over keys runs down columns (see :func:`inverse_cdf`)."""
    lead = tuple(weights.shape[:-1]) if lead is None else tuple(lead)
    out = torch.empty((weights.shape[-1], *lead), dtype=torch.float32, device=weights.device)
    out.copy_(weights.movedim(-1, 0))
    return out


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Indices drawn ∝ ``weights`` (…×n, non-negative) for uniforms ``u`` (…×k): searchsorted(cumsum, u·total,
    right=True). A zero-weight key is never returned (the clamp goes to the last positive key)."""
    lead = torch.broadcast_shapes(weights.shape[:-1], u.shape[:-1])
    if weights.device.type == "cuda":
        return inverse_cdf_keys_major(keys_major(weights, lead), u)
    return _inverse_cdf_last_axis(weights, u, lead)


def _inverse_cdf_last_axis(weights: torch.Tensor, u: torch.Tensor, lead) -> torch.Tensor:
    """:func:`inverse_cdf` with the cumulative sum over the last axis: the CPU path (where a contiguous row
    scan is fastest and gives the same bits as the keys-major scan: the same sequential loop)."""
    w = weights.to(torch.float32).expand(*lead, weights.shape[-1]).contiguous()
    cdf = torch.cumsum(w, dim=-1)
    idx = torch.searchsorted(cdf, u.expand(*lead, u.shape[-1]) * cdf[..., -1:], right=True)
    pos = torch.arange(w.shape[-1], device=w.device, dtype=torch.int32)
    last = torch.where(w > 0, pos, 0).amax(dim=-1, keepdim=True)
    return torch.minimum(idx, last)


def inverse_cdf_keys_major(wt: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`inverse_cdf` of weights given keys-major (``wt``: n × lead, contiguous float32, as
    :func:`keys_major` makes them) for uniforms ``u`` (broadcastable to lead × k); returns lead × k indices.

    The cumulative sum runs over the first (outer) axis: each row's partial sums are accumulated one key
    after the other, left to right, as by a sum over the last axis (on the CPU the two are the same loop, so
    the bits are the same; on a GPU the outer-axis scan is sequential per row while the last-axis scan is a
    parallel tree, so a GPU draw sitting exactly on a CDF step can move by one key between the two; the
    padded width never matters, trailing zeros adding nothing). The clamp to the last positive key only acts
    when searchsorted returns n (u·total rounded up to the total): searchsorted(right=True) on a non-decreasing
    CDF otherwise returns the first key whose CDF exceeds u·total, which has a positive weight."""
    n = wt.shape[0]
    lead = wt.shape[1:]
    cdf_t = torch.cumsum(wt, dim=0)                                               # n × lead
    cdf = cdf_t.movedim(0, -1).contiguous()                                       # lead × n
    u = u.expand(*lead, u.shape[-1])
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True)
    pos = torch.arange(n, device=wt.device, dtype=torch.int32).reshape(n, *([1] * len(lead)))
    last = torch.where(wt > 0, pos, 0).amax(dim=0)[..., None]                     # lead × 1 (int32: n < 2³¹)
    return torch.minimum(idx, last)


def row_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ_j x_ij (keepdim) as the last entry of a left-to-right cumulative sum: trailing padded zeros do not
    change it, so a row's normalisation is bit-identical whatever the batch's padded width."""
    return torch.cumsum(x, dim=-1)[..., -1:]


def counts_of(idx: torch.Tensor, n: int, values: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_t [idx_t = j]·values_t over the last axis (values default 1) → …×n float32."""
    out = torch.zeros(*idx.shape[:-1], n, dtype=torch.float32, device=idx.device)
    src = torch.ones(idx.shape, dtype=torch.float32, device=idx.device) if values is None else values
    return out.scatter_add_(-1, idx, src)


def top_mask(scores: torch.Tensor, valid: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` largest valid scores per row (ties: the lower key index wins, via a stable sort)."""
    masked = scores.masked_fill(~valid, float("-inf"))
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1], device=order.device)
                                            .expand_as(order).contiguous())
    return (rank < count) & valid


def _full(inp: SchemeInput, t: torch.Tensor) -> torch.Tensor:
    S, B, H, n = inp.shape
    return t.expand(S, B, H, n, t.shape[-1])


def _valid(inp: SchemeInput) -> torch.Tensor:
    S1, B, H, n, _ = inp.q.shape
    return inp.valid.expand(S1, B, H, n, n)


# -------------------------------------------------------------------------------------------- schemes ---

@register("A", flops=lambda n_q, n_v, d, k, h, m: 2.0 * n_q * n_v * d + 2.0 * n_q * k * d, needs_full_qk=True)
def monte_carlo(inp: SchemeInput) -> SchemeOutput:
    """A: k i.i.d. keys from the softmax row; P̂_ij = count_j/k (unbiased)."""
    S, B, H, n = inp.shape
    if inp.probs.device.type == "cuda":          # keys-major P·valid, written so by the product itself
        wt = torch.empty((n, S, B, H, n), dtype=torch.float32, device=inp.probs.device)
        torch.mul(inp.probs.movedim(-1, 0).expand(wt.shape), inp.valid.movedim(-1, 0).expand(wt.shape), out=wt)
        idx = inverse_cdf_keys_major(wt, uniforms(inp, inp.k))
    else:
        idx = inverse_cdf(inp.probs * _valid(inp), uniforms(inp, inp.k))
    c = counts_of(idx, n)
    ess = torch.full(c.shape[:-1], float(inp.k), device=c.device)
    return SchemeOutput(c / inp.k, c > 0, ess)


def _importance(inp: SchemeInput, proposal: torch.Tensor) -> SchemeOutput:
    """Self-normalised importance sampling with proposal u (…×n, zero off 𝒱): log r = s_iJ − log u_iJ."""
    valid = _valid(inp)
    proposal = proposal * valid
    proposal = proposal / row_sum(proposal)
    idx = inverse_cdf(proposal, uniforms(inp, inp.k))
    S, B, H, n = inp.shape
    s = torch.gather(_full(inp, inp.scores.to(torch.float32)), -1, idx)
    log_u = torch.gather(_full(inp, proposal).log(), -1, idx)
    w = torch.softmax(s - log_u, dim=-1)
    ess = 1.0 / (w * w).sum(-1)
    return SchemeOutput(counts_of(idx, n, w), counts_of(idx, n) > 0, ess)


@register("B-uniform", flops=lambda n_q, n_v, d, k, h, m: 4.0 * n_q * k * d, needs_full_qk=False)
def importance_uniform(inp: SchemeInput) -> SchemeOutput:
    """B with a uniform proposal over the valid keys."""
    return _importance(inp, _valid(inp).to(torch.float32))


@register("B-vnorm", flops=lambda n_q, n_v, d, k, h, m: 4.0 * n_q * k * d + 2.0 * n_v * d, needs_full_qk=False)
def importance_vnorm(inp: SchemeInput) -> SchemeOutput:
    """B with a proposal ∝ ‖v_j‖ over the valid keys (the same for every query of a head)."""
    norms = inp.v.to(torch.float32).norm(dim=-1)[..., None, :]  # S'×B×H×1×n
    return _importance(inp, norms.expand(*inp.q.shape[:3], inp.q.shape[3], norms.shape[-1]))


@register("C", flops=lambda n_q, n_v, d, k, h, m: 2.0 * n_q * n_v * d + 2.0 * n_q * min(k, n_v) * d,
          needs_full_qk=True)
def top_k(inp: SchemeInput) -> SchemeOutput:
    """C: the k largest logits kept, renormalised: P̂ = P·keep/(1−m); rows keeping every valid key are P itself."""
    valid = _valid(inp)
    keep = top_mask(inp.scores, valid, inp.k)
    kept = inp.probs * keep
    full = (keep == valid).all(-1, keepdim=True)
    w = torch.where(full, inp.probs * valid, kept / row_sum(kept))
    S = inp.n_seeds
    return SchemeOutput(w.expand(S, *w.shape[1:]), keep.expand(S, *keep.shape[1:]), None)


@register("D", flops=lambda n_q, n_v, d, k, h, m: 4.0 * m * d * (n_q + n_v), needs_full_qk=False)
def random_features(inp: SchemeInput) -> SchemeOutput:
    """D: positive random features; P̂_ij = φ(q_i)·φ(k_j)/Σ_j' φ(q_i)·φ(k_j') over valid keys. Computed with
    per-query and per-head stabilisers that cancel in the normalisation; a row whose kernel sum underflows
    falls back to uniform over its valid keys. Each example is computed on its own real tokens (so the
    matrix products, hence the bits, do not depend on the batch's padded width); padded query rows are
    uniform over the valid keys."""
    S, B, H, n = inp.shape
    d = inp.q.shape[-1]
    valid = _valid(inp)
    w = _full(inp, valid / valid.sum(-1, keepdim=True)).clone()
    root = inp.scaling ** 0.5
    streams = seeding.as_streams(inp.gens, inp.q.device) if seeding.is_streams(inp.gens) else None
    normals = streams.normal(H, inp.m, d) if streams is not None else None           # S×B×H×m×d
    for b in range(B):
        nb = inp.lengths[b]
        if normals is not None:
            omega = normals[:, b:b + 1].contiguous()
        else:
            omega = torch.stack([torch.randn((H, inp.m, d), generator=inp.gens[s][b], dtype=torch.float32)
                                 for s in range(S)])[:, None].to(inp.q.device)        # S×1×H×m×d
        xq = inp.q[:, b:b + 1, :, :nb].to(torch.float32) * root
        xk = inp.key[:, b:b + 1, :, :nb].to(torch.float32) * root
        vb = valid[:, b:b + 1, :, :nb, :nb]
        a = xq @ omega.transpose(-1, -2) - 0.5 * (xq * xq).sum(-1, keepdim=True)      # S×1×H×nb×m
        c = xk @ omega.transpose(-1, -2) - 0.5 * (xk * xk).sum(-1, keepdim=True)
        c = c.masked_fill(~vb.any(-2)[..., None], float("-inf"))
        phi_q = torch.exp(a - a.amax(-1, keepdim=True))
        phi_k = torch.exp(c - c.amax(dim=(-1, -2), keepdim=True))
        kern = (phi_q @ phi_k.transpose(-1, -2)) * vb
        tot = row_sum(kern)
        uniform = vb / vb.sum(-1, keepdim=True)
        w[:, b:b + 1, :, :nb, :nb] = torch.where(tot > 0, kern / tot.clamp_min(torch.finfo(torch.float32).tiny),
                                                 uniform)
    return SchemeOutput(w, _full(inp, valid), None)


@register("E", flops=lambda n_q, n_v, d, k, h, m: 2.0 * n_q * n_v * d + 2.0 * n_q * (min(h, n_v) + k) * d,
          needs_full_qk=True)
def top_h_plus_tail(inp: SchemeInput) -> SchemeOutput:
    """E: P on the top-h keys exactly, plus (m/k)·count_j for k keys drawn from the tail ∝ P (unbiased)."""
    valid = _valid(inp)
    head = top_mask(inp.scores, valid, inp.h)
    tail = inp.probs * (valid & ~head)
    mass = row_sum(tail)
    idx = inverse_cdf(tail, uniforms(inp, inp.k))
    c = counts_of(idx, tail.shape[-1]) * (mass > 0)
    w = inp.probs * head + (mass / inp.k) * c
    touched = head | (c > 0)
    ess = torch.full(c.shape[:-1], float(inp.k), device=c.device)
    return SchemeOutput(w, touched, ess)


@register("null", flops=lambda n_q, n_v, d, k, h, m: 1.0 * n_v * d, needs_full_qk=False)
def mean_of_values(inp: SchemeInput) -> SchemeOutput:
    """Null baseline: P̂_ij = 1/n_v (the mean of V over valid keys)."""
    valid = _valid(inp).to(torch.float32)
    w = valid / valid.sum(-1, keepdim=True)
    return SchemeOutput(_full(inp, w), _full(inp, valid > 0), None)


# ------------------------------------------------------------------------------------------ interface ---

def check_params(scheme: str, k: int, h: int | None = None, m: int | None = None) -> tuple[int, int]:
    """Validate a scheme name and its budget; returns (h, m) with defaults h = k (E), m = k (D)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme '{scheme}': choose one of {', '.join(SCHEMES)}")
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    h = k if h is None else h
    m = k if m is None else m
    if h < 0:
        raise ValueError(f"h must be ≥ 0, not {h}")
    if m <= 0:
        raise ValueError(f"m must be a positive integer, not {m}")
    return int(h), int(m)


def scheme_flops(scheme: str, n_q: int, n_v: int, d: int, k: int, h: int, m: int) -> float:
    """FLOPs of one head of ``scheme`` for n_q queries over n_v valid keys (docs/SAMPLING.md formulas)."""
    return float(FLOPS[scheme](n_q, n_v, d, k, h, m))


def dense_scores(q: torch.Tensor, key: torch.Tensor, valid: torch.Tensor, scaling: float) -> torch.Tensor:
    """s = QKᵀ·scaling in float32, the float32 minimum on invalid keys (as the model's attention does)."""
    s = torch.matmul(q.to(torch.float32), key.to(torch.float32).transpose(-1, -2)) * scaling
    return s.masked_fill(~valid, NEG)


def estimate(scheme: str, q: torch.Tensor, key: torch.Tensor, v: torch.Tensor, scores: torch.Tensor,
             probs: torch.Tensor, valid: torch.Tensor, lengths: list[int], gens: list[list[torch.Generator]],
             k: int, h: int | None = None, m: int | None = None, scaling: float | None = None) -> SchemeOutput:
    """Run ``scheme`` on one layer. Tensors are B×H×n×· (shared by all seeds) or S×B×H×n×· (one per seed);
    ``valid`` is broadcastable to B×H×n×n (or S×B×H×n×n). Returns P̂ as S×B×H×n×n (``len(gens)`` = S)."""
    h, m = check_params(scheme, k, h, m)
    def lift(t):
        return t[None] if t.dim() == 4 else t
    q, key, v, scores, probs = (lift(t) for t in (q, key, v, scores, probs))
    if valid.dim() == 4:
        valid = valid[None]
    if valid.dim() == 2:
        valid = valid[None, :, None, None, :]
    if scaling is None:
        scaling = q.shape[-1] ** -0.5
    inp = SchemeInput(q, key, v, scores.to(torch.float32), probs.to(torch.float32), valid.bool(), list(lengths),
                      gens, int(k), h, m, float(scaling))
    return SCHEMES[scheme](inp)
