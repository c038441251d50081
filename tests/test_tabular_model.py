"""Tabular mode, the model: a trained tabular model folder loads through the project's loader unchanged; the
identities hold on it to 1e-5 as on text models; the paper form is exactly a mixture of experts; the row
explanation's prediction equals the model's own forward pass; evaluation is the closed form."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch

from interp import decompose as D
from interp.loader import load_model
from interp.tabular.encoding import MASK_ID, TableEncoder
from interp.tabular.explain import explain_row, expert_logits
from interp.tabular.model import TrainSettings, column_logits, evaluate, load_schema, predict, save, train
from interp.trace import trace_text

RTOL = 1e-5


def frame(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"a": x + rng.normal(scale=0.3, size=n), "b": rng.choice(["u v", "w"], n),
                         "c": -x + rng.normal(scale=0.5, size=n), "y": x})


@functools.lru_cache(maxsize=None)
def trained(form: str, tmp_root: str):
    df = frame()
    enc = TableEncoder.fit(df, target="y", bins=3)
    codes = enc.codes(df)
    model, info = train(enc, codes, TrainSettings(form=form, epochs=3, seed=1))
    folder = save(model, enc, f"{tmp_root}/{form}", info)
    return enc, codes, model, load_model(str(folder))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tabular-models"))


@pytest.mark.parametrize("form", ["bert", "paper"])
def test_folder_loads_and_predicts_like_the_trained_model(form, root):
    enc, codes, model, lm = trained(form, root)
    assert lm.config.model_type == ("bert" if form == "bert" else "expertlens-paper")
    assert lm.has_mlm_head and lm.max_tokens == len(enc.columns)
    assert load_schema(lm.folder).vocab == enc.vocab
    # the tokenizer gives one token per column, no special tokens added, ids = the encoder's ids
    text = enc.sentence(codes[0], mask=enc.target_index)
    ids = lm.tokenizer(text)["input_ids"]
    expected = enc.ids_of(codes[:1])[0].tolist()
    expected[enc.target_index] = MASK_ID
    assert ids == expected
    # predictions of the loaded folder equal those of the in-memory model
    t = enc.target_index
    assert torch.allclose(column_logits(lm.model, enc, codes, t), column_logits(model, enc, codes, t), atol=1e-5)


@pytest.mark.parametrize("form", ["bert", "paper"])
def test_identities_hold_on_the_tabular_model(form, root):
    enc, codes, _, lm = trained(form, root)
    for r in (0, 7, 31):
        tr = trace_text(lm, enc.sentence(codes[r], mask=enc.target_index))
        for explicit in (True, False):
            checks = D.identity_checks(lm, tr, explicit=explicit)
            assert checks["identity_dense_max_rel_err"] < RTOL
            assert checks["layer_output_max_rel_err"] < RTOL
            if form == "bert":
                assert checks["identity_ln_max_rel_err"] < RTOL
            else:
                assert checks["identity_ln_max_rel_err"] is None


def test_paper_form_is_exactly_a_mixture_of_experts(root):
    """logits_i = Σ_j a_ij z_j with z_j = decoder(v_j), against the model's own logits; and a wrong gate breaks it."""
    enc, codes, _, lm = trained("paper", root)
    for r in (0, 5, 44):
        tr = trace_text(lm, enc.sentence(codes[r], mask=enc.target_index))
        z = expert_logits(lm, tr)
        a = tr.layers[0].probs[0]
        with torch.no_grad():
            own = lm.model(input_ids=tr.input_ids[None]).logits[0]
        assert float((a @ z - own).norm() / own.norm()) < RTOL
        wrong = torch.roll(a, 1, dims=-1)
        assert float((wrong @ z - own).norm() / own.norm()) > 1e-3
        ex = explain_row(lm, enc, codes[r], enc.target_index)
        assert ex.moe_error < RTOL
        np.testing.assert_allclose(ex.experts, z[:, enc.domain_ids(enc.target_index)].numpy(), rtol=1e-6)


@pytest.mark.parametrize("form", ["bert", "paper"])
def test_row_explanation_matches_the_forward_pass(form, root):
    enc, codes, model, lm = trained(form, root)
    t = enc.target_index
    logits = column_logits(model, enc, codes, t)
    pred = predict(lm.model, enc, codes, t)
    for r in (2, 17):
        ex = explain_row(lm, enc, codes[r], t)
        np.testing.assert_allclose(ex.probs, torch.softmax(logits[r].double(), -1).numpy(), rtol=1e-4, atol=1e-6)
        assert ex.predicted == pred[r] and ex.truth == codes[r, t]
        assert ex.columns == enc.names and ex.words[t] == "[MASK]"
        tr = trace_text(lm, ex.text)
        for l, lt in enumerate(tr.layers):
            np.testing.assert_allclose(ex.gates[l], lt.probs[:, t, :].numpy(), rtol=1e-6)
            np.testing.assert_allclose(ex.gates[l].sum(-1), 1.0, rtol=1e-5)
            f = D.firing_strength(lm, lt, l)[:, t, :].numpy()
            np.testing.assert_allclose(ex.firing[l], f, rtol=1e-6)


def test_evaluate_closed_form():
    pred = np.array([0, 1, 2, 2, 0])
    truth = np.array([0, 2, 2, -1, 2])
    m = evaluate(pred, truth)
    assert m == {"rows": 4, "accuracy": 0.5, "mse": (0 + 1 + 0 + 4) / 4}
    assert evaluate(pred, truth, ordinal=False)["mse"] is None


def test_training_masks_each_column_in_turn():
    from interp.tabular.model import masked_examples
    ids = np.array([[5, 6, 7], [8, 9, 5]])
    x, y = masked_examples(ids)
    assert x.shape == (6, 3)
    assert ((x == MASK_ID).sum(1) == 1).all() and ((y != -100).sum(1) == 1).all()
    assert ((x == MASK_ID) == (y != -100)).all()
    assert torch.equal(y[y != -100], torch.tensor([5, 8, 6, 9, 7, 5]))
