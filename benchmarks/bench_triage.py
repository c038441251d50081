"""Triage benchmark: throughput against plain batched forward passes of the same inputs, and memory on a large log.

1. Throughput, side by side in one process: the forward passes the scores need (one dense pass per input plus
   S passes of the input replicated S times, plain dense attention, same batches as triage) against the whole
   triage (reading, scoring with S seeds of the sampled scheme, storage, finalisation). ``--rounds`` rounds in
   alternating order; throughput ratio = median over rounds of forward passes / triage (target ≥ 0.8 on one GPU in
   one process: triage runs at 80% of the forward-pass rate); overhead = that ratio's inverse − 1, in wall time
   and, for one process, in this process's CPU time (robust to other load on a shared machine). Targets: ≥ 20 inputs/s with
   MiniLM, S = 4, n ≤ 64 on 2 CPU cores; ≥ 2,000 inputs/s on one H100.
2. Memory: a generated log of ``--big-lines`` lines (default 1,000,000). (a) the reader alone streams the whole
   file; (b) the triage command runs on it with ``--limit``/``--time-budget``. Each runs in its own process whose
   resident memory is sampled over time (/proc: VmRSS, and VmHWM for the peak); flat = the second half of the
   samples is no higher than the first half by more than a few MB.

    python benchmarks/bench_triage.py [--model minilm] [--device cpu|cuda] [--batch-size 32] [--inputs 256]
        [--seeds 4] [--k 8] [--scheme A] [--rounds 4] [--workers 1,8] [--big-lines 1000000] [--big-limit 2000] [--big-budget 90]
        [--skip-memory] [--ray --ray-inputs 400 --ray-workers 1 --gpus-per-worker 0]

3. With ``--ray``: the local engine against the Ray engine on the same log, side by side (Ray's overhead).

Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_of(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    cur = peak = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def watch(cmd: list[str], interval: float, env=None) -> dict:
    """Run ``cmd``, sampling its RSS every ``interval`` seconds; returns samples, peak and timing."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples, peak = [], 0.0
    out = {"stdout": "", "stderr": ""}

    def drain(name, stream):
        out[name] = stream.read()
    threads = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for t in threads:
        t.start()
    while proc.poll() is None:
        cur, hwm = rss_of(proc.pid)
        if cur:
            samples.append((round(time.perf_counter() - t0, 2), round(cur, 1)))
            peak = max(peak, hwm, cur)
        time.sleep(interval)
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    vals = [v for _, v in samples]
    half = len(vals) // 2
    steady = vals[max(1, len(vals) // 5):]        # after start-up (imports, model load)
    sh = len(steady) // 2
    return {"returncode": proc.returncode, "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1),
            "rss_samples_mb": samples[:: max(1, len(samples) // 40)],
            "rss_first_half_mean_mb": round(statistics.mean(steady[:sh]), 1) if sh else None,
            "rss_second_half_mean_mb": round(statistics.mean(steady[sh:]), 1) if sh else None,
            "rss_growth_mb": round(statistics.mean(steady[sh:]) - statistics.mean(steady[:sh]), 1) if sh else None,
            "stderr_tail": out["stderr"][-600:], "stdout_tail": out["stdout"][-2000:], "samples": len(vals),
            "_half": half}


# ------------------------------------------------------------------------------------------- throughput ---

def batches_like_triage(texts: list[str], batch: int, window_batches: int = 4) -> list[list[str]]:
    """The batches the runner forms: windows of ``batch × window_batches`` records, sorted by length."""
    out = []
    w = batch * window_batches
    for i in range(0, len(texts), w):
        win = sorted(range(i, min(len(texts), i + w)), key=lambda j: (len(texts[j]), j))
        for s in range(0, len(win), batch):
            out.append([texts[j] for j in win[s:s + batch]])
    return out


def forward_passes(lm, batches: list[list[str]], seeds: int, sync) -> float:
    """Plain forward passes the scores need: per batch, one dense pass and one pass of the batch replicated S
    times (dense attention: what the sampled passes cost without the sampling)."""
    from interp.sampling.downstream import replicate
    from interp.trace import encode, forward
    t = time.perf_counter()
    for texts in batches:
        enc = encode(lm, texts)
        forward(lm, enc)
        forward(lm, replicate(enc, seeds))
    sync()
    return time.perf_counter() - t


def ops_per_batch(lm, texts: list[str], settings, seeds: int, max_rows) -> dict:
    """Operator calls (each one a kernel launch or more on a GPU) and host–device waits of one triage scoring
    batch (prepared rows → scored rows, ``runner.score_rows``) and of the plain forward passes of the same batch,
    counted with torch.profiler. ``item`` counts ``.item()``/``.tolist()``-style scalar reads; on a GPU the CUDA
    runtime's launches, synchronisations and copies are counted too."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from interp.triage import ColumnMapping
    from interp.triage.readers import RawRecord
    from interp.triage.runner import prepare_many, score_rows
    cuda = lm.device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)

    def rows():
        return prepare_many([RawRecord(i, i + 1, {"text": t}) for i, t in enumerate(texts)], ColumnMapping("text"),
                            lm, settings.mask_policy, "truncate")

    def count(fn) -> dict:
        fn()
        sync()
        with profile(activities=acts) as prof:
            fn()
            sync()
        ev = {e.key: e.count for e in prof.key_averages()}
        out = {"aten_ops": sum(c for k, c in ev.items() if k.startswith("aten::")),
               "scalar_reads": ev.get("aten::_local_scalar_dense", 0)}
        if cuda:
            out["kernel_launches"] = sum(c for k, c in ev.items() if k in ("cudaLaunchKernel", "cuLaunchKernel",
                                                                          "cudaLaunchKernelExC", "cuLaunchKernelEx"))
            out["synchronisations"] = sum(c for k, c in ev.items() if k in (
                "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"))
            out["memcpy_calls"] = sum(c for k, c in ev.items() if k.startswith("cudaMemcpy"))
        return out

    def triage_batch():
        todo = [r for r in rows() if r.get("text") is not None]
        score_rows(lm, todo, settings, len(todo), max_rows)
    return {"batch": len(texts), "triage": count(triage_batch),
            "forward_passes": count(lambda: forward_passes(lm, [texts], seeds, sync))}


def throughput(args) -> dict:
    import torch

    from interp.loader import load_model
    from interp.trace import encode
    from interp.triage import ColumnMapping, ScoreSettings, run_triage
    from interp.triage.demo import generate_log

    lm = load_model(args.model, device=args.device)
    dev = lm.device
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-"))
    path = generate_log(tmp / "log.jsonl", args.inputs, seed=1, min_words=args.min_words, max_words=args.max_words,
                        mask_prob=args.mask_prob)
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
    lengths = [int(x) for x in encode(lm, texts).attention_mask.sum(1)]
    log(f"{len(texts)} inputs, tokens mean {statistics.mean(lengths):.1f}, max {max(lengths)} · {lm.describe()}")
    batches = batches_like_triage(texts, args.batch_size)
    settings = ScoreSettings(args.scheme, args.k, args.seeds, 0)
    mapping = ColumnMapping("text", id="id")
    # warm-up both paths (allocator, kernels, lazy imports)
    forward_passes(lm, batches[:2], args.seeds, sync)
    run_triage(path, tmp / "warm", args.model, mapping, settings, lm=lm, batch_size=args.batch_size, limit=
               2 * args.batch_size, max_rows=args.max_rows)
    workers = [int(w) for w in str(args.workers).split(",")]
    base, base_cpu = [], []
    tri, tri_cpu, steady = ({w: [] for w in workers} for _ in range(3))

    def run_forward(r):
        c, t = time.process_time(), time.perf_counter()
        forward_passes(lm, batches, args.seeds, sync)
        base.append(time.perf_counter() - t)
        base_cpu.append(time.process_time() - c)
        log(f"round {r}: forward passes {base[-1]:.2f}s wall, {base_cpu[-1]:.2f}s CPU "
            f"({len(texts) / base[-1]:.1f} inputs/s)")

    def run_triage_with(r, w):
        marks = []

        def mark(p):
            if p.analysed and not p.done:
                marks.append((time.perf_counter(), p.analysed))
        c, t = time.process_time(), time.perf_counter()
        s = run_triage(path, tmp / f"run{r}w{w}", args.model, mapping, settings, lm=lm, batch_size=args.batch_size,
                       max_rows=args.max_rows, workers=w, device=args.device, progress=mark, progress_every=0.0)
        sync()
        tri[w].append(time.perf_counter() - t)
        tri_cpu[w].append(time.process_time() - c)
        assert s["analysed"] == len(texts), s
        if len(marks) >= 2:      # after the first finished window: worker start-up excluded
            steady[w].append((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]))
        log(f"round {r}: triage with {w} worker(s) {tri[w][-1]:.2f}s wall, {tri_cpu[w][-1]:.2f}s CPU in this "
            f"process ({len(texts) / tri[w][-1]:.1f} inputs/s; steady {steady[w][-1] if steady[w] else float('nan'):.1f}/s)")

    for r in range(args.rounds):          # alternate the order, so that drifting load on a shared machine cancels
        if r % 2 == 0:
            run_forward(r)
            for w in workers:
                run_triage_with(r, w)
        else:
            for w in reversed(workers):
                run_triage_with(r, w)
            run_forward(r)
    b = statistics.median(base)
    ops = ops_per_batch(lm, batches[0], settings, args.seeds, args.max_rows)
    log(f"one batch of {ops['batch']}: triage {ops['triage']}, forward passes {ops['forward_passes']}")
    target = 2000.0 if dev.type == "cuda" else 20.0
    runs = {}
    for w in workers:
        t = statistics.median(tri[w])
        ratios = [x / y for x, y in zip(tri[w], base)]
        runs[str(w)] = {"triage_seconds": round(t, 3), "triage_inputs_per_second": round(len(texts) / t, 1),
                        "throughput_ratio": round(1 / statistics.median(ratios), 3),
                        "throughput_ratio_ok": 1 / statistics.median(ratios) >= 0.8,
                        "overhead": round(statistics.median(ratios) - 1, 3),
                        "overhead_ok": statistics.median(ratios) - 1 <= 0.5,
                        "inputs_per_second_ok": len(texts) / t >= target, "rounds": [round(x, 3) for x in tri[w]],
                        "steady_inputs_per_second": round(statistics.median(steady[w]), 1) if steady[w] else None}
        if w == 1:
            cpu_ratios = [x / y for x, y in zip(tri_cpu[w], base_cpu)]
            runs[str(w)]["overhead_cpu_time"] = round(statistics.median(cpu_ratios) - 1, 3)
            runs[str(w)]["cpu_rounds"] = [round(x, 3) for x in tri_cpu[w]]
    best = max(runs.values(), key=lambda x: x["triage_inputs_per_second"])
    return {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
            platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "model": lm.name, "model_info": lm.describe(), "scheme": args.scheme, "k": args.k, "seeds": args.seeds,
            "batch_size": args.batch_size, "max_rows": args.max_rows or args.batch_size * args.seeds,
            "inputs": len(texts), "tokens_mean": round(statistics.mean(lengths), 1), "tokens_max": max(lengths),
            "forward_passes_needed_per_input": 1 + args.seeds, "forward_passes_run_per_input": 1 + args.seeds,
            "forward_seconds": round(b, 3), "forward_inputs_per_second": round(len(texts) / b, 1),
            "forward_rounds": [round(x, 3) for x in base], "forward_cpu_rounds": [round(x, 3) for x in base_cpu],
            "triage_by_workers": runs, "best_triage_inputs_per_second": best["triage_inputs_per_second"],
            "ops_per_batch": ops,
            "overhead_target": 0.5, "inputs_per_second_target": target}


# ------------------------------------------------------------------------------------------ Ray overhead ---

def ray_overhead(args) -> dict:
    """Local engine against the Ray engine (a local Ray instance on this machine's cores), same log, same
    settings, side by side: wall seconds each, Ray's overhead = ray / local − 1 (start-up, staging and actor
    model load included), and whether the results are identical (every score to 1e-6)."""
    import numpy as np
    import pyarrow.parquet as pq

    from interp.loader import load_model
    from interp.triage import ColumnMapping, ScoreSettings, run_triage
    from interp.triage.demo import generate_log
    lm = load_model(args.model, device=args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-ray-"))
    path = generate_log(tmp / "log.jsonl", args.ray_inputs, seed=3, min_words=args.min_words,
                        max_words=args.max_words, mask_prob=args.mask_prob)
    settings = ScoreSettings(args.scheme, args.k, args.seeds, 0)
    mapping = ColumnMapping("text", id="id")
    out = {}
    for engine in ("local", "ray"):
        t = time.perf_counter()
        s = run_triage(path, tmp / engine, args.model, mapping, settings, lm=lm, batch_size=args.batch_size,
                       engine=engine, workers=args.ray_workers if engine == "ray" else 1,
                       gpus_per_worker=args.gpus_per_worker if engine == "ray" else 0.0, device=args.device)
        out[engine] = {"seconds": round(time.perf_counter() - t, 2), "analysed": s["analysed"]}
        log(f"{engine}: {out[engine]['seconds']}s for {s['lines_total']} lines")
    a = pq.read_table(tmp / "local" / "results.parquet").to_pandas()
    b = pq.read_table(tmp / "ray" / "results.parquet").to_pandas()
    same = bool((a["status"] == b["status"]).all() and np.allclose(a["suspicion"].astype(float),
                                                                   b["suspicion"].astype(float), atol=1e-6, rtol=1e-5,
                                                                   equal_nan=True))
    return {"inputs": args.ray_inputs, **out, "ray_overhead": round(out["ray"]["seconds"] /
                                                                    out["local"]["seconds"] - 1, 3),
            "identical_results": same, "ray_workers": args.ray_workers}


# ----------------------------------------------------------------------------------------------- memory ---

def reader_pass(path: str) -> None:
    """(Subprocess) stream the whole log through the reader, recording this process's RSS every 50,000 records:
    flat RSS against records read is the evidence that reading memory does not grow with the file."""
    from interp.triage.readers import LogReader
    t = time.perf_counter()
    n = good = 0
    trace = [(0, round(rss_of(os.getpid())[0], 1))]
    for rec in LogReader(path):
        n += 1
        good += rec.fields is not None and isinstance(rec.fields.get("text"), str)
        if n % 50_000 == 0:
            trace.append((n, round(rss_of(os.getpid())[0], 1)))
    trace.append((n, round(rss_of(os.getpid())[0], 1)))
    print(json.dumps({"records": n, "with_text": good, "seconds": round(time.perf_counter() - t, 2),
                      "records_per_second": round(n / (time.perf_counter() - t)),
                      "rss_mb_by_records": trace, "peak_rss_mb": round(rss_of(os.getpid())[1], 1)}))


def triage_pass(args) -> None:
    """(Subprocess) triage the big log with a limit / time budget, recording this process's RSS against the lines
    processed (every progress report), then the peak (VmHWM) including the final DuckDB ranking."""
    from interp.triage import ColumnMapping, ScoreSettings, run_triage
    trace = []

    def progress(p):
        trace.append((p.lines, round(p.elapsed, 1), round(rss_of(os.getpid())[0], 1)))
    mapping = ColumnMapping("text", id="id", timestamp="ts", slices=("region",))
    s = run_triage(args.triage_pass, args.out, args.model, mapping,
                   ScoreSettings(args.scheme, args.k, args.seeds, 0), device=args.device, limit=args.big_limit,
                   time_budget=args.big_budget, batch_size=args.batch_size, progress=progress, progress_every=2.0,
                   flush_rows=512, max_rows=args.max_rows, workers=int(str(args.workers).split(",")[-1]))
    scoring = [r for _, _, r in trace[:-1]]
    warm = scoring[len(scoring) // 4:]                     # after the first quarter (model load, warm-up)
    half = len(warm) // 2
    print(json.dumps({"lines": s["lines_total"], "analysed": s["analysed"], "stopped": s["stopped"],
                      "inputs_per_second": s["inputs_per_second"], "rss_mb_by_lines": trace,
                      "rss_scoring_first_half_mb": round(statistics.mean(warm[:half]), 1) if half else None,
                      "rss_scoring_second_half_mb": round(statistics.mean(warm[half:]), 1) if half else None,
                      "peak_rss_mb": round(rss_of(os.getpid())[1], 1)}))


def memory(args) -> dict:
    from interp.triage.demo import generate_log
    tmp = Path(tempfile.mkdtemp(prefix="bench-triage-big-"))
    t = time.perf_counter()
    path = generate_log(tmp / "big.jsonl", args.big_lines, seed=2, min_words=args.min_words,
                        max_words=args.max_words, mask_prob=args.mask_prob)
    size = path.stat().st_size
    log(f"generated {args.big_lines:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]]
                                                                       if os.environ.get("PYTHONPATH") else [])))
    rd = watch([sys.executable, __file__, "--_reader-pass", str(path)], 0.25, env)
    log(f"reader over all lines: {rd['seconds']}s, peak RSS {rd['peak_rss_mb']} MB")
    cmd = [sys.executable, __file__, "--_triage-pass", str(path), "--out", str(tmp / "out"), "--model", args.model,
           "--seeds", str(args.seeds), "--k", str(args.k), "--scheme", args.scheme,
           "--batch-size", str(args.batch_size), "--big-budget", str(args.big_budget or 0)]
    if args.big_limit:
        cmd += ["--big-limit", str(args.big_limit)]
    if args.device:
        cmd += ["--device", args.device]
    if args.max_rows:
        cmd += ["--max-rows", str(args.max_rows)]
    cmd += ["--workers", "1"]          # one process: its RSS is the whole footprint
    tr = watch(cmd, 0.5, env)
    inner = json.loads(tr["stdout_tail"].strip().splitlines()[-1]) if tr["returncode"] == 0 else {}
    log(f"triage on the big log: {inner.get('lines')} lines in {tr['seconds']}s, peak RSS {tr['peak_rss_mb']} MB")
    for r in (rd, tr):
        r.pop("_half", None)
    rd["result"] = json.loads(rd.pop("stdout_tail").strip().splitlines()[-1]) if rd["returncode"] == 0 else None
    tr.pop("stdout_tail", None)
    tr["result"] = inner
    return {"log_lines": args.big_lines, "log_bytes": size, "reader_full_pass": rd, "triage": tr,
            "peak_rss_mb": max(rd["peak_rss_mb"], tr["peak_rss_mb"]),
            "under_2gb": max(rd["peak_rss_mb"], tr["peak_rss_mb"]) < 2048}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-rows", type=int, default=None, help="rows per sampled pass (default batch × seeds)")
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--scheme", default="A")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--workers", default="1", help="comma-separated worker counts to measure, e.g. 1,8")
    p.add_argument("--min-words", type=int, default=4)
    p.add_argument("--max-words", type=int, default=30, help="at most 30 words: n ≤ 64 tokens with MiniLM")
    p.add_argument("--mask-prob", type=float, default=0.5)
    p.add_argument("--big-lines", type=int, default=1_000_000)
    p.add_argument("--big-limit", type=int, default=None)
    p.add_argument("--big-budget", type=float, default=90.0)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--ray", action="store_true", help="also measure the Ray engine against the local one")
    p.add_argument("--ray-inputs", type=int, default=400)
    p.add_argument("--ray-workers", type=int, default=1)
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--_reader-pass", dest="reader_pass", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_triage-pass", dest="triage_pass", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.reader_pass:
        reader_pass(args.reader_pass)
        return 0
    if args.triage_pass:
        args.big_budget = args.big_budget or None
        triage_pass(args)
        return 0
    result = {"benchmark": "triage", "python": platform.python_version(), "cpus": os.cpu_count()}
    if not args.skip_throughput:
        result["throughput"] = throughput(args)
    if args.ray:
        result["ray"] = ray_overhead(args)
    if not args.skip_memory:
        result["memory"] = memory(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
