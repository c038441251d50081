"""Engine benchmark: plain forward vs trace + full decomposition vs the lenses of one head.

Measured side by side in one process (medians of repeated runs, the two timed alternately so that machine
noise hits both), MiniLM, n = 16, 128, 512, on CPU and (when present) CUDA. Every function is run once on a
warm-up text before the first timed configuration. Prints one JSON object as its last line.

    OMP_NUM_THREADS=2 python benchmarks/bench_engine.py --devices cpu [--repeats 5] [--lens-repeats 2] [--lens-ns 128]
    OMP_NUM_THREADS=1 python benchmarks/bench_engine.py --devices cpu --ns 128 --lens-ns 128 --model minilm-mlm

The anchored lens is also timed against its generic path (``anchored_jacobian_vmap``: vmap over jvp of the
re-run), the two alternately in the same run (``anchored_paired_s``, ``anchored_generic_paired_s``,
``anchored_speedup``), and the matrix-product GFLOP of each (``*_gflop``, from the profiler's counts).
    python benchmarks/bench_engine.py --devices cuda

The plain forward is the same base model as the trace's (for a model with an MLM head, that model's own base,
without the head: the trace computes the vocabulary logits only when a view reads them), loaded with
transformers' eager attention and returning its probabilities; both tokenise the text with the project's
``encode`` and move the inputs to the device inside the timing, and both are followed by the same
synchronisation. For a model with an MLM head (``minilm-mlm``) the model's own eager forward with its head is
timed in the same rounds too (``plain_forward_with_mlm_head_s``, ``decomposition_ratio_vs_mlm_forward``).

``--clock cpu`` times the CPU configurations by the process's CPU time instead of the wall clock (on a shared
machine other jobs stretch wall times, not the CPU time a computation needs); ``--rounds R`` repeats the timed
pair R times per configuration and reports every round's ratio. ``--count-ops`` counts, with torch.profiler after
all timings, the aten ops that do work (views and allocations left out) in one plain forward and in one trace +
overview, on the CPU both on the CPU's paths and on the accelerator's (run on the CPU), on CUDA on its own path,
together with the CUDA runtime's kernel launches, copies and synchronisations (``ops.launches``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import AutoModel, AutoModelForMaskedLM  # noqa: E402

from interp import decompose as D  # noqa: E402
from interp.lenses import (LENSES, anchored_jacobian_closed_form, anchored_jacobian_vmap,  # noqa: E402
                           counterfactual_batches)
from interp.loader import load_model  # noqa: E402
from interp.trace import encode, trace_text  # noqa: E402

WORDS = ("the committee said on tuesday that the new bridge across the river would open next spring after "
         "years of delay and a long argument about its cost and design").split()


def text_of(lm, n: int) -> str:
    words = []
    while True:
        words.append(WORDS[len(words) % len(WORDS)])
        if len(lm.tokenizer(" ".join(words))["input_ids"]) >= n:
            return " ".join(words)


CLOCK = time.perf_counter


def timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(repeats):
        t = CLOCK()
        fn()
        sync()
        ts.append(CLOCK() - t)
    return statistics.median(ts)


def timed_alternating(fns, repeats: int, sync) -> tuple[float, ...]:
    """Medians of ``fns`` timed in turn, round after round (one warm-up each)."""
    for fn in fns:
        fn()
    sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t = CLOCK()
            fn()
            sync()
            ts.append(CLOCK() - t)
    return tuple(statistics.median(ts) for ts in times)


def timed_pair(a, b, repeats: int, sync) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` timed alternately (one warm-up each)."""
    return timed_alternating((a, b), repeats, sync)


def matmul_gflop(fn) -> float:
    """GFLOP of the matrix products (mm/bmm/addmm/...) one call of ``fn`` performs, from the profiler's operator
    counts: a measure of the work that machine load does not change."""
    with torch.profiler.profile(with_flops=True) as prof:
        fn()
    return sum(e.flops for e in prof.key_averages()) / 1e9


def first_batch_time(lm, tr, layer, head, q, sync) -> float:
    """Seconds until the progressive counterfactual lens delivers its first (top-gate) experts."""
    t = time.perf_counter()
    next(iter(counterfactual_batches(lm, tr, layer, head, q)))
    sync()
    return time.perf_counter() - t


# aten ops that launch no work of their own (views, metadata, allocation, dispatch wrappers)
_NO_WORK = {"as_strided", "select", "view", "reshape", "_reshape_alias", "expand", "transpose", "t", "resolve_conj",
            "resolve_neg", "_unsafe_view", "slice", "unsqueeze", "squeeze", "permute", "detach", "alias", "unbind",
            "split", "diagonal", "empty", "empty_strided", "empty_like", "lift_fresh", "flatten", "contiguous", "to",
            "_to_copy", "narrow", "chunk", "view_as", "result_type", "item", "_local_scalar_dense", "is_nonzero",
            "clone", "dropout", "numpy_T", "resize_", "set_", "matmul", "linear", "einsum", "stack",
            "lift_fresh_copy", "zeros", "ones", "full", "zeros_like", "ones_like", "scalar_tensor", "_has_compatible_shallow_copy_type"}


def count_ops(fn) -> dict[str, int]:
    """Aten ops that do work in one call of ``fn`` (CPU profiler), counted from the top: an op called from
    Python (or from a composite such as ``linear``, ``matmul``, ``stack`` that only dispatches) counts once
    with everything it calls, so ``sum`` is one op as it is one kernel on a GPU; views and allocations do not
    count. On a GPU each counted op is about one kernel launch or copy."""
    from collections import Counter
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    out: Counter = Counter()

    def visit(e) -> None:
        name = e.name[6:]
        if name in _NO_WORK:
            for k in e.cpu_children:
                if k.name.startswith("aten::"):
                    visit(k)
        else:
            out[name] += 1

    for e in prof.events():
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")):
            visit(e)
    return dict(out)


def model_inputs(lm, text: str, device: str) -> dict:
    """What both timed paths do before the model runs: the project's tokenisation (``encode``) and the move of
    the ids, mask and token types to the device (the trace's ``forward`` does the same)."""
    enc = encode(lm, [text])
    kw = {"input_ids": enc.input_ids.to(device), "attention_mask": enc.attention_mask.to(device)}
    if enc.token_type_ids is not None:
        kw["token_type_ids"] = enc.token_type_ids.to(device)
    return kw


def plain_forward(lm, eager, text: str, device: str):
    """One plain forward of ``eager`` (transformers' eager attention, returning the probabilities) on freshly
    tokenised ``text``: tokenisation is inside the timing, as it is in the trace's."""
    kw = model_inputs(lm, text, device)
    with torch.no_grad():
        return eager(**kw, output_attentions=True)


def op_counts(lm, eager, text: str, device: str) -> dict:
    """Ops of one plain forward and of one trace + overview (CPU paths, and the accelerator's paths run on the
    CPU: no gate sums in the capture, torch argmax, one matmul for the gate-weighted sums); tokenisation is in
    both, as in the timings."""
    from interp.trace import capture_encoded

    def plain():
        plain_forward(lm, eager, text, device)

    def full():
        D.overview(lm, trace_text(lm, text), with_checks=True)

    def full_device_paths():
        D._DEVICE_PATHS_ON_CPU = True
        try:
            D.overview(lm, capture_encoded(lm, encode(lm, [text]), gate_stats=False).example(0), with_checks=True)
        finally:
            D._DEVICE_PATHS_ON_CPU = False

    if device.startswith("cuda"):       # on the accelerator itself: its own path, ops and the runtime's launches
        plain(), full()
        counts = {name: count_ops(fn) for name, fn in (("plain", plain), ("full_device_paths", full))}
        out = {name: sum(c.values()) for name, c in counts.items()} | {"by_op": counts}
        try:
            out["launches"] = {name: cuda_launches(fn, device) for name, fn in (("plain", plain),
                                                                                ("full_device_paths", full))}
        except Exception as err:           # noqa: BLE001 - the launch count is extra; the timings stand without it
            out["launches"] = f"not counted: {err}"
        return out
    plain(), full(), full_device_paths()
    counts = {name: count_ops(fn) for name, fn in (("plain", plain), ("full_cpu_paths", full),
                                                   ("full_device_paths", full_device_paths))}
    return {name: sum(c.values()) for name, c in counts.items()} | {"by_op": counts}


def cuda_launches(fn, device: str) -> dict[str, int]:
    """CUDA runtime calls of one call of ``fn`` (torch.profiler with CUDA activity): kernel launches, memory
    copies and synchronisations, as the host issues them."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    out = {"kernel_launches": 0, "memcpy": 0, "memset": 0, "synchronize": 0}
    for e in prof.events():
        name = e.name
        if name.startswith("cudaLaunchKernel") or name.startswith("cuLaunchKernel"):
            out["kernel_launches"] += 1
        elif name.startswith("cudaMemcpy"):
            out["memcpy"] += 1
        elif name.startswith("cudaMemset"):
            out["memset"] += 1
        elif "Synchronize" in name:
            out["synchronize"] += 1
    return out


def bench(model: str, device: str, ns: list[int], repeats: int, lens_repeats: int, layer: int,
          head: int, lens_ns: set[int] | None = None, rounds: int = 1, ops: bool = False) -> list[dict]:
    lm = load_model(model, device=device)
    # the plain forward runs the same base model as the trace (for a model with an MLM head: the MLM model's own
    # base, without the head; a sentence encoder is its own base), loaded again with transformers' eager attention
    eager_mlm = AutoModelForMaskedLM.from_pretrained(str(lm.folder), attn_implementation="eager", dtype=torch.float32
                                                     ).eval().to(device) if lm.has_mlm_head else None
    eager = eager_mlm.base_model if eager_mlm is not None else \
        AutoModel.from_pretrained(str(lm.folder), attn_implementation="eager", dtype=torch.float32).eval().to(device)
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    rows = []
    warm = trace_text(lm, text_of(lm, 24))          # start-up costs (allocator, kernels) before any timing
    D.overview(lm, warm, with_checks=True)
    warm.output                                     # the MLM head's kernels too
    for fn in LENSES.values():
        fn(lm, warm, layer, head, 1)
    plain_forward(lm, eager, text_of(lm, 24), device)
    if eager_mlm is not None:
        plain_forward(lm, eager_mlm, text_of(lm, 24), device)
    for n in ns:
        text = text_of(lm, n)

        # all three tokenise the text and move the inputs to the device inside the timing (the same ``encode``)
        def plain():
            plain_forward(lm, eager, text, device)

        def full():
            tr = trace_text(lm, text)
            D.overview(lm, tr, with_checks=True)

        def plain_mlm():
            plain_forward(lm, eager_mlm, text, device)

        fns = (plain, full) if eager_mlm is None else (plain, full, plain_mlm)
        runs = [timed_alternating(fns, repeats, sync) for _ in range(rounds)]
        pairs = [r[:2] for r in runs]
        t_plain, t_full = pairs[0] if rounds == 1 else (statistics.median(p[0] for p in pairs),
                                                         statistics.median(p[1] for p in pairs))
        tr = trace_text(lm, text)
        checks = D.identity_checks(lm, tr)
        ov_checks = D.overview(lm, tr, with_checks=True).checks
        row = {"device": device, "n": tr.n, "tokenisation": "inside both",
               "plain_forward_s": t_plain, "trace_plus_decomposition_s": t_full,
               "decomposition_ratio": t_full / t_plain,
               "identity_dense_max_rel_err": checks["identity_dense_max_rel_err"],
               "identity_ln_max_rel_err": checks["identity_ln_max_rel_err"],
               "overview_identity_dense_max_rel_err": ov_checks["identity_dense_max_rel_err"],
               "overview_identity_ln_max_rel_err": ov_checks["identity_ln_max_rel_err"]}
        if rounds > 1:
            row["round_ratios"] = [b / a for a, b in pairs]
        if eager_mlm is not None:
            t_mlm = statistics.median(r[2] for r in runs)
            row.update({"plain_forward_with_mlm_head_s": t_mlm, "decomposition_ratio_vs_mlm_forward": t_full / t_mlm})
        if lens_ns is None or n in lens_ns:
            q = min(5, tr.n - 1)
            lens_t = {name: timed(lambda f=fn: f(lm, tr, layer, head, q), lens_repeats, sync)
                      for name, fn in LENSES.items()}
            # the anchored lens against its generic path (vmap over jvp of the re-run), timed alternately
            t_fast, t_generic = timed_pair(lambda: LENSES["anchored"](lm, tr, layer, head, q),
                                           lambda: anchored_jacobian_vmap(lm, tr, layer, head, q), lens_repeats, sync)
            t_first = statistics.median(first_batch_time(lm, tr, layer, head, q, sync) for _ in range(lens_repeats))
            row.update({"lenses_s": lens_t, "lenses_total_s": sum(lens_t.values()),
                        "vocabulary_plus_anchored_s": lens_t["vocabulary"] + lens_t["anchored"],
                        "anchored_paired_s": t_fast, "anchored_generic_paired_s": t_generic,
                        "anchored_speedup": t_generic / t_fast,
                        "anchored_closed_form": anchored_jacobian_closed_form(lm, tr, layer, head, q) is not None,
                        "vocabulary_gflop": matmul_gflop(lambda: LENSES["vocabulary"](lm, tr, layer, head, q)),
                        "anchored_gflop": matmul_gflop(lambda: LENSES["anchored"](lm, tr, layer, head, q)),
                        "anchored_generic_gflop": matmul_gflop(lambda: anchored_jacobian_vmap(lm, tr, layer, head, q)),
                        "counterfactual_first_batch_s": t_first, "lens_layer": layer, "lens_head": head})
        rows.append(row)
        print(json.dumps(rows[-1]), file=sys.stderr)
    if ops:   # after every timing (a profiler session, CUDA's included, never overlaps a timed run)
        for row, n in zip(rows, ns):
            row["ops"] = op_counts(lm, eager, text_of(lm, n), device)
            print(json.dumps({"n": row["n"], "ops": {k: v for k, v in row["ops"].items() if k != "by_op"}}),
                  file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="minilm", help="registry name or folder (default: minilm, the mean-pooled "
                    "sentence embedder; minilm-mlm has an MLM head)")
    ap.add_argument("--devices", default=None, help="comma-separated (default: cpu, plus cuda when present)")
    ap.add_argument("--ns", default="16,128,512")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lens-repeats", type=int, default=2)
    ap.add_argument("--lens-ns", default=None, help="lengths at which the lenses are timed (default: every --ns)")
    ap.add_argument("--layer", type=int, default=2, help="layer of the head whose lenses are timed")
    ap.add_argument("--head", type=int, default=5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: time CPU configurations by process CPU time (default: wall clock)")
    ap.add_argument("--rounds", type=int, default=1, help="timed pairs per configuration (ratios of each round)")
    ap.add_argument("--count-ops", action="store_true", help="count the ops of one plain forward and one trace + "
                    "overview with torch.profiler after the timings (on CUDA also the kernel launches, copies and "
                    "synchronisations the host issues)")
    a = ap.parse_args()
    devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    global CLOCK
    for dev in devices:
        CLOCK = time.process_time if (a.clock == "cpu" and dev == "cpu") else time.perf_counter
        rows += bench(a.model, dev, [int(x) for x in a.ns.split(",")], a.repeats, a.lens_repeats, a.layer, a.head,
                      None if a.lens_ns is None else {int(x) for x in a.lens_ns.split(",")}, a.rounds,
                      a.count_ops)
    out = {"benchmark": "engine", "model": a.model, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "clock": a.clock,
           "machine": platform.machine(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "targets": {"decomposition_ratio_max": 1.5, "vocabulary_plus_anchored_s_at_128_cpu_max": 1.0,
                       "counterfactual_first_batch_s_at_128_cpu_max": 1.0}, "results": rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
