"""Small offline models of every supported architecture, saved as real model folders (config, safetensors,
a WordPiece tokenizer), so tests go through the same loader as users do."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from transformers import BertTokenizerFast

from interp.loader import build_random, load_model

WORDS = ("the a an of to and in is was it he she they we you that this with for on at by from as be "
         "cat dog fox river bank money king queen man woman child house tree road city sea sun moon "
         "run runs ran walk walks sit sat see saw go went come came say said make made big small old new "
         "good bad red blue green quick lazy brown over under near far jump jumps jumped , . ! ? ' "
         "paris france london england capital lovely day night time year").split()
ARCHITECTURES = ("bert", "roberta", "electra", "distilbert", "expertlens-paper", "xlm-roberta", "camembert",
                 "albert", "mpnet", "modernbert", "deberta-v2")


def vocab() -> list[str]:
    special = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    seen, out = set(), []
    for w in special + WORDS + letters:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


@functools.lru_cache(maxsize=None)
def model_folder(model_type: str, with_head: bool = True, seed: int = 0, **kw) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"expertlens-{model_type}-"))
    atexit.register(shutil.rmtree, folder, True)
    words = vocab()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, model_max_length=10_000)
    tok.save_pretrained(str(folder))
    model = build_random(model_type, seed=seed, with_head=with_head, vocab_size=len(words), pad_token_id=1, **kw)
    model.config.pad_token_id = 1
    model.save_pretrained(str(folder))
    return folder


@functools.lru_cache(maxsize=None)
def loaded(model_type: str, with_head: bool = True):
    return load_model(str(model_folder(model_type, with_head)))


@functools.lru_cache(maxsize=None)
def minilm():
    return load_model("minilm")


def long_text(n_words: int) -> str:
    base = "the quick brown fox jumps over the lazy dog near the river bank and the king saw a big red house ."
    words = base.split()
    return " ".join(words[i % len(words)] for i in range(n_words))
