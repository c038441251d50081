"""Counter-based random streams (interp.sampling.seeds): the torch integer mixing equals a pure-Python
SplitMix64 reference, the draws are uniform / normal within stated statistical bounds, a stream depends only on
(seed, example key, layer, replicate) — not on the batch — and scoring makes no CPU generator draw at all."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interp.sampling import seeds as S


def splitmix_reference(x: int) -> int:
    """SplitMix64's finaliser, as published (uint64)."""
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def test_torch_mixing_equals_the_reference():
    xs = [0, 1, 2, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 0xDEADBEEFCAFEBABE]
    got = S.mix(torch.tensor([S._i64(x) for x in xs], dtype=torch.int64)).tolist()
    assert [g & ((1 << 64) - 1) for g in got] == [splitmix_reference(x) for x in xs]
    # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF first (the generator's published first output)
    assert splitmix_reference(0) == 0xE220A8397B1DCDAF


def test_uniform_and_normal_draws_pass_statistical_bounds():
    keys = S.Streams.of(0, [f"doc-{i}" for i in range(4)], 3, range(2)).keys          # 2 × 4 streams
    u = S.uniform(keys, 4, 64, 256).double().flatten()                                   # 524,288 draws
    n = u.numel()
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    # mean and variance within 6 standard errors of 1/2 and 1/12
    assert abs(float(u.mean()) - 0.5) < 6 * math.sqrt(1 / 12 / n)
    assert abs(float(u.var()) - 1 / 12) < 6 * math.sqrt(1 / 180 / n)
    # Kolmogorov–Smirnov distance below the 1e-6 critical value sqrt(ln(2/α)/(2n))
    xs = np.sort(u.numpy())
    ks = max(np.max(np.arange(1, n + 1) / n - xs), np.max(xs - np.arange(n) / n))
    assert ks < math.sqrt(math.log(2 / 1e-6) / (2 * n))
    # neighbouring counters are uncorrelated (lag-1 correlation within 6/sqrt(n))
    c = np.corrcoef(xs.size and u.numpy()[:-1], u.numpy()[1:])[0, 1]
    assert abs(c) < 6 / math.sqrt(n)
    z = S.normal(keys, 4, 64, 128).double().flatten()
    m = z.numel()
    assert abs(float(z.mean())) < 6 / math.sqrt(m) and abs(float(z.var()) - 1) < 6 * math.sqrt(2 / m)


def test_a_stream_depends_only_on_its_own_key():
    a = S.Streams.of(7, ["x", "y", "z"], 2, [0, 1, 2]).keys
    b = S.Streams.of(7, ["z", "x"], 2, [2, 0]).keys
    assert a[2, 2] == b[0, 0] and a[0, 0] == b[1, 1]
    assert S.stream_key(7, "y", 2, 1) == int(a[1, 1])
    assert len({int(v) for v in a.flatten()}) == 9
    assert S.stream_key(7, "y", 2, 1) != S.stream_key(8, "y", 2, 1) != S.stream_key(7, "y", 3, 1)
    # the draws of one (head, query, draw) do not depend on how many queries or draws the batch has
    small, big = S.uniform(a[:1, :1], 2, 5, 3), S.uniform(a[:1, :1], 2, 40, 9)
    assert torch.equal(small, big[..., :5, :3])


def test_scoring_draws_nothing_from_cpu_generators(monkeypatch):
    from engine_fixtures import model_folder
    from interp.loader import load_model
    from interp.triage import ScoreSettings, score_batch
    lm = load_model(str(model_folder("bert", True, 0, initializer_range=0.3)))
    def refuse(*a, **kw):
        raise AssertionError("a CPU generator draw")
    for scheme in ("A", "D", "E"):
        texts = ["the cat [MASK] on the road", "a big red house near the river"]
        ref = score_batch(lm, texts, ScoreSettings(scheme=scheme, k=3, seeds=3, seed=5))
        with monkeypatch.context() as mp:
            mp.setattr(torch, "rand", refuse)
            mp.setattr(torch, "randn", refuse)
            mp.setattr(torch, "Generator", refuse)
            got = score_batch(lm, texts[::-1], ScoreSettings(scheme=scheme, k=3, seeds=3, seed=5))
        for a, b in zip(ref, got[::-1]):
            assert a.kl == pytest.approx(b.kl, rel=1e-5, abs=1e-7) and a.flip_rate == b.flip_rate
