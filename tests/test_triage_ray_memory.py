"""The Ray scoring actor's memory stays bounded (issue 14: memory over a 1,000,000-line log stays flat).

The actor's step (:class:`interp.triage.ray_engine.RayScorer`) runs here in-process, on a worker thread as Ray
runs it, without a Ray instance. Two causes of growth are pinned:

* Python objects kept from batch to batch (results lists, caches keyed by content, references): traced with
  ``tracemalloc``, the memory retained after 2N batches exceeds that after N batches by less than a small fixed
  bound, whereas keeping even 200 bytes per scored line would exceed it several times over. The sampling
  library's per-input stream-base cache is excluded from the trace: it has its own stated cap (65,536 entries),
  checked separately.
* The C heap's free-but-kept pages of the worker thread's arena (the growth measured in the actor: glibc's
  in-use bytes flat, its kept free bytes climbing): :func:`release_free_heap` returns them, shown on a heap
  fragmented on purpose in a thread, and the actor calls it after every batch.
"""
from __future__ import annotations

import ctypes
import gc
import json
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import pyarrow as pa
import pytest
import torch

from engine_fixtures import model_folder, vocab
from interp.sampling import seeds
from interp.triage import ScoreSettings
from interp.triage import ray_engine
from interp.triage.demo import records
from interp.triage.ray_engine import TODO_SCHEMA, RayScorer, release_free_heap

LINES_PER_CALL = 64


def _glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    return True


def _batches(n_calls: int, round_: int) -> list[pa.Table]:
    """``n_calls`` batches of distinct inputs; every round has the same token lengths (the same base texts behind
    a two-word prefix of whole vocabulary words that differs by round), so that caches keyed by tensor shape in
    torch and numpy are warm after the first round and only content differs."""
    words = vocab()[5:]
    base = list(records(n_calls * LINES_PER_CALL, seed=11))
    out = []
    for c in range(n_calls):
        rows = []
        for j in range(c * LINES_PER_CALL, (c + 1) * LINES_PER_CALL):
            r = base[j]
            text = f"{words[j % len(words)]} {words[(j // len(words) + 3 * round_) % len(words)]} {r['text']}"
            rows.append({"record": round_ * 100_000 + j, "text": text, "_tokens": None,
                         "prediction_json": json.dumps(r["prediction"]), "label_json": json.dumps(r["label"]),
                         "notes": None, "preview": text[:300]})
        out.append(pa.Table.from_pylist(rows, TODO_SCHEMA))
    return out


def _retained() -> tuple[int, int, int]:
    """(bytes traced by tracemalloc, live dicts, lists, tensors and Arrow tables — what a kept row, result list or
    score would be, bytes held by Arrow's memory pool) after a full collection. Tuples are left out: torch keeps a
    saturating cache of them."""
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, seeds.__file__, all_frames=True), tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, __file__)])
    with warnings.catch_warnings():   # isinstance on every live object touches torch's deprecated aliases
        warnings.simplefilter("ignore", FutureWarning)
        kept = sum(isinstance(o, (dict, list, torch.Tensor, pa.Table)) for o in gc.get_objects())
    return sum(s.size for s in snap.statistics("filename")), kept, pa.total_allocated_bytes()


def test_scoring_actor_retains_no_python_memory_per_batch():
    folder = str(model_folder("bert", True, 0, initializer_range=0.3))
    scorer = RayScorer(folder, "cpu", asdict(ScoreSettings(k=4, seeds=2, seed=0)), 32, None, 1)
    n = 4
    warm, first, second = _batches(n, 0), _batches(n, 1), _batches(n, 2)
    with ThreadPoolExecutor(1) as pool:               # Ray runs an actor's calls on a thread of its own
        for b in warm:                                 # first-call allocations (lazy imports, plans) before tracing
            pool.submit(scorer, b).result()
        tracemalloc.start(4)
        try:
            base = _retained()
            outs = [pool.submit(scorer, b).result().num_rows for b in first]
            after_n = _retained()
            outs += [pool.submit(scorer, b).result().num_rows for b in second]
            after_2n = _retained()
        finally:
            tracemalloc.stop()
    assert outs == [LINES_PER_CALL] * (2 * n)
    lines = n * LINES_PER_CALL
    # Between N and 2N batches (256 more distinct lines): fewer than 64 more live dicts, lists, tensors or
    # tables (measured: 0), where keeping one row, result or tensor per line would add at least 256; and less
    # than 40 KB more traced memory (measured:
    # 15-20 KB, small objects parked in CPython's and numpy's free lists, not proportional to lines), where
    # keeping 160 bytes per line would add 41 KB, a row dict (~1 KB) per line 256 KB.
    assert after_2n[1] - after_n[1] < 64 <= lines / 4, (base, after_n, after_2n)
    assert after_2n[0] - after_n[0] < 40 * 1024 <= 160 * lines, (base, after_n, after_2n)
    # No Arrow buffers outlive a call once its result is dropped (one scored row is ~250 bytes of Arrow data).
    assert after_2n[2] <= after_n[2] <= base[2] + 64 * 1024, (base, after_n, after_2n)
    # The one content-keyed cache on the path is bounded.
    info = seeds._base.cache_info()
    assert info.maxsize == 1 << 16 and info.currsize <= info.maxsize


def test_scoring_actor_releases_the_free_heap_after_every_batch(monkeypatch):
    calls = []
    monkeypatch.setattr(ray_engine, "release_free_heap", lambda: calls.append(1) or True)
    folder = str(model_folder("bert", True, 0, initializer_range=0.3))
    scorer = RayScorer(folder, "cpu", asdict(ScoreSettings(k=4, seeds=2, seed=0)), 8, None, 1)
    for b in _batches(3, 0):
        scorer(b)
    assert len(calls) == 3


def _anon_kb() -> int:
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    raise AssertionError("no Anonymous line")


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's")
def test_release_free_heap_returns_a_fragmented_thread_arena():
    # 96 MB in 32 KB blocks (below glibc's mmap threshold, so they live in the thread's arena), all freed but
    # every 64th: the kept blocks pin the arena, so glibc's own trimming (top of the heap only) returns little.
    def fragment():
        blocks = [ctypes.create_string_buffer(32 * 1024) for _ in range(3072)]
        keep = blocks[::64]
        del blocks
        gc.collect()
        return keep

    with ThreadPoolExecutor(1) as pool:
        keep = pool.submit(fragment).result()
        before = _anon_kb()
        assert pool.submit(release_free_heap).result() is True
        after = _anon_kb()
    del keep
    assert before - after > 48 * 1024, (before, after)   # at least half of the 93 MB freed goes back
