"""One text → one JSON-ready analysis (what ``python -m interp analyze`` writes and the UI exports)."""
from __future__ import annotations

import math

import torch

from . import decompose as D
from .captions import head_caption
from .lenses import LENSES
from .loader import LoadedModel, ModelLoadError, default_model, load_model
from .trace import InputError, Trace, trace_text


class AnalysisError(ValueError):
    """Bad model, text or head selection: one line for the user."""


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def predictions(lm: LoadedModel, trace: Trace, k: int = 5) -> list[dict]:
    """Top-k masked-token predictions at every [MASK] (only for models with an MLM head)."""
    if not lm.has_mlm_head:
        return []
    out = []
    for i in trace.mask_positions(lm.tokenizer.mask_token_id):
        p = torch.softmax(trace.output[i].double(), -1)
        val, idx = torch.topk(p, k)
        out.append({"position": i, "top": [{"token": t, "prob": float(v)} for t, v in
                                             zip(lm.tokenizer.convert_ids_to_tokens(idx.tolist()), val.tolist())]})
    return out


def default_query(lm: LoadedModel, trace: Trace) -> int:
    masks = trace.mask_positions(getattr(lm.tokenizer, "mask_token_id", None))
    if masks:
        return masks[0]
    real = [i for i, s in enumerate(trace.special.tolist()) if not s]
    return real[0] if real else 0


def analyze(model: str | None, text: str, layer: int | None = None, head: int | None = None,
            query: int | None = None, lenses: list[str] | None = None, device: str | None = None,
            lm: LoadedModel | None = None) -> dict:
    try:
        lm = lm or load_model(model or default_model(), device=device)
        trace = trace_text(lm, text)
    except (ModelLoadError, InputError) as err:
        raise AnalysisError(str(err)) from err
    ov = D.overview(lm, trace)
    heads = []
    for l in range(trace.n_layers):
        for h in range(trace.n_heads):
            heads.append({"layer": l, "head": h, "role": ov.role[l][h],
                          "effective_experts": [round(float(x), 6) for x in ov.effective_experts[l, h]],
                          "effective_experts_mean": float(ov.mean_effective_experts[l, h]),
                          "special_mass_mean": float(ov.mean_special_mass[l, h]),
                          "top_expert": [int(x) for x in ov.top_expert[l, h]]})
    checks = {k: _num(v) for k, v in ov.checks.items()}
    checks["lens_reconstruction_max_abs_err"] = None
    result = {"tokens": trace.tokens, "special": [bool(s) for s in trace.special.tolist()],
              "model": lm.describe(), "notes": trace.notes,
              "truncation": None if trace.truncation is None else vars(trace.truncation),
              "predictions": predictions(lm, trace), "checks": checks, "heads": heads}
    if layer is not None and head is not None:
        try:
            q = default_query(lm, trace) if query is None else query
            D.check_head(trace, layer, head, q)
        except ValueError as err:
            raise AnalysisError(str(err)) from err
        unknown = [x for x in (lenses or []) if x not in LENSES]
        if unknown:
            raise AnalysisError(f"unknown lens {unknown[0]!r}: choose from {', '.join(LENSES)}")
        hv = D.head_view(lm, trace, layer, head)
        view = {"layer": layer, "head": head, "query": q, "role": hv.role, "caption": head_caption(hv, q),
                "top_experts": [{"position": j, "token": t, "gate": g, "firing": f}
                                for j, t, g, f in hv.top_experts(q, 5)],
                "message_norms": [float(x) for x in hv.message_norms],
                "effective_experts": float(hv.effective_experts[q]), "lenses": {}}
        if layer == 0:
            cs = D.cbow_split(lm, trace, head)
            view["cbow_split"] = {"norms": {k: [float(x) for x in v] for k, v in cs.norms().items()},
                                  "max_rel_err": cs.max_rel_err(), "note": lm.adapter.layer0_note}
            try:
                gs = D.gate_score_split(lm, trace, head)
                view["gate_score_split"] = {"query_row": {k: [float(x) for x in v[q]] for k, v in gs.parts.items()},
                                            "max_abs_err": gs.max_abs_err()}
            except D.SplitRefused as err:
                view["gate_score_split"] = {"refused": str(err)}
        for name in lenses or []:
            r = LENSES[name](lm, trace, layer, head, q)
            s = r.summary()
            s["mixture_max_abs_err"] = _num(s["mixture_max_abs_err"])
            s["mixture_max_rel_err"] = _num(s["mixture_max_rel_err"])
            s["pool_kl"] = _num(s["pool_kl"])
            if r.output_kind == "mlm-logits":
                s["experts"] = [{"position": j, "top": [{"token": t, "prob": p} for t, p in
                                                        r.top_tokens(lm.tokenizer, j, 3)]}
                                for j, *_ in hv.top_experts(q, 5)]
            else:
                cos = r.cosine_to_output()
                s["experts"] = [{"position": j, "cosine_to_output": float(cos[j])} for j, *_ in hv.top_experts(q, 5)]
            view["lenses"][name] = s
            if name == "anchored":
                checks["lens_reconstruction_max_abs_err"] = s["mixture_max_abs_err"]
        result["head_view"] = view
    return result
