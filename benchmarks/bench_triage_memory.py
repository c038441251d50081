"""Triage memory on a large log, both engines: a generated log of ``--lines`` lines (default 1,000,000) streamed
through the local engine and through Ray (a local Ray instance on this machine), each run in a child process
whose memory — together with every process it starts (Ray's GCS, raylet, workers and actors) — is sampled over
time.

Memory of a process tree = the sum of PSS (/proc/PID/smaps_rollup: shared pages such as Ray's object store are
split between the processes that map them, so the sum is not inflated); RSS summed is reported too. Lines come
from the run's own progress callback: the local engine reports lines read; the Ray engine first stages every
line (driver: read, cut, dedupe; reported as lines read) and then scores them (reported as the share scored,
turned into lines here), so Ray's timeline has two phases.

Reported per engine and size: peak memory (MB, start-up and finalisation included), and the slope of memory
against lines while streaming (MB per 100,000 lines, least squares over the second half of the samples taken
strictly between the first and the last line; None when the progress gives too few distinct line counts, as
too short a phase). With two sizes (``--lines N,2N``)
also the growth of the peak from N to 2N, the robust figure for both engines. Flat = slope within a few MB per
100k lines and peak growth small against the peak.

    python benchmarks/bench_triage_memory.py [--lines 1000000] [--engines local,ray] [--model tiny|NAME]
        [--device cpu|cuda] [--batch-size 64] [--seeds 2] [--k 4] [--interval 1.0]

``--model tiny`` (default): the random 2-layer BERT of tests/engine_fixtures.py (memory, not model quality, is
measured); any registry name or model folder works too. Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
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


# --- process-tree memory --------------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem_of(pid: int) -> dict:
    """PSS (all, anonymous, shared memory such as Ray's object store) and RSS of one process, in MB."""
    out = {"pss": 0.0, "anon": 0.0, "shmem": 0.0, "rss": 0.0}
    names = {"Pss:": "pss", "Pss_Anon:": "anon", "Pss_Shmem:": "shmem", "Rss:": "rss"}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = names.get(line.split(":")[0] + ":")
                if key:
                    out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def name_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def tree_mem(pid: int) -> dict:
    """Sums over the tree rooted at ``pid``: PSS, its anonymous and shared-memory parts, RSS, the number of
    processes, and PSS by process name."""
    tot = {"pss": 0.0, "anon": 0.0, "shmem": 0.0, "rss": 0.0, "processes": 0, "by_name": {}}
    for p in tree(pid):
        m = mem_of(p)
        for k in ("pss", "anon", "shmem", "rss"):
            tot[k] += m[k]
        tot["processes"] += 1
        n = name_of(p)
        tot["by_name"][n] = round(tot["by_name"].get(n, 0.0) + m["pss"], 1)
    return tot


def slope_per_100k(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys against xs over the second half of the points, in MB per 100,000 lines."""
    n = len(xs)
    if n < 4:
        return None
    xs, ys = xs[n // 2:], ys[n // 2:]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    return round(1e5 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx, 3)


# --- the child: one triage run, progress on stdout -------------------------------------------------------------

def child(args) -> int:
    from interp.triage import ColumnMapping, ScoreSettings, run_triage
    model = args.model
    if model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from engine_fixtures import model_folder
        model = str(model_folder("bert", True, 0, initializer_range=0.3))
    n = args.lines_one

    def progress(p):
        print(json.dumps({"t": round(time.perf_counter(), 3), "lines": p.lines, "fraction": p.fraction,
                          "done": p.done}), flush=True)
    s = run_triage(args.log, args.out, model, ColumnMapping("text", id="id"),
                   ScoreSettings(k=args.k, seeds=args.seeds, seed=0), device=args.device, batch_size=args.batch_size,
                   limit=n, progress=progress, progress_every=args.interval, engine=args.engine_one, workers=1,
                   flush_rows=args.flush_rows, restart=True,
                   # a Ray actor sees a GPU only when it asks for one
                   gpus_per_worker=1.0 if args.engine_one == "ray" and (args.device or "").startswith("cuda")
                   else 0.0)
    print(json.dumps({"summary": {k: s[k] for k in ("lines_total", "analysed", "skipped", "failed", "seconds",
                                                    "lines_per_second")}}), flush=True)
    return 0


def analyse(engine: str, lines: int, samples: list[dict], finished: bool = True) -> dict:
    """The per-phase figures of one run from its memory samples (see the module docstring); the time-
    interpolated cross-check only for a finished run."""
    phases = {}
    for ph in ("read", "score"):
        # streaming samples only: after the first lines and before the last (start-up and the finalisation,
        # which reads the finished run back, are reported in the peak, not in the slope)
        pts = [s for s in samples if s["phase"] == ph and 0 < s["lines"] < lines]
        if pts:     # the samples at the last line count read are the last window's scoring and the finalisation
            top = max(s["lines"] for s in pts)
            pts = [s for s in pts if s["lines"] < top] or pts
        if engine == "ray" and ph == "read":        # staging: the driver alone, before Ray starts
            pts = [s for s in pts if s["processes"] == 1]
        if pts:
            xs = [p["lines"] for p in pts]
            phases[ph] = {"samples": len(pts),
                          "slope_mb_per_100k_lines": slope_per_100k(xs, [p["pss_mb"] for p in pts]),
                          "slope_anon_mb_per_100k_lines": slope_per_100k(xs, [p["anon_mb"] for p in pts]),
                          "slope_driver_mb_per_100k_lines": slope_per_100k(xs, [p["driver_mb"] for p in pts]),
                          "peak_pss_mb": max(p["pss_mb"] for p in pts),
                          "first_pss_mb": pts[0]["pss_mb"], "last_pss_mb": pts[-1]["pss_mb"]}
            # growth within the run: the peak over the first and over the last tenth of the lines covered
            lo, hi = min(xs), max(xs)
            if hi > lo:
                tenth = (hi - lo) / 10
                for key, sel in (("pss_mb", "pss"), ("actors_mb", "actor"), ("driver_mb", "driver")):
                    if engine != "ray" and key == "actors_mb":
                        continue
                    a = [p[key] for p in pts if p["lines"] <= lo + tenth]
                    b = [p[key] for p in pts if p["lines"] >= hi - tenth]
                    phases[ph][f"{sel}_peak_first_last_tenth_mb"] = [max(a), max(b)]
            if engine == "ray" and ph == "score":
                phases[ph]["slope_actor_mb_per_100k_lines"] = slope_per_100k(xs, [p["actors_mb"] for p in pts])
                phases[ph]["actor_mb_first_last_max"] = [pts[0]["actors_mb"], pts[-1]["actors_mb"],
                                                         max(p["actors_mb"] for p in pts)]
    # Ray's scoring progress comes per batch of task-sized output (``phases.score``: against lines scored); a
    # cross-check that needs no progress: with a steady scoring rate, lines scored ≈ lines × (time since the
    # actors started) / (scoring time): the slope against those interpolated lines, over the second half of
    # the scoring samples.
    scoring = [s for s in samples if s["actors_mb"] > 0]
    if engine == "ray" and finished and len(scoring) >= 4:
        ta, tb = scoring[0]["t"], scoring[-1]["t"]
        xs = [lines * (s["t"] - ta) / max(1e-9, tb - ta) for s in scoring]
        phases["score_time_interpolated"] = {
            "samples": len(scoring), "seconds": round(tb - ta, 1),
            "slope_mb_per_100k_lines": slope_per_100k(xs, [s["pss_mb"] for s in scoring]),
            "slope_anon_mb_per_100k_lines": slope_per_100k(xs, [s["anon_mb"] for s in scoring]),
            "slope_shmem_mb_per_100k_lines": slope_per_100k(xs, [s["shmem_mb"] for s in scoring]),
            "slope_driver_mb_per_100k_lines": slope_per_100k(xs, [s["driver_mb"] for s in scoring]),
            "slope_actor_mb_per_100k_lines": slope_per_100k(xs, [s["actors_mb"] for s in scoring]),
            "pss_by_process_mid": scoring[len(scoring) // 2]["by_name"], "pss_by_process_last": scoring[-1]["by_name"]}
    return phases


def watch_run(args, engine: str, lines: int, path: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", "--log", str(path), "--out", str(out), "--engine-one", engine,
           "--lines-one", str(lines), "--model", args.model, "--batch-size", str(args.batch_size), "--seeds",
           str(args.seeds), "--k", str(args.k), "--interval", str(args.interval), "--flush-rows",
           str(args.flush_rows)] + (["--device", args.device] if args.device else [])
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = {"lines": 0, "fraction": 0.0, "phase": "read", "summary": None, "err": ""}

    def read_stdout():
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "summary" in msg:
                state["summary"] = msg["summary"]
                continue
            if engine == "ray" and msg["lines"] >= lines and (msg["fraction"] or 0) > 0:
                state["phase"] = "score"
                state["lines"] = int(round((msg["fraction"] or 0) * lines))
            else:
                state["lines"] = msg["lines"]
            state["fraction"] = msg["fraction"]

    def read_stderr():
        state["err"] = proc.stderr.read()
    threads = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in threads:
        t.start()
    samples = []
    partial = open(args.partial, "a") if args.partial else None
    while proc.poll() is None:
        m = tree_mem(proc.pid)
        if m["pss"]:
            samples.append({"t": round(time.perf_counter() - t0, 2), "phase": state["phase"], "lines": state["lines"],
                            "pss_mb": round(m["pss"], 1), "anon_mb": round(m["anon"], 1),
                            "shmem_mb": round(m["shmem"], 1), "rss_mb": round(m["rss"], 1),
                            "processes": m["processes"], "by_name": m["by_name"],
                            "driver_mb": round(mem_of(proc.pid)["pss"], 1),
                            "actors_mb": round(sum(v for k, v in m["by_name"].items()
                                                   if k.startswith("ray::MapWorker")), 1)})
            if partial is not None:          # the samples so far survive an interrupted or unfinished run
                partial.write(json.dumps({"engine": engine, "run_lines": lines, **samples[-1]}) + "\n")
                partial.flush()
        time.sleep(args.interval)
    if partial is not None:
        partial.close()
    for t in threads:
        t.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed ({proc.returncode}): {state['err'][-2000:]}")
    phases = analyse(engine, lines, samples)
    for s in samples:
        s.pop("by_name", None)
    return {"engine": engine, "lines": lines, "seconds": round(time.perf_counter() - t0, 1),
            "summary": state["summary"], "peak_pss_mb": max((s["pss_mb"] for s in samples), default=None),
            "peak_rss_mb": max((s["rss_mb"] for s in samples), default=None),
            "max_processes": max((s["processes"] for s in samples), default=0), "phases": phases,
            "timeline": samples[:: max(1, len(samples) // 60)]}


def from_partial(path: str) -> int:
    """Figures from a ``--partial`` file: per run (engine, lines), the peak, the samples' span and the phases'
    slopes over the samples taken so far; a run stopped early is marked ``finished: false`` (its lines are how
    far it got)."""
    runs: dict = {}
    done = set()
    with open(path) as f:
        for line in f:
            msg = json.loads(line)
            if "run" in msg:
                done.add((msg["run"]["engine"], msg["run"]["lines"]))
                continue
            runs.setdefault((msg["engine"], msg["run_lines"]), []).append(msg)
    out = []
    for (engine, lines), samples in runs.items():
        samples.sort(key=lambda s: s["t"])
        out.append({"engine": engine, "lines": lines, "finished": (engine, lines) in done,
                    "lines_reached": max(s["lines"] for s in samples),
                    "phase_reached": samples[-1]["phase"], "seconds": samples[-1]["t"],
                    "peak_pss_mb": max(s["pss_mb"] for s in samples),
                    "max_processes": max(s["processes"] for s in samples),
                    "phases": analyse(engine, lines, samples, (engine, lines) in done)})
    print(json.dumps({"benchmark": "triage_memory", "from_partial": path, "runs": out}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", default="1000000", help="comma-separated sizes (default 1000000; e.g. 20000,40000)")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--flush-rows", type=int, default=2048)
    ap.add_argument("--workdir", default=None, help="where the log and runs go (default: a temporary folder)")
    ap.add_argument("--partial", default=None,
                    help="append every memory sample (JSON lines) and every finished run's result to this file "
                         "as the benchmark goes, so that a run stopped early still leaves its figures")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--engine-one", help=argparse.SUPPRESS)
    ap.add_argument("--lines-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--from-partial", default=None, metavar="FILE",
                    help="print the figures of the runs in a --partial file (finished or not) and exit")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if args.from_partial:
        return from_partial(args.from_partial)
    sizes = sorted({int(x) for x in args.lines.split(",") if x.strip()})
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "ray" in engines:
        from interp.triage.ray_engine import RAY_MISSING, ray_available
        if not ray_available():
            log(RAY_MISSING + " — measuring the local engine only")
            engines = [e for e in engines if e != "ray"]
    from interp.triage.demo import generate_log
    work = Path(args.workdir or tempfile.mkdtemp(prefix="expertlens-triage-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"log-{max(sizes)}.jsonl"
    if not path.exists():
        log(f"generating {max(sizes):,} lines …")
        generate_log(path, max(sizes), seed=0)
    runs = []
    for engine in engines:
        for n in sizes:
            log(f"{engine}: {n:,} lines …")
            r = watch_run(args, engine, n, path, work / f"run-{engine}-{n}")
            log(f"  peak PSS {r['peak_pss_mb']} MB, phases {json.dumps(r['phases'])}, {r['seconds']} s")
            runs.append(r)
            if args.partial:
                with open(args.partial, "a") as f:
                    f.write(json.dumps({"run": {k: v for k, v in r.items() if k != "timeline"}}) + "\n")
    growth = {}
    for engine in engines:
        rs = [r for r in runs if r["engine"] == engine]
        if len(rs) >= 2:
            a, b = rs[0], rs[-1]
            growth[engine] = {"from_lines": a["lines"], "to_lines": b["lines"],
                              "peak_growth_mb": round(b["peak_pss_mb"] - a["peak_pss_mb"], 1),
                              "peak_growth_mb_per_100k_lines": round(1e5 * (b["peak_pss_mb"] - a["peak_pss_mb"])
                                                                    / (b["lines"] - a["lines"]), 3)}
    result = {"benchmark": "triage_memory", "model": args.model, "device": args.device or "default",
              "cpus": os.cpu_count(), "batch_size": args.batch_size, "seeds": args.seeds, "k": args.k,
              "runs": [{k: v for k, v in r.items() if k != "timeline"} for r in runs], "peak_growth": growth,
              "timelines": {f"{r['engine']}-{r['lines']}": r["timeline"] for r in runs}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
