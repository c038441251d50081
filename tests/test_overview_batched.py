"""The overview batched across layers and heads, and the trace's deferred per-layer work, pinned to the
definitions (float64, layer by layer), to the per-layer code path and to the model's own forward pass.

Tolerance: relative 1e-5 in float32 unless a test says otherwise."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from interp import decompose as D
from interp.trace import capture_encoded, encode, trace_text
from tests.engine_fixtures import loaded, model_folder

RTOL = 1e-5
TEXT = "the quick brown fox [MASK] over the lazy dog near the river bank and the king saw a big red house ."
FAMILIES = ("bert", "roberta", "albert", "distilbert", "electra", "mpnet", "modernbert", "deberta-v2",
            "expertlens-paper", "xlm-roberta")
FIELDS = ("effective_experts", "effective_experts_nospecial", "special_mass", "firing_total",
          "mean_effective_experts", "mean_special_mass")


def definitions(lm, tr) -> dict:
    """Every overview statistic straight from its definition, one layer and head at a time, in float64."""
    L, H, n = tr.n_layers, tr.n_heads, tr.n
    spec = tr.special
    out = {k: np.zeros((L, H, n)) for k in ("effective_experts", "effective_experts_nospecial", "special_mass",
                                             "firing_total")}
    out["top_expert"] = np.zeros((L, H, n), dtype=np.int64)
    for l, lt in enumerate(tr.layers):
        parts = lm.adapter.layers[l]
        P = lt.probs.double()
        msgs = D.messages(lm, lt, l).double()                                  # H × n × d, o_j = W_O v_j
        norms = (msgs - msgs.mean(-1, keepdim=True) if parts.norm == "post" else msgs).norm(dim=-1)
        sigma = None
        if parts.norm == "post":
            dense = lt.context.double() @ parts.o.weight.double().T + parts.o.bias.double()
            pre = dense + lt.hidden_in.double()
            sigma = torch.sqrt(pre.var(-1, unbiased=False) + parts.ln.eps)
        for h in range(H):
            p = P[h]
            out["effective_experts"][l, h] = torch.exp(torch.special.entr(p).sum(-1)).numpy()
            out["special_mass"][l, h] = p[:, spec].sum(-1).numpy()
            fire = (p * norms[h][None, :]).sum(-1)
            out["firing_total"][l, h] = (fire / sigma if sigma is not None else fire).numpy()
            out["top_expert"][l, h] = p.argmax(-1).numpy()
            ns = p[:, ~spec] / p[:, ~spec].sum(-1, keepdim=True)
            eff_ns = torch.exp(torch.special.entr(ns).sum(-1)).numpy()
            out["effective_experts_nospecial"][l, h] = np.where(spec.numpy(), np.nan, eff_ns)
    out["mean_effective_experts"] = out["effective_experts"].mean(-1)
    out["mean_special_mass"] = out["special_mass"].mean(-1)
    return out


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = RTOL, atol: float = 2.5e-7, what: str = ""):
    """Within rtol·|want| + atol; atol 2.5e-7 (two float32 ulps of 1) covers masses formed as 1 − Σ_S a_ij."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    assert (np.isnan(got) == np.isnan(want)).all(), what
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok]) - rtol * np.abs(want[ok])
    assert err.max(initial=-1.0) <= atol, f"{what}: off by {err.max()}"


def device_paths_overview(lm, text: str, **kw):
    """The accelerator's paths, run on the CPU: no gate sums in the capture (entropies from the stacked gates),
    torch argmax and one matmul for the gate-weighted sums."""
    tr = capture_encoded(lm, encode(lm, [text]), gate_stats=False).example(0)
    D._DEVICE_PATHS_ON_CPU = True
    try:
        return D.overview(lm, tr, **kw)
    finally:
        D._DEVICE_PATHS_ON_CPU = False


def layer_by_layer_trace(lm, text: str):
    """A trace whose layers no longer hold slices of the stacked gates: the overview reads them one by one."""
    tr = trace_text(lm, text)
    for lt in tr.layers:
        lt.probs = lt.probs.clone()
    assert tr.stacked_probs() is None
    return tr


@pytest.mark.parametrize("arch", FAMILIES)
def test_every_path_of_the_overview_equals_the_definitions(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    want = definitions(lm, tr)
    stacked = tr.stacked_probs() is not None
    assert stacked == lm.adapter.attention_via_interface     # the capture stacks the gates of interface families
    runs = {"cpu": D.overview(lm, tr, with_checks=True),
            "device": device_paths_overview(lm, TEXT, with_checks=True),
            "per-layer": D.overview(lm, layer_by_layer_trace(lm, TEXT), with_checks=True)}
    for name, ov in runs.items():
        for f in FIELDS:
            assert_close(getattr(ov, f), want[f], what=f"{name} {f}")
        assert (ov.top_expert == want["top_expert"]).all(), name
        assert ov.role == runs["cpu"].role, name
        assert ov.checks["identity_dense_max_rel_err"] < RTOL
    # roles from the overview's three diagonals equal the head view's, which reads the full positional profile
    for l in range(tr.n_layers):
        for h in range(tr.n_heads):
            assert runs["cpu"].role[l][h] == D.head_view(lm, tr, l, h).role


@pytest.mark.parametrize("arch", ("bert", "modernbert", "expertlens-paper", "deberta-v2"))
def test_top_firing_expert_on_every_path(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    want = np.stack([D.firing_strength(lm, lt, l).argmax(-1).numpy() for l, lt in enumerate(tr.layers)])
    assert (D.overview(lm, tr, with_checks=False, with_top_firing=True).top_firing_expert == want).all()
    assert (device_paths_overview(lm, TEXT, with_checks=False, with_top_firing=True).top_firing_expert == want).all()


def per_layer_checks(lm, tr) -> tuple[float, float | None]:
    """The per-layer float64 checks (the overview's measure before it was batched)."""
    errs = [D._layer_checks(lm, lt, l) for l, lt in enumerate(tr.layers)]
    ln = [e[1] for e in errs if e[1] is not None]
    return max(e[0] for e in errs), (max(ln) if ln else None)


@pytest.mark.parametrize("arch", ("bert", "albert", "modernbert", "expertlens-paper", "deberta-v2", "mpnet"))
@pytest.mark.parametrize("in_place", (True, False))
def test_batched_identity_checks_measure_a_wrong_gate_as_the_per_layer_checks_do(arch, in_place):
    """Head 0 of the last layer sent to one wrong key: the batched float32 errors equal the per-layer float64
    ones — identity 1 to rtol 1e-5; identity 2, whose error from a wrong gate is small against the LayerNorm's
    output (~1e-4), to 1e-6 absolute, the float32 floor of that measure (its value on an unchanged trace is
    ~2e-7). ``in_place`` keeps the stacked gates (one batched pass), otherwise the layer holds a copy and the
    overview goes layer by layer."""
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    lt = tr.layers[-1]
    if not in_place:
        lt.probs = lt.probs.clone()
    wrong = torch.zeros_like(lt.probs[0])
    wrong[:, tr.n // 2] = 1.0
    lt.probs[0] = wrong
    assert (tr.stacked_probs() is not None) == (in_place and lm.adapter.attention_via_interface)
    want_dense, want_ln = per_layer_checks(lm, tr)
    assert want_dense > 1e-3
    for ov in (D.overview(lm, tr), _device_overview_of(lm, tr)):
        got = ov.checks
        assert abs(got["identity_dense_max_rel_err"] - want_dense) <= RTOL * want_dense
        if want_ln is None:
            assert got["identity_ln_max_rel_err"] is None
        else:
            assert abs(got["identity_ln_max_rel_err"] - want_ln) <= 1e-6


def _device_overview_of(lm, tr):
    D._DEVICE_PATHS_ON_CPU = True
    try:
        return D.overview(lm, tr)
    finally:
        D._DEVICE_PATHS_ON_CPU = False


@pytest.mark.parametrize("arch", ("bert", "modernbert", "expertlens-paper"))
def test_unchanged_trace_checks_are_exact_and_below_the_bar(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    checks = D.overview(lm, tr).checks
    want_dense, want_ln = per_layer_checks(lm, tr)
    assert checks["identity_dense_max_rel_err"] < RTOL and want_dense < RTOL
    assert (checks["identity_ln_max_rel_err"] is None) == (want_ln is None)
    if want_ln is not None:
        assert checks["identity_ln_max_rel_err"] < RTOL and want_ln < RTOL


@pytest.mark.parametrize("arch", ("bert", "albert", "distilbert", "modernbert", "deberta-v2", "expertlens-paper"))
def test_deferred_layer_work_is_computed_on_first_use_with_the_models_own_modules(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    D.overview(lm, tr)
    assert all(lt._dense_out is None and lt._attn_out is None for lt in tr.layers)   # the overview needs neither
    for l, lt in enumerate(tr.layers):
        parts = lm.adapter.layers[l]
        with torch.no_grad():
            dense = parts.o(lt.context) if parts.o is not None else lt.context
            assert torch.equal(lt.dense_out, dense)
            if parts.norm == "post":
                assert torch.equal(lt.attn_out, parts.ln(dense + lt.hidden_in))
                want_sigma = torch.sqrt((dense + lt.hidden_in).double().var(-1, unbiased=False) + parts.ln.eps)
                assert_close(lt.ln_sigma.numpy(), want_sigma.numpy(), rtol=1e-6, atol=0)
            else:
                assert lt.ln_sigma is None
                assert torch.equal(lt.attn_out, dense + lt.hidden_in if parts.norm == "pre" else dense)
            # the model's own forward pass: its FFN block applied to the sublayer output gives the layer output
            out = parts.ffn(lt.attn_out)
        assert float((out - lt.hidden_out).norm(dim=-1).max() / lt.hidden_out.norm(dim=-1).min()) < RTOL
    assert lt.dense_out is lt.dense_out                                               # kept once computed


def test_a_pickled_trace_keeps_its_values_and_not_the_model():
    lm = loaded("bert")
    tr = trace_text(lm, TEXT)
    back = pickle.loads(pickle.dumps(tr))
    for a, b in zip(tr.layers, back.layers):
        assert b._parts is None
        for f in ("dense_out", "attn_out", "ln_sigma", "probs", "v", "gate_stats"):
            assert torch.equal(getattr(a, f), getattr(b, f))
    assert D.overview(lm, back).role == D.overview(lm, tr).role


def test_padded_batch_example_uses_the_stacked_gates_and_equals_the_single_text():
    lm = loaded("bert")
    short = "the cat sat on the mat"
    bt = capture_encoded(lm, encode(lm, [TEXT, short]))
    ex = bt.example(1)
    assert ex.stacked_probs() is not None and not ex.stacked_probs().is_contiguous()
    alone, padded = D.overview(lm, trace_text(lm, short)), D.overview(lm, ex)
    for f in FIELDS:
        assert_close(getattr(padded, f), getattr(alone, f), what=f)
    assert (padded.top_expert == alone.top_expert).all() and padded.role == alone.role


def _overview_ops(arch: str, layers: int) -> int:
    from benchmarks.bench_engine import count_ops
    from interp.loader import load_model
    lm = load_model(str(model_folder(arch, True, 0, num_hidden_layers=layers)))
    tr = capture_encoded(lm, encode(lm, [TEXT]), gate_stats=False).example(0)
    D._DEVICE_PATHS_ON_CPU = True
    try:
        D.overview(lm, tr)
        return sum(count_ops(lambda: D.overview(lm, tr)).values())
    finally:
        D._DEVICE_PATHS_ON_CPU = False


@pytest.mark.parametrize("arch", ("bert", "modernbert"))
def test_the_accelerator_path_launches_the_same_ops_for_any_depth(arch):
    """Batched across layers: on the accelerator's path the overview (with its checks) runs the same number of
    ops for a 3-layer and a 6-layer model; one op more per layer would show here."""
    assert _overview_ops(arch, 3) == _overview_ops(arch, 6)


def test_stacked_weights_follow_an_in_place_change_of_a_weight():
    """The weights stacked for the overview are rebuilt when a weight changes in place (this test's own copy of
    a model is changed, never a shared one): firing totals scale with W_O."""
    from interp.loader import load_model
    own = load_model(str(model_folder("bert")))
    tr = trace_text(own, TEXT)
    before = D.overview(own, tr, with_checks=False).firing_total
    assert D.stacked_weights(own) is D.stacked_weights(own)
    with torch.no_grad():
        own.adapter.layers[1].o.weight.mul_(2.0)
    want = definitions(own, tr)["firing_total"]
    after = D.overview(own, tr, with_checks=False).firing_total
    assert_close(after, want, what="firing after the change")
    assert not np.allclose(after[1], before[1], rtol=1e-3)


def test_roles_of_every_head_at_once_equal_head_role_one_by_one():
    """The overview labels all heads with one numpy pass; each label is head_role's for that head (the same
    thresholds, the same order), on values at, below and above the threshold."""
    rng = np.random.default_rng(0)
    L, H = 7, 9
    grid = np.array([0.0, 0.2, 0.49999, 0.5, 0.50001, 0.9])
    low = [0.3, 0.2, 0.1, 0.2, 0.1, 0.1]                       # mostly below the threshold: every role occurs
    spec = rng.choice(grid, (L, H), p=low)
    prof = rng.choice(grid, (L, H, 3), p=low)
    eff = rng.choice(grid, (L, H))
    got = D._roles(spec, prof, eff)
    for l in range(L):
        p = D.PositionalProfile(np.arange(-1, 2), prof[l], spec[l], spec[l], spec[l], True)
        assert got[l] == [D.head_role(float(spec[l, h]), p, h, float(eff[l, h])) for h in range(H)]
    assert {r for row in got for r in row} == set(D.ROLES)


@pytest.mark.parametrize("arch", ("bert", "electra"))
def test_the_capture_runs_the_ops_of_the_base_models_own_forward(arch):
    """On the accelerator's path the capture adds no op to the base model's own forward pass (the stacked gate
    and head-output buffers take the place of the fresh softmax and contiguous copy; the MLM logits wait until
    they are read). (ModernBERT reports only its final-normed last state, so its trace rebuilds the last layer's
    output: a few ops more.)"""
    from benchmarks.bench_engine import count_ops
    from interp.trace import forward
    lm = loaded(arch)
    enc = encode(lm, [TEXT])
    base = lambda: forward(lm, enc, hidden_states=True, module=lm.adapter.base)      # noqa: E731
    cap = lambda: capture_encoded(lm, enc, gate_stats=False).example(0)               # noqa: E731
    base(), cap()
    own, captured = count_ops(base), count_ops(cap)
    extra = {k: captured.get(k, 0) - own.get(k, 0) for k in set(own) | set(captured)}
    # the one op the capture adds: the mask of ordinary keys (~special) it is handed, on the host
    assert {k: v for k, v in extra.items() if v} == {"bitwise_not": 1}, extra


@pytest.mark.parametrize("arch", ("bert", "modernbert"))
def test_the_accelerator_path_of_the_overview_stays_within_its_op_budget(arch):
    """The overview with its identity checks on the accelerator's path: at most 32 ops for every layer and head
    together (statistics, checks, the transfer to the host); a change that adds launches shows here."""
    assert _overview_ops(arch, 6) <= 32
