"""Command line: ``python -m interp COMMAND ...``; each command lives in ``interp/cli/COMMAND.py`` and exposes
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("analyze", "sample", "triage", "train", "noise", "tabular")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, non-zero exit
        self.exit(2, f"error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m interp", description="ExpertLens: analyse BERT-family attention heads as "
                     "mixtures of positional experts, and compare sampled with dense attention.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = {}
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"interp.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"interp.cli.{name}":
                continue
            raise
        modules[name] = mod
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
