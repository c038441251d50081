"""The shared WordPiece tokenizer of the embedded models (trained with the ``tokenizers`` library).

BERT conventions: lower-casing and accent stripping (BertNormalizer), BERT pre-tokenization (whitespace and
punctuation; CJK characters split one by one), WordPiece with ``##`` continuations, special tokens
[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, and a post-processor that adds [CLS] … [SEP]. Saved so that
``transformers.AutoTokenizer.from_pretrained(folder)`` gives a fast BERT tokenizer with a mask token.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
MODEL_MAX_LENGTH = 512


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
                    limit_alphabet: int = 300):
    """Train a WordPiece vocabulary on ``texts`` (deterministic for a given input order)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL, limit_alphabet=limit_alphabet,
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    canonical_ids(tok)
    for i, s in enumerate(SPECIAL):
        if tok.token_to_id(s) != i:
            raise RuntimeError(f"special token {s} got id {tok.token_to_id(s)}, expected {i}")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def canonical_ids(tok) -> None:
    """Renumber the vocabulary: special tokens 0–4, then every other piece in code-point order.

    The trainer's id order follows hash-map iteration, so it changes from run to run even when the learned set
    of pieces is the same; WordPiece segmentation depends only on the set (greedy longest match), so after
    sorting the tokenizer file is a function of the set. (On ties between equally frequent merges the trainer
    may also learn a slightly different set; runs that must reproduce reuse a saved tokenizer.)"""
    from tokenizers import models
    vocab = tok.get_vocab(with_added_tokens=False)
    rest = sorted(t for t in vocab if t not in SPECIAL)
    ordered = {t: i for i, t in enumerate(SPECIAL + rest)}
    tok.model = models.WordPiece(vocab=ordered, unk_token="[UNK]", max_input_chars_per_word=100,
                                 continuing_subword_prefix="##")


def fingerprint(folder: Path) -> str:
    """SHA-256 (first 12 hex digits) of a saved tokenizer.json."""
    import hashlib
    return hashlib.sha256((Path(folder) / "tokenizer.json").read_bytes()).hexdigest()[:12]


def save_for_transformers(tok, folder: Path) -> None:
    """Write tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    vocab = tok.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise RuntimeError("vocabulary ids are not contiguous")
    (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in by_id), encoding="utf-8")
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": MODEL_MAX_LENGTH,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]",
        "clean_up_tokenization_spaces": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
               "mask_token": "[MASK]"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


def load(folder: Path):
    """The raw ``tokenizers.Tokenizer`` saved in ``folder``."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
