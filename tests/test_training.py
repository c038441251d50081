"""Training pipeline: tokenizer files, packing, masking, schedules and inits against their definitions, and a
tiny CPU run of the whole recipe that is reproducible with the same seed."""
from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from interp import corpora
from interp.training import data as D
from interp.training import pipeline
from interp.training import run as R
from interp.training import tokenizer as T

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("the king queen walked to a house garden she he said and with her his of in on was is little old "
         "young good day night dear sister brother letter").split()


def _sentences(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(4, 12)
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + rng.choice([".", "!", "?"]))
    return out


def _docs() -> dict[str, list[corpora.Document]]:
    from interp.corpora import austen
    aus = [corpora.Document("austen", k, t, _sentences(i, 40)) for i, (k, t) in enumerate(austen.TITLES.items())]
    books = ["Genesis", "Ruth", "Mark", "Acts"]
    bib = [corpora.Document("kjv", b, b, _sentences(100 + i, 30)) for i, b in enumerate(books)]
    return {"austen": aus, "kjv": bib}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> D.Prepared:
    return D.prepare(_docs(), tmp_path_factory.mktemp("prep"), vocab_size=120, log=lambda *_: None)


def test_tokenizer_files_load_as_a_fast_bert_tokenizer(prepared):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(prepared.tokenizer_dir))
    assert tok.is_fast and type(tok).__name__.startswith("BertTokenizer")
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    vocab = (prepared.tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == T.SPECIAL and len(vocab) == tok.vocab_size
    text = "The Queen walked to a little garden! Said her dear brother."
    enc = tok(text)
    toks = tok.convert_ids_to_tokens(enc["input_ids"])
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]" and "[UNK]" not in toks
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == text.lower()
    assert "[UNK]" in tok.convert_ids_to_tokens(tok("a § b")["input_ids"])      # never seen in training
    masked = tok("the [MASK] walked")
    assert tok.convert_ids_to_tokens(masked["input_ids"]) == ["[CLS]", "the", "[MASK]", "walked", "[SEP]"]


def test_tokenizer_ids_are_a_function_of_the_vocabulary_set():
    """The trainer's id order (and, on ties, its merges) vary between runs; ids are renumbered canonically, so
    the same set of pieces always gives the same tokenizer file."""
    from tokenizers import models
    texts = [s for k in range(4) for s in _sentences(k, 50)]
    a = T.train_wordpiece(texts, 300)
    pieces = [a.id_to_token(i) for i in range(a.get_vocab_size())]
    assert pieces[:5] == T.SPECIAL and pieces[5:] == sorted(pieces[5:])
    shuffled = pieces[5:]
    random.Random(0).shuffle(shuffled)
    from tokenizers import Tokenizer
    b = Tokenizer.from_str(a.to_str())
    b.model = models.WordPiece(vocab={t: i for i, t in enumerate(T.SPECIAL + shuffled)}, unk_token="[UNK]",
                               max_input_chars_per_word=100, continuing_subword_prefix="##")
    assert b.to_str() != a.to_str()
    T.canonical_ids(b)
    assert b.to_str() == a.to_str()


def test_heldout_split_is_by_document(prepared):
    man = prepared.manifest
    assert man["heldout_documents"]["austen"] == ["Persuasion"]
    assert sorted(man["heldout_documents"]["kjv"]) == ["Acts", "Ruth"]
    # every passage of a held-out document is in the held-out split and only there
    tok = T.load(prepared.tokenizer_dir)
    pers = next(d for d in _docs()["austen"] if d.doc_id == "persuasion")
    enc = [tok.encode(p, add_special_tokens=False).ids for p in pers.passages]
    held = [prepared.heldout.ids[a:b].tolist() for a, b in zip(prepared.heldout.offsets[:-1], prepared.heldout.offsets[1:])]
    train = [prepared.train.ids[a:b].tolist() for a, b in zip(prepared.train.offsets[:-1], prepared.train.offsets[1:])]
    assert all(e in held for e in enc)
    assert prepared.train.n_passages == sum(len(d.passages) for n in _docs().values() for d in n
                                            if not corpora.module(d.corpus).held_out(d.doc_id))
    assert len(train) + len(held) == sum(len(d.passages) for n in _docs().values() for d in n)


def test_pack_keeps_every_token_in_order_within_length(prepared):
    for max_len in (16, 40):
        seqs, corp = D.pack(prepared.train, max_len)
        assert len(seqs) == len(corp)
        assert all(len(s) <= max_len and s[0] == T.CLS_ID and s[-1] == T.SEP_ID for s in seqs)
        body = np.concatenate([s[1:-1] for s in seqs])
        assert np.array_equal(body, prepared.train.ids.astype(np.int64))
        # a sequence never mixes corpora
        starts = np.cumsum([0] + [len(s) - 2 for s in seqs])
        pcorp = np.repeat(prepared.train.corpus, np.diff(prepared.train.offsets))
        for k, c in enumerate(corp):
            assert set(pcorp[starts[k]:starts[k + 1]].tolist()) == {c}


def test_masks_choose_only_real_tokens_and_corrupt_as_bert():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (400, 30), generator=g)
    ids[:, 0], ids[:, -1] = T.CLS_ID, T.SEP_ID
    ids[::3, 20:] = T.PAD_ID
    chosen = D.choose_masks(ids, g)
    assert not chosen[ids <= T.MASK_ID].any()
    assert chosen.any(1).all()
    rate = chosen.sum() / D.maskable(ids).sum()
    assert abs(float(rate) - D.MASK_RATE) < 0.02
    out = D.corrupt_for_training(ids, chosen, 100, g)
    assert torch.equal(out[~chosen], ids[~chosen])
    frac_mask = float((out[chosen] == T.MASK_ID).float().mean())
    frac_kept = float((out[chosen] == ids[chosen]).float().mean())
    assert abs(frac_mask - 0.8) < 0.04 and 0.06 < frac_kept < 0.16
    assert torch.equal(D.eval_masks(ids), D.eval_masks(ids))          # fixed by its own seed


def test_lr_schedule_and_sinusoids_match_their_definitions():
    steps, warm = 200, 0.05
    mults = [R.lr_at(s, steps, warm) for s in range(steps)]
    assert mults[0] == pytest.approx(1 / 10) and mults[9] == pytest.approx(1.0)
    assert mults[-1] == pytest.approx(1 / 190) and all(a >= b for a, b in zip(mults[9:], mults[10:]))
    pe = R.sinusoids(50, 12)
    for i in (0, 7, 49):
        for k in range(6):
            w = 10000 ** (-2 * k / 12)
            assert float(pe[i, 2 * k]) == pytest.approx(math.sin(i * w), abs=1e-6)
            assert float(pe[i, 2 * k + 1]) == pytest.approx(math.cos(i * w), abs=1e-6)


def test_scaled_init_only_changes_scales():
    torch.manual_seed(0)
    m = R.build_model("paper", 2000, {"hidden_size": 64})
    R.apply_init(m, "scaled")
    m.requires_grad_(False)
    assert float(m.word_embeddings.weight.std()) == pytest.approx(1.0, rel=0.02)
    assert float(m.attention.value.weight.std()) == pytest.approx(64 ** -0.5, rel=0.05)
    assert float(m.attention.query.weight.std()) == pytest.approx(0.5 * 64 ** -0.5, rel=0.05)
    with pytest.raises(ValueError):
        R.apply_init(R.build_model("mini-bert", 100, {"hidden_size": 16, "num_hidden_layers": 1,
                                                      "num_attention_heads": 2, "intermediate_size": 32}), "scaled")


TINY = {"paper": {"hidden_size": 16}, "cbow": {"hidden_size": 16},
        "mini-bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}}


def _plan(seed: int) -> pipeline.Plan:
    return pipeline.Plan(names=["paper", "cbow", "mini-bert"], seed=seed, compare_seeds=2, device="cpu",
                         steps={"paper": 15, "cbow": 15, "mini-bert": 15}, budget_seconds=None, batch_size=8,
                         eval_max_sequences=None, arch=TINY, max_len=32, long_len=64, long_every=4,
                         inits={"paper": ["scaled-sinusoidal@6e-3"], "cbow": ["scaled@6e-3"]})


def _strip(m: dict) -> dict:
    return {n: [{k: v for k, v in r.items() if k not in ("train_seconds", "seconds_after_warmup")} for r in e["runs"]]
            for n, e in m["models"].items()}


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tiny") / "a"
    return out, pipeline.train_all(prepared, out, _plan(0), log=lambda *_: None)


def test_tiny_training_run_is_reproducible_with_the_same_seed(prepared, trained, tmp_path):
    a_dir, a = trained
    b = pipeline.train_all(prepared, tmp_path / "b", _plan(0), log=lambda *_: None)
    assert _strip(a) == _strip(b)
    for name in ("paper", "cbow", "mini-bert"):
        wa = (a_dir / name / "model.safetensors").read_bytes()
        assert wa == (tmp_path / "b" / name / "model.safetensors").read_bytes()
    runs = a["models"]["paper"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and runs[0]["loss_curve"] != runs[1]["loss_curve"]
    # the recorded metrics are those of the saved checkpoint, re-evaluated independently here
    es = R.eval_set(prepared, 32)
    for name in ("paper", "mini-bert"):
        model = R.load_checkpoint(a_dir / name)
        assert R.evaluate(model, es)["correct_top1"] == a["models"][name]["runs"][0]["correct_top1"]
    assert (a_dir / "paper" / "README.md").exists() and (a_dir / "README.md").exists()
    assert set(json.loads((a_dir / "metrics.json").read_text())["models"]) == {"paper", "cbow", "mini-bert"}


def test_tiny_checkpoints_load_through_the_project_loader(trained):
    from interp.loader import load_model
    from interp.trace import trace_text
    for name in ("paper", "cbow", "mini-bert"):
        lm = load_model(str(trained[0] / name), device="cpu")
        t = trace_text(lm, "the queen walked to the [MASK].")
        assert t.output.shape == (t.n, lm.tokenizer.vocab_size)


def _cli(capsys, *args) -> subprocess.CompletedProcess:
    """``python -m interp train ARGS`` in this process (same entry point as the command line)."""
    from interp.__main__ import main
    capsys.readouterr()
    try:
        code = main(["train", *args])
    except SystemExit as exc:                     # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["train", *args], code, out.out, out.err)


@pytest.mark.parametrize("args,msg", [(["--all", "--steps", "x=3"], "--steps"),
                                      (["--all", "--init", "paper=bogus"], "--init"),
                                      (["--all", "--budget-seconds", "-1"], "--budget-seconds"),
                                      (["--all", "--bogus"], "unrecognized arguments"),
                                      ([], "say what to train")])
def test_cli_rejects_bad_arguments_with_one_line(capsys, args, msg):
    res = _cli(capsys, *args)
    assert res.returncode != 0
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and msg in lines[0]


def test_cli_refuses_to_overwrite_and_rewrites_cards(capsys, trained, tmp_path):
    import shutil
    shutil.copytree(trained[0], tmp_path, dirs_exist_ok=True)
    before = (tmp_path / "paper" / "model.safetensors").read_bytes()
    res = _cli(capsys, "--all", "--out", str(tmp_path))
    assert res.returncode == 0 and "already built" in res.stdout
    assert (tmp_path / "paper" / "model.safetensors").read_bytes() == before
    (tmp_path / "paper" / "README.md").unlink()
    res = _cli(capsys, "--cards-only", "--out", str(tmp_path))
    assert res.returncode == 0 and (tmp_path / "paper" / "README.md").exists()
