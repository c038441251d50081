"""Sampling settings travel as one value: round trip, validation, and the same report as loose arguments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.sampling.report import draw_layer, sampling_report
from interp.sampling.settings import SamplingSettings
from interp.trace import trace_text
from tests.engine_fixtures import loaded

TEXT = "the quick brown fox [MASK] over the lazy dog ."


def test_settings_round_trip_and_defaults():
    s = SamplingSettings("E", 4, seeds=3, seed=7)
    assert SamplingSettings.from_dict(s.to_dict()) == s
    c = s.checked()
    assert (c.h, c.m) == (4, 4) and c.scheme == "E" and c.seeds == 3 and c.seed == 7
    assert SamplingSettings.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown sampling setting"):
        SamplingSettings.from_dict({**s.to_dict(), "kk": 1})
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        SamplingSettings("A", 4, seeds=0).checked()
    with pytest.raises(ValueError):
        SamplingSettings("nope", 4).checked()


def test_report_from_settings_equals_report_from_loose_arguments():
    lm = loaded("bert")
    tr = trace_text(lm, TEXT)
    st = SamplingSettings("A", 3, seeds=2, seed=5)
    a = sampling_report(lm, tr, st, layers=[1], downstream=False)
    b = sampling_report(lm, tr, "A", 3, 2, 5, layers=[1], downstream=False)
    assert a.settings == st.checked() == b.settings
    assert a.heads == b.heads
    for name in a.per_query:
        np.testing.assert_array_equal(a.per_query[name], b.per_query[name])
    da = draw_layer(lm, tr, 1, st)
    db = draw_layer(lm, tr, 1, "A", 3, 2, 5)
    assert bool((da.est.weights == db.est.weights).all())


def test_sampling_respects_modernbert_sliding_window_and_refuses_mpnet():
    lm = loaded("modernbert")
    tr = trace_text(lm, "the quick brown fox jumps over the lazy dog near the river bank and the king saw a house")
    local = [l for l, t in enumerate(lm.config.layer_types) if t == "sliding_attention"][0]
    w = lm.config.sliding_window
    d = draw_layer(lm, tr, local, SamplingSettings("B-uniform", 4, seeds=2))
    i = np.arange(tr.n)
    outside = torch.from_numpy(np.abs(i[:, None] - i[None, :]) > w)
    assert outside.any()
    assert float(d.est.weights[..., outside].abs().max()) == 0.0          # never a key the layer cannot see
    assert float(d.P[..., outside].abs().max()) == 0.0                    # the model's own gate agrees
    with pytest.raises(ValueError, match="MPNet computes attention inside its own module"):
        sampling_report(loaded("mpnet"), trace_text(loaded("mpnet"), TEXT), SamplingSettings("A", 2, 1),
                        downstream=False)
