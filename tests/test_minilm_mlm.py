"""The shipped ``minilm-mlm`` checkpoint: loads offline with nothing missing or random, re-scores to its card,
beats ``mini-bert`` on both kept evaluations, and every exact identity holds on it."""
from __future__ import annotations

import json

import pytest
import torch

from interp.loader import DEFAULT_MODEL, MODELS_DIR, load_model
from interp.training import mlm_eval

FOLDER = MODELS_DIR / "minilm-mlm"
pytestmark = pytest.mark.skipif(not (FOLDER / "model.safetensors").exists(), reason="minilm-mlm not shipped")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((FOLDER / "scores.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lm():
    return load_model("minilm-mlm")


def test_loads_in_plain_transformers_with_no_missing_or_random_weights():
    from transformers import AutoModelForMaskedLM
    model, info = AutoModelForMaskedLM.from_pretrained(str(FOLDER), output_loading_info=True, local_files_only=True,
                                                       use_safetensors=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.vocab_size == 30522
    # decoder tied to the word embeddings
    assert torch.equal(model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight)
    assert (FOLDER / "model.safetensors").stat().st_size <= 50 * 1024 * 1024


def test_is_the_default_model_and_has_an_mlm_head(lm):
    assert DEFAULT_MODEL == "minilm-mlm"
    assert lm.has_mlm_head and lm.n_layers == 6 and lm.n_heads == 12
    assert next(lm.model.parameters()).dtype == torch.float32


def test_cloze_rescores_to_the_card(lm, card):
    got = mlm_eval.score_cloze(lm.model, lm.tokenizer)
    assert got.n == card["cloze"]["n"] >= 150
    assert got.top1 == pytest.approx(card["cloze"]["top1"], abs=1e-9)
    assert got.top5 == pytest.approx(card["cloze"]["top5"], abs=1e-9)


def test_heldout_sample_rescores_to_the_card(lm, card):
    rows = mlm_eval.load_heldout_words()["rows"][:card["heldout_sample"]["passages"]]
    got = mlm_eval.score_heldout_words(lm.model, lm.tokenizer, rows)
    assert got["masked_words"] == card["heldout_sample"]["masked_words"]
    assert got["top1"] == pytest.approx(card["heldout_sample"]["top1"], abs=1e-9)
    assert got["top5"] == pytest.approx(card["heldout_sample"]["top5"], abs=1e-9)


def test_beats_mini_bert_on_the_same_positions(card):
    """The comparison the card states: same held-out words, same cloze items, both models scored here."""
    mb = load_model("mini-bert")
    rows = mlm_eval.load_heldout_words()["rows"][:card["heldout_sample"]["passages"]]
    theirs = mlm_eval.score_heldout_words(mb.model, mb.tokenizer, rows)
    assert theirs["top1"] == pytest.approx(card["mini_bert"]["heldout_sample"]["top1"], abs=1e-9)
    assert card["heldout_sample"]["top1"] > theirs["top1"]
    cl = mlm_eval.score_cloze(mb.model, mb.tokenizer)
    assert cl.top1 == pytest.approx(card["mini_bert"]["cloze"]["top1"], abs=1e-9)
    assert card["cloze"]["top1"] > cl.top1


def test_predictions_are_the_models_own_softmax(lm):
    """What the app shows as predictions equals softmax of transformers' own logits."""
    from interp.trace import trace_text
    text = "The capital of France is [MASK]."
    tr = trace_text(lm, text)
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        ref = lm.model(**enc).logits[0]
    assert torch.allclose(tr.output.float(), ref.float(), rtol=1e-5, atol=1e-5)
    assert torch.allclose(torch.softmax(tr.output, -1), torch.softmax(ref, -1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("explicit", [False, True])
def test_both_identities_hold_on_it(lm, explicit):
    """Identity 1 (dense output = b_O + Σ_h Σ_j a_ij o_j) and identity 2 (post-LN, σ frozen) against the
    model's own forward pass, float32, to 1e-5."""
    from interp import decompose as D
    from interp.trace import trace_text
    tr = trace_text(lm, "Please enter your email [MASK] below so we can send you the receipt.")
    checks = D.identity_checks(lm, tr, explicit=explicit)
    assert checks["identity_dense_max_rel_err"] < 1e-5
    assert checks["identity_ln_max_rel_err"] < 1e-5
