"""Log readers: every record accounted for, line numbers right, edge cases handled and reported (no model)."""
from __future__ import annotations

import codecs
import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interp.triage.readers import ColumnMapping, LogError, LogReader, MappingError, inspect_log


def read(path, **kw):
    return list(LogReader(path, **kw))


def write_bytes(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------- JSONL ---

def test_jsonl_bom_crlf_nul_bad_utf8_blank_and_malformed(tmp_path):
    lines = [
        codecs.BOM_UTF8 + b'{"text": "first line", "id": "a"}',
        b'{"text": "crlf line", "id": "b"}',
        b'{"text": "has \x00 nul", "id": "c"}',
        b'{"text": "caf\xe9 latin-1 byte", "id": "d"}',
        b"",
        b"{not json",
        b'["an", "array"]',
        b'{"text": "last line, no newline at the end", "id": "e"}',
    ]
    p = write_bytes(tmp_path, "log.jsonl", b"\r\n".join(lines))
    recs = read(p)
    assert [r.line for r in recs] == list(range(1, 9))
    assert [r.index for r in recs] == list(range(8))
    ok = {r.line: r for r in recs if r.fields is not None}
    assert set(ok) == {1, 2, 3, 4, 8}
    assert ok[1].fields["text"] == "first line"                 # BOM skipped
    assert ok[2].fields["text"] == "crlf line"                  # no trailing \r
    assert ok[3].fields["text"] == "has  nul"
    assert any("NUL" in n for n in ok[3].notes)
    assert ok[4].fields["text"] == "caf\ufffd latin-1 byte"
    assert any("U+FFFD" in n for n in ok[4].notes)
    bad = {r.line: r for r in recs if r.fields is None}
    assert bad[5].reason_code == "blank-line"
    assert bad[6].reason_code == "malformed-json" and "column" in bad[6].reason
    assert bad[7].reason_code == "malformed-json" and "array" in bad[7].reason
    reader = LogReader(p)
    list(reader)
    assert any("byte-order mark" in n for n in reader.notes)


def test_jsonl_long_line_is_skipped_without_losing_the_next(tmp_path):
    long = json.dumps({"text": "x" * 5000})
    p = tmp_path / "log.jsonl"
    p.write_text("\n".join([json.dumps({"text": "short"}), long, json.dumps({"text": "after"})]) + "\n")
    recs = read(p, max_line_bytes=1000)
    assert [r.line for r in recs] == [1, 2, 3]
    assert recs[1].reason_code == "too-long" and "1000 bytes" in recs[1].reason
    assert recs[2].fields == {"text": "after"}
    assert len(recs[1].preview) <= 300


def test_utf16_log_is_decoded(tmp_path):
    text = "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in ["héllo", "日本語のテキスト", "three"]) + "\n"
    p = write_bytes(tmp_path, "log.jsonl", codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    recs = read(p)
    assert [r.fields["text"] for r in recs] == ["héllo", "日本語のテキスト", "three"]
    info = inspect_log(p)
    assert info.columns == ["text"] and any("UTF-16" in n for n in info.notes)


def test_explicit_encoding(tmp_path):
    p = write_bytes(tmp_path, "log.jsonl", json.dumps({"text": "café"}, ensure_ascii=False).encode("latin-1"))
    assert read(p, encoding="latin-1")[0].fields["text"] == "café"
    with pytest.raises(LogError, match="unknown text encoding"):
        read(p, encoding="no-such-codec")


# ------------------------------------------------------------------------------------------------ CSV ---

def test_csv_multiline_quotes_wrong_width_and_unterminated_quote(tmp_path):
    rows = [
        "id,text,region",
        "1,plain row,eu",
        '2,"a quoted, comma",us',
        '3,"spans',
        'two lines",eu',
        "4,too,many,fields",
        "",
        '5,"never closed,eu',
        "6,after the broken one,us",
        "7,last,eu",
    ]
    p = tmp_path / "log.csv"
    p.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    recs = read(p)
    got = {r.line: r for r in recs}
    assert [r.index for r in recs] == list(range(len(recs)))
    assert got[2].fields == {"id": "1", "text": "plain row", "region": "eu"}
    assert got[3].fields["text"] == "a quoted, comma"
    assert got[4].fields["text"] == "spans\ntwo lines"
    assert 5 not in got                                   # continuation of the record starting at line 4
    assert got[6].reason_code == "malformed-csv" and "expected 3 fields" in got[6].reason
    assert got[7].reason_code == "blank-line"
    assert got[8].reason_code == "malformed-csv"
    # the lines swallowed by the unterminated quote are read again: nothing after it is lost
    assert got[9].fields["text"] == "after the broken one"
    assert got[10].fields["text"] == "last"


def test_csv_span_limit_and_duplicate_header(tmp_path):
    rows = ["text,text", '"opens a quote,x'] + [f"line {i},y" for i in range(10)]
    p = tmp_path / "log.csv"
    p.write_text("\n".join(rows) + "\n")
    reader = LogReader(p, max_record_lines=3)
    recs = list(reader)
    assert reader.header == ["text", "text_2"]
    assert recs[0].line == 2 and recs[0].reason_code == "malformed-csv"
    assert [r.fields["text"] for r in recs[1:]] == [f"line {i}" for i in range(10)]
    assert any("repeats" in n for n in reader.notes)


def test_csv_delimiters_and_header_errors(tmp_path):
    p = tmp_path / "log.tsv"
    p.write_text("text\tlabel\nhello there\tx\n")
    assert read(p)[0].fields == {"text": "hello there", "label": "x"}
    p2 = tmp_path / "semi.csv"
    p2.write_text("text;label\nhello, there;x\n")
    assert read(p2)[0].fields == {"text": "hello, there", "label": "x"}
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LogError, match="empty"):
        read(empty)


# -------------------------------------------------------------------------------------------- Parquet ---

def test_parquet_rows_nulls_and_binary(tmp_path):
    t = pa.table({"text": pa.array([b"one", None, b"\xff bad", b"a\x00b"], pa.binary()), "n": [1, 2, 3, 4]})
    p = tmp_path / "log.parquet"
    pq.write_table(t, p, row_group_size=2)
    recs = read(p, parquet_batch=3)
    assert [r.line for r in recs] == [1, 2, 3, 4]
    assert recs[0].fields["text"] == "one" and recs[1].fields["text"] is None
    assert recs[2].fields["text"] == "\ufffd bad" and any("U+FFFD" in n for n in recs[2].notes)
    assert recs[3].fields["text"] == "ab"


def test_mapping_errors_are_clear(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text(json.dumps({"message": "hi", "id": 1}) + "\n")
    info = inspect_log(p)
    with pytest.raises(MappingError, match="text column 'text' is not in"):
        ColumnMapping("text").validate(info)
    with pytest.raises(MappingError, match="'message', 'id'"):
        ColumnMapping("text").validate(info)
    with pytest.raises(MappingError, match="slice column 'region'"):
        ColumnMapping("message", slices=("region",)).validate(info)
    with pytest.raises(MappingError, match="name of a result column"):
        ColumnMapping("message", slices=("id",)).validate(info, reserved={"id"})
    ColumnMapping("message", id="id").validate(info)
    pq_path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), pq_path)
    with pytest.raises(MappingError, match="not text"):
        ColumnMapping("text").validate(inspect_log(pq_path))
    with pytest.raises(LogError, match="not found"):
        inspect_log(tmp_path / "missing.jsonl")
    with pytest.raises(LogError, match="format"):
        inspect_log(p, fmt="xml")


# ------------------------------------------------------------------------------------------ fuzzing ---

GOOD_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n\x1c\x1d\x1e\x85\u2028\u2029\x0b\x0c"),
                    min_size=1, max_size=30).filter(lambda s: s.strip())

LINE = st.one_of(
    st.tuples(st.just("good"), GOOD_TEXT),
    st.tuples(st.just("blank"), st.sampled_from(["", "   "])),
    st.tuples(st.just("json"), st.sampled_from(["{oops", "[1, 2]", "nul\x00l", "\"just a string\"", "{\"a\": }"])),
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b)),
    st.tuples(st.just("long"), st.integers(300, 600)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=40), st.booleans(), st.booleans())
def test_fuzzed_jsonl_accounting(tmp_path_factory, items, bom, crlf):
    """Random mixes of good and bad JSONL lines: one record per physical line, in order, and every good line's
    text comes back exactly."""
    out, good = [], {}
    for i, (kind, v) in enumerate(items):
        if kind == "good":
            out.append(json.dumps({"text": v, "n": i}, ensure_ascii=bool(i % 2)).encode())
            good[i + 1] = v
        elif kind == "blank":
            out.append(v.encode())
        elif kind == "json":
            out.append(v.encode())
        elif kind == "bytes":
            out.append(v)
        else:
            out.append(json.dumps({"text": "y" * v}).encode())
    data = (b"\r\n" if crlf else b"\n").join(out) + (b"\n" if out else b"")
    p = tmp_path_factory.mktemp("fuzz") / "log.jsonl"
    p.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    recs = read(p, max_line_bytes=250)
    assert len(recs) == len(items)
    assert [r.line for r in recs] == list(range(1, len(items) + 1))
    for r in recs:
        assert (r.fields is None) == (r.status == "skipped")
        if r.fields is None:
            assert r.reason_code and r.reason
    for line, text in good.items():
        assert recs[line - 1].fields is not None and recs[line - 1].fields["text"] == text


CSV_LINE = st.one_of(
    st.tuples(st.just("good"), GOOD_TEXT),
    st.tuples(st.just("width"), st.integers(1, 4).filter(lambda n: n != 2)),
    st.tuples(st.just("quote"), st.sampled_from(['"open quote,x', 'x,"a"b'])),
    st.tuples(st.just("blank"), st.just("")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CSV_LINE, max_size=30))
def test_fuzzed_csv_accounting(tmp_path_factory, items):
    """Random good rows (properly quoted by the csv module) mixed with bad ones: every record is accounted for
    once, records come in line order, and every good row comes back with its text and its line number."""
    lines, good = ["text,n"], {}
    for i, (kind, v) in enumerate(items):
        if kind == "good":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([v, i])
            start = sum(s.count("\n") + 1 for s in lines) + 1
            good[start] = v
            lines.append(buf.getvalue())
        elif kind == "width":
            lines.append(",".join(["w"] * v))
        elif kind == "quote":
            lines.append(v)
        else:
            lines.append("")
    p = tmp_path_factory.mktemp("fuzz") / "log.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    recs = read(p)
    assert [r.index for r in recs] == list(range(len(recs)))
    assert [r.line for r in recs] == sorted(r.line for r in recs)
    assert len({r.line for r in recs}) == len(recs)
    by_line = {r.line: r for r in recs}
    for line, text in good.items():
        assert line in by_line, f"good row at line {line} lost"
        assert by_line[line].fields is not None and by_line[line].fields["text"] == text
