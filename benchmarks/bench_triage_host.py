"""Triage host cost per input, by stage: where a one-process triage spends its host (Python) time.

On a GPU the device does one batch's plain forward passes in a few tens of milliseconds, so the host's own work
per input decides whether a run keeps the device busy. This measures that work on any machine with a proxy whose
forward passes are cheap (by default the small random BERT the tests use), running the sequential path
(``Triage.run(pipeline=False)``) with each named stage timed (inclusive wall time, µs per input), and optionally
under cProfile. With ``--baseline SRC`` (a source tree of another version, e.g. a ``git archive`` export of main)
the same measurement runs for both trees, in alternating rounds, each in its own process, side by side.

    python benchmarks/bench_triage_host.py [--model tiny|mini-bert|PATH] [--inputs 4096] [--batch-size 256]
        [--rounds 2] [--baseline /tmp/main-src] [--cprofile 30] [--device cpu]

Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (module, attribute) of each timed stage; a stage missing from a version is left out of its figures.
STAGES = [
    ("runner", "LocalRun.read_window"),
    ("runner", "LocalRun.cut"),
    ("runner", "prepare_many"),
    ("runner", "_prepare_head"),
    ("runner", "_window_texts"),
    ("runner", "Triage._unique"),
    ("runner", "LocalRun.score"),
    ("runner", "token_batches"),
    ("runner", "encode_rows"),
    ("scores", "queue_batch"),
    ("scores", "queue_concentration"),
    ("scores", "compared_units"),
    ("scores", "sampled_units"),
    ("scores", "assemble"),
    ("scores", "assemble_columns"),
    ("runner", "_scored_row"),
    ("runner", "scored_columns"),
    ("runner", "LocalRun.account"),
    ("runner", "Triage._finish_window"),
    ("runner", "LocalRun.write_part"),
    ("store", "to_table"),
    ("runner", "Triage.finalise"),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _instrument(totals: dict) -> None:
    """Wrap every stage that exists with an inclusive timer (re-entrant calls counted once)."""
    import functools
    import importlib
    for mod_name, attr in STAGES:
        mod = importlib.import_module(f"interp.triage.{mod_name}")
        owner, name = mod, attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(mod, cls, None)
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None:
            continue
        label = f"{mod_name}.{attr}"
        depth = [0]

        def wrap(fn=fn, label=label, depth=depth):
            @functools.wraps(fn)
            def timed(*a, **k):
                if depth[0]:
                    return fn(*a, **k)
                depth[0] += 1
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    totals[label] = totals.get(label, 0.0) + time.perf_counter() - t
                    depth[0] -= 1
            return timed
        setattr(owner, name, wrap())
        # functions imported by name into the runner (``from .store import to_table``) are wrapped there too
        runner = importlib.import_module("interp.triage.runner")
        if "." not in attr and mod_name != "runner" and getattr(runner, name, None) is fn:
            setattr(runner, name, getattr(owner, name))


def _model_path(name: str, work: Path) -> str:
    """``tiny``: a random BERT with MiniLM's shape of attention (6 layers × 12 heads) but a 48-wide hidden state
    and a WordPiece vocabulary of the demo log's words (one token a word, ~20 tokens a line, a small MLM head):
    its forward passes cost little, so the host's own work shows. Saved as safetensors in the work folder."""
    if name != "tiny":
        return name
    from transformers import BertTokenizerFast

    from interp.loader import build_random
    from interp.triage.demo import WORDS
    folder = work / "tiny-model"
    if not folder.exists():
        folder.mkdir()
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + sorted(set(WORDS))
        (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
        tok.save_pretrained(str(folder))
        vocab = len(words)
        model = build_random("bert", seed=0, with_head=True, vocab_size=vocab, hidden_size=48,
                             num_hidden_layers=6, num_attention_heads=12, intermediate_size=96, pad_token_id=0)
        model.save_pretrained(str(folder))
    return str(folder)


def one(args) -> dict:
    """(In a subprocess whose sys.path starts at the tree measured) one timed run, and optionally cProfile."""
    import torch
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    from interp.loader import load_model
    from interp.triage import ColumnMapping, ScoreSettings
    from interp.triage.runner import Triage, TriageConfig
    work = Path(args.work)
    lm = load_model(args.model_path, device=args.device)
    settings = ScoreSettings(args.scheme, args.k, args.seeds, 0)
    mapping = ColumnMapping("text", id="id", prediction="prediction", label="label", timestamp="ts",
                            slices=("region",))
    cfg = TriageConfig(args.model_path, mapping, settings)

    def go(tag: str, profile=None):
        out = Path(tempfile.mkdtemp(prefix=f"host-{tag}-", dir=work))
        tri = Triage(args.log, out, cfg, lm=lm)
        t = time.perf_counter()
        if profile is not None:
            profile.enable()
        s = tri.run(batch_size=args.batch_size, pipeline=False, restart=True)
        if profile is not None:
            profile.disable()
        return time.perf_counter() - t, s

    go("warm")                                   # warm-up: lazy imports, allocator
    totals: dict = {}
    _instrument(totals)
    wall, s = go("timed")
    results = s["results"]
    n = max(1, s["analysed"])
    res = {"seconds": round(wall, 4), "analysed": s["analysed"], "lines": s["lines_total"], "results": results,
           "us_per_input": round(wall / n * 1e6, 1),
           "stages_us_per_input": {k: round(v / n * 1e6, 1) for k, v in totals.items()}}
    if args.cprofile:
        prof = cProfile.Profile()
        go("prof", prof)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.cprofile)
        log(buf.getvalue())
    return res


def forward_reference(args) -> dict:
    """The plain forward passes of the same batches (1 dense + S replicated), µs per input, in this tree."""
    import torch
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_triage import batches_like_triage, forward_passes
    from interp.loader import load_model
    lm = load_model(args.model_path, device=args.device)
    texts = [json.loads(line)["text"] for line in Path(args.log).read_text().splitlines()]
    batches = batches_like_triage(texts, args.batch_size)
    sync = (lambda: torch.cuda.synchronize()) if lm.device.type == "cuda" else (lambda: None)
    forward_passes(lm, batches[:1], args.seeds, sync)
    wall = forward_passes(lm, batches, args.seeds, sync)
    return {"seconds": round(wall, 4), "us_per_input": round(wall / len(texts) * 1e6, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="tiny (the tests' small random BERT), mini-bert, or a folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--inputs", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--scheme", default="A")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--baseline", default=None, help="source tree of the version to compare with")
    p.add_argument("--cprofile", type=int, default=0, help="print the top N functions by own time (stderr)")
    p.add_argument("--_one", dest="one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_forward", dest="forward", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_log", dest="log", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_work", dest="work", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_model-path", dest="model_path", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        sys.path.insert(0, args.one)
        res = forward_reference(args) if args.forward else one(args)
        print(json.dumps(res))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-triage-host-"))
    sys.path.insert(0, str(ROOT))
    from interp.triage.demo import generate_log
    logp = generate_log(work / "log.jsonl", args.inputs, seed=1, min_words=4, max_words=30, mask_prob=0.5)
    model_path = _model_path(args.model, work)
    trees = {"this": str(ROOT)}
    if args.baseline:
        trees = {"baseline": str(Path(args.baseline).resolve()), "this": str(ROOT)}
    common = [sys.executable, __file__, "--_log", str(logp), "--_work", str(work), "--_model-path", model_path,
              "--device", args.device, "--batch-size", str(args.batch_size), "--seeds", str(args.seeds),
              "--k", str(args.k), "--scheme", args.scheme, "--cprofile", str(args.cprofile)]
    got: dict = {t: [] for t in trees}
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for t in order:
            proc = subprocess.run(common + ["--_one", trees[t]], capture_output=True, text=True, cwd=trees[t])
            if proc.returncode:
                log(proc.stderr[-4000:])
                raise SystemExit(f"{t}: the measured run failed")
            if args.cprofile and r == 0:
                log(f"--- cProfile, {t} ---\n{proc.stderr[-12000:]}")
            got[t].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            log(f"round {r} {t}: {got[t][-1]['us_per_input']} µs/input over {got[t][-1]['analysed']} inputs")
    fwd = subprocess.run(common + ["--_one", str(ROOT), "--_forward"], capture_output=True, text=True, cwd=ROOT)
    forward = json.loads(fwd.stdout.strip().splitlines()[-1]) if fwd.returncode == 0 else {"error": fwd.stderr[-500:]}
    out = {"benchmark": "triage-host", "model": args.model, "device": args.device, "inputs": args.inputs,
           "batch_size": args.batch_size, "seeds": args.seeds, "k": args.k, "scheme": args.scheme,
           "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "forward_passes": forward}
    for t, runs in got.items():
        stages = {k: statistics.median([r["stages_us_per_input"].get(k, float("nan")) for r in runs])
                  for k in runs[0]["stages_us_per_input"]}
        out[t] = {"us_per_input": statistics.median([r["us_per_input"] for r in runs]),
                  "rounds_us_per_input": [r["us_per_input"] for r in runs],
                  "stages_us_per_input": stages, "analysed": runs[0]["analysed"]}
    if "baseline" in out:
        out["speedup"] = round(out["baseline"]["us_per_input"] / out["this"]["us_per_input"], 3)
        import pyarrow.parquet as pq
        a, b = (pq.read_table(got[t][0]["results"]) for t in ("baseline", "this"))
        differ = [n for n in a.schema.names if n not in b.schema.names or not a[n].equals(b[n])]
        out["identical_results"] = a.schema == b.schema and not differ     # every value, bit for bit
        out["differing_columns"] = differ
    print(json.dumps(out))


if __name__ == "__main__":
    main()
