"""One row's prediction, decomposed exactly as a text is: which columns' experts the masked column listened to.

The row becomes its sentence with the target column replaced by [MASK]; ``interp.trace.trace_text`` runs the
model once and captures it, and ``interp.decompose`` reads the gates a^h_ij and the firing strengths
f^h_ij = a^h_ij ‖c(o^h_j)‖/σ_i at the query i = the target's position. Position j is column j, so every expert
has a column name. Identities 1 and 2 are checked on the same trace (``decompose.identity_checks``).

For the ``paper`` form (no FFN, no LayerNorm, one head) the prediction is exactly a mixture of experts:
logits_i = Σ_j a_ij z_j with z_j = decoder(v_j) (:func:`expert_logits`); each column's expert z_j restricted to
the target's values says which value that column votes for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import decompose
from ..loader import LoadedModel
from ..trace import Trace, trace_text
from .encoding import TableEncoder


@dataclass
class RowExplanation:
    """The decomposition of one row's prediction of column ``target`` (L layers, H heads, C columns)."""
    columns: list[str]
    target: int                   # the masked column = the query position
    text: str                     # the sentence the model read
    words: list[str]              # the row's words (target shown as [MASK])
    values: list[str | None]      # the row's values as labels (bins / categories)
    truth: int                    # the target's true code (−1 unknown)
    domain: list[str]             # the target's value labels, in code order
    probs: np.ndarray             # m: softmax of the model's logits over the target's values
    predicted: int                # arg-max code
    gates: np.ndarray             # L × H × C: a^h_{target, j}
    firing: np.ndarray            # L × H × C: f^h_{target, j}
    checks: dict                  # identity 1 / 2 errors against the model's own forward pass
    experts: np.ndarray | None = None   # paper form: C × m, z_j restricted to the target's values
    moe_error: float | None = None      # paper form: max |Σ_j a_ij z_j − logits_i| / max |logits_i|
    notes: list[str] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return self.gates.shape[0]

    @property
    def n_heads(self) -> int:
        return self.gates.shape[1]


def row_text(enc: TableEncoder, codes_row, target: int) -> str:
    return enc.sentence(codes_row, mask=target)


def expert_logits(lm: LoadedModel, trace: Trace) -> torch.Tensor:
    """Paper form only: the continuous word experts z_j = decoder(v_j), n × V (exact)."""
    if lm.config.model_type != "expertlens-paper":
        raise ValueError("expert logits z_j are exact only for the paper form (no FFN, no LayerNorm)")
    v = trace.layers[0].v[0]                      # one head, d_h = d: n × d
    with torch.no_grad():
        return lm.model.decoder(v)


def explain_row(lm: LoadedModel, enc: TableEncoder, codes_row, target: int) -> RowExplanation:
    """Trace the row with ``target`` masked and read off gates, firing, identities and the prediction."""
    codes_row = np.asarray(codes_row)
    text = row_text(enc, codes_row, target)
    trace = trace_text(lm, text)
    if trace.n != len(enc.columns):
        raise ValueError(f"the model read {trace.n} tokens for {len(enc.columns)} columns: is this the model "
                         "trained on this table?")
    gates, firing = [], []
    for l, lt in enumerate(trace.layers):
        gates.append(lt.probs[:, target, :].cpu().numpy())
        firing.append(decompose.firing_strength(lm, lt, l)[:, target, :].cpu().numpy())
    domain_ids = enc.domain_ids(target)
    logits = trace.output[target, domain_ids].double()
    probs = torch.softmax(logits, -1).numpy()
    checks = decompose.identity_checks(lm, trace)
    experts, moe_err = None, None
    if lm.config.model_type == "expertlens-paper":
        z = expert_logits(lm, trace)
        a = trace.layers[0].probs[0]                      # n × n
        mixed = a @ z
        moe_err = float((mixed - trace.output).abs().max() / trace.output.abs().max().clamp(min=1e-30))
        experts = z[:, domain_ids].cpu().numpy()
    col = enc.columns[target]
    words = text.split()
    values = enc.decode(codes_row[None]).iloc[0].tolist()
    return RowExplanation(enc.names, target, text, words, values, int(codes_row[target]), list(col.values), probs,
                          int(np.argmax(probs)), np.stack(gates), np.stack(firing), checks, experts, moe_err,
                          list(trace.notes))


def column_importance(ex: RowExplanation, by: str = "firing") -> np.ndarray:
    """Per column: the gate (or firing) at the target query summed over every head and layer, C."""
    arr = ex.firing if by == "firing" else ex.gates
    return arr.sum(axis=(0, 1))
