"""Loading models safely, and a clear message for every bad model or text."""
from __future__ import annotations

import hashlib
import json
import shutil
import threading

import pytest
import torch

from interp.loader import REGISTRY, ModelLoadError, load_model, resolve_folder
from interp.trace import InputError, clean_text, trace_text
from tests.engine_fixtures import loaded, minilm, model_folder


def test_minilm_loads_as_bert_without_mlm_head():
    lm = minilm()
    d = lm.describe()
    assert (d["name"], d["type"], d["layers"], d["heads"], d["hidden"], d["has_mlm_head"]) == \
        ("minilm", "bert", 6, 12, 384, False)
    assert not lm.model.training
    assert lm.config._attn_implementation == "expertlens"
    assert all(p.dtype == torch.float32 for p in lm.model.parameters())


@pytest.mark.parametrize("arch", ["bert", "roberta", "electra", "distilbert", "expertlens-paper"])
def test_every_architecture_loads_from_a_folder(arch):
    lm = loaded(arch)
    assert lm.has_mlm_head
    assert lm.describe()["type"] == arch


def test_encoder_without_head_is_loaded_without_one():
    lm = loaded("bert", with_head=False)
    assert not lm.has_mlm_head
    tr = trace_text(lm, "the cat sat")
    assert tr.output.shape == (lm.adapter.layers[0].head_dim * lm.n_heads,)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found") as e:
        load_model(str(tmp_path / "nowhere"))
    assert e.value.code == "missing"


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="no config.json") as e:
        load_model(str(tmp_path))
    assert e.value.code == "not-a-model"


def test_pickle_only_weights_are_refused_without_unpickling(tmp_path):
    folder = _copy(model_folder("bert"), tmp_path / "m")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")  # never opened
    with pytest.raises(ModelLoadError, match="only pickle weights") as e:
        load_model(str(folder))
    assert e.value.code == "pickle-only"


def test_folder_with_only_pickle_weights_and_no_config_is_told_so(tmp_path):
    """A folder holding only pytorch_model.bin: the message names the pickle weights, not a missing config."""
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle")  # never opened
    with pytest.raises(ModelLoadError) as e:
        load_model(str(tmp_path))
    assert e.value.code == "pickle-only"
    msg = str(e.value)
    assert "pytorch_model.bin" in msg and "pickle weights" in msg and "will not load" in msg
    assert "\n" not in msg


def test_deberta_with_convolution_is_refused_with_reason(tmp_path):
    from interp.adapters import adapter_for
    from interp.loader import build_random
    model = build_random("deberta-v2", conv_kernel_size=3)
    with pytest.raises(ValueError, match="convolution after layer 0"):
        adapter_for(model)


@pytest.mark.parametrize("arch", ["mpnet", "deberta-v2"])
def test_families_outside_the_attention_interface_refuse_plans(arch):
    from interp.attention import AttentionPlan
    from interp.trace import encode, forward
    lm = loaded(arch)
    with pytest.raises(ValueError, match="computes .*attention inside its own module"):
        forward(lm, encode(lm, ["the cat sat"]), AttentionPlan(lm.adapter.layer_of))


def test_albert_shared_attention_module_maps_calls_to_layers():
    """One attention module serves every ALBERT layer: a plan sees layers 0, 1, … in call order."""
    from interp.attention import AttentionPlan
    from interp.trace import encode, forward
    lm = loaded("albert")
    assert len({id(p.attention_module) for p in lm.adapter.layers}) == 1

    class Seen(AttentionPlan):
        def __init__(self, layer_of):
            super().__init__(layer_of)
            self.seen = []

        def observe(self, layer, query, key, value, probs, output):
            self.seen.append(layer)

    plan = Seen(lm.adapter.layer_of)
    enc = encode(lm, ["the cat sat"])
    forward(lm, enc, plan)
    forward(lm, enc, plan)
    assert plan.seen == list(range(lm.n_layers)) * 2


@pytest.mark.parametrize("cfg,needle", [({"model_type": "gpt2"}, "decoder-only"),
                                        ({"model_type": "bert", "is_decoder": True}, "decoder-only"),
                                        ({"model_type": "t5", "is_encoder_decoder": True}, "encoder-decoder"),
                                        ({"model_type": "vit"}, "not supported")])
def test_unsupported_architectures(tmp_path, cfg, needle):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=needle) as e:
        load_model(str(tmp_path))
    assert e.value.code == "unsupported"


def test_unknown_name_is_not_downloaded():
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache") as e:
        resolve_folder("no-such-model-name")
    assert e.value.code == "unknown"


def test_hub_name_resolves_from_local_cache(tmp_path, monkeypatch):
    """A hub name already in the local HF cache loads offline (cache layout built here, nothing fetched)."""
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-bert"
    commit = "0" * 40
    snap = repo / "snapshots" / commit
    shutil.copytree(model_folder("bert"), snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    name, folder = resolve_folder("acme/tiny-bert")
    assert name == "acme/tiny-bert" and (folder / "config.json").exists()


def test_registry_names_are_stable():
    assert {"minilm", "mini-bert", "paper", "cbow"} <= set(REGISTRY)


def test_empty_and_whitespace_text():
    lm = loaded("bert")
    for text in ("", "   \n\t", "\ufeff"):
        with pytest.raises(InputError, match="empty text"):
            trace_text(lm, text)


def test_bom_and_control_characters_are_reported_not_lost():
    text, notes = clean_text("\ufeffthe cat\x00 sat\u200b")
    assert text == "the cat  sat"
    assert any("byte-order mark" in n for n in notes) and any("2 control" in n for n in notes)


def test_unusual_scripts_get_a_note_about_unknown_pieces():
    lm = minilm()
    tr = trace_text(lm, "東京 は 🙂 مرحبا")
    assert tr.n > 2
    lm2 = loaded("bert")
    tr2 = trace_text(lm2, "東京 🙂")
    assert any("unknown" in n for n in tr2.notes)


def test_truncation_says_what_was_cut():
    lm = minilm()
    text = "word " * 700
    tr = trace_text(lm, text)
    assert tr.n == 512 and tr.tokens[-1] == "[SEP]"
    t = tr.truncation
    assert t.tokens_total == 702 and t.tokens_kept == 512
    assert text[:t.cut_from_char].split() == ["word"] * 510  # exactly the 510 analysed words precede the cut
    assert "cut 190 tokens" in t.message()


def _state_digest(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_shared_model_is_never_mutated_and_sessions_are_independent():
    """Traces and lenses leave weights, config and modules as they were; concurrent threads analysing different
    texts get exactly what they get one after the other."""
    from interp.decompose import overview
    from interp.lenses import all_lenses
    lm = loaded("bert")
    before = (_state_digest(lm.model), lm.config.to_json_string(), lm.config._attn_implementation,
              len(list(lm.model.modules())), sum(len(m._forward_hooks) + len(m._forward_pre_hooks)
                                                 for m in lm.model.modules()))
    texts = ["the cat sat on the mat", "a dog ran to the big city and the king saw it", "the [MASK] is red"]
    sequential = {t: trace_text(lm, t).layers[1].probs.clone() for t in texts}
    for t in texts:
        tr = trace_text(lm, t)
        overview(lm, tr)
        all_lenses(lm, tr, 0, 1, 1)
    results: dict = {}
    errors: list = []

    def work(t):
        try:
            for _ in range(5):
                results.setdefault(t, []).append(trace_text(lm, t).layers[1].probs.clone())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for t in texts:
        for p in results[t]:
            assert torch.equal(p, sequential[t])
    after = (_state_digest(lm.model), lm.config.to_json_string(), lm.config._attn_implementation,
             len(list(lm.model.modules())), sum(len(m._forward_hooks) + len(m._forward_pre_hooks)
                                                for m in lm.model.modules()))
    assert before == after
