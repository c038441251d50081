"""Story first render: the time until step 1 can be drawn, with the noise probe run up front (as before) against
deferred to step 5 (``build_story(..., defer_noise=True)``), measured side by side in one run on the same model,
text and settings; and the time the deferred probe then takes when step 5 is reached (``noise_step`` +
``with_noise``). Each repetition uses a fresh text so no result comes from a cache; the model is loaded once
beforehand (as the app's shared model is). The completed deferred story is checked equal to the one-go story.

Prints one JSON object as its last line. Usage:
    .venv/bin/python benchmarks/bench_story.py [--model minilm-mlm] [--repeats 3] [--seeds 8] [--k 8]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = ["She put the book on the [MASK] and left the room.",
         "He took his hat and walked out of the [MASK].",
         "The children played in the [MASK] until it was dark.",
         "We will meet again at the [MASK] tomorrow morning.",
         "The old man sat by the [MASK] and read a letter."]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-mlm")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--scheme", default="A")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from interp import story as S
    from interp.loader import load_model
    lm = load_model(args.model)
    settings = S.StorySettings(args.scheme, args.k, args.seeds, 0)
    models = {}

    def load(name):
        if name not in models:
            models[name] = load_model(name)
        return models[name]
    S.build_story(lm, TEXTS[0], settings, load=load, noise_module=None)          # warm-up: kernels, baselines
    eager, deferred, probe = [], [], []
    for i in range(args.repeats):
        text = TEXTS[(i + 1) % len(TEXTS)] + " " * i          # a text not seen before
        t0 = time.perf_counter()
        whole = S.build_story(lm, text, settings, load=load)
        eager.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        first = S.build_story(lm, text, settings, load=load, defer_noise=True)
        deferred.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        done = S.with_noise(first, S.noise_step(lm, text, settings))
        probe.append(time.perf_counter() - t0)
        assert [s.text("en") for s in done.steps] == [s.text("en") for s in whole.steps]
    out = {"bench": "story_first_render", "model": args.model, "device": "cpu", "threads": torch.get_num_threads(),
           "scheme": args.scheme, "k": args.k, "seeds": args.seeds, "repeats": args.repeats,
           "noise_measured": bool(whole.step("noise").measured),
           "step1_eager_s": statistics.median(eager), "step1_deferred_s": statistics.median(deferred),
           "noise_at_step5_s": statistics.median(probe),
           "speedup_step1": statistics.median(eager) / statistics.median(deferred)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
