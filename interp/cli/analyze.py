"""``python -m interp analyze``: decompose every head of one text into its CBOW-plus-expert form."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "decompose every attention head of one text into gates and experts, with exactness checks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="registry name (mini-bert, paper, cbow, minilm), a local model folder, or a hub name "
                        "already in the local Hugging Face cache (default: mini-bert when built, else minilm)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the input text; write [MASK] where the model should predict a word")
    src.add_argument("--text-file", type=Path, help="read the input text from this UTF-8 file")
    p.add_argument("--layer", type=int, default=None, help="layer of the head to open (0-based); with --head, "
                   "adds that head's view and its three lenses to the JSON")
    p.add_argument("--head", type=int, default=None, help="head to open (0-based)")
    p.add_argument("--query", type=int, default=None,
                   help="query token position for the lenses (default: the first [MASK], else the first real token)")
    from ..lenses import LENS_INFO
    p.add_argument("--lenses", default=",".join(LENS_INFO),
                   help="comma-separated lenses to compute for the opened head (default: all): " +
                        "; ".join(f"{i.name} = {i.description} ({i.exactness})" for i in LENS_INFO.values()))
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--json", type=Path, default=None, help="write the result here (default: print to stdout)")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..analysis import AnalysisError, analyze

    if (args.layer is None) != (args.head is None):
        return _fail("--layer and --head go together")
    if args.text_file is not None:
        try:
            text = args.text_file.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            return _fail(f"cannot read {args.text_file}: {err.strerror}")
    else:
        text = args.text
    lenses = [s.strip() for s in args.lenses.split(",") if s.strip()]
    try:
        result = analyze(args.model, text, layer=args.layer, head=args.head, query=args.query, lenses=lenses,
                         device=args.device)
    except AnalysisError as err:
        return _fail(str(err))
    out = json.dumps(result, indent=1, ensure_ascii=False)
    if args.json is None:
        print(out)
    else:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(out, encoding="utf-8")
        except OSError as err:
            return _fail(f"cannot write {args.json}: {err.strerror}")
        for note in result["notes"]:
            print(f"note: {note}", file=sys.stderr)
    return 0
