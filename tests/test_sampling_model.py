"""Sampled attention inside the model: the shared model stays untouched, downstream numbers match an
independent substitution, results do not depend on batching, and the report's numbers match an independent
float64 computation. Small random models (through the real loader) and the real MiniLM."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp import attention as attn
from interp.attention import AttentionPlan
from interp.loader import load_model
from interp.sampling import metrics as M
from interp.sampling import schemes as SC
from interp.sampling import seeds as seeding
from interp.sampling.downstream import compare_positions, downstream_effect
from interp.sampling.report import sampling_report
from interp.trace import encode, forward, model_output, trace_text
from tests.engine_fixtures import minilm, model_folder

TEXTS = ["the cat [MASK] on the mat .", "the quick brown fox jumps over the lazy dog near the river bank",
         "paris is the capital of france", "a big red house", "the king saw the queen and the man went to the city",
         "we walk", "the old tree near the road was big and green and the sun was near", "it was a lovely day ."]


@pytest.fixture(scope="module")
def mlm():
    """Random BERT with an MLM head and peaked attention (large initial weights)."""
    return load_model(str(model_folder("bert", True, 0, initializer_range=0.3)))


@pytest.fixture(scope="module")
def encoder():
    """Random BERT without an MLM head (pooled-embedding output)."""
    return load_model(str(model_folder("bert", False, 0, initializer_range=0.3)))


def dense(lm, enc):
    return model_output(lm, forward(lm, enc), enc)


def snapshot(lm):
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())
    return ({k: v.clone() for k, v in lm.model.state_dict().items()}, lm.model.config._attn_implementation, hooks,
            lm.model.training)


def assert_same_model(lm, snap):
    params, impl, hooks, training = snap
    now = lm.model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in params.items())
    assert lm.model.config._attn_implementation == impl == attn.ATTN_IMPLEMENTATION
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules()) == hooks
    assert lm.model.training == training
    assert attn._PLAN.get() is None


def test_dense_sampled_dense_is_bit_identical(mlm):
    enc = encode(mlm, TEXTS[:3])
    snap = snapshot(mlm)
    before = dense(mlm, enc)
    res = downstream_effect(mlm, enc, "A", 2, 3, 0)
    assert res.kl_mean.max() > 1e-4          # the sampled pass really differed from dense
    after = dense(mlm, enc)
    assert torch.equal(before, after)
    assert_same_model(mlm, snap)


def test_a_raising_plan_or_scheme_leaves_the_model_untouched(mlm):
    enc = encode(mlm, TEXTS[:2])
    snap = snapshot(mlm)
    before = dense(mlm, enc)

    class Raising(AttentionPlan):
        def rows(self, layer, query, key, value, scores, probs, key_valid):
            if layer == 1:
                raise RuntimeError("boom")
            return torch.zeros_like(probs)

    with pytest.raises(RuntimeError, match="boom"):
        forward(mlm, enc, Raising(mlm.adapter.layer_of))
    assert torch.equal(dense(mlm, enc), before)

    def broken(inp):
        raise RuntimeError("scheme failed")
    SC.SCHEMES["broken-test"], SC.FLOPS["broken-test"] = broken, SC.FLOPS["A"]
    try:
        with pytest.raises(RuntimeError, match="scheme failed"):
            downstream_effect(mlm, enc, "broken-test", 2, 2, 0)
    finally:
        del SC.SCHEMES["broken-test"], SC.FLOPS["broken-test"]
    assert torch.equal(dense(mlm, enc), before)
    assert_same_model(mlm, snap)


class UniformRows(AttentionPlan):
    """Independent substitution: uniform rows over valid keys in the chosen (layer → heads)."""

    def __init__(self, layer_of, targets):
        super().__init__(layer_of)
        self.targets = targets

    def rows(self, layer, query, key, value, scores, probs, key_valid):
        if layer not in self.targets:
            return None
        n = probs.shape[-1]
        valid = torch.ones_like(probs, dtype=torch.bool) if key_valid is None else key_valid.expand_as(probs)
        out = probs.clone()
        for h in self.targets[layer]:
            vh = valid[:, h].to(probs.dtype)
            out[:, h] = vh / vh.sum(-1, keepdim=True)
        assert out.shape[-1] == n
        return out


def test_downstream_mlm_metrics_match_an_independent_substitution(mlm):
    enc = encode(mlm, TEXTS[:3])
    targets = {1: [0, 2]}
    res = downstream_effect(mlm, enc, "null", 3, 2, 5, layers=[1], heads=[0, 2])
    assert res.targets == targets
    ref = dense(mlm, enc).double()
    sub = model_output(mlm, forward(mlm, enc, UniformRows(mlm.adapter.layer_of, targets)), enc).double()
    mask_id = mlm.tokenizer.mask_token_id
    for b in range(3):
        n = int(enc.attention_mask[b].sum())
        ids = enc.input_ids[b, :n].tolist()
        pos = [i for i in range(n) if ids[i] == mask_id] or [i for i in range(n) if not enc.special[b, i]]
        assert res.positions[b] == ("mask" if mask_id in ids else "non-special")
        assert compare_positions(mlm, enc, b)[0] == pos
        lp = torch.log_softmax(ref[b, pos], -1)
        lq = torch.log_softmax(sub[b, pos], -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)
        top = ref[b, pos].argmax(-1)
        agree = (sub[b, pos].argmax(-1) == top).double()
        rank = (sub[b, pos] > sub[b, pos].gather(-1, top[:, None])).sum(-1).double()
        assert res.kl_mean[b] == pytest.approx(float(kl.mean()), rel=1e-4, abs=1e-7)
        assert res.kl_max[b] == pytest.approx(float(kl.max()), rel=1e-4, abs=1e-7)
        assert res.top1_agreement[b] == pytest.approx(float(agree.mean()))
        assert res.flip_rate[b] == pytest.approx(float(1 - agree.mean()))   # null: every seed is the same
        assert res.rank_mean[b] == pytest.approx(float(rank.mean()))
    assert np.isnan(res.cosine_mean).all()
    # TV of the substituted heads against the exact rows of the same pass; NaN for heads left dense
    assert np.isnan(res.head_tv[:, 0]).all() and np.isnan(res.head_tv[:, 1, 1]).all()
    assert np.all(res.head_tv[:, 1, [0, 2]] > 0)
    assert res.worst_head[0][0] == 1 and res.worst_head[0][1] in (0, 2)


def test_downstream_cosine_without_an_mlm_head(encoder):
    enc = encode(encoder, TEXTS[3:6])
    res = downstream_effect(encoder, enc, "null", 2, 2, 0, layers=[0])
    targets = {0: list(range(encoder.n_heads))}
    ref = dense(encoder, enc)
    sub = model_output(encoder, forward(encoder, enc, UniformRows(encoder.adapter.layer_of, targets)), enc)
    cos = torch.nn.functional.cosine_similarity(ref.double(), sub.double(), dim=-1)
    assert np.allclose(res.cosine_mean, cos.numpy(), rtol=1e-5, atol=1e-6)
    assert np.allclose(res.cosine_min, cos.numpy(), rtol=1e-5, atol=1e-6)
    assert res.positions == ["pooled"] * 3 and np.isnan(res.top1_agreement).all()


def test_downstream_does_not_depend_on_batch_size_order_or_pass_split(mlm):
    enc = encode(mlm, TEXTS)
    keys = [f"log-{i}" for i in range(len(TEXTS))]
    batch = downstream_effect(mlm, enc, "A", 3, 3, 7, example_keys=keys)
    split = downstream_effect(mlm, enc, "A", 3, 3, 7, example_keys=keys, max_rows=2)
    for name in ("kl_mean", "top1_agreement", "flip_rate", "rank_mean"):
        assert np.allclose(getattr(batch, name), getattr(split, name), rtol=1e-5, atol=1e-7)
    for b in (0, 5, 7):
        one = downstream_effect(mlm, encode(mlm, [TEXTS[b]]), "A", 3, 3, 7, example_keys=[keys[b]])
        assert one.kl_mean[0] == pytest.approx(batch.kl_mean[b], rel=1e-4, abs=1e-7)
        assert one.top1_agreement[0] == batch.top1_agreement[b]
        assert np.allclose(one.head_tv[0], batch.head_tv[b], rtol=1e-4, atol=1e-6)
    rev = downstream_effect(mlm, encode(mlm, TEXTS[::-1]), "A", 3, 3, 7, example_keys=keys[::-1])
    assert np.allclose(rev.kl_mean[::-1], batch.kl_mean, rtol=1e-4, atol=1e-7)
    again = downstream_effect(mlm, enc, "A", 3, 3, 7, example_keys=keys)
    assert np.array_equal(again.kl_mean, batch.kl_mean)
    other = downstream_effect(mlm, enc, "A", 3, 3, 8, example_keys=keys)
    assert not np.array_equal(other.kl_mean, batch.kl_mean)


def test_downstream_exact_schemes_reproduce_the_dense_output(mlm):
    enc = encode(mlm, TEXTS[:4])
    n = enc.input_ids.shape[1]
    for scheme, kw in (("C", {}), ("E", {"h": n})):
        res = downstream_effect(mlm, enc, scheme, n, 2, 0, **kw)
        assert np.all(res.top1_agreement == 1) and np.all(res.flip_rate == 0) and np.all(res.rank_max == 0)
        assert np.all(np.abs(res.kl_max) < 1e-9)
        assert np.all(np.nan_to_num(res.head_tv, nan=0.0) == 0)


def test_downstream_rejects_bad_arguments(mlm):
    enc = encode(mlm, TEXTS[:1])
    for kwargs, msg in ((dict(scheme="Z", k=2), "unknown scheme"), (dict(scheme="A", k=0), "positive"),
                        (dict(scheme="A", k=2, layers=[7]), "layer 7"), (dict(scheme="A", k=2, heads=[9]), "head 9")):
        with pytest.raises(ValueError, match=msg):
            downstream_effect(mlm, enc, seeds=2, seed=0, **kwargs)
    with pytest.raises(ValueError, match="example keys"):
        downstream_effect(mlm, enc, "A", 2, 2, 0, example_keys=[1, 2])


def _independent_head_metrics(P, Ph, v, w_o, keep_keys, queries):
    """float64 numpy: TV, KL(P̂‖P), JS, dropped, rel. error, z, rel. error after W_O, over (seed, query)."""
    P, Ph, v = P.double().numpy(), Ph.double().numpy(), v.double().numpy()
    P = P[:, keep_keys] / P[:, keep_keys].sum(-1, keepdims=True)
    Ph = Ph[:, :, keep_keys]
    mass = Ph.sum(-1, keepdims=True)
    Ph = Ph / np.where(mass > 0, mass, 1.0)
    vk = v[keep_keys]
    out = {x: [] for x in ("tv", "kl", "js", "dropped", "rel_err", "z", "rel_err_o")}
    undefined = 0
    for s in range(Ph.shape[0]):
        for i in queries:
            if mass[s, i, 0] == 0:          # P̂ has no mass left on the kept keys: the row is undefined
                undefined += 1
                continue
            p, ph = P[i], Ph[s, i]
            nz = ph > 0
            out["tv"].append(0.5 * np.abs(p - ph).sum())
            out["kl"].append(float((ph[nz] * np.log(ph[nz] / p[nz])).sum()))
            mid = 0.5 * (p + ph)
            js = 0.5 * (p[p > 0] * np.log(p[p > 0] / mid[p > 0])).sum() + 0.5 * (ph[nz] * np.log(ph[nz] / mid[nz])).sum()
            out["js"].append(js)
            out["dropped"].append(p[~nz].sum())
            o, oh = p @ vk, ph @ vk
            out["rel_err"].append(np.linalg.norm(oh - o) / np.linalg.norm(o))
            sigma = math.sqrt(max(0.0, (p * (vk ** 2).sum(-1)).sum() - (o ** 2).sum()))
            out["z"].append(np.linalg.norm(oh - o) / sigma)
            out["rel_err_o"].append(np.linalg.norm(w_o @ (oh - o)) / np.linalg.norm(w_o @ o))
    return {x: np.array(vals) for x, vals in out.items()}, undefined


@pytest.mark.parametrize("scheme", ["A", "E", "B-vnorm"])
def test_report_numbers_match_an_independent_computation(mlm, scheme):
    trace = trace_text(mlm, "the cat [MASK] on the mat near the river bank .")
    S, k, seed = 4, 3, 21
    rep = sampling_report(mlm, trace, scheme, k, S, seed, example_key="doc-9", layers=[0, 1], h=2, downstream=False)
    n, special = trace.n, trace.special.numpy()
    for l, hd in ((0, 1), (1, 3)):
        lt = trace.layers[l]
        gens = [[seeding.generator(seed, "doc-9", l, s)] for s in range(S)]
        d = lt.q.shape[-1]
        valid = torch.ones(1, 1, n, n, dtype=torch.bool)
        scores = SC.dense_scores(lt.q[None], lt.k[None], valid, d ** -0.5)
        est = SC.estimate(scheme, lt.q[None], lt.k[None], lt.v[None], scores, lt.probs[None], valid, [n], gens, k, 2)
        Ph = est.weights[:, 0, hd]
        H = trace.n_heads
        w_o = mlm.adapter.layers[l].o.weight.detach().double().numpy()[:, hd * d:(hd + 1) * d]
        row = rep.head(l, hd)
        for keep, queries, suffix in ((np.ones(n, bool), range(n), ""),
                                      (~special, [i for i in range(n) if not special[i]], "_nospecial")):
            ref, undefined = _independent_head_metrics(lt.probs[hd], Ph, lt.v[hd], w_o, keep, list(queries))
            if suffix:
                assert row["undefined_rows_nospecial"] == undefined
            for name, vals in ref.items():
                assert row[f"{name}_mean{suffix}"] == pytest.approx(vals.mean(), rel=1e-4, abs=1e-6), (name, suffix)
                assert row[f"{name}_max{suffix}"] == pytest.approx(vals.max(), rel=1e-4, abs=1e-6), (name, suffix)
                assert row[f"{name}_p95{suffix}"] == pytest.approx(np.quantile(vals, 0.95), rel=1e-4, abs=1e-6)
            assert row[f"z2_mean{suffix}"] == pytest.approx((ref["z"] ** 2).mean(), rel=1e-4)
            # across seeds: MSE = variance + squared bias, relative to ‖o‖², and the worst-5% share
            P = lt.probs[hd].double().numpy()[:, keep]
            P = P / P.sum(-1, keepdims=True)
            Pk = Ph.double().numpy()[:, :, keep]
            mass = Pk.sum(-1, keepdims=True)
            Pk = Pk / np.where(mass > 0, mass, 1.0)
            vk = lt.v[hd].double().numpy()[keep]
            o, oh = P @ vk, Pk @ vk                                       # n×d, S×n×d
            mse = ((oh - o) ** 2).sum(-1).mean(0)
            var = ((oh - oh.mean(0)) ** 2).sum(-1).mean(0)
            bias2 = ((oh.mean(0) - o) ** 2).sum(-1)
            q_idx = [i for i in queries if np.all(mass[:, i] > 0)]       # defined in every seed
            on = (o ** 2).sum(-1)
            assert row[f"mse_rel_mean{suffix}"] == pytest.approx((mse / on)[q_idx].mean(), rel=1e-4)
            assert row[f"var_rel_mean{suffix}"] == pytest.approx((var / on)[q_idx].mean(), rel=1e-4, abs=1e-9)
            assert row[f"bias2_rel_mean{suffix}"] == pytest.approx((bias2 / on)[q_idx].mean(), rel=1e-4, abs=1e-9)
            sq = np.sort(mse[q_idx])[::-1]
            top = math.ceil(0.05 * len(q_idx))
            assert row[f"worst5_share{suffix}"] == pytest.approx(sq[:top].sum() / sq.sum(), rel=1e-4)
            if not undefined:
                assert np.allclose(rep.per_query["tv" + suffix][rep.layers.index(l), hd][list(queries)],
                                   ref["tv"].reshape(S, -1).mean(0), rtol=1e-4, atol=1e-6)
        flops = {"A": 2 * n * n * d + 2 * n * k * d, "E": 2 * n * n * d + 2 * n * (2 + k) * d,
                 "B-vnorm": 4 * n * k * d + 2 * n * d}[scheme]
        assert row["flops_ratio"] == pytest.approx(flops / (4 * n * n * d))
        assert H == mlm.n_heads
    assert rep.meta["torch"] == torch.__version__ and rep.meta["dtype"] == "float32"
    assert [r["layer"] for r in rep.heads] == [0] * mlm.n_heads + [1] * mlm.n_heads


def test_minilm_top_k_identities_and_monte_carlo_calibration():
    """Real MiniLM heads: C gives TV = dropped mass and KL(P̂‖P) = −log(1−m) per query; A gives E[z²] = 1/k
    (5 standard errors over every head, query and seed of one layer)."""
    lm = minilm()
    trace = trace_text(lm, "The river bank was steep, so the fishermen walked to the bridge before dawn.")
    rep = sampling_report(lm, trace, "C", 4, 1, 0, downstream=False)
    tv, dropped, kl = (rep.per_query[x].astype(np.float64) for x in ("tv", "dropped", "kl"))
    assert np.allclose(tv, dropped, rtol=1e-5, atol=1e-6)
    assert np.allclose(kl, -np.log1p(-dropped), rtol=1e-4, atol=1e-6)
    assert dropped.max() > 0.05                       # the identity is exercised on real mass
    lt = trace.layers[2]
    n, k, S = trace.n, 8, 64
    valid = torch.ones(1, 1, n, n, dtype=torch.bool)
    scores = SC.dense_scores(lt.q[None], lt.k[None], valid, lt.q.shape[-1] ** -0.5)
    gens = [[seeding.generator(0, "minilm", 2, s)] for s in range(S)]
    est = SC.estimate("A", lt.q[None], lt.k[None], lt.v[None], scores, lt.probs[None], valid, [n], gens, k)
    z = M.row_metrics(lt.probs[None], M.log_probs(scores, valid), est.weights, lt.v[None])["z"]
    z2 = z.double().flatten() ** 2
    z2 = z2[torch.isfinite(z2)]
    assert abs(float(z2.mean()) - 1 / k) <= 5 * float(z2.std()) / math.sqrt(z2.numel())
