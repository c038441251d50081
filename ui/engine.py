"""Cached engine calls: the only place the dashboard runs the library.

* ``get_model`` — ``st.cache_resource``: one model object per name/folder per process, shared by every session,
  never mutated (analyses run through per-call attention plans, see ``interp.attention``).
* ``get_trace`` — ``st.cache_resource``: one captured forward pass per (model, text), read-only, shared.
* ``overview`` / ``head`` / ``lens`` / ``layer0`` / ``sampling_*`` / ``downstream`` — ``st.cache_data``: compact
  results per (model, text, settings), copied to each caller (a progressive lens keeps its complete summaries in
  a small process-wide table of its own, also copied to each caller, because it draws while it computes).
"""
from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from typing import Callable

import streamlit as st
import torch

from interp import decompose
from interp.figures import explore as fx
from interp.figures import head as fh
from interp.loader import LoadedModel, load_model
from interp.trace import Trace, trace_text
from ui.session import lang, tr

# One intra-op thread per analysis: the server runs one script thread per browser session, so parallelism comes
# from sessions; and when the cores are busy, torch's multi-threaded kernels spin-wait for each other (measured
# here: a 128-token MiniLM pass plus the identity checks took 3.4 s with 2 threads on 2 busy cores, 0.13 s with
# 1). EXPERTLENS_TORCH_THREADS overrides it.
torch.set_num_threads(max(1, int(os.environ.get("EXPERTLENS_TORCH_THREADS", "1"))))


@st.cache_resource(show_spinner=False, max_entries=8)
def get_model(name: str) -> LoadedModel:
    """The shared, read-only model for a registry name or folder (raises ``ModelLoadError``)."""
    return load_model(name)


@st.cache_resource(show_spinner=False, max_entries=32)
def get_trace(model: str, text: str) -> Trace:
    """The shared, read-only forward pass of ``text`` (raises ``InputError``)."""
    return trace_text(get_model(model), text)


@st.cache_data(show_spinner=False, max_entries=64)
def overview(model: str, text: str) -> decompose.Overview:
    """Every head decomposed (identity checks apart, see :func:`identity_checks`)."""
    return decompose.overview(get_model(model), get_trace(model, text), with_checks=False)


@st.cache_data(show_spinner=False, max_entries=64)
def identity_checks(model: str, text: str) -> dict:
    """The exactness of identities 1 and 2 on this input (max relative errors against the model's own pass)."""
    return decompose.identity_checks(get_model(model), get_trace(model, text))


@st.cache_data(show_spinner=False, max_entries=128)
def head(model: str, text: str, layer: int, head_: int) -> decompose.HeadView:
    return decompose.head_view(get_model(model), get_trace(model, text), layer, head_)


@st.cache_data(show_spinner=False, max_entries=64)
def predictions(model: str, text: str, top: int = 5):
    lm = get_model(model)
    return fx.mask_predictions(get_trace(model, text), lm.tokenizer, top, lang())


@st.cache_data(show_spinner=False, max_entries=128)
def _lens_summary(model: str, text: str, layer: int, head_: int, query: int, name: str, lang_: str) -> fh.LensSummary:
    from interp.lenses import LENSES
    lm, trace = get_model(model), get_trace(model, text)
    return fh.lens_summary(LENSES[name](lm, trace, layer, head_, query), trace.tokens, lm.tokenizer, lang=lang_)


_PROGRESSIVE: "OrderedDict[tuple, fh.LensSummary]" = OrderedDict()
_PROGRESSIVE_LOCK = threading.Lock()
_PROGRESSIVE_MAX = 128


def lens(model: str, text: str, layer: int, head_: int, query: int, name: str,
         on_partial: Callable[[fh.LensSummary, int, int], None] | None = None) -> fh.LensSummary:
    """A lens's compact summary (the n × V expert outputs never leave the server), cached per (model, text,
    layer, head, query, lens, language).

    A progressive lens (the counterfactual: n re-runs of the rest of the network) computes its experts batch by
    batch, largest gates first; after each batch ``on_partial(summary of the experts done so far, done, n)`` is
    called, so the page shows the strongest experts while the rest are computed. The returned summary is the
    one of the complete computation (the same call as without ``on_partial``), and is cached as well."""
    from interp.lenses import LENS_INFO, LENSES
    lang_ = lang()
    if on_partial is None or not LENS_INFO[name].progressive:
        return _lens_summary(model, text, layer, head_, query, name, lang_)
    key = (model, text, layer, head_, query, name, lang_)
    with _PROGRESSIVE_LOCK:
        hit = _PROGRESSIVE.get(key)
        if hit is not None:
            _PROGRESSIVE.move_to_end(key)
            return copy.deepcopy(hit)
    lm, trace = get_model(model), get_trace(model, text)
    info = LENS_INFO[name]
    gates = trace.layers[layer].probs[head_, query]
    model_output = trace.output[query] if trace.has_mlm_head else trace.output
    kind = "mlm-logits" if lm.has_mlm_head else "pooled-embedding"
    done_pos: list[int] = []
    done_out: list[torch.Tensor] = []

    def on_batch(idx: list[int], out: torch.Tensor) -> None:
        done_pos.extend(idx)
        done_out.append(out)
        part = fh.partial_lens_summary(name, info.exactness, kind, layer, head_, query, list(done_pos),
                                       torch.cat(done_out), gates[done_pos], model_output, trace.tokens,
                                       lm.tokenizer, lang_)
        on_partial(part, len(done_pos), trace.n)

    res = LENSES[name](lm, trace, layer, head_, query, on_batch=on_batch)
    summary = fh.lens_summary(res, trace.tokens, lm.tokenizer, lang=lang_)
    with _PROGRESSIVE_LOCK:
        _PROGRESSIVE[key] = summary
        while len(_PROGRESSIVE) > _PROGRESSIVE_MAX:
            _PROGRESSIVE.popitem(last=False)
    return copy.deepcopy(summary)


@st.cache_data(show_spinner=False, max_entries=64)
def layer0(model: str, text: str, head_: int) -> dict:
    """Layer-0 CBOW split norms and gate-score split of one head, with their exactness errors."""
    lm, trace = get_model(model), get_trace(model, text)
    cbow = decompose.cbow_split(lm, trace, head_)
    try:
        gss = decompose.gate_score_split(lm, trace, head_)
    except decompose.SplitRefused as err:   # e.g. rotary or disentangled positions: the reason is shown
        return {"norms": cbow.norms(), "cbow_err": cbow.max_rel_err(), "refused": str(err)}
    return {"norms": cbow.norms(), "cbow_err": cbow.max_rel_err(), "parts": gss.parts, "total": gss.total,
            "score_err": gss.max_abs_err()}


@st.cache_data(show_spinner=False, max_entries=512)
def sampling_layer(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, layer: int):
    """The sampled-vs-dense report of one layer (all its heads), no downstream run."""
    from interp.sampling.report import sampling_report
    return sampling_report(get_model(model), get_trace(model, text), scheme, k, seeds, seed, layers=[layer],
                           downstream=False)


def sampling_all(model: str, text: str, scheme: str, k: int, seeds: int, seed: int):
    """The report for every layer, one cached layer at a time with a progress bar. Identical to one
    ``sampling_report`` call over all layers: each layer's draws come from the generator of (seed, example,
    layer, replicate) whatever else is computed."""
    import dataclasses

    import numpy as np
    trace = get_trace(model, text)
    L = trace.n_layers
    bar = st.progress(0.0, text=tr("samp.progress", done=0, total=L))
    parts = []
    for l in range(L):
        parts.append(sampling_layer(model, text, scheme, k, seeds, seed, l))
        bar.progress((l + 1) / L, text=tr("samp.progress", done=l + 1, total=L))
    bar.empty()
    per_query = {name: np.concatenate([p.per_query[name] for p in parts]) for name in parts[0].per_query}
    return dataclasses.replace(parts[0], layers=[l for p in parts for l in p.layers],
                               heads=[r for p in parts for r in p.heads], per_query=per_query)


@st.cache_data(show_spinner=False, max_entries=128)
def downstream(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, where: str, layer: int,
               head_: int):
    """The scheme substituted into this head / this layer / all layers, the model re-run for every seed."""
    from interp.sampling import downstream_effect
    from interp.trace import encode
    lm = get_model(model)
    layers = None if where == "all" else [layer]
    heads = [head_] if where == "head" else None
    return downstream_effect(lm, encode(lm, [text]), scheme, k, seeds, seed, None, layers, heads)


@st.cache_data(show_spinner=False, max_entries=256)
def sampled_rows(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, layer: int, head_: int,
                 query: int):
    """(dense row P_i·, sampled rows P̂_i· of every replicate: S × n) of one head and query, drawn exactly as
    the report draws them (same example key, generators and validity mask)."""
    from interp.sampling.report import draw_layer
    lm, trace = get_model(model), get_trace(model, text)
    dr = draw_layer(lm, trace, layer, scheme, k, seeds, seed)
    return dr.P[0, head_, query].cpu().numpy(), dr.est.weights[:, 0, head_, query].cpu().numpy()
