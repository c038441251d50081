"""The string tables: every key in every language, the same placeholders everywhere, real Japanese, and the
language chosen from the URL, else the browser's Accept-Language, else English. Keys are read from the tables at
run time, so keys added later are checked too."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from interp import i18n
from interp.i18n import EN, LANGS, TABLES, t
from interp.i18n_check import placeholder_mismatches, placeholders
from interp.language import from_accept_language, parse_accept_language, resolve_language

ROOT = Path(__file__).resolve().parent.parent
# Strings that are the same in every language (names, code, file formats).
SAME_EVERYWHERE = {"app.title", "input.folder_placeholder", "input.text_placeholder", "export.html", "export.csv",
                   "triage.progress_pct"}              # a percentage reads the same in both languages
KANA_KANJI = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")  # CJK punctuation, kana, kanji, full-width


def test_japanese_is_registered():
    assert set(LANGS) >= {"en", "ja"}
    assert TABLES["en"] is EN


@pytest.mark.parametrize("lang", [l for l in LANGS if l != "en"])
def test_every_key_in_every_language(lang):
    table = TABLES[lang]
    missing = sorted(set(EN) - set(table))
    extra = sorted(set(table) - set(EN))
    assert not missing, f"keys missing in {lang}: {missing} (scripts/i18n_missing.py --lang {lang} lists them)"
    assert not extra, f"keys in {lang} but not in English: {extra}"


@pytest.mark.parametrize("lang", [l for l in LANGS if l != "en"])
def test_placeholders_match_english(lang):
    bad = placeholder_mismatches(EN, TABLES[lang])
    assert not bad, "placeholders differ: " + "; ".join(f"{k}: en {sorted(a)} vs {lang} {sorted(b)}"
                                                         for k, (a, b) in bad.items())


def _sample(spec: str):
    if spec.endswith(("%", "f", "e", "g")):
        return 0.25
    if spec in (",", ",d", "d"):
        return 1234
    return "x"


@pytest.mark.parametrize("lang", LANGS)
def test_every_string_formats(lang):
    for key, text in TABLES[lang].items():
        values = {name: _sample(spec) for name, spec in placeholders(text)}
        t(key, lang, **values)          # raises on a bad field or format spec


def test_japanese_is_japanese():
    """Each Japanese string (apart from names and formats) contains kana or kanji: nothing left in English."""
    left = [k for k, v in TABLES["ja"].items() if k not in SAME_EVERYWHERE and not KANA_KANJI.search(v)]
    assert not left, f"Japanese strings without Japanese text: {left}"


def test_checker_detects_a_missing_key_and_a_changed_placeholder():
    """The checks above can fail: a table lacking a key, and one formatting a value differently, are caught."""
    ref = {"a": "{n} items", "b": "{rate:.0%} flipped", "c": "plain"}
    other = {"a": "{n} 件", "b": "{rate:.1%} が変化", "c": "{extra} 追加"}
    assert set(placeholder_mismatches(ref, other)) == {"b", "c"}
    assert placeholders("{{literal}} {x:,} {y}") == frozenset({("x", ","), ("y", "")})
    assert sorted(set(ref) - {"a"}) == ["b", "c"]


def test_missing_keys_script(monkeypatch):
    """The lead's helper lists keys missing in Japanese; with --check it fails on them."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "i18n_missing.py"), "--check"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 missing" in out.stderr
    from scripts_i18n import run_with_extra_key
    code, text = run_with_extra_key()
    assert code == 1 and "missing\tzz.new_key\tA new string" in text


def test_fallback_to_english_for_an_unknown_language():
    assert t("nav.explore", "xx") == EN["nav.explore"]
    assert t("nav.explore", "ja") == TABLES["ja"]["nav.explore"] != EN["nav.explore"]


# --- language resolution -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, header, expected", [
    ("ja", None, "ja"),
    ("en", "ja-JP,ja;q=0.9", "en"),              # the URL wins over the browser
    ("JA", None, "ja"),                          # case-insensitive
    ("ja-JP", None, "ja"),
    ("fr", "ja", "ja"),                          # an unsupported URL value falls through to the browser
    (None, "ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", "ja"),
    (None, "en-US,en;q=0.9,ja;q=0.8", "en"),
    (None, "fr-CH, fr;q=0.9, ja;q=0.8, *;q=0.5", "ja"),   # first supported range
    (None, "en;q=0.2, ja;q=0.8", "ja"),          # weights, not order
    (None, "ja;q=0, en", "en"),                  # q=0: not acceptable
    (None, "fr, de", "en"),                      # nothing supported → English
    (None, "", "en"),
    (None, None, "en"),
    (None, "*", "en"),
    (None, "ja;q=abc, en;q=0.5", "en"),          # malformed weight skipped
    ("", "ja", "ja"),
])
def test_resolve_language(url, header, expected):
    assert resolve_language(url, header) == expected


def test_parse_accept_language_orders_by_weight_then_position():
    assert parse_accept_language("a;q=0.5, b, c;q=0.5, d;q=1.5") == [("b", 1.0), ("a", 0.5), ("c", 0.5)]
    assert from_accept_language("de") is None
