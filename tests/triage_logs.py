"""Logs for the triage tests: the "300 lines with 12 long ones" log of the reliability issue, and a tricky log
(malformed lines, duplicates, long lines, CJK) for engine comparisons; and the small random BERT they are scored
with (fixtures ``folder`` and ``lm``, imported by the test modules that use them)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine_fixtures import WORDS, model_folder
from interp.loader import load_model


@pytest.fixture(scope="module")
def folder():
    return str(model_folder("bert", True, 0, initializer_range=0.3))


@pytest.fixture(scope="module")
def lm(folder):
    return load_model(folder)


def sentence(rng: random.Random, lo: int = 4, hi: int = 12) -> str:
    words = [rng.choice(WORDS[:70]) for _ in range(rng.randint(lo, hi))]
    if rng.random() < 0.6:
        words[rng.randrange(len(words))] = "[MASK]"
    return " ".join(words)


def long_lines_log(path: Path, n: int = 300, n_long: int = 12, long_chars: int = 3000, seed: int = 0) -> Path:
    """``n`` lines: ``n_long`` of about ``long_chars`` characters spread through the log, a few malformed and
    non-English lines, the rest short sentences."""
    rng = random.Random(seed)
    long_at = set(rng.sample(range(n), n_long))
    lines = []
    for i in range(n):
        if i in long_at:
            text = ""
            while len(text) < long_chars:
                text += sentence(rng, 8, 16) + " . "
            lines.append(json.dumps({"id": f"r{i}", "text": text[:long_chars]}))
        elif i % 50 == 7:
            lines.append("{broken json")
        elif i % 50 == 19:
            lines.append(json.dumps({"id": f"r{i}", "text": "注文した商品がまだ届きません。"}, ensure_ascii=False))
        else:
            lines.append(json.dumps({"id": f"r{i}", "text": sentence(rng)}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tricky_log(path: Path, n: int = 40, seed: int = 1) -> Path:
    """Bad lines, blank lines, duplicates (same text, other ids), long lines, CJK, empty text."""
    rng = random.Random(seed)
    lines = []
    dup = sentence(rng)
    for i in range(n):
        r = i % 10
        if r == 3:
            lines.append(json.dumps({"id": f"d{i}", "text": dup}))
        elif r == 5 and i < 20:
            lines.append("{oops")
        elif r == 6:
            lines.append(json.dumps({"id": f"j{i}", "text": "返品の手続きを教えてください"}, ensure_ascii=False))
        elif r == 8:
            lines.append(json.dumps({"id": f"l{i}", "text": " ".join(sentence(rng, 10, 14) for _ in range(40))}))
        elif r == 9 and i < 20:
            lines.append(json.dumps({"id": f"e{i}", "text": ""}))
        elif r == 9:
            lines.append("")
        else:
            lines.append(json.dumps({"id": f"s{i}", "text": sentence(rng)}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
