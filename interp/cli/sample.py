"""``python -m interp sample``: sampled attention versus dense attention for one text, written as JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..ranges import K, SEED, SEEDS
from .args import in_range, positive_int

HELP = ("compare a sampled-attention scheme with dense attention for every head of one text, and its effect "
        "on the model's output; writes JSON")

SCHEME_HELP = ("A = Monte-Carlo from the softmax row; B-uniform / B-vnorm = self-normalised importance sampling "
               "with a uniform / value-norm proposal; C = top-k renormalised; D = positive random features "
               "(Performer); E = exact top-h plus k draws from the tail; null = mean of V")


def _layers(text):
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"layers must be integers, not {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sampling.schemes import SCHEMES
    parser.add_argument("--model", default=None,
                        help="registry name (minilm, mini-bert, paper, cbow), a local model folder, or a hub name "
                             "already in the local cache (default: the first available model)")
    parser.add_argument("--text", required=True, help="the input text; use [MASK] where an MLM should predict")
    parser.add_argument("--scheme", required=True, choices=list(SCHEMES), metavar="SCHEME", help=SCHEME_HELP)
    parser.add_argument("--k", type=in_range(K), required=True,
                        help="budget: keys drawn per query (A, B, E's tail), keys kept (C), default random "
                             "features (D)")
    parser.add_argument("--seeds", type=in_range(SEEDS), default=8,
                        help="number of independent replicates S (default 8)")
    parser.add_argument("--seed", type=in_range(SEED), default=0,
                        help=f"the user-visible seed all draws derive from, {SEED.describe()} (default 0)")
    parser.add_argument("--h", type=int, default=None, help="scheme E: keys kept exactly (default: k)")
    parser.add_argument("--m", type=positive_int("m"), default=None, help="scheme D: random features (default: k)")
    parser.add_argument("--layers", type=_layers, nargs="+", default=None,
                        help="layers to analyse and substitute (e.g. --layers 0 3 or --layers 0,3; default: all)")
    parser.add_argument("--no-downstream", action="store_true",
                        help="skip substituting the scheme into the model (output comparison)")
    parser.add_argument("--per-query", action="store_true",
                        help="also write the per-query arrays (layer × head × token) used by the heatmaps")
    parser.add_argument("--json", required=True, metavar="PATH", help="where to write the JSON result ('-' = stdout)")


def run(args) -> int:
    from ..loader import ModelLoadError, default_model, load_model
    from ..sampling.report import sampling_report
    from ..sampling.settings import SamplingSettings
    from ..trace import InputError, trace_text
    layers = None if args.layers is None else sorted({x for group in args.layers for x in group})
    try:
        if args.text is None or not args.text.strip():
            raise InputError("empty text: give --text a sentence")
        lm = load_model(args.model or default_model())
        trace = trace_text(lm, args.text)
        settings = SamplingSettings(args.scheme, args.k, args.seeds, args.seed, args.h, args.m).checked()
        report = sampling_report(lm, trace, settings, layers=layers, downstream=not args.no_downstream)
    except (ModelLoadError, InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = report.to_json(per_query=args.per_query)
    text = json.dumps(data, indent=1, allow_nan=False)
    if args.json == "-":
        print(text)
    else:
        try:
            Path(args.json).write_text(text, encoding="utf-8")
        except OSError as err:
            print(f"error: cannot write {args.json}: {err.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {args.json}: {args.scheme}, k={args.k}, S={args.seeds}, seed={args.seed}, "
              f"{len(report.heads)} heads")
    return 0
