"""The last English inside the Japanese UI: the Triage page's results tables and its source choice, the
Tables page's split rule and encoder notes, and the library errors shown when a model cannot be loaded. Each
page is rendered headless (AppTest) in Japanese and searched for the English wording; the same page in English
shows that wording, so each search can fail."""
from __future__ import annotations

import json
import re
import random
from pathlib import Path

import pytest

from engine_fixtures import WORDS, model_folder
from interp.i18n import t

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = "pages/3_Triage.py"


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def frame_with(at, column):
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


# --- 1. Triage: the results tables and the source choice ----------------------------------------------------

@pytest.fixture()
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    rng = random.Random(3)
    lines = []
    for i in range(8):
        words = [rng.choice(WORDS[:60]) for _ in range(rng.randint(3, 6))]
        words[rng.randrange(len(words))] = "[MASK]"
        lines.append(json.dumps({"id": f"q{i}", "text": " ".join(words)}))
    lines.append("{not json")
    path = tmp_path / "prod.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def triage(lang: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / TRIAGE), default_timeout=180)
    at.query_params["lang"] = lang
    at.run()
    no_exception(at)
    return at


def test_triage_source_choice_survives_a_language_switch(log):
    at = triage("ja")
    radio = at.radio(key="tri_source")
    assert radio.options == [t("triage.source_upload", "ja"), t("triage.source_path", "ja")]
    radio.set_value("path").run()
    at.text_input(key="tri_path").input(str(log)).run()
    no_exception(at)
    at.query_params["lang"] = "en"
    at.run()
    no_exception(at)
    assert at.radio(key="tri_source").value == "path"
    assert at.radio(key="tri_source").options == ["Upload a file", "A path on this machine"]
    assert at.text_input(key="tri_path").value == str(log)
    assert not at.get("file_uploader")


ENGLISH_HEADERS = ["rank", "suspicion", "explorer", "flip rate", "worst head", "confidence", "margin"]


def test_triage_results_tables_are_headed_in_the_chosen_language(log, tiny_bert_dir):
    import app_support as ui
    at = triage("ja")
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(log)).run()
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(tiny_bert_dir).run()
    at.number_input(key="tri_seeds").set_value(2).run()
    at.button(key="tri_run").click().run()
    no_exception(at)
    ja_rank = t("triage.col.rank", "ja")
    ranked = frame_with(at, ja_rank)
    cols = [str(c) for c in ranked.columns]
    assert not [w for w in ENGLISH_HEADERS if w in cols], cols
    assert {t("triage.col.suspicion", "ja"), t("triage.col.explorer", "ja"), "順位", "疑わしさ"} <= set(cols)
    assert list(ranked[ja_rank]) == list(range(1, len(ranked) + 1))
    detail = frame_with(at, t("triage.col.score", "ja"))
    assert list(detail.columns) == ["指標", "値"]
    assert not [w for w in ENGLISH_HEADERS if w in set(detail["指標"])], list(detail["指標"])
    bad = frame_with(at, t("triage.col.reason_code", "ja"))
    assert list(bad[t("triage.col.line", "ja")]) == [9] and "reason_code" not in bad.columns
    meaning = "share of compared positions whose sampled top-1 differs"       # how suspicion is computed
    ja_md = "\n".join(m.value for m in at.markdown)
    assert meaning not in ja_md and t("triage.meaning.flip", "ja") in ja_md
    # the same run in English: the English headers are there (so the search above can fail)
    at.query_params["lang"] = "en"
    at.run()
    no_exception(at)
    cols = [str(c) for c in frame_with(at, "rank").columns]
    assert [w for w in ENGLISH_HEADERS if w in cols] == ENGLISH_HEADERS
    assert "flip rate" in set(frame_with(at, "score")["score"])
    assert meaning in "\n".join(m.value for m in at.markdown)


def test_suspicion_term_meanings_in_english_are_the_librarys_own():
    from interp.i18n import EN
    from interp.triage.scores import TERMS
    worded = [name for name in TERMS if f"triage.meaning.{name}" in EN]        # a term without a key shows English
    assert len(worded) >= 7
    assert {n: EN[f"triage.meaning.{n}"] for n in worded} == {n: TERMS[n].meaning for n in worded}


# --- 2. Tables: the split rule and the notes about a table --------------------------------------------------

TABLES = "pages/6_Tables.py"


def tables(lang: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / TABLES), default_timeout=240)
    at.query_params["lang"] = lang
    at.run()
    no_exception(at)
    return at


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_table_notes_are_codes_in_the_library_and_english_for_the_cli():
    import pandas as pd
    from interp.i18n import note_text
    from interp.tabular.data import prepare_auto_mpg, prepare_table
    rule = prepare_auto_mpg().split_rule
    assert rule == "train: cars of US origin; test: cars of every other origin (Europe, Japan)"
    assert rule.code == "tab_split_auto_mpg" and note_text(rule, "ja") == "学習: 米国製の車、テスト: それ以外（欧州・日本）の車"
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "k": ["x"] * 7,
                       "y": ["p", "q", "p", "q", "p", "q", None]})
    prep = prepare_table(df, "y", seed=2)
    assert prep.split_rule == "random split, 30% of the rows held out for test (seed 2)"
    assert note_text(prep.split_rule, "ja") == "無作為に分割し、行の 30% をテスト用に取り置きました（シード 2）"
    assert list(prep.notes) == ["dropped 1 row(s) with no value in the target column 'y'",
                                "column 'k' has one value ('x') for every row: it carries no information; dropped"]
    assert [note_text(n, "ja") for n in prep.notes] == [
        "予測する列「y」に値のない行を 1 行除きました",
        "列「k」はすべての行で同じ値（x）で、情報がないため除きました"]


def test_auto_mpg_split_rule_is_in_the_chosen_language():
    english = "cars of US origin"
    ja = markdown(tables("ja"))
    assert "学習用 245 行、テスト用 140 行" in ja and "米国製の車" in ja and english not in ja
    assert english in markdown(tables("en"))


def test_csv_notes_are_in_the_chosen_language(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,k,y\n1,x,p\n2,x,q\n3,x,p\n4,x,q\n5,x,p\n6,x,\n", encoding="utf-8")
    english = ["with no value in the target column", "carries no information"]
    texts = {}
    for lang in ("ja", "en"):
        at = tables(lang)
        at.radio(key="tb_source").set_value("path").run()
        at.text_input(key="tb_path").input(str(csv)).run()
        no_exception(at)
        texts[lang] = markdown(at)
    assert not [w for w in english if w in texts["ja"]], texts["ja"]
    assert "予測する列「y」に値のない行を 1 行除きました" in texts["ja"] and "列「k」はすべての行で同じ値" in texts["ja"]
    assert all(w in texts["en"] for w in english), texts["en"]


# --- 3. model-load errors: a wording and values the UI translates; unknown ones keep English after a lead-in ---

def broken_folders(tmp_path) -> dict[str, tuple[str, str]]:
    """wording → (what to load, an English phrase of its message), each from a folder made to fail that way."""
    def folder(name, files):
        f = tmp_path / name
        f.mkdir()
        for fname, content in files.items():
            (f / fname).write_text(content, encoding="utf-8")
        return str(f)
    (tmp_path / "a-file.txt").write_text("x", encoding="utf-8")
    return {
        "missing": (str(tmp_path / "no" / "such-model"), "model folder not found"),
        "not_a_folder": (str(tmp_path / "a-file.txt"), "is a file, not a model folder"),
        "no_config": (folder("empty", {}), "is not a model folder"),
        "pickle_no_config": (folder("pickles", {"pytorch_model.bin": "x"}), "will not load"),
        "pickle_only": (folder("pickle-only", {"config.json": '{"model_type": "bert"}', "pytorch_model.bin": "x"}),
                        "loads safetensors only"),
        "no_weights": (folder("no-weights", {"config.json": '{"model_type": "bert"}'}), "has a config.json but no"),
        "decoder_only": (folder("gpt", {"config.json": '{"model_type": "gpt2"}'}), "decoder-only (causal) model"),
        "encoder_decoder": (folder("t5", {"config.json": '{"model_type": "t5", "is_encoder_decoder": true}'}),
                            "encoder-decoder model"),
        "unsupported_type": (folder("odd", {"config.json": '{"model_type": "oddformer"}'}), "is not supported"),
        "unknown": ("no-such-model-name", "nothing is downloaded"),
        "empty": ("  ", "no model given"),
    }


def test_model_load_errors_carry_a_wording_that_reads_the_same_in_english(tmp_path, monkeypatch):
    from interp.i18n import error_line, error_text
    from interp.loader import ModelLoadError, load_model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for wording, (target, phrase) in broken_folders(tmp_path).items():
        with pytest.raises(ModelLoadError) as info:
            load_model(target)
        err = info.value
        assert err.wording == wording and phrase in str(err)
        assert error_text(err, "en") == str(err), wording          # the English key is the library's line
        ja = error_text(err, "ja")
        assert phrase not in ja and ja == t(f"loaderr.{wording}", "ja", **err.params), wording
        assert error_line(err, "ja") == ja                           # translated: no lead-in needed
    # a model-load code that is also an input-error code is not worded as an input error
    with pytest.raises(ModelLoadError) as info:
        load_model("")
    assert info.value.code == "empty" and error_text(info.value, "ja") != t("inerr.empty", "ja")
    # an error without a wording keeps its English line, after a lead-in in the chosen language
    bad = tmp_path / "bad-config"
    bad.mkdir()
    (bad / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError) as info:
        load_model(str(bad))
    assert info.value.wording is None
    assert error_text(info.value, "ja") == str(info.value)
    assert error_line(info.value, "ja") == t("error.other", "ja", message=str(info.value))
    assert error_line(info.value, "en") == str(info.value)


def explore(lang: str, model: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, val in {"model": model, "text": "the cat sat on the [MASK] .", "lang": lang}.items():
        at.query_params[key] = val
    at.run()
    no_exception(at)
    return [e.value for e in at.error]


@pytest.mark.parametrize("wording", ["missing", "decoder_only", "pickle_only"])
def test_model_load_errors_on_the_explore_page_are_in_the_chosen_language(tmp_path, wording):
    target, phrase = broken_folders(tmp_path)[wording]
    ja = explore("ja", target)
    assert len(ja) == 1 and ja[0].startswith("モデルを読み込めませんでした: ") and phrase not in ja[0], ja
    en = explore("en", target)
    assert len(en) == 1 and en[0].startswith("Could not load the model: ") and phrase in en[0], en


def test_unknown_model_load_error_keeps_its_english_after_a_japanese_lead_in(tmp_path):
    bad = tmp_path / "bad-config"
    bad.mkdir()
    (bad / "config.json").write_text("{not json", encoding="utf-8")
    ja = explore("ja", str(bad))
    assert len(ja) == 1 and ja[0].startswith("モデルを読み込めませんでした: ") and "is not valid JSON" in ja[0], ja


def test_triage_log_errors_get_a_japanese_lead_in(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    at = triage("ja")
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(tmp_path / "nope.jsonl")).run()
    no_exception(at)
    assert at.error and at.error[0].value.startswith("エラーが発生しました") and "log file not found" in at.error[0].value


def test_triage_progress_line_in_both_languages():
    """The progress line under the Triage page's bar: in English exactly the library's own line, in Japanese
    with no English words left."""
    from interp.i18n import duration_text, progress_text
    from interp.triage.runner import Progress, format_seconds
    cases = [Progress(lines=64, analysed=10, skipped=2, failed=1, elapsed=3.0, rate=14.2, fraction=0.004, eta=1347,
                      unreadable=3, tokens=16),
             Progress(lines=12345, analysed=12000, skipped=0, failed=0, elapsed=9.0, rate=2500, fraction=None,
                      eta=None, tokens=99999),
             Progress(lines=5, analysed=5, skipped=0, failed=0, elapsed=1.0, rate=3, fraction=1.0, eta=7300, tokens=5)]
    assert progress_text(cases[0], "en") == ("64 lines (analysed 10, skipped 2, unreadable 3, failed 1) · 16 tokens "
                                             "at 14 tokens/s · 0.4% · ETA 22m 27s")
    assert progress_text(cases[1], "en") == "12,345 lines (analysed 12,000, skipped 0, failed 0) · 99,999 tokens at 2,500 tokens/s"
    for p in cases:
        assert progress_text(p, "en") == p.line()
        ja = progress_text(p, "ja")
        assert not re.search(r"\b(lines|analysed|skipped|failed|tokens|ETA|unreadable)\b", ja), ja
        assert f"{p.lines:,}" in ja and f"{p.tokens:,}" in ja
    assert [duration_text(s, "en") for s in (0, 59, 61, 1347, 3600, 7300)] == \
        ["0s", "59s", "1m 01s", "22m 27s", "1h 00m", "2h 01m"]
    assert format_seconds(1347) == "22m 27s"
    assert duration_text(1347, "ja") == "22分27秒" and duration_text(7300, "ja") == "2時間01分"


def test_mask_policy_help_and_lens_axis_follow_the_language():
    """The triage mask-policy help reads as the library's own policy text in English and has a Japanese wording
    for every policy; the lens pool figure's axis title follows the language."""
    from interp.i18n import EN, TABLES
    from interp.triage.scores import MASK_POLICIES
    for k, v in MASK_POLICIES.items():
        assert EN["triage.policy_help." + k] == v
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", TABLES["ja"]["triage.policy_help." + k])
    assert TABLES["ja"]["fig.probability"] != EN["fig.probability"]


def test_every_skip_reason_has_words_in_both_languages():
    from interp.i18n import EN, TABLES
    from interp.triage.readers import REASONS
    for code, text in REASONS.items():
        assert EN["triage.reason." + code] == text
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", TABLES["ja"]["triage.reason." + code])
