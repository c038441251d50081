"""The executive story: seven steps on one live example, every number computed by the library's own functions.

``build_story(lm, text)`` returns a :class:`Story` — a list of step dataclasses, each with its measured numbers
and the lines of its caption as (i18n key, values) pairs, so the same story is told in any language by the page,
the report and tests alike. UI-free (no Streamlit).

1. **prediction** — the model's top guesses at the first [MASK] (softmax of its own logits, from the trace);
2. **experts** — one head's gate row at that position; the head is the one that mixes a few other words most
   clearly (:func:`clearest_head`); top experts named by token;
3. **baseline** — the embedded attention model (``paper``) against the CBOW baseline (``cbow``): hide each word
   of this sentence in turn and count how many each recovers (top-1), beside the held-out top-1 read from
   ``models/metrics.json`` (the numbers of the model cards);
4. **sampling** — the scheme substituted into every head of every layer for S seeds
   (``interp.sampling.downstream_effect``): top-1 agreement and flip rate, the FLOPs ratio of the attention core
   and the attention core's share of a layer, n/(n + 6·d_model);
5. **noise** — read from the noise probe (``interp.noise``) when it is installed; otherwise "not measured yet";
6. **break** — the worst query of the error-concentration view (largest relative head-output error over all
   layers, heads and queries, ``interp.sampling.report``) with its head's worst-5% share; and, given a triage run
   folder, its most suspicious input;
7. **messages** — the three meeting messages, each with a status (supported / not supported / not measured)
   decided by the measured numbers against the thresholds below; never a fixed text.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import decompose
from .analysis import default_query, predictions
from .loader import MODELS_DIR, LoadedModel, ModelLoadError, load_model
from .trace import Trace, encode, forward, model_output, trace_text

# --- thresholds of the meeting messages (documented, one place) --------------------------------------------
FLIP_OK = 0.10          # message 1 holds when at most this share of compared positions flips in some seed
COSINE_OK = 0.99        # ... or, without an MLM head, when the worst cosine to the dense output is at least this
NOISE_MARGIN = 0.05     # message 2 holds when sampled flips under noise ≤ dense flips under noise + this margin
FRAGILE_RARE = 0.05     # message 3 holds when at most this share of triaged inputs is fragile (flip rate > 0)
NOISE_RATE = 0.1        # the noise rate shown when the probe measured several
MIXTURE_MAX = 0.8       # step 2 prefers a head whose strongest word has less than this gate
MIN_GATE = 0.05         # experts named in step 2 carry at least this gate (the top one is always named)

SUPPORTED, NOT_SUPPORTED, NOT_MEASURED = "supported", "not_supported", "not_measured"
PENDING = "pending"      # NoiseStep.message while the noise probe has not run yet (a deferred story)


@dataclass
class StorySettings:
    scheme: str = "A"
    k: int = 8
    seeds: int = 8
    seed: int = 0


@dataclass
class Line:
    """One sentence of a caption: an i18n key and the values it is formatted with."""
    key: str
    values: dict = field(default_factory=dict)


@dataclass
class Step:
    kind: str
    title_key: str
    lines: list[Line]

    def text(self, lang: str = "en") -> list[str]:
        from .i18n import t
        return [t(line.key, lang, **_localised(line.values, lang)) for line in self.lines]


def _localised(values: dict, lang: str) -> dict:
    """Values that are themselves (key, values) pairs (a list of named experts) are formatted in ``lang``."""
    from .i18n import EN, t
    out = {}
    for name, v in values.items():
        if isinstance(v, list) and v and all(isinstance(x, Line) for x in v):
            sep = "、" if lang == "ja" else ", "
            out[name] = sep.join(t(x.key, lang, **x.values) for x in v)
        elif name == "perturbation" and f"story.noise.{v}" in EN:     # a perturbation's name, when it has one
            out[name] = t(f"story.noise.{v}", lang)
        else:
            out[name] = v
    return out


@dataclass
class PredictionStep(Step):
    model: str
    has_mlm_head: bool
    tokens: list[str]
    position: int | None          # the [MASK] whose guesses are shown (None: no mask or no MLM head)
    top: list[tuple[str, float]]  # (token, probability), best first

    @property
    def confidence(self) -> float | None:
        return self.top[0][1] if self.top else None


@dataclass
class ExpertsStep(Step):
    layer: int
    head: int
    query: int
    tokens: list[str]
    special: list[bool]
    gates: np.ndarray             # the head's gate row a_query,· (n)
    experts: list[tuple[int, str, float]]   # (position, token, gate) of the top non-special experts
    effective_experts: float      # exp(H(a_query,·))


@dataclass
class BaselineStep(Step):
    available: bool
    positions: list[int] = field(default_factory=list)     # hidden words (non-special, known to the vocabulary)
    words: list[str] = field(default_factory=list)
    paper_hits: list[bool] = field(default_factory=list)
    cbow_hits: list[bool] = field(default_factory=list)
    heldout: dict = field(default_factory=dict)            # paper / cbow / baseline top-1, masked tokens

    @property
    def n_words(self) -> int:
        return len(self.positions)


@dataclass
class SamplingStep(Step):
    scheme: str
    k: int
    seeds: int
    seed: int
    has_mlm_head: bool
    n: int
    flip_rate: float
    top1_agreement: float
    cosine_mean: float
    cosine_min: float
    flops_ratio: float            # scheme FLOPs / dense FLOPs of one head's attention core at this length
    attention_share: float        # n / (n + 6·d_model): the attention core's share of a layer's FLOPs
    layer: int
    head: int
    query: int
    tokens: list[str]
    dense_row: np.ndarray         # P_query,· of the experts step's head
    sampled_rows: np.ndarray      # S × n sampled rows of that head and query


@dataclass
class NoiseStep(Step):
    measured: bool
    message: str | None = None
    perturbation: str | None = None
    rate: float | None = None
    dense_flip_rate: float | None = None
    sampled_flip_rate: float | None = None
    floor_flip_rate: float | None = None
    results: list[dict] = field(default_factory=list)


@dataclass
class BreakStep(Step):
    layer: int | None
    head: int | None
    query: int | None
    token: str | None
    error: float | None           # relative head-output error ‖ô−o‖/‖o‖ (mean over seeds) at the worst query
    worst5_share: float | None    # that head's share of squared error carried by its worst 5% of queries
    errors: np.ndarray | None     # the head's per-query errors (NaN where undefined)
    tokens: list[str]
    link: str | None              # the worst case on the sampled-vs-dense page
    triage: dict | None = None    # the most suspicious input of a triage run, its link, the fragile share


@dataclass
class Message:
    number: int
    status: str                   # supported / not_supported / not_measured
    line: Line


@dataclass
class MessagesStep(Step):
    messages: list[Message]


@dataclass
class Story:
    model: str
    text: str
    settings: StorySettings
    steps: list[Step]
    meta: dict

    def step(self, kind: str) -> Step:
        return next(s for s in self.steps if s.kind == kind)


# --- step 1 ---------------------------------------------------------------------------------------------------

def prediction_step(lm: LoadedModel, trace: Trace, top: int = 5) -> PredictionStep:
    preds = predictions(lm, trace, top)          # softmax of the model's own logits at each [MASK]
    if not lm.has_mlm_head:
        lines, position, best = [Line("story.s1.no_head", {"model": lm.name})], None, []
    elif not preds:
        lines, position, best = [Line("story.s1.no_mask")], None, []
    else:
        position = preds[0]["position"]
        best = [(p["token"], float(p["prob"])) for p in preds[0]["top"]]
        lines = [Line("story.s1.pred", {"token": best[0][0], "prob": best[0][1]})]
        if len(best) > 1:
            lines.append(Line("story.s1.others", {"others": ", ".join(f"{tok} ({p:.0%})" for tok, p in best[1:4])}))
    return PredictionStep("prediction", "story.s1.title", lines, lm.name, lm.has_mlm_head, list(trace.tokens),
                          position, best)


# --- step 2 ---------------------------------------------------------------------------------------------------

def clearest_head(trace: Trace, query: int, top: int = 3) -> tuple[int, int]:
    """The head that best shows "a mixture of experts" at ``query``: the largest gate mass on its ``top`` strongest
    other non-special words, among heads whose strongest such word has less than :data:`MIXTURE_MAX` of the gate
    (a genuine mixture, not a one-word pointer); when no head qualifies, the largest such mass overall. Ties: the
    first in layer-major order; (0, 0) when the input has no other non-special token."""
    special = trace.special.bool()
    others = ~special.clone()
    others[query] = False
    if not bool(others.any()):
        return 0, 0
    rows = torch.stack([lt.probs[:, query, :][:, others].to(torch.float32) for lt in trace.layers])  # L×H×m
    best = rows.topk(min(top, rows.shape[-1]), dim=-1).values
    mass, first = best.sum(-1), best[..., 0]
    mixed = torch.where(first < MIXTURE_MAX, mass, torch.full_like(mass, -1.0))
    score = mixed if bool((mixed >= 0).any()) else mass
    flat = int(torch.argmax(score.flatten()))                         # first maximum: layer-major order
    return flat // trace.n_heads, flat % trace.n_heads


def experts_step(lm: LoadedModel, trace: Trace, query: int, layer: int | None = None, head: int | None = None,
                 top: int = 3) -> ExpertsStep:
    if layer is None or head is None:
        layer, head = clearest_head(trace, query)
    hv = decompose.head_view(lm, trace, layer, head)
    special = [bool(s) for s in trace.special.tolist()]
    ranked = [(j, tok, g) for j, tok, g, _ in hv.top_experts(query, trace.n) if not special[j]]
    experts = [x for x in ranked[:top] if x[2] >= MIN_GATE] or ranked[:1]   # name only experts that matter
    eff = float(hv.effective_experts[query])
    items = [Line("story.s2.item", {"token": tok, "gate": g}) for _, tok, g in experts]
    lines = [Line("story.s2.lead", {"query": trace.tokens[query], "layer": layer, "head": head, "experts": items}),
             Line("story.s2.eff", {"eff": eff, "n": trace.n})]
    return ExpertsStep("experts", "story.s2.title", lines, layer, head, query, list(trace.tokens), special,
                       np.asarray(hv.gates[query], dtype=np.float32), experts, eff)


# --- step 3 ---------------------------------------------------------------------------------------------------

@dataclass
class Recovery:
    positions: list[int]
    words: list[str]
    hits: list[bool]


def masked_recovery(lm: LoadedModel, text: str) -> Recovery:
    """Hide each real word piece of ``text`` in turn (one [MASK] at a time, every other token as typed) and
    check whether the model's top-1 at that position is the hidden piece. Special tokens, the text's own
    [MASK]s and pieces the vocabulary maps to [UNK] are not hidden. One batched forward pass."""
    from .sampling.downstream import replicate
    enc = encode(lm, [text])
    tok = lm.tokenizer
    n = int(enc.attention_mask[0].sum())
    ids = enc.input_ids[0, :n]
    skip = {tok.mask_token_id, getattr(tok, "unk_token_id", None)}
    positions = [i for i in range(n) if not bool(enc.special[0, i]) and int(ids[i]) not in skip]
    if not positions:
        return Recovery([], [], [])
    batch = replicate(enc, len(positions))
    rows = torch.arange(len(positions))
    cols = torch.tensor(positions)
    batch.input_ids = batch.input_ids.clone()
    batch.input_ids[rows, cols] = tok.mask_token_id
    logits = model_output(lm, forward(lm, batch), batch)                # B × n × V
    guess = logits[rows, cols].argmax(-1).cpu()
    hits = (guess == ids[cols]).tolist()
    return Recovery(positions, tok.convert_ids_to_tokens(ids[cols].tolist()), [bool(h) for h in hits])


def heldout_metrics(path: Path | None = None) -> dict:
    """Held-out masked-token top-1 of the embedded ``paper`` and ``cbow`` models (their shipped seeds) and of
    the most-frequent-token baseline, from the training run's ``models/metrics.json`` (the model cards' numbers)."""
    data = json.loads(Path(path or MODELS_DIR / "metrics.json").read_text(encoding="utf-8"))

    def shipped(name: str) -> float:
        m = data["models"][name]
        return float(next(r["top1"] for r in m["runs"] if r["seed"] == m["shipped_seed"]))
    return {"paper": shipped("paper"), "cbow": shipped("cbow"), "baseline": float(data["baseline"]["top1"]),
            "tokens": int(data["eval"]["masked_tokens"])}


def baseline_step(text: str, load: Callable[[str], LoadedModel] = load_model,
                  metrics_path: Path | None = None) -> BaselineStep:
    try:
        paper, cbow = load("paper"), load("cbow")
        held = heldout_metrics(metrics_path)
    except (ModelLoadError, OSError, KeyError, ValueError, StopIteration):
        return BaselineStep("baseline", "story.s3.title", [Line("story.s3.unavailable")], False)
    rp, rc = masked_recovery(paper, text), masked_recovery(cbow, text)
    if rp.positions != rc.positions:       # the two share one tokenizer; anything else is not comparable
        raise ValueError("the paper and cbow models tokenise this text differently")
    lines = [Line("story.s3.lead")]
    if rp.positions:
        lines.append(Line("story.s3.here", {"paper_hits": sum(rp.hits), "cbow_hits": sum(rc.hits),
                                            "n": len(rp.positions)}))
    else:
        lines.append(Line("story.s3.no_words"))
    lines.append(Line("story.s3.heldout", dict(held)))
    return BaselineStep("baseline", "story.s3.title", lines, True, rp.positions, rp.words, rp.hits, rc.hits, held)


# --- step 4 ---------------------------------------------------------------------------------------------------

def flops_ratio(scheme: str, n: int, d_head: int, k: int) -> float:
    """FLOPs of one head's attention core under ``scheme`` over dense, at n queries and n valid keys."""
    from .sampling.schemes import check_params, dense_flops, scheme_flops
    h, m = check_params(scheme, k)
    return scheme_flops(scheme, n, n, d_head, k, h, m) / dense_flops(n, n, d_head)


def attention_share(n: int, d_model: int) -> float:
    """The attention core's share of a BERT layer's FLOPs, n/(n + 6·d_model) (SAMPLING.md, Amdahl)."""
    return n / (n + 6 * d_model)


def sampling_step(lm: LoadedModel, trace: Trace, text: str, settings: StorySettings, layer: int, head: int,
                  query: int) -> SamplingStep:
    from .sampling import downstream_effect
    from .sampling.report import draw_layer
    s = settings
    eff = downstream_effect(lm, encode(lm, [text]), s.scheme, s.k, s.seeds, s.seed)     # every head, every layer
    d_head = int(trace.layers[0].q.shape[-1])
    d_model = int(trace.layers[0].hidden_in.shape[-1])
    ratio = flops_ratio(s.scheme, trace.n, d_head, s.k)
    share = attention_share(trace.n, d_model)
    dr = draw_layer(lm, trace, layer, s.scheme, s.k, s.seeds, s.seed)
    dense_row = dr.P[0, head, query].cpu().numpy()
    sampled = dr.est.weights[:, 0, head, query].cpu().numpy()
    flip, agree = float(eff.flip_rate[0]), float(eff.top1_agreement[0])
    cmean, cmin = float(eff.cosine_mean[0]), float(eff.cosine_min[0])
    lines = [Line("story.s4.lead", {"scheme": s.scheme, "k": s.k})]
    if lm.has_mlm_head:
        lines.append(Line("story.s4.same", {"seeds": s.seeds, "agree": agree, "flip": flip}))
    else:
        lines.append(Line("story.s4.cosine", {"seeds": s.seeds, "mean": cmean, "min": cmin}))
    lines.append(Line("story.s4.flops", {"ratio": ratio, "n": trace.n}))
    return SamplingStep("sampling", "story.s4.title", lines, s.scheme, s.k, s.seeds, s.seed, lm.has_mlm_head,
                        trace.n, flip, agree, cmean, cmin, ratio, share, layer, head, query, list(trace.tokens),
                        dense_row, sampled)


# --- step 5 ---------------------------------------------------------------------------------------------------

_ABSENT = object()


NOISE_PERTURBATIONS = ("typo", "word-drop")   # "typos and dropped words"
NOISE_SEEDS = 4


def _noise_module():
    try:
        from . import noise  # type: ignore[attr-defined]
    except ImportError:
        return None
    return noise


def _as_dict(result: Any) -> dict:
    if isinstance(result, dict):
        return result
    if hasattr(result, "to_json"):
        return result.to_json()
    return asdict(result)


def _run_probe(mod: Any, lm: LoadedModel, text: str, s: StorySettings) -> dict:
    """The probe's JSON for this text: through ``interp.noise.probe`` (``NoiseSettings`` + ``probe`` → a
    summary with ``to_json``) when present, else a ``probe_text(lm, text, schemes=…, k=…, seeds=…, seed=…)``
    function of the module returning that JSON."""
    import importlib
    import types
    sub = getattr(mod, "probe", None)
    if not isinstance(sub, types.ModuleType) and getattr(mod, "__name__", None):
        try:
            sub = importlib.import_module(f"{mod.__name__}.probe")
        except ImportError:
            sub = None
    if isinstance(sub, types.ModuleType) and hasattr(sub, "NoiseSettings") and hasattr(sub, "probe"):
        settings = sub.NoiseSettings(perturbations=NOISE_PERTURBATIONS, rates=(0.0, NOISE_RATE),
                                     schemes=(s.scheme,), ks=(s.k,), noise_seeds=NOISE_SEEDS, seeds=s.seeds,
                                     seed=s.seed)
        out = sub.probe(lm, text, settings)
        return _as_dict(out[-1] if isinstance(out, tuple) else out)
    fn = getattr(mod, "probe_text", None)
    if fn is None:
        raise AttributeError("interp.noise offers neither probe.probe nor probe_text")
    return _as_dict(fn(lm, text, schemes=[s.scheme], k=s.k, seeds=s.seeds, seed=s.seed))


def _floor(data: dict, row: dict, s: StorySettings) -> float:
    if row.get("floor_flip_rate") is not None:
        return float(row["floor_flip_rate"])
    floor = data["floor_flip_rate"]
    if isinstance(floor, dict):                   # {scheme: {k: rate}}
        floor = floor[s.scheme][str(s.k)]
    return float(floor)


def noise_step(lm: LoadedModel, text: str, settings: StorySettings, module: Any = _ABSENT) -> NoiseStep:
    """The noise probe's answer for this text and scheme, read through its documented JSON fields
    (``floor_flip_rate``; ``results`` rows with ``perturbation``, ``rate``, ``scheme``, ``dense_flip_rate``,
    ``sampled_flip_rate``). Of the noisy rows (rate closest to :data:`NOISE_RATE`) the one least favourable to
    sampling (largest sampled − dense flip rate) is shown. Without the probe, or when it cannot measure this
    text, the step says so."""
    mod = _noise_module() if module is _ABSENT else module
    title = "story.s5.title"
    if mod is None:
        return NoiseStep("noise", title, [Line("story.s5.lead"), Line("story.s5.not_measured")], False)
    s = settings
    try:
        data = _run_probe(mod, lm, text, s)
        rows = [r for r in data["results"] if r.get("scheme") == s.scheme and float(r.get("rate") or 0) > 0
                and int(r.get("k", s.k)) == s.k and r.get("dense_flip_rate") is not None
                and r.get("sampled_flip_rate") is not None]
        if not rows:
            raise ValueError(f"no noisy flip rate for scheme {s.scheme} (an MLM head is needed)")
        rate = min({float(r["rate"]) for r in rows}, key=lambda x: (abs(x - NOISE_RATE), x))
        row = max((r for r in rows if float(r["rate"]) == rate),
                  key=lambda r: float(r["sampled_flip_rate"]) - float(r["dense_flip_rate"]))
        floor = _floor(data, row, s)
        dense, sampled = float(row["dense_flip_rate"]), float(row["sampled_flip_rate"])
    except Exception as err:  # the probe is another module: any failure is reported, never hidden
        message = f"{type(err).__name__}: {err}"
        return NoiseStep("noise", title, [Line("story.s5.lead"), Line("story.s5.failed", {"message": message})],
                         False, message)
    values = {"perturbation": str(row["perturbation"]), "rate": rate, "dense": dense, "sampled": sampled,
              "floor": floor}
    return NoiseStep("noise", title, [Line("story.s5.lead"), Line("story.s5.result", values)], True, None,
                     values["perturbation"], rate, dense, sampled, floor, list(data["results"]))


# --- step 6 ---------------------------------------------------------------------------------------------------

def latest_triage_run(root: Path | None = None) -> Path | None:
    """The most recently finished triage run folder (one with ``results.parquet``) under the triage cache."""
    if root is None:
        from .triage.workspace import cache_root
        root = cache_root() / "runs"
    if not Path(root).is_dir():
        return None
    done = [p for p in Path(root).iterdir() if (p / "results.parquet").is_file()]
    return max(done, key=lambda p: (p / "results.parquet").stat().st_mtime) if done else None


def triage_worst(run: Path, base: str = "Sampling") -> dict | None:
    """The most suspicious analysed input of a triage run, its link, and the share of fragile inputs (flip rate
    above 0: sampling changes the dense top-1 in some seed) among those where the flip rate applies."""
    from .triage import ResultsQuery, row_url
    q = ResultsQuery(run)
    try:
        top = q.top(1)
        fragile, measured = q.con.execute(f"SELECT count(*) FILTER (WHERE flip_rate > 0), count(flip_rate) "
                                          f"FROM {q.src} WHERE status = 'analysed'").fetchone()
        analysed = q.count()
    finally:
        q.close()
    if top.empty:
        return None
    row = {k: (None if (isinstance(v, float) and math.isnan(v)) else v) for k, v in top.iloc[0].to_dict().items()}
    summary_path = Path(run) / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    st = summary.get("settings", {})
    model = summary.get("model", "")
    link = row_url(row, model, st.get("scheme", "A"), st.get("k", 8), st.get("seed", 0), base=base)
    return {"run": str(run), "model": model, "text": row.get("text"), "suspicion": row.get("suspicion"),
            "flip_rate": row.get("flip_rate"), "rank": row.get("rank"), "link": link, "analysed": int(analysed),
            "fragile": int(fragile), "measured": int(measured),
            "fragile_share": (fragile / measured) if measured else None}


def break_step(lm: LoadedModel, trace: Trace, settings: StorySettings, model: str, text: str,
               triage_run: Path | None = None, base: str = "Sampling") -> BreakStep:
    from .figures.sampling import concentration_stats
    from .sampling.report import sampling_report
    from .triage.links import explorer_url
    s = settings
    rep = sampling_report(lm, trace, s.scheme, s.k, s.seeds, s.seed, downstream=False)
    err = np.asarray(rep.per_query["rel_err"], dtype=np.float64)          # layers × heads × n
    lines: list[Line] = []
    if np.all(np.isnan(err)) or np.nanmax(err) <= 0:
        layer = head = query = None
        token, worst, share, errors, link = None, None, None, None, None
        lines.append(Line("story.s6.none"))
    else:
        flat = int(np.nanargmax(err))
        li, head, query = np.unravel_index(flat, err.shape)
        layer, head, query = int(rep.layers[li]), int(head), int(query)
        errors = err[li, head]
        worst = float(err[li, head, query])
        share = concentration_stats(errors)["worst5_share"]
        token = trace.tokens[query]
        link = explorer_url(model, text, layer, head, query, s.scheme, s.k, s.seed, base=base)
        lines.append(Line("story.s6.worst", {"token": token, "layer": layer, "head": head, "err": worst,
                                             "share": share}))
    tri = triage_worst(triage_run, base) if triage_run is not None else None
    if tri is not None:
        text_short = (tri["text"] or "")[:80] + ("…" if len(tri["text"] or "") > 80 else "")
        lines.append(Line("story.s6.triage", {"analysed": tri["analysed"], "text": text_short,
                                              "suspicion": float(tri["suspicion"] or 0.0),
                                              "flip": float(tri["flip_rate"] or 0.0)}))
    return BreakStep("break", "story.s6.title", lines, layer, head, query, token, worst, share, errors,
                     list(trace.tokens), link, tri)


# --- step 7 ---------------------------------------------------------------------------------------------------

def messages_step(sampling: SamplingStep, noise: NoiseStep, brk: BreakStep) -> MessagesStep:
    """The three meeting messages, each worded by what the measured numbers support."""
    sp = sampling
    base = {"ratio": sp.flops_ratio, "share": sp.attention_share, "scheme": sp.scheme, "n": sp.n}
    if sp.flops_ratio >= 1.0:
        m1 = Message(1, NOT_SUPPORTED, Line("story.m1.no_saving", base))
    elif sp.has_mlm_head:
        if sp.flip_rate <= FLIP_OK:
            m1 = Message(1, SUPPORTED, Line("story.m1.supported", {**base, "agree": sp.top1_agreement}))
        else:
            m1 = Message(1, NOT_SUPPORTED, Line("story.m1.flips", {**base, "flip": sp.flip_rate}))
    elif sp.cosine_min >= COSINE_OK:
        m1 = Message(1, SUPPORTED, Line("story.m1.supported_pooled", {**base, "min": sp.cosine_min}))
    else:
        m1 = Message(1, NOT_SUPPORTED, Line("story.m1.drift", {**base, "min": sp.cosine_min}))

    if noise.measured:
        vals = {"perturbation": noise.perturbation, "sampled": noise.sampled_flip_rate,
                "dense": noise.dense_flip_rate}
        ok = noise.sampled_flip_rate <= noise.dense_flip_rate + NOISE_MARGIN
        m2 = Message(2, SUPPORTED if ok else NOT_SUPPORTED,
                     Line("story.m2.supported" if ok else "story.m2.not_supported", vals))
    else:
        clean = sp.flip_rate if sp.has_mlm_head and not math.isnan(sp.flip_rate) else 0.0
        m2 = Message(2, NOT_MEASURED, Line("story.m2.not_measured", {"flip": clean}))

    tri = brk.triage
    if tri is not None and tri.get("fragile_share") is not None:
        vals = {"fragile": tri["fragile_share"], "analysed": tri["measured"]}
        ok = tri["fragile_share"] <= FRAGILE_RARE
        m3 = Message(3, SUPPORTED if ok else NOT_SUPPORTED,
                     Line("story.m3.supported" if ok else "story.m3.not_supported", vals))
    else:
        m3 = Message(3, NOT_MEASURED, Line("story.m3.not_measured"))
    msgs = [m1, m2, m3]
    return MessagesStep("messages", "story.s7.title", [Line("story.s7.lead")] + [m.line for m in msgs], msgs)


# --- the whole story ------------------------------------------------------------------------------------------

def versions() -> dict:
    import plotly
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__, "plotly": plotly.__version__}


def build_story(lm: LoadedModel, text: str, settings: StorySettings | None = None, *, model: str | None = None,
                trace: Trace | None = None, load: Callable[[str], LoadedModel] = load_model,
                triage_run: Path | None = None, noise_module: Any = _ABSENT, base: str = "Sampling",
                defer_noise: bool = False) -> Story:
    """The seven steps for (``lm``, ``text``). ``model`` is the name used in links (default ``lm.name``);
    ``load`` loads the embedded baseline models (pass a cached loader); ``triage_run`` is a finished triage run
    folder (see :func:`latest_triage_run`); ``noise_module`` overrides the optional ``interp.noise`` import
    (None: absent). With ``defer_noise`` the noise probe (the slowest step) is not run: step 5 is
    :func:`pending_noise_step` and step 7 treats message 2 as not measured, until :func:`with_noise` completes
    the story. Raises ``InputError`` on a bad text and ``ValueError`` on bad settings."""
    s = settings or StorySettings()
    from .sampling.schemes import check_params
    check_params(s.scheme, s.k)
    if not isinstance(s.seeds, int) or s.seeds <= 0:
        raise ValueError(f"seeds must be a positive integer, not {s.seeds!r}")
    model = model or lm.name
    trace = trace if trace is not None else trace_text(lm, text)
    query = default_query(lm, trace)
    p = prediction_step(lm, trace)
    e = experts_step(lm, trace, query)
    b = baseline_step(text, load)
    sp = sampling_step(lm, trace, text, s, e.layer, e.head, query)
    nz = pending_noise_step() if defer_noise else noise_step(lm, text, s, noise_module)
    br = break_step(lm, trace, s, model, text, triage_run, base)
    ms = messages_step(sp, nz, br)
    meta = {"model": model, "model_info": lm.describe(), "text": text, "settings": asdict(s), "seed": s.seed,
            "versions": versions(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "triage_run": None if triage_run is None else str(triage_run), "noise_pending": defer_noise}
    return Story(model, text, s, [p, e, b, sp, nz, br, ms], meta)


def pending_noise_step() -> NoiseStep:
    """Step 5 before the noise probe has run (a story built with ``defer_noise``)."""
    return NoiseStep("noise", "story.s5.title", [Line("story.s5.lead"), Line("story.s5.pending")], False,
                     PENDING)


def noise_pending(story: Story) -> bool:
    """True while step 5 of ``story`` waits for the noise probe (see :func:`with_noise`)."""
    return story.step("noise").message == PENDING


def with_noise(story: Story, noise: NoiseStep) -> Story:
    """``story`` with its noise step replaced by ``noise`` and the meeting messages decided again; the other
    steps are shared, not recomputed. The result equals ``build_story`` without ``defer_noise``."""
    steps = list(story.steps)
    kinds = [s.kind for s in steps]
    steps[kinds.index("noise")] = noise
    ms = messages_step(steps[kinds.index("sampling")], noise, steps[kinds.index("break")])
    steps[kinds.index("messages")] = ms
    return Story(story.model, story.text, story.settings, steps, {**story.meta, "noise_pending": False})
