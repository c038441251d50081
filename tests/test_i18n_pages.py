"""No English inside the Japanese UI where the library speaks: the truncation note of the trace, head role names,
model descriptions in the model picker, the older figures' titles, axes, legends and hovers, and the tables and
captions of the explore, head and sampled-vs-dense pages. Each page is rendered headless (AppTest) in Japanese on a
text too long for the tiny model (so the truncation note shows) and every string it sends is searched for the
English wording; the same page in English shows that wording (so the search can fail)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.figures.sampling import METRICS
from interp.i18n import EN, t
from interp.loader import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
LONG = " ".join(["the cat sat on the [MASK] near the river bank ."] * 8)      # > 64 positions of the tiny BERT

ROLES = ["previous-token", "next-token", "delimiter sink", "broad (CBOW-like)", "content-driven"]
TRUNCATION = ["the model reads at most", "tokens starting", "analysed up to character"]
FIGURE_WORDS = ["expert j", "query i", "offset j − i", "all keys", "special keys excluded", "queries, worst first",
                "cumulative share of squared error", "relative to ‖o‖²", "squared bias", "share of Σ error²",
                "acts as a", "Head-output error over", "The attention core is", "flip rate across seeds",
                "positions compared", "ratio to dense", "FLOPs per head", "dense and sampled rows",
                "every per-head summary", "mean of 8 replicates"]
METRIC_WORDS = [v for k, v in METRICS.items() if k not in ("kl",)]          # "KL(P̂ ‖ P)" is notation


def rendered(at) -> str:
    """Every string the page sent: element protos (labels, options, markdown, captions, alerts, tables) and
    plotly specs, as one text."""
    from google.protobuf import text_format
    parts = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            walk(child)
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(text_format.MessageToString(proto, as_utf8=True))
    walk(at._tree)
    for chart in at.get("plotly_chart"):
        parts.append(json.dumps(json.loads(chart.proto.spec), ensure_ascii=False))
    for live in at.get("component_instance"):             # the head page's live chart: its figure and texts
        args = json.loads(live.proto.json_args)
        parts.append(json.dumps(json.loads(args.pop("spec")), ensure_ascii=False))
        parts.append(json.dumps(args, ensure_ascii=False))
    for df in (*at.dataframe, *at.table):
        frame = df.value
        parts.append(" ".join(map(str, frame.columns)) + " " + frame.astype(str).to_string())
    return "\n".join(parts)


def page(path: str, lang: str, model: str, **params):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / path), default_timeout=180)
    for key, val in {"model": model, "text": LONG, "lang": lang, **params}.items():
        at.query_params[key] = str(val)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def english_in(text: str, words: list[str]) -> list[str]:
    return [w for w in words if w in text]


@pytest.fixture(scope="module")
def pages(tiny_bert_dir):
    out = {}
    for lang in ("en", "ja"):
        out[lang] = {
            "explore": page("app.py", lang, tiny_bert_dir),
            "head": page("pages/2_Head.py", lang, tiny_bert_dir, layer=0, head=1, query=6),
            "sampling": page("pages/4_Sampling.py", lang, tiny_bert_dir, scheme="A", k=4, layer=1, head=2, query=6),
        }
    return out


def test_truncation_note_is_japanese(pages):
    for name, at in pages["ja"].items():
        warnings = " ".join(w.value for w in at.warning)
        assert t("trunc.warning", "ja").split("—")[0].strip() in warnings, name
        assert not english_in(warnings, TRUNCATION), (name, warnings)
        assert "64" in warnings and "トークン" in warnings
    assert all(english_in(" ".join(w.value for w in at.warning), TRUNCATION[:1]) for at in pages["en"].values())


def test_roles_figures_tables_and_captions_are_japanese(pages):
    for name, at in pages["ja"].items():
        text = rendered(at)
        assert not english_in(text, ROLES + FIGURE_WORDS + METRIC_WORDS), name
        assert t("fig.expert_j", "ja") in text or name == "explore"
    english = " ".join(rendered(at) for at in pages["en"].values())
    found = set(english_in(english, ROLES + FIGURE_WORDS + METRIC_WORDS))
    assert {"expert j", "query i", "acts as a", "flip rate across seeds", "ratio to dense",
            "relative to ‖o‖²", "share of Σ error²", "The attention core is"} <= found                      # the search can fail: English shows them
    assert found & set(ROLES)


def test_model_picker_describes_models_in_japanese(pages):
    box = next(s for s in pages["ja"]["explore"].selectbox if s.key == "in_model")
    described = [o for o in box.options if " — " in o]
    assert described, box.options
    for option in described:
        name = option.split(" — ")[0]
        assert option == f"{name} — {t('model.desc.' + name, 'ja')}"
        assert REGISTRY[name].description not in option
    box_en = next(s for s in pages["en"]["explore"].selectbox if s.key == "in_model")
    assert any(REGISTRY[o.split(" — ")[0]].description in o for o in box_en.options if " — " in o)


def test_every_library_phrase_has_a_japanese_key():
    from interp.i18n import TABLES
    for prefix in ("note.", "role.", "model.desc.", "fig.", "down.", "flops.", "samp.metric."):
        keys = [k for k in EN if k.startswith(prefix)]
        assert keys and all(k in TABLES["ja"] and TABLES["ja"][k] != EN[k] or k == "samp.metric.kl" for k in keys), prefix
    assert {f"model.desc.{n}" for n in REGISTRY} <= set(EN)
    assert {f"role.{r}" for r in ROLES} <= set(EN)


def test_input_notes_keep_their_english_for_the_cli_and_carry_codes_for_the_ui():
    from interp.i18n import note_text
    from interp.trace import Note, Truncation, clean_text
    trunc = Truncation(100, 64, 250, "near the river")
    note = trunc.message()
    assert note == ("input is 100 tokens; the model reads at most 64: analysed up to character 250, cut 36 tokens "
                    "starting “near the river”")                                     # the CLI's line, unchanged
    assert note_text(note, "en") == note
    ja = note_text(note, "ja")
    assert all(str(v) in ja for v in (100, 64, 250, 36, "near the river")) and "reads at most" not in ja
    _, notes = clean_text("\ufeffhello\x07 world")
    assert [n.code for n in notes] == ["bom", "controls"] and all(isinstance(n, Note) for n in notes)
    assert note_text(notes[1], "ja") == t("note.controls", "ja", n=1) and note_text("plain", "ja") == "plain"
    import pickle
    assert pickle.loads(pickle.dumps(note)).params == note.params


def test_concentration_figure_labels_each_axis_once():
    import numpy as np
    from interp.figures.sampling import concentration_figure
    for lang in ("en", "ja"):
        fig = concentration_figure(np.array([0.1, 0.3, 0.2]), ["a", "b", "c"], lang)
        assert fig.layout.yaxis.title.text == t("fig.error", lang)
        assert fig.layout.yaxis2.title.text == t("fig.share_axis", lang)


def test_input_errors_are_worded_in_the_chosen_language():
    from interp.i18n import error_text
    from interp.trace import InputError, clean_text
    with pytest.raises(InputError) as info:
        clean_text("   ")
    err = info.value
    assert str(err).startswith("empty text") and error_text(err, "en") == str(err)          # the CLI's line
    assert error_text(err, "ja") == t("inerr.empty", "ja") and "empty" not in error_text(err, "ja")
    assert error_text(ValueError("other"), "ja") == "other"


def test_explore_page_empty_text_error_in_japanese():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params["lang"] = "ja"
    at.run()
    at.text_area(key="in_text").input("   ")
    at.button(key="analyze").click().run()
    errors = " ".join(e.value for e in at.error)
    assert t("inerr.empty", "ja") in errors and "empty text" not in errors


def test_noise_page_describes_perturbations_in_japanese(tiny_bert_dir):
    from interp.noise.perturb import PERTURBATIONS
    at = page("pages/5_Noise.py", "ja", tiny_bert_dir)
    box = next(s for s in at.selectbox if s.key == "nz_pert")
    assert box.options == [f"{n} — {t('perturb.' + n, 'ja')}" for n in PERTURBATIONS]
    text = rendered(at)
    assert not [p.description for p in PERTURBATIONS.values() if p.description in text]
    assert all(EN["perturb." + n] == p.description for n, p in PERTURBATIONS.items())   # English = the CLI's
