"""The three lenses: the anchored lens reproduces the model's output exactly; the counterfactual lens equals a
full re-run of the model with the gate row forced one-hot; for the paper model all three coincide with z_j."""
from __future__ import annotations

import pytest
import torch

from interp.attention import AttentionPlan
from interp.lenses import LENSES, anchored_lens, counterfactual_lens, vocabulary_lens
from interp.trace import encode, forward, model_output, trace_text
from tests.engine_fixtures import loaded, minilm

TEXT = "the quick brown fox [MASK] over the lazy dog near the river bank ."


class OneHotRow(AttentionPlan):
    """Force head h's row i at layer l onto key j (an independent way to run the counterfactual)."""

    def __init__(self, layer_of, layer, head, query, key):
        super().__init__(layer_of)
        self.target = (layer, head, query, key)

    def rows(self, layer, query, key, value, scores, probs, key_valid):
        l, h, i, j = self.target
        if layer != l:
            return None
        p = probs.clone()
        p[:, h, i] = 0
        p[:, h, i, j] = 1
        return p


def rerun_one_hot(lm, text, layer, head, query, key):
    enc = encode(lm, [text])
    out = forward(lm, enc, OneHotRow(lm.adapter.layer_of, layer, head, query, key))
    y = model_output(lm, out, enc)
    return y[0, query] if lm.has_mlm_head else y[0]


@pytest.mark.parametrize("arch", ["bert", "roberta", "electra", "distilbert", "xlm-roberta", "albert", "mpnet",
                                  "modernbert", "deberta-v2"])
@pytest.mark.parametrize("layer", [0, 1])
def test_anchored_lens_reconstructs_model_output(arch, layer):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    q = tr.mask_positions(lm.tokenizer.mask_token_id)[0]
    r = anchored_lens(lm, tr, layer, 1, q)
    assert r.mixture_max_rel_err < 1e-5
    # the geometric pool of the experts' distributions is the model's distribution
    assert r.pool_kl < 1e-9
    assert float((r.rerun_output - r.model_output).abs().max()) <= 1e-5 * float(r.model_output.abs().max())
    # the experts are not all the model's output (the lens says something)
    assert float((r.experts - r.model_output).abs().max()) > 1e-4


@pytest.mark.parametrize("arch", ["bert", "distilbert", "albert", "modernbert"])
def test_counterfactual_lens_equals_full_rerun(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    q = 3
    r = counterfactual_lens(lm, tr, 0, 2, q)
    for j in (0, 4, tr.n - 1):
        ref = rerun_one_hot(lm, TEXT, 0, 2, q, j)   # a full forward pass of the model under a plan
        assert float((r.experts[j] - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


@pytest.mark.parametrize("arch", ["bert", "mpnet", "deberta-v2"])
def test_anchored_is_first_order_of_counterfactual(arch):
    """Scaling a shift towards expert j by t, the re-run differs from the anchored line by O(t²)."""
    from interp.lenses import rest_of_network
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    lt = tr.layers[0]
    q, h, j = 3, 1, 6
    a = anchored_lens(lm, tr, 0, h, q)
    delta = lt.v[h, j] - lt.probs[h, q] @ lt.v[h]
    errs = []
    for t in (4.0, 2.0):
        with torch.no_grad():
            exact = rest_of_network(lm, tr, 0, h, q, (t * delta)[None])[0]
        linear = a.model_output + t * (a.experts[j] - a.model_output)
        errs.append(float((exact - linear).double().norm()))
    assert errs[0] > 1e-5  # the network is measurably nonlinear along this shift
    assert errs[1] < errs[0] * 0.5  # halving t at least halves the gap (second order)


def test_paper_model_all_three_lenses_coincide_with_closed_form():
    lm = loaded("expertlens-paper")
    tr = trace_text(lm, TEXT)
    q = 5
    lt = tr.layers[0]
    dec = lm.model.decoder
    z = lt.v[0] @ dec.weight.T + dec.bias          # z_j = ρ·v_j + b (paper §1)
    # logits_i = Σ_j a_ij z_j exactly
    assert float((lt.probs[0, q] @ z - tr.output[q]).abs().max()) <= 1e-5 * float(tr.output[q].abs().max())
    for name, fn in LENSES.items():
        r = fn(lm, tr, 0, 0, q)
        assert float((r.experts - z).abs().max()) <= 1e-5 * float(z.abs().max()), name


def test_minilm_lenses_act_on_pooled_embedding():
    lm = minilm()
    text = "Bidirectional attention is a mixture of continuous word experts."
    tr = trace_text(lm, text)
    r = anchored_lens(lm, tr, 4, 7, 3)
    assert r.output_kind == "pooled-embedding" and r.pool_kl is None
    assert r.mixture_max_rel_err < 1e-5
    c = counterfactual_lens(lm, tr, 4, 7, 3)
    ref = rerun_one_hot(lm, text, 4, 7, 3, 2)
    assert float((c.experts[2] - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    v = vocabulary_lens(lm, tr, 4, 7, 3)
    assert v.output_kind == "vocabulary-scores" and v.exactness == "heuristic"


def test_lens_rejects_out_of_range_selection():
    lm = loaded("bert")
    tr = trace_text(lm, TEXT)
    with pytest.raises(ValueError, match="query"):
        anchored_lens(lm, tr, 0, 0, tr.n)
    with pytest.raises(ValueError, match="head"):
        anchored_lens(lm, tr, 0, 99, 0)


def test_lens_registry_drives_the_cli_and_accepts_a_new_lens(tmp_path):
    """A new lens is one decorated function: the registry, the analysis JSON and the CLI default all see it."""
    import argparse

    from interp import lenses as Lm
    from interp.analysis import analyze
    from interp.cli import analyze as cli
    assert set(Lm.LENSES) == set(Lm.LENS_INFO) == {"vocabulary", "anchored", "counterfactual"}
    assert Lm.LENS_INFO["counterfactual"].progressive and not Lm.LENS_INFO["anchored"].progressive

    @Lm.register_lens("uniform-test", "heuristic", "every expert predicts the model's own output")
    def uniform(lm, trace, layer, head, query):
        y = trace.output[query]
        gates = trace.layers[layer].probs[head, query]
        z = y[None].expand(trace.n, -1)
        return Lm.LensResult("uniform-test", layer, head, query, "mlm-logits", z, gates, gates @ z, y, "heuristic")

    try:
        p = argparse.ArgumentParser()
        cli.add_arguments(p)
        args = p.parse_args(["--text", "x"])
        assert "uniform-test" in args.lenses.split(",")
        lm = loaded("bert")
        out = analyze(None, TEXT, layer=1, head=0, lenses=["uniform-test", "anchored"], lm=lm)
        s = out["head_view"]["lenses"]["uniform-test"]
        assert s["exactness"] == "heuristic" and s["mixture_max_abs_err"] < 1e-5
    finally:
        Lm.LENSES.pop("uniform-test", None)
        Lm.LENS_INFO.pop("uniform-test", None)
        Lm.EXACTNESS.pop("uniform-test", None)


@pytest.mark.parametrize("arch", ["bert", "modernbert"])
def test_progressive_counterfactual_equals_full_computation(arch):
    """The batches (top-gate experts first) carry the same numbers as the full lens and as a plan re-run."""
    from interp.lenses import counterfactual_batches, counterfactual_order
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    layer, head, q = 0, 1, 3
    full = counterfactual_lens(lm, tr, layer, head, q)
    batches = list(counterfactual_batches(lm, tr, layer, head, q, first=3, step=4))
    order = counterfactual_order(tr, layer, head, q)
    assert batches[0][0] == order[:3]                     # the strongest gates come first
    gates = tr.layers[layer].probs[head, q]
    assert float(gates[batches[0][0]].min()) >= float(gates[[j for b in batches[1:] for j in b[0]]].max())
    seen = sorted(j for idx, _ in batches for j in idx)
    assert seen == list(range(tr.n))                      # every expert exactly once
    for idx, z in batches:
        ref = full.experts[idx]
        assert float((z - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    j = batches[0][0][0]
    ref = rerun_one_hot(lm, TEXT, layer, head, q, j)
    assert float((batches[0][1][0] - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    got = []
    counterfactual_lens(lm, tr, layer, head, q, on_batch=lambda idx, z: got.append(list(idx)))
    assert got[0] == order[:len(got[0])] and sorted(sum(got, [])) == list(range(tr.n))
