"""Sampled attention versus dense attention: what the analysis costs, and where sampling saves time.

Measured side by side in one run, per device (CPU, and the GPU when present), on MiniLM at n = 128 tokens:
* the model's dense forward pass (the project's attention function, and the same weights under SDPA);
* the full sampled-vs-dense report for every head (S = 8, k = 16) for every scheme, the downstream effect of
  scheme A, and the whole A report as the CLI runs it (capture + report + downstream);
* the attention core of one layer on the same Q, K, V: dense SDPA and dense eager beside each scheme, both
  as the library computes it for analysis (P̂ materialised, then P̂V) and as a direct output-only
  implementation (ô without P̂; for C, D and null it is checked against the library's P̂V).

Prints one JSON object as its last line. Usage:
    python benchmarks/bench_sampling.py [--model minilm] [--n 128] [--seeds 8] [--k 16] [--repeats 5]
                                        [--devices cpu,cuda] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from interp.loader import load_model  # noqa: E402
from interp.sampling import seeds as seeding  # noqa: E402
from interp.sampling.downstream import downstream_effect  # noqa: E402
from interp.sampling.report import sampling_report  # noqa: E402
from interp.sampling.schemes import SCHEMES, dense_flops, dense_scores, estimate, scheme_flops  # noqa: E402
from interp.trace import encode, forward, trace_text  # noqa: E402

BASE = ("the river bank was steep , so the fishermen walked along the old road to the bridge before dawn while "
        "the city slept and the sea was calm")


def text_of(lm, n_tokens: int) -> str:
    """A text that encodes to exactly ``n_tokens`` tokens (special tokens included)."""
    words = BASE.split()
    out: list[str] = []
    i = 0
    while True:
        cand = out + [words[i % len(words)]]
        n = len(lm.tokenizer(" ".join(cand))["input_ids"])
        if n > n_tokens:
            break
        out = cand
        i += 1
        if n == n_tokens:
            break
    return " ".join(out)


def timer(fn, device, repeats: int) -> dict:
    """Median and min wall seconds over ``repeats`` calls after one warm-up (CUDA synchronised)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times)}


# ----------------------------------------------------- output-only implementations (no P̂ materialised) ---

def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x: B×H×n×d, idx: B×H×n_q×t → B×H×n_q×t×d."""
    B, H, n, d = x.shape
    flat = x.reshape(B * H * n, d)
    base = (torch.arange(B * H, device=x.device) * n).view(B, H, 1, 1)
    return flat[(idx + base).reshape(-1)].view(*idx.shape, d)


def fast_a(q, k, v, u):
    p = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, -1)
    cdf = torch.cumsum(p, -1)
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True).clamp_max(k.shape[-2] - 1)
    return _gather(v, idx).mean(-2)


def fast_b_uniform(q, k, v, u):
    n = k.shape[-2]
    idx = (u * n).long().clamp_max(n - 1)
    s = (q[..., None, :] * _gather(k, idx)).sum(-1) * q.shape[-1] ** -0.5
    w = torch.softmax(s, -1)                    # the uniform proposal's log u is constant: it cancels
    return (w[..., None] * _gather(v, idx)).sum(-2)


def fast_b_vnorm(q, k, v, u):
    norms = v.norm(dim=-1)                                        # B×H×n
    prop = norms / norms.sum(-1, keepdim=True)
    cdf = torch.cumsum(prop, -1)[:, :, None, :].expand(*q.shape[:3], k.shape[-2]).contiguous()
    idx = torch.searchsorted(cdf, u * cdf[..., -1:], right=True).clamp_max(k.shape[-2] - 1)
    s = (q[..., None, :] * _gather(k, idx)).sum(-1) * q.shape[-1] ** -0.5
    logu = torch.log(prop).gather(-1, idx.flatten(2)).view_as(idx)
    w = torch.softmax(s - logu, -1)
    return (w[..., None] * _gather(v, idx)).sum(-2)


def fast_c(q, k, v, kk):
    s = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    top = torch.topk(s, min(kk, s.shape[-1]), dim=-1)
    w = torch.softmax(top.values, -1)
    return (w[..., None] * _gather(v, top.indices)).sum(-2)


def fast_d(q, k, v, omega):
    """Linear-time FAVOR+: ô = φ(Q)(φ(K)ᵀV) / φ(Q)(φ(K)ᵀ1); omega: B×H×m×d."""
    root = q.shape[-1] ** -0.25
    xq, xk = q * root, k * root
    a = xq @ omega.transpose(-1, -2) - 0.5 * (xq * xq).sum(-1, keepdim=True)
    b = xk @ omega.transpose(-1, -2) - 0.5 * (xk * xk).sum(-1, keepdim=True)
    pq = torch.exp(a - a.amax(-1, keepdim=True))
    pk = torch.exp(b - b.amax(dim=(-1, -2), keepdim=True))
    kv = pk.transpose(-1, -2) @ v                                # B×H×m×d
    z = pq @ pk.sum(-2)[..., None]                               # B×H×n×1
    return (pq @ kv) / z


def fast_e(q, k, v, h, u):
    p = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, -1)
    top = torch.topk(p, min(h, p.shape[-1]), dim=-1)
    exact = (top.values[..., None] * _gather(v, top.indices)).sum(-2)
    tail = p.scatter(-1, top.indices, 0.0)
    cdf = torch.cumsum(tail, -1)
    mass = cdf[..., -1:]
    idx = torch.searchsorted(cdf, u * mass, right=True).clamp_max(p.shape[-1] - 1)
    return exact + mass / u.shape[-1] * _gather(v, idx).sum(-2)


def fast_null(q, k, v):
    return v.mean(-2, keepdim=True).expand(*q.shape[:3], v.shape[-1])


# ------------------------------------------------------------------------------------------------ main ---

def bench_device(model: str, device: str, n_tokens: int, S: int, k: int, repeats: int) -> dict:
    dev = torch.device(device)
    lm = load_model(model, device=device)
    text = text_of(lm, n_tokens)
    enc = encode(lm, [text])
    n = enc.input_ids.shape[1]
    out: dict = {"device": device, "n_tokens": n, "seeds": S, "k": k, "model": lm.describe()}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)

    out["dense_forward"] = timer(lambda: forward(lm, enc), dev, repeats)
    try:
        from transformers import AutoModel
        sdpa = AutoModel.from_pretrained(str(lm.folder), attn_implementation="sdpa", use_safetensors=True,
                                         local_files_only=True, dtype=torch.float32).eval().to(dev)
        ids, am = enc.input_ids.to(dev), enc.attention_mask.to(dev)
        def run_sdpa():
            with torch.no_grad():
                sdpa(input_ids=ids, attention_mask=am)
        out["dense_forward_sdpa"] = timer(run_sdpa, dev, repeats)
    except Exception as err:  # pragma: no cover - informative only
        out["dense_forward_sdpa"] = {"error": f"{type(err).__name__}: {err}"}
    out["capture"] = timer(lambda: trace_text(lm, text), dev, repeats)
    trace = trace_text(lm, text)

    reports = {}
    for scheme in SCHEMES:
        reports[scheme] = timer(lambda s=scheme: sampling_report(lm, trace, s, k, S, 0, downstream=False), dev,
                                max(1, repeats // 2))
    out["report_heads_per_scheme"] = reports
    out["report_heads_all_schemes_s"] = sum(r["median_s"] for r in reports.values())
    out["downstream_A"] = timer(lambda: downstream_effect(lm, enc, "A", k, S, 0), dev, max(1, repeats // 2))
    out["full_report_A"] = timer(lambda: sampling_report(lm, trace_text(lm, text), "A", k, S, 0, downstream=True),
                                 dev, max(1, repeats // 2))
    out["target_full_report_s"] = 3.0

    # attention core of layer 0 on the model's own Q, K, V
    lt = trace.layers[0]
    q, kk, v = (t[None].contiguous() for t in (lt.q, lt.k, lt.v))
    H, d = q.shape[1], q.shape[-1]
    scale = d ** -0.5
    valid = torch.ones(1, 1, n, n, dtype=torch.bool, device=dev)
    probs = lt.probs[None]
    scores = dense_scores(q, kk, valid, scale)
    core: dict = {"shape": [1, H, n, d]}
    core["dense_sdpa"] = timer(lambda: torch.nn.functional.scaled_dot_product_attention(q, kk, v), dev, repeats * 20)
    core["dense_eager"] = timer(lambda: torch.softmax(q @ kk.transpose(-1, -2) * scale, -1) @ v, dev, repeats * 20)
    g = lambda s=0: seeding.generator(0, "bench", 0, s)  # noqa: E731
    u = torch.rand((H, n, k), generator=g()).to(dev)[None]
    omega = torch.randn((H, k, d), generator=g()).to(dev)[None]

    def library(scheme, seeds):
        def fn():
            gens = [[g(s)] for s in range(seeds)]
            sc = dense_scores(q, kk, valid, scale)
            w = estimate(scheme, q, kk, v, sc, torch.softmax(sc, -1), valid, [n], gens, k, None, None, scale).weights
            return w @ v[None]
        return fn

    fast = {"A": lambda: fast_a(q, kk, v, u), "B-uniform": lambda: fast_b_uniform(q, kk, v, u),
            "B-vnorm": lambda: fast_b_vnorm(q, kk, v, u), "C": lambda: fast_c(q, kk, v, k),
            "D": lambda: fast_d(q, kk, v, omega), "E": lambda: fast_e(q, kk, v, k, u), "null": lambda: fast_null(q, kk, v)}
    checks = {}
    for scheme in SCHEMES:
        row = {"library_S1": timer(library(scheme, 1), dev, repeats * 4),
               "library_S8": timer(library(scheme, S), dev, repeats * 2),
               "output_only": timer(fast[scheme], dev, repeats * 20)}
        row["flops_ratio"] = scheme_flops(scheme, n, n, d, k, k, k) / dense_flops(n, n, d)
        row["output_only_vs_sdpa"] = row["output_only"]["median_s"] / core["dense_sdpa"]["median_s"]
        core[scheme] = row
    # the output-only paths compute the same estimator: check the deterministic ones (and D with the same ω)
    lib1 = {s: estimate(s, q, kk, v, scores, probs, valid, [n], [[g()]], k, None, None, scale).weights[0] @ v
            for s in ("C", "D", "null", "A", "E")}
    checks["C"] = float((fast["C"]() - lib1["C"]).abs().max())
    checks["null"] = float((fast["null"]() - lib1["null"]).abs().max())
    checks["D"] = float((fast["D"]() - lib1["D"]).abs().max())
    checks["A"] = float((fast["A"]() - lib1["A"]).abs().max())
    checks["E"] = float((fast["E"]() - lib1["E"]).abs().max())
    core["output_only_max_abs_diff_vs_library"] = checks
    out["attention_core_layer0"] = core
    layer_flops = 24 * n * (H * d) ** 2 + 4 * n * n * H * d           # QKVO + FFN (4d) ≈ 24·n·d², attention 4n²d
    out["amdahl_attention_core_share_of_layer_flops"] = 4 * n * n * H * d / layer_flops
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--devices", default=None, help="comma-separated (default: cpu, and cuda when present)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {"benchmark": "sampling", "torch": torch.__version__, "python": platform.python_version(),
              "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
              "runs": []}
    import transformers
    result["transformers"] = transformers.__version__
    for device in devices:
        result["runs"].append(bench_device(args.model, device, args.n, args.seeds, args.k, args.repeats))
    def finite(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list):
            return [finite(v) for v in x]
        return x
    print(json.dumps(finite(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
