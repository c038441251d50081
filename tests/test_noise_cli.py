"""``python -m interp noise``: one-line errors for bad arguments, and the JSON it writes."""
from __future__ import annotations

import json

import pytest

from engine_fixtures import model_folder
from interp.__main__ import main


@pytest.fixture(scope="module")
def folder():
    return str(model_folder("bert", True, 0, initializer_range=0.3))


def one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.parametrize("extra,needle", [
    (["--rates", "0,abc"], "'abc' is not a number"),
    (["--rates", "0,1.5"], "rate must be between 0 and 1"),
    (["--perturbations", "typo,bogus"], "unknown perturbation 'bogus'"),
    (["--schemes", "A,Z"], "unknown scheme 'Z'"),
    (["--k", "0"], "'0' is not a positive integer"),
    (["--time-budget", "-1"], "--time-budget must be a positive"),
])
def test_bad_arguments_get_one_line(capsys, tmp_path, folder, extra, needle):
    one_line_error(capsys, ["noise", "--model", folder, "--text", "a [MASK] b", "--json", str(tmp_path / "o.json"),
                            *extra], needle)


def test_bad_sources_get_one_line(capsys, tmp_path, folder):
    out = str(tmp_path / "o.json")
    one_line_error(capsys, ["noise", "--model", folder, "--text", "   ", "--json", out], "empty text")
    one_line_error(capsys, ["noise", "--model", folder, "--log", str(tmp_path / "none.jsonl"), "--json", out],
                   "log file not found")
    one_line_error(capsys, ["noise", "--model", str(tmp_path / "nope"), "--text", "a", "--json", out],
                   "model folder not found")
    one_line_error(capsys, ["noise", "--model", folder, "--text", ", . !", "--json", out], "nothing to predict")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"other": "x"}\n', encoding="utf-8")
    one_line_error(capsys, ["noise", "--model", folder, "--log", str(bad), "--json", out], "text column 'text'")
    with pytest.raises(SystemExit) as exit_:
        main(["noise", "--model", folder, "--text", "a", "--log", str(bad), "--json", out])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not allowed with" in err[0]


def test_writes_the_issue_json(tmp_path, folder, capsys):
    out = tmp_path / "noise.json"
    rc = main(["noise", "--model", folder, "--text", "the cat sat on the [MASK] near the river .", "--perturbations",
               "typo,word-drop", "--rates", "0,0.2", "--schemes", "A,C", "--k", "2", "--seeds", "2",
               "--noise-seeds", "2", "--quiet", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert set(data["floor_flip_rate"]) == {"A", "C"} and set(data["floor_flip_rate"]["A"]) == {"2"}
    assert len(data["results"]) == 2 * 2 * 2
    for row in data["results"]:
        for key in ("perturbation", "rate", "scheme", "k", "dense_flip_rate", "sampled_flip_rate", "difference_ci",
                    "mcnemar_p"):
            assert key in row
        assert len(row["difference_ci"]) == 2
        if row["rate"] == 0:
            assert row["sampled_flip_rate"] == data["floor_flip_rate"][row["scheme"]][str(row["k"])]
            assert row["dense_flip_rate"] == 0
    assert data["inputs"] == 1 and "typo@0.2" in data["heads_moved"]


def test_report_builds_the_tables_and_the_offline_plot(tmp_path, folder):
    from interp.noise.report import main as report
    out = tmp_path / "noise.json"
    assert main(["noise", "--model", folder, "--text", "the cat sat on the [MASK] .", "--perturbations", "word-drop",
                 "--rates", "0,0.5", "--schemes", "C", "--k", "2", "--seeds", "1", "--noise-seeds", "2", "--quiet",
                 "--json", str(out)]) == 0
    assert report([str(out), "--out", str(tmp_path / "r")]) == 0
    data = json.loads(out.read_text())
    md = (tmp_path / "r" / "results.md").read_text()
    row = [r for r in data["results"] if r["rate"] == 0.5][0]
    assert f"| word-drop 0.5 | {row['dense_flip_rate']:.0%} | {row['sampled_flip_rate']:.0%} " in md
    html = (tmp_path / "r" / "flips.html").read_text()
    assert "<script" in html and "<script src=" not in html and len(html) > 1_000_000      # plotly.js inlined
