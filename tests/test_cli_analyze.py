"""`python -m interp analyze`: the documented JSON, the same numbers as the library, one clear line on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from interp import decompose as D
from interp.trace import trace_text
from tests.engine_fixtures import minilm, model_folder

TEXT = "the quick brown fox [MASK] over the lazy dog ."


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "interp", "analyze", *args], capture_output=True, text=True,
                          timeout=300)


def test_analyze_writes_documented_json_matching_library(tmp_path):
    folder = model_folder("bert")
    out = tmp_path / "a.json"
    r = run_cli("--model", str(folder), "--text", TEXT, "--layer", "1", "--head", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d["model"]) >= {"name", "layers", "heads", "has_mlm_head"}
    assert d["model"]["layers"] == 2 and d["model"]["heads"] == 4 and d["model"]["has_mlm_head"] is True
    for key in ("identity_dense_max_rel_err", "identity_ln_max_rel_err", "lens_reconstruction_max_abs_err"):
        assert d["checks"][key] is not None and d["checks"][key] < 1e-5
    assert len(d["heads"]) == 8
    # the same numbers as the library computes in-process
    from interp.loader import load_model
    lm = load_model(str(folder))
    tr = trace_text(lm, TEXT)
    assert d["tokens"] == tr.tokens
    ov = D.overview(lm, tr)
    for h in d["heads"]:
        assert h["role"] == ov.role[h["layer"]][h["head"]]
        assert h["top_expert"] == ov.top_expert[h["layer"], h["head"]].tolist()
        assert max(abs(a - b) for a, b in zip(h["effective_experts"], ov.effective_experts[h["layer"], h["head"]])) < 1e-5
    hv = d["head_view"]
    assert hv["query"] == tr.tokens.index("[MASK]")
    assert set(hv["lenses"]) == {"vocabulary", "anchored", "counterfactual"}
    assert d["predictions"][0]["position"] == hv["query"]
    # the predictions are the model's own: softmax of transformers' logits, computed without the project's code
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    ref = AutoModelForMaskedLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    with torch.no_grad():
        logits = ref(**tok(TEXT, return_tensors="pt")).logits[0, hv["query"]]
    p = torch.softmax(logits.double(), -1)
    top = d["predictions"][0]["top"]
    want_p, want_i = torch.topk(p, len(top))
    assert [t["token"] for t in top] == tok.convert_ids_to_tokens(want_i.tolist())
    assert max(abs(t["prob"] - float(w)) for t, w in zip(top, want_p)) < 1e-5


def test_analyze_without_head_has_null_lens_check(tmp_path):
    out = tmp_path / "b.json"
    r = run_cli("--model", "minilm", "--text", "Hello world.", "--json", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["checks"]["lens_reconstruction_max_abs_err"] is None
    assert d["model"]["has_mlm_head"] is False and d["predictions"] == []
    assert len(d["heads"]) == 72


@pytest.mark.parametrize("args,needle", [
    (["--model", "no-such-model", "--text", "hi"], "unknown model"),
    (["--model", "minilm", "--text", "   "], "empty text"),
    (["--model", "minilm", "--text", "hi", "--layer", "7", "--head", "0"], "layer 7 is out of range"),
    (["--model", "minilm", "--text", "hi", "--layer", "1"], "--layer and --head go together"),
    (["--model", "minilm", "--text", "hi", "--layer", "1", "--head", "0", "--lenses", "magic"], "unknown lens"),
    (["--model", "minilm"], "one of the arguments --text --text-file is required"),
])
def test_bad_arguments_exit_nonzero_with_one_line(args, needle, capsys):
    """In-process through the same entry point as `python -m interp` (a subprocess each would be slow)."""
    from interp.__main__ import main
    try:
        code = main(["analyze", *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code != 0
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_help_explains_every_option():
    r = run_cli("--help")
    assert r.returncode == 0
    for opt in ("--model", "--text", "--text-file", "--layer", "--head", "--query", "--lenses", "--device", "--json"):
        assert opt in r.stdout
