"""List the string keys that a language's table lacks (default: Japanese), with the English text to translate.

    .venv/bin/python scripts/i18n_missing.py            # keys missing in Japanese
    .venv/bin/python scripts/i18n_missing.py --lang ja --python   # as Python lines to paste into interp/locales/ja.py
    .venv/bin/python scripts/i18n_missing.py --check    # also exit 1 when a key is missing or extra

Keys are read from the tables themselves (``interp.i18n.TABLES``), so keys added later are listed too. Also
reported: keys a language has but English lacks (stale), and keys whose {placeholders} differ from English.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interp.i18n import EN, TABLES  # noqa: E402
from interp.i18n_check import placeholder_mismatches  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", default="ja", help="language code of the table to check (default ja)")
    ap.add_argument("--python", action="store_true", help="print missing keys as dict lines with the English text")
    ap.add_argument("--check", action="store_true", help="exit 1 when anything is missing, stale or mismatched")
    args = ap.parse_args(argv)
    if args.lang not in TABLES:
        print(f"unknown language {args.lang!r}: the tables are {', '.join(TABLES)}", file=sys.stderr)
        return 2
    table = TABLES[args.lang]
    missing = [k for k in EN if k not in table]
    stale = [k for k in table if k not in EN]
    mismatched = placeholder_mismatches(EN, table)
    for key in missing:
        if args.python:
            print(f"    {key!r}: {EN[key]!r},  # TODO translate")
        else:
            print(f"missing\t{key}\t{EN[key]}")
    for key in stale:
        print(f"stale\t{key}\t(not in English)")
    for key, (en, other) in mismatched.items():
        print(f"placeholders\t{key}\ten {sorted(en)} vs {args.lang} {sorted(other)}")
    print(f"{len(missing)} missing, {len(stale)} stale, {len(mismatched)} with different placeholders "
          f"({len(EN)} English keys, language {args.lang})", file=sys.stderr)
    return 1 if args.check and (missing or stale or mismatched) else 0


if __name__ == "__main__":
    sys.exit(main())
