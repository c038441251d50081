"""``python -m interp tabular``: the tabular out-of-distribution experiment (attention model vs one-hot
baselines over seeds), written as DIR/results.json; optionally the trained attention model as a model folder."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .args import positive_int

HELP = ("tabular mode: encode a table as sentences (columns = positions), train the masked-column attention model "
        "and one-hot baselines over seeds, write DIR/results.json (test accuracy and bin-MSE, mean and std)")


def _forms(text: str) -> tuple[str, ...]:
    from ..tabular.model import FORMS
    forms = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [f for f in forms if f not in FORMS]
    if not forms or bad:
        raise argparse.ArgumentTypeError(f"forms must be a comma-separated subset of {', '.join(FORMS)}, not {text!r}")
    return forms


def _fraction(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"test fraction must be a number, not {text!r}")
    if not 0.0 < x < 1.0:
        raise argparse.ArgumentTypeError(f"test fraction must be between 0 and 1, not {x}")
    return x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="'auto-mpg' (the paper's experiment, offline from vega_datasets) or a CSV path")
    parser.add_argument("--target", default=None, help="the column to predict (CSV only; auto-mpg predicts mpg)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for results.json (created)")
    parser.add_argument("--seeds", type=positive_int("seeds"), default=10, help="number of seeds (default 10)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run from here (default 0): split a long run into parts")
    parser.add_argument("--bins", type=positive_int("bins"), default=3,
                        help="quantile bins per numeric column (default 3: tertiles, as in the paper)")
    parser.add_argument("--epochs", type=positive_int("epochs"), default=200,
                        help="training epochs of the attention model (default 200, the paper's)")
    parser.add_argument("--forms", type=_forms, default=("bert",),
                        help="attention forms to train: bert (BertForMaskedLM, the paper's sizes) and/or paper "
                             "(no FFN, no LayerNorm: exactly a mixture of experts); default bert")
    parser.add_argument("--split-column", default=None,
                        help="CSV only: train on rows where this column equals --train-value, test on the rest "
                             "(default: a random split)")
    parser.add_argument("--train-value", default=None, help="CSV only: the --split-column value of training rows")
    parser.add_argument("--test-fraction", type=_fraction, default=0.3,
                        help="CSV only, without --split-column: share of rows held out (default 0.3)")
    parser.add_argument("--save-model", default=None, metavar="FOLDER",
                        help="also train one attention model (seed 0, first form) and save it as a model folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args) -> int:
    from ..tabular import data as TD
    from ..tabular import experiment as E
    from ..tabular.encoding import EncodingError
    from ..tabular.model import TrainSettings, save, train
    try:
        if args.data == "auto-mpg":
            if args.target not in (None, TD.AUTO_MPG_TARGET):
                raise EncodingError(f"auto-mpg predicts {TD.AUTO_MPG_TARGET}; --target is for CSV files")
            prep = TD.prepare_auto_mpg(bins=args.bins)
        else:
            if not args.target:
                raise EncodingError("a CSV needs --target COLUMN (the column to predict)")
            if (args.split_column is None) != (args.train_value is None):
                raise EncodingError("--split-column and --train-value go together")
            df, notes = TD.read_table(args.data)
            prep = TD.prepare_table(df, args.target, bins=args.bins, name=Path(args.data).name,
                                    test_fraction=args.test_fraction, split_column=args.split_column,
                                    train_value=args.train_value)
            prep.notes[:0] = notes
    except EncodingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        for note in prep.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{prep.name}: {prep.split_counts()['train']} training rows, {prep.split_counts()['test']} test rows "
              f"({prep.split_rule})", file=sys.stderr)

    def progress(frac, msg):
        if not args.quiet:
            print(f"[{frac:6.1%}] {msg}", file=sys.stderr, flush=True)

    settings = TrainSettings(epochs=args.epochs)
    results = E.run(prep, seeds=args.seeds, settings=settings, forms=args.forms, progress=progress,
                      first_seed=args.first_seed)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.save_model:
        s = TrainSettings(**{**settings.__dict__, "form": args.forms[0], "seed": 0})
        model, info = train(prep.enc, prep.codes[prep.train], s)
        save(model, prep.enc, Path(args.save_model), info)
    print(E.markdown_table(results))
    print(f"wrote {out / 'results.json'}", file=sys.stderr)
    return 0
