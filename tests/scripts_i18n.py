"""Helper for test_i18n: run scripts/i18n_missing.py against the tables with one extra English key."""
from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

from interp import i18n

ROOT = Path(__file__).resolve().parent.parent


def run_with_extra_key() -> tuple[int, str]:
    spec = importlib.util.spec_from_file_location("i18n_missing", ROOT / "scripts" / "i18n_missing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    i18n.EN["zz.new_key"] = "A new string"
    buf, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            code = mod.main(["--check"])
    finally:
        del i18n.EN["zz.new_key"]
    return code, buf.getvalue()
