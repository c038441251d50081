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
