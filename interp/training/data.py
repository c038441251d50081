"""Training data for the embedded models: corpora → document split → tokenizer → packed token sequences.

A *prepared* folder holds everything training needs, so the training machine needs no corpora:
``tokenizer/`` (Hugging Face files), ``train.npz`` and ``heldout.npz`` (flat token ids of every passage, passage
offsets, corpus index and document index of each passage) and ``manifest.json`` (corpora, package files, word
and token counts, the held-out documents).

Sequences: passages of one corpus and split, in reading order, are packed greedily into sequences of at most
``max_len`` tokens ([CLS] … [SEP] included); a passage longer than that is cut into pieces. Masking follows BERT
(Devlin et al., 2019): 15% of the real tokens are chosen; for training 80% of those become [MASK], 10% a random
token, 10% stay; for evaluation all chosen tokens become [MASK] and the choice is fixed by its own seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import tokenizer as toks

MASK_RATE = 0.15
EVAL_MASK_SEED = 20230707


@dataclass
class Split:
    ids: np.ndarray          # flat token ids (no special tokens)
    offsets: np.ndarray      # passage p is ids[offsets[p]:offsets[p+1]]
    corpus: np.ndarray       # corpus index of each passage
    doc: np.ndarray          # document index of each passage (within its split)

    @property
    def n_passages(self) -> int:
        return len(self.offsets) - 1

    def save(self, path: Path) -> None:
        np.savez_compressed(path, ids=self.ids, offsets=self.offsets, corpus=self.corpus, doc=self.doc)

    @classmethod
    def load(cls, path: Path) -> "Split":
        z = np.load(path)
        return cls(z["ids"], z["offsets"], z["corpus"], z["doc"])


@dataclass
class Prepared:
    folder: Path
    manifest: dict
    train: Split
    heldout: Split

    @property
    def tokenizer_dir(self) -> Path:
        return self.folder / "tokenizer"

    @property
    def corpora(self) -> list[str]:
        return list(self.manifest["corpora"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])


def _encode(tok, docs, corpus_index: dict[str, int]) -> tuple[Split, list[dict]]:
    texts, corp, doc = [], [], []
    listing = []
    for d_i, d in enumerate(docs):
        listing.append({"corpus": d.corpus, "id": d.doc_id, "title": d.title, "words": d.words()})
        for p in d.passages:
            texts.append(p)
            corp.append(corpus_index[d.corpus])
            doc.append(d_i)
    encs = tok.encode_batch(texts, add_special_tokens=False)
    lens = np.array([len(e.ids) for e in encs], dtype=np.int64)
    offsets = np.zeros(len(encs) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.uint16 if tok.get_vocab_size() < 65536 else np.int32)
    for i, e in enumerate(encs):
        ids[offsets[i]:offsets[i + 1]] = e.ids
    return Split(ids, offsets, np.array(corp, dtype=np.int16), np.array(doc, dtype=np.int32)), listing


def prepare(docs_by_corpus: dict, out: Path, vocab_size: int = 8000, sources: dict | None = None,
            log=print, tokenizer_dir: Path | None = None) -> Prepared:
    """Split by document, train the tokenizer on the training split only (or reuse the one saved in
    ``tokenizer_dir``), encode both splits, save."""
    from ..corpora import split as split_docs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(docs_by_corpus)
    corpus_index = {n: i for i, n in enumerate(names)}
    train_docs, held_docs = [], []
    for name in names:
        tr, ho = split_docs(docs_by_corpus[name])
        if not tr or not ho:
            raise ValueError(f"corpus {name}: the document split left an empty side ({len(tr)} train, {len(ho)} held out)")
        train_docs += tr
        held_docs += ho
    log(f"documents: {len(train_docs)} train, {len(held_docs)} held out")
    if tokenizer_dir is not None:
        import shutil
        tok = toks.load(tokenizer_dir)
        for i, name in enumerate(toks.SPECIAL):
            if tok.token_to_id(name) != i:
                raise ValueError(f"{tokenizer_dir}: {name} must have id {i}")
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy2(Path(tokenizer_dir) / name, out / "tokenizer" / name)
        log(f"tokenizer: reused {tokenizer_dir}")
    else:
        tok = toks.train_wordpiece((p for d in train_docs for p in d.passages), vocab_size=vocab_size)
        toks.save_for_transformers(tok, out / "tokenizer")
    train, train_list = _encode(tok, train_docs, corpus_index)
    held, held_list = _encode(tok, held_docs, corpus_index)
    train.save(out / "train.npz")
    held.save(out / "heldout.npz")
    stats = {}
    for name in names:
        i = corpus_index[name]
        stats[name] = {
            "train_words": sum(d["words"] for d in train_list if d["corpus"] == name),
            "heldout_words": sum(d["words"] for d in held_list if d["corpus"] == name),
            "train_documents": sum(1 for d in train_list if d["corpus"] == name),
            "heldout_documents": sum(1 for d in held_list if d["corpus"] == name),
            "train_tokens": int(sum(train.offsets[p + 1] - train.offsets[p] for p in np.flatnonzero(train.corpus == i))),
            "heldout_tokens": int(sum(held.offsets[p + 1] - held.offsets[p] for p in np.flatnonzero(held.corpus == i))),
        }
    manifest = {
        "corpora": names,
        "vocab_size": tok.get_vocab_size(),
        "tokenizer_sha256": toks.fingerprint(out / "tokenizer"),
        "sources": sources or {},
        "stats": stats,
        "heldout_documents": {n: [d["title"] for d in held_list if d["corpus"] == n][:50] for n in names},
        "heldout_documents_total": {n: sum(1 for d in held_list if d["corpus"] == n) for n in names},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"tokens: {len(train.ids)} train, {len(held.ids)} held out; vocabulary {tok.get_vocab_size()}")
    return Prepared(out, manifest, train, held)


def load_prepared(folder: Path) -> Prepared:
    folder = Path(folder)
    for name in ("manifest.json", "train.npz", "heldout.npz", "tokenizer/tokenizer.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder} is not a prepared data folder: {name} is missing")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return Prepared(folder, manifest, Split.load(folder / "train.npz"), Split.load(folder / "heldout.npz"))


def pack(split: Split, max_len: int) -> tuple[list[np.ndarray], list[int]]:
    """Greedy packing of consecutive passages (same corpus) into [CLS] … [SEP] sequences of ≤ max_len tokens.

    Returns the sequences and the corpus index of each."""
    body = max_len - 2
    out: list[np.ndarray] = []
    corpus_of: list[int] = []
    cur: list[np.ndarray] = []
    cur_len = 0
    cur_corpus = -1

    def flush():
        nonlocal cur, cur_len
        if cur_len:
            out.append(np.concatenate([[toks.CLS_ID], *cur, [toks.SEP_ID]]).astype(np.int64))
            corpus_of.append(cur_corpus)
        cur, cur_len = [], 0

    for p in range(split.n_passages):
        piece = split.ids[split.offsets[p]:split.offsets[p + 1]].astype(np.int64)
        if len(piece) == 0:
            continue
        c = int(split.corpus[p])
        if c != cur_corpus:
            flush()
            cur_corpus = c
        while len(piece) > 0:
            room = body - cur_len
            if len(piece) <= room:
                cur.append(piece)
                cur_len += len(piece)
                piece = piece[:0]
            elif cur_len == 0:
                cur.append(piece[:body])
                cur_len = body
                piece = piece[body:]
                flush()
            else:
                flush()
    flush()
    return out, corpus_of


def to_tensor(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N × L, [PAD]=0) and lengths."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lens.max())), toks.PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.from_numpy(s)
    return ids, lens


def maskable(ids: torch.Tensor) -> torch.Tensor:
    """Real, non-special tokens (the ones that may be masked)."""
    return ids > toks.MASK_ID


def choose_masks(ids: torch.Tensor, generator: torch.Generator, rate: float = MASK_RATE) -> torch.Tensor:
    """Bool mask of positions to predict: each maskable token with probability ``rate``; at least one per row."""
    ok = maskable(ids)
    r = torch.rand(ids.shape, generator=generator, device=ids.device)
    chosen = (r < rate) & ok
    # rows with no chosen token: take their maskable token with the smallest draw
    empty = ~chosen.any(1) & ok.any(1)
    if empty.any():
        rr = torch.where(ok, r, torch.full_like(r, 2.0))
        first = rr.argmin(1)
        chosen[empty, first[empty]] = True
    return chosen


def corrupt_for_training(ids: torch.Tensor, chosen: torch.Tensor, vocab_size: int,
                         generator: torch.Generator) -> torch.Tensor:
    """BERT's 80/10/10 corruption of the chosen positions."""
    r = torch.rand(ids.shape, generator=generator, device=ids.device)
    rand_tok = torch.randint(toks.MASK_ID + 1, vocab_size, ids.shape, generator=generator, device=ids.device)
    out = ids.clone()
    out[chosen & (r < 0.8)] = toks.MASK_ID
    swap = chosen & (r >= 0.8) & (r < 0.9)
    out[swap] = rand_tok[swap]
    return out


def eval_masks(ids: torch.Tensor, seed: int = EVAL_MASK_SEED) -> torch.Tensor:
    """The fixed evaluation choice (CPU generator, so it is the same on every device)."""
    g = torch.Generator().manual_seed(seed)
    return choose_masks(ids.cpu(), g)
