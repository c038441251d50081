"""``python -m interp triage LOG --model M --text-column COL --out DIR``: score every line of a production log.

Writes ``DIR/results.parquet`` (one row per line read: ``line``, ``status``, ``reason``, ``suspicion``, the
scores and ``rank``) and ``DIR/summary.json``; progress (rate, ETA) goes to stderr. Running the same command
again resumes where an interrupted run stopped. Exit status: 0 when the run worked (skipped or failed lines
included), 2 when it could not run (bad argument, unreadable log, wrong column mapping, model not loadable),
1 on an unexpected error, 130 when interrupted (the parts written so far are kept; run again to resume).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .args import positive_int

HELP = ("score every line of a production log (JSONL, CSV or Parquet): confidence, sampled-vs-dense "
        "instability, abnormal expert concentration; rank the suspicious ones; resumable")




def _non_negative_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds, not {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be ≥ 0, not {value}")
        return value
    return parse


def _rate(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"noise rate must be a number above 0 and at most 1, not {text!r}")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"noise rate must be above 0 and at most 1, not {value}")
    return value


def noise_settings(args: argparse.Namespace, settings):
    """``settings`` with the noise-sensitivity score switched on as the flags ask; ValueError (one line) for a
    noise option without --noise-score or a bad option."""
    from ..triage import registry
    opts = {"perturbation": args.noise_perturbation, "rate": args.noise_rate, "noise_seeds": args.noise_seeds}
    given = {k: v for k, v in opts.items() if v is not None}
    if not args.noise_score:
        if given:
            flags = ", ".join("--noise-" + k.replace("noise_", "").replace("_", "-") for k in given)
            raise ValueError(f"{flags} only apply with --noise-score")
        return settings
    return registry.with_score(settings, "noise", **given)


def _ints(text):
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 0,3 — not {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..sampling.schemes import SCHEMES
    from ..triage.scores import MASK_POLICIES
    p.add_argument("log", type=Path, metavar="LOG", help="the log file (.jsonl, .csv/.tsv or .parquet)")
    p.add_argument("--model", required=True,
                   help="registry name (mini-bert, paper, cbow, minilm), a local model folder, or a hub name "
                        "already in the local Hugging Face cache")
    p.add_argument("--text-column", required=True, help="the column (JSON key) holding the input text")
    p.add_argument("--id-column", default=None, help="optional: record id (duplicates are reported)")
    p.add_argument("--time-column", default=None, help="optional: timestamp (ISO 8601 or Unix seconds/ms)")
    p.add_argument("--prediction-column", default=None, help="optional: the logged prediction (word per [MASK])")
    p.add_argument("--label-column", default=None, help="optional: the label (word per [MASK])")
    p.add_argument("--slice-column", action="append", default=[], metavar="COL",
                   help="optional, repeatable: a field to slice the results by")
    p.add_argument("--format", default=None, choices=["jsonl", "csv", "parquet"],
                   help="log format (default: from the file name)")
    p.add_argument("--encoding", default=None,
                   help="text encoding of a JSONL/CSV log (default: UTF-8, or UTF-16 when the file says so; "
                        "invalid bytes are replaced and reported)")
    p.add_argument("--delimiter", default=None, help="CSV delimiter (default: guessed from the header)")
    p.add_argument("--mask-policy", default="auto", choices=list(MASK_POLICIES),
                   help="; ".join(f"{k}: {v}" for k, v in MASK_POLICIES.items()))
    p.add_argument("--mask-cap", type=positive_int("mask cap"), default=8,
                   help="mask-each: at most this many masked variants per input (default 8)")
    p.add_argument("--scheme", default="A", choices=list(SCHEMES), metavar="SCHEME",
                   help=f"sampled-attention scheme ({', '.join(SCHEMES)}; default A = Monte-Carlo)")
    p.add_argument("--k", type=positive_int("k"), default=8, help="keys drawn per query (default 8)")
    p.add_argument("--seeds", type=positive_int("seeds"), default=4, help="replicates S per input (default 4)")
    p.add_argument("--seed", type=int, default=0, help="the seed every per-input seed derives from (default 0)")
    p.add_argument("--layers", type=_ints, default=None, help="substitute the scheme in these layers (default all)")
    p.add_argument("--heads", type=_ints, default=None, help="… and these heads (default all)")
    p.add_argument("--on-long", default="truncate", choices=["truncate", "skip"],
                   help="a text longer than the model reads: analyse its start (default) or skip it")
    p.add_argument("--max-line-bytes", type=positive_int("max line bytes"), default=1 << 20,
                   help="skip physical lines longer than this (default 1 MiB)")
    p.add_argument("--limit", type=positive_int("limit"), default=None,
                   help="read at most this many lines of the log (counted from its start)")
    p.add_argument("--time-budget", type=_non_negative_float("time budget"), default=None,
                   help="stop after about this many seconds (run again to resume)")
    p.add_argument("--batch-size", type=positive_int("batch size"), default=16, help="inputs per forward pass")
    p.add_argument("--max-rows", type=positive_int("max rows"), default=None,
                   help="rows per sampled pass (inputs × seeds; default batch size × seeds)")
    p.add_argument("--flush-rows", type=positive_int("flush rows"), default=2048,
                   help="write a results part every this many lines (default 2048; smaller = less redone on resume)")
    p.add_argument("--workers", type=positive_int("workers"), default=1,
                   help="score in this many worker processes (local engine) or Ray actors (Ray engine), each with "
                        "its own copy of the model (default 1; with Ray, one per GPU: workers = GPUs)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (default): this process (and --workers processes); ray: the scoring stage on Ray "
                        "Data actors (needs the scale extra: make scale / pip install -r requirements-scale.txt)")
    p.add_argument("--address", default=None,
                   help="with --engine ray: the Ray cluster to join (e.g. ray://head:10001 or auto); default: start "
                        "a local Ray instance on this machine's cores")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="with --engine ray: GPUs per scoring actor (e.g. 1; fractions share a GPU; default 0)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--restart", action="store_true", help="discard an earlier run in --out and start again")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; holds a resumable run)")
    from ..noise.perturb import PERTURBATIONS
    from ..triage import registry
    from ..triage.store import all_rankings
    noise = registry.get("noise")
    p.add_argument("--noise-score", action="store_true",
                   help="optional score (off by default): how often each input's dense prediction flips under a "
                        f"little noise; cost: {noise.cost}")
    p.add_argument("--noise-perturbation", default=None, metavar="NAME",
                   help=f"with --noise-score: the perturbation ({', '.join(PERTURBATIONS)}; default typo)")
    p.add_argument("--noise-rate", type=_rate, default=None,
                   help="with --noise-score: share of words/characters edited, in (0, 1] (default 0.1)")
    p.add_argument("--noise-seeds", type=positive_int("noise seeds"), default=None,
                   help="with --noise-score: noisy versions per input (default 3)")
    p.add_argument("--rank-by", default="suspicion", choices=list(all_rankings()),
                   help="ranking for --top and --export-csv, over the whole run (default suspicion; "
                        "concentration = largest |z| of either sign; noise needs --noise-score)")
    p.add_argument("--top", type=int, default=0, help="print the first N rows of the ranking (identical inputs "
                   "grouped) to stdout after the run (default 0: none)")
    p.add_argument("--export-csv", type=Path, default=None,
                   help="write the whole ranking (identical inputs grouped, with explorer links) to this CSV")


def run(args: argparse.Namespace) -> int:
    from ..loader import ModelLoadError
    from ..triage import ColumnMapping, LogError, MappingError, ScoreSettings, run_triage

    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(p):
        if args.quiet:
            return
        now = time.monotonic()
        if not p.done and not tty and now - last[0] < 5.0:
            return
        last[0] = now
        if tty:
            print("\r" + p.line() + " " * 8, end="" if not p.done else "\n", file=sys.stderr, flush=True)
        else:
            print(p.line(), file=sys.stderr, flush=True)

    mapping = ColumnMapping(args.text_column, args.id_column, args.time_column, args.prediction_column,
                            args.label_column, tuple(dict.fromkeys(args.slice_column)))
    settings = ScoreSettings(args.scheme, args.k, args.seeds, args.seed, args.mask_policy, args.mask_cap,
                             args.layers, args.heads)
    try:
        settings = noise_settings(args, settings)
        summary = run_triage(args.log, args.out, args.model, mapping, settings, device=args.device,
                             fmt=args.format, encoding=args.encoding, delimiter=args.delimiter,
                             on_long=args.on_long, max_line_bytes=args.max_line_bytes, limit=args.limit,
                             time_budget=args.time_budget, batch_size=args.batch_size, restart=args.restart,
                             progress=progress, progress_every=0.5 if tty else 5.0, max_rows=args.max_rows,
                             flush_rows=args.flush_rows, workers=args.workers, engine=args.engine,
                             address=args.address, gpus_per_worker=args.gpus_per_worker)
    except (LogError, MappingError, ModelLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the lines scored so far are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    except OSError as err:
        print(f"error: {err.strerror or err}: {getattr(err, 'filename', '') or ''}", file=sys.stderr)
        return 2
    unread = f", {summary['unreadable']:,} unreadable" if summary.get("unreadable") else ""
    print(f"{summary['lines_total']:,} lines: {summary['analysed']:,} analysed, {summary['skipped']:,} skipped"
          f"{unread}, {summary['failed']:,} failed · {summary['inputs_per_second']:.1f} inputs/s · "
          f"{'complete' if summary['complete'] else 'stopped at the ' + summary['stopped'] + ' (run again to resume)'}"
          f"\nresults: {args.out / 'results.parquet'}\nsummary: {args.out / 'summary.json'}", file=sys.stderr)
    _ranked_outputs(args)
    return 0


def _ranked_outputs(args: argparse.Namespace) -> None:
    """--top and --export-csv: the query layer's ranking (the same as the page's)."""
    if not args.top and args.export_csv is None:
        return
    from ..triage import ResultsQuery
    q = ResultsQuery(args.out)
    try:
        if args.top:
            table = q.ranked(args.rank_by, args.top)
            cols = [c for c in ("rank", "line", "copies", "suspicion", "concentration_z", "flip_rate", "kl",
                                "noise_flip_rate", "text")
                    if c in table.columns]
            print(table[cols].to_string(index=False, max_colwidth=60))
        if args.export_csv is not None:
            link = {"model": args.model, "scheme": args.scheme, "k": args.k, "seed": args.seed}
            args.export_csv.write_bytes(q.ranked_csv(args.rank_by, link=link))
            print(f"ranking: {args.export_csv}", file=sys.stderr)
    finally:
        q.close()
