"""Evaluations the project keeps for its masked language models, re-scored by the tests.

* **Everyday cloze** (``models/eval/everyday_cloze.json``): short modern sentences with one ``[MASK]`` and the
  accepted answers. A model's whole-word predictions at the mask are its vocabulary tokens ranked by logit, with
  special tokens and ``##`` continuation pieces left out (they are not words); top-1 / top-5 count a hit when an
  accepted answer is among the first 1 / 5.
* **Held-out words, same positions for every model** (``heldout_words``): passages of documents held out from
  training by *both* models compared; in each, words that are a single token in every compared vocabulary are
  chosen with a fixed seed (15%) and replaced by ``[MASK]`` together; a hit is the word itself among the model's
  top 1 / 5 tokens. Because each chosen word is one token for every model, the positions and answers are
  identical across models with different tokenizers.

Both use the model's own forward pass (float32, eval mode); nothing is approximated.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
CLOZE = ROOT / "models" / "eval" / "everyday_cloze.json"
HELDOUT_WORDS = ROOT / "models" / "eval" / "heldout_words.json"
WORD_SEED = 20231204
WORD_RATE = 0.15
_WORD = re.compile(r"[A-Za-z]+|[^\sA-Za-z]")


@dataclass
class ClozeScore:
    top1: float
    top5: float
    n: int
    predictions: list[dict]


def load_cloze(path: Path = CLOZE) -> list[dict]:
    return json.loads(Path(path).read_text(encoding="utf-8"))["items"]


def _word_mask(tokenizer) -> torch.Tensor:
    """(V,) bool: vocabulary entries that are whole words (not special, not '##' pieces, not [unused])."""
    vocab = tokenizer.get_vocab()
    ok = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    special = set(tokenizer.all_special_tokens)
    for tok, i in vocab.items():
        ok[i] = not (tok in special or tok.startswith("##") or tok.startswith("[unused") or
                     (tok.startswith("[") and tok.endswith("]")))
    return ok


@torch.no_grad()
def _masked_logits(model, tokenizer, texts: list[str], batch_size: int = 64) -> list[torch.Tensor]:
    """For each text, the logits (n_masks, V) at its [MASK] positions, in order."""
    out = []
    device = next(model.parameters()).device
    for s in range(0, len(texts), batch_size):
        enc = tokenizer(texts[s:s + batch_size], return_tensors="pt", padding=True, truncation=True,
                        max_length=512)
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        logits = model(**enc).logits.float().cpu()
        is_mask = (enc["input_ids"] == tokenizer.mask_token_id).cpu()
        for b in range(logits.shape[0]):
            out.append(logits[b][is_mask[b]])
    return out


def score_cloze(model, tokenizer, items: list[dict] | None = None, k: int = 5) -> ClozeScore:
    """Whole-word top-1 / top-``k`` of ``model`` on the cloze items (default: the shipped set)."""
    items = items if items is not None else load_cloze()
    words = _word_mask(tokenizer)
    logits = _masked_logits(model, tokenizer, [it["text"] for it in items])
    preds, h1, hk = [], 0, 0
    for it, lg in zip(items, logits):
        if lg.shape[0] != 1:
            raise ValueError(f"cloze item must hold exactly one [MASK]: {it['text']!r}")
        row = lg[0].masked_fill(~words[:lg.shape[1]], float("-inf"))
        top = [tokenizer.convert_ids_to_tokens(int(i)) for i in row.topk(k).indices]
        answers = {a.lower() for a in it["answers"]}
        hit1, hitk = top[0] in answers, any(t in answers for t in top)
        h1 += hit1
        hk += hitk
        preds.append({"text": it["text"], "top": top, "top1_hit": bool(hit1), "top5_hit": bool(hitk)})
    n = len(items)
    return ClozeScore(top1=h1 / n, top5=hk / n, n=n, predictions=preds)


def build_heldout_words(passages: list[str], vocabularies: list[set[str]], max_words: int = 60,
                        seed: int = WORD_SEED) -> list[dict]:
    """Choose the masked words of every passage (cut to ``max_words`` words): lower-case alphabetic words that
    are single tokens of every vocabulary, each chosen with probability 0.15 (at least one per passage when any
    is eligible). Returns [{"words": [...], "masked": [word indices]}] (passages with none eligible dropped)."""
    rng = np.random.default_rng(seed)
    out = []
    for text in passages:
        words = _WORD.findall(text)[:max_words]
        elig = [i for i, w in enumerate(words) if w.isalpha() and all(w.lower() in v for v in vocabularies)]
        if not elig:
            continue
        u = rng.random(len(elig))
        chosen = [i for i, x in zip(elig, u) if x < WORD_RATE] or [elig[int(rng.integers(len(elig)))]]
        out.append({"words": words, "masked": chosen})
    return out


def masked_text(row: dict, mask_token: str = "[MASK]") -> str:
    chosen = set(row["masked"])
    return " ".join(mask_token if i in chosen else w for i, w in enumerate(row["words"]))


def score_heldout_words(model, tokenizer, rows: list[dict]) -> dict:
    """Top-1 / top-5 of ``model`` on the chosen held-out words (all of a passage's words masked together)."""
    logits = _masked_logits(model, tokenizer, [masked_text(r, tokenizer.mask_token) for r in rows], batch_size=32)
    vocab = tokenizer.get_vocab()
    h1 = h5 = n = 0
    for r, lg in zip(rows, logits):
        gold = torch.tensor([vocab[r["words"][i].lower()] for i in r["masked"]])
        if lg.shape[0] != len(gold):
            raise ValueError("a held-out row did not keep one [MASK] per chosen word")
        top = lg.topk(5, dim=-1).indices
        h1 += int((top[:, 0] == gold).sum())
        h5 += int((top == gold[:, None]).any(1).sum())
        n += len(gold)
    return {"top1": h1 / max(n, 1), "top5": h5 / max(n, 1), "masked_words": n, "passages": len(rows)}


def load_heldout_words(path: Path = HELDOUT_WORDS) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def make_heldout_words(out: Path = HELDOUT_WORDS, corpora_names=("austen", "fortunes", "wordnet", "jargon"),
                       per_corpus: int = 400, cache: Path | None = None) -> dict:
    """Build the shipped held-out word set from documents held out by both ``mini-bert`` and ``minilm-mlm``
    (the four corpora both were trained on use the same document rule)."""
    from .. import corpora
    from ..loader import load_model
    vocabs = [set(load_model(n).tokenizer.get_vocab()) for n in ("mini-bert", "minilm")]
    docs = corpora.load(corpora_names, cache=cache, fetch=False)
    rows = []
    for name in corpora_names:
        _, held = corpora.split(docs[name])
        passages = [p for d in held for p in d.passages if len(p.split()) >= 8]
        rng = np.random.default_rng(WORD_SEED)
        pick = sorted(rng.choice(len(passages), size=min(per_corpus, len(passages)), replace=False))
        for r in build_heldout_words([passages[i] for i in pick], vocabs):
            r["corpus"] = name
            rows.append(r)
    data = {"description": "Held-out passages (documents held out by both mini-bert and minilm-mlm) with the "
                           "words masked for the comparison; every masked word is one token of both vocabularies.",
            "seed": WORD_SEED, "rate": WORD_RATE, "rows": rows}
    Path(out).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    return data


SAMPLE_PASSAGES = 300  # the prefix of the held-out word set that the tests re-score (the full set is in the card)


def score_all(folder: Path) -> dict:
    """Every kept evaluation of the checkpoint in ``folder`` and of ``mini-bert`` on the same items:
    the cloze set, the full held-out word set and its first :data:`SAMPLE_PASSAGES` passages."""
    from ..loader import load_model
    ours, theirs = load_model(str(folder)), load_model("mini-bert")
    rows = load_heldout_words()["rows"]
    out: dict = {}
    for key, lm in (("ours", ours), ("mini_bert", theirs)):
        cl = score_cloze(lm.model, lm.tokenizer)
        out[key] = {"cloze": {"top1": cl.top1, "top5": cl.top5, "n": cl.n},
                    "heldout_words": score_heldout_words(lm.model, lm.tokenizer, rows),
                    "heldout_sample": score_heldout_words(lm.model, lm.tokenizer, rows[:SAMPLE_PASSAGES]),
                    "cloze_predictions": cl.predictions}
    return out
