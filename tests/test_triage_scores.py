"""Triage scores pinned to independent computations: the model's own softmax, the sampling library run on the
example alone, entropy of the captured attention, robust statistics, and the formula string shown in the UI."""
from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest
import torch

from engine_fixtures import model_folder
from interp.loader import load_model
from interp.sampling.downstream import downstream_effect
from interp.trace import encode, trace_text
from interp.triage import scores as S

TEXTS = ["the cat sat on the [MASK] .", "a big red house near the river", "[MASK] king saw the [MASK] queen .",
         "she went to paris", "the quick brown fox jumps over the lazy dog near the bank .", "run"]


@pytest.fixture(scope="module")
def lm():
    return load_model(str(model_folder("bert", True, 0, initializer_range=0.3)))


@pytest.fixture(scope="module")
def lm_pooled():
    return load_model(str(model_folder("bert", False, 0, initializer_range=0.3)))


def rel(a, b):
    return abs(a - b) / max(1e-12, abs(b))


def own_softmax(lm, text):
    """The model's own forward pass through transformers (tokenizer + model call), softmax in float64."""
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**enc).logits[0]
    ids = enc["input_ids"][0].tolist()
    return torch.softmax(logits.double(), -1), ids


def test_confidence_and_margin_equal_the_models_softmax(lm):
    settings = S.ScoreSettings(k=8, seeds=2)
    res = S.score_batch(lm, TEXTS, settings)
    special = set(lm.tokenizer.all_special_ids)
    for text, r in zip(TEXTS, res):
        p, ids = own_softmax(lm, text)
        masks = [i for i, t in enumerate(ids) if t == lm.tokenizer.mask_token_id]
        where = masks or [i for i, t in enumerate(ids) if t not in special]
        top = torch.topk(p[where], 2, -1).values
        assert r.mode == ("mask" if masks else "non-special")
        assert r.n_targets == len(where)
        assert rel(r.confidence, float(top[:, 0].min())) < 1e-5
        assert abs(r.margin - float((top[:, 0] - top[:, 1]).min())) < 1e-5
        if masks:
            assert r.query == masks[0]
            want = lm.tokenizer.convert_ids_to_tokens([int(p[i].argmax()) for i in masks])
            assert r.dense_top1.split() == want


def test_mask_each_confidence_per_variant(lm):
    text = "the quick brown fox jumps over the lazy dog"
    cap = 3
    r = S.score_batch(lm, [text], S.ScoreSettings(k=8, seeds=2, mask_policy="mask-each", mask_cap=cap))[0]
    ids = lm.tokenizer(text)["input_ids"]
    special = set(lm.tokenizer.all_special_ids)
    plain = [i for i, t in enumerate(ids) if t not in special]
    chosen = [plain[int(round(x))] for x in np.linspace(0, len(plain) - 1, cap)]
    confs, margins = [], []
    for pos in chosen:
        v = list(ids)
        v[pos] = lm.tokenizer.mask_token_id
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([v])).logits[0, pos]
        top = torch.topk(torch.softmax(logits.double(), -1), 2).values
        confs.append(float(top[0]))
        margins.append(float(top[0] - top[1]))
    assert r.mode == "mask-each" and r.n_targets == cap
    assert rel(r.confidence, min(confs)) < 1e-5
    assert abs(r.margin - min(margins)) < 1e-5
    assert r.query in chosen


@pytest.mark.parametrize("scheme,k", [("A", 4), ("C", 3)])
def test_instability_equals_the_sampling_library_on_the_example_alone(lm, scheme, k):
    settings = S.ScoreSettings(scheme=scheme, k=k, seeds=3, seed=11)
    res = S.score_batch(lm, TEXTS, settings)
    for text, r in zip(TEXTS, res):
        enc = encode(lm, [text])
        alone = downstream_effect(lm, enc, scheme, k, 3, 11)          # the library's own default keys
        assert r.key == S.example_key(enc.input_ids[0])
        assert r.flip_rate == float(alone.flip_rate[0])
        assert r.top1_agreement == pytest.approx(float(alone.top1_agreement[0]), abs=1e-9)
        # float32 noise floor of a KL that is exactly 0 in exact arithmetic (top-k with k ≥ n): ~1e-7
        assert r.kl == pytest.approx(float(alone.kl_mean[0]), rel=1e-5, abs=1e-6)
        assert r.kl_max == pytest.approx(float(alone.kl_max[0]), rel=1e-5, abs=1e-6)
        assert (r.worst_layer, r.worst_head) == alone.worst_head[0]
        assert r.worst_tv == pytest.approx(float(alone.worst_head_tv[0]), rel=1e-5)


def test_pooled_embedding_stability_without_mlm_head(lm_pooled):
    settings = S.ScoreSettings(k=4, seeds=3, seed=5)
    res = S.score_batch(lm_pooled, TEXTS[:4], settings)
    for text, r in zip(TEXTS[:4], res):
        alone = downstream_effect(lm_pooled, encode(lm_pooled, [text]), "A", 4, 3, 5)
        assert r.mode == "pooled"
        assert math.isnan(r.confidence) and math.isnan(r.margin) and math.isnan(r.flip_rate)
        assert r.cosine == pytest.approx(float(alone.cosine_mean[0]), abs=1e-6)
        assert r.cosine_min == pytest.approx(float(alone.cosine_min[0]), abs=1e-6)
    with pytest.raises(ValueError, match="MLM head"):
        S.ScoreSettings(mask_policy="mask-each").check(lm_pooled)


def test_concentration_is_the_entropy_of_the_captured_attention(lm):
    res = S.score_batch(lm, TEXTS, S.ScoreSettings(k=4, seeds=1))
    for text, r in zip(TEXTS, res):
        tr = trace_text(lm, text)
        n = tr.n
        queries = [i for i in range(n) if not bool(tr.special[i])] or list(range(n))
        conc, eff = [], []
        for lt in tr.layers:
            p = lt.probs.double().numpy()                                   # H × n × n
            with np.errstate(divide="ignore", invalid="ignore"):
                h = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)            # H × n
            e = np.exp(h)[:, queries]
            conc.append((np.log(e) / np.log(n)).mean(-1))
            eff.append(e.mean(-1))
        conc = np.concatenate(conc)
        assert np.allclose(r.head_concentration, conc, rtol=1e-5, atol=1e-6)
        assert r.eff_experts == pytest.approx(float(np.concatenate(eff).mean()), rel=1e-5)
        assert np.all((conc >= -1e-6) & (conc <= 1 + 1e-6))


def test_scores_do_not_depend_on_the_batch(lm):
    settings = S.ScoreSettings(k=4, seeds=3, seed=2)
    batch = S.score_batch(lm, TEXTS, settings)
    for text, b in zip(TEXTS, batch):
        one = S.score_batch(lm, [text], settings)[0]
        assert one.flip_rate == b.flip_rate
        for name in ("confidence", "margin", "kl", "worst_tv", "eff_experts"):
            assert getattr(one, name) == pytest.approx(getattr(b, name), rel=1e-5, abs=1e-6), name
        assert np.allclose(one.head_concentration, b.head_concentration, atol=1e-6)


def test_concentration_norm_is_a_hash_sample_with_robust_z():
    rng = np.random.default_rng(0)
    keys = [f"input-{i}" for i in range(300)]
    vals = rng.normal(size=(300, 6)).astype(np.float32)
    a = S.ConcentrationNorm(6, size=64, min_count=10)
    for i in range(0, 300, 7):                           # in chunks of 7, file order
        a.add(keys[i:i + 7], vals[i:i + 7])
    b = S.ConcentrationNorm(6, size=64, min_count=10)
    order = rng.permutation(300)                         # one at a time, shuffled, with repeats
    for i in list(order) + list(order[:40]):
        b.add([keys[i]], vals[i:i + 1])
    assert np.array_equal(a.hashes, b.hashes) and np.array_equal(a.values, b.values)
    # independent: the 64 keys with the smallest BLAKE2b-64 hashes, then median / MAD
    h = [int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") for k in keys]
    pick = np.argsort(np.array(h, dtype=np.uint64), kind="stable")[:64]
    sample = vals[pick].astype(np.float64)
    med = np.median(sample, 0)
    scale = np.maximum(1.4826 * np.median(np.abs(sample - med), 0), 1e-3)
    x = rng.normal(size=(5, 6))
    assert np.allclose(a.z(x), (x - med) / scale, rtol=1e-6)
    few = S.ConcentrationNorm(6, min_count=10)
    few.add(keys[:9], vals[:9])
    assert np.all(np.isnan(few.z(x)))
    z, layer, head = S.worst_concentration(np.array([[0.5, -4.0, 1.0, 0, 0, 0], [np.nan] * 6]), n_heads=3)
    assert z[0] == -4.0 and (layer[0], head[0]) == (0, 1)
    assert np.isnan(z[1]) and layer[1] == -1


def _evaluate_formula(columns: dict) -> np.ndarray:
    """Evaluate SUSPICION_FORMULA, the string shown to users, on ``columns`` (independent of the TERMS code)."""
    body = S.SUSPICION_FORMULA.split("( ", 1)[1].split(" ) /", 1)[0]
    pieces = re.findall(r"(\d+\.\d+)·(.+?)(?= \+ \d+\.\d+·|$)", body)
    assert len(pieces) == len(S.TERMS)
    num = den = 0.0
    for weight, expr in pieces:
        py = (expr.replace("−", "-").replace("e^(", "np.exp(").replace("clip(", "np.clip(")
              .replace("|concentration_z|", "np.abs(concentration_z)"))
        with np.errstate(invalid="ignore", over="ignore"):
            term = eval(py, {"np": np}, dict(columns))      # noqa: S307 - our own constant string
        ok = ~np.isnan(term)
        num = num + np.where(ok, float(weight) * term, 0.0)
        den = den + np.where(ok, float(weight), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def test_suspicion_is_the_formula_shown():
    rng = np.random.default_rng(1)
    n = 200
    cols = {"flip_rate": rng.choice([0, 0.25, 0.5, 1.0], n), "kl": rng.exponential(0.5, n),
            "cosine": 1 - rng.exponential(0.01, n), "confidence": rng.uniform(0, 1, n), "margin": rng.uniform(0, 1, n),
            "concentration_z": rng.normal(0, 3, n), "agreement": rng.choice([0.0, 0.5, 1.0], n)}
    for name in cols:                                    # some terms missing on some inputs
        cols[name][rng.uniform(size=n) < 0.3] = np.nan
    cols["kl"][:5] = np.nan
    for name in cols:
        cols[name][:5] = np.nan                          # nothing applies: NaN
    got = S.suspicion(cols)
    want = _evaluate_formula(cols)
    assert np.all(np.isnan(got[:5]))
    assert np.allclose(got, want, equal_nan=True, rtol=1e-12)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 1


def test_agreement_and_logged_correctness():
    assert S.agreement(["paris"], "Paris") == 1.0
    assert S.agreement(["##ing"], "ing") == 1.0
    assert S.agreement(["a", "b"], '["a", "c"]') == 0.5
    assert S.agreement(["a", "b"], "a b") == 1.0
    assert math.isnan(S.agreement(["a", "b"], "a b c"))
    assert math.isnan(S.agreement(["a"], None))
    assert S.logged_correct("Dog", "dog") == 1.0 and S.logged_correct("cat", "dog") == 0.0
    assert math.isnan(S.logged_correct(None, "dog"))
    assert np.allclose(S.agreement_column(np.array([1.0, np.nan, 0.0, np.nan]), np.array([0.0, 1.0, np.nan, np.nan])),
                       [0.5, 1.0, 0.0, np.nan], equal_nan=True)
