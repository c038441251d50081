"""``python -m interp tabular``: results.json has the documented schema (auto-mpg, a tiny seed count), a CSV with
--target works, and bad arguments exit non-zero with one clear line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp.__main__ import main
from interp.tabular.experiment import MODELS, merge

KEYS = {"acc_mean", "acc_std", "mse_mean", "mse_std"}


def check_schema(results: dict, rows: dict | None = None):
    assert set(results["split"]) == {"train", "test"}
    if rows is not None:
        assert results["split"] == rows
    assert set(MODELS) <= set(results["models"])
    for name in MODELS:
        m = results["models"][name]
        assert KEYS <= set(m)
        accs = [r["acc"] for r in m["seeds"]]
        assert len(accs) == results["seeds"]
        assert m["acc_mean"] == pytest.approx(np.mean(accs))
        assert m["acc_std"] == pytest.approx(np.std(accs, ddof=1) if len(accs) > 1 else 0.0)
        assert 0.0 <= m["acc_mean"] <= 1.0 and m["mse_mean"] >= 0.0


def test_auto_mpg_results_schema(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["tabular", "--data", "auto-mpg", "--out", str(out), "--seeds", "2", "--epochs", "1", "--quiet"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    check_schema(results, {"train": 245, "test": 140})
    assert results["published"]["models"]["attention"]["acc"] == pytest.approx(111 / 140)
    assert "| attention |" in capsys.readouterr().out
    # a second part with other seeds merges into one result over all of them
    other = dict(results, first_seed=2)
    other["models"] = {n: dict(m, seeds=[dict(r, seed=r["seed"] + 2) for r in m["seeds"]])
                       for n, m in results["models"].items()}
    both = merge([results, other])
    assert both["seeds"] == 4
    check_schema(both)


def test_csv_with_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": x + rng.normal(scale=0.2, size=80), "g": rng.choice(["p", "q"], 80), "y": x}).to_csv(csv, index=False)
    out = tmp_path / "run"
    assert main(["tabular", "--data", str(csv), "--target", "y", "--out", str(out), "--seeds", "2", "--epochs", "1",
                 "--quiet", "--save-model", str(tmp_path / "model")]) == 0
    results = json.loads((out / "results.json").read_text())
    check_schema(results, {"train": 56, "test": 24})
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "tabular.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["--data", "DATA", "--out", "OUT"], "needs --target"),
    (["--data", "DATA", "--target", "nope", "--out", "OUT"], "no column named 'nope'"),
    (["--data", "missing.csv", "--target", "y", "--out", "OUT"], "no file at"),
    (["--data", "auto-mpg", "--target", "weight", "--out", "OUT"], "auto-mpg predicts mpg"),
])
def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, capsys, argv, message):
    csv = tmp_path / "t.csv"
    csv.write_text("a,y\n1,2\n3,4\n5,6\n", encoding="utf-8")
    argv = [str(csv) if a == "DATA" else str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert main(["tabular", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_bad_forms_are_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["tabular", "--data", "auto-mpg", "--out", "x", "--forms", "gpt"])
    assert info.value.code == 2
