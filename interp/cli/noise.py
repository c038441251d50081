"""``python -m interp noise``: is sampled attention robust to noisy text? Clean vs perturbed predictions under
dense attention and sampled schemes (paired seeds), with the floor, intervals and McNemar tests; writes JSON."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .args import positive_int

HELP = ("probe how often predictions flip when the input is perturbed (typos, dropped words, casing…), under dense "
        "and sampled attention with the same seeds; floor, bootstrap intervals, McNemar; writes JSON")


def _list(kind):
    def parse(text):
        items = [x.strip() for x in str(text).split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{kind}: give a comma-separated list, not {text!r}")
        return items
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..noise.perturb import PERTURBATIONS
    p.add_argument("--model", default=None,
                   help="registry name (mini-bert, paper, cbow, minilm), a local model folder, or a hub name already "
                        "in the local Hugging Face cache (default: the first available model)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one input text; [MASK] marks where to compare predictions (without one, "
                                    "up to --mask-cap words are masked in turn)")
    src.add_argument("--log", type=Path, help="a log of inputs: .txt (one per line), .jsonl, .csv or .parquet")
    src.add_argument("--heldout", type=positive_int("heldout"), metavar="N",
                     help="the first N held-out sentences shipped in models/heldout_sample.json")
    p.add_argument("--text-column", default="text", help="JSONL/CSV/Parquet: the column holding the text (default text)")
    p.add_argument("--limit", type=positive_int("limit"), default=None, help="--log: probe at most this many inputs")
    p.add_argument("--perturbations", type=_list("perturbations"), default=["typo", "word-drop"],
                   help=f"comma-separated, from: {', '.join(PERTURBATIONS)} (default typo,word-drop)")
    p.add_argument("--rates", type=_list("rates"), default=["0", "0.1", "0.2"],
                   help="comma-separated rates in [0, 1]: share of letters/words edited (default 0,0.1,0.2)")
    p.add_argument("--schemes", type=_list("schemes"), default=["A", "C"],
                   help="comma-separated sampled-attention schemes (default A,C)")
    p.add_argument("--k", type=_list("k"), default=["8"], help="budget k, or several comma-separated (default 8)")
    p.add_argument("--seeds", type=positive_int("seeds"), default=4, help="sampling replicates per input (default 4)")
    p.add_argument("--noise-seeds", type=positive_int("noise seeds"), default=4,
                   help="noisy versions per (perturbation, rate) (default 4)")
    p.add_argument("--seed", type=int, default=0, help="the seed every draw derives from (default 0)")
    p.add_argument("--mask-cap", type=positive_int("mask cap"), default=4,
                   help="a text without [MASK]: mask at most this many words, one at a time (default 4)")
    p.add_argument("--time-budget", type=float, default=None, help="stop after about this many seconds")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the JSON result ('-' = stdout)")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def settings_from(args):
    from ..noise.probe import NoiseSettings
    rates = []
    for r in args.rates:
        try:
            rates.append(float(r))
        except ValueError:
            raise ValueError(f"--rates: {r!r} is not a number (give e.g. 0,0.1,0.2)") from None
    ks = []
    for k in args.k:
        if not k.isdigit() or int(k) < 1:
            raise ValueError(f"--k: {k!r} is not a positive integer")
        ks.append(int(k))
    st = NoiseSettings(perturbations=tuple(dict.fromkeys(args.perturbations)), rates=tuple(dict.fromkeys(rates)),
                       schemes=tuple(dict.fromkeys(args.schemes)), ks=tuple(dict.fromkeys(ks)),
                       noise_seeds=args.noise_seeds, seeds=args.seeds, seed=args.seed, mask_cap=args.mask_cap)
    st.check()
    return st


def run(args) -> int:
    from ..loader import ModelLoadError, default_model, load_model
    from ..noise.corpus import LogSource, heldout_sentences
    from ..noise.probe import probe_corpus

    try:
        settings = settings_from(args)
    except ValueError as err:
        return _fail(str(err))
    if args.time_budget is not None and args.time_budget <= 0:
        return _fail("--time-budget must be a positive number of seconds")
    if args.text is not None and not args.text.strip():
        return _fail("empty text: give --text a sentence (use [MASK] where the model should predict)")
    source, total, fraction = None, None, None
    try:
        if args.text is not None:
            inputs = [("text", args.text)]
            total = 1
        elif args.heldout is not None:
            inputs = heldout_sentences(args.heldout)
            total = len(inputs)
        else:
            source = LogSource(args.log, args.text_column, args.limit)
            inputs, fraction = source, source.fraction
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    try:
        lm = load_model(args.model or default_model(), device=args.device)
    except ModelLoadError as err:
        return _fail(str(err))
    except RuntimeError as err:
        return _fail(f"--device: {str(err).splitlines()[0]}")
    import torch
    if lm.device.type == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    last = [0.0]

    def progress(p):
        if args.quiet:
            return
        now = time.monotonic()
        if now - last[0] < 2.0 and p.done != p.total:
            return
        last[0] = now
        print(p.line(), file=sys.stderr, flush=True)

    try:
        summary = probe_corpus(lm, inputs, settings, total=total, progress=progress if args.text is None else None, fraction=fraction,
                               time_budget=args.time_budget)
    except (FileNotFoundError, ValueError) as err:     # includes the readers' LogError / MappingError
        return _fail(str(err).splitlines()[0])
    if source is not None:
        for where, reason in source.skipped:
            summary.skip(where, reason)
    if args.text is not None and summary.inputs == 0:
        reason = summary.skipped[0][1] if summary.skipped else "nothing to probe"
        return _fail(reason)
    if summary.inputs == 0:
        return _fail("no input could be probed: " + "; ".join(f"{w}: {r}" for w, r in summary.skipped[:3]))
    data = summary.to_json()
    data["source"] = ("text" if args.text is not None else f"heldout:{args.heldout}" if args.heldout is not None
                      else str(args.log))
    data["device"] = str(lm.device)
    text = json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False)
    if args.json == "-":
        print(text)
        return 0
    try:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text, encoding="utf-8")
    except OSError as err:
        return _fail(f"cannot write {args.json}: {err.strerror}")
    print(f"wrote {args.json}: {summary.inputs} inputs probed, {len(summary.skipped)} skipped, "
          f"{len(data['results'])} result rows, {summary.seconds:.1f} s", file=sys.stderr)
    return 0
