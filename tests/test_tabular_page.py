"""The Tables page headless (AppTest): the shipped auto-mpg model with a row's prediction, gates by column name,
exact checks, sampled-vs-dense and links; a CSV by path trained on the page; and every bad CSV with one clear
message and no exception."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/6_Tables.py"


def page():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=240)
    at.run()
    return at


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_auto_mpg_row_prediction_gates_and_links():
    from interp.loader import load_model
    from interp.tabular.data import prepare_auto_mpg
    from interp.tabular.model import predict
    at = page()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    text = markdown(at)
    assert "245 training rows, 140 test rows" in text
    # the test accuracy shown is the shipped model's own forward pass over the 140 test cars
    prep, lm = prepare_auto_mpg(), load_model("auto-mpg")
    pred = predict(lm.model, prep.enc, prep.codes[prep.test], prep.target)
    acc = float((pred == prep.codes[prep.test, prep.target]).mean())
    assert f"Test accuracy {acc:.1%}" in text
    row = int(prep.test[0])
    assert at.selectbox(key="tb_row_auto-mpg").value == row
    assert f"true value: **{prep.enc.column('mpg').values[prep.codes[row, prep.target]]}**" in text
    tables = [d.value for d in at.table] + [d.value for d in at.dataframe]
    rows = [t for t in tables if "gate L0H0" in t.columns]
    assert rows and list(rows[0]["column"]) == prep.enc.names
    np.testing.assert_allclose(rows[0].filter(like="gate").sum(axis=0).to_numpy(), 1.0, rtol=1e-5)
    assert any("identity 1 max relative error" in c.value for c in at.caption)
    links = {b.proto.label: b.proto.url for b in at.get("link_button")}
    q = urllib.parse.parse_qs(urllib.parse.urlparse(links["One head"]).query)
    assert q["model"] == ["auto-mpg"] and q["query"] == ["6"] and q["text"][0].split()[6] == "[MASK]"
    assert urllib.parse.urlparse(links["Sampled vs dense"]).path == "/Sampling"
    at.radio(key="tb_show").set_value("firing").run()
    no_exception(at)


def test_csv_by_path_trains_and_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": x, "g": rng.choice(["p", "q"], 60), "y": x + rng.normal(scale=0.3, size=60)}).to_csv(csv, index=False)
    at = page()
    at.radio(key="tb_source").set_value("path").run()
    at.text_input(key="tb_path").input(str(csv)).run()
    no_exception(at)
    assert at.selectbox(key="tb_target").value == "y"
    at.radio(key="tb_form").set_value("paper").run()
    at.number_input(key="tb_epochs").set_value(2).run()
    at.button(key="tb_train").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "42 training rows, 18 test rows" in markdown(at)
    assert any("Σ_j a_ij z_j" in c.value for c in at.caption)      # the paper form's exact MoE check


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"a,b\n", "no rows"),
    (b"a\n1\n2\n", "one column"),
    (bytes(range(256)) * 8, "binary"),
    (b"a,y\n1,\n2,\n3,\n", "entirely missing"),
    (b"a,y\n1,x\n2,x\n3,x\n", "one value"),
])
def test_bad_csvs_get_one_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    at = page()
    at.radio(key="tb_source").set_value("path").run()
    at.text_input(key="tb_path").input(str(path)).run()
    no_exception(at)
    assert at.error and message in at.error[0].value, [e.value for e in at.error]


def test_huge_file_is_refused_before_reading(tmp_path, monkeypatch):
    import interp.tabular.data as TD
    monkeypatch.setattr(TD, "MAX_UPLOAD_BYTES", 1000)
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    at = page()
    at.radio(key="tb_source").set_value("path").run()
    at.text_input(key="tb_path").input(str(path)).run()
    no_exception(at)
    assert at.error and "reads at most" in at.error[0].value
