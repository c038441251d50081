"""The one-GPU, one-process path of the triage (issue 14 §3): the keys-major CDF scan equals the last-axis
scan it replaced, one device-to-host transfer is exact, token ids from the cut step give the same encoding as
``trace.encode``, and the threaded local engine writes the same results as the sequential loop, raising what a
thread raises."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from interp.sampling.schemes import inverse_cdf, inverse_cdf_keys_major, keys_major
from interp.sampling.transfer import Fetch
from interp.trace import encode
from interp.triage import ColumnMapping, ScoreSettings, run_triage
from interp.triage import runner as R
from interp.triage import scores as S

from engine_fixtures import loaded, model_folder

SETTINGS = ScoreSettings(k=4, seeds=2)


def reference_inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The former implementation: a cumulative sum over the last axis, the last positive key from an n×n
    int64 tensor."""
    weights = weights.to(torch.float32)
    lead = torch.broadcast_shapes(weights.shape[:-1], u.shape[:-1])
    w = weights.expand(*lead, weights.shape[-1]).contiguous()
    u = u.expand(*lead, u.shape[-1]).contiguous()
    cdf = torch.cumsum(w, dim=-1)
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True)
    pos = torch.arange(w.shape[-1])
    last = torch.where(w > 0, pos, torch.zeros_like(pos)).amax(dim=-1, keepdim=True)
    return torch.minimum(idx, last)


@pytest.mark.parametrize("seed", range(4))
def test_keys_major_inverse_cdf_equals_the_last_axis_scan(seed):
    g = torch.Generator().manual_seed(seed)
    S_, B, H, n, k = 3, 4, 2, 9, 16
    w = torch.rand((1, B, H, n, n), generator=g)
    w[w < 0.3] = 0.0                                             # zeros inside rows
    w[..., 5:] = 0.0 if seed % 2 else w[..., 5:]                 # padded keys
    w[0, 0, 0, 0] = 0.0
    w[0, 0, 0, 0, 3] = 1e-38                                     # a row that is one tiny weight
    w[0, 1, 0, 1] = 0.25                                         # a row of ties
    w[0, 1, 1, 2] = torch.tensor([1e-30, 1.0, 1e-30, 0, 0, 0, 0, 0, 1e-30])   # absorbed weights
    u = torch.rand((S_, B, H, n, k), generator=g)
    u[..., 0] = 0.0
    u[..., 1] = 1 - 2 ** -24
    u[..., 2] = float(np.nextafter(np.float32(1), 0))
    got = inverse_cdf(w, u)
    assert torch.equal(got, reference_inverse_cdf(w, u))
    # the keys-major entry point, as scheme A calls it, with the weights broadcast over replicates
    wt = keys_major(w, (S_, B, H, n))
    assert torch.equal(inverse_cdf_keys_major(wt, u), got)
    # never a zero-weight key
    picked = torch.gather(w.expand(S_, B, H, n, n), -1, got)
    has = w.expand(S_, B, H, n, n).sum(-1, keepdim=True) > 0
    assert bool(((picked > 0) | ~has).all())


def test_keys_major_cdf_does_not_depend_on_the_padded_width():
    g = torch.Generator().manual_seed(7)
    w = torch.rand((5, 6), generator=g)
    u = torch.rand((5, 32), generator=g)
    wide = torch.cat([w, torch.zeros(5, 11)], -1)
    assert torch.equal(inverse_cdf(w, u), inverse_cdf(wide, u))
    assert torch.equal(inverse_cdf_keys_major(keys_major(wide), u), inverse_cdf(w, u))


def test_one_transfer_returns_every_tensor_exactly():
    f = Fetch()
    vals = [torch.tensor([[1.5, float("nan")], [-0.0, 3e-39]], dtype=torch.float32),
            torch.tensor([1, -7, 2 ** 52], dtype=torch.int64), torch.tensor([True, False]),
            torch.arange(6, dtype=torch.float64).reshape(1, 2, 3) / 7, torch.zeros(0, 4)]
    hs = [f.add(v) for v in vals]
    with pytest.raises(RuntimeError):
        f.get(hs[0])
    f.run()
    for h, v in zip(hs, vals):
        got = f.get(h)
        assert got.shape == tuple(v.shape) and got.dtype == v.numpy().dtype
        np.testing.assert_array_equal(got, v.numpy())
    with pytest.raises(RuntimeError):
        f.add(vals[0])


TEXTS = ["the cat sat on the [MASK] .", "a b c d e f g h", "hello   world", "the [mask] is <mask> here today",
         "caf\u00e9 \u4e2d\u6587 \u2603 zzzqqq", "x", "tab\there\x07bell", "word " * 200]


def test_token_ids_from_the_cut_step_encode_as_trace_encode():
    lm = loaded("bert")
    recs = [R.RawRecord(i, i + 1, {"text": t}) for i, t in enumerate(TEXTS)]
    rows = R.prepare_many(recs, ColumnMapping("text"), lm, "auto", "truncate")
    whole = [r for r in rows if r.get("text") is not None and r.get("_ids") is not None]
    assert len(whole) == len(TEXTS) - 1                        # every text but the cut one keeps its ids
    cut = [r for r in rows if r.get("text") is not None and r.get("_ids") is None]
    assert len(cut) == 1 and "cut before scoring" in cut[0]["notes"]
    assert R.encode_rows(lm, rows) is None                     # a batch with a cut text is encoded as before
    got = R.encode_rows(lm, whole)
    ref = encode(lm, [r["text"] for r in whole])
    for name in ("input_ids", "attention_mask", "token_type_ids", "special"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert got.tokens == ref.tokens and got.truncation == ref.truncation
    assert [list(map(str, n)) for n in got.notes] == [list(map(str, n)) for n in ref.notes]
    assert any(got.notes)                                      # the unknown-piece note is there


def test_deferred_scoring_equals_scoring_at_once():
    lm = loaded("bert")
    texts = TEXTS[:5]
    now = S.score_batch(lm, texts, SETTINGS)
    finish = S.score_batch(lm, texts, SETTINGS, defer=True)
    later = finish()
    for a, b in zip(now, later):
        for k, v in vars(a).items():
            w = getattr(b, k)
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, w)
            elif isinstance(v, float) and np.isnan(v):
                assert np.isnan(w)
            else:
                assert v == w, k


def _write_log(path, n):
    lines = []
    for i in range(n):
        if i % 17 == 5:
            lines.append("{not json")
        elif i % 11 == 3:
            lines.append(json.dumps({"text": "the same line [MASK] again"}))
        elif i % 13 == 7:
            lines.append(json.dumps({"text": ""}))
        else:
            lines.append(json.dumps({"text": " ".join(["w%d" % (i * 7 % 23), "the", "[MASK]" if i % 2 else "dog",
                                                       *(["ran"] * (i % 9))])}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def folder():
    return model_folder("bert")


@pytest.fixture(scope="module")
def lm(folder):
    from interp.loader import load_model
    return load_model(str(folder))


def _run(log, out, folder, lm, **kw):
    from interp.triage.runner import Triage, TriageConfig
    tri = Triage(log, out, TriageConfig(str(folder), ColumnMapping("text"), SETTINGS), lm=lm)
    return tri.run(batch_size=8, window_batches=2, flush_rows=24, **kw)


def test_threaded_pipeline_writes_the_same_results_as_the_sequential_loop(tmp_path, folder, lm):
    log = _write_log(tmp_path / "log.jsonl", 90)
    marks = []
    a = _run(log, tmp_path / "seq", folder, lm, pipeline=False)
    b = _run(log, tmp_path / "pipe", folder, lm, pipeline=True, progress=marks.append, progress_every=0.0)
    assert a["lines_total"] == b["lines_total"] == 90
    assert {k: a[k] for k in ("analysed", "skipped", "failed", "reasons")} == \
        {k: b[k] for k in ("analysed", "skipped", "failed", "reasons")}
    ta, tb = pq.read_table(tmp_path / "seq" / "results.parquet"), pq.read_table(tmp_path / "pipe" / "results.parquet")
    assert ta.equals(tb)
    parts_a = sorted(p.name for p in (tmp_path / "seq" / "parts").glob("*.parquet"))
    parts_b = sorted(p.name for p in (tmp_path / "pipe" / "parts").glob("*.parquet"))
    assert parts_a == parts_b
    assert marks and marks[-1].done and marks[-1].analysed == b["analysed"]
    # a limit is exact, and a second session resumes where the first stopped
    c = _run(log, tmp_path / "resume", folder, lm, pipeline=True, limit=37)
    assert c["lines_total"] == 37 and not c["complete"]
    d = _run(log, tmp_path / "resume", folder, lm, pipeline=True)
    assert d["complete"] and d["resumed_from_line_count"] == 37
    # (an input's scores depend on its batch partners only through float32 rounding of the padded passes)
    from test_triage_run import assert_same_scores
    assert_same_scores(pq.read_table(tmp_path / "resume" / "results.parquet").to_pandas(), ta.to_pandas())


def test_an_error_in_the_reader_thread_is_raised_and_earlier_windows_are_kept(tmp_path, folder, lm, monkeypatch):
    log = _write_log(tmp_path / "log.jsonl", 60)
    real = R.prepare_many
    calls = []

    def failing(recs, *a, **kw):
        calls.append(len(recs))
        if len(calls) == 3:
            raise OSError("disk went away")
        return real(recs, *a, **kw)
    monkeypatch.setattr(R, "prepare_many", failing)
    with pytest.raises(OSError, match="disk went away"):
        _run(log, tmp_path / "o", folder, lm, pipeline=True)
    done = sum(pq.read_table(p).num_rows for p in (tmp_path / "o" / "parts").glob("*.parquet"))
    assert done == 32                                          # the two windows before the error, written
    monkeypatch.setattr(R, "prepare_many", real)
    s = _run(log, tmp_path / "o", folder, lm, pipeline=True)    # and the run resumes after them
    assert s["complete"] and s["resumed_from_line_count"] == 32 and s["lines_total"] == 60


def test_an_error_in_the_writer_thread_is_raised(tmp_path, folder, lm, monkeypatch):
    log = _write_log(tmp_path / "log.jsonl", 60)

    def broken(self, table):
        raise PermissionError("read-only folder")
    monkeypatch.setattr(R.RunFolder, "write_part", broken)
    with pytest.raises(PermissionError, match="read-only folder"):
        _run(log, tmp_path / "o", folder, lm, pipeline=True)


def test_an_input_failing_after_its_work_was_queued_is_isolated(tmp_path, folder, lm, monkeypatch):
    real = S.score_batch

    def late(lm_, texts, *a, **kw):
        finish = real(lm_, texts, *a, **kw)
        if any("poison" in t for t in texts):
            def boom():
                raise RuntimeError("boom while reading results")
            return boom if kw.get("defer") else boom()
        return finish
    monkeypatch.setattr(S, "score_batch", late)
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat", "poison pill", "the dog", "a sea"]))
    s = run_triage(log, tmp_path / "o", str(folder), ColumnMapping("text"), SETTINGS, lm=lm, batch_size=4)
    df = pq.read_table(tmp_path / "o" / "results.parquet").to_pandas().set_index("line")
    assert (s["analysed"], s["failed"]) == (3, 1)
    assert df.loc[2, "reason"] == "RuntimeError: boom while reading results"


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert", "electra", "modernbert"])  # DeBERTa refuses plans
def test_the_head_at_the_compared_positions_gives_the_full_heads_scores(family, monkeypatch):
    """The GPU path (the MLM head applied only where outputs are compared) forced on the CPU: every score
    equals the full-head path's to float32 rounding (a product over fewer rows may round differently)."""
    from interp.sampling import downstream as D
    try:
        lm = loaded(family)
    except Exception as err:                                   # a family this transformers cannot build
        pytest.skip(f"{family}: {err}")
    if not lm.has_mlm_head:
        pytest.skip("no MLM head")
    texts = ["the cat sat on the [MASK] .", "a b c d e f", "the [MASK] is [MASK] here", "x y"]
    settings = [ScoreSettings(k=4, seeds=2), ScoreSettings(k=4, seeds=2, mask_policy="mask-each", mask_cap=3)]
    monkeypatch.setattr(D, "HEAD_AT_POSITIONS", "never")
    full = [S.score_batch(lm, texts, st) for st in settings]
    eff_full = D.downstream_effect(lm, encode(lm, texts), "A", 4, 2, 3, max_rows=4)
    monkeypatch.setattr(D, "HEAD_AT_POSITIONS", "always")
    assert D.head_at_positions(lm)
    part = [S.score_batch(lm, texts, st) for st in settings]
    eff_part = D.downstream_effect(lm, encode(lm, texts), "A", 4, 2, 3, max_rows=4)
    for rows_a, rows_b in zip(full, part):
        for a, b in zip(rows_a, rows_b):
            assert (a.mode, a.n_targets, a.dense_top1, a.query, a.worst_layer, a.worst_head) == \
                (b.mode, b.n_targets, b.dense_top1, b.query, b.worst_layer, b.worst_head)
            for name in ("confidence", "margin", "flip_rate", "kl", "kl_max", "top1_agreement", "worst_tv",
                         "eff_experts"):
                np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ("top1_agreement", "flip_rate", "kl_mean", "kl_max", "rank_mean", "rank_max"):
        np.testing.assert_allclose(getattr(eff_part, name), getattr(eff_full, name), rtol=1e-5, atol=1e-6)


def test_stream_keys_of_all_layers_at_once_equal_the_per_layer_keys():
    from interp.sampling import seeds as SD
    bases = torch.tensor([SD.base_key(3, k) for k in ["a", "b", 7, ("x", 1)]], dtype=torch.int64)
    reps = torch.tensor([0, 1, 2, 5], dtype=torch.int64)
    layers = [0, 2, 3, 11, 1000]
    together = SD.stream_keys_of_layers(bases, layers, reps)
    for j, l in enumerate(layers):
        assert torch.equal(together[j], SD.stream_keys(bases, l, reps))
        assert together[j][1, 2].item() == SD.stream_key(3, 7, l, 1)
