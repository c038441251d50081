"""The noise probe against independent computations: flip rates, KL and ranks from the model's own outputs
(re-run here), the floor from the sampling library's downstream comparison, McNemar against its closed form,
rate 0 = floor, gates unmoved at rate 0, the corpus sources and the triage score."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine_fixtures import model_folder
from interp.loader import load_model
from interp.noise import stats
from interp.noise.corpus import LogSource, heldout_sentences
from interp.noise.perturb import perturb, protected_tokens
from interp.noise.probe import (NoiseSettings, noise_seed_of, noise_sensitivity, probe, probe_corpus, probe_text,
                                variants_of)
from interp.sampling.downstream import SamplingPlan, resolve_targets

TEXT = "the cat sat on the [MASK] near the river bank and the [MASK] saw a big red house ."


@pytest.fixture(scope="module")
def lm():
    # a larger initialisation than the default makes the random model's predictions depend on the input
    return load_model(str(model_folder("bert", True, 0, initializer_range=0.3)))


@pytest.fixture(scope="module")
def encoder():
    return load_model(str(model_folder("bert", False, 1)))


def logits(lm, text: str, plan=None, reps: int = 1) -> torch.Tensor:
    """The model's own MLM logits for ``text`` (reps copies, replicate-major), straight from the tokenizer."""
    from interp.attention import attention_plan
    enc = lm.tokenizer([text] * reps, return_tensors="pt")
    with torch.no_grad(), attention_plan(plan):
        return lm.model(**enc).logits.to(torch.float32)


def masks(lm, text: str) -> list[int]:
    return [i for i, t in enumerate(lm.tokenizer(text)["input_ids"]) if t == lm.tokenizer.mask_token_id]


def sampled_logits(lm, text: str, key: str, scheme: str, k: int, reps: int, seed: int) -> torch.Tensor:
    n = len(lm.tokenizer(text)["input_ids"])
    targets = resolve_targets(lm.n_layers, lm.n_heads)
    plan = SamplingPlan(lm.adapter.layer_of, scheme, k, k, k, seed, [key], [n], list(range(reps)), targets)
    return logits(lm, text, plan, reps)


def test_flip_rates_kl_and_rank_equal_a_direct_computation(lm):
    st = NoiseSettings(perturbations=("typo",), rates=(0.3,), schemes=("A",), ks=(2,), noise_seeds=3, seeds=2,
                       seed=5, n_boot=200)
    ip, summary = probe(lm, TEXT, st)
    row = summary.results()[0]
    protected = protected_tokens(lm.tokenizer)
    clean_pos = masks(lm, TEXT)
    ref = torch.log_softmax(logits(lm, TEXT)[0, clean_pos], -1)
    top = ref.argmax(-1)
    d_flips, s_flips, units, b, c, dkl, drank, self_flips = 0, 0, 0, 0, 0, 0.0, 0.0, 0
    clean_s = sampled_logits(lm, TEXT, f"{TEXT}|0", "A", 2, 2, 5)[:, clean_pos]
    for nu in range(3):
        noisy = perturb(TEXT, "typo", 0.3, noise_seed_of(5, nu), protected).text
        assert noisy == ip.noisy[("typo", 0.3)][nu][0].text
        pos = masks(lm, noisy)
        out = torch.log_softmax(logits(lm, noisy)[0, pos], -1)
        dflip = (out.argmax(-1) != top).numpy()
        d_flips += int(dflip.sum()) * 2
        dkl += float((ref.exp() * (ref - out)).sum()) * 2
        drank += float((out > out.gather(-1, top[:, None])).sum()) * 2
        samp = sampled_logits(lm, noisy, f"{TEXT}|0", "A", 2, 2, 5)[:, pos]      # same seeds as the clean text
        sflip = (samp.argmax(-1) != top[None]).numpy()
        s_flips += int(sflip.sum())
        self_flips += int((samp.argmax(-1) != clean_s.argmax(-1)).sum())
        units += sflip.size
        b += int((dflip[None] & ~sflip).sum())
        c += int((sflip & ~dflip[None]).sum())
    assert row["units"] == units == 3 * 2 * 2
    assert row["dense_flip_rate"] == pytest.approx(d_flips / units)
    assert row["sampled_flip_rate"] == pytest.approx(s_flips / units)
    assert row["sampled_self_flip_rate"] == pytest.approx(self_flips / units)
    assert (row["mcnemar_b"], row["mcnemar_c"]) == (b, c)
    assert row["mcnemar_p"] == pytest.approx(stats.mcnemar_exact(b, c))
    assert row["dense_kl"] == pytest.approx(dkl / units, rel=1e-5, abs=1e-6)
    assert row["dense_rank_mean"] == pytest.approx(drank / units)
    lo, hi = row["difference_ci"]
    assert lo <= row["difference"] + 1e-12 and row["difference"] <= hi + 1e-12
    assert 0.0 < row["dense_flip_rate"] < 1.0 or row["dense_flip_rate"] in (0.0, 1.0)
    assert ip.clean_top[0] == lm.tokenizer.convert_ids_to_tokens(top.tolist())


def test_rate_zero_equals_the_floor_and_the_floor_is_the_downstream_disagreement(lm):
    from interp.sampling import downstream_effect
    from interp.trace import encode
    st = NoiseSettings(perturbations=("typo", "word-drop"), rates=(0.0,), schemes=("A", "C"), ks=(1, 3),
                       noise_seeds=2, seeds=4, seed=3, n_boot=100)
    _, summary = probe(lm, TEXT, st)
    floors = {(f["scheme"], f["k"]): f["floor_flip_rate"] for f in summary.floors()}
    for row in summary.results():
        assert row["dense_flip_rate"] == 0.0 and row["changed_text_share"] == 0.0
        assert row["sampled_flip_rate"] == floors[(row["scheme"], row["k"])]
        assert row["sampled_excess"] == 0.0 and row["sampled_self_flip_rate"] == 0.0
    for (scheme, k), floor in floors.items():
        want = downstream_effect(lm, encode(lm, [TEXT]), scheme, k, 4, 3, example_keys=[f"{TEXT}|0"])
        assert floor == pytest.approx(1.0 - float(want.top1_agreement[0]), abs=1e-9)
    assert any(f > 0 for f in floors.values())         # the floor is not trivially zero with k = 1
    for row in summary.heads("typo", 0.0, top=3):
        assert row["gate_tv"] == pytest.approx(0.0, abs=1e-7)


def test_deterministic_scheme_replicates_are_identical(lm):
    a = sampled_logits(lm, TEXT, "x", "C", 2, 3, 0)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], a[2])


def test_mcnemar_matches_the_closed_form():
    # b = 3, c = 10: p = 2·Σ_{i≤3} C(13, i) / 2¹³ = 2·(1 + 13 + 78 + 286)/8192
    assert stats.mcnemar_exact(3, 10) == pytest.approx(2 * 378 / 8192, rel=1e-12)
    assert stats.mcnemar_exact(10, 3) == stats.mcnemar_exact(3, 10)
    assert stats.mcnemar_exact(0, 0) == 1.0 and stats.mcnemar_exact(5, 5) == 1.0
    assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    dense = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    sampled = np.array([1, 0, 0, 1, 1, 1, 0, 1], bool)
    assert stats.discordant(dense, sampled) == (2, 3)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(-1, 2)


def test_bootstrap_interval_behaves():
    # every cluster has the same difference: a zero-width interval at it
    lo, hi = stats.bootstrap_difference([10, 20, 30], [1, 2, 3], [3, 6, 9], n_boot=500)
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    lo, hi = stats.bootstrap_difference([10] * 20, [0] * 20, list(range(20)) , n_boot=2000, seed=1)
    assert lo < 0.95 < hi and hi - lo > 0.1
    assert stats.bootstrap_difference([5], [1], [2]) == (0.2, 0.2)
    assert all(math.isnan(x) for x in stats.bootstrap_difference([], [], []))


def test_text_without_mask_masks_each_word_up_to_the_cap(lm):
    text = "the cat sat on the mat near the river ."
    vs = variants_of(lm, text, mask_cap=3)
    assert len(vs) == 3 and all(v.kind == "mask-each" and v.text.count("[MASK]") == 1 for v in vs)
    assert [v.masked_word for v in vs] == ["the", "the", "river"]
    assert [v.masked_word for v in variants_of(lm, text, mask_words=[1, 3])] == ["cat", "on"]
    st = NoiseSettings(perturbations=("word-drop",), rates=(0.3,), schemes=("C",), ks=(2,), noise_seeds=2, seeds=1,
                       mask_cap=3, n_boot=50)
    ip, summary = probe(lm, text, st)
    assert len(ip.variants) == 3 and summary.results()[0]["units"] == 3 * 2
    from interp.trace import InputError
    with pytest.raises(InputError):
        variants_of(lm, "   ")
    with pytest.raises(InputError, match="nothing to predict"):
        variants_of(lm, ", . !")


def test_model_without_mlm_head_uses_the_pooled_cosine(encoder):
    st = NoiseSettings(perturbations=("word-drop",), rates=(0.0, 0.5), schemes=("A",), ks=(2,), noise_seeds=2,
                       seeds=2, n_boot=50)
    ip, summary = probe(encoder, "the cat sat on the mat .", st)
    zero, half = summary.results()
    assert zero["dense_flip_rate"] is None and zero["mcnemar_p"] is None
    assert zero["dense_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert zero["sampled_cosine"] == pytest.approx(zero["floor_cosine"], abs=1e-9)
    assert half["dense_cosine"] < 1.0


def test_bad_settings_are_one_line_errors(lm):
    for bad, msg in ((dict(perturbations=("nope",)), "unknown perturbation"), (dict(rates=(1.5,)), "between 0 and 1"),
                     (dict(schemes=("Z",)), "unknown scheme"), (dict(seeds=0), "seeds must be"),
                     (dict(ks=(0,)), "k must be"), (dict(rates=()), "no rate")):
        with pytest.raises(ValueError, match=msg) as err:
            NoiseSettings(**bad).check()
        assert "\n" not in str(err.value)


def test_corpus_probe_streams_with_progress_and_skips(lm, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join([json.dumps({"text": "the cat sat on the [MASK] ."}), "{broken",
                              json.dumps({"text": ""}), json.dumps({"text": ", ."}),
                              json.dumps({"text": "the dog ran to the [MASK] ."})]) + "\n", encoding="utf-8")
    src = LogSource(log, "text")
    seen = []
    st = NoiseSettings(perturbations=("typo",), rates=(0.2,), schemes=("A",), ks=(2,), noise_seeds=2, seeds=2,
                       n_boot=50)
    summary = probe_corpus(lm, src, st, progress=seen.append, fraction=src.fraction)
    assert summary.inputs == 2 and [p.done for p in seen] == [1, 2, 3]
    assert [w for w, _ in src.skipped] == ["line:2", "line:3"]
    assert summary.skipped[0][0] == "line:4" and "nothing to predict" in summary.skipped[0][1]
    assert seen[-1].fraction == pytest.approx(1.0)
    # the corpus totals are the sums of the two inputs probed alone
    one = [probe_text(lm, t, st, key=k) for k, t in (("line:1", "the cat sat on the [MASK] ."),
                                                     ("line:5", "the dog ran to the [MASK] ."))]
    row = summary.results()[0]
    flips = sum(t.sampled_flips for ip in one for t in ip.tallies[("typo", 0.2, "A", 2)])
    assert row["sampled_flip_rate"] == pytest.approx(flips / row["units"])
    txt = tmp_path / "log.txt"
    txt.write_text("a [MASK] b\n\nc [MASK] d\n", encoding="utf-8")
    s2 = LogSource(txt)
    assert list(s2) == [("line:1", "a [MASK] b"), ("line:3", "c [MASK] d")] and s2.skipped[0][0] == "line:2"


def test_heldout_sentences_are_masked_text():
    sents = heldout_sentences(12)
    assert len(sents) == 12 and len({k for k, _ in sents}) == 12
    assert all(1 <= t.count("[MASK]") <= 2 for _, t in sents)
    assert {k.split("-")[0] for k, _ in sents[:6]} == {"austen", "fortunes", "jargon", "kjv", "shakespeare",
                                                       "wordnet"}
    assert heldout_sentences(12) == sents


def test_noise_sensitivity_is_the_probe_dense_flip_rate(lm):
    got = noise_sensitivity(lm, TEXT, "typo", 0.3, noise_seeds=3, seed=5, scheme="A", k=2, seeds=2)
    st = NoiseSettings(perturbations=("typo",), rates=(0.3,), schemes=("A",), ks=(2,), noise_seeds=3, seeds=2,
                       seed=5, mask_cap=2, n_boot=50)
    row = probe(lm, TEXT, st)[1].results()[0]
    assert got["noise_flip_rate"] == pytest.approx(row["dense_flip_rate"])
    assert got["noise_sampled_flip_rate"] == pytest.approx(row["sampled_flip_rate"])
    assert got["noise_floor_flip_rate"] == pytest.approx(row["floor_flip_rate"])
    assert got["noise_kl"] == pytest.approx(row["dense_kl"], rel=1e-9)
