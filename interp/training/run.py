"""Build, train, evaluate and save the embedded models: ``paper``, ``cbow`` and ``mini-bert``.

* ``paper`` — Wibisono & Wang (UAI 2023, arXiv 2307.04057): word + position embeddings, one attention layer with
  one head, no FFN, no LayerNorm, logits affine in the head output (:class:`interp.paper_model.PaperForMaskedLM`,
  gate="attention").
* ``cbow`` — the same model with uniform gates over the context positions (gate="uniform"), trained on the same
  data with the same number of steps: the paper's non-attention predecessor.
* ``mini-bert`` — a standard post-LN ``BertForMaskedLM`` (Devlin et al., 2019) with FFN and MLM head.

Training is masked-token prediction (BERT masking, :mod:`.data`); the loss is computed on the chosen positions
only. AdamW, linear warm-up then linear decay. The seed fixes initialisation, data order and masks; on CUDA the
deterministic algorithms are requested, so the same seed on the same device gives the same metrics.
Evaluation: top-1 / top-5 accuracy of the masked tokens of the held-out documents (all chosen positions
replaced by [MASK], choice fixed by its own seed), float32, from the checkpoint as saved.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as D
from . import tokenizer as toks

MODEL_NAMES = ("paper", "cbow", "mini-bert")
MAX_POSITIONS = 512

ARCH = {
    "paper": dict(hidden_size=128, gate="attention"),
    "cbow": dict(hidden_size=128, gate="uniform"),
    "mini-bert": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=1024,
                      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
}


@dataclass
class TrainConfig:
    """One training run. ``steps`` is the budget; ``long_every``-th steps use ``long_len`` sequences."""
    name: str
    seed: int = 0
    steps: int = 1000
    batch_size: int = 256
    max_len: int = 128
    long_len: int = MAX_POSITIONS
    long_every: int = 10
    lr: float = 1e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    device: str = "cpu"
    log_every: int = 200
    eval_every: int = 0           # 0 = no intermediate held-out checks
    arch: dict = field(default_factory=dict)   # overrides of ARCH (tests use tiny models)
    init: str = "default"         # paper/cbow only: see apply_init
    adam_eps: float = 1e-6


DEFAULT_LR = {"paper": 2e-3, "cbow": 2e-3, "mini-bert": 6e-4}


def build_model(name: str, vocab_size: int, arch: dict | None = None,
                max_positions: int = MAX_POSITIONS) -> nn.Module:
    """A freshly initialised model (call ``torch.manual_seed`` first); ``arch`` overrides :data:`ARCH`."""
    if name not in ARCH:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    a = {**ARCH[name], **(arch or {})}
    if name in ("paper", "cbow"):
        from ..paper_model import PaperConfig, PaperForMaskedLM
        cfg = PaperConfig(vocab_size=vocab_size, hidden_size=a["hidden_size"], max_position_embeddings=max_positions,
                          gate=a["gate"], pad_token_id=toks.PAD_ID)
        return PaperForMaskedLM(cfg)
    if name == "mini-bert":
        from transformers import BertConfig, BertForMaskedLM
        cfg = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_positions, type_vocab_size=2,
                         pad_token_id=toks.PAD_ID, **a)
        cfg._attn_implementation = "eager"  # plain softmax attention: deterministic, and exact in float32
        return BertForMaskedLM(cfg)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")


def masked_logits(model: nn.Module, ids: torch.Tensor, attn: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Logits (K × V) at the chosen positions only (row-major order of ``chosen``)."""
    if getattr(model.config, "model_type", "") == "expertlens-paper":
        u = model.embed(ids)
        context, _ = model.attention(u, model.gate_mask(attn))
        return model.decoder(context[chosen])
    hidden = model.bert(input_ids=ids, attention_mask=attn, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    return model.cls(hidden[chosen])


def count_parameters(model: nn.Module) -> int:
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


INITS = ("default", "scaled", "scaled-sinusoidal")


def apply_init(model: nn.Module, init: str) -> None:
    """Re-initialise a paper/cbow model (a training choice; the architecture is unchanged).

    * ``default``: the model's own N(0, 0.02²) for every weight (BERT's convention).
    * ``scaled``: embeddings N(0, 1), value and decoder N(0, 1/d), query and key N(0, 1/(4d)). Without a
      LayerNorm the logits are a product of three small matrices under the default, so gradients start near
      a saddle (≈1e-10 for query/key) and training barely leaves the unigram solution; unit-scale
      embeddings avoid that.
    * ``scaled-sinusoidal``: ``scaled`` with the position embeddings started at the sinusoids of
      Vaswani et al. (2017) (still trained), which make relative offsets linear in the embeddings.
    """
    if init == "default":
        return
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    if getattr(model.config, "model_type", "") != "expertlens-paper":
        raise ValueError("the scaled inits are for the paper/cbow models")
    d = model.config.hidden_size
    with torch.no_grad():
        nn.init.normal_(model.word_embeddings.weight, std=1.0)
        nn.init.normal_(model.attention.value.weight, std=d ** -0.5)
        nn.init.normal_(model.decoder.weight, std=d ** -0.5)
        nn.init.zeros_(model.decoder.bias)
        for lin in (model.attention.query, model.attention.key):
            if lin is not None:
                nn.init.normal_(lin.weight, std=0.5 * d ** -0.5)
        if init == "scaled-sinusoidal":
            model.position_embeddings.weight.copy_(sinusoids(*model.position_embeddings.weight.shape))
        else:
            nn.init.normal_(model.position_embeddings.weight, std=1.0)


def sinusoids(n: int, d: int) -> torch.Tensor:
    """PE[i, 2k] = sin(i / 10000^(2k/d)), PE[i, 2k+1] = cos(i / 10000^(2k/d))."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return pe.float()


def _optimizer(model: nn.Module, lr: float, wd: float, eps: float = 1e-6) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim == 2 and "embeddings" not in name else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98), eps=eps)


def lr_at(step: int, steps: int, warmup_frac: float) -> float:
    """Multiplier: linear warm-up over ``warmup_frac`` of the steps, then linear decay to 0."""
    warm = max(1, int(round(warmup_frac * steps)))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (steps - step) / max(1, steps - warm))


class Pool:
    """Packed sequences of one length on the training device, sampled epoch by epoch (seeded permutation)."""

    def __init__(self, seqs: list[np.ndarray], device: torch.device, generator: torch.Generator):
        ids, lens = D.to_tensor(seqs)
        self.ids = ids.to(device)
        self.lens = lens.to(device)
        self.gen = generator
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def __len__(self) -> int:
        return self.ids.shape[0]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + size > len(self.order):
            self.order = torch.randperm(len(self), generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + size].to(self.ids.device)
        self.pos += size
        ids = self.ids[idx]
        width = int(self.lens[idx].max())
        ids = ids[:, :width]
        return ids, (ids != toks.PAD_ID).long()


def set_determinism(device: torch.device) -> None:
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class TrainData:
    """The training pools (built once, shared by every run on one device)."""
    short: list[np.ndarray]
    long: list[np.ndarray]
    vocab_size: int


def train_data(prepared: D.Prepared, max_len: int = 128, long_len: int = MAX_POSITIONS) -> TrainData:
    short, _ = D.pack(prepared.train, max_len)
    long, _ = D.pack(prepared.train, long_len)
    return TrainData(short, long, prepared.vocab_size)


def train(cfg: TrainConfig, td: TrainData, log=print, eval_set: "EvalSet | None" = None) -> tuple[nn.Module, dict]:
    """Train one model for exactly ``cfg.steps`` steps; returns the model (eval mode, float32) and a run record."""
    dev = torch.device(cfg.device)
    set_determinism(dev)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2 ** 32))
    model = build_model(cfg.name, td.vocab_size, cfg.arch, max_positions=max(cfg.long_len, cfg.max_len))
    apply_init(model, cfg.init)
    model = model.to(dev)
    model.train()
    data_gen = torch.Generator().manual_seed(cfg.seed)
    mask_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
    short = Pool(td.short, dev, data_gen)
    long = Pool(td.long, dev, data_gen) if cfg.long_every and td.long else None
    long_batch = max(1, cfg.batch_size * cfg.max_len // cfg.long_len)
    opt = _optimizer(model, cfg.lr, cfg.weight_decay, cfg.adam_eps)
    base_lrs = [g["lr"] for g in opt.param_groups]
    amp = dev.type == "cuda"
    losses, checks = [], []
    running = torch.zeros((), device=dev)
    running_n = 0
    t0 = time.perf_counter()
    t_warm = t0
    for step in range(cfg.steps):
        if step == 3:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_warm = time.perf_counter()
        use_long = long is not None and cfg.long_every and (step % cfg.long_every == cfg.long_every - 1)
        ids, attn = long.batch(long_batch) if use_long else short.batch(cfg.batch_size)
        chosen = D.choose_masks(ids, mask_gen)
        inputs = D.corrupt_for_training(ids, chosen, td.vocab_size, mask_gen)
        labels = ids[chosen]
        mult = lr_at(step, cfg.steps, cfg.warmup_frac)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * mult
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = masked_logits(model, inputs, attn, chosen)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.detach()
        running_n += 1
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            avg = float(running) / max(1, running_n)
            if not math.isfinite(avg):
                raise FloatingPointError(f"{cfg.name}: the training loss is {avg} at step {step + 1}")
            losses.append([step + 1, round(avg, 4)])
            log(f"  {cfg.name} seed {cfg.seed}: step {step + 1}/{cfg.steps} loss {avg:.3f} "
                f"({time.perf_counter() - t0:.0f}s)")
            running = torch.zeros((), device=dev)
            running_n = 0
        if cfg.eval_every and eval_set is not None and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            model.eval()
            r = evaluate(model, eval_set, max_sequences=256)
            model.train()
            checks.append([step + 1, round(r["top1"], 4)])
            log(f"  {cfg.name} seed {cfg.seed}: held-out check at step {step + 1}: top-1 {r['top1']:.3f}")
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    model.eval()
    record = {"seed": cfg.seed, "steps": cfg.steps, "train_seconds": round(seconds, 1),
              "seconds_after_warmup": time.perf_counter() - t_warm if cfg.steps > 3 else seconds,
              "batch_size": cfg.batch_size, "max_len": cfg.max_len, "long_len": cfg.long_len,
              "long_every": cfg.long_every, "lr": cfg.lr, "warmup_frac": cfg.warmup_frac,
              "weight_decay": cfg.weight_decay, "init": cfg.init, "adam_eps": cfg.adam_eps,
              "loss_curve": losses, "heldout_checks": checks}
    return model, record


def calibrate_steps(cfg: TrainConfig, td: TrainData, seconds: float, probe_steps: int = 12) -> int:
    """Steps that fit in ``seconds`` on this device, timed on a throw-away run (every run reseeds itself, so
    the probe changes nothing in the real one)."""
    probe = copy.copy(cfg)
    probe.steps = probe_steps + 3
    probe.log_every = 10 ** 9
    probe.eval_every = 0
    _, rec = train(probe, td, log=lambda *_: None)
    per_step = rec["seconds_after_warmup"] / probe_steps
    return max(probe_steps, int(seconds / per_step))


@dataclass
class EvalSet:
    ids: torch.Tensor       # N × L (padded), original tokens
    chosen: torch.Tensor    # N × L bool: positions to predict
    corpus: list[int]
    corpora: list[str]

    @property
    def masked_tokens(self) -> int:
        return int(self.chosen.sum())


def eval_set(prepared: D.Prepared, max_len: int = 128) -> EvalSet:
    seqs, corpus = D.pack(prepared.heldout, max_len)
    ids, _ = D.to_tensor(seqs)
    return EvalSet(ids, D.eval_masks(ids), corpus, prepared.corpora)


def subset_indices(es: EvalSet, n: int = 48) -> list[int]:
    """A fixed, corpus-balanced subset of held-out sequences (for the shipped-metrics test)."""
    per = max(1, n // max(1, len(es.corpora)))
    out = []
    for c in range(len(es.corpora)):
        idx = [i for i, k in enumerate(es.corpus) if k == c]
        if idx:
            step = max(1, len(idx) // per)
            out += idx[::step][:per]
    return sorted(out)


def eval_indices(es: EvalSet, max_sequences: int | None = None) -> list[int]:
    """All held-out sequences, or ``max_sequences`` of them evenly spaced (so every corpus is represented)."""
    n = es.ids.shape[0]
    if max_sequences is None or max_sequences >= n:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, max_sequences).round()})


@torch.no_grad()
def evaluate(model: nn.Module, es: EvalSet, batch_size: int = 128, max_sequences: int | None = None,
             indices: list[int] | None = None) -> dict:
    """Top-1 / top-5 of the masked held-out tokens (float32), overall and per corpus."""
    dev = next(model.parameters()).device
    idx = eval_indices(es, max_sequences) if indices is None else list(indices)
    n_c = len(es.corpora)
    hit1 = np.zeros(n_c)
    hit5 = np.zeros(n_c)
    total = np.zeros(n_c)
    for s in range(0, len(idx), batch_size):
        sel = torch.tensor(idx[s:s + batch_size])
        ids = es.ids[sel]
        chosen = es.chosen[sel]
        width = int((ids != toks.PAD_ID).sum(1).max())
        ids, chosen = ids[:, :width].to(dev), chosen[:, :width].to(dev)
        attn = (ids != toks.PAD_ID).long()
        inputs = ids.masked_fill(chosen, toks.MASK_ID)
        logits = masked_logits(model, inputs, attn, chosen).float()
        gold = ids[chosen]
        top5 = logits.topk(5, dim=-1).indices
        h1 = (top5[:, 0] == gold).cpu().numpy()
        h5 = (top5 == gold[:, None]).any(-1).cpu().numpy()
        rows = chosen.nonzero()[:, 0].cpu().numpy()
        corp = np.array([es.corpus[int(i)] for i in sel])[rows]
        np.add.at(hit1, corp, h1)
        np.add.at(hit5, corp, h5)
        np.add.at(total, corp, 1)
    n = total.sum()
    return {"top1": float(hit1.sum() / n), "top5": float(hit5.sum() / n), "masked_tokens": int(n),
            "correct_top1": int(hit1.sum()), "sequences": len(idx),
            "per_corpus": {es.corpora[c]: {"top1": round(float(hit1[c] / total[c]), 4),
                                           "top5": round(float(hit5[c] / total[c]), 4), "masked_tokens": int(total[c])}
                           for c in range(n_c) if total[c]}}


def frequency_baseline(prepared: D.Prepared, es: EvalSet, max_sequences: int | None = None) -> dict:
    """Predict the most frequent training tokens (special tokens excluded) at every masked position."""
    counts = np.bincount(prepared.train.ids.astype(np.int64), minlength=prepared.vocab_size)
    counts[:toks.MASK_ID + 1] = 0
    order = np.argsort(-counts, kind="stable")[:5]
    idx = torch.tensor(eval_indices(es, max_sequences))
    gold = es.ids[idx][es.chosen[idx]].numpy()
    vocab = toks.load(prepared.tokenizer_dir)
    return {"tokens": [vocab.id_to_token(int(t)) for t in order], "top1": float((gold == order[0]).mean()),
            "top5": float(np.isin(gold, order).mean()), "masked_tokens": int(len(gold))}


def save_checkpoint(model: nn.Module, tokenizer_dir: Path, folder: Path, half: bool = True) -> int:
    """Hugging Face folder: config.json, model.safetensors (float16 storage when ``half``; the config keeps
    float32 so loaders upcast), tokenizer files. Returns the weights' size in bytes."""
    import shutil
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    m = copy.deepcopy(model).cpu()
    if half:
        m = m.half()
    m.save_pretrained(str(folder), safe_serialization=True)
    os.chmod(folder / "model.safetensors", 0o644)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    for key in ("dtype", "torch_dtype"):
        if key in cfg:
            cfg[key] = "float32"
    cfg.pop("_attn_implementation_autoset", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(Path(tokenizer_dir) / name, folder / name)
    return (folder / "model.safetensors").stat().st_size


def load_checkpoint(folder: Path, device: str = "cpu") -> nn.Module:
    """The saved model in float32, eval mode (what the evaluation measures)."""
    from transformers import AutoModelForMaskedLM
    from .. import paper_model  # noqa: F401  (registers the paper model type)
    kwargs = dict(dtype=torch.float32, use_safetensors=True, local_files_only=True)
    cfg = json.loads((Path(folder) / "config.json").read_text())
    if cfg.get("model_type") == "bert":
        kwargs["attn_implementation"] = "eager"
    model = AutoModelForMaskedLM.from_pretrained(str(folder), **kwargs)
    return model.to(device).eval()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores visible, {torch.get_num_threads()} threads)"
