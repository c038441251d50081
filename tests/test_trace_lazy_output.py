"""The trace's output (MLM logits, or the pooled embedding) is computed on first access with the model's own head,
for every family, and is then exactly the model's own forward output (bit for bit: the same op on the same
last hidden state, under the same attention function)."""
from __future__ import annotations

import pickle

import pytest
import torch

from interp import decompose as D
from interp.trace import capture, trace_text
from tests.engine_fixtures import ARCHITECTURES, loaded

TEXTS = ["the cat sat", "the quick brown fox [MASK] over the lazy dog near the river bank .",
         "a dog ran to the city and saw the king"]


def own_output(lm, bt):
    """The model's own forward pass with its head on the same inputs (the project's attention function, no plan)."""
    enc = bt.encoded
    kwargs = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
    if enc.token_type_ids is not None:
        kwargs["token_type_ids"] = enc.token_type_ids
    with torch.no_grad():
        out = lm.model(**kwargs)
    if lm.has_mlm_head:
        return out.logits
    return lm.adapter.output(out.last_hidden_state, enc.attention_mask.bool())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_mlm_logits_are_computed_on_first_access_and_equal_the_models_own(arch):
    lm = loaded(arch)
    bt = capture(lm, TEXTS)
    whole_model = lm.adapter.base is lm.model            # the paper's model: its forward computes the logits
    assert (bt.output_value is not None) == whole_model
    tr = bt.example(1)
    D.overview(lm, tr)                                   # the overview never asks for the output
    assert (bt.output_value is not None) == whole_model
    ref = own_output(lm, bt)
    assert torch.equal(bt.output, ref)                   # bit for bit
    assert bt.output is bt.output                        # kept once computed
    for b in range(len(TEXTS)):
        n = int(bt.encoded.attention_mask[b].sum())
        assert torch.equal(bt.example(b).output, ref[b, :n])


@pytest.mark.parametrize("arch", ["bert", "modernbert", "distilbert"])
def test_pooled_output_of_an_encoder_without_head_is_lazy_and_exact(arch):
    lm = loaded(arch, with_head=False)
    bt = capture(lm, TEXTS)
    assert bt.output_value is None
    tr = bt.example(0)
    assert tr.output_value is None
    ref = own_output(lm, bt)
    assert torch.equal(tr.output, ref[0]) and torch.equal(bt.output, ref)


def test_a_pickled_trace_carries_its_output_and_not_the_model():
    lm = loaded("bert")
    tr = trace_text(lm, TEXTS[1])
    assert tr.output_value is None
    back = pickle.loads(pickle.dumps(tr))
    assert back.output_fn is None and torch.equal(back.output, tr.output)
