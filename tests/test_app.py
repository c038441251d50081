"""Headless page tests (streamlit.testing.v1.AppTest) for every page: widgets, URL state, bad inputs, empty
states. Small random models are used where real weights are not needed."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

import app_support as ui
from interp.figures import explore as fx
from interp.i18n import t
from interp.loader import load_model
from interp.trace import trace_text

TEXT = "the cat sat on the [MASK] near the river bank ."
HEAD = "pages/2_Head.py"
SAMPLING = "pages/4_Sampling.py"


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at) -> list:
    """Every chart on the page: the live charts (the head page's chart, drawn by the ``ui.live_chart``
    component) first, then the ``st.plotly_chart`` ones."""
    live = [c for c in at.get("component_instance") if c.proto.component_name.endswith("live_chart")]
    return live + list(at.get("plotly_chart"))


def spec(chart) -> dict:
    """The plotly figure a chart element ships to the browser (data, layout)."""
    if chart.type == "component_instance":
        return json.loads(json.loads(chart.proto.json_args)["spec"])
    return json.loads(chart.proto.spec)


def title(chart) -> str:
    """A chart's title as one line (long titles are wrapped with <br>)."""
    return spec(chart)["layout"]["title"]["text"].replace("<br>", " ")


def markdown_tables(at) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown pipe table on the page: (header cells, body rows of cells), cells as written (escaped)."""
    out = []
    for m in texts(at.markdown):
        lines = [ln for ln in m.splitlines() if ln.startswith("|")]
        if len(lines) >= 2 and set(lines[1]) <= set("|-: "):
            cells = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]]
            out.append((cells(lines[0]), [cells(ln) for ln in lines[2:]]))
    return out


def frames(at) -> list:
    """Every table on the page (interactive dataframes and static tables) as pandas DataFrames."""
    return [e.value for e in (*at.dataframe, *at.table)]


def button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


# --- Explore -------------------------------------------------------------------------------------------------

def test_root_shows_empty_state_and_inputs(app):
    at = app().run()
    no_exception(at)
    assert any("press **Analyze**" in m for m in texts(at.info))
    assert not charts(at)
    model = at.selectbox(key="in_model")
    assert any(o.startswith("minilm") for o in model.options) and model.options[-1] == t("input.local_option")
    assert at.text_area(key="in_text").label == t("input.text")
    labels = [w.label for w in (*at.selectbox, *at.text_area, *at.button)]
    assert all(label.strip() for label in labels)            # every widget has a visible label


def test_url_lands_on_analysed_overview(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT).run()
    no_exception(at)
    assert not at.error
    assert at.text_area(key="in_text").value == TEXT
    assert set(ui.PARAMS) <= set(at.query_params)
    assert at.query_params["model"] == tiny_bert_dir and at.query_params["text"] == TEXT
    lm = load_model(tiny_bert_dir)
    trace = trace_text(lm, TEXT)
    assert int(at.query_params["query"]) == trace.tokens.index("[MASK]")
    ov_chart = charts(at)[0]
    names = {tr.get("name") for tr in spec(ov_chart)["data"]}
    assert t("ov.firing") in names and t("ov.eff") in names
    # the predictions table is the model's own softmax at [MASK]
    want = fx.mask_predictions(trace, lm.tokenizer)
    shown = [df for df in frames(at) if t("pred.col.prob") in df.columns]
    assert len(shown) == 1
    assert list(shown[0][t("pred.col.token")]) == [ui.escape_markdown(w) for w in want[t("pred.col.token")]]
    # the exactness caption: both identities hold on this input to float32 precision
    checks = [c for c in texts(at.caption) if c.startswith("Exactness on this input")]
    assert len(checks) == 1
    errors = [float(x) for x in re.findall(r"(\d\.\de[-+]\d+)", checks[0])]
    assert len(errors) == 3 and max(errors) < 1e-4
    # every chart and table has an export button
    downloads = [d.label for d in at.get("download_button")]
    assert downloads.count(t("export.html")) == len(charts(at))
    assert downloads.count(t("export.csv")) >= 2


def test_type_insert_mask_and_analyze(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir).run()
    at.text_area(key="in_text").input("the dog ran")
    button(at, t("input.insert_mask")).click().run()
    assert at.text_area(key="in_text").value == "the dog ran [MASK]"
    assert not charts(at)                                      # nothing analysed until Analyze
    at.button(key="analyze").click().run()
    no_exception(at)
    assert at.query_params["text"] == "the dog ran [MASK]"
    assert charts(at)
    at.text_area(key="in_text").input("the dog sat").run()
    assert any(t("input.changed") in c for c in texts(at.caption))


def test_example_fills_the_text_box(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir).run()
    box = at.selectbox(key="in_example")
    example = ui.examples()[0]
    assert box.options[1] == (example if len(example) <= 90 else example[:88] + "…")
    box.select(example).run()
    assert at.text_area(key="in_text").value == example


def test_empty_text_gets_a_clear_message(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir).run()
    at.text_area(key="in_text").input("   \u200b ")
    at.button(key="analyze").click().run()
    no_exception(at)
    assert any("empty text" in e for e in texts(at.error))
    assert not charts(at) and "text" not in at.query_params


def test_bad_model_folders_get_clear_messages(app, tmp_path):
    at = app(model=str(tmp_path / "nowhere"), text="hello").run()
    no_exception(at)
    assert any("model folder not found" in e for e in texts(at.error))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    at = app(model=str(pickled), text="hello").run()
    assert any("pickle" in e for e in texts(at.error))
    at = app(model="gpt2-like/unknown-model", text="hello").run()
    assert any("Could not load the model" in e for e in texts(at.error))


def test_minilm_says_it_has_no_mlm_head(app):
    at = app(model="minilm", text="The capital of France is [MASK].").run()
    no_exception(at)
    assert any("has no MLM head" in i for i in texts(at.info))
    assert not [df for df in frames(at) if t("pred.col.prob") in df.columns]
    assert any("no MLM head" in c for c in texts(at.caption))


def test_truncation_is_reported(app, tiny_bert_dir):
    long = " ".join(["the cat sat on the mat ."] * 20)
    at = app(model=tiny_bert_dir, text=long).run()
    no_exception(at)
    lm = load_model(tiny_bert_dir)
    cut = trace_text(lm, long).truncation
    assert cut is not None
    assert any(cut.message() in w for w in texts(at.warning))


def test_unusual_unicode_is_reported(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text="\ufeffthe cat\u0007 sat").run()
    no_exception(at)
    notes = " ".join(texts(at.info))
    assert "byte-order mark" in notes and "control" in notes


def test_bad_url_parameters_are_named_and_ignored(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT, layer="abc", k="0", scheme="Z", head="99").run()
    no_exception(at)
    warnings = " ".join(texts(at.warning))
    assert "layer=abc" in warnings and "k=0" in warnings and "scheme=Z" in warnings
    assert "head=99" in warnings and "out of range" in warnings
    assert at.query_params["head"] == "0" and at.query_params["scheme"] == ui.DEFAULT_SCHEME
    assert charts(at)


def test_local_folder_choice(app, tiny_bert_dir):
    at = app().run()
    at.selectbox(key="in_model").select(ui.LOCAL).run()
    at.text_input(key="in_folder").input(tiny_bert_dir).run()
    assert at.query_params["model"] == tiny_bert_dir
    at.text_area(key="in_text").input("the cat sat .")
    at.button(key="analyze").click().run()
    no_exception(at)
    assert charts(at) and not at.error


def test_query_picker_updates_url_and_overview(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT).run()
    before = spec(charts(at)[0])
    at.selectbox(key="ov_query").select(2).run()
    assert at.query_params["query"] == "2"
    after = spec(charts(at)[0])
    assert before != after                                     # the firing panel follows the query


def test_accessible_head_picker_opens_the_head(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT).run()
    at.selectbox(key="ov_pick").select(1 * 4 + 2)          # flat index layer · H + head (H = 4)
    button(at, t("select.open_head")).click().run()
    no_exception(at)
    assert at.query_params["layer"] == "1" and at.query_params["head"] == "2"
    assert t("head.header", layer=1, head=2) in texts(at.title)


# --- One head ------------------------------------------------------------------------------------------------

def test_head_page_empty_state(app):
    at = app().run()
    at.switch_page(HEAD).run()
    no_exception(at)
    assert any("Nothing analysed yet" in i for i in texts(at.info))


def test_head_page_views_and_widgets(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT, layer=0, head=1, query=6).run()
    at.switch_page(HEAD).run()
    no_exception(at)
    assert t("head.header", layer=0, head=1) in texts(at.title)
    assert any("acts as a" in m for m in texts(at.markdown))
    lm = load_model(tiny_bert_dir)
    probs = trace_text(lm, TEXT).layers[0].probs[1]
    heat = spec(charts(at)[0])["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["z"]["dtype"] == "f4"                                           # one head's n × n, float32
    shipped = np.frombuffer(base64.b64decode(heat["z"]["bdata"]), dtype=np.float32).reshape(probs.shape)
    np.testing.assert_allclose(shipped, probs.numpy(), rtol=1e-5, atol=1e-7)   # what the browser gets = the model's
    bars = [spec(charts(at)[0])["data"][i] for i in (1, 2)]                    # the query's row under the heatmap
    gate_row = np.frombuffer(base64.b64decode(bars[0]["y"]["bdata"]), dtype=np.float32)[1:-1]   # edges repeated
    np.testing.assert_allclose(gate_row, probs[6].numpy(), rtol=1e-5, atol=1e-7)
    assert bars[0]["yaxis"] == "y2" and bars[1]["yaxis"] == "y3"
    assert len(charts(at)) == 1 and t("head.more_empty") in texts(at.caption)   # one chart; one view at a time
    at.radio(key="hd_section").set_value("messages").run()
    titles = [title(c) for c in charts(at)]
    assert t("head.norms_title") in titles and t("head.profile_title") in titles
    at.radio(key="hd_section").set_value("layer0").run()
    assert any(c.startswith("The three parts sum to the message") for c in texts(at.caption))
    n_charts = len(charts(at))
    at.radio(key="hd_show").set_value("firing").run()
    assert title(charts(at)[0]) == t("head.firing_title")
    at.selectbox(key="hd_layer").select(1).run()
    assert at.query_params["layer"] == "1"
    assert any(t("l0.only") in c for c in texts(at.caption))
    assert len(charts(at)) < n_charts
    at.radio(key="hd_section").set_value("lens").run()
    assert any(c.startswith("Reconstruction error of this lens") for c in texts(at.caption))
    at.radio(key="hd_lens").set_value("anchored").run()
    no_exception(at)
    assert any("exact bookkeeping" in c for c in texts(at.caption))
    at.radio(key="hd_lens").set_value("counterfactual").run()   # runs with a progress bar that is then removed
    no_exception(at)
    assert any("causal" in c for c in texts(at.caption))
    assert len(at.get("progress")) == 0


def test_head_chart_is_one_live_chart_with_head_figures_spec(app, tiny_bert_dir):
    """The head page's chart is the live-chart component under one stable key (so the browser keeps it mounted
    and updates it in place on a head switch): what it receives is exactly ``head_figure``'s spec for the head
    shown, the chart's PNG config, the frame title, and a text summary whose numbers are the model's own
    attention weights of that row."""
    from interp.figures import head as fh
    from interp.figures.common import chart_config, safe_filename
    from interp.decompose import head_view
    at = app(model=tiny_bert_dir, text=TEXT, layer=1, head=0, query=6).run()
    at.switch_page(HEAD).run()
    no_exception(at)
    lm = load_model(tiny_bert_dir)
    trace = trace_text(lm, TEXT)
    ids = set()
    for h in (0, 2, 3):
        if h:
            at.selectbox(key="hd_head").select(h).run()
            no_exception(at)
        live = [c for c in at.get("component_instance") if c.proto.component_name.endswith("live_chart")]
        assert len(live) == 1 and not at.get("plotly_chart")          # the one chart of the view, drawn live
        ids.add(live[0].proto.id)
        args = json.loads(live[0].proto.json_args)
        hv = head_view(lm, trace, 1, h)
        assert json.loads(args["spec"]) == json.loads(fh.head_figure(hv, 6, "gate", "en").to_json())
        assert args["config"] == chart_config(safe_filename(f"gate-L1H{h}q6-{lm.name}"))
        assert args["title"] == t("head.figure_alt") and args["lang"] == "en"
        row = trace.layers[1].probs[h, 6].numpy()
        top = int(np.argmax(row))
        assert f"largest gate is {row[top]:.4f} on expert {top} " in args["summary"]
        assert f"{trace.tokens[6]}" in args["summary"] and f"head {h}:" in args["summary"]
    assert len(ids) == 1 and live[0].key == "hd_heatmap"          # one element identity across head switches


def test_head_switch_updates_the_view_url_and_top_experts(app, tiny_bert_dir):
    """A head switch (a rerun of the page's head fragment) writes the typed view to the URL and shows the new
    head: title, and the top-experts table with the model's own attention weights of that head, largest first."""
    at = app(model=tiny_bert_dir, text=TEXT, layer=1, head=0, query=6).run()
    at.switch_page(HEAD).run()
    no_exception(at)
    lm = load_model(tiny_bert_dir)
    probs = trace_text(lm, TEXT).layers[1].probs
    for h in (2, 3):
        at.selectbox(key="hd_head").select(h).run()
        no_exception(at)
        assert at.query_params["head"] == str(h) and at.query_params["layer"] == "1"
        assert t("head.header", layer=1, head=h) in texts(at.title)
        tables = markdown_tables(at)
        assert len(tables) == 1 and len(at.table) == 0                     # one Markdown element, not a cell grid
        header, rows = tables[0]
        assert header == [ui.escape_markdown(t(f"head.col.{c}")) for c in ("position", "token", "gate", "firing")]
        want = probs[h, 6].numpy()
        order = np.argsort(-want, kind="stable")[:len(rows)]
        assert [int(r[0]) for r in rows] == order.tolist()
        # shown with 4 decimals: within half a unit of the last place of the model's own attention weights
        np.testing.assert_allclose([float(r[2]) for r in rows], want[order], rtol=0, atol=0.5e-4 + 1e-7)
        assert all(len(r[2].split(".")[1]) == 4 for r in rows)


def test_url_reproduces_the_head_view(app, tiny_bert_dir):
    """Opening the same URL in a fresh session gives exactly the same figures."""
    specs = []
    for _ in range(2):
        at = app(model=tiny_bert_dir, text=TEXT, layer=1, head=3, query=2).run()
        at.switch_page(HEAD).run()
        no_exception(at)
        specs.append([json.dumps(spec(c), sort_keys=True) for c in charts(at)])
        assert at.query_params["layer"] == "1" and at.query_params["head"] == "3" and at.query_params["query"] == "2"
    assert specs[0] == specs[1] and specs[0]


# --- Sampled vs dense ----------------------------------------------------------------------------------------

def test_sampling_page_empty_state(app):
    at = app().run()
    at.switch_page(SAMPLING).run()
    no_exception(at)
    assert any("Nothing analysed yet" in i for i in texts(at.info))


def test_sampling_page_reads_and_writes_url(app, tiny_bert_dir):
    at = app(model=tiny_bert_dir, text=TEXT, scheme="C", k=2, seed=3, layer=1, head=2, query=6).run()
    at.switch_page(SAMPLING).run()
    no_exception(at)
    assert at.selectbox(key="sp_scheme").value == "C"
    assert at.number_input(key="sp_k").value == 2 and at.number_input(key="sp_seed").value == 3
    assert len(charts(at)) >= 4
    flip = [m for m in texts(at.markdown) if m.startswith("Flip rate across seeds")]
    mask = trace_text(load_model(tiny_bert_dir), TEXT).tokens.index("[MASK]")
    assert len(flip) == 1 and f"(the [MASK] token at position {mask})" in flip[0] and "8 seeds" in flip[0]
    at.number_input(key="sp_k").set_value(3).run()
    assert at.query_params["k"] == "3"
    at.selectbox(key="sp_scheme").select("A").run()
    assert at.query_params["scheme"] == "A"
    at.radio(key="sp_where").set_value("all").run()
    no_exception(at)
    tables = [df.set_index("metric") for df in frames(at) if "metric" in df.columns]
    assert len(tables) == 1
    from interp.sampling import downstream_effect
    from interp.trace import encode
    lm = load_model(tiny_bert_dir)
    want = downstream_effect(lm, encode(lm, [TEXT]), "A", 3, ui.DEFAULT_SEEDS, 3)     # all layers, all heads
    assert float(tables[0].loc["flip rate across seeds", "value"]) == pytest.approx(float(want.flip_rate[0]), abs=1e-6)
    assert float(tables[0].loc["KL(p ‖ p̂) mean", "value"]) == pytest.approx(float(want.kl_mean[0]), rel=1e-5)
    at.number_input(key="sp_seeds").set_value(1).run()
    no_exception(at)


def test_sampling_page_without_mlm_head_reports_cosine(app, tiny_encoder_dir):
    at = app(model=tiny_encoder_dir, text="the cat sat .", scheme="D", k=4).run()
    at.switch_page(SAMPLING).run()
    no_exception(at)
    assert any("Cosine between the dense and sampled" in m for m in texts(at.markdown))


def test_default_model_predicts_at_mask(app):
    """With no model in the URL the app uses the default (the embedded mini-bert once built) and shows the
    model's own top predictions at [MASK]."""
    import torch

    from interp.loader import default_model
    from interp.trace import encode
    text = "He took his hat and walked out of the [MASK]."
    at = app(text=text).run()
    no_exception(at)
    name = default_model()
    assert at.query_params["model"] == name
    lm = load_model(name)
    if not lm.has_mlm_head:
        assert any("has no MLM head" in i for i in texts(at.info))
        return
    enc = encode(lm, [text])
    with torch.no_grad():
        logits = lm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                          token_type_ids=enc.token_type_ids).logits[0]
    i = enc.input_ids[0].tolist().index(lm.tokenizer.mask_token_id)
    top = torch.topk(torch.softmax(logits[i].double(), -1), 5)
    shown = [df for df in frames(at) if t("pred.col.prob") in df.columns][0]
    tokens = lm.tokenizer.convert_ids_to_tokens(top.indices.tolist())
    assert list(shown[t("pred.col.token")]) == [ui.escape_markdown(w) for w in tokens]
    np.testing.assert_allclose(shown[t("pred.col.prob")].to_numpy(np.float64), top.values.numpy(), rtol=1e-5)


# --- reliability: typed view state, error boundary, ranges --------------------------------------------------

@pytest.fixture()
def stale_labels(monkeypatch):
    """Make the next run send, for a selectbox, the given display label instead of its value: what the browser
    sends when the options changed under a selection (Streamlit then hands the label string to the app)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox
    labels: dict[str, str] = {}
    original = Selectbox._widget_state

    def patched(self):
        if self.key in labels:
            ws = WidgetState()
            ws.id = self.id
            ws.string_value = labels.pop(self.key)
            return ws
        return original.fget(self)
    monkeypatch.setattr(Selectbox, "_widget_state", property(patched))
    return labels


def test_stale_widget_labels_never_become_view_state(app, tiny_bert_dir, stale_labels):
    """The crash of a long session: a stale label ("Layer 0 · Head 0 — …") came back from the head picker and
    its first letters became layer=L&head=a; the next analysis then failed with a TypeError."""
    at = app(model=tiny_bert_dir, text=TEXT).run()
    before = dict(at.query_params)
    for key, label in (("ov_pick", "Layer 0 · Head 0 — a role of the previous input"), ("ov_query", "6: [MASK]"),
                       ("in_model", "mini-bert — an old label")):
        stale_labels[key] = label
        at.run()
        no_exception(at)
        assert dict(at.query_params) == before
    at.text_area(key="in_text").input("the dog sat on the mat .")
    at.button(key="analyze").click().run()
    no_exception(at)
    assert at.query_params["layer"] == "0" and at.query_params["head"] == "0"
    at.switch_page(HEAD).run()
    no_exception(at)
    stale_labels["hd_query"] = "3: sat"
    stale_labels["hd_layer"] = "L"
    at.run()
    no_exception(at)
    assert t("head.header", layer=0, head=0) in texts(at.title)


def test_error_boundary_shows_one_line_and_logs_the_traceback(app, tiny_bert_dir, monkeypatch, caplog):
    import ui

    def broken(*args, **kwargs):
        raise RuntimeError("boom in /srv/secret/path.py")
    real = ui.overview
    monkeypatch.setattr(ui, "overview", broken)
    with caplog.at_level("ERROR", logger="expertlens.ui"):
        at = app(model=tiny_bert_dir, text=TEXT).run()
    no_exception(at)                                               # no exception box, no traceback
    errors = texts(at.error)
    assert errors == [t("error.unexpected", page=t("nav.explore"), kind="RuntimeError")]
    shown = " ".join(texts(at.markdown) + texts(at.caption) + texts(at.error) + texts(at.warning))
    assert "secret" not in shown and "Traceback" not in shown
    assert any("boom in /srv/secret/path.py" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert at.text_area(key="in_text").value == TEXT               # the page is still there and usable
    button(at, t("error.reset"))
    monkeypatch.setattr(ui, "overview", real)
    at.text_area(key="in_text").input("the cat sat .")
    at.button(key="analyze").click().run()
    no_exception(at)
    assert not at.error and charts(at)


@pytest.mark.parametrize("params, shown", [({"k": "5000"}, {"k": "4096"}),
                                           ({"seed": str(2**31)}, {"seed": str(2**31 - 1)}),
                                           ({"seed": str(10**20), "k": "0"}, {"seed": str(2**31 - 1), "k": "1"})])
def test_sampling_page_never_silently_shows_other_values(app, tiny_bert_dir, params, shown):
    at = app(model=tiny_bert_dir, text=TEXT, scheme="A", **params).run()
    at.switch_page(SAMPLING).run()
    no_exception(at)
    warnings = " ".join(texts(at.warning))
    for name, raw in params.items():
        assert f"{name}={raw}" in warnings and f"showing {name}={shown[name]}" in warnings
        assert at.query_params[name] == shown[name]                 # the URL says what is shown
        assert str(at.number_input(key=f"sp_{name}").value) == shown[name]
