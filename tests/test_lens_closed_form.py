"""The anchored lens's closed-form tangents (interp/tangents.py) give the same Jacobian as the generic path
(``vmap`` over ``torch.func.jvp`` of the re-run of the later layers) to float32 precision, on random models of
the BERT-layer families (with and without MLM head, several activations, LayerNorm weights and attention made
non-trivial) and on the real MiniLM models; families with other layers keep the generic path."""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

import interp.lenses as lenses
from interp.lenses import anchored_jacobian_closed_form, anchored_jacobian_vmap, anchored_lens
from interp.loader import build_random, load_model
from interp.trace import trace_text
from tests.engine_fixtures import loaded, long_text, minilm, model_folder

TEXT = "the quick brown fox [MASK] over the lazy dog near the river bank ."


@functools.lru_cache(maxsize=None)
def deep_model(model_type: str, with_head: bool, act: str = "gelu"):
    """A 4-layer random model whose LayerNorm weights/biases and attention logits are far from their
    initial values (so that every term of the tangent formulas matters), saved and loaded like a user's."""
    src = model_folder(model_type, with_head)
    folder = Path(tempfile.mkdtemp(prefix=f"expertlens-deep-{model_type}-"))
    shutil.copytree(src, folder, dirs_exist_ok=True)
    model = build_random(model_type, seed=3, with_head=with_head, vocab_size=len(load_model(str(src)).tokenizer),
                         pad_token_id=1, num_hidden_layers=4, hidden_act=act)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.add_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith(("query.weight", "key.weight")):
                p.mul_(6.0)
    model.config.pad_token_id = 1
    model.save_pretrained(str(folder))
    return load_model(str(folder))


def assert_same(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5):
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rtol * scale, float((a - b).abs().max()) / scale


@pytest.mark.parametrize("arch,with_head,act", [("bert", True, "gelu"), ("bert", False, "gelu"),
                                                ("roberta", True, "gelu_new"), ("electra", True, "gelu"),
                                                ("xlm-roberta", False, "silu"), ("camembert", True, "relu")])
def test_closed_form_equals_vmap_jvp(arch, with_head, act):
    lm = deep_model(arch, with_head, act)
    tr = trace_text(lm, TEXT)
    # layer 0: one-row layer 1, full layer 2, last layer 3; layer 2: the first later layer is also the last
    for layer, head, query in ((0, 1, 5), (1, 3, 0), (2, 0, tr.n - 1)):
        fast = anchored_jacobian_closed_form(lm, tr, layer, head, query)
        assert fast is not None
        p_ref, j_ref = anchored_jacobian_vmap(lm, tr, layer, head, query)
        assert fast[1].shape == j_ref.shape
        assert_same(fast[1], j_ref)
        assert_same(fast[0], p_ref)
    # the last layer has nothing after it: the generic path
    assert anchored_jacobian_closed_form(lm, tr, 3, 0, 1) is None


def test_tangent_batches_give_the_same_jacobian(monkeypatch):
    lm = deep_model("bert", False)
    tr = trace_text(lm, TEXT)
    whole = anchored_jacobian_closed_form(lm, tr, 0, 2, 4)[1]
    monkeypatch.setattr(lenses, "_tangent_chunk", lambda trace, h, t: 3)   # 8 tangents in batches of 3, 3, 2
    assert_same(anchored_jacobian_closed_form(lm, tr, 0, 2, 4)[1], whole)


@pytest.mark.parametrize("arch", ["distilbert", "albert", "mpnet", "modernbert", "deberta-v2"])
def test_other_families_keep_the_generic_path(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    assert anchored_jacobian_closed_form(lm, tr, 0, 1, 3) is None
    r = anchored_lens(lm, tr, 0, 1, 3)
    assert r.mixture_max_rel_err < 1e-5


def test_closed_form_lens_reconstructs_and_matches_first_order():
    """Independent of the generic path: the mixture is y exactly, and a small shift re-run through the model
    moves the output by J·shift to second order."""
    lm = deep_model("bert", True)
    tr = trace_text(lm, TEXT)
    q, h = 5, 2
    r = anchored_lens(lm, tr, 0, h, q)
    assert r.mixture_max_rel_err < 1e-5
    lt = tr.layers[0]
    delta = lt.v[h, 7] - lt.probs[h, q] @ lt.v[h]
    errs = []
    for t in (8.0, 4.0, 2.0):
        with torch.no_grad():
            moved = lenses.rest_of_network(lm, tr, 0, h, q, (t * delta)[None])[0].double()
        line = r.model_output.double() + t * (r.experts[7].double() - r.model_output.double())
        errs.append(float((moved - line).abs().max()))
    assert errs[1] < 0.35 * errs[0] and errs[2] < 0.35 * errs[1]     # O(t²): halving t quarters the gap


@pytest.mark.parametrize("name", ["minilm", "minilm-mlm"])
def test_real_minilm_closed_form_equals_vmap(name):
    lm = minilm() if name == "minilm" else load_model(name)
    tr = trace_text(lm, long_text(40))
    fast = anchored_jacobian_closed_form(lm, tr, 2, 5, 5)
    assert fast is not None
    p_ref, j_ref = anchored_jacobian_vmap(lm, tr, 2, 5, 5)
    assert_same(fast[1], j_ref)
    assert_same(fast[0], p_ref)
    r = anchored_lens(lm, tr, 2, 5, 5)
    assert r.mixture_max_rel_err < 1e-5


@pytest.mark.parametrize("name,words", [("bert", 0), ("roberta", 0), ("minilm", 0), ("minilm", 60),
                                        ("minilm-mlm", 60)])
def test_vocabulary_lens_equals_messages_through_the_vocabulary(name, words):
    """The vocabulary lens takes the value vectors through W_O^h and the vocabulary (as one d_h × V product
    for long inputs, message by message for short ones); its experts equal c(W_O^h v_j) W_outᵀ + b computed
    message by message in float64."""
    lm = {"minilm": minilm, "minilm-mlm": lambda: load_model("minilm-mlm")}.get(name, lambda: loaded(name))()
    tr = trace_text(lm, long_text(words) if words else TEXT)
    layer, head, q = 1, 3, 4
    r = lenses.vocabulary_lens(lm, tr, layer, head, q)
    W, b = lm.adapter.output_embeddings()
    wo = lm.adapter.layers[layer].o.weight.double()
    dh = tr.layers[layer].v.shape[-1]
    msg = tr.layers[layer].v[head].double() @ wo[:, head * dh:(head + 1) * dh].T
    msg = msg - msg.mean(-1, keepdim=True)                              # post-norm: the centred message
    ref = msg @ W.double().T + (b.double() if b is not None else 0)
    assert_same(r.experts.double(), ref)
