"""The shipped checkpoints in models/: they load (mini-bert with plain transformers; paper and cbow through the
project's loader, since their architecture is the project's own `expertlens-paper` type), they are what their
cards say, the paper model is exactly a mixture of continuous word experts, cbow's gates are uniform, mini-bert
predicts sensibly, and the recorded held-out metrics reproduce on a fixed subset."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
NAMES = ("paper", "cbow", "mini-bert")

pytestmark = pytest.mark.skipif(not all((MODELS / n / "model.safetensors").exists() for n in NAMES),
                                reason="embedded checkpoints not built (make models)")


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((MODELS / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def loaded():
    from interp.loader import load_model
    return {n: load_model(n, device="cpu") for n in NAMES}


@pytest.fixture(scope="module")
def demos() -> list[dict]:
    return json.loads((MODELS / "demo_texts.json").read_text(encoding="utf-8"))["texts"]


def test_each_checkpoint_loads_through_the_project_loader(loaded):
    for name, lm in loaded.items():
        assert lm.has_mlm_head, name
        assert lm.dtype == torch.float32 and all(p.dtype == torch.float32 for p in lm.model.parameters())
        assert lm.tokenizer.is_fast and lm.tokenizer.mask_token == "[MASK]" and lm.tokenizer.mask_token_id == 4
    assert loaded["mini-bert"].config.model_type == "bert"
    assert (loaded["mini-bert"].n_layers, loaded["mini-bert"].n_heads) == (6, 8)
    assert loaded["mini-bert"].max_tokens == 512
    for name in ("paper", "cbow"):
        assert loaded[name].config.model_type == "expertlens-paper"
        assert (loaded[name].n_layers, loaded[name].n_heads) == (1, 1)
    assert loaded["paper"].config.gate == "attention" and loaded["cbow"].config.gate == "uniform"


def test_mini_bert_loads_with_plain_transformers_without_missing_or_unexpected_keys():
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM
    model, info = AutoModelForMaskedLM.from_pretrained(str(MODELS / "mini-bert"), output_loading_info=True,
                                                       dtype=torch.float32)
    assert isinstance(model, BertForMaskedLM)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tok = AutoTokenizer.from_pretrained(str(MODELS / "mini-bert"))
    assert tok.is_fast and tok.mask_token_id == 4
    enc = tok("The [MASK] sat.")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "the", "[MASK]", "sat", ".", "[SEP]"]


def test_paper_models_need_the_project_type_and_load_with_no_missing_keys():
    """paper/cbow: custom architecture; importing interp.paper_model registers it with the Auto classes."""
    import interp.paper_model  # noqa: F401
    from transformers import AutoModelForMaskedLM
    for name in ("paper", "cbow"):
        model, info = AutoModelForMaskedLM.from_pretrained(str(MODELS / name), output_loading_info=True,
                                                           dtype=torch.float32)
        assert type(model).__name__ == "PaperForMaskedLM"
        assert not info["missing_keys"] and not info["unexpected_keys"], name


def test_storage_is_float16_upcast_on_load_and_small(loaded):
    from safetensors import safe_open
    total = 0
    for name in NAMES:
        path = MODELS / name / "model.safetensors"
        total += path.stat().st_size
        with safe_open(str(path), framework="pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}
        assert {t.dtype for t in stored.values()} == {torch.float16}, name
        params = dict(loaded[name].model.named_parameters())
        for k, t in stored.items():
            if k in params:                                   # loading upcasts exactly (fp16 ⊂ fp32)
                assert torch.equal(params[k].detach(), t.float()), (name, k)
    assert total <= 40e6
    tokenizers = {(MODELS / n / "tokenizer.json").read_bytes() for n in NAMES}
    assert len(tokenizers) == 1                                # one shared tokenizer


def test_paper_logits_are_the_gate_weighted_sum_of_continuous_word_experts(loaded, demos):
    """logits_i = Σ_j a_ij z_j with z_j = ρ·v_j + b and v_j = W_V(e_{x_j} + p_j), recomputed from the weights."""
    from interp.trace import trace_text
    lm = loaded["paper"]
    m = lm.model
    for text in [d["text"] for d in demos if d["id"] in ("austen-fortune", "kjv-earth", "everyday-two-masks")]:
        t = trace_text(lm, text)
        ids = t.input_ids
        u = m.word_embeddings.weight[ids].double() + m.position_embeddings.weight[: len(ids)].double()
        v = u @ m.attention.value.weight.double().T
        assert (v - t.layers[0].v[0].double()).abs().max() <= 1e-5 * v.abs().max()
        z = v @ m.decoder.weight.double().T + m.decoder.bias.double()          # n × V experts
        a = t.layers[0].probs[0].double()
        assert torch.allclose(a.sum(-1), torch.ones(len(ids), dtype=torch.float64), atol=1e-6)
        mix = a @ z
        err = (mix - t.output.double()).abs().max() / t.output.double().abs().max()
        assert err <= 1e-5, float(err)


def test_paper_three_lenses_coincide_with_the_experts(loaded):
    from interp.lenses import all_lenses
    from interp.trace import trace_text
    lm = loaded["paper"]
    t = trace_text(lm, "In the beginning God created the heaven and the [MASK].")
    i = t.tokens.index("[MASK]")
    z = lm.model.decoder(t.layers[0].v[0]).double()
    for name, res in all_lenses(lm, t, 0, 0, i).items():
        scale = float(z.abs().max())
        assert float((res.experts.double() - z).abs().max()) <= 1e-5 * scale, name
        assert res.mixture_max_rel_err <= 1e-5, name


def test_cbow_gates_are_uniform_over_context_positions(loaded, demos):
    from interp.trace import trace_text
    lm = loaded["cbow"]
    for text in [d["text"] for d in demos if d["id"] in ("austen-daughters", "jargon-program")]:
        t = trace_text(lm, text)
        n = t.n
        a = t.layers[0].probs[0]
        expected = (torch.ones(n, n) - torch.eye(n)) / (n - 1)
        assert torch.allclose(a, expected, atol=1e-7)


@pytest.mark.parametrize("demo_id,word", [("kjv-earth", "earth"), ("kjv-light", "light"),
                                          ("austen-darcy", "darcy"), ("austen-daughters", "daughters")])
def test_mini_bert_predicts_the_true_word_in_its_top_5(loaded, demos, demo_id, word):
    from interp.trace import trace_text
    lm = loaded["mini-bert"]
    text = next(d["text"] for d in demos if d["id"] == demo_id)
    t = trace_text(lm, text)
    i = t.tokens.index("[MASK]")
    top = lm.tokenizer.convert_ids_to_tokens(t.output[i].topk(5).indices.tolist())
    assert word in top, top


def test_recorded_heldout_metrics_reproduce_on_the_fixed_subset(loaded, metrics):
    """Re-score models/heldout_sample.json with the loader's float32 models (the full forward pass) and compare
    with the counts recorded when the checkpoints were evaluated on the training machine."""
    sample = json.loads((MODELS / "heldout_sample.json").read_text(encoding="utf-8"))["sequences"]
    assert len({s["corpus"] for s in sample}) == len(metrics["data"]["corpora"])
    for name, lm in loaded.items():
        correct = total = 0
        for s in sample:
            ids = torch.tensor([s["input_ids"]])
            pos = torch.tensor(s["masked"])
            inp = ids.clone()
            inp[0, pos] = lm.tokenizer.mask_token_id
            with torch.no_grad():
                logits = lm.model(input_ids=inp, attention_mask=torch.ones_like(inp)).logits[0]
            correct += int((logits[pos].argmax(-1) == ids[0, pos]).sum())
            total += len(pos)
        rec = next(r for r in metrics["models"][name]["runs"] if r["seed"] == metrics["models"][name]["shipped_seed"])
        assert total == rec["sample"]["masked_tokens"]
        # float32 on another device may flip a near-tie or two
        assert abs(correct - rec["sample"]["correct_top1"]) <= max(2, 0.003 * total), (name, correct, rec["sample"])


def test_cards_state_the_recorded_metrics(metrics):
    from interp.training.cards import results_table
    table = results_table(metrics)
    for name in NAMES:
        card = (MODELS / name / "README.md").read_text(encoding="utf-8")
        assert table in card
        for heading in ("## Training data", "## Tokenizer", "## Training", "## Held-out results", "## Intended use",
                        "## Limits"):
            assert heading in card, (name, heading)
    assert table in (MODELS / "README.md").read_text(encoding="utf-8")
    assert metrics["models"]["mini-bert"]["runs"][0]["top1"] >= 0.35
    cmp = metrics["paper_vs_cbow"]
    assert cmp["seeds"] >= 2 and cmp["paper_beats_cbow_beyond_spread"]


def test_demo_texts_cover_the_cases_and_encode(loaded, demos):
    from interp.trace import encode
    ids = [d["id"] for d in demos]
    assert len(ids) == len(set(ids))
    assert all({"id", "lang", "text", "has_mask"} <= set(d) for d in demos)
    assert any(d["has_mask"] for d in demos) and any(not d["has_mask"] for d in demos)
    assert {"zh", "ja", "he", "ar"} <= {d["lang"] for d in demos}
    lm = loaded["mini-bert"]
    enc = encode(lm, [d["text"] for d in demos])
    lengths = enc.attention_mask.sum(1).tolist()
    assert sum(n > 200 for n in lengths) >= 3
    assert all(tr is None for tr in enc.truncation)              # everything fits in 512 positions
    for d, toks in zip(demos, enc.tokens):
        assert (d["has_mask"]) == ("[MASK]" in toks), d["id"]
