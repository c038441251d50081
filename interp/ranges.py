"""One range per user-settable parameter, shared by the dashboard's URL and widgets and by the commands' flags.

A value outside its range is never silently replaced: the dashboard clamps it and says so (the URL then holds
the value shown); the commands refuse it with one line. ``layer``, ``head`` and ``query`` also have a
model/input-dependent upper bound (number of layers, heads, tokens), checked once the input is analysed; the
static bound here only keeps absurd values out before that.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntRange:
    """A closed integer interval ``lo ≤ value ≤ hi``."""
    name: str
    lo: int
    hi: int

    def __contains__(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def clamp(self, value: int) -> int:
        return min(max(int(value), self.lo), self.hi)

    def describe(self) -> str:
        return f"{self.lo}–{self.hi}"

    def parse(self, text) -> int:
        """The integer in ``text``, raising ``ValueError`` with one readable line when it is not an integer or
        outside the range."""
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(self.lo, "an integer")
        try:
            value = int(str(text).strip())
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be {kind} in {self.describe()}, not {str(text)[:40]!r}") from None
        if value not in self:
            raise ValueError(f"{self.name} must be {kind} in {self.describe()}, not {value}")
        return value


# Keys drawn per query: at least one; at most the longest input any bundled model reads, with room to spare.
K = IntRange("k", 1, 4096)
# The user-visible seed: every draw derives from it through torch generators seeded with 31-bit integers, and
# it must survive a URL and a browser number field exactly.
SEED = IntRange("seed", 0, 2**31 - 1)
# Replicates S per analysis.
SEEDS = IntRange("seeds", 1, 64)
# Static bounds; the analysed input gives the real ones (n_layers − 1, n_heads − 1, n_tokens − 1).
LAYER = IntRange("layer", 0, 1023)
HEAD = IntRange("head", 0, 1023)
QUERY = IntRange("query", 0, 65535)
# Characters of text carried in a shareable URL.
TEXT_MAX_CHARS = 20_000
