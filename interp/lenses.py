"""What expert j "predicts" for query i in head h of layer l — three lenses (docs/MATH.md §3).

Each lens gives one output vector z_j per expert (MLM logits over the vocabulary, or — for encoders without an
MLM head — the mean-pooled sentence embedding). Alongside, every result reports how well the gate-weighted
mixture Σ_j a_ij z_j reproduces the model's own output (the lens's reconstruction error). For logits, the
normalised geometric pool Π_j softmax(z_j)^{a_ij} equals softmax(Σ_j a_ij z_j) exactly (the log-normalisers
cancel because Σ_j a_ij = 1), so the pool's KL to the model is computed from the mixture.

* ``vocabulary``     z_j = W_out c(o^h_j) + b — the message read through the output embeddings (the MLM decoder, or
                     the tied input embeddings without a head). Skips every later layer: heuristic.
* ``anchored``       z_j = y_i + J_i (v^h_j − ctx^h_i), J_i = ∂y_i/∂ctx^h_i at the actual forward pass (one
                     forward-mode pass with d_h basis tangents, batched). Σ_j a_ij z_j = y_i exactly: exact bookkeeping,
                     local (linear) in meaning.
* ``counterfactual`` z_j = the model's output when head h's row i is one-hot on j, the rest of the network re-run
                     (batched over j). Causal; KL(model ‖ pool) says how MoE-like the head is here.

For the paper's one-layer model all three coincide with its z_j = ρ·v_j + b.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.func import jvp, vmap

from .decompose import _centre, check_head, head_weights
from . import tangents as T
from .adapters.base import Adapter
from .loader import LoadedModel
from .trace import Trace

LensFn = Callable[..., "LensResult"]


@dataclass(frozen=True)
class LensInfo:
    """A registered lens: its name, how exact it is (shown next to every per-expert prediction), and whether
    it can deliver its experts in batches (``progressive``: a generator ``batches(lm, trace, layer, head,
    query)`` yields (expert indices, their outputs), top-gate experts first)."""
    name: str
    exactness: str
    description: str
    progressive: bool = False


LENSES: dict[str, LensFn] = {}
LENS_INFO: dict[str, LensInfo] = {}
EXACTNESS: dict[str, str] = {}


def register_lens(name: str, exactness: str, description: str, progressive: bool = False):
    """Decorator: ``@register_lens("x", exactness=..., description=...)`` on a function
    ``(lm, trace, layer, head, query, **options) -> LensResult`` adds lens ``x`` everywhere (CLI, page, tests)."""
    def deco(fn: LensFn) -> LensFn:
        LENSES[name] = fn
        LENS_INFO[name] = LensInfo(name, exactness, description, progressive)
        EXACTNESS[name] = exactness
        return fn
    return deco


@dataclass
class LensResult:
    """One lens on one (layer, head, query). ``out`` is the vocabulary size V (logits / vocabulary scores) or
    the model width d (pooled embedding); values are logits (nats before softmax) or embedding units."""
    lens: str
    layer: int
    head: int
    query: int
    output_kind: str            # "mlm-logits" or "pooled-embedding"
    experts: torch.Tensor       # n × out   z_j
    gates: torch.Tensor         # n         a_ij
    mixture: torch.Tensor       # out       Σ_j a_ij z_j
    model_output: torch.Tensor  # out       what the model produced (logits at i, or the pooled embedding)
    exactness: str

    @property
    def mixture_max_abs_err(self) -> float:
        """max |Σ_j a_ij z_j − y_i| (0 up to float error for the anchored lens)."""
        return float((self.mixture.double() - self.model_output.double()).abs().max())

    @property
    def mixture_max_rel_err(self) -> float:
        return self.mixture_max_abs_err / max(float(self.model_output.double().abs().max()), 1e-30)

    @property
    def pool_kl(self) -> float | None:
        """KL(model ‖ geometric pool of the experts) in nats; None for embeddings."""
        if self.output_kind != "mlm-logits":
            return None
        p = torch.log_softmax(self.model_output.double(), -1)
        q = torch.log_softmax(self.mixture.double(), -1)
        return float((p.exp() * (p - q)).sum())

    @property
    def arithmetic_kl(self) -> float | None:
        """KL(model ‖ Σ_j a_ij softmax(z_j)) — the arithmetic mixture, shown only as a teaching contrast."""
        if self.output_kind != "mlm-logits":
            return None
        p = torch.log_softmax(self.model_output.double(), -1)
        mix = (self.gates.double()[:, None] * torch.softmax(self.experts.double(), -1)).sum(0)
        return float((p.exp() * (p - mix.clamp(min=1e-300).log())).sum())

    def cosine_to_output(self) -> np.ndarray:
        """cos(z_j, y_i) per expert (useful for embeddings)."""
        return torch.nn.functional.cosine_similarity(self.experts.double(), self.model_output.double()[None],
                                                     dim=-1).cpu().numpy()

    def top_tokens(self, tokenizer, j: int | None = None, k: int = 5) -> list[tuple[str, float]]:
        """Top-k tokens and probabilities of expert j's distribution (j=None: the model's own)."""
        if self.output_kind != "mlm-logits":
            return []
        z = self.model_output if j is None else self.experts[j]
        p = torch.softmax(z.double(), -1)
        val, idx = torch.topk(p, k)
        return list(zip(tokenizer.convert_ids_to_tokens(idx.tolist()), val.tolist()))

    def summary(self) -> dict:
        return {"lens": self.lens, "layer": self.layer, "head": self.head, "query": self.query,
                "output_kind": self.output_kind, "exactness": self.exactness,
                "mixture_max_abs_err": self.mixture_max_abs_err, "mixture_max_rel_err": self.mixture_max_rel_err,
                "pool_kl": self.pool_kl}


def _output_kind(lm: LoadedModel) -> str:
    return "mlm-logits" if lm.has_mlm_head else "pooled-embedding"


def _model_output(trace: Trace, query: int) -> torch.Tensor:
    return trace.output[query] if trace.has_mlm_head else trace.output


def rest_of_network(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int,
                    deltas: torch.Tensor) -> torch.Tensor:
    """The model's output when head h's output at query i (ctx^h_i) is shifted by each row of ``deltas``
    (T × d_h): the changed row goes through the layer's own dense, LayerNorm and FFN, then the model's own
    later layers and head run on the whole sequence. Returns T × out. Exact re-run (no approximation)."""
    ad = lm.adapter
    parts = ad.layers[layer]
    lt = trace.layers[layer]
    W, _ = head_weights(lm, layer)
    T = deltas.shape[0]
    n, d = lt.hidden_out.shape
    dense_i = lt.dense_out[query] + deltas @ W[head].T
    attn_i = parts.after_attention(dense_i, lt.hidden_in[query])[0]
    out_i = parts.ffn(attn_i)                                            # T × d
    row = torch.zeros(n, dtype=torch.bool, device=out_i.device)
    row[query] = True
    hidden = torch.where(row[None, :, None], out_i[:, None, :], lt.hidden_out[None].expand(T, n, d))
    valid = torch.ones(T, n, dtype=torch.bool, device=hidden.device)
    final = ad.run_layers(hidden, valid, layer + 1)
    if ad.has_mlm_head:
        return ad.mlm_logits(final[:, query])
    return ad.output(final, valid)


def _chunk(lm: LoadedModel, trace: Trace) -> int:
    n, H = trace.n, trace.n_heads
    d = trace.final_hidden.shape[-1]
    per_copy = 4 * (H * n * n * 3 + n * d * 12)
    return int(max(1, min(256, 3e8 // per_copy)))


@register_lens("vocabulary", "heuristic", "each message read through the output embeddings (later layers skipped)")
def vocabulary_lens(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int) -> LensResult:
    """z_j = W_out c(o^h_j) + b (n × V): message j through the MLM decoder, or the tied input embeddings."""
    check_head(trace, layer, head, query)
    lt = trace.layers[layer]
    W, b = lm.adapter.output_embeddings()
    with torch.no_grad():
        wo = head_weights(lm, layer)[0][head].T                  # d_h × d: o^h_j = W_O^h v^h_j for this head only
        if lm.adapter.layers[layer].norm == "post":
            wo = _centre(wo)                                     # c(W_O^h v) = v·c(W_O^hᵀ): centring is linear
        if wo.shape[-1] != W.shape[1]:  # ELECTRA generator heads work in a smaller width: not comparable
            raise ValueError("the vocabulary lens needs output embeddings of the model's width")
        # the messages have rank ≤ d_h: for n long enough, read W_O^h through the vocabulary once (d_h × V) and
        # take the n value vectors through it (d_h·d·V + n·d_h·V multiply-adds instead of n·d·V)
        n, dh, d = lt.v.shape[1], wo.shape[0], wo.shape[1]
        if dh * d + n * dh < n * d:
            z = lt.v[head] @ (wo @ W.T)
        else:
            z = (lt.v[head] @ wo) @ W.T
        if b is not None:
            z = z + b
        if not lm.has_mlm_head:
            # without an MLM head the lens scores tokens; its "mixture" is compared with the pooled output's
            # own vocabulary scores so that the error is stated on the same scale
            y = _model_output(trace, query) @ W.T
        else:
            y = _model_output(trace, query)
    gates = lt.probs[head, query]
    return LensResult(lens="vocabulary", layer=layer, head=head, query=query,
                      output_kind="mlm-logits" if lm.has_mlm_head else "vocabulary-scores", experts=z, gates=gates,
                      mixture=gates @ z, model_output=y, exactness=EXACTNESS["vocabulary"])


@register_lens("anchored", "exact bookkeeping (local linearisation)",
               "the model's output moved linearly towards each expert (one batched forward-mode pass)")
def anchored_lens(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int) -> LensResult:
    """z_j = y_i + J_i (v^h_j − ctx^h_i) (n × out), J_i = ∂y_i/∂ctx^h_i (d_h × out) from d_h forward-mode
    (Jacobian-vector) products: in closed form through BERT-style later layers
    (:func:`anchored_jacobian_closed_form`), otherwise batched with ``vmap`` (:func:`anchored_jacobian_vmap`).
    Σ_j a_ij z_j = y_i exactly (docs/MATH.md §3)."""
    check_head(trace, layer, head, query)
    lt = trace.layers[layer]
    ctx_i = lt.probs[head, query] @ lt.v[head]
    with torch.no_grad():
        fast = anchored_jacobian_closed_form(lm, trace, layer, head, query)
        primal, J = fast if fast is not None else anchored_jacobian_vmap(lm, trace, layer, head, query)
    y = _model_output(trace, query)
    z = y[None] + (lt.v[head] - ctx_i[None]) @ J               # n × out
    gates = lt.probs[head, query]
    res = LensResult(lens="anchored", layer=layer, head=head, query=query, output_kind=_output_kind(lm), experts=z,
                     gates=gates, mixture=gates @ z, model_output=y, exactness=EXACTNESS["anchored"])
    res.rerun_output = primal                                  # the re-run at zero shift (equals y)
    return res


def anchored_jacobian_vmap(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(output at zero shift: out, J = ∂y_i/∂ctx^h_i: d_h × out) by ``vmap`` over d_h ``jvp`` passes of
    :func:`rest_of_network` — the generic path, valid for every family (and the reference of the fast one)."""
    lt = trace.layers[layer]
    dh = lt.v.shape[-1]
    basis = torch.eye(dh, dtype=lt.v.dtype, device=lt.v.device)
    zero = torch.zeros(dh, dtype=lt.v.dtype, device=lt.v.device)

    def rerun(delta: torch.Tensor) -> torch.Tensor:
        return rest_of_network(lm, trace, layer, head, query, delta[None])[0]

    with torch.no_grad():
        primal, J = vmap(lambda t: jvp(rerun, (zero,), (t,)))(basis)
    return primal[0], J


def _tangent_chunk(trace: Trace, n_heads: int, T: int) -> int:
    """Tangents per batch: the attention tangent holds T × H × n × n floats; keep it near 4·10⁷."""
    return int(max(1, min(T, 4e7 // max(1, n_heads * trace.n * trace.n))))


def anchored_jacobian_closed_form(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int
                                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(output at zero shift: out, J: d_h × out) as :func:`anchored_jacobian_vmap`, with the d_h tangents
    propagated in closed form through the later layers (:mod:`interp.tangents`): the first later layer works
    on the one changed row, and for an MLM head the last layer only on the query's row. None when a later
    layer is not a plain BERT post-norm layer (or when ``layer`` is the last one: nothing to save)."""
    ad = lm.adapter
    L = ad.n_layers
    if layer >= L - 1:
        return None
    ws = [T.bert_layer_weights(ad, m) for m in range(layer + 1, L)]
    if any(w is None for w in ws):
        return None
    lt = trace.layers[layer]
    parts = ad.layers[layer]
    W, _ = head_weights(lm, layer)
    dh = lt.v.shape[-1]
    basis = torch.eye(dh, dtype=lt.v.dtype, device=lt.v.device)
    x_i, dense_i = lt.hidden_in[query], lt.dense_out[query]

    def row(delta: torch.Tensor) -> torch.Tensor:        # layer l on the query's row, head h's output shifted
        return parts.ffn(parts.after_attention(dense_i + delta @ W[head].T, x_i)[0])

    zero = torch.zeros(dh, dtype=lt.v.dtype, device=lt.v.device)
    _, d_row = vmap(lambda t: jvp(row, (zero,), (t,)))(basis)          # d_h × d: layer l's output tangent at i
    mlm = ad.has_mlm_head
    last_rows = [query] if mlm else slice(None)
    prims = [T.primal(w, trace.layers[m], last_rows if m == L - 1 else slice(None))
             for m, w in zip(range(layer + 1, L), ws)]
    final = prims[-1].out                                               # recomputed last hidden rows
    n = trace.n
    valid = torch.ones(1, n, dtype=torch.bool, device=final.device)
    if mlm:
        def readout(f: torch.Tensor) -> torch.Tensor:
            return ad.mlm_logits(f[0])
    else:
        def readout(f: torch.Tensor) -> torch.Tensor:
            return ad.output(f[None], valid)[0]
    # the base wiring's pooled output is the plain mean over the n (all valid) rows: its tangent is summed
    # inside the last layer, without that layer's per-row output projection
    mean_pooled = not mlm and type(ad).output is Adapter.output
    chunks = []
    step = _tangent_chunk(trace, ad.n_heads, dh)
    for a in range(0, dh, step):
        dx_i = d_row[a:a + step]
        t = dx_i.shape[0]
        dx = None
        for k, (m, w, p) in enumerate(zip(range(layer + 1, L), ws, prims)):
            rows = last_rows if m == L - 1 else slice(None)
            if k == 0 and m < L - 1:
                dx = T.layer_tangent_one_row_in(w, p, dx_i, query)
                continue
            if k == 0:
                dctx = T.attention_tangent_one_row_in(w, p, dx_i, query)[:, rows]
                res = torch.zeros(t, n, dx_i.shape[-1], dtype=dx_i.dtype, device=dx_i.device)
                res[:, query] = dx_i
                res = res[:, rows]
            elif mlm and m == L - 1:
                dctx = T.attention_tangent_one_query(w, p, dx, query)
                res = dx[:, rows]
            else:
                dctx = T.attention_tangent(w, p, dx, rows)
                res = dx[:, rows]
            if m == L - 1 and mean_pooled:
                chunks.append(T.layer_tangent_mean(w, p, dctx, res))      # the pooled output's tangent
                break
            dx = T.layer_tangent(w, p, dctx, res)
        else:
            chunks.append(vmap(lambda d: jvp(readout, (final,), (d,))[1])(dx))
    return readout(final), torch.cat(chunks)


def counterfactual_order(trace: Trace, layer: int, head: int, query: int) -> list[int]:
    """Experts in the order the progressive counterfactual computes them: largest gate first (stable)."""
    gates = trace.layers[layer].probs[head, query]
    return torch.sort(gates.double(), descending=True, stable=True).indices.tolist()


def counterfactual_batches(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int,
                           first: int = 8, step: int | None = None) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (expert positions, their counterfactual outputs: len × out) batch by batch, the ``first`` experts
    with the largest gates first, then the rest in gate order ``step`` at a time. Every expert's output is the
    same re-run as in :func:`counterfactual_lens` (head h's row i one-hot on j, the rest of the network re-run)."""
    check_head(trace, layer, head, query)
    lt = trace.layers[layer]
    ctx_i = lt.probs[head, query] @ lt.v[head]
    order = counterfactual_order(trace, layer, head, query)
    step = step or _chunk(lm, trace)
    bounds = [0, min(first, len(order))]
    while bounds[-1] < len(order):
        bounds.append(min(bounds[-1] + step, len(order)))
    with torch.no_grad():
        for a, b in zip(bounds[:-1], bounds[1:]):
            idx = order[a:b]
            deltas = lt.v[head][idx] - ctx_i[None]             # one-hot on j ⇒ ctx^h_i becomes v^h_j
            yield idx, rest_of_network(lm, trace, layer, head, query, deltas)


@register_lens("counterfactual", "causal (re-runs the network)",
               "the model's output when this head listens only to expert j (n re-runs of the later layers)",
               progressive=True)
def counterfactual_lens(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int,
                        progress: Callable[[float], None] | None = None,
                        on_batch: Callable[[list[int], torch.Tensor], None] | None = None) -> LensResult:
    """z_j = the model's output with head h's gate row i one-hot on j (n × out). ``progress(fraction)`` and
    ``on_batch(positions, outputs)`` are called after every batch of :func:`counterfactual_batches` (top-gate
    experts first), so a caller can show the strongest experts before the rest are done."""
    check_head(trace, layer, head, query)
    lt = trace.layers[layer]
    z = None
    done = 0
    for idx, out in counterfactual_batches(lm, trace, layer, head, query):
        if z is None:
            z = torch.empty((trace.n, out.shape[-1]), dtype=out.dtype, device=out.device)
        z[idx] = out
        done += len(idx)
        if on_batch:
            on_batch(idx, out)
        if progress:
            progress(done / trace.n)
    gates = lt.probs[head, query]
    return LensResult(lens="counterfactual", layer=layer, head=head, query=query, output_kind=_output_kind(lm),
                      experts=z, gates=gates, mixture=gates @ z, model_output=_model_output(trace, query),
                      exactness=EXACTNESS["counterfactual"])


def all_lenses(lm: LoadedModel, trace: Trace, layer: int, head: int, query: int) -> dict[str, LensResult]:
    """Every registered lens on one (layer, head, query)."""
    return {name: fn(lm, trace, layer, head, query) for name, fn in LENSES.items()}
