"""Seeded text perturbations that never touch special tokens or [MASK], with an alignment clean → noisy.

A text is split into *segments*: protected tokens (the tokenizer's special tokens and every spelling of the mask
token: ``[MASK]``, ``[mask]``, ``<mask>`` …), whitespace, and *words* (maximal runs of other characters). Only
words are perturbed; a protected token is never changed, dropped, moved or created (a word holding a bracket
``[ ] < >`` is left alone by the character edits, so an edit can never spell a new special token).

Each perturbation acts on *units* (its eligible characters, words or word pairs) and edits exactly
m = ⌊rate·N + u⌋ of the N units (u ~ U(0, 1) from the seeded generator; chosen without replacement), so the
share of units edited is within 1/N of ``rate`` and equals it in expectation. Pair-swaps never overlap (if the
draw would overlap, fewer pairs are swapped and the count says so). The generator is
``random.Random("expertlens-noise|seed|name|rate|text")``: the same call gives the same noisy text on every
platform and Python version (string seeds are hashed with SHA-512).

The registry maps a name to a function ``fn(words, rate, rng) -> (words, n_edits, n_units)`` plus metadata;
a new perturbation is one function and one decorator line, as for the sampling schemes.
"""
from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass, field
from typing import Callable

MASK_ALIASES = ("[MASK]", "[mask]", "[Mask]", "<mask>")
BRACKETS = set("[]<>")

# QWERTY neighbours (same row and the rows above/below), lower case.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KEYBOARD: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for _dr in (-1, 0, 1):
            rr = _r + _dr
            if not 0 <= rr < len(_ROWS):
                continue
            for _dc in (-1, 0, 1):
                if _dr == 0 and _dc == 0:
                    continue
                cc = _c + _dc
                if 0 <= cc < len(_ROWS[rr]):
                    near.append(_ROWS[rr][cc])
        KEYBOARD[_ch] = "".join(dict.fromkeys(near))


@dataclass
class Segment:
    text: str
    kind: str          # "word", "space" or "protected"


def protected_tokens(tokenizer=None, extra=()) -> tuple[str, ...]:
    """The strings never touched: the tokenizer's special tokens (when given), every mask spelling, ``extra``;
    longest first, so that a regex alternation prefers the longest match."""
    toks = set(MASK_ALIASES) | set(extra)
    if tokenizer is not None:
        toks |= {str(t) for t in getattr(tokenizer, "all_special_tokens", []) if t}
    return tuple(sorted(toks, key=lambda s: (-len(s), s)))


def segment(text: str, protected: tuple[str, ...] = MASK_ALIASES) -> list[Segment]:
    """Split ``text`` into protected tokens, whitespace runs and words (the pieces join back to ``text``)."""
    out: list[Segment] = []
    if not text:
        return out
    pattern = "(" + "|".join(re.escape(p) for p in sorted(protected, key=len, reverse=True)) + ")" if protected \
        else None
    pieces = re.split(pattern, text) if pattern else [text]
    for i, piece in enumerate(pieces):
        if not piece:
            continue
        if pattern and i % 2 == 1:
            out.append(Segment(piece, "protected"))
            continue
        for m in re.finditer(r"\s+|\S+", piece):
            out.append(Segment(m.group(0), "space" if m.group(0).isspace() else "word"))
    return out


# ------------------------------------------------------------------------------------------- registry ---

@dataclass
class Word:
    """A unit of the word sequence: ``src`` is its index in the clean word sequence (None: never), ``moved``
    marks a word that changed place."""
    text: str
    src: int
    protected: bool
    moved: bool = False


PerturbFn = Callable[[list[Word], float, random.Random], tuple[list[Word], int, int]]


@dataclass(frozen=True)
class Perturbation:
    name: str
    fn: PerturbFn
    unit: str            # what the rate counts: "letter", "letter pair", "word", "word pair"
    description: str


PERTURBATIONS: dict[str, Perturbation] = {}


def register(name: str, unit: str, description: str) -> Callable[[PerturbFn], PerturbFn]:
    def deco(fn: PerturbFn) -> PerturbFn:
        PERTURBATIONS[name] = Perturbation(name, fn, unit, description)
        return fn
    return deco


def _count(n_units: int, rate: float, rng: random.Random) -> int:
    """m = ⌊rate·N + u⌋, u ~ U(0,1): E[m] = rate·N and |m − rate·N| < 1."""
    if n_units <= 0 or rate <= 0:
        return 0
    return min(n_units, int(rate * n_units + rng.random()))


def _editable(w: Word) -> bool:
    return not w.protected and not (BRACKETS & set(w.text))


def _letters(words: list[Word], need_neighbour: bool = False, min_len: int = 1) -> list[tuple[int, int]]:
    """(word index, char index) of every letter the character edits may touch."""
    out = []
    for wi, w in enumerate(words):
        if not _editable(w) or len(w.text) < min_len:
            continue
        for ci, ch in enumerate(w.text):
            if ch.isalpha() and (not need_neighbour or ch.lower() in KEYBOARD):
                out.append((wi, ci))
    return out


def _edit_chars(words: list[Word], sites: list[tuple[int, int]], rate: float, rng: random.Random,
                edit: Callable[[str, int, random.Random], str]) -> tuple[list[Word], int, int]:
    m = _count(len(sites), rate, rng)
    chosen = rng.sample(sites, m) if m else []
    by_word: dict[int, list[int]] = {}
    for wi, ci in chosen:
        by_word.setdefault(wi, []).append(ci)
    out = [Word(w.text, w.src, w.protected, w.moved) for w in words]
    for wi, cis in by_word.items():
        text = out[wi].text
        for ci in sorted(cis, reverse=True):        # right to left: earlier indices stay valid
            text = edit(text, ci, rng)
        out[wi].text = text
    return out, m, len(sites)


def _neighbour(ch: str, rng: random.Random) -> str:
    near = KEYBOARD.get(ch.lower(), "")
    if not near:
        return ch
    new = rng.choice(near)
    return new.upper() if ch.isupper() else new


@register("char-swap", "letter pair", "swap two adjacent letters inside a word (“teh”)")
def char_swap(words, rate, rng):
    sites = []
    for wi, w in enumerate(words):
        if not _editable(w):
            continue
        for ci in range(len(w.text) - 1):
            a, b = w.text[ci], w.text[ci + 1]
            if a.isalpha() and b.isalpha() and a != b:
                sites.append((wi, ci))
    m = _count(len(sites), rate, rng)
    order = rng.sample(sites, len(sites))
    taken: set[tuple[int, int]] = set()
    chosen = []
    for wi, ci in order:
        if len(chosen) >= m:
            break
        if (wi, ci) in taken or (wi, ci + 1) in taken:
            continue
        chosen.append((wi, ci))
        taken |= {(wi, ci), (wi, ci + 1)}
    out = [Word(w.text, w.src, w.protected, w.moved) for w in words]
    for wi, ci in chosen:
        s = out[wi].text
        out[wi].text = s[:ci] + s[ci + 1] + s[ci] + s[ci + 2:]
    return out, len(chosen), len(sites)


@register("keyboard", "letter", "replace a letter by a neighbouring key on a QWERTY keyboard (“hwllo”)")
def keyboard(words, rate, rng):
    return _edit_chars(words, _letters(words, need_neighbour=True), rate, rng,
                       lambda s, i, r: s[:i] + _neighbour(s[i], r) + s[i + 1:])


@register("char-delete", "letter", "delete a letter (words of two or more characters; “helo”)")
def char_delete(words, rate, rng):
    sites = _letters(words, min_len=2)
    # a word whose every character is a letter keeps its first letter out of reach, so no word disappears
    first: dict[int, int] = {}
    for wi, ci in sites:
        first.setdefault(wi, ci)
    full = {wi for wi in first if sum(1 for t in sites if t[0] == wi) == len(words[wi].text)}
    sites = [(wi, ci) for wi, ci in sites if not (wi in full and ci == first[wi])]
    return _edit_chars(words, sites, rate, rng, lambda s, i, r: s[:i] + s[i + 1:])


@register("char-insert", "letter", "insert a neighbouring key after a letter (“hekllo”)")
def char_insert(words, rate, rng):
    def ins(s, i, r):
        ch = _neighbour(s[i], r) if s[i].lower() in KEYBOARD else r.choice("abcdefghijklmnopqrstuvwxyz")
        return s[:i + 1] + ch + s[i + 1:]
    return _edit_chars(words, _letters(words), rate, rng, ins)


@register("typo", "letter", "a mix of the four character edits (swap, keyboard neighbour, deletion, insertion), "
          "one drawn per edited letter")
def typo(words, rate, rng):
    def mixed(s, i, r):
        kind = r.randrange(4)
        if kind == 0 and i + 1 < len(s) and s[i + 1].isalpha():
            return s[:i] + s[i + 1] + s[i] + s[i + 2:]
        if kind == 1 and s[i].lower() in KEYBOARD:
            return s[:i] + _neighbour(s[i], r) + s[i + 1:]
        if kind == 2 and len(s) > 1:
            return s[:i] + s[i + 1:]
        ch = _neighbour(s[i], r) if s[i].lower() in KEYBOARD else "e"
        return s[:i + 1] + ch + s[i + 1:]
    return _edit_chars(words, _letters(words), rate, rng, mixed)


@register("word-drop", "word", "drop a word (never a special token or [MASK])")
def word_drop(words, rate, rng):
    sites = [i for i, w in enumerate(words) if not w.protected]
    m = _count(len(sites), rate, rng)
    gone = set(rng.sample(sites, m)) if m else set()
    return [Word(w.text, w.src, w.protected, w.moved) for i, w in enumerate(words) if i not in gone], m, len(sites)


@register("word-swap", "word pair", "swap two adjacent words (neither a special token nor [MASK])")
def word_swap(words, rate, rng):
    sites = [i for i in range(len(words) - 1) if not words[i].protected and not words[i + 1].protected]
    m = _count(len(sites), rate, rng)
    order = rng.sample(sites, len(sites))
    taken: set[int] = set()
    chosen = []
    for i in order:
        if len(chosen) >= m:
            break
        if i in taken or i + 1 in taken:
            continue
        chosen.append(i)
        taken |= {i, i + 1}
    out = [Word(w.text, w.src, w.protected, w.moved) for w in words]
    for i in chosen:
        a, b = out[i], out[i + 1]
        out[i], out[i + 1] = Word(b.text, b.src, False, True), Word(a.text, a.src, False, True)
    return out, len(chosen), len(sites)


@register("casing", "word", "change a word's casing (lower ↔ UPPER ↔ Title); a no-op for uncased tokenizers")
def casing(words, rate, rng):
    sites = [i for i, w in enumerate(words) if _editable(w) and any(c.isalpha() for c in w.text)]
    m = _count(len(sites), rate, rng)
    out = [Word(w.text, w.src, w.protected, w.moved) for w in words]
    for i in (rng.sample(sites, m) if m else []):
        s = out[i].text
        forms = [f for f in dict.fromkeys((s.upper(), s.lower(), s.title())) if f != s]
        out[i].text = rng.choice(forms) if forms else s.swapcase()
    return out, m, len(sites)


# ------------------------------------------------------------------------------------------ alignment ---

@dataclass
class Alignment:
    """How the noisy text relates to the clean one.

    * ``clean_words`` / ``noisy_words``: (start, end) character spans of the word units (words and protected
      tokens, in order) in each text;
    * ``word_map[i]``: the noisy word unit that clean unit i became (None: dropped);
    * ``clean_marks`` / ``noisy_marks``: one bool per character, True where the character was deleted, replaced,
      inserted or moved (for marking them in the UI).
    """
    clean_words: list[tuple[int, int]]
    noisy_words: list[tuple[int, int]]
    word_map: list[int | None]
    clean_marks: list[bool]
    noisy_marks: list[bool]

    @property
    def n_changed_chars(self) -> int:
        return sum(self.noisy_marks)


@dataclass
class Noisy:
    """A perturbed text: ``text`` (noisy), ``clean``, ``alignment``, ``edits`` made out of ``units`` eligible."""
    clean: str
    text: str
    perturbation: str
    rate: float
    seed: int
    edits: int
    units: int
    alignment: Alignment
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.text != self.clean


def _words_of(segs: list[Segment]) -> list[Word]:
    out, i = [], 0
    for s in segs:
        if s.kind != "space":
            out.append(Word(s.text, i, s.kind == "protected"))
            i += 1
    return out


def _join(segs: list[Segment], words: list[Word]) -> tuple[str, list[tuple[int, int]]]:
    """Put the (perturbed) words back into the clean whitespace layout: the k-th word goes where the k-th word
    unit was; when words were dropped, the whitespace before each dropped word goes with it."""
    seps: list[str] = []
    lead = ""
    gap = ""
    n_units = 0
    for s in segs:
        if s.kind == "space":
            gap += s.text
        else:
            if n_units == 0:
                lead = gap
            else:
                seps.append(gap)
            gap = ""
            n_units += 1
    trail = gap
    kept_src = [w.src for w in words]
    # separator before a word = the clean separator before its original slot (dropped words take theirs along)
    pieces, spans, pos = [lead], [], len(lead)
    slots = sorted(kept_src)       # the slots still occupied, in order
    for k, w in enumerate(words):
        if k > 0:
            slot = slots[k]
            sep = seps[slot - 1] if slot - 1 < len(seps) else " "
            pieces.append(sep)
            pos += len(sep)
        spans.append((pos, pos + len(w.text)))
        pieces.append(w.text)
        pos += len(w.text)
    pieces.append(trail)
    return "".join(pieces), spans


def _marks(clean: str, noisy: str, cw, nw, words: list[Word]) -> tuple[list[bool], list[bool], list[int | None]]:
    cm, nm = [False] * len(clean), [False] * len(noisy)
    word_map: list[int | None] = [None] * len(cw)
    for k, w in enumerate(words):
        word_map[w.src] = k
    for i, k in enumerate(word_map):
        cs, ce = cw[i]
        if k is None:
            for j in range(cs, ce):
                cm[j] = True
            continue
        ns, ne = nw[k]
        a, b = clean[cs:ce], noisy[ns:ne]
        if words[k].moved:
            for j in range(cs, ce):
                cm[j] = True
            for j in range(ns, ne):
                nm[j] = True
            continue
        if a == b:
            continue
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            for j in range(i1, i2):
                cm[cs + j] = True
            for j in range(j1, j2):
                nm[ns + j] = True
    return cm, nm, word_map


def perturb(text: str, name: str, rate: float, seed: int = 0, protected: tuple[str, ...] = MASK_ALIASES) -> Noisy:
    """``text`` perturbed by ``name`` at ``rate`` with ``seed``; see the module docstring. Raises ValueError on
    an unknown name or a rate outside [0, 1]."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation '{name}': choose one of {', '.join(PERTURBATIONS)}")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number between 0 and 1, not {rate!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, not {rate}")
    text = text or ""
    segs = segment(text, protected)
    words = _words_of(segs)
    rng = random.Random(f"expertlens-noise|{int(seed)}|{name}|{rate!r}|{text}")
    new, edits, units = PERTURBATIONS[name].fn(words, rate, rng)
    noisy, nw = _join(segs, new)
    _, cw = _join(segs, words)
    cm, nm, word_map = _marks(text, noisy, cw, nw, new)
    notes = []
    if units == 0:
        notes.append(f"nothing to perturb: the text has no {PERTURBATIONS[name].unit} that {name} may edit")
    if protected_sequence(noisy, protected) != protected_sequence(text, protected):  # pragma: no cover - guard
        raise AssertionError("a perturbation changed a protected token")
    return Noisy(text, noisy, name, rate, int(seed), edits, units, Alignment(cw, nw, word_map, cm, nm), notes)


def protected_sequence(text: str, protected: tuple[str, ...] = MASK_ALIASES) -> list[str]:
    """The protected tokens of ``text`` in order (what a perturbation must leave exactly as it was)."""
    return [s.text for s in segment(text, protected) if s.kind == "protected"]


def marked_spans(text: str, marks: list[bool]) -> list[tuple[str, bool]]:
    """``text`` cut into maximal runs of marked / unmarked characters, for display."""
    out: list[tuple[str, bool]] = []
    for ch, m in zip(text, marks):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0] + ch, m)
        else:
            out.append((ch, m))
    return out
