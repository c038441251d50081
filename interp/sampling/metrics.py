"""How a sampled row P̂ differs from the dense row P, per head and query, and how the error is spread.

All exact computations on the two rows (float32, reductions where noted in float64):

* TV = ½ Σ_j |P_ij − P̂_ij|; KL(P̂‖P) = Σ_j P̂_ij (log P̂_ij − log P_ij) with log P from the logits (finite:
  every scheme puts weight on valid keys only); never KL(P‖P̂), infinite for a sparse estimate;
  JS = ½ KL(P‖M) + ½ KL(P̂‖M), M = (P + P̂)/2; dropped mass = Σ_j P_ij [P̂_ij = 0].
* output error ‖ô_i − o_i‖, relative ‖ô−o‖/‖o‖, calibrated z = ‖ô−o‖/σ_i with σ_i² = Σ_j P_ij‖v_j‖² − ‖o_i‖²
  (for scheme A, E[z²] = 1/k); after the output projection ‖W_O^h(ô−o)‖ / ‖W_O^h o‖ (W_O^h: the columns of
  head h of the attention output dense; identity where the model has none).
* effective sample size (schemes that sample), distinct keys touched.
* across S seeds (output space, relative to ‖o‖²): variance, squared bias, MSE = variance + squared bias.
* concentration over queries: mean, p95, max, and the share of squared error carried by the worst 5% of
  queries (⌈0.05·n_q⌉ of them).
* the "special tokens excluded" variant renormalises P and P̂ over non-special valid keys and skips special
  queries; a row where P̂ has no mass left on non-special keys is undefined (NaN, counted).
Padded queries are excluded everywhere (``qmask``).
"""
from __future__ import annotations

import math

import torch

ROW_METRICS = ("tv", "kl", "js", "dropped", "err", "rel_err", "z", "err_o", "rel_err_o", "ess", "distinct")


def log_probs(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log P from the logits over valid keys (−inf elsewhere)."""
    return torch.log_softmax(scores.to(torch.float32).masked_fill(~valid, float("-inf")), dim=-1)


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x·log y with 0·log 0 = 0."""
    return torch.special.xlogy(x, y)


def row_metrics(P: torch.Tensor, logP: torch.Tensor, Phat: torch.Tensor, v: torch.Tensor,
                w_o: torch.Tensor | None = None, touched: torch.Tensor | None = None,
                ess: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per (seed, …, head, query) metrics. P, logP: …×H×n×n (broadcast over seeds); P̂: S×…×H×n×n;
    v: …×H×n×d_h; w_o: H×d_model×d_h or None (identity). Returns S×…×H×n tensors (see module docstring)."""
    P = P.to(torch.float32)
    Phat = Phat.to(torch.float32)
    v = v.to(torch.float32)
    tv = 0.5 * (Phat - P).abs().sum(-1)
    plogp_hat = _xlogy(Phat, Phat)
    kl = (plogp_hat - Phat * logP.masked_fill(Phat <= 0, 0.0)).sum(-1)
    M = 0.5 * (P + Phat)
    js = 0.5 * ((_xlogy(P, P) + plogp_hat) - _xlogy(P + Phat, M)).sum(-1)
    dropped = (P * (Phat <= 0)).sum(-1)
    o = P @ v
    o_hat = Phat @ v
    diff = o_hat - o
    err = diff.norm(dim=-1)
    o_norm = o.norm(dim=-1)
    second = (P * (v * v).sum(-1)[..., None, :]).sum(-1, dtype=torch.float64)
    sigma = (second - (o.double() ** 2).sum(-1)).clamp_min(0).sqrt().to(torch.float32)
    z = torch.where(sigma > 0, err / sigma.clamp_min(1e-30), torch.where(err > 0, torch.inf, 0.0))
    if w_o is None:
        err_o, o_o = err, o_norm
    else:
        err_o = torch.einsum("hed,...hnd->...hne", w_o, diff).norm(dim=-1)
        o_o = torch.einsum("hed,...hnd->...hne", w_o, o).norm(dim=-1)
    out = {"tv": tv, "kl": kl, "js": js.clamp_min(0), "dropped": dropped, "err": err,
           "rel_err": err / o_norm.clamp_min(1e-30), "z": z, "err_o": err_o, "rel_err_o": err_o / o_o.clamp_min(1e-30)}
    shape = tv.shape
    out["ess"] = (ess.to(torch.float32).expand(shape) if ess is not None
                  else torch.full(shape, float("nan"), device=tv.device))
    t = touched if touched is not None else Phat > 0
    out["distinct"] = t.expand(Phat.shape).sum(-1).to(torch.float32)
    out["_o"], out["_o_hat"] = o, o_hat
    return out


def seed_stats(o: torch.Tensor, o_hat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Across seeds (axis 0 of ô), per query, relative to ‖o‖²: variance E‖ô − Eô‖², squared bias ‖Eô − o‖²
    and MSE E‖ô − o‖² (= variance + squared bias; population variance over the S seeds)."""
    o = o.double()
    o_hat = o_hat.double()
    mean = o_hat.mean(0)
    var = ((o_hat - mean) ** 2).sum(-1).mean(0)
    bias2 = ((mean - o.expand_as(mean)) ** 2).sum(-1)
    mse = ((o_hat - o) ** 2).sum(-1).mean(0)
    denom = (o ** 2).sum(-1).expand_as(mse).clamp_min(1e-300)
    return {"var_rel": (var / denom).float(), "bias2_rel": (bias2 / denom).float(), "mse_rel": (mse / denom).float(),
            "mse": mse.float()}


def restrict(P: torch.Tensor, logP: torch.Tensor, Phat: torch.Tensor, keep: torch.Tensor):
    """Renormalise P and P̂ over the keys in ``keep`` (…×n bool, broadcast): returns (P', log P', P̂', defined)
    where ``defined`` (S×…×H×n) is False for rows where P̂ has no mass on the kept keys."""
    Pk = P * keep
    zP = Pk.sum(-1, keepdim=True)
    P2 = Pk / zP.clamp_min(1e-38)
    logP2 = (logP - torch.log(zP.clamp_min(1e-38))).masked_fill(~keep, float("-inf"))
    Hk = Phat * keep
    zH = Hk.sum(-1, keepdim=True)
    defined = (zH[..., 0] > 0) & (zP[..., 0] > 0)
    H2 = torch.where(zH > 0, Hk / zH.clamp_min(1e-38), torch.zeros_like(Hk))
    return P2, logP2, H2, defined


def concentration(sq_err: torch.Tensor) -> float:
    """Share of Σ squared error carried by the worst ⌈5%⌉ of the given queries (1-D, NaN-free)."""
    n = sq_err.numel()
    if n == 0:
        return float("nan")
    total = float(sq_err.double().sum())
    if total <= 0:
        return 0.0
    top = max(1, math.ceil(0.05 * n))
    return float(torch.topk(sq_err.double(), top).values.sum()) / total


def masked_values(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The entries of x (S×n or n) at mask (n), flattened, NaN dropped."""
    vals = x[..., mask].reshape(-1)
    return vals[~torch.isnan(vals)]


def summarise(values: torch.Tensor) -> dict[str, float]:
    """mean, p95 (linear interpolation), max of a 1-D tensor; NaN when empty."""
    if values.numel() == 0:
        return {"mean": float("nan"), "p95": float("nan"), "max": float("nan")}
    v = values.double()
    return {"mean": float(v.mean()), "p95": float(torch.quantile(v, 0.95)), "max": float(v.max())}
