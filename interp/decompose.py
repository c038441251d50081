"""Every attention head as a mixture of positional experts (docs/MATH.md §2 and §4).

Wibisono & Wang, "Bidirectional Attention as a Mixture of Continuous Word Experts" (UAI 2023): the attention
row a^h_i· is the gate, each position j is an expert whose message does not depend on the query i.
Norm-based firing strength after Kobayashi et al., "Attention is Not Only a Weight" (EMNLP 2020).

For head h of layer l with input X (n × d):

* gate        a^h_ij — the model's own attention probabilities                                 (exact)
* message     o^h_j = W_O^h (W_V^h x_j + b_V^h) = W_O^h v^h_j, in model space                  (exact)
* identity 1  dense_i = b_O + Σ_h Σ_j a^h_ij o^h_j                                             (exact)
* identity 2  LN(dense_i + x_i) = γ ⊙ [c(x_i + b_O) + Σ_h Σ_j a^h_ij c(o^h_j)] / σ_i + β,
              c(v) = v − mean(v), σ_i the LayerNorm scale of the actual forward pass              (exact)
* firing      f^h_ij = a^h_ij ‖c(o^h_j)‖ / σ_i (‖o^h_j‖ where the model has no LayerNorm)        (exact norms)
* effective experts exp(H(a^h_i·))                                                               (exact)
* role        a label read off the positional profile                                            (heuristic)
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from .loader import LoadedModel
from .trace import LayerTrace, Trace

ROLES = ("previous-token", "next-token", "self", "delimiter sink", "broad (CBOW-like)", "content-driven")
ROLE_THRESHOLD = 0.5


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max over rows of ‖a_i − b_i‖ / ‖b_i‖ (rows are the last dimension's vectors)."""
    num = (a.double() - b.double()).norm(dim=-1)
    den = b.double().norm(dim=-1).clamp(min=1e-30)
    return float((num / den).max())


def head_weights(lm: LoadedModel, layer: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """W_O split by head: (H × d_model × d_h), and b_O (None where the model has no output projection)."""
    parts = lm.adapter.layers[layer]
    H, dh = parts.n_heads, parts.head_dim
    if parts.o is None:
        eye = torch.eye(H * dh, dtype=lm.dtype, device=lm.device)
        return eye.view(H * dh, H, dh).permute(1, 0, 2), None
    W = parts.o.weight  # d_model × (H·d_h)
    return W.view(W.shape[0], H, dh).permute(1, 0, 2), parts.o.bias


def messages(lm: LoadedModel, lt: LayerTrace, layer: int) -> torch.Tensor:
    """Expert messages o^h_j = W_O^h v^h_j for every head: H × n × d_model (exact)."""
    W, _ = head_weights(lm, layer)
    return torch.einsum("hjd,hed->hje", lt.v, W)


def _mixed_messages(lm: LoadedModel, lt: LayerTrace, layer: int, msgs: torch.Tensor | None) -> torch.Tensor:
    """Σ_h Σ_j a^h_ij o^h_j (n × d). With explicit ``msgs`` the sum runs over the messages themselves; without,
    it is evaluated as Σ_h W_O^h (Σ_j a^h_ij v^h_j) — the same sum by associativity, n/d_h times cheaper."""
    if msgs is not None:
        return torch.einsum("hij,hje->ie", lt.probs, msgs)
    W, _ = head_weights(lm, layer)
    per_head = torch.matmul(lt.probs, lt.v)                 # H × n × d_h, recomputed from gates and values
    return torch.einsum("hid,hed->ie", per_head, W)


def reconstruct_dense(lm: LoadedModel, lt: LayerTrace, layer: int, msgs: torch.Tensor | None = None) -> torch.Tensor:
    """b_O + Σ_h Σ_j a^h_ij o^h_j (identity 1)."""
    _, b = head_weights(lm, layer)
    out = _mixed_messages(lm, lt, layer, msgs)
    return out + b if b is not None else out


def reconstruct_ln(lm: LoadedModel, lt: LayerTrace, layer: int, msgs: torch.Tensor | None = None) -> torch.Tensor:
    """Identity 2, the sublayer output (n × d) rebuilt from gates and messages (docs/MATH.md §2):
    post-norm γ ⊙ [c(x_i + b_O) + Σ_h Σ_j a^h_ij c(o^h_j)] / σ_i + β (LayerNorm scale frozen; Σ_j a_ij c(o_j) =
    c(Σ_j a_ij o_j) because c is linear and Σ_j a_ij = 1); pre-norm x_i + b_O + Σ_h Σ_j a^h_ij o^h_j; without a
    LayerNorm, identity 1."""
    parts = lm.adapter.layers[layer]
    if parts.norm == "none":
        return reconstruct_dense(lm, lt, layer, msgs)
    if parts.norm == "pre":
        return lt.hidden_in + reconstruct_dense(lm, lt, layer, msgs)
    _, b = head_weights(lm, layer)
    base = lt.hidden_in + (b if b is not None else 0)
    if msgs is not None:
        mixed = torch.einsum("hij,hje->ie", lt.probs, _centre(msgs))
    else:
        mixed = _centre(_mixed_messages(lm, lt, layer, None))
    inner = _centre(base) + mixed
    return parts.ln.weight * inner / lt.ln_sigma[:, None] + parts.ln.bias


def head_contribution(lm: LoadedModel, lt: LayerTrace, layer: int, head: int) -> torch.Tensor:
    """Head h's exact additive share of the attention output at every query (n × d), LayerNorm frozen:
    γ ⊙ Σ_j a^h_ij c(o^h_j) / σ_i (without LayerNorm: Σ_j a^h_ij o^h_j)."""
    msgs = lt.v[head] @ head_weights(lm, layer)[0][head].T       # n × d, this head's messages only
    parts = lm.adapter.layers[layer]
    if parts.norm != "post":
        return lt.probs[head] @ msgs
    return parts.ln.weight * (lt.probs[head] @ _centre(msgs)) / lt.ln_sigma[:, None]


def identity_checks(lm: LoadedModel, trace: Trace, explicit: bool = False, chain: bool = True) -> dict:
    """Max relative errors (row-wise ‖·‖, over all layers) of identity 1 against the model's own dense output and
    identity 2 against the model's own sublayer output. ``explicit`` sums over the expert messages o^h_j
    themselves (H·n²·d work per layer); the default is the associative form Σ_h W_O^h (Σ_j a_ij v_j), the same
    sum regrouped, n/d_h times cheaper. ``chain`` also rebuilds each layer's output with the model's
    own FFN from the identity-2 reconstruction and compares it with the hidden state of the actual forward pass."""
    dense_err, ln_err, chain_err = 0.0, 0.0, 0.0
    has_ln = False
    for l, lt in enumerate(trace.layers):
        msgs = messages(lm, lt, l) if explicit else None
        dense_err = max(dense_err, _rel_err(reconstruct_dense(lm, lt, l, msgs), lt.dense_out))
        parts = lm.adapter.layers[l]
        recon = reconstruct_ln(lm, lt, l, msgs)
        if parts.norm != "none":
            has_ln = True
            ln_err = max(ln_err, _rel_err(recon, lt.attn_out))
        if chain:
            with torch.no_grad():
                chain_err = max(chain_err, _rel_err(parts.ffn(recon), lt.hidden_out))
    return {"identity_dense_max_rel_err": dense_err,
            "identity_ln_max_rel_err": ln_err if has_ln else None,
            "layer_output_max_rel_err": chain_err if chain else None}


# --- which experts fire ----------------------------------------------------------------------------------

def message_norms(lm: LoadedModel, lt: LayerTrace, layer: int) -> torch.Tensor:
    """‖c(o^h_j)‖ (‖o^h_j‖ without LayerNorm): H × n."""
    msgs = messages(lm, lt, layer)
    return (_centre(msgs) if lm.adapter.layers[layer].norm == "post" else msgs).norm(dim=-1)


def firing_strength(lm: LoadedModel, lt: LayerTrace, layer: int, norms: torch.Tensor | None = None) -> torch.Tensor:
    """f^h_ij = a^h_ij ‖c(o^h_j)‖ / σ_i: H × n × n."""
    norms = message_norms(lm, lt, layer) if norms is None else norms
    f = lt.probs * norms[:, None, :]
    if lt.ln_sigma is not None:
        f = f / lt.ln_sigma[None, :, None]
    return f


def renormalise(probs: torch.Tensor, keep_keys: torch.Tensor) -> torch.Tensor:
    """Gate restricted to ``keep_keys`` and renormalised (rows with no mass left stay zero)."""
    p = probs * keep_keys.to(probs.dtype)
    return p / p.sum(-1, keepdim=True).clamp(min=1e-30)


def effective_experts(probs: torch.Tensor, keep_keys: torch.Tensor | None = None) -> torch.Tensor:
    """exp(H(a_i·)) of each row (1 = one expert, n = uniform), optionally over ``keep_keys`` renormalised."""
    p = probs if keep_keys is None else renormalise(probs, keep_keys)
    return torch.exp(torch.special.entr(p).sum(-1))


@dataclass
class PositionalProfile:
    """Gate mass by offset j − i (offsets −(n−1)…n−1), averaged over the queries used."""
    offsets: np.ndarray            # 2n−1
    mass: np.ndarray               # H × (2n−1), each row sums to 1 (all keys) or to the non-special share
    special_mass: np.ndarray       # H: mean gate mass on special tokens
    cls_mass: np.ndarray           # H: mean mass on the first token
    sep_mass: np.ndarray           # H: mean mass on the last token
    exclude_special: bool


def positional_profile(lt: LayerTrace, special: torch.Tensor, exclude_special: bool = False) -> PositionalProfile:
    """Mean gate mass by offset. With ``exclude_special``, special-token keys are dropped and rows renormalised,
    and special-token queries are skipped."""
    H, n, _ = lt.probs.shape
    probs = lt.probs
    dev = probs.device
    queries = torch.ones(n, dtype=torch.bool, device=dev)
    keys = torch.ones(n, dtype=probs.dtype, device=dev)
    if exclude_special:
        keys = (~special).to(probs.dtype)
        queries = ~special
    if not bool(queries.any()):
        queries = torch.ones(n, dtype=torch.bool, device=dev)
    qw = queries.to(probs.dtype)
    row_mass = (probs @ keys).clamp(min=1e-30)                     # H × n: renormalise rows over kept keys
    weight = (qw[None, :] / row_mass)[..., None] * keys[None, None, :]
    idx = torch.arange(n, device=dev)
    off = ((idx[None, :] - idx[:, None]) + (n - 1)).reshape(-1)    # n·n offsets shifted to 0…2n−2
    mass = torch.zeros(H, 2 * n - 1, dtype=probs.dtype, device=dev)
    mass.index_add_(1, off, (probs * weight).reshape(H, -1))
    nq = float(qw.sum())
    raw = lt.probs
    spec = (raw @ special.to(raw.dtype)) @ qw / nq
    return PositionalProfile(np.arange(-(n - 1), n), (mass.double() / nq).cpu().numpy(), spec.double().cpu().numpy(),
                             (raw[..., 0] @ qw / nq).double().cpu().numpy(),
                             (raw[..., n - 1] @ qw / nq).double().cpu().numpy(), exclude_special)


def head_role(special_mass: float, profile_nospecial: PositionalProfile, head: int, eff_ratio: float) -> str:
    """A label from the positional profile (heuristic): delimiter sink if ≥ 50% of the mass sits on special
    tokens; else previous-token / next-token / self if one offset carries ≥ 50% of the non-special mass; else
    broad (CBOW-like) if the effective number of experts is ≥ 50% of the non-special keys; else content-driven."""
    if special_mass >= ROLE_THRESHOLD:
        return "delimiter sink"
    n = (len(profile_nospecial.offsets) + 1) // 2
    m = profile_nospecial.mass[head]
    for label, offset in (("previous-token", -1), ("next-token", 1), ("self", 0)):
        if m[offset + n - 1] >= ROLE_THRESHOLD:
            return label
    if eff_ratio >= ROLE_THRESHOLD:
        return "broad (CBOW-like)"
    return "content-driven"


@dataclass
class Overview:
    """All layers × heads at a glance (arrays are numpy; L × H or L × H × n)."""
    tokens: list[str]
    special: np.ndarray                  # n bool
    role: list[list[str]]                # L × H
    effective_experts: np.ndarray        # L × H × n (all keys)
    effective_experts_nospecial: np.ndarray  # L × H × n (special keys excluded; nan for special queries)
    special_mass: np.ndarray             # L × H × n
    firing_total: np.ndarray             # L × H × n   Σ_j f^h_ij (how much the head moves the output at i)
    top_expert: np.ndarray               # L × H × n   argmax_j a^h_ij
    top_firing_expert: np.ndarray | None  # L × H × n   argmax_j f^h_ij (None unless asked for: no view shows it)
    mean_effective_experts: np.ndarray   # L × H  over queries (special queries included)
    mean_special_mass: np.ndarray        # L × H
    checks: dict = field(default_factory=dict)


def _roles(spec_mean: np.ndarray, prof_mass: np.ndarray, eff_ratio: np.ndarray) -> list[list[str]]:
    """:func:`head_role` of every head at once (``spec_mean``, ``eff_ratio``: L × H; ``prof_mass``: L × H × width,
    the non-special profile with offset 0 at the centre; the same thresholds in the same order)."""
    n = (prof_mass.shape[-1] + 1) // 2
    at = [prof_mass[..., o + n - 1] if 0 <= o + n - 1 < prof_mass.shape[-1] else np.zeros(spec_mean.shape)
          for o in (-1, 1, 0)]
    conds = [spec_mean >= ROLE_THRESHOLD, at[0] >= ROLE_THRESHOLD, at[1] >= ROLE_THRESHOLD, at[2] >= ROLE_THRESHOLD,
             eff_ratio >= ROLE_THRESHOLD]
    labels = np.array(["delimiter sink", "previous-token", "next-token", "self", "broad (CBOW-like)",
                       "content-driven"], dtype=object)
    pick = np.full(spec_mean.shape, 5)
    for k in range(4, -1, -1):                       # the first condition that holds wins
        pick[conds[k]] = k
    return labels[pick].tolist()


# G^h depends on the weights only: kept per output-projection weight tensor (a weak reference: the entry goes
# with the model) and its in-place version counter (a changed weight is never read from the table)
_GRAMS: dict[int, tuple[weakref.ref, int, str, torch.Tensor]] = {}
_GRAMS_LOCK = threading.Lock()


def _forget_gram(key: int) -> None:
    with _GRAMS_LOCK:
        _GRAMS.pop(key, None)


def message_gram(lm: LoadedModel, layer: int) -> torch.Tensor:
    """G^h = W_O^hᵀ C W_O^h (H × d_h × d_h; C = I − 11ᵀ/d centres, post-norm layers only, else I), so that
    ‖c(o^h_j)‖² = v^h_jᵀ G^h v^h_j: message norms without forming the n × d messages (exact algebra). Computed
    once per weight tensor (read-only, shared)."""
    parts = lm.adapter.layers[layer]
    weight = parts.o.weight if parts.o is not None else None
    if weight is not None:
        with _GRAMS_LOCK:
            hit = _GRAMS.get(id(weight))
        if hit is not None and hit[0]() is weight and hit[1] == weight._version and hit[2] == parts.norm \
                and hit[3].device == weight.device and hit[3].dtype == weight.dtype:
            return hit[3]
    W, _ = head_weights(lm, layer)                                   # H × d × d_h
    with torch.no_grad():
        G = W.transpose(1, 2) @ W
        if parts.norm == "post":
            u = W.sum(1)                                             # H × d_h: W_O^hᵀ 1
            G = G - u[:, :, None] * u[:, None, :] / W.shape[1]
    if weight is not None:
        key = id(weight)
        with _GRAMS_LOCK:
            _GRAMS[key] = (weakref.ref(weight, lambda _, key=key: _forget_gram(key)), weight._version, parts.norm, G)
    return G


def _norms_from_gram(v: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """sqrt(v_jᵀ G v_j) for every head and position: … × H × n (v: … × H × n × d_h, G: … × H × d_h × d_h)."""
    return ((v @ G) * v).sum(-1).clamp_(min=0).sqrt_()


def _layer_checks(lm: LoadedModel, lt: LayerTrace, layer: int) -> tuple[float, float | None]:
    """Identities 1 and 2 of one layer in float64 (row-wise max relative errors; the per-layer form that the
    overview's batched :func:`_identity_errors` is tested against), in the associative form of
    :func:`identity_checks`: identity 1 as b_O + Σ_h W_O^h (Σ_j a^h_ij v^h_j) against the model's dense output;
    identity 2 from that reconstruction with the LayerNorm scale frozen (post-norm) or the residual sum (pre)."""
    parts = lm.adapter.layers[layer]
    recon = reconstruct_dense(lm, lt, layer)
    dense_err = _rel_err(recon, lt.dense_out)
    if parts.norm == "none":
        return dense_err, None
    _, b = head_weights(lm, layer)
    mixed = recon - b if b is not None else recon
    if parts.norm == "pre":
        return dense_err, _rel_err(lt.hidden_in + recon, lt.attn_out)
    base = lt.hidden_in + (b if b is not None else 0)
    ln = parts.ln.weight * (_centre(base) + _centre(mixed)) / lt.ln_sigma[:, None] + parts.ln.bias
    return dense_err, _rel_err(ln, lt.attn_out)


@dataclass
class _StackedWeights:
    """Every layer's weights that the overview reads, stacked along a leading layer axis (read-only, shared)."""
    key: tuple
    gram: torch.Tensor                 # L × H × d_h × d_h   message_gram of every layer
    wt: torch.Tensor                   # L × (H·d_h) × d     W_Oᵀ (identity where the model has no output dense)
    bias: torch.Tensor | None          # L × 1 × d           b_O (None where no layer has one)
    gamma: torch.Tensor | None         # L × 1 × d           post-attention LayerNorm γ (post-norm only)
    beta: torch.Tensor | None          # L × 1 × d
    eps: torch.Tensor | None           # L × 1
    norm: str
    wct: torch.Tensor | None = None    # L × H × d_h × d  (C W_O^h)ᵀ, see :meth:`message_weights`
    wdelta: torch.Tensor | None = None  # L × (H·d_h) × 2d, see :meth:`delta_weights`
    ln_eps: float | None = None        # the LayerNorms' common ε (None: they differ, or no post-norm)
    place: tuple = ()                  # (device, dtype) they were built for
    watched: tuple = ()                # the weight tensors they were built from, and their version counters then
    versions: tuple = ()

    def message_weights(self) -> torch.Tensor:
        """(C W_O^h)ᵀ of every layer and head (L × H × d_h × d; C centres, post-norm only, else I): v^h_j times it is
        the centred message c(o^h_j), so ‖c(o^h_j)‖ is one product and one norm. Built once, on first use."""
        if self.wct is None:
            L, Hdh, d = self.wt.shape
            H = self.gram.shape[1]
            w = self.wt.view(L, H, Hdh // H, d)
            self.wct = (w - w.mean(-1, keepdim=True) if self.norm == "post" else w).contiguous()
        return self.wct

    def delta_weights(self) -> torch.Tensor:
        """[W_Oᵀ | (C W_O)ᵀ] (L × H·d_h × 2d) post-norm, else W_Oᵀ: for the accelerator's identity checks."""
        if self.wdelta is None:
            L, Hdh, d = self.wt.shape
            self.wdelta = torch.cat([self.wt, self.message_weights().view(L, Hdh, d)], -1) \
                if self.norm == "post" else self.wt
        return self.wdelta


_STACKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_STACKED_LOCK = threading.Lock()


def _watched(lm: LoadedModel) -> tuple[torch.Tensor, ...]:
    """The weight tensors the stacked weights are built from (W_O, b_O, γ, β of every layer that has them)."""
    out = []
    for p in lm.adapter.layers:
        for t in (getattr(p.o, "weight", None), getattr(p.o, "bias", None), getattr(p.ln, "weight", None),
                  getattr(p.ln, "bias", None)):
            if t is not None:
                out.append(t)
    return tuple(out)


def _weights_key(lm: LoadedModel) -> tuple:
    key = [str(lm.device), str(lm.dtype)]
    for p in lm.adapter.layers:
        key.append(p.norm)
        for t in (getattr(p.o, "weight", None), getattr(p.o, "bias", None), getattr(p.ln, "weight", None),
                  getattr(p.ln, "bias", None)):
            key.append(None if t is None else (id(t), t._version))
    return tuple(key)


def stacked_weights(lm: LoadedModel) -> _StackedWeights:
    """The overview's per-layer weights stacked once per model (and again only when a weight changes in place),
    so that one batched op serves every layer."""
    ad = lm.adapter
    with _STACKED_LOCK:
        hit = _STACKED.get(ad)
    # the quick check, on every overview: the same device and type, and no watched weight changed in place (the
    # model's modules are never replaced; reading them again costs ~1 µs each, the version counters ~0.1 µs)
    if hit is not None and hit.place == (lm.device, lm.dtype) and \
            all(t._version == v for t, v in zip(hit.watched, hit.versions)):
        return hit
    key = _weights_key(lm)
    if hit is not None and hit.key == key:
        return hit
    layers = ad.layers
    norms = {p.norm for p in layers}
    if len(norms) != 1 or len({(p.n_heads, p.head_dim) for p in layers}) != 1:  # pragma: no cover - no family
        raise ValueError("the overview needs every layer in the same LayerNorm form and head shape")
    norm = norms.pop()
    with torch.no_grad():
        gram = torch.stack([message_gram(lm, l) for l in range(len(layers))])
        wts, biases = [], []
        for l, p in enumerate(layers):
            W, b = head_weights(lm, l)                                        # H × d × d_h
            wts.append(W.permute(0, 2, 1).reshape(-1, W.shape[1]))             # (H·d_h) × d = W_Oᵀ
            biases.append(b)
        wt = torch.stack(wts).contiguous()
        bias = None
        if any(b is not None for b in biases):
            bias = torch.stack([b if b is not None else torch.zeros(wt.shape[-1], dtype=wt.dtype, device=wt.device)
                                for b in biases])[:, None, :]
        gamma = beta = eps = None
        if norm == "post":
            d = wt.shape[-1]
            one, zero = torch.ones(d, dtype=wt.dtype, device=wt.device), torch.zeros(d, dtype=wt.dtype, device=wt.device)
            gamma = torch.stack([p.ln.weight if p.ln.weight is not None else one for p in layers])[:, None, :]
            beta = torch.stack([p.ln.bias if p.ln.bias is not None else zero for p in layers])[:, None, :]
            eps = torch.tensor([[p.ln.eps] for p in layers], dtype=wt.dtype, device=wt.device)
    ln_eps = {p.ln.eps for p in layers} if norm == "post" else set()
    watched = _watched(lm)
    out = _StackedWeights(key, gram, wt, bias, gamma, beta, eps, norm,
                          ln_eps=ln_eps.pop() if len(ln_eps) == 1 else None, place=(lm.device, lm.dtype),
                          watched=watched, versions=tuple(t._version for t in watched))
    with _STACKED_LOCK:
        _STACKED[ad] = out
    return out


_INDEX: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _diagonal_index(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j), each 3 × n: row o + 1 lists the gates a_ij on the diagonal j = i + o, o ∈ {−1, 0, +1}; positions
    past the end of a diagonal point at a valid gate and get weight 0 (see :func:`_diagonal_weights`)."""
    key = (n, str(device))
    hit = _INDEX.get(key)
    if hit is None:
        i = torch.arange(n).expand(3, n)
        j = (i + torch.arange(-1, 2)[:, None]).clamp(0, max(n - 1, 0))
        both = torch.stack([i, j]).to(device)                                 # one transfer
        hit = (both[0], both[1])
        if len(_INDEX) > 64:
            _INDEX.clear()
        _INDEX[key] = hit
    return hit


def _diagonal_weights(q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """3 × n host weights of the profile at offsets −1, 0, +1: w_oi = q_i · keys_{i+o} / Σ q (0 off the matrix)."""
    n = q.shape[0]
    w = torch.zeros(3, n, dtype=q.dtype)
    for r, o in enumerate((-1, 0, 1)):
        lo, hi = max(0, -o), min(n, n - o)
        if hi > lo:
            w[r, lo:hi] = q[lo:hi] * keys[lo + o:hi + o]
    return w / q.sum()


_MASKS: dict[tuple, tuple] = {}


def _mask_constants(special: torch.Tensor, dt: torch.dtype, dev: torch.device) -> tuple:
    """What depends on the special-token mask only (``special``: n bool, on the host): whether any token is
    ordinary, how many, S (n, 1 for ordinary keys) and [1, S] (n × 2) on ``dev``, and on the host the mask as
    numpy, the 3 × n profile weights and the ordinary-query indicator (float32); kept for the next trace with the
    same mask."""
    key = (special.numpy().tobytes(), str(dt), str(dev))
    hit = _MASKS.get(key)
    if hit is None:
        n = special.shape[0]
        plain = ~special
        any_plain = bool(plain.any())
        S = plain.to(dt)
        q = S if any_plain else torch.ones(n, dtype=dt)
        wdiag = _diagonal_weights(q, q).to(torch.float32).numpy()
        both = torch.stack([S, torch.ones(n, dtype=dt), S], -1).to(dev)         # one transfer
        hit = (any_plain, max(int(plain.sum()), 1), both[:, 0], both[:, 1:], special.numpy().copy(), wdiag,
               plain.to(torch.float32).numpy())
        if len(_MASKS) > 256:
            _MASKS.clear()
        _MASKS[key] = hit
    return hit


# the overview takes the accelerator's paths (fewest ops) instead of the CPU's (fewest passes over memory) when
# set: tests pin both paths to each other on the CPU, and the engine benchmark counts the accelerator path's ops
_DEVICE_PATHS_ON_CPU = False


def overview(lm: LoadedModel, trace: Trace, with_checks: bool = True, with_top_firing: bool = False) -> Overview:
    """Per-head statistics of every layer (docs/MATH.md §4), computed from the trace without re-running the
    model.

    Effective experts with special keys excluded use H_S = (Σ_{j∈S} −a_ij log a_ij)/m_i + log m_i with
    m_i = Σ_{j∈S} a_ij (the entropy of the renormalised row, exact); firing totals are Σ_j a_ij ‖c(o_j)‖/σ_i.
    With ``with_checks``, identities 1 and 2 are checked on every layer (``checks``: max relative errors, the
    measure of :func:`identity_checks` in float32, see :func:`_identity_errors`); with ``with_top_firing``, the
    strongest-firing expert of every query is found too (one more pass over the gates).

    Work is batched across layers and heads: the passes over the n × n gates (top expert, the gate-weighted sums,
    three diagonals, the entropies, and for the checks Σ_j a_ij v_j) run once over all layers' gates when the
    trace holds them stacked (:meth:`Trace.stacked_probs`), else layer by layer; everything else on the device is
    one op for all layers and heads on stacked L × H × n tensors (weights stacked once per model,
    :func:`stacked_weights`). The message norms ‖c(o_j)‖ come from the Gram matrices of :func:`message_gram` on
    the CPU (no n × d messages formed) and from the centred messages themselves on an accelerator (two ops
    instead of five); the effective numbers of experts are exponentiated in place on the device (numpy's float32
    exp is a scalar loop). What the device computes per (layer, head, query) comes back to the host in one
    transfer (on an accelerator: two concatenations and one copy; nothing synchronises with the device before
    it), and the cheap elementwise steps (special-token mass, firing totals over σ, the profile's three offsets,
    the means) run there in numpy (float32), with n the innermost axis of every array, instead of one device op
    each."""
    L, H, n = trace.n_layers, trace.n_heads, trace.n
    layers = trace.layers
    P0 = layers[0].probs
    dev, dt = P0.device, P0.dtype
    cpu = dev.type == "cpu" and not _DEVICE_PATHS_ON_CPU
    sw = stacked_weights(lm)
    post = sw.norm == "post"
    special_host = trace.special.cpu()
    any_plain, n_nonspecial, S, ones_S, special_np, wdiag, plain_np = _mask_constants(special_host, dt, dev)
    ii, jj = _diagonal_index(n, dev)
    with torch.no_grad():
        V = torch.stack([lt.v for lt in layers])                                  # L × H × n × d_h
        if cpu:
            norms = _norms_from_gram(V, sw.gram)                                  # L × H × n  ‖c(o_j)‖
        else:                                        # c(o_j) = (C W_O^h) v_j for all layers and heads, then norms
            norms = torch.linalg.vector_norm(torch.matmul(V, sw.message_weights()), dim=-1)
        stats = [lt.gate_stats for lt in layers]
        have_stats = all(g is not None for g in stats)
        # the passes over the n × n gates: over all layers at once when the trace holds them stacked (one op
        # each), else layer by layer
        P_all = trace.stacked_probs()
        chunks = [(slice(0, L), P_all)] if P_all is not None else \
            [(slice(l, l + 1), lt.probs[None]) for l, lt in enumerate(layers)]
        top = torch.empty(L, H, n, dtype=torch.long, device=dev)
        diags = []                                                                # a_{i,i+o}, o = −1, 0, +1
        ent = None if have_stats else torch.empty(L, H, n, 2, dtype=dt, device=dev)   # H over all keys, over S
        top_f = torch.empty_like(top) if with_top_firing else None
        dh = V.shape[-1]
        if with_checks:
            # the checks need Σ_j a_ij v_j: two more columns give the gate-weighted sums in the same product
            Vx = torch.cat([V, S.expand(L, H, n)[..., None], norms[..., None]], -1)   # L × H × n × (d_h + 2)
            pvx = torch.empty(L, H, n, dh + 2, dtype=dt, device=dev)
        elif cpu:
            mass = torch.empty(L, H, n, 2, dtype=dt, device=dev)                  # Σ_{j∈S} a_ij, Σ_j a_ij ‖c(o_j)‖
        else:
            cols = torch.stack([S.expand(L, H, n), norms], -1)                    # L × H × n × 2
            mass = torch.empty(L, H, n, 2, dtype=dt, device=dev)
        if cpu:
            top_np = top.numpy()
        for ls, P in chunks:                                                      # P: l × H × n × n
            if cpu:
                # numpy's argmax is vectorised (first maximum on ties, as torch's): ~20× faster on one core
                np.argmax(P.numpy(), axis=-1, out=top_np[ls])
            else:
                torch.argmax(P, -1, out=top[ls])
            if with_checks:
                torch.matmul(P, Vx[ls], out=pvx[ls])                              # [Σ_j a_ij v_j, m_i, firing]
            elif cpu:
                torch.matmul(P, S, out=mass[ls, ..., 0])
                for l in range(ls.start, ls.stop):                                # H matrix–vector products:
                    for h in range(H):                                            # faster than an n × 1 bmm
                        torch.mv(P[l - ls.start, h], norms[l, h], out=mass[l, h, :, 1])
            else:
                torch.matmul(P, cols[ls], out=mass[ls])
            diags.append(P[..., ii, jj])                                          # l × H × 3 × n
            if ent is not None:
                # −a log a (0 where a = 0), summed over all keys and over S in one product
                torch.matmul(torch.special.entr(P), ones_S, out=ent[ls])
            if top_f is not None:
                torch.argmax(P * norms[ls, :, None, :], -1, out=top_f[ls])        # 1/σ_i > 0 does not move it
        pv = None
        if with_checks:
            pv, m2 = pvx[..., :dh], pvx[..., dh:]                                 # m2: [m_S, Σ_j a_ij ‖c(o_j)‖]
        else:
            m2 = mass
        if have_stats:
            # log a_ij = s_ij − lse_i with lse_i = max_j s_ij − log max_j a_ij: Σ_j a log a = Σ_j a_ij s_ij − lse_i,
            # and over S: Σ_{j∈S} a_ij s_ij − lse_i m_i; the terms were summed during the capture
            e_all, e_ns, s_max, p_max = torch.stack(stats).unbind(1)              # each L × H × n
            lse = s_max - p_max.log()
            ent = torch.stack([lse - e_all, lse * m2[..., 0] - e_ns], -1)         # L × H × n × 2
        # effective experts in place: [H, H_S] → [exp(H), exp(H_S/m + log m) = exp(H_S/m)·m], m = Σ_{j∈S} a_ij
        # (four ops for both, on the device: numpy's float32 exp is a scalar loop)
        m_dev = m2[..., 0].clamp(min=1e-30)
        ent[..., 1].div_(m_dev)
        ent.exp_()
        ent[..., 1].mul_(m_dev)
        D3 = diags[0] if len(diags) == 1 else torch.cat(diags)                    # L × H × 3 × n
        sigma = rstd = ln = None
        errs = None
        if post or with_checks:
            C = trace.stacked_context()                                           # L × n × (H·d_h)
            if C is None:
                C = torch.stack([lt.context for lt in layers])
            X = torch.stack([lt.hidden_in for lt in layers])                      # L × n × d
            if cpu:   # one GEMM per layer: on the CPU ~2.5× faster than one batched bmm of the same products
                dense = torch.empty(L, n, sw.wt.shape[-1], dtype=dt, device=dev)
                for l in range(L):
                    if sw.bias is not None:
                        torch.addmm(sw.bias[l, 0], C[l], sw.wt[l], out=dense[l])
                    else:
                        torch.mm(C[l], sw.wt[l], out=dense[l])
            else:
                dense = torch.baddbmm(sw.bias, C, sw.wt) if sw.bias is not None else torch.bmm(C, sw.wt)
            if post and not cpu and sw.ln_eps is not None:
                # one LayerNorm op for every layer gives the normalised rows, the means and 1/σ_i (the model's
                # own LayerNorm kernel, so σ_i is the forward pass's); the checks reuse the normalised rows
                pre = dense + X
                normed, mu, rstd = torch.native_layer_norm(pre, pre.shape[-1:], None, None, sw.ln_eps)
                cpre = pre - mu
                ln = (normed, rstd)
                rstd = rstd.view(L, n)
            elif post:
                pre = dense + X
                cpre = pre - pre.mean(-1, keepdim=True)
                # σ_i = sqrt(‖c(pre_i)‖²/d + ε), var from the centred row's norm (torch's var is ~10× slower on
                # the CPU)
                nrm = torch.linalg.vector_norm(cpre, dim=-1)
                sigma = torch.addcmul(sw.eps, nrm, nrm, value=1 / pre.shape[-1]).sqrt_()
            if with_checks:
                errs = _identity_errors(lm, sw, pv, C, X, dense, (pre, cpre) if post else None, sigma, cpu, ln)
        # per (layer, head, query): [exp(H), exp(H_S/m)·m, m_S, Σ_j a_ij ‖c(o_j)‖, top(, top firing)]; then the
        # diagonals a_{i,i+o} (L × H × 3 × n), σ or 1/σ (L × n) and the checks' errors
        if cpu:
            ent_c, m2_c, D3_c = ent.numpy(), m2.numpy(), D3.numpy()
            top_c = top_np
            top_f_c = top_f.numpy() if top_f is not None else None
            sigma_c = sigma.numpy() if sigma is not None else None
            rstd_c = None
            err_c = [float(x) for x in errs] if errs is not None else []
        else:
            columns = [ent, m2, top[..., None]] + ([top_f[..., None]] if top_f is not None else [])
            per_query = torch.cat(columns, -1)                                    # float (positions < 2^24: exact)
            rest = [t.reshape(-1) for t in (D3, sigma, rstd, errs) if t is not None]
            flat = torch.cat([per_query.view(-1)] + rest)
            flat_out = flat.cpu().numpy()                                         # the one device → host copy
            k = per_query.shape[-1]
            pq = flat_out[:L * H * n * k].reshape(L, H, n, k)
            ent_c, m2_c = pq[..., 0:2], pq[..., 2:4]
            top_c = pq[..., 4].astype(np.int64)
            top_f_c = pq[..., 5].astype(np.int64) if top_f is not None else None
            at = L * H * n * k
            D3_c, at = flat_out[at:at + L * H * 3 * n].reshape(L, H, 3, n), at + L * H * 3 * n
            sigma_c = rstd_c = None
            if sigma is not None:
                sigma_c, at = flat_out[at:at + L * n].reshape(L, n), at + L * n
            if rstd is not None:
                rstd_c, at = flat_out[at:at + L * n].reshape(L, n), at + L * n
            err_c = [float(x) for x in flat_out[at:]] if errs is not None else []
    # host: the statistics from the sums (numpy, float32)
    f32 = np.float32
    m_S = m2_c[..., 0]
    m = np.maximum(m_S, f32(1e-30))
    eff_c = np.ascontiguousarray(ent_c[..., 0])
    eff_ns_c = np.ascontiguousarray(ent_c[..., 1])
    eff_ns_c[..., special_np] = 0                      # (special queries: NaN below; 0 keeps them out of the sum)
    # mean over ordinary queries, as one product (the NaN-aware mean of the NaN-marked array is ~10× slower)
    ratio = (eff_ns_c @ plain_np) / (n_nonspecial * n_nonspecial) if any_plain else eff_c.mean(-1) / n
    eff_ns_c[..., special_np] = np.nan
    spec_c = np.maximum(f32(1) - m_S, f32(0))
    if sigma_c is not None:
        fire_c = m2_c[..., 1] / sigma_c[:, None, :]
    elif rstd_c is not None:
        fire_c = m2_c[..., 1] * rstd_c[:, None, :]
    else:
        fire_c = m2_c[..., 1].copy()
    # the roles read the profile (special keys and queries excluded, rows renormalised) only at offsets −1, 0, +1:
    # three diagonals of the gate matrix, no pass over all n² gates
    # (n innermost: numpy's loops run over the last axis)
    if any_plain:
        prof_c = np.matmul(D3_c * wdiag, (f32(1) / m)[..., None])[..., 0]                 # L × H × 3
    else:
        prof_c = (D3_c * wdiag).sum(-1)
    roles = _roles(spec_c.mean(-1), prof_c.astype(np.float64), ratio)
    checks = {}
    if with_checks:
        checks = {"identity_dense_max_rel_err": err_c[0],
                  "identity_ln_max_rel_err": err_c[1] if len(err_c) > 1 else None,
                  "layer_output_max_rel_err": None}
    return Overview(tokens=trace.tokens, special=special_host.numpy(), role=roles, effective_experts=eff_c,
                    effective_experts_nospecial=eff_ns_c, special_mass=spec_c, firing_total=fire_c,
                    top_expert=np.ascontiguousarray(top_c), top_firing_expert=top_f_c,
                    mean_effective_experts=eff_c.mean(-1), mean_special_mass=spec_c.mean(-1), checks=checks)


def _identity_errors(lm: LoadedModel, sw: _StackedWeights, pv: torch.Tensor, C: torch.Tensor, X: torch.Tensor,
                     dense: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None, sigma: torch.Tensor | None,
                     cpu: bool, ln: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Identities 1 and 2 for every layer at once (max row-wise relative errors; 1 or 2 values).

    Identity 1: the reconstruction b_O + Σ_h W_O^h (Σ_j a^h_ij v^h_j) from the gates and values (``pv``:
    L × H × n × d_h) against the model's dense output of its own head outputs (``dense``, from ``C``). Their
    difference is W_O applied to u = Σ_j a_ij v_j − (the captured head output), so the error is ‖u_i W_Oᵀ‖/‖dense_i‖,
    evaluated without subtracting two nearly equal vectors; on the CPU, rows where u is exactly zero contribute
    exactly zero and are not multiplied. Identity 2 (post-norm, σ frozen): γ ⊙ c(x_i + recon_i)/σ_i + β
    (= γ ⊙ [c(x_i + b_O) + Σ_h Σ_j a_ij c(o_j)]/σ_i + β, c is linear) against LayerNorm(dense + x) with the
    model's γ, β and ε; pre-norm: x_i + recon_i against x_i + dense_i.

    The measure is :func:`_rel_err`'s (max over rows of ‖a_i − b_i‖/‖b_i‖) evaluated in the model's float32
    instead of float64: the difference a − b is either formed exactly (identity 1: W_O applied to u) or is the
    difference of two float32 vectors that agree to ~1e-7 (Sterbenz: exact, or rounded at the smaller ulp),
    and the float32 rounding of the norms moves the reported ratio by a relative ~1e-6 (an error of 3.0e-7
    reads 3.0e-7 either way); no square underflows or overflows for rows of ordinary activations."""
    L, n, _ = C.shape
    H = pv.shape[1]
    u = torch.empty_like(C)                                                       # L × n × (H·d_h)
    torch.sub(pv.permute(0, 2, 1, 3), C.view(L, n, H, -1), out=u.view(L, n, H, -1))
    if not cpu:
        return _identity_errors_fused(lm, sw, u, X, dense, pre, sigma, ln)
    delta = None
    rows = u.ne(0).any(-1)                                                        # L × n
    if bool(rows.any()):
        delta = torch.zeros_like(dense)
        for l in range(L):
            idx = rows[l].nonzero()[:, 0]
            if idx.numel():
                delta[l, idx] = u[l, idx] @ sw.wt[l]
    # numerators and denominators of the row-wise relative errors (L × n each), then one division and max
    zero = None
    if delta is not None:
        n1 = torch.linalg.vector_norm(delta, dim=-1)
    else:                 # recon = dense exactly: identity 1's numerator (and pre-norm identity 2's) is zero
        n1 = zero = torch.zeros(dense.shape[:-1], dtype=dense.dtype, device=dense.device)
    num, den = [n1], [dense]
    if sw.norm == "post":
        pre, cpre = pre                                                           # dense + x, and centred
        ref = _layer_norms(lm, sw, pre)
        c = cpre if delta is None else cpre + (delta - delta.mean(-1, keepdim=True))
        num.append(torch.linalg.vector_norm(torch.addcmul(sw.beta, c, sw.gamma / sigma[..., None]) - ref, dim=-1))
        den.append(ref)
    elif sw.norm == "pre":
        num.append(n1)                                                            # (x + recon) − (x + dense)
        den.append(X + dense)
    den = [torch.linalg.vector_norm(t, dim=-1) for t in den]
    if len(den) == 1:
        return (n1 / den[0].clamp(min=1e-30)).amax().reshape(1)
    return (torch.stack(num) / torch.stack(den).clamp_(min=1e-30)).amax((1, 2))


def _identity_errors_fused(lm: LoadedModel, sw: _StackedWeights, u: torch.Tensor, X: torch.Tensor,
                           dense: torch.Tensor, pre: tuple[torch.Tensor, torch.Tensor] | None,
                           sigma: torch.Tensor | None, ln: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """The accelerator's form of :func:`_identity_errors` (the same quantities, fewer ops): one product gives
    both δ = u W_Oᵀ (recon − dense) and, post-norm, its centred form c(δ) = u (C W_O)ᵀ (no mean and subtraction);
    every numerator and denominator row is then one stack and one norm, and the ratios one division and one max.
    ``ln``: (LayerNorm(dense + x) without γ, β; 1/σ, L × n × 1) from the overview's one LayerNorm op, or None
    (then the reference is :func:`_layer_norms` and ``sigma`` the scale)."""
    both = torch.bmm(u, sw.delta_weights())                  # L × n × d, or L × n × 2d post-norm: [δ, c(δ)]
    d = dense.shape[-1]
    if sw.norm == "post":
        pre_, cpre = pre
        delta = both[..., :d]
        if ln is not None:
            normed, rstd = ln
            ref = torch.addcmul(sw.beta, normed, sw.gamma)
            scale = sw.gamma * rstd
        else:
            ref = _layer_norms(lm, sw, pre_)
            scale = sw.gamma / sigma[..., None]
        diff2 = torch.addcmul(sw.beta, cpre + both[..., d:], scale) - ref
        r = torch.linalg.vector_norm(torch.stack([delta, diff2, dense, ref]), dim=-1)    # 4 × L × n
        num, den = r[:2], r[2:]
    elif sw.norm == "pre":     # identity 2's numerator is identity 1's: (x + recon) − (x + dense) = δ
        r = torch.linalg.vector_norm(torch.stack([both, dense, X + dense]), dim=-1)      # 3 × L × n
        num, den = r[:1], r[1:]
    else:
        r = torch.linalg.vector_norm(torch.stack([both, dense]), dim=-1)                # 2 × L × n
        num, den = r[:1], r[1:]
    return (num / den.clamp(min=1e-30)).amax((1, 2))


def _layer_norms(lm: LoadedModel, sw: _StackedWeights, pre: torch.Tensor) -> torch.Tensor:
    """The post-attention LayerNorm of every layer applied to ``pre`` (L × n × d): one normalisation for all
    layers with their γ, β when they share ε (the model's own modules, one by one, otherwise)."""
    if sw.ln_eps is not None:
        normed = torch.nn.functional.layer_norm(pre, pre.shape[-1:], eps=sw.ln_eps)
        return torch.addcmul(sw.beta, normed, sw.gamma)
    return torch.stack([p.ln(pre[l]) for l, p in enumerate(lm.adapter.layers)])  # pragma: no cover


@dataclass
class HeadView:
    """One head as a mixture of experts."""
    layer: int
    head: int
    tokens: list[str]
    gates: np.ndarray            # n × n  a_ij (query × expert)
    firing: np.ndarray           # n × n  f_ij
    message_norms: np.ndarray    # n      ‖c(o_j)‖
    effective_experts: np.ndarray  # n
    role: str
    profile: PositionalProfile
    profile_nospecial: PositionalProfile
    contribution_norms: np.ndarray  # n  ‖head's share of the attention output at i‖

    def top_experts(self, query: int, k: int = 5, by: str = "gate") -> list[tuple[int, str, float, float]]:
        """(position, token, gate, firing) of the k strongest experts for ``query``."""
        score = self.gates[query] if by == "gate" else self.firing[query]
        order = np.argsort(-score, kind="stable")[:k]
        return [(int(j), self.tokens[j], float(self.gates[query, j]), float(self.firing[query, j])) for j in order]

    def caption(self, query: int) -> str:
        """English summary (kept for callers; the text now lives in :func:`interp.captions.head_caption`)."""
        from .captions import head_caption
        return head_caption(self, query)


def head_view(lm: LoadedModel, trace: Trace, layer: int, head: int) -> HeadView:
    check_head(trace, layer, head)
    lt = trace.layers[layer]
    special = trace.special.to(lt.probs.device)
    norms = message_norms(lm, lt, layer)
    f = firing_strength(lm, lt, layer, norms)[head]
    prof = positional_profile(lt, special)
    prof_ns = positional_profile(lt, special, exclude_special=True)
    eff = effective_experts(lt.probs[head])
    eff_ns = effective_experts(lt.probs[head], ~special) if bool((~special).any()) else eff
    mean_ns = float(eff_ns[~special].mean()) if bool((~special).any()) else float(eff.mean())
    role = head_role(float(lt.probs[head][:, special].sum(-1).mean()), prof_ns, head,
                     mean_ns / max(int((~special).sum()), 1))
    contrib = head_contribution(lm, lt, layer, head).norm(dim=-1)
    return HeadView(layer=layer, head=head, tokens=trace.tokens, gates=lt.probs[head].cpu().numpy(),
                    firing=f.cpu().numpy(), message_norms=norms[head].cpu().numpy(),
                    effective_experts=eff.cpu().numpy(), role=role, profile=prof, profile_nospecial=prof_ns,
                    contribution_norms=contrib.cpu().numpy())


def check_head(trace: Trace, layer: int, head: int, query: int | None = None) -> None:
    if not 0 <= layer < trace.n_layers:
        raise ValueError(f"layer {layer} is out of range: the model has layers 0–{trace.n_layers - 1}")
    if not 0 <= head < trace.n_heads:
        raise ValueError(f"head {head} is out of range: each layer has heads 0–{trace.n_heads - 1}")
    if query is not None and not 0 <= query < trace.n:
        raise ValueError(f"query {query} is out of range: the input has tokens 0–{trace.n - 1}")


# --- layer 0: the CBOW split and the gate-score split -------------------------------------------------------

@dataclass
class CBOWSplit:
    """Layer-0 messages of one head split into word / position / segment+bias parts (exact; embedding LayerNorm
    scale σ^E_j frozen). ``*_part``: n × d_model; their sum equals the message."""
    head: int
    word_part: torch.Tensor
    position_part: torch.Tensor
    segment_bias_part: torch.Tensor
    message: torch.Tensor

    def norms(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, f"{k}_part").norm(dim=-1).cpu().numpy()
                for k in ("word", "position", "segment_bias")}

    def max_rel_err(self) -> float:
        return _rel_err(self.word_part + self.position_part + self.segment_bias_part, self.message)


def _input_split(lm: LoadedModel, trace: Trace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """X0 = word + position + rest, each in model space, with the embedding LayerNorm frozen (exact)."""
    ad = lm.adapter
    ids = trace.input_ids.to(lm.device)
    tt = trace.token_type_ids.to(lm.device) if trace.token_type_ids is not None else None
    with torch.no_grad():
        ep = ad.embedding_parts(ids, tt)
        w, p, s = ep.word, ep.position, ep.segment
        if ep.proj is not None and ep.proj_first:
            w, p, s = w @ ep.proj.weight.T, p @ ep.proj.weight.T, s @ ep.proj.weight.T
            if ep.proj.bias is not None:
                s = s + ep.proj.bias
        if ep.ln is not None:
            sigma = torch.sqrt((w + p + s).var(-1, unbiased=False) + ep.ln.eps)[:, None]
            g = ep.ln.weight if ep.ln.weight is not None else 1.0
            w, p = g * _centre(w) / sigma, g * _centre(p) / sigma
            s = g * _centre(s) / sigma + (ep.ln.bias if ep.ln.bias is not None else 0)
        if ep.proj is not None and not ep.proj_first:
            w, p, s = w @ ep.proj.weight.T, p @ ep.proj.weight.T, s @ ep.proj.weight.T + ep.proj.bias
    return w, p, s


def cbow_split(lm: LoadedModel, trace: Trace, head: int) -> CBOWSplit:
    """o^h_j = W_O^h W_V^h (word_j + position_j + rest_j) + W_O^h b_V^h, split by input part (layer 0)."""
    check_head(trace, 0, head)
    parts = lm.adapter.layers[0]
    w, p, s = _input_split(lm, trace)
    W, _ = head_weights(lm, 0)
    dh = parts.head_dim
    Wv = parts.v.weight[head * dh:(head + 1) * dh]            # d_h × d
    bv = parts.v.bias[head * dh:(head + 1) * dh] if parts.v.bias is not None else None
    Wo = W[head]                                               # d_model × d_h
    with torch.no_grad():
        word = (w @ Wv.T) @ Wo.T
        pos = (p @ Wv.T) @ Wo.T
        rest = (s @ Wv.T + (bv if bv is not None else 0)) @ Wo.T
        msg = messages(lm, trace.layers[0], 0)[head]
    return CBOWSplit(head=head, word_part=word, position_part=pos, segment_bias_part=rest, message=msg)


@dataclass
class GateScoreSplit:
    """Layer-0 pre-softmax gate scores s_ij = q_i·k_j/√d_h split into word–word, word–position, position–word,
    position–position and bias (every term involving segment, LayerNorm β or projection biases). Exact."""
    head: int
    parts: dict[str, np.ndarray]   # each n × n
    total: np.ndarray              # the scores the model used (from the captured Q and K)

    def max_abs_err(self) -> float:
        return float(np.abs(sum(self.parts.values()) - self.total).max())


class SplitRefused(ValueError):
    """The family's gate or message has no exact split of this kind; ``str(err)`` says why in one line."""


def gate_score_split(lm: LoadedModel, trace: Trace, head: int) -> GateScoreSplit:
    """Layer-0 gate scores of ``head`` split into word/position parts (n × n each, in logits units), plus a
    ``relative position`` part where the family adds an input-independent bias (MPNet). Raises
    :class:`SplitRefused` where the family's gate has no such split (rotary or disentangled positions)."""
    check_head(trace, 0, head)
    if lm.adapter.gate_split_refusal:
        raise SplitRefused(lm.adapter.gate_split_refusal)
    parts = lm.adapter.layers[0]
    lt = trace.layers[0]
    dh = parts.head_dim
    scale = dh ** -0.5
    w, p, s = _input_split(lm, trace)
    sl = slice(head * dh, (head + 1) * dh)
    q_total, k_total = lt.q[head], lt.k[head]
    if parts.q is None:  # CBOW model: no query/key parameters, scores are zero
        z = np.zeros((trace.n, trace.n))
        return GateScoreSplit(head, {"word–word": z, "word–position": z, "position–word": z,
                                     "position–position": z, "bias": z}, (q_total @ k_total.T * scale).cpu().numpy())
    with torch.no_grad():
        Wq, Wk = parts.q.weight[sl], parts.k.weight[sl]
        bq = parts.q.bias[sl] if parts.q.bias is not None else 0
        bk = parts.k.bias[sl] if parts.k.bias is not None else 0
        qw, qp, qb = w @ Wq.T, p @ Wq.T, s @ Wq.T + bq
        kw, kp, kb = w @ Wk.T, p @ Wk.T, s @ Wk.T + bk
        out = {"word–word": qw @ kw.T, "word–position": qw @ kp.T, "position–word": qp @ kw.T,
               "position–position": qp @ kp.T,
               "bias": qb @ kw.T + qb @ kp.T + qb @ kb.T + qw @ kb.T + qp @ kb.T}
        total = q_total @ k_total.T
        out = {k: v * scale for k, v in out.items()}
        total = total * scale
        extra = lm.adapter.score_bias(0, trace.n)
        if extra is not None:
            out["relative position"] = extra[head].to(total.dtype)
            total = total + out["relative position"]
    return GateScoreSplit(head=head, parts={k: v.cpu().numpy() for k, v in out.items()}, total=total.cpu().numpy())


@dataclass
class CorpusProfile:
    """Positional profile of every head over many texts: gate mass by offset within ±window (special-token keys
    and queries excluded, rows renormalised), the rest beyond the window, mass on special tokens, and a role."""
    window: int
    offsets: np.ndarray            # −window…window
    mass: np.ndarray               # L × H × (2·window+1)
    beyond: np.ndarray             # L × H   mass at |offset| > window
    special_mass: np.ndarray       # L × H   (all keys, all queries)
    effective_ratio: np.ndarray    # L × H   mean effective experts / non-special keys (special excluded)
    roles: list[list[str]]
    texts: int
    queries: int


def corpus_profile(lm: LoadedModel, texts: list[str], window: int = 8, batch_size: int = 16,
                   progress=None) -> CorpusProfile:
    """Average each head's profile over ``texts``, weighting every (non-special) query equally."""
    from .trace import capture
    L, H = lm.n_layers, lm.n_heads
    W = window
    mass = np.zeros((L, H, 2 * W + 1))
    beyond = np.zeros((L, H))
    spec = np.zeros((L, H))
    eff_ratio = np.zeros((L, H))
    n_queries, n_all, n_texts = 0, 0, 0
    for s in range(0, len(texts), batch_size):
        bt = capture(lm, texts[s:s + batch_size])
        for b in range(bt.batch_size):
            tr = bt.example(b)
            special = tr.special.to(tr.layers[0].probs.device)
            q = int((~special).sum())
            if q == 0:
                continue
            n = tr.n
            for l, lt in enumerate(tr.layers):
                prof = positional_profile(lt, special, exclude_special=True)
                lo, hi = max(0, n - 1 - W), min(2 * n - 1, n + W)
                inside = prof.mass[:, lo:hi]
                mass[l, :, (lo - (n - 1)) + W:(hi - (n - 1)) + W] += inside * q
                beyond[l] += (prof.mass.sum(-1) - inside.sum(-1)) * q
                spec[l] += (lt.probs @ special.to(lt.probs.dtype)).sum(-1).double().cpu().numpy()
                e = effective_experts(lt.probs, ~special)[:, ~special]        # H × q
                eff_ratio[l] += (e / q).sum(-1).double().cpu().numpy()
            n_queries += q
            n_all += n
            n_texts += 1
        if progress:
            progress(min(1.0, (s + batch_size) / max(len(texts), 1)))
    if n_queries == 0:
        raise ValueError("no text with ordinary (non-special) tokens to profile")
    mass /= n_queries
    beyond /= n_queries
    spec /= n_all
    eff_ratio /= n_queries
    roles = []
    for l in range(L):
        row = []
        for h in range(H):
            # a role from the aggregate, with the same thresholds as for one input (offset 0 at index W)
            prof = PositionalProfile(np.arange(-W, W + 1), mass[l], spec[l], spec[l], spec[l], True)
            row.append(head_role(float(spec[l, h]), prof, h, float(eff_ratio[l, h])))
        roles.append(row)
    return CorpusProfile(W, np.arange(-W, W + 1), mass, beyond, spec, eff_ratio, roles, n_texts, n_queries)

