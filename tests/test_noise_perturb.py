"""Perturbations: reproducible by seed, rates respected (stated tolerance), special tokens and [MASK] never
touched, empty and all-special inputs handled, alignment and marks consistent with the two texts."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from interp.noise.perturb import (KEYBOARD, PERTURBATIONS, MASK_ALIASES, marked_spans, perturb, protected_sequence,
                                  segment)

PROTECTED = ("[MASK]", "[CLS]", "[SEP]", "[UNK]", "[PAD]", "<mask>", "[mask]")
TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
        "want of a [MASK]. She walked [MASK] the garden and said nothing [SEP] at all")
LONG = " ".join(["the quick brown fox jumps over the lazy dog near the river bank"] * 30) + " [MASK] ."


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_same_seed_same_text_other_seed_other_text(name):
    a = perturb(TEXT, name, 0.3, seed=7, protected=PROTECTED)
    b = perturb(TEXT, name, 0.3, seed=7, protected=PROTECTED)
    assert a.text == b.text and a.alignment == b.alignment and a.edits == b.edits
    others = {perturb(TEXT, name, 0.3, seed=s, protected=PROTECTED).text for s in range(8)}
    assert len(others) > 1


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.2, 0.5])
def test_rate_is_respected(name, rate):
    """Stated tolerance: the edits made are ⌊rate·N + u⌋ of the N eligible units, so |edits − rate·N| < 1;
    for the pair swaps (which never overlap) at most that many and at least 60% of it at these rates."""
    for seed in range(5):
        nz = perturb(LONG, name, rate, seed=seed, protected=PROTECTED)
        assert nz.units > 100
        if name in ("char-swap", "word-swap"):
            assert nz.edits <= rate * nz.units + 1
            assert nz.edits >= 0.6 * rate * nz.units - 1
        else:
            assert abs(nz.edits - rate * nz.units) < 1
        if rate == 0:
            assert nz.text == LONG and not any(nz.alignment.noisy_marks)


def test_rate_measured_on_the_text_itself():
    """Counted from the two texts, not from the function's own report."""
    clean_words = LONG.split()
    for seed in range(4):
        drop = perturb(LONG, "word-drop", 0.2, seed=seed, protected=PROTECTED)
        n_plain = len(clean_words) - 1                            # the [MASK] cannot be dropped
        assert abs((len(clean_words) - len(drop.text.split())) - 0.2 * n_plain) < 1
        case = perturb(LONG, "casing", 0.2, seed=seed, protected=PROTECTED)
        changed = sum(a != b for a, b in zip(clean_words, case.text.split()))
        assert abs(changed - 0.2 * n_plain) < 1
        kb = perturb(LONG, "keyboard", 0.1, seed=seed, protected=PROTECTED)
        letters = sum(c.isalpha() for w in clean_words if w not in PROTECTED for c in w)
        diff = sum(a != b for a, b in zip(LONG, kb.text))          # same length: one letter replaced per edit
        assert len(kb.text) == len(LONG) and abs(diff - 0.1 * letters) < 1


words = hs.lists(hs.one_of(hs.sampled_from(PROTECTED + ("[MASK].", "x[MASK]y", "[MAS", "K]", "<mas", "k>")),
                           hs.text(alphabet=hs.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)),
                 max_size=12)


@settings(max_examples=150, deadline=None)
@given(words, hs.sampled_from(list(PERTURBATIONS)), hs.floats(0, 1), hs.integers(0, 10**6))
def test_protected_tokens_never_touched(parts, name, rate, seed):
    text = " ".join(parts)
    nz = perturb(text, name, rate, seed=seed, protected=PROTECTED)
    assert protected_sequence(nz.text, PROTECTED) == protected_sequence(text, PROTECTED)
    for tok in PROTECTED:
        assert nz.text.count(tok) == text.count(tok)
    assert len(nz.alignment.noisy_marks) == len(nz.text) and len(nz.alignment.clean_marks) == len(text)
    # every protected token sits unmarked in both texts
    for (s, e), k in zip(nz.alignment.clean_words, nz.alignment.word_map):
        piece = text[s:e]
        if piece in PROTECTED:
            assert k is not None
            ns, ne = nz.alignment.noisy_words[k]
            assert nz.text[ns:ne] == piece and not any(nz.alignment.noisy_marks[ns:ne])


def test_mask_count_unchanged_after_tokenising(tiny_bert_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rng = random.Random(0)
    for name in PERTURBATIONS:
        for seed in range(10):
            rate = rng.choice([0.1, 0.3, 1.0])
            nz = perturb(TEXT, name, rate, seed=seed, protected=PROTECTED)
            ids = tok(nz.text)["input_ids"]
            assert ids.count(tok.mask_token_id) == tok(TEXT)["input_ids"].count(tok.mask_token_id) == 2


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_empty_and_all_special_inputs(name):
    for text in ("", "   ", "[MASK]", "[MASK] [SEP] [CLS]", "[MASK][MASK]"):
        nz = perturb(text, name, 1.0, seed=1, protected=PROTECTED)
        assert nz.text == text and nz.edits == 0 and nz.units == 0
        assert nz.notes and "nothing to perturb" in nz.notes[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown perturbation 'nope'"):
        perturb("a b", "nope", 0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        perturb("a b", "typo", 1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        perturb("a b", "typo", "x")


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_marks_and_word_alignment_describe_the_change(name):
    for seed in range(6):
        nz = perturb(TEXT, name, 0.3, seed=seed, protected=PROTECTED)
        al = nz.alignment
        kept_clean = "".join(c for c, m in zip(TEXT, al.clean_marks) if not m)
        kept_noisy = "".join(c for c, m in zip(nz.text, al.noisy_marks) if not m)
        assert "".join(kept_clean.split()) == "".join(kept_noisy.split())
        assert (any(al.noisy_marks) or any(al.clean_marks)) == (nz.text != TEXT)
        assert "".join(s for s, _ in marked_spans(nz.text, al.noisy_marks)) == nz.text
        if name == "word-drop":
            assert sum(k is None for k in al.word_map) == nz.edits
        else:
            assert all(k is not None for k in al.word_map)
        if name in ("word-drop", "word-swap"):      # words are moved or dropped, never edited
            for (s, e), k in zip(al.clean_words, al.word_map):
                if k is not None:
                    ns, ne = al.noisy_words[k]
                    assert nz.text[ns:ne] == TEXT[s:e]


def test_segments_and_keyboard_table():
    segs = segment("a[MASK]b  c", MASK_ALIASES)
    assert [(s.text, s.kind) for s in segs] == [("a", "word"), ("[MASK]", "protected"), ("b", "word"),
                                                 ("  ", "space"), ("c", "word")]
    assert set(KEYBOARD["g"]) == set("rtyfhvbn") and "w" in KEYBOARD["q"]
    # neighbours are symmetric
    assert all(a in KEYBOARD[b] for a in KEYBOARD for b in KEYBOARD[a])
