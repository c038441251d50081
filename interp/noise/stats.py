"""Paired statistics for dense-vs-sampled flip rates: the exact McNemar test and a cluster bootstrap interval.

* Exact McNemar (binomial) test: of the n = b + c discordant pairs (b: dense flipped and sampled did not; c: the
  reverse), under H0 each is b or c with probability ½. Two-sided p = min(1, 2·P[Bin(n, ½) ≤ min(b, c)]);
  p = 1 when n = 0. Computed exactly with integers (``math.comb``), no approximation.
* Cluster bootstrap of a difference of ratios: clusters (inputs, or noise seeds for a single input) are resampled
  with replacement; each replicate's difference is Σ sampled flips / Σ units − Σ dense flips / Σ units over the
  resampled clusters; the interval is the percentile interval. Resampling clusters, not pairs, keeps the
  correlation between the positions and seeds of one input inside a replicate.
"""
from __future__ import annotations

import math

import numpy as np


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return float(min(1.0, 2.0 * tail / (2 ** n)))


def discordant(dense_flip, sampled_flip) -> tuple[int, int]:
    """(b, c) = (#dense flipped & sampled not, #sampled flipped & dense not) over paired boolean arrays."""
    d = np.asarray(dense_flip, bool)
    s = np.asarray(sampled_flip, bool)
    return int((d & ~s).sum()), int((s & ~d).sum())


def bootstrap_difference(units, dense_flips, sampled_flips, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile interval of (Σ sampled − Σ dense)/Σ units under resampling of clusters.

    ``units[g]``, ``dense_flips[g]``, ``sampled_flips[g]``: totals of cluster g. With one cluster the interval
    is the point estimate twice (no spread can be estimated); with none, (nan, nan)."""
    u = np.asarray(units, float)
    d = np.asarray(dense_flips, float)
    s = np.asarray(sampled_flips, float)
    G = len(u)
    if G == 0 or u.sum() <= 0:
        return float("nan"), float("nan")
    point = (s.sum() - d.sum()) / u.sum()
    if G == 1:
        return float(point), float(point)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, G, size=(n_boot, G))
    tot = u[idx].sum(1)
    diff = (s[idx].sum(1) - d[idx].sum(1)) / np.where(tot > 0, tot, np.nan)
    diff = diff[~np.isnan(diff)]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(diff, alpha)), float(np.quantile(diff, 1.0 - alpha))


def bootstrap_ratio(units, hits, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of Σ hits / Σ units under resampling of clusters (see :func:`bootstrap_difference`)."""
    zeros = np.zeros(len(np.asarray(units)))
    return bootstrap_difference(units, zeros, hits, n_boot, level, seed)
