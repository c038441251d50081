"""The head page's progressive counterfactual lens: the experts it shows while it computes are the top-gate ones,
with the same numbers as the complete computation (float32, rtol 1e-5), and what it shows at the end is the
complete computation's summary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine_fixtures import loaded
from interp.figures import head as fh
from interp.i18n import t
from interp.lenses import LENS_INFO, counterfactual_batches, counterfactual_lens
from interp.trace import trace_text

TEXT = "the cat sat on the [MASK] near the river bank ."
HEAD = "pages/2_Head.py"
RTOL, ATOL = 1e-5, 1e-6


@pytest.mark.parametrize("arch,with_head", [("bert", True), ("bert", False)])
def test_partial_summaries_equal_the_full_summary_rows(arch, with_head):
    lm = loaded(arch, with_head=with_head)
    tr = trace_text(lm, TEXT)
    layer, head, q = 0, 1, 6
    full = fh.lens_summary(counterfactual_lens(lm, tr, layer, head, q), tr.tokens, lm.tokenizer)
    gates = tr.layers[layer].probs[head, q]
    y = tr.output[q] if tr.has_mlm_head else tr.output
    kind = "mlm-logits" if lm.has_mlm_head else "pooled-embedding"
    pos, outs = [], []
    for idx, out in counterfactual_batches(lm, tr, layer, head, q, first=3, step=4):
        pos += idx
        outs.append(out)
        part = fh.partial_lens_summary("counterfactual", LENS_INFO["counterfactual"].exactness, kind, layer, head, q,
                                       list(pos), torch.cat(outs), gates[pos], y, tr.tokens, lm.tokenizer)
        # the first rows are the largest gates
        order = np.argsort(-gates.numpy(), kind="stable")
        assert part.experts.iloc[:, 0].tolist() == order[:len(pos)].tolist()
        ref = full.experts.set_index(full.experts.columns[0]).loc[pos]
        got = part.experts.set_index(part.experts.columns[0])
        for col in got.columns:
            if not pd.api.types.is_numeric_dtype(got[col]):
                assert got[col].tolist() == ref[col].tolist(), col
            else:
                np.testing.assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=RTOL, atol=ATOL)
    assert sorted(pos) == list(range(tr.n))


def test_head_page_shows_the_complete_counterfactual(app, tiny_bert_dir):
    """The page's final table is the complete computation's (the model re-run once per expert), and the partial
    view and its progress bar are gone once it is done."""
    at = app(model=tiny_bert_dir, text=TEXT, layer=1, head=2, query=6).run()
    at.switch_page(HEAD).run()
    at.radio(key="hd_section").set_value("lens").run()
    at.radio(key="hd_lens").set_value("counterfactual").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("progress")) == 0
    lm = loaded_folder(tiny_bert_dir)
    tr = trace_text(lm, TEXT)
    full = fh.lens_summary(counterfactual_lens(lm, tr, 1, 2, 6), tr.tokens, lm.tokenizer)
    tables = [df for df in (e.value for e in (*at.dataframe, *at.table)) if t("lens.col.prob") in df.columns]
    assert tables, "no lens table on the page"
    shown = tables[0]
    assert shown[t("lens.col.expert")].tolist() == list(range(tr.n))
    np.testing.assert_allclose(shown[t("lens.col.prob")].to_numpy(dtype=float),
                               full.experts[t("lens.col.prob")].to_numpy(), rtol=RTOL, atol=ATOL)
    assert [str(x) for x in shown[t("lens.col.top")]] == [str(x) for x in full.experts[t("lens.col.top")]]


def loaded_folder(folder):
    from interp.loader import load_model
    return load_model(folder)
