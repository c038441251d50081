"""Forward-mode tangents through BERT-style post-norm layers in closed form, batched over T tangents.

Used by the anchored lens (docs/MATH.md §3): the lens needs J = ∂y_i/∂ctx^h_i, the derivative of the model's
output with respect to one head's output at one query, i.e. d_h tangents pushed through the later layers. The
primal point is the model's own forward pass, which the trace already holds (Q, K, V, gates, the attention
output), so only the tangents are propagated, with the derivative of every operation written out:

* linear maps: dY = dX Wᵀ (biases drop out);
* attention: dS = s (dQ Kᵀ + Q dKᵀ), dA = A ⊙ (dS − Σ_j A ⊙ dS), dctx = dA V + A dV (softmax over keys);
* LayerNorm: dy = γ/σ ⊙ (du − mean(du) − x̂ · mean(x̂ ⊙ du)), x̂ = (u − μ)/σ, σ = sqrt(var(u) + ε);
* the activation: its elementwise derivative at the primal pre-activation (the function's own ``jvp`` with a
  tangent of ones, so any elementwise activation is exact).

Two structural savings, both exact:

* the first later layer receives a tangent on one row only (the query's), so its Q/K/V tangents are one row
  and its attention tangent has a closed form of cost O(T·n·d) instead of O(T·n²·d + T·n·d²);
* where the output reads one row (MLM logits at the query), the last layer computes K/V tangents for every
  row but attention, dense, LayerNorm and feed-forward only for that row.

Only families whose layers are exactly BERT's (``attention.self`` Q/K/V, ``attention.output`` dense +
LayerNorm, ``intermediate`` dense + activation, ``output`` dense + LayerNorm; no relative positions, no
score bias) take this path; :func:`bert_layer_weights` returns None for every other layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import jvp

from .adapters.base import Adapter


@dataclass(frozen=True)
class BertLayerWeights:
    """The weights of one BERT post-norm layer (views of the model's own parameters; never modified)."""
    wq: torch.Tensor              # (H·d_h) × d
    wk: torch.Tensor
    wv: torch.Tensor
    wo: torch.Tensor              # d × (H·d_h)
    ln1: nn.LayerNorm
    w1: torch.Tensor              # d_ff × d
    b1: torch.Tensor | None
    act: Callable[[torch.Tensor], torch.Tensor]
    w2: torch.Tensor              # d × d_ff
    b2: torch.Tensor | None
    ln2: nn.LayerNorm
    scaling: float
    n_heads: int
    head_dim: int


def _overrides(adapter: Adapter, name: str) -> bool:
    return getattr(type(adapter), name) is not getattr(Adapter, name)


def bert_layer_weights(adapter: Adapter, layer: int) -> BertLayerWeights | None:
    """The layer's weights when it is exactly a BERT post-norm layer run by the base wiring, else None."""
    if not adapter.attention_via_interface:
        return None
    if any(_overrides(adapter, m) for m in ("call_layer", "run_layers", "finish", "layer_mask", "score_bias")):
        return None
    if getattr(adapter.config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None
    parts = adapter.layers[layer]
    blk = parts.module
    inter, out = getattr(blk, "intermediate", None), getattr(blk, "output", None)
    if (parts.norm != "post" or parts.o is None or parts.ln is None or inter is None or out is None
            or getattr(blk, "crossattention", None) is not None):
        return None
    lin = (parts.q, parts.k, parts.v, parts.o, getattr(inter, "dense", None), getattr(out, "dense", None))
    if not all(isinstance(m, nn.Linear) for m in lin) or not isinstance(getattr(out, "LayerNorm", None),
                                                                         nn.LayerNorm):
        return None
    act = getattr(inter, "intermediate_act_fn", None)
    if act is None or not isinstance(parts.ln, nn.LayerNorm):
        return None
    scaling = getattr(parts.attention_module, "scaling", parts.head_dim ** -0.5)
    return BertLayerWeights(parts.q.weight, parts.k.weight, parts.v.weight, parts.o.weight, parts.ln,
                            inter.dense.weight, inter.dense.bias, act, out.dense.weight, out.dense.bias,
                            out.LayerNorm, float(scaling), parts.n_heads, parts.head_dim)


def ln_stats(u: torch.Tensor, ln: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂, σ) of LayerNorm ``ln`` at its input ``u`` (… × d): x̂ = (u − μ)/σ, σ = sqrt(var(u) + ε) (… )."""
    mu = u.mean(-1, keepdim=True)
    sigma = torch.sqrt(u.var(-1, unbiased=False) + ln.eps)
    return (u - mu) / sigma[..., None], sigma


def ln_tangent(du: torch.Tensor, xhat: torch.Tensor, sigma: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    """Tangent of LayerNorm at the primal (x̂, σ) (R × d, R) for tangents ``du`` (T × R × d)."""
    du = du - du.mean(-1, keepdim=True)
    du = du - xhat * (du * xhat).mean(-1, keepdim=True)
    scale = 1.0 / sigma[:, None]
    if ln.weight is not None:
        scale = ln.weight * scale
    return du * scale


@dataclass
class Primal:
    """The primal values of one later layer at the rows ``rows`` (the model's own forward pass)."""
    q: torch.Tensor               # H × n × d_h
    k: torch.Tensor
    v: torch.Tensor
    probs: torch.Tensor           # H × n × n
    ctx: torch.Tensor             # H × n × d_h
    xhat1: torch.Tensor           # R × d   post-attention LayerNorm
    sigma1: torch.Tensor          # R
    act_grad: torch.Tensor        # R × d_ff  activation derivative at the pre-activation
    xhat2: torch.Tensor           # R × d   output LayerNorm
    sigma2: torch.Tensor          # R
    out: torch.Tensor             # R × d   the layer's output (recomputed: equals the trace's)


def primal(w: BertLayerWeights, lt, rows: list[int] | slice) -> Primal:
    """Recompute the FFN's primal values of trace layer ``lt`` at ``rows`` from the trace's attention output."""
    n = lt.hidden_in.shape[0]
    H, dh = w.n_heads, w.head_dim
    xhat1, sigma1 = ln_stats(lt.dense_out[rows] + lt.hidden_in[rows], w.ln1)
    a = lt.attn_out[rows]
    pre = a @ w.w1.T
    if w.b1 is not None:
        pre = pre + w.b1
    h, grad = jvp(w.act, (pre,), (torch.ones_like(pre),))
    o = h @ w.w2.T
    if w.b2 is not None:
        o = o + w.b2
    u = o + a
    xhat2, sigma2 = ln_stats(u, w.ln2)
    ctx = lt.context.view(n, H, dh).transpose(0, 1)
    return Primal(lt.q, lt.k, lt.v, lt.probs, ctx, xhat1, sigma1, grad, xhat2, sigma2, w.ln2(u))


def _heads(x: torch.Tensor, H: int, dh: int) -> torch.Tensor:
    """T × R × (H·d_h) → T × H × R × d_h."""
    return x.view(x.shape[0], x.shape[1], H, dh).transpose(1, 2)


def attention_tangent_one_row_in(w: BertLayerWeights, p: Primal, dx_i: torch.Tensor, i: int) -> torch.Tensor:
    """dctx (T × n × H·d_h) when the layer input's tangent is non-zero only at row i (``dx_i``: T × d).

    With dK, dV zero except at key i and dQ zero except at query i, row r's score tangent is
    c_r e_i (+ s·dQ_i Kᵀ on row i), c_r = s·Q_r·dK_i, so dctx_r = c_r a_ri (v_i − ctx_r) + a_ri dV_i
    (+ Σ_j a_ij (g_j − ḡ) v_j on row i, g_j = s·dQ_i·K_j)."""
    H, dh = w.n_heads, w.head_dim
    T = dx_i.shape[0]
    dq = (dx_i @ w.wq.T).view(T, H, dh)
    dk = (dx_i @ w.wk.T).view(T, H, dh)
    dv = (dx_i @ w.wv.T).view(T, H, dh)
    col = p.probs[:, :, i]                                              # H × n: a_ri
    c = torch.einsum("hrd,thd->thr", p.q, dk) * w.scaling               # T × H × n
    diff = p.v[:, i][:, None, :] - p.ctx                                # H × n × d_h
    dctx = (c * col)[..., None] * diff + col[None, :, :, None] * dv[:, :, None, :]
    g = torch.einsum("thd,hjd->thj", dq, p.k) * w.scaling               # T × H × n (row i's scores)
    ag = p.probs[:, i][None] * g
    dctx[:, :, i] += torch.einsum("thj,hjd->thd", ag, p.v) - ag.sum(-1)[..., None] * p.ctx[:, i][None]
    return dctx.transpose(1, 2).reshape(T, -1, H * dh)


def attention_tangent(w: BertLayerWeights, p: Primal, dx: torch.Tensor, rows: slice | list[int]) -> torch.Tensor:
    """dctx (T × R × H·d_h) at query rows ``rows`` for a layer-input tangent ``dx`` on every row (T × n × d)."""
    H, dh = w.n_heads, w.head_dim
    T = dx.shape[0]
    kv = _heads(dx @ torch.cat([w.wk, w.wv]).T, 2 * H, dh)             # T × 2H × n × d_h
    dk, dv = kv[:, :H], kv[:, H:]
    dq = _heads(dx[:, rows] @ w.wq.T, H, dh)
    q, probs = p.q[:, rows], p.probs[:, rows]
    ds = torch.matmul(dq, p.k.transpose(-1, -2))                        # dS = s (dQ Kᵀ + Q dKᵀ)
    ds.add_(torch.matmul(q, dk.transpose(-1, -2))).mul_(w.scaling)
    ds.sub_((probs * ds).sum(-1, keepdim=True)).mul_(probs)             # softmax tangent
    dctx = torch.matmul(ds, p.v)
    dctx.add_(torch.matmul(probs, dv))
    return dctx.transpose(1, 2).reshape(T, -1, H * dh)


def attention_tangent_one_query(w: BertLayerWeights, p: Primal, dx: torch.Tensor, i: int) -> torch.Tensor:
    """dctx (T × 1 × H·d_h) at query row i only, for a layer-input tangent on every row (T × n × d): equal to
    :func:`attention_tangent` at ``[i]``, without the K/V tangents of every row. Row i's scores read dK_j only
    through Q_i·dK_j = (W_Kᵀ Q_i)·dx_j, and its output reads dV_j only through Σ_j a_ij dV_j = W_V Σ_j a_ij dx_j."""
    H, dh = w.n_heads, w.head_dim
    T, n, d = dx.shape
    qi = p.q[:, i]                                                      # H × d_h
    ui = torch.einsum("hc,hce->he", qi, w.wk.view(H, dh, d))            # H × d: W_K^hᵀ Q_i^h
    dq = (dx[:, i] @ w.wq.T).view(T, H, dh)
    ds = torch.einsum("thc,hjc->thj", dq, p.k) + torch.einsum("tjd,hd->thj", dx, ui)
    ds.mul_(w.scaling)
    pi = p.probs[:, i]                                                  # H × n
    ds.sub_((pi * ds).sum(-1, keepdim=True)).mul_(pi)
    mixed = torch.einsum("hj,tjd->thd", pi, dx)                         # T × H × d: Σ_j a_ij dx_j
    dctx = torch.einsum("thj,hjc->thc", ds, p.v) + torch.einsum("thd,hcd->thc", mixed, w.wv.view(H, dh, d))
    return dctx.reshape(T, 1, H * dh)


def layer_tangent(w: BertLayerWeights, p: Primal, dctx: torch.Tensor, dx_rows: torch.Tensor) -> torch.Tensor:
    """The layer output's tangent at the primal's rows from the head outputs' tangent ``dctx`` (T × R × H·d_h)
    and the layer input's tangent at the same rows ``dx_rows`` (T × R × d, the residual)."""
    da = ln_tangent(dctx @ w.wo.T + dx_rows, p.xhat1, p.sigma1, w.ln1)
    di = (da @ w.w1.T).mul_(p.act_grad)
    return ln_tangent(di @ w.w2.T + da, p.xhat2, p.sigma2, w.ln2)


def layer_tangent_mean(w: BertLayerWeights, p: Primal, dctx: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_r of :func:`layer_tangent` over all n rows (T × d) — the tangent of a mean-pooled output —
    without the per-row output projection: with u_r = W₂ dI_r + dA_r the rows' sum is
    Σ_r γ/σ_r ⊙ (u_r − mean(u_r) − x̂_r (x̂_r·u_r)/d), and W₂ enters only through W₂ Σ_r dI_r/σ_r, the
    column means of W₂ (for mean(u_r)) and W₂ᵀx̂_r (for x̂_r·u_r), one d_ff-vector per row computed once."""
    n, d = p.xhat2.shape
    da = ln_tangent(dctx @ w.wo.T + dx, p.xhat1, p.sigma1, w.ln1)      # T × n × d
    di = (da @ w.w1.T).mul_(p.act_grad)                                 # T × n × d_ff
    inv = 1.0 / p.sigma2                                                # n
    z = p.xhat2 @ w.w2                                                  # n × d_ff: W₂ᵀ x̂_r
    total = torch.einsum("trf,r->tf", di, inv) @ w.w2.T + torch.einsum("trd,r->td", da, inv)
    mean_u = di @ w.w2.mean(0) + da.mean(-1)                            # T × n
    dot_u = (di * z).sum(-1) + (da * p.xhat2).sum(-1)                   # T × n
    total = total - (mean_u @ inv)[:, None] - (dot_u * (inv / d)) @ p.xhat2
    if w.ln2.weight is not None:
        total = total * w.ln2.weight
    return total / n


def layer_tangent_one_row_in(w: BertLayerWeights, p: Primal, dx_i: torch.Tensor, i: int) -> torch.Tensor:
    """The layer output's tangent on every row (T × n × d) when its input's tangent is non-zero only at row
    i (``dx_i``: T × d); the same values as :func:`attention_tangent_one_row_in` then :func:`layer_tangent`.

    Row r's head outputs move in the span of D_hr = v_i − ctx_r (weight α_thr = c_thr a_ri) and dV_i (weight
    a_ri), plus a correction on row i, so the dense output and the FFN's first projection are taken of those
    few vectors, not of the T × n tangents: with G = W₁ diag(γ₁) and du_r the tangent before the LayerNorm,
    W₁ dA_r = (G du_r − mean(du_r) G·1 − (x̂_r·du_r)/d · G x̂_r) / σ_r."""
    H, dh = w.n_heads, w.head_dim
    T, d = dx_i.shape
    n = p.probs.shape[-1]
    dq = (dx_i @ w.wq.T).view(T, H, dh)
    dk = (dx_i @ w.wk.T).view(T, H, dh)
    dv = (dx_i @ w.wv.T).view(T, H, dh)
    col = p.probs[:, :, i]                                              # H × n: a_ri
    alpha = torch.einsum("hrd,thd->thr", p.q, dk).mul_(w.scaling).mul_(col)
    diff = p.v[:, i][:, None, :] - p.ctx                                # H × n × d_h
    g = torch.einsum("thd,hjd->thj", dq, p.k) * w.scaling               # row i's score tangent (dQ part)
    ag = p.probs[:, i][None] * g
    corr = torch.einsum("thj,hjd->thd", ag, p.v) - ag.sum(-1)[..., None] * p.ctx[:, i][None]   # T × H × d_h
    wo = w.wo.view(d, H, dh)
    e = torch.einsum("ehd,hrd->hre", wo, diff)                          # H × n × d: W_O^h D_hr
    f = torch.einsum("ehd,thd->the", wo, dv)                            # T × H × d: W_O^h dV_i
    extra = corr.reshape(T, H * dh) @ w.wo.T + dx_i                     # row i: the correction and the residual
    du = torch.einsum("thr,hre->tre", alpha, e)
    du += (col.T @ f.reshape(T, H, d).transpose(0, 1).reshape(H, T * d)).view(n, T, d).transpose(0, 1)
    du[:, i] += extra
    gamma = w.ln1.weight if w.ln1.weight is not None else torch.ones(d, dtype=du.dtype, device=du.device)
    G = w.w1 * gamma                                                    # d_ff × d
    d_ff = G.shape[0]
    gwo = (G @ w.wo).view(d_ff, H, dh)
    ge = torch.einsum("fhd,hrd->hrf", gwo, diff)                        # H × n × d_ff
    gf = torch.einsum("fhd,thd->thf", gwo, dv)                          # T × H × d_ff
    gdu = torch.einsum("thr,hrf->trf", alpha, ge)
    gdu += (col.T @ gf.transpose(0, 1).reshape(H, T * d_ff)).view(n, T, d_ff).transpose(0, 1)
    gdu[:, i] += extra @ G.T
    mean_u = du.mean(-1)                                                # T × n
    dot_u = (du * p.xhat1).sum(-1)                                      # T × n
    pre = gdu - mean_u[..., None] * (G.sum(-1))
    pre -= (dot_u / d)[..., None] * (p.xhat1 @ G.T)
    pre *= (1.0 / p.sigma1)[:, None]
    da = ln_tangent(du, p.xhat1, p.sigma1, w.ln1)
    di = pre.mul_(p.act_grad)
    return ln_tangent(di @ w.w2.T + da, p.xhat2, p.sigma2, w.ln2)
