"""The column path of the scoring (a batch's scores as NumPy columns, gathered into Parquet without a loop over
rows) pinned to the row path (one ``Scored`` per input, one dict per row): every value bit-identical, on
tricky batches and a tricky log."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine_fixtures import model_folder
from interp.loader import load_model
from interp.triage import scores as S
from interp.triage.schema import Scored, ScoredColumns, column_kinds, score_values
from interp.triage.store import schema_for, to_table
from triage_logs import folder, lm, tricky_log  # noqa: F401  (fixtures)

TEXTS = ["the cat sat on the [MASK] .", "a big red house near the river", "[MASK] king saw the [MASK] queen .",
         "she went to paris", "the quick brown fox jumps over the lazy dog near the bank .", "run",
         " ".join(["the king saw a big red house ."] * 120)]
PRED = ["mat", None, "the old", "x", '["a", "b"]', None, "house"]
LAB = ["mat", "house", None, None, "b", "run", None]


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def lm_pooled():
    return load_model(str(model_folder("bert", False, 0, initializer_range=0.3)))


@pytest.mark.parametrize("policy", ["auto", "mask-each", "unmasked", "pooled"])
def test_columns_equal_the_per_input_rule_bit_for_bit(lm, lm_pooled, policy, monkeypatch):
    model = lm_pooled if policy == "pooled" else lm
    st = S.ScoreSettings(k=4, seeds=2, seed=3, mask_policy="auto" if policy == "pooled" else policy, mask_cap=3)
    n = len(TEXTS) if policy == "auto" else len(TEXTS) - 1       # the long (cut) text once: it is slow on a CPU
    seen = []
    real = S.assemble_columns

    def spy(lm_, enc, units, res, conc, eff, keys, predictions, labels):
        out = real(lm_, enc, units, res, conc, eff, keys, predictions, labels)
        units.dense_conf = [[] for _ in range(enc.input_ids.shape[0])]
        if units.conf is not None:
            for b, a, c, t, p in zip(*(x.tolist() for x in units.conf)):
                units.dense_conf[b].append((a, c, int(t), p))
        seen.append((out, assemble_reference(lm_, enc, units, res, conc, eff, keys, predictions, labels)))
        return out
    monkeypatch.setattr(S, "assemble_columns", spy)
    cols = S.score_batch(model, TEXTS[:n], st, predictions=PRED[:n], labels=LAB[:n], columns=True)
    rows = S.score_batch(model, TEXTS[:n], st, predictions=PRED[:n], labels=LAB[:n])
    assert isinstance(cols, ScoredColumns) and len(cols) == n and len(seen) == 2
    ref = seen[0][1]
    for i, r in enumerate(ref):
        for got in (cols.row(i), rows[i]):
            for name in [f for f, _ in column_kinds()] + ["head_concentration", "notes"]:
                assert same(getattr(got, name), getattr(r, name)), (policy, i, name, getattr(got, name),
                                                                    getattr(r, name))
        ag = [a for a in (r.agrees_prediction, r.agrees_label) if not math.isnan(a)]
        assert same(float(cols.extra["agreement"][i]), sum(ag) / len(ag) if ag else float("nan"))
        assert set(cols.values(i)) == set(score_values(r)) | {"agreement"}
    assert any(r.truncated for r in ref) == (policy == "auto")
    if policy == "auto":
        assert any(not math.isnan(r.agrees_prediction) for r in ref)


def test_the_gathered_table_equals_the_row_by_row_table(lm):
    """to_table of rows that point into batch columns (and rows that do not: skipped, failed) equals to_table
    of the same rows with every value written into the dict, as the row path did."""
    st = S.ScoreSettings(k=4, seeds=2)
    a = S.score_batch(lm, TEXTS[:4], st, predictions=PRED[:4], labels=LAB[:4], columns=True)
    b = S.score_batch(lm, TEXTS[4:], st, predictions=PRED[4:], labels=LAB[4:], columns=True)
    schema = schema_for(("region",), lm.n_layers * lm.n_heads)
    lazy, plain = [], []
    order = [(a, 2), ("skip", 0), (b, 1), (a, 0), ("fail", 1), (b, 0), (a, 3), (a, 1), (b, 2), (a, 0)]
    for rec, (src, i) in enumerate(order):
        base = {"record": rec, "line": rec + 1, "notes": None, "preview": "p", "region": "eu", "id": f"r{rec}"}
        if src == "skip":
            r = dict(base, status="skipped", reason_code="empty-text", reason="empty")
            lazy.append(dict(r))
            plain.append(dict(r))
            continue
        if src == "fail":
            r = dict(base, status="failed", reason_code="error", reason="E: x", text="t")
            lazy.append(dict(r))
            plain.append(dict(r))
            continue
        lazy.append(dict(base, status="analysed", _sc=(src, i), concentration_z=0.5, concentration_layer=-1,
                         concentration_head=2, suspicion=0.25))
        plain.append(dict(base, status="analysed", **src.values(i), concentration_z=0.5, concentration_layer=-1,
                          concentration_head=2, suspicion=0.25))
    ta, tb = to_table(lazy, schema), to_table(plain, schema)
    assert ta.schema == tb.schema
    for name in schema.names:
        assert ta[name].equals(tb[name]), name


def test_a_tricky_log_gives_the_same_results_as_the_row_path(tmp_path, folder, lm, monkeypatch):  # noqa: F811
    """The whole run (duplicates, bad lines, long lines, CJK) with the column path, against the same run with
    every batch turned back into rows (``ScoredColumns.values``) before it is stored."""
    import pyarrow.parquet as pq

    from interp.triage import ColumnMapping, run_triage
    from interp.triage import runner as R
    log = tricky_log(tmp_path / "log.jsonl", n=60)
    st = S.ScoreSettings(k=4, seeds=2)
    run_triage(log, tmp_path / "cols", str(folder), ColumnMapping("text", id="id"), st, lm=lm, batch_size=8)
    real = R.scored_columns

    def as_rows(batch, res, extra):
        real(batch, res, extra)
        R.materialise(batch)
    monkeypatch.setattr(R, "scored_columns", as_rows)
    run_triage(log, tmp_path / "rows", str(folder), ColumnMapping("text", id="id"), st, lm=lm, batch_size=8)
    a = pq.read_table(tmp_path / "cols" / "results.parquet")
    b = pq.read_table(tmp_path / "rows" / "results.parquet")
    assert a.num_rows == 60 and a.schema == b.schema
    for name in a.schema.names:
        assert a[name].equals(b[name]), name
    assert set(a["status"].to_pylist()) >= {"analysed", "skipped"}


def assemble_reference(lm, enc, units, res, conc, eff, keys: list,
             predictions: list, labels: list) -> list:
    """The per-input rule as the row path computed it (one ``Scored`` per input, a loop over inputs), kept here
    as the reference the column path is pinned to."""
    B = enc.input_ids.shape[0]
    H = lm.n_heads
    mlm = lm.has_mlm_head
    tok = lm.tokenizer
    units_of: dict[int, list[int]] = {}
    for i, b in enumerate(units.owner):
        units_of.setdefault(b, []).append(i)
    lengths = enc.attention_mask.sum(1).tolist()
    first = np.array([units_of[b][0] for b in range(B)], dtype=np.int64)
    multi = [b for b in range(B) if len(units_of[b]) > 1]
    tv = res.head_tv[first].copy()                                   # B × L × H
    for b in multi:
        tv[b] = np.nanmean(res.head_tv[units_of[b]], axis=0)
    flat_tv = tv.reshape(B, -1)
    none = np.isnan(flat_tv).all(1)
    worst = np.nanargmax(np.where(none[:, None], 0.0, flat_tv), axis=1) if B else np.zeros(0, np.int64)
    worst_tv = flat_tv[np.arange(B), worst]
    cols = {name: getattr(res, name)[first].tolist() for name in
            ("flip_rate", "kl_mean", "kl_max", "top1_agreement", "cosine_mean", "cosine_min")}
    for b in multi:
        us = units_of[b]
        for name, fn in (("flip_rate", np.nanmean), ("kl_mean", np.nanmean), ("kl_max", np.nanmax),
                         ("top1_agreement", np.nanmean), ("cosine_mean", np.nanmean), ("cosine_min", np.nanmin)):
            vals = getattr(res, name)[us]
            cols[name][b] = float(fn(vals)) if not np.all(np.isnan(vals)) else float("nan")
    eff_mean = [float(np.mean(eff[b])) for b in range(B)]
    all_ids = [c[2] for b in range(B) for c in units.dense_conf[b]]
    all_tokens = tok.convert_ids_to_tokens(all_ids) if all_ids else []
    results, at = [], 0
    for b in range(B):
        us = units_of[b]
        conf = units.dense_conf[b]
        if none[b]:
            wl = wh = -1
            wtv = float("nan")
        else:
            flat = int(worst[b])
            wl, wh, wtv = flat // H, flat % H, float(worst_tv[b])
        mode = units.modes[b]
        if mode == "mask-each":
            kl_u = res.kl_mean[us]
            query = units.pos[us[int(np.nanargmax(kl_u))]] if not np.all(np.isnan(kl_u)) else units.pos[us[0]]
        else:
            query = conf[0][3] if mode == "mask" and conf else -1
        predicted = all_tokens[at:at + len(conf)]
        at += len(conf)
        a_pred = S.agreement(predicted, predictions[b]) if mode == "mask" else float("nan")
        a_lab = S.agreement(predicted, labels[b]) if mode == "mask" else float("nan")
        results.append(Scored(
            key=keys[b], n_tokens=int(lengths[b]), truncated=enc.truncation[b] is not None, mode=mode,
            n_targets=len(conf) if mlm else 0, query=int(query), dense_top1=" ".join(predicted[:8]),
            confidence=min((c[0] for c in conf), default=float("nan")),
            margin=min((c[0] - c[1] for c in conf), default=float("nan")),
            flip_rate=cols["flip_rate"][b], kl=cols["kl_mean"][b], kl_max=cols["kl_max"][b],
            top1_agreement=cols["top1_agreement"][b], cosine=cols["cosine_mean"][b], cosine_min=cols["cosine_min"][b],
            worst_layer=int(wl), worst_head=int(wh), worst_tv=wtv,
            eff_experts=eff_mean[b], head_concentration=conc[b].astype(np.float32),
            agrees_prediction=a_pred, agrees_label=a_lab, notes=list(enc.notes[b])))
    return results


def test_the_dedupe_signature_equals_exactly_when_the_json_texts_do():
    import json

    from interp.triage.runner import _sig
    vals = [None, "null", "", "a", "1", 1, 1.0, True, "true", [1, "a"], ["1"], {"b": 1, "a": 2}, {"a": 2, "b": 1},
            float("nan"), "NaN", 0, False]
    for a in vals:
        for b in vals:
            want = json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
            assert (_sig(a) == _sig(b)) == want, (a, b)
