"""The one definition of an input's triage scores: :class:`Scored`. The results table's score columns, the
fields the scoring stage returns (local or Ray) and the row update after scoring are all derived from it, so a
new score is one field here plus its computation in ``scores.score_batch`` (and, to enter the suspicion score,
one :data:`~interp.triage.scores.TERMS` entry). Torch-free, so the query layer can import it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass
class Scored:
    """Scores of one input (see ``scores``'s module docstring); NaN where a score does not apply, −1 for an
    index that does not apply (stored as null)."""
    key: str
    n_tokens: int
    truncated: bool
    mode: str                 # mask | non-special | mask-each | pooled
    n_targets: int
    query: int                # a compared position (first [MASK], or the worst masked variant); −1 if none
    dense_top1: str
    confidence: float
    margin: float
    flip_rate: float
    kl: float
    kl_max: float
    top1_agreement: float
    cosine: float
    cosine_min: float
    worst_layer: int
    worst_head: int
    worst_tv: float
    eff_experts: float
    head_concentration: np.ndarray
    agrees_prediction: float
    agrees_label: float
    notes: list[str]


_ARROW = {"int": pa.int32(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
# Fields of Scored that are not plain columns: notes are merged into the row's notes; the per-head vector is
# stored as a fixed-size list of the run's L·H heads.
_SPECIAL = ("notes", "head_concentration")


def score_columns() -> list[tuple[str, pa.DataType]]:
    """(column, arrow type) of every plain score column, in the dataclass's order."""
    return [(f.name, _ARROW[f.type if isinstance(f.type, str) else f.type.__name__])
            for f in dataclasses.fields(Scored) if f.name not in _SPECIAL]


def score_values(sc: Scored) -> dict:
    """The row update of one scored input (plain columns and the head vector; notes are left to the caller)."""
    out = {name: getattr(sc, name) for name, _ in score_columns()}
    out["head_concentration"] = sc.head_concentration
    return out


_KINDS = {"int": np.int64, "float": np.float64, "bool": np.bool_, "str": object}


def column_kinds() -> list[tuple[str, str]]:
    """(column, kind: int | float | bool | str) of every plain score column, in the dataclass's order."""
    return [(f.name, f.type if isinstance(f.type, str) else f.type.__name__)
            for f in dataclasses.fields(Scored) if f.name not in _SPECIAL]


_PY = {"int": int, "float": float, "bool": bool, "str": str}


class ScoredColumns:
    """The :class:`Scored` of a batch of inputs, column by column: one NumPy array per plain field (int64,
    float64, bool or object for strings), the B × L·H ``head_concentration`` matrix (float32), the notes per
    input; ``extra`` columns derived from them (``agreement``). ``row(i)`` is input i's :class:`Scored` with the
    same values as the row-by-row rule; ``values(i)`` its row update (:func:`score_values` plus the extras)."""

    def __init__(self, columns: dict[str, np.ndarray], head_concentration: np.ndarray, notes: list,
                 extra: dict[str, np.ndarray] | None = None):
        self.columns = columns
        self.head_concentration = head_concentration
        self.notes = notes
        self.extra = dict(extra or {})

    def __len__(self) -> int:
        return len(self.notes)

    def has(self, name: str) -> bool:
        return name in self.columns or name in self.extra or name == "head_concentration"

    def column(self, name: str) -> np.ndarray:
        if name == "head_concentration":
            return self.head_concentration
        return self.columns[name] if name in self.columns else self.extra[name]

    def row(self, i: int) -> Scored:
        kw = {name: _PY[kind](self.columns[name][i]) for name, kind in column_kinds()}
        return Scored(**kw, head_concentration=self.head_concentration[i], notes=list(self.notes[i]))

    def rows(self) -> list[Scored]:
        return [self.row(i) for i in range(len(self))]

    def values(self, i: int) -> dict:
        out = score_values(self.row(i))
        out.update({k: _PY["float"](v[i]) if v.dtype.kind == "f" else v[i] for k, v in self.extra.items()})
        return out


def empty_columns(n: int) -> dict[str, np.ndarray]:
    """Arrays of ``n`` rows for every plain score column, to be filled (strings None, numbers 0)."""
    return {name: (np.empty(n, dtype=object) if kind == "str" else np.zeros(n, dtype=_KINDS[kind]))
            for name, kind in column_kinds()}
