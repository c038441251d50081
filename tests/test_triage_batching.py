"""The batched preparation and encoding of a window give, input for input, what one call per input gives: the
one-call-per-batch tokenisation must not let the other texts of a batch change an input's ids, cut or notes."""
from __future__ import annotations

import torch

from engine_fixtures import loaded, long_text
from interp.trace import encode
from interp.triage.readers import ColumnMapping, RawRecord
from interp.triage.runner import PASS_CELLS, pass_cells, prepare, prepare_many

TEXTS = ["the cat sat on the [mask] .", "a dog", long_text(900), "the king saw <mask> house near the river bank",
         "ünïcødé 字 ##x qz", "the\u200b fox \x07 jumps", "[MASK] [MASK] over the lazy dog"]


def _lm():
    return loaded("bert")


def test_batch_encoding_equals_one_call_per_text():
    lm = _lm()
    batch = encode(lm, TEXTS)
    width = batch.input_ids.shape[1]
    for b, text in enumerate(TEXTS):
        one = encode(lm, [text])
        n = one.input_ids.shape[1]
        assert int(batch.attention_mask[b].sum()) == n
        assert torch.equal(batch.input_ids[b, :n], one.input_ids[0])
        assert torch.equal(batch.special[b, :n], one.special[0])
        assert not batch.special[b, n:].any() and not batch.attention_mask[b, n:].any()
        assert (batch.input_ids[b, n:] == lm.tokenizer.pad_token_id).all() and n <= width
        assert batch.tokens[b] == one.tokens[0]
        assert [str(x) for x in batch.notes[b]] == [str(x) for x in one.notes[0]]
        assert (batch.truncation[b] is None) == (one.truncation[0] is None)
        if one.truncation[0] is not None:
            assert batch.truncation[b].message() == one.truncation[0].message()
    assert any(t is not None for t in batch.truncation)           # the long text was cut
    # special flags agree with the tokenizer's own list of special ids
    special_ids = set(lm.tokenizer.all_special_ids)
    want = torch.tensor([[i in special_ids for i in row] for row in batch.input_ids.tolist()]) & \
        batch.attention_mask.bool()
    assert torch.equal(batch.special, want)


def test_prepare_many_equals_prepare_record_by_record():
    lm = _lm()
    recs = [RawRecord(i, i + 1, {"text": t, "id": str(i)}) for i, t in enumerate(TEXTS)]
    recs += [RawRecord(7, 8, {"id": "x"}), RawRecord(8, 9, {"text": 3}), RawRecord(9, 10, {"text": "  "}),
             RawRecord(10, 11, None, "skipped", "bad-json", "not JSON"), RawRecord(11, 12, {"text": "字字字 字字"})]
    mapping = ColumnMapping("text", id="id")
    for policy in ("auto", "mask"):
        for on_long in ("truncate", "skip"):
            many = prepare_many(recs, mapping, lm, policy, on_long)
            one = [prepare(r, mapping, lm, policy, on_long) for r in recs]
            assert many == one
    statuses = {r["status"] for r in prepare_many(recs, mapping, lm, "auto", "truncate")}
    assert {None, "skipped", "unreadable"} <= statuses


def test_pass_bound_on_the_cpu_is_the_memory_bound():
    assert pass_cells(_lm()) == PASS_CELLS


def test_encoding_through_the_plain_backend_equals_the_tokenizers_own_call():
    """The encoder's fast path (a private copy of the Rust backend, truncation and padding off) gives exactly the
    ids, types, offsets-based cut and tokens of the tokenizer's own call, for every family, and leaves the shared
    tokenizer's settings as they were."""
    import pytest
    from engine_fixtures import ARCHITECTURES
    from interp import trace as T
    texts = TEXTS + ["Tab\tand\nnew line", "\ufeffbom first", "form\x0cfeed and \x7f delete", "naïve café 東京 🎉",
                     "  leading and trailing spaces  "]
    for arch in ARCHITECTURES:
        lm = loaded(arch)
        tok = lm.tokenizer
        backend = tok.backend_tokenizer
        before = (backend.truncation, backend.padding)
        fast = T.encode(lm, texts)
        assert T.plain_backend(tok) is not None, arch
        assert (backend.truncation, backend.padding) == before, arch          # the shared tokenizer is untouched
        cleaned = [T.clean_text(t)[0] for t in texts]
        if lm.adapter.accepts_mask_aliases and getattr(tok, "mask_token", None):
            cleaned = [T._normalise_mask(t, tok.mask_token) for t in cleaned]
        own = tok(cleaned, truncation=False, add_special_tokens=True, verbose=False)
        for b, text in enumerate(cleaned):
            ids = list(own["input_ids"][b])
            if len(ids) > lm.max_tokens:
                ids = ids[:lm.max_tokens - 1] + ids[-1:]
            n = len(ids)
            assert fast.input_ids[b, :n].tolist() == ids, (arch, text[:30])
            assert fast.tokens[b] == tok.convert_ids_to_tokens(ids), (arch, text[:30])
            if fast.token_type_ids is not None and "token_type_ids" in own:
                types = list(own["token_type_ids"][b])
                types = types[:lm.max_tokens - 1] + types[-1:] if len(types) > lm.max_tokens else types
                assert fast.token_type_ids[b, :n].tolist() == types, arch
    with pytest.raises(T.InputError):
        T.clean_text("\x00\x01 \t")


def test_ascii_fast_path_of_clean_text_equals_the_character_by_character_rule():
    import unicodedata
    from interp.trace import clean_text
    for text in ["plain words", "bell\x07 and vt\x0b and ff\x0c here", "keep\ttabs\nand\r\nbreaks", "del\x7f end"]:
        got, notes = clean_text(text)
        controls = [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t\r"]
        assert got == "".join(" " if c in controls else c for c in text)
        assert len(notes) == (1 if controls else 0)
