"""``python -m interp sample``: the documented keys, values equal to the library's, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interp.__main__ import main
from interp.loader import load_model
from interp.sampling.report import sampling_report
from interp.trace import trace_text
from tests.engine_fixtures import model_folder

ROOT = Path(__file__).resolve().parent.parent
HEAD_KEYS = ("layer", "head", "tv_mean", "tv_max", "rel_err_mean", "rel_err_p95", "worst5_share", "flops_ratio")


def _check_against_library(data, lm, text, scheme, k, seeds, seed, layers=None):
    rep = sampling_report(lm, trace_text(lm, text), scheme, k, seeds, seed, layers=layers)
    assert (data["scheme"], data["k"], data["seeds"], data["seed"]) == (scheme, k, seeds, seed)
    assert len(data["heads"]) == len(rep.heads)
    for got, ref in zip(data["heads"], rep.heads):
        for key in HEAD_KEYS:
            assert key in got
            assert got[key] == pytest.approx(ref[key], rel=1e-6), key
        for key in HEAD_KEYS[2:-1]:
            assert got[key + "_nospecial"] == pytest.approx(ref[key + "_nospecial"], rel=1e-6, nan_ok=True)
    return rep


def test_cli_writes_documented_keys_matching_the_library_minilm(tmp_path):
    from tests.engine_fixtures import minilm
    out = tmp_path / "s.json"
    text = "The bank raised its rates."
    assert main(["sample", "--model", "minilm", "--text", text, "--scheme", "A", "--k", "4", "--seeds", "3",
                 "--seed", "5", "--layers", "0,2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rep = _check_against_library(data, minilm(), text, "A", 4, 3, 5, layers=[0, 2])
    assert {h["layer"] for h in data["heads"]} == {0, 2}
    assert data["downstream"]["cosine_mean"] == pytest.approx(rep.downstream.summary()["cosine_mean"], rel=1e-6)
    for key in ("tv_mean", "tv_max"):
        assert 0 <= data["heads"][0][key] <= 1


def test_cli_mlm_downstream_keys(tmp_path):
    folder = model_folder("bert", True, 0, initializer_range=0.3)
    out = tmp_path / "m.json"
    text = "the cat [MASK] on the mat ."
    assert main(["sample", "--model", str(folder), "--text", text, "--scheme", "E", "--k", "2", "--seeds", "2",
                 "--json", str(out), "--per-query"]) == 0
    data = json.loads(out.read_text())
    lm = load_model(str(folder))
    rep = _check_against_library(data, lm, text, "E", 2, 2, 0)
    summary = rep.downstream.summary()
    for key in ("top1_agreement", "kl_mean", "flip_rate"):
        assert data["downstream"][key] == pytest.approx(summary[key], rel=1e-6, abs=1e-12)
    assert data["downstream"]["positions"] == ["mask"]
    assert len(data["per_query"]["tv"]) == lm.n_layers


@pytest.mark.parametrize("args, needle", [
    (["--scheme", "Z", "--k", "3"], "invalid choice"),
    (["--scheme", "A", "--k", "0"], "positive integer"),
    (["--scheme", "A", "--k", "-2"], "positive integer"),
    (["--scheme", "A", "--k", "3", "--model", "no-such-model"], "unknown model"),
    (["--scheme", "A", "--k", "3", "--text", "   "], "empty text"),
    (["--scheme", "A", "--k", "3", "--layers", "40"], "layer 40"),
])
def test_cli_bad_input_is_one_clear_line(args, needle, tmp_path, capsys):
    base = ["--text", "hello world", "--json", str(tmp_path / "x.json")]
    if "--model" not in args:
        base += ["--model", str(model_folder("bert", True, 0, initializer_range=0.3))]
    try:
        code = main(["sample"] + base + args)
    except SystemExit as stop:          # argparse's own errors
        code = stop.code
    assert code not in (0, None)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "x.json").exists()


def test_cli_module_entry_point_and_help():
    proc = subprocess.run([sys.executable, "-m", "interp", "sample", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0
    for opt in ("--model", "--text", "--scheme", "--k", "--seeds", "--seed", "--h", "--m", "--layers", "--json",
                "--no-downstream", "--per-query", "Monte-Carlo", "top-k"):
        assert opt in proc.stdout
