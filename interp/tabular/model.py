"""The tabular masked-column model: build, train by masking each column in turn, save as a model folder, predict,
evaluate.

Two forms, both served unchanged by the project's loader and every view:

* ``bert`` — a standard Hugging Face ``BertForMaskedLM``. The paper's tabular sizes (Wibisono & Wang, UAI 2023,
  §6 and its released experiment): one encoder block, width 20, 5 heads (head width 4), feed-forward width 5
  with ReLU, post-LayerNorm (ε = 1e-6), dropout 0.1 after the attention and the feed-forward; word + position
  embeddings. (BERT adds its embedding LayerNorm and its MLM-head transform; those are BERT's, kept standard.)
* ``paper`` — the project's no-FFN, no-LayerNorm one-head model (``interp.paper_model``, width 20), where the
  decomposition is exactly a mixture of experts: logits_i = Σ_j a_ij z_j with z_j = decoder(v_j).

Training (the paper's recipe): every training row gives one example per column, that column replaced by [MASK]
and the loss (cross-entropy over the vocabulary) on it alone; Adam (lr 1e-3, β = 0.9, 0.999), batch 128,
200 epochs. A prediction of column j is the arg-max of the model's logits at position j over column j's own
values (never a special token, [NA] or another column's word).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import attention, paper_model
from .encoding import MASK_ID, PAD_ID, SPECIAL, TableEncoder

SCHEMA_FILE = "tabular.json"
FORMS = ("bert", "paper")


@dataclass
class TrainSettings:
    form: str = "bert"
    hidden: int = 20
    heads: int = 5
    ffn: int = 5
    layers: int = 1
    dropout: float = 0.1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    init: float = 0.2
    tie: bool = True


def build(form: str, vocab_size: int, n_columns: int, s: TrainSettings | None = None) -> nn.Module:
    """A freshly initialised model of ``form`` for ``vocab_size`` words and ``n_columns`` positions."""
    from transformers import AutoModelForMaskedLM, BertConfig
    s = s or TrainSettings(form=form)
    if form == "bert":
        if s.hidden % s.heads:
            raise ValueError(f"width {s.hidden} is not divisible by {s.heads} heads")
        cfg = BertConfig(vocab_size=vocab_size, hidden_size=s.hidden, num_hidden_layers=s.layers,
                         num_attention_heads=s.heads, intermediate_size=s.ffn, hidden_act="relu",
                         hidden_dropout_prob=s.dropout, attention_probs_dropout_prob=0.0,
                         max_position_embeddings=n_columns, type_vocab_size=1, layer_norm_eps=1e-6,
                         pad_token_id=PAD_ID, initializer_range=s.init, tie_word_embeddings=s.tie)
    elif form == "paper":
        cfg = paper_model.PaperConfig(vocab_size=vocab_size, hidden_size=s.hidden, max_position_embeddings=n_columns,
                                      gate="attention", pad_token_id=PAD_ID, initializer_range=s.init)
    else:
        raise ValueError(f"unknown form {form!r}: choose one of {', '.join(FORMS)}")
    cfg._attn_implementation = attention.ATTN_IMPLEMENTATION
    return AutoModelForMaskedLM.from_config(cfg, attn_implementation=attention.ATTN_IMPLEMENTATION)


def masked_examples(ids: np.ndarray, columns: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (row, column) with a known value → (input with that column masked, labels with −100 elsewhere)."""
    R, C = ids.shape
    cols = range(C) if columns is None else columns
    xs, ys = [], []
    known = ids >= len(SPECIAL)
    for j in cols:
        rows = np.nonzero(known[:, j])[0]
        x = ids[rows].copy()
        y = np.full_like(x, -100)
        y[:, j] = x[:, j]
        x[:, j] = MASK_ID
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def train(enc: TableEncoder, codes: np.ndarray, s: TrainSettings,
          progress: Callable[[float, str], None] | None = None) -> tuple[nn.Module, dict]:
    """Train a model of ``s.form`` on the encoded rows by masking each column in turn. CPU-friendly: the auto-mpg
    training split (245 rows × 7 columns) takes seconds. ``progress(fraction, message)`` is called per epoch."""
    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    ids = enc.ids_of(codes)
    x, y = masked_examples(ids)
    if len(x) == 0:
        raise ValueError("no training examples: every value is missing")
    model = build(s.form, len(enc.vocab), len(enc.columns), s)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    gen = torch.Generator().manual_seed(s.seed)
    n = len(x)
    t0 = time.perf_counter()
    losses = []
    for epoch in range(s.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, s.batch_size):
            idx = order[start:start + s.batch_size]
            out = model(input_ids=x[idx], labels=y[idx])     # every row has every column: no padding
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            total += float(out.loss.detach()) * len(idx)
        losses.append(total / n)
        if progress is not None:
            progress((epoch + 1) / s.epochs, f"epoch {epoch + 1}/{s.epochs}, loss {losses[-1]:.4f}")
    model.eval()
    info = {"settings": asdict(s), "examples": int(n), "final_loss": losses[-1], "seconds": time.perf_counter() - t0,
            "parameters": int(sum(p.numel() for p in model.parameters()))}
    return model, info


# --- prediction -------------------------------------------------------------------------------------------

@torch.no_grad()
def column_logits(model: nn.Module, enc: TableEncoder, codes: np.ndarray, column: int,
                  batch_size: int = 1024) -> torch.Tensor:
    """The model's logits at ``column`` with that column masked, restricted to its values: rows × m."""
    ids = enc.ids_of(codes)
    ids[:, column] = MASK_ID
    domain = torch.tensor(enc.domain_ids(column))
    was_training = model.training
    model.eval()
    out = []
    dev = next(model.parameters()).device
    for start in range(0, len(ids), batch_size):
        x = torch.from_numpy(ids[start:start + batch_size]).to(dev)
        logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[:, column]
        out.append(logits[:, domain.to(dev)].float().cpu())
    if was_training:
        model.train()
    return torch.cat(out) if out else torch.zeros(0, len(domain))


def predict(model: nn.Module, enc: TableEncoder, codes: np.ndarray, column: int) -> np.ndarray:
    """Predicted codes of ``column`` for every row (its own value hidden by [MASK])."""
    return column_logits(model, enc, codes, column).argmax(-1).numpy()


def evaluate(pred: np.ndarray, truth: np.ndarray, ordinal: bool = True) -> dict:
    """Accuracy and mean squared error in bins (codes as bin indices) over rows whose truth is known.
    MSE is None for an unordered categorical target."""
    ok = truth >= 0
    p, t = pred[ok], truth[ok]
    if len(t) == 0:
        return {"rows": 0, "accuracy": None, "mse": None}
    return {"rows": int(len(t)), "accuracy": float((p == t).mean()),
            "mse": float(((p - t).astype(float) ** 2).mean()) if ordinal else None}


# --- saving and loading -----------------------------------------------------------------------------------

def tokenizer_for(enc: TableEncoder):
    """A word-level tokenizer over the shared vocabulary, splitting on whitespace only (one word per column)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    tok = Tokenizer(models.WordLevel(vocab=dict(enc.word_to_id), unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([AddedToken(w, special=True, normalized=False) for w in SPECIAL])
    return tok


def save(model: nn.Module, enc: TableEncoder, folder: Path, info: dict | None = None) -> Path:
    """Write a model folder the project's loader serves: config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json, special_tokens_map.json, vocab.txt, and the table schema tabular.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer_for(enc).save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("".join(w + "\n" for w in enc.vocab), encoding="utf-8")
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
               "mask_token": "[MASK]"}
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": len(enc.columns), **special}, indent=2),
        encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    schema = enc.to_dict()
    if info is not None:
        schema["training"] = info
    (folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=1, default=str), encoding="utf-8")
    return folder


def load_schema(folder: Path) -> TableEncoder:
    """The table schema of a tabular model folder (raises FileNotFoundError for a text model)."""
    return TableEncoder.load(Path(folder) / SCHEMA_FILE)


def is_tabular(folder: Path) -> bool:
    return (Path(folder) / SCHEMA_FILE).exists()
