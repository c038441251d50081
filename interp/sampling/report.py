"""The full sampled-versus-dense report for every head of one trace: S seeds, budget k, one scheme.

Every scheme reads the trace's own Q, K, V (the model's tensors from the dense forward pass); P is the
model's own attention probabilities. Per (layer, head): summaries over (seed, real query) pairs of every row
metric (``metrics.py``), across-seed variance / squared bias / MSE, the FLOPs ratio against dense, the error
concentration; each also with special tokens excluded. Per query: seed-averaged arrays (L × H × n) for the
heatmaps and rows. Optionally the effect on the model's output (``downstream.py``) with the scheme substituted
in the same layers. Records seed, k, scheme, dtype, device and the library versions.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..loader import LoadedModel
from ..trace import Encoded, Trace
from . import metrics as M
from . import seeds as seeding
from .downstream import DownstreamResult, downstream_effect
from .schemes import dense_flops, dense_scores, estimate, scheme_flops
from .settings import SamplingSettings, as_settings

SUMMARISED = ("tv", "kl", "js", "dropped", "rel_err", "z", "rel_err_o", "ess", "distinct")
PER_QUERY = ("tv", "kl", "js", "dropped", "rel_err", "z", "rel_err_o", "ess", "distinct", "var_rel", "bias2_rel",
             "mse_rel")
NOSPECIAL = "_nospecial"


@dataclass
class SamplingReport:
    """Per-(layer, head) summaries (``heads``: list of dicts with ``layer``, ``head`` and metric keys) and
    per-query arrays (``per_query[name]``: L_r × H × n, seed-averaged, NaN where a query is excluded; L_r =
    the reported layers, in ``layers`` order)."""
    scheme: str
    k: int
    h: int
    m: int
    seeds: int
    seed: int
    example_key: str
    model: str
    tokens: list[str]
    special: list[bool]
    layers: list[int]
    heads: list[dict]
    per_query: dict[str, np.ndarray]
    downstream: DownstreamResult | None
    meta: dict = field(default_factory=dict)

    @property
    def settings(self) -> SamplingSettings:
        """The settings this report was computed with."""
        return SamplingSettings(self.scheme, self.k, self.seeds, self.seed, self.h, self.m)

    def head(self, layer: int, head: int) -> dict:
        for row in self.heads:
            if row["layer"] == layer and row["head"] == head:
                return row
        raise KeyError((layer, head))

    def to_json(self, per_query: bool = True) -> dict:
        """A JSON-ready dict (NaN/inf → null)."""
        def num(x):
            if isinstance(x, (float, np.floating)):
                return None if not math.isfinite(float(x)) else float(x)
            return x
        out = {"scheme": self.scheme, "k": self.k, "h": self.h, "m": self.m, "seeds": self.seeds, "seed": self.seed,
               "example_key": self.example_key, "model": self.model, "tokens": self.tokens, "special": self.special,
               "layers": self.layers, "heads": [{key: num(val) for key, val in row.items()} for row in self.heads],
               "downstream": None, "meta": self.meta}
        if self.downstream is not None:
            out["downstream"] = {key: num(val) for key, val in self.downstream.summary().items()}
            out["downstream_detail"] = self.downstream.to_json()
        if per_query:
            out["per_query"] = {name: [[[num(x) for x in row] for row in lay] for lay in arr.tolist()]
                                for name, arr in self.per_query.items()}
        return out


def _encoded(trace: Trace) -> Encoded:
    n = trace.n
    types = None if trace.token_type_ids is None else trace.token_type_ids[None]
    return Encoded(trace.input_ids[None], torch.ones((1, n), dtype=torch.long), types, [list(trace.tokens)],
                   trace.special[None].bool(), [list(trace.notes)], [trace.truncation])


def _summaries(x: torch.Tensor, qmask: torch.Tensor) -> dict[str, torch.Tensor]:
    """x: S×H×n → per head mean, p95, max over (seed, query in qmask), NaN ignored."""
    S, H, n = x.shape
    flat = x.masked_fill(~qmask[None, None, :], float("nan")).permute(1, 0, 2).reshape(H, S * n).double()
    nan = torch.isnan(flat)
    mean = flat.nanmean(-1)
    p95 = torch.nanquantile(flat, 0.95, dim=-1)
    mx = flat.masked_fill(nan, float("-inf")).amax(-1)
    mx = torch.where(torch.isinf(mx) & (mx < 0), torch.full_like(mx, float("nan")), mx)
    return {"mean": mean, "p95": p95, "max": mx}


def _worst5(sq: torch.Tensor, qmask: torch.Tensor) -> torch.Tensor:
    """sq: H×n per-query squared error (seed mean) → share carried by the worst ⌈5%⌉ of the masked queries."""
    vals = sq[:, qmask].double()
    vals = torch.nan_to_num(vals, nan=0.0)
    nq = vals.shape[-1]
    if nq == 0:
        return torch.full((sq.shape[0],), float("nan"), dtype=torch.float64, device=sq.device)
    top = max(1, math.ceil(0.05 * nq))
    total = vals.sum(-1)
    part = torch.topk(vals, top, dim=-1).values.sum(-1)
    return torch.where(total > 0, part / total.clamp_min(1e-300), torch.zeros_like(total))


def _layer_metrics(P, logP, est, v, w_o, qmask, suffix, defined=None):
    """Row metrics + seed stats for one layer (B = 1 squeezed): per-head summaries and per-query arrays."""
    rm = M.row_metrics(P, logP, est.weights, v, w_o, est.touched, est.ess)
    ss = M.seed_stats(rm.pop("_o"), rm.pop("_o_hat"))
    vals = {name: rm[name][:, 0] for name in SUMMARISED}                  # S×H×n
    if defined is not None:
        d = defined[:, 0]
        vals = {name: x.masked_fill(~d, float("nan")) for name, x in vals.items()}
    heads: dict[str, torch.Tensor] = {}
    for name, x in vals.items():
        for stat, val in _summaries(x, qmask).items():
            heads[f"{name}_{stat}{suffix}"] = val
    z2 = vals["z"] ** 2
    heads[f"z2_mean{suffix}"] = _summaries(z2, qmask)["mean"]
    per_q = {name + suffix: x.nanmean(0) for name, x in vals.items()}    # H×n
    extra = {name: ss[name][0] for name in ("var_rel", "bias2_rel", "mse_rel", "mse")}  # H×n
    if defined is not None:
        ok = defined[:, 0].all(0)
        extra = {name: x.masked_fill(~ok, float("nan")) for name, x in extra.items()}
    for name in ("var_rel", "bias2_rel", "mse_rel"):
        heads[f"{name}_mean{suffix}"] = _summaries(extra[name][None], qmask)["mean"]
        per_q[name + suffix] = extra[name]
    heads[f"worst5_share{suffix}"] = _worst5(extra["mse"], qmask)
    if defined is not None:
        heads[f"undefined_rows{suffix}"] = ((~defined[:, 0]) & qmask).sum(dim=(0, 2)).double()
    per_q = {name: x.masked_fill(~qmask[None], float("nan")) for name, x in per_q.items()}
    return heads, per_q


def _valid(lm: LoadedModel, trace: Trace, layer: int | None = None) -> torch.Tensor:
    """The 1 × 1 × n × n keys each query of ``layer`` may attend to (all, or the model's own gate mask: CBOW's
    j ≠ i, ModernBERT's sliding window in its local layers)."""
    n = trace.n
    dev = trace.layers[0].q.device
    mask = lm.adapter.layer_mask(torch.ones((1, n), dtype=torch.bool, device=dev), layer)
    return torch.ones((1, 1, n, n), dtype=torch.bool, device=dev) if mask is None else mask.bool()


@dataclass
class LayerDraw:
    """One layer's dense attention and its sampled estimate (batch of one): q, v (1 × H × n × d_h), dense P and
    scores (1 × H × n × n), the valid-key mask and the scheme's estimate (weights S × 1 × H × n × n)."""
    q: torch.Tensor
    v: torch.Tensor
    P: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    est: object


def _check_family(lm: LoadedModel) -> None:
    """Sampling reads Q·K as the gate logits; families whose gate adds other terms outside the attention
    interface (MPNet's relative bias, DeBERTa's disentangled terms) are refused with the reason."""
    if not lm.adapter.attention_via_interface:
        raise ValueError(lm.adapter.no_plan_reason)


def draw_layer(lm: LoadedModel, trace: Trace, layer: int, scheme: str | SamplingSettings, k: int | None = None,
               seeds: int | None = None, seed: int = 0, example_key=None, h: int | None = None,
               m: int | None = None, valid: torch.Tensor | None = None) -> LayerDraw:
    """Draw the scheme for one layer exactly as the report does: replicate s uses the generator of
    (seed, example_key, layer, s); example_key defaults to the hash of the token ids. ``scheme`` may be a
    :class:`SamplingSettings` (then k, seeds, seed, h, m come from it)."""
    st = as_settings(scheme, k, seeds, seed, h, m)
    scheme, k, seeds, seed, h, m = st.scheme, st.k, st.seeds, st.seed, st.h, st.m
    _check_family(lm)
    key = seeding.content_key(trace.input_ids) if example_key is None else example_key
    valid = _valid(lm, trace, layer) if valid is None else valid
    lt = trace.layers[layer]
    q, kk, v = (t[None].to(torch.float32) for t in (lt.q, lt.k, lt.v))
    scaling = q.shape[-1] ** -0.5
    P = lt.probs[None].to(torch.float32)
    scores = dense_scores(q, kk, valid, scaling)
    gens = [[seeding.generator(seed, key, layer, s)] for s in range(seeds)]
    est = estimate(scheme, q, kk, v, scores, P, valid, [trace.n], gens, k, h, m, scaling)
    return LayerDraw(q=q, v=v, P=P, scores=scores, valid=valid, est=est)


def sampling_report(lm: LoadedModel, trace: Trace, scheme: str | SamplingSettings, k: int | None = None,
                    seeds: int | None = None, seed: int = 0, example_key=None, layers=None, h: int | None = None,
                    m: int | None = None, downstream: bool = True) -> SamplingReport:
    """Sampled (``scheme``, budget ``k``, S = ``seeds``) versus dense for every head of ``layers`` (None = all)
    of ``trace``; ``scheme`` may be a :class:`SamplingSettings` carrying all of scheme, k, seeds, seed, h, m.
    ``example_key`` (default: a hash of the token ids) and ``seed`` fix the draws: replicate s of layer l uses
    the generator of (seed, example_key, l, s), the same as :func:`downstream_effect`. With ``downstream`` the
    scheme is also substituted into those layers and the model's output compared. Metrics: docs/SAMPLING.md."""
    st = as_settings(scheme, k, seeds, seed, h, m)
    scheme, k, seeds, seed, h, m = st.scheme, st.k, st.seeds, st.seed, st.h, st.m
    L = trace.n_layers
    chosen = list(range(L)) if layers is None else sorted({int(x) for x in layers})
    for l in chosen:
        if not 0 <= l < L:
            raise ValueError(f"layer {l} does not exist: the model has layers 0..{L - 1}")
    key = seeding.content_key(trace.input_ids) if example_key is None else example_key
    _check_family(lm)
    n = trace.n
    dev = trace.layers[0].q.device
    special = trace.special.bool().to(dev)
    qmask = torch.ones(n, dtype=torch.bool, device=dev)
    qmask_ns = qmask & ~special
    t0 = time.perf_counter()
    heads_rows, per_query = [], {}
    for l in chosen:
        valid = _valid(lm, trace, l)
        keep_ns = valid & ~special[None, None, None, :]
        dr = draw_layer(lm, trace, l, scheme, k, seeds, seed, key, h, m, valid)
        q, v, P, scores, est = dr.q, dr.v, dr.P, dr.scores, dr.est
        H, d = q.shape[1], q.shape[-1]
        logP = M.log_probs(scores, valid)
        o_lin = lm.adapter.layers[l].o
        w_o = None if o_lin is None else o_lin.weight.to(torch.float32).reshape(-1, H, d).permute(1, 0, 2)
        heads, pq = _layer_metrics(P, logP, est, v, w_o, qmask, "")
        P2, logP2, H2, defined = M.restrict(P, logP, est.weights, keep_ns)
        est2 = type(est)(H2, None if est.touched is None else est.touched & keep_ns, est.ess)
        heads2, pq2 = _layer_metrics(P2, logP2, est2, v, w_o, qmask_ns, NOSPECIAL, defined)
        heads.update(heads2)
        pq.update(pq2)
        n_v = float(valid.expand(1, 1, n, n).sum(-1).double().mean())
        ratio = scheme_flops(scheme, n, int(round(n_v)), d, k, h, m) / dense_flops(n, int(round(n_v)), d)
        for hd in range(H):
            row = {"layer": l, "head": hd}
            row.update({name: float(val[hd]) for name, val in heads.items()})
            row["flops_ratio"] = ratio
            heads_rows.append(row)
        for name, arr in pq.items():
            per_query.setdefault(name, []).append(arr.cpu().numpy())
    t_metrics = time.perf_counter() - t0
    per_query = {name: np.stack(arrs) for name, arrs in per_query.items()}
    result = None
    t1 = time.perf_counter()
    if downstream:
        result = downstream_effect(lm, _encoded(trace), scheme, k, seeds, seed, [key], chosen, None, h, m)
    t_down = time.perf_counter() - t1
    import transformers
    meta = {"dtype": "float32", "model_dtype": str(lm.dtype).replace("torch.", ""), "device": str(dev),
            "torch": torch.__version__, "transformers": transformers.__version__, "n_tokens": n,
            "seconds_heads": t_metrics, "seconds_downstream": t_down,
            "example_key_kind": "content-hash" if example_key is None else "caller"}
    return SamplingReport(scheme=scheme, k=int(k), h=h, m=m, seeds=int(seeds), seed=int(seed),
                          example_key=seeding.canonical_key(key), model=lm.name, tokens=list(trace.tokens),
                          special=[bool(x) for x in trace.special.tolist()], layers=chosen, heads=heads_rows,
                          per_query=per_query, downstream=result, meta=meta)
