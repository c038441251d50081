"""The executive story's numbers, each pinned to a direct computation: the model's own forward pass, the sampling
library called directly, closed-form FLOPs, the training run's metrics and the model cards. Uses the embedded
one-layer ``paper`` model (fast), a tiny random BERT for head choice, and one without an MLM head."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from interp import story as S
from interp.figures import story as FS
from interp.loader import MODELS_DIR, load_model
from interp.sampling import downstream_effect
from interp.sampling.report import draw_layer, sampling_report
from interp.sampling.schemes import dense_flops, scheme_flops
from interp.trace import encode, trace_text

TEXT = "She put the book on the [MASK] and left the room."
SETTINGS = S.StorySettings(scheme="A", k=4, seeds=4, seed=3)
RTOL = 1e-5


@pytest.fixture(scope="module")
def paper():
    return load_model("paper")


@pytest.fixture(scope="module")
def story(paper):
    return S.build_story(paper, TEXT, SETTINGS, noise_module=None)


def own_logits(lm, ids: torch.Tensor) -> torch.Tensor:
    """The model's own forward pass, no plan, no capture: logits of a batch of token ids (no padding)."""
    with torch.no_grad():
        return lm.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.to(torch.float32)


def ids_of(lm, text: str) -> torch.Tensor:
    return torch.tensor([lm.tokenizer(text)["input_ids"]])


def test_seven_steps_in_order_with_every_caption_in_both_languages(story):
    assert [s.kind for s in story.steps] == ["prediction", "experts", "baseline", "sampling", "noise", "break",
                                            "messages"]
    for step in story.steps:
        for lang in ("en", "ja"):
            lines = step.text(lang)
            assert lines and all(line and "{" not in line for line in lines)
    assert story.meta["settings"] == dataclasses.asdict(SETTINGS) and story.meta["seed"] == 3
    assert {"python", "torch", "transformers", "plotly"} <= set(story.meta["versions"])


def test_prediction_is_the_models_own_softmax(paper, story):
    step = story.step("prediction")
    ids = ids_of(paper, TEXT)
    pos = ids[0].tolist().index(paper.tokenizer.mask_token_id)
    p = torch.softmax(own_logits(paper, ids)[0, pos].double(), -1)
    val, idx = torch.topk(p, 5)
    assert step.position == pos
    assert [tok for tok, _ in step.top] == paper.tokenizer.convert_ids_to_tokens(idx.tolist())
    np.testing.assert_allclose([q for _, q in step.top], val.numpy(), rtol=RTOL)
    assert step.confidence == step.top[0][1]
    assert step.lines[0].values == {"token": step.top[0][0], "prob": step.top[0][1]}


def test_experts_are_the_heads_gates(paper, story):
    step = story.step("experts")
    trace = trace_text(paper, TEXT)
    row = trace.layers[step.layer].probs[step.head, step.query].double()
    np.testing.assert_allclose(step.gates, row.numpy(), rtol=RTOL, atol=1e-7)
    assert math.isclose(step.effective_experts, float(torch.exp(-(row * row.clamp_min(1e-30).log()).sum())),
                        rel_tol=1e-4)
    special = trace.special.tolist()
    order = [j for j in np.argsort(-row.numpy(), kind="stable") if not special[j]]
    assert [j for j, _, _ in step.experts] == order[:len(step.experts)]
    assert all(g >= S.MIN_GATE for _, _, g in step.experts[1:])
    for j, tok, g in step.experts:
        assert tok == trace.tokens[j] and math.isclose(g, float(row[j]), rel_tol=RTOL)


def test_clearest_head_is_the_brute_force_maximum(tiny_bert_dir):
    lm = load_model(tiny_bert_dir)
    trace = trace_text(lm, "the cat sat on the [MASK] near the river")
    q = trace.tokens.index("[MASK]")
    scores = {}
    for l, lt in enumerate(trace.layers):
        for h in range(trace.n_heads):
            gates = sorted((float(lt.probs[h, q, j]) for j in range(trace.n)
                            if j != q and not bool(trace.special[j])), reverse=True)
            scores[(l, h)] = (sum(gates[:3]), gates[0])
    mixed = {k: v[0] for k, v in scores.items() if v[1] < S.MIXTURE_MAX}
    pool = mixed or {k: v[0] for k, v in scores.items()}
    want = max(pool, key=lambda k: (pool[k], -k[0], -k[1]))
    assert S.clearest_head(trace, q) == want


def test_baseline_recovery_is_one_forward_pass_per_hidden_word(story):
    step = story.step("baseline")
    assert step.available and step.n_words >= 5
    for name, hits in (("paper", step.paper_hits), ("cbow", step.cbow_hits)):
        lm = load_model(name)
        ids = ids_of(lm, TEXT)
        expected = []
        for pos in step.positions:
            masked = ids.clone()
            masked[0, pos] = lm.tokenizer.mask_token_id
            expected.append(int(own_logits(lm, masked)[0, pos].argmax()) == int(ids[0, pos]))
        assert hits == expected, name
    mask_pos = ids_of(load_model("paper"), TEXT)[0].tolist().index(4)
    assert mask_pos not in step.positions                     # the text's own blank is never "hidden"
    here = next(l for l in step.lines if l.key == "story.s3.here").values
    assert here == {"paper_hits": sum(step.paper_hits), "cbow_hits": sum(step.cbow_hits), "n": step.n_words}


def _card_top1(name: str) -> float:
    text = (MODELS_DIR / name / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"\| `{name}` \(shipped seed \d+\) \| ([\d.]+)%", text)
    return float(m.group(1)) / 100


def test_heldout_figures_are_the_model_cards():
    held = S.heldout_metrics()
    data = json.loads((MODELS_DIR / "metrics.json").read_text())
    assert held["tokens"] == data["eval"]["masked_tokens"]
    assert held["baseline"] == data["baseline"]["top1"]
    for name in ("paper", "cbow"):
        assert abs(held[name] - _card_top1(name)) <= 0.0005 + 1e-12       # the card rounds to 0.1%
    assert held["paper"] > held["cbow"] > 0


def test_baseline_unavailable_without_the_models():
    def missing(name):
        from interp.loader import ModelLoadError
        raise ModelLoadError("missing", f"no {name}")
    step = S.baseline_step(TEXT, load=missing)
    assert not step.available and [l.key for l in step.lines] == ["story.s3.unavailable"]
    assert FS.baseline_figure(step) is None


def test_sampling_numbers_are_the_sampling_library(paper, story):
    step = story.step("sampling")
    s = SETTINGS
    eff = downstream_effect(paper, encode(paper, [TEXT]), s.scheme, s.k, s.seeds, s.seed)
    assert step.flip_rate == float(eff.flip_rate[0]) and step.top1_agreement == float(eff.top1_agreement[0])
    trace = trace_text(paper, TEXT)
    n, d = trace.n, trace.layers[0].q.shape[-1]
    assert step.n == n
    assert math.isclose(step.flops_ratio, 0.5 + s.k / (2 * n), rel_tol=1e-12)        # scheme A, closed form
    assert math.isclose(step.flops_ratio, scheme_flops("A", n, n, d, s.k, s.k, s.k) / dense_flops(n, n, d))
    d_model = trace.layers[0].hidden_in.shape[-1]
    from interp.figures.sampling import flops_table
    table = flops_table(["A"], scheme_flops, dense_flops, {}, n, n, d, d_model, s.k)
    assert math.isclose(step.attention_share, table.attrs["attention_share"])
    dr = draw_layer(paper, trace, step.layer, s.scheme, s.k, s.seeds, s.seed)
    np.testing.assert_allclose(step.dense_row, trace.layers[step.layer].probs[step.head, step.query].numpy(),
                               rtol=RTOL, atol=1e-7)
    np.testing.assert_array_equal(step.sampled_rows, dr.est.weights[:, 0, step.head, step.query].numpy())
    np.testing.assert_allclose(step.sampled_rows.sum(-1), 1.0, rtol=1e-5)
    # scheme A draws k keys: every sampled weight is a multiple of 1/k
    np.testing.assert_allclose(step.sampled_rows * s.k, np.round(step.sampled_rows * s.k), atol=1e-5)


def test_flip_rate_against_the_models_own_outputs_under_top_k_everywhere(paper):
    """Scheme C with k ≥ n keeps every key: sampled = dense, so nothing flips and the FLOPs ratio is ≥ 1."""
    n = trace_text(paper, TEXT).n
    st = S.sampling_step(paper, trace_text(paper, TEXT), TEXT, S.StorySettings("C", n, 2, 0), 0, 0, 1)
    assert st.flip_rate == 0.0 and st.top1_agreement == 1.0 and st.flops_ratio >= 1.0
    np.testing.assert_allclose(st.sampled_rows[0], st.dense_row, rtol=1e-6, atol=1e-7)


def test_noise_step_absent_fake_and_failing():
    lm = None
    absent = S.noise_step(lm, TEXT, SETTINGS, None)
    assert not absent.measured and absent.lines[-1].key == "story.s5.not_measured"
    calls = {}

    def probe_text(lm_, text, **kw):
        calls.update(kw)
        return {"floor_flip_rate": 0.05, "results": [
            {"perturbation": "typo", "rate": 0.0, "scheme": "A", "dense_flip_rate": 0.0, "sampled_flip_rate": 0.05},
            {"perturbation": "typo", "rate": 0.1, "scheme": "A", "dense_flip_rate": 0.2, "sampled_flip_rate": 0.22},
            {"perturbation": "typo", "rate": 0.3, "scheme": "A", "dense_flip_rate": 0.5, "sampled_flip_rate": 0.6},
            {"perturbation": "typo", "rate": 0.1, "scheme": "C", "dense_flip_rate": 0.2, "sampled_flip_rate": 0.9}]}
    got = S.noise_step(lm, TEXT, SETTINGS, types.SimpleNamespace(probe_text=probe_text))
    assert got.measured and (got.rate, got.dense_flip_rate, got.sampled_flip_rate, got.floor_flip_rate) == \
        (0.1, 0.2, 0.22, 0.05)
    assert calls == {"schemes": ["A"], "k": SETTINGS.k, "seeds": SETTINGS.seeds, "seed": SETTINGS.seed}
    # the probe-module form: NoiseSettings + probe(lm, text, settings) → (per-input, summary with to_json);
    # per-row floors, a floor map, and the row least favourable to sampling shown
    seen = {}

    class NoiseSettings:
        def __init__(self, **kw):
            seen.update(kw)

    class Summary:
        def to_json(self):
            return {"floor_flip_rate": {"A": {"4": 0.1}}, "results": [
                {"perturbation": "typo", "rate": 0.1, "scheme": "A", "k": 4, "dense_flip_rate": 0.3,
                 "sampled_flip_rate": 0.3, "floor_flip_rate": None},
                {"perturbation": "word-drop", "rate": 0.1, "scheme": "A", "k": 4, "dense_flip_rate": 0.2,
                 "sampled_flip_rate": 0.5, "floor_flip_rate": None},
                {"perturbation": "word-drop", "rate": 0.1, "scheme": "A", "k": 8, "dense_flip_rate": 0.0,
                 "sampled_flip_rate": 0.9, "floor_flip_rate": None}]}
    sub = types.ModuleType("fake_noise_probe")
    sub.NoiseSettings, sub.probe = NoiseSettings, lambda lm_, text, st: (None, Summary())
    got = S.noise_step(lm, TEXT, SETTINGS, types.SimpleNamespace(probe=sub))
    assert (got.perturbation, got.dense_flip_rate, got.sampled_flip_rate, got.floor_flip_rate) == \
        ("word-drop", 0.2, 0.5, 0.1)
    assert "dropped words" in got.text("en")[1] and "単語の脱落" in got.text("ja")[1]
    assert seen["schemes"] == ("A",) and seen["ks"] == (4,) and seen["perturbations"] == S.NOISE_PERTURBATIONS
    broken = S.noise_step(lm, TEXT, SETTINGS, types.SimpleNamespace(probe_text=lambda *a, **k: {"results": []}))
    assert not broken.measured and broken.lines[-1].key == "story.s5.failed" and "ValueError" in broken.message
    assert FS.noise_figure(got) is not None and FS.noise_figure(absent) is None


def test_worst_case_is_the_error_concentration_maximum(paper, story):
    step = story.step("break")
    s = SETTINGS
    rep = sampling_report(paper, trace_text(paper, TEXT), s.scheme, s.k, s.seeds, s.seed, downstream=False)
    err = rep.per_query["rel_err"]
    assert math.isclose(step.error, float(np.nanmax(err)), rel_tol=1e-12)
    assert math.isclose(step.error, float(err[0, step.head, step.query]), rel_tol=1e-12)
    e = err[0, step.head].astype(np.float64)
    e = e[~np.isnan(e)]
    sq = np.sort(e ** 2)[::-1]
    assert math.isclose(step.worst5_share, sq[:math.ceil(0.05 * e.size)].sum() / sq.sum(), rel_tol=1e-9)
    assert step.link.startswith("Sampling?") and f"query={step.query}" in step.link and "k=4" in step.link


@pytest.fixture(scope="module")
def triage_run(paper, tmp_path_factory):
    from interp.triage import ColumnMapping, run_triage
    tmp = tmp_path_factory.mktemp("triage")
    sentences = ["the king saw the [MASK] .", "she left the [MASK] in the house .", "a big red [MASK] .",
                 "the river ran past the old [MASK] .", "he said that the [MASK] was good .", "{broken"]
    log = tmp / "log.jsonl"
    log.write_text("\n".join(json.dumps({"text": s}) if not s.startswith("{") else s for s in sentences) + "\n")
    run_triage(log, tmp / "run", "paper", ColumnMapping(text="text"), lm=paper)
    return tmp / "run"


def test_triage_worst_and_fragile_share_read_from_the_run(paper, triage_run):
    tri = S.triage_worst(triage_run)
    res = pq.read_table(triage_run / "results.parquet").to_pandas()
    ok = res[res.status == "analysed"]
    top = ok.sort_values(["suspicion", "line"], ascending=[False, True]).iloc[0]
    assert tri["text"] == top.text and math.isclose(tri["suspicion"], top.suspicion)
    flips = ok.flip_rate.dropna()
    assert tri["measured"] == len(flips) == 5 and tri["fragile"] == int((flips > 0).sum())
    assert math.isclose(tri["fragile_share"], (flips > 0).mean())
    assert S.latest_triage_run(triage_run.parent) == triage_run
    st = S.build_story(paper, TEXT, SETTINGS, noise_module=None, triage_run=triage_run)
    m3 = st.step("messages").messages[2]
    assert m3.status == (S.SUPPORTED if tri["fragile_share"] <= S.FRAGILE_RARE else S.NOT_SUPPORTED)
    assert m3.line.values == {"fragile": tri["fragile_share"], "analysed": 5}
    assert st.step("break").triage["link"].startswith("Sampling?")


def test_messages_follow_the_numbers(story):
    sp, nz, br = story.step("sampling"), story.step("noise"), story.step("break")

    def msgs(**changes):
        return S.messages_step(dataclasses.replace(sp, **changes), nz, br).messages

    assert msgs(flops_ratio=1.2)[0].status == S.NOT_SUPPORTED and msgs(flops_ratio=1.2)[0].line.key == \
        "story.m1.no_saving"
    m = msgs(flops_ratio=0.6, flip_rate=0.0, top1_agreement=1.0)[0]
    assert (m.status, m.line.key, m.line.values["ratio"]) == (S.SUPPORTED, "story.m1.supported", 0.6)
    m = msgs(flops_ratio=0.6, flip_rate=0.5)[0]
    assert (m.status, m.line.key, m.line.values["flip"]) == (S.NOT_SUPPORTED, "story.m1.flips", 0.5)
    m = msgs(flops_ratio=0.6, has_mlm_head=False, cosine_min=0.995)[0]
    assert (m.status, m.line.key) == (S.SUPPORTED, "story.m1.supported_pooled")
    m = msgs(flops_ratio=0.6, has_mlm_head=False, cosine_min=0.9)[0]
    assert (m.status, m.line.key) == (S.NOT_SUPPORTED, "story.m1.drift")
    m2 = story.step("messages").messages[1]
    assert m2.status == S.NOT_MEASURED and m2.line.values == {"flip": sp.flip_rate}
    noisy = dataclasses.replace(nz, measured=True, perturbation="typo", dense_flip_rate=0.2, sampled_flip_rate=0.22)
    assert S.messages_step(sp, noisy, br).messages[1].status == S.SUPPORTED
    worse = dataclasses.replace(noisy, sampled_flip_rate=0.4)
    assert S.messages_step(sp, worse, br).messages[1].status == S.NOT_SUPPORTED
    assert story.step("messages").messages[2].status == S.NOT_MEASURED
    rare = dataclasses.replace(br, triage={"fragile_share": 0.01, "measured": 100})
    common = dataclasses.replace(br, triage={"fragile_share": 0.3, "measured": 100})
    assert S.messages_step(sp, nz, rare).messages[2].status == S.SUPPORTED
    assert S.messages_step(sp, nz, common).messages[2].status == S.NOT_SUPPORTED


def test_story_without_mlm_head(tiny_encoder_dir):
    lm = load_model(tiny_encoder_dir)
    st = S.build_story(lm, "the cat sat on the mat", S.StorySettings("A", 2, 2, 0), noise_module=None,
                       load=lambda name: load_model(name))
    assert st.step("prediction").lines[0].key == "story.s1.no_head" and FS.prediction_figure(st.step("prediction")) is None
    sp = st.step("sampling")
    eff = downstream_effect(lm, encode(lm, ["the cat sat on the mat"]), "A", 2, 2, 0)
    assert sp.cosine_min == float(eff.cosine_min[0]) and sp.lines[1].key == "story.s4.cosine"
    assert st.step("messages").messages[0].line.key in ("story.m1.supported_pooled", "story.m1.drift",
                                                        "story.m1.no_saving")


def test_every_step_figure_draws_in_both_languages(story):
    for step in story.steps:
        for lang in ("en", "ja"):
            fig = FS.step_figure(step, lang)
            if step.kind in ("prediction", "experts", "baseline", "sampling", "break"):
                assert fig is not None and len(fig.data) >= 1 and fig.layout.title.text
    assert "「" in FS.step_figure(story.step("experts"), "ja").layout.title.text


def test_bad_settings_are_one_clear_error(paper):
    with pytest.raises(ValueError, match="seeds"):
        S.build_story(paper, TEXT, S.StorySettings(seeds=0), noise_module=None)
    with pytest.raises(ValueError):
        S.build_story(paper, TEXT, S.StorySettings(scheme="nope"), noise_module=None)


def test_deferred_noise_then_with_noise_equals_the_whole_story(paper):
    """A story built with ``defer_noise`` runs no probe; ``with_noise`` completes it to exactly the story built in
    one go (step 5 and the meeting messages decided again, the other steps shared)."""
    def probe_text(lm_, text, **kw):
        return {"floor_flip_rate": 0.0, "results": [
            {"perturbation": "typo", "rate": 0.1, "scheme": "A", "dense_flip_rate": 0.25, "sampled_flip_rate": 0.5}]}
    fake = types.SimpleNamespace(probe_text=probe_text)
    calls = []
    counting = types.SimpleNamespace(probe_text=lambda *a, **k: calls.append(1) or probe_text(*a, **k))
    deferred = S.build_story(paper, TEXT, SETTINGS, noise_module=counting, defer_noise=True)
    assert calls == [] and S.noise_pending(deferred)
    assert deferred.step("noise").lines[-1].key == "story.s5.pending"
    assert deferred.step("messages").messages[1].status == S.NOT_MEASURED
    whole = S.build_story(paper, TEXT, SETTINGS, noise_module=fake)
    done = S.with_noise(deferred, S.noise_step(paper, TEXT, SETTINGS, fake))
    assert not S.noise_pending(done) and not S.noise_pending(whole)
    assert [s.kind for s in done.steps] == [s.kind for s in whole.steps]
    for a, b in zip(done.steps, whole.steps):
        for lang in ("en", "ja"):
            assert a.text(lang) == b.text(lang)
    assert done.step("messages").messages[1].status == S.NOT_SUPPORTED          # 0.5 > 0.25 + margin
    assert [m.status for m in done.step("messages").messages] == [m.status for m in whole.step("messages").messages]
    assert done.step("noise").sampled_flip_rate == 0.5 and deferred.step("noise").measured is False
