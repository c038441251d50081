"""Train each embedded model twice for a few steps with the same seed on one device and compare the weights
bit for bit; also time a step. Prints one JSON object as its last line.

    python scripts/check_determinism.py --prepared DIR [--device cuda] [--steps 30] [--batch-size 256]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from interp.training import data as D  # noqa: E402
from interp.training import run as R  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    prepared = D.load_prepared(Path(args.prepared))
    td = R.train_data(prepared)
    result = {"device": R.device_description(torch.device(args.device)), "steps": args.steps}
    for name in R.MODEL_NAMES:
        states, recs = [], []
        for _ in range(2):
            cfg = R.TrainConfig(name=name, seed=0, steps=args.steps, batch_size=args.batch_size, lr=R.DEFAULT_LR[name],
                                device=args.device, log_every=10 ** 9)
            model, rec = R.train(cfg, td, log=lambda *_: None)
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            recs.append(rec)
        diff = max(float((states[0][k].float() - states[1][k].float()).abs().max()) for k in states[0])
        result[name] = {"identical": diff == 0.0, "max_abs_weight_diff": diff,
                        "seconds_per_step": round(recs[0]["seconds_after_warmup"] / max(1, args.steps - 3), 5),
                        "final_loss": [r["loss_curve"][-1][1] for r in recs]}
        print(name, result[name], flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
