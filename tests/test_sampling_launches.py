"""The sampled passes' launch savings change no bit: every layer's draws made at once (the GPU path, forced here
on the CPU) equal the layer-by-layer draws, and the whole downstream effect is bit-identical either way; the
dense pass's concentration plan makes its per-pass tensors once."""
from __future__ import annotations

import numpy as np
import torch

from interp.sampling import downstream as D
from interp.sampling import seeds as seeding
from interp.trace import encode
from triage_logs import folder, lm  # noqa: F401  (fixtures)

TEXTS = ["the cat sat on the [MASK] .", "a big red house near the river", "[MASK] king saw the [MASK] queen .",
         "she went to paris"]


def test_shared_draws_equal_the_layer_by_layer_draws():
    bases = torch.tensor([seeding.base_key(3, k) for k in ("a", "b", "c")], dtype=torch.int64)
    layers = [0, 2, 5]
    reps = torch.arange(4)
    keys = seeding.stream_keys_of_layers(bases, layers, reps)            # L × R × B
    shared = seeding.SharedDraws(keys, layers)
    for i, l in enumerate(layers):
        one = seeding.Streams(keys[i]).uniform(3, 7, 5)
        got = seeding.LayerStreams(keys[i], shared, l).uniform(3, 7, 5)
        assert got.shape == one.shape and torch.equal(got, one)
    assert seeding.as_streams(seeding.LayerStreams(keys[0], shared, 0), torch.device("cpu")).shared is shared


def _effect(lm, mode, monkeypatch):  # noqa: F811
    monkeypatch.setattr(D, "SHARED_DRAWS", mode)
    enc = encode(lm, TEXTS)
    return D.downstream_effect(lm, enc, "A", 4, 3, 7)


def test_the_downstream_effect_is_bit_identical_with_shared_draws(lm, monkeypatch):  # noqa: F811
    a = _effect(lm, "never", monkeypatch)
    b = _effect(lm, "always", monkeypatch)
    for name in ("top1_agreement", "flip_rate", "kl_mean", "kl_max", "rank_mean", "cosine_mean", "head_tv"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x, y, equal_nan=True), name
    assert not np.isnan(a.head_tv).all()


def test_shared_draws_make_fewer_operator_calls(lm, monkeypatch):  # noqa: F811
    from torch.profiler import ProfilerActivity, profile

    def ops(mode):
        monkeypatch.setattr(D, "SHARED_DRAWS", mode)
        enc = encode(lm, TEXTS)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            D.downstream_effect(lm, enc, "A", 4, 3, 7)
        return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    assert ops("always") < ops("never")
