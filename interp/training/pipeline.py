"""The whole recipe behind ``python -m interp train``: prepare the data, train paper and cbow (several seeds,
same steps) and mini-bert, evaluate on the held-out documents, save the checkpoints, metrics and model cards."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import cards
from . import data as D
from . import run as R
from . import tokenizer as T

METRICS_FILE = "metrics.json"
SAMPLE_FILE = "heldout_sample.json"
# Share of a total time budget given to each run: mini-bert, and each paper/cbow seed.
BUDGET_SHARE = {"mini-bert": 0.7, "paper-run": 0.075}
CPU_DEFAULT_BUDGET = 900.0
CPU_BATCH = 32


@dataclass
class Plan:
    names: list[str]
    seed: int
    compare_seeds: int
    device: str
    steps: dict[str, int] | None          # explicit steps per model, or None (use the time budget)
    budget_seconds: float | None
    batch_size: int
    eval_max_sequences: int | None
    arch: dict                            # per-model ARCH overrides (tests)
    max_len: int = 128
    long_len: int = R.MAX_POSITIONS
    long_every: int = 10
    eval_every_frac: float = 0.0
    inits: dict = None                    # paper/cbow: {name: [candidate inits]}; several ⇒ a sweep picks one
    sweep_steps: int = 2000


def ensure_prepared(folder: Path, vocab_size: int, cache: Path | None, fetch: bool, names=None, log=print,
                    tokenizer_dir: Path | None = None) -> D.Prepared:
    """The prepared data in ``folder``: loaded if present (and built with ``tokenizer_dir``'s tokenizer when one
    is given), else built from the corpora (fetched when missing)."""
    from .. import corpora
    from . import tokenizer as toks
    try:
        prepared = D.load_prepared(folder)
    except FileNotFoundError:
        prepared = None
    if prepared is not None:
        if tokenizer_dir is None or toks.fingerprint(prepared.tokenizer_dir) == toks.fingerprint(tokenizer_dir):
            return prepared
        raise ValueError(f"{folder} was prepared with another tokenizer than {tokenizer_dir}")
    names = tuple(names or corpora.CORPUS_NAMES)
    log(f"reading corpora: {', '.join(names)}")
    docs = corpora.load(names, cache=cache, fetch=fetch)
    return D.prepare(docs, folder, vocab_size, sources={n: s for n, s in corpora.sources(cache).items() if n in names},
                     log=log, tokenizer_dir=tokenizer_dir)


def split_candidate(cand: str) -> tuple[str, float | None]:
    """'INIT' or 'INIT@LR' → (init, learning rate or None for the model's default)."""
    init, _, lr = cand.partition("@")
    return init, (float(lr) if lr else None)


def _config(plan: Plan, name: str, seed: int, steps: int, cand: str = "default") -> R.TrainConfig:
    init, lr = split_candidate(cand)
    return R.TrainConfig(init=init, adam_eps=1e-6 if init == "default" else 1e-8,name=name, seed=seed, steps=steps, batch_size=plan.batch_size, max_len=plan.max_len,
                         long_len=plan.long_len, long_every=plan.long_every, lr=lr or R.DEFAULT_LR[name],
                         device=plan.device, log_every=max(1, min(500, steps // 10)),
                         eval_every=int(steps * plan.eval_every_frac) if plan.eval_every_frac else 0,
                         arch=plan.arch.get(name, {}))


def _steps_for(plan: Plan, name: str, td: R.TrainData, log) -> tuple[int, str]:
    if plan.steps and name in plan.steps:
        return plan.steps[name], "given"
    key = "mini-bert" if name == "mini-bert" else "paper-run"
    seconds = plan.budget_seconds * BUDGET_SHARE[key]
    steps = R.calibrate_steps(_config(plan, name, plan.seed, 20), td, seconds)
    log(f"{name}: {steps} steps fit in {seconds:.0f} s on {plan.device}")
    return steps, f"calibrated to {seconds:.0f} s"


def train_all(prepared: D.Prepared, out: Path, plan: Plan, log=print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(plan.device)
    t_all = time.perf_counter()
    td = R.train_data(prepared, plan.max_len, plan.long_len)
    es = R.eval_set(prepared, plan.max_len)
    subset = R.subset_indices(es)
    metrics = _load(out / METRICS_FILE)
    metrics.update({
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": R.device_description(dev),
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": _version("transformers"), "tokenizers": _version("tokenizers")},
        "data": {"corpora": prepared.corpora, "sources": prepared.manifest.get("sources", {}),
                 "tokenizer_sha256": T.fingerprint(prepared.tokenizer_dir),
                 "stats": prepared.manifest["stats"], "vocab_size": prepared.vocab_size,
                 "heldout_documents": prepared.manifest.get("heldout_documents", {}),
                 "heldout_documents_total": prepared.manifest.get("heldout_documents_total", {}),
                 "train_sequences": {str(plan.max_len): len(td.short), str(plan.long_len): len(td.long)}},
        "eval": {"protocol": f"held-out documents packed into sequences of <= {plan.max_len} tokens; "
                             f"{int(D.MASK_RATE * 100)}% of the real tokens (at least one per sequence) chosen with "
                             f"seed {D.EVAL_MASK_SEED} and all replaced by [MASK]; top-k of the model's logits at "
                             "those positions, float32, checkpoint as saved",
                 "sequences": len(R.eval_indices(es, plan.eval_max_sequences)),
                 "masked_tokens": None, "mask_seed": D.EVAL_MASK_SEED, "max_len": plan.max_len},
    })
    metrics.setdefault("models", {})
    base = R.frequency_baseline(prepared, es, plan.eval_max_sequences)
    metrics["baseline"] = R_round(base)
    metrics["eval"]["masked_tokens"] = base["masked_tokens"]
    _write_sample(out / SAMPLE_FILE, es, subset)
    shared_steps = None
    for name in plan.names:
        seeds = [plan.seed] if name == "mini-bert" else [plan.seed + k for k in range(max(1, plan.compare_seeds))]
        if name in ("paper", "cbow") and shared_steps is not None and not (plan.steps and name in plan.steps):
            steps, how = shared_steps, "same as paper"
        else:
            steps, how = _steps_for(plan, name, td, log)
        if name == "paper":
            shared_steps = steps
        init, sweep = "default", None
        if name in ("paper", "cbow"):
            init, sweep = _choose_init(plan, name, td, log)
        runs = []
        for seed in seeds:
            cfg = _config(plan, name, seed, steps, init)
            log(f"training {name} (seed {seed}, {steps} steps, batch {cfg.batch_size}, device {plan.device})")
            model, rec = R.train(cfg, td, log=log, eval_set=es)
            rec["steps_from"] = how
            folder = out / name if seed == plan.seed else None
            if folder is not None:
                rec["weights_bytes"] = R.save_checkpoint(model, prepared.tokenizer_dir, folder)
                model = R.load_checkpoint(folder, plan.device)  # evaluate exactly what ships
            res = R.evaluate(model, es, max_sequences=plan.eval_max_sequences)
            rec.update(R_round({k: v for k, v in res.items() if k != "per_corpus"}))
            rec["per_corpus"] = res["per_corpus"]
            sub = R.evaluate(model, es, indices=subset)
            rec["sample"] = {"correct_top1": sub["correct_top1"], "masked_tokens": sub["masked_tokens"],
                             "correct_top5": int(round(sub["top5"] * sub["masked_tokens"]))}
            log(f"{name} seed {seed}: held-out top-1 {res['top1']:.4f}, top-5 {res['top5']:.4f} "
                f"({res['masked_tokens']} masked tokens)")
            runs.append(rec)
            del model
        arch = R.build_model(name, prepared.vocab_size, plan.arch.get(name, {}), max(plan.long_len, plan.max_len))
        metrics["models"][name] = {
            "shipped_seed": plan.seed, "parameters": R.count_parameters(arch), "config": arch.config.to_dict(),
            "runs": runs, "summary": _summary(runs)}
        if sweep:
            metrics["models"][name]["init_sweep"] = sweep
        metrics["total_seconds"] = round(time.perf_counter() - t_all, 1)
        _dump(out / METRICS_FILE, metrics)
    if "paper" in metrics["models"] and "cbow" in metrics["models"]:
        metrics["paper_vs_cbow"] = _compare(metrics["models"]["paper"], metrics["models"]["cbow"])
    metrics["total_seconds"] = round(time.perf_counter() - t_all, 1)
    _dump(out / METRICS_FILE, metrics)
    cards.write_all(out, metrics)
    return metrics


def _choose_init(plan: Plan, name: str, td: R.TrainData, log) -> tuple[str, dict | None]:
    """The init of a paper/cbow run: the only candidate, or the one with the lowest final *training* loss
    after ``plan.sweep_steps`` steps (seed ``plan.seed``); the held-out documents play no part."""
    cands = list((plan.inits or {}).get(name) or ["default"])
    if len(cands) == 1:
        return cands[0], None
    sweep = {}
    for init in cands:
        cfg = _config(plan, name, plan.seed, plan.sweep_steps, init)
        cfg.log_every = max(1, plan.sweep_steps // 10)
        cfg.eval_every = 0
        try:
            _, rec = R.train(cfg, td, log=lambda *_: None)
            sweep[init] = rec["loss_curve"][-1][1]
        except FloatingPointError:
            sweep[init] = float("inf")
        log(f"{name}: init sweep {init}: training loss {sweep[init]:.4f} after {plan.sweep_steps} steps")
    best = min(cands, key=lambda c: (sweep[c], cands.index(c)))
    log(f"{name}: chose init {best}")
    return best, {"steps": plan.sweep_steps, "final_training_loss": sweep, "chosen": best,
                  "rule": "lowest training loss (mean of the last tenth of the steps); held-out data unused"}


def R_round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _summary(runs: list[dict]) -> dict:
    t1 = [r["top1"] for r in runs]
    t5 = [r["top5"] for r in runs]
    return {"seeds": [r["seed"] for r in runs], "top1_mean": round(sum(t1) / len(t1), 4),
            "top1_spread": round(max(t1) - min(t1), 4), "top5_mean": round(sum(t5) / len(t5), 4),
            "top5_spread": round(max(t5) - min(t5), 4)}


def _compare(paper: dict, cbow: dict) -> dict:
    p, c = paper["summary"], cbow["summary"]
    margin = p["top1_mean"] - c["top1_mean"]
    spread = max(p["top1_spread"], c["top1_spread"])
    return {"top1_margin": round(margin, 4), "top1_spread": spread, "seeds": min(len(p["seeds"]), len(c["seeds"])),
            "paper_beats_cbow_beyond_spread": bool(margin > spread and min(len(p["seeds"]), len(c["seeds"])) >= 2)}


def _write_sample(path: Path, es: R.EvalSet, subset: list[int]) -> None:
    rows = []
    for i in subset:
        ids = es.ids[i]
        n = int((ids != 0).sum())
        rows.append({"corpus": es.corpora[es.corpus[i]], "input_ids": ids[:n].tolist(),
                     "masked": es.chosen[i, :n].nonzero()[:, 0].tolist()})
    doc = {"about": "A fixed corpus-balanced subset of the held-out evaluation sequences (token ids of the shipped "
                    "tokenizer; 'masked' are the positions replaced by [MASK] and predicted). metrics.json records "
                    "how many each model gets right, so a test can check that the shipped checkpoints reproduce.",
           "mask_seed": D.EVAL_MASK_SEED, "sequences": rows}
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _dump(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:  # pragma: no cover
        return "?"
