"""The decomposition against the model's own forward pass, for every architecture and for real MiniLM weights.

Tolerance: relative 1e-5 in float32 (row-wise ‖·‖ for vectors)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM

from interp import decompose as D
from interp.trace import capture, trace_text
from tests.engine_fixtures import ARCHITECTURES, loaded, long_text, minilm, model_folder

RTOL = 1e-5
TEXT = "the quick brown fox [MASK] over the lazy dog near the river bank ."


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def eager_reference(model_type: str, with_head: bool = True):
    """The same checkpoint loaded through transformers' own eager attention (no project code in the path)."""
    if model_type == "expertlens-paper":
        return None
    cls = AutoModelForMaskedLM if with_head else AutoModel
    return cls.from_pretrained(str(model_folder(model_type, with_head)), attn_implementation="eager").eval()


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "expertlens-paper"])
def test_capture_matches_transformers_eager_with_padding(arch):
    lm = loaded(arch)
    ref = eager_reference(arch)
    bt = capture(lm, ["the cat sat", TEXT, "a dog ran to the city and saw the king"])
    enc = bt.encoded
    kwargs = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
    if enc.token_type_ids is not None:
        kwargs["token_type_ids"] = enc.token_type_ids
    with torch.no_grad():
        out = ref(**kwargs, output_attentions=True, output_hidden_states=True)
    for b in range(3):
        n = int(enc.attention_mask[b].sum())
        for l in range(lm.n_layers):
            assert rel(bt.probs[l][b, :, :n, :n], out.attentions[l][b, :, :n, :n]) < RTOL
            if n < enc.input_ids.shape[1]:
                # padded keys get gate 0 from every real query (padded queries are excluded everywhere)
                assert float(bt.probs[l][b, :, :n, n:].abs().max()) == 0.0
        # the model's last hidden state (ModernBERT: the trace's rebuilt last layer through the final norm)
        assert rel(bt.example(b).final_hidden, out.hidden_states[-1][b, :n]) < RTOL
        assert rel(bt.output[b, :n], out.logits[b, :n]) < RTOL


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_identities_every_architecture(arch):
    lm = loaded(arch)
    bt = capture(lm, ["the cat sat on the big red house", TEXT])   # example 0 is padded in the batch
    for b in range(2):
        tr = bt.example(b)
        overview_checks = D.overview(lm, tr).checks  # every layer at once: what the UI and CLI show
        assert overview_checks["identity_dense_max_rel_err"] < RTOL
        assert (overview_checks["identity_ln_max_rel_err"] is None) == (arch == "expertlens-paper")
        if arch != "expertlens-paper":
            assert overview_checks["identity_ln_max_rel_err"] < RTOL
        for explicit in (True, False):  # over the messages themselves, and the associative form
            checks = D.identity_checks(lm, tr, explicit=explicit)
            assert checks["identity_dense_max_rel_err"] < RTOL
            assert checks["layer_output_max_rel_err"] < RTOL
            if arch == "expertlens-paper":
                assert checks["identity_ln_max_rel_err"] is None
            else:
                assert checks["identity_ln_max_rel_err"] < RTOL


def test_identity_error_is_detected_when_a_gate_is_wrong():
    """The check can fail: a perturbed gate breaks identity 1."""
    lm = loaded("bert")
    tr = trace_text(lm, TEXT)
    tr.layers[1].probs = tr.layers[1].probs.clone()
    tr.layers[1].probs[0] = torch.roll(tr.layers[1].probs[0], 1, dims=-1)   # head 0 listens to the wrong keys
    for explicit in (True, False):
        assert D.identity_checks(lm, tr, explicit=explicit)["identity_dense_max_rel_err"] > 1e-3
    checks = D.overview(lm, tr).checks
    assert checks["identity_dense_max_rel_err"] > 1e-3 and checks["identity_ln_max_rel_err"] > 2 * RTOL  # fails the exactness bar


@pytest.mark.parametrize("n_target", [8, 128, 512])
def test_identities_real_minilm(n_target):
    lm = minilm()
    tr = trace_text(lm, long_text(4 * n_target))
    tr_n = tr if tr.n == n_target else None
    if n_target == 512:
        assert tr.n == 512 and tr.truncation is not None
    else:
        # pick a text of exactly n_target tokens
        words = long_text(n_target).split()
        while True:
            tr_n = trace_text(lm, " ".join(words))
            if tr_n.n <= n_target:
                break
            words = words[:-1]
        assert tr_n.n == n_target
        tr = tr_n
    for explicit in (True, False):
        checks = D.identity_checks(lm, tr, explicit=explicit)
        assert checks["identity_dense_max_rel_err"] < RTOL
        assert checks["identity_ln_max_rel_err"] < RTOL
        assert checks["layer_output_max_rel_err"] < RTOL
    ov = D.overview(lm, tr).checks
    assert ov["identity_dense_max_rel_err"] < RTOL and ov["identity_ln_max_rel_err"] < RTOL
    # the captured gates are the probabilities transformers' eager attention computes
    ref = AutoModel.from_pretrained(str(lm.folder), attn_implementation="eager").eval()
    with torch.no_grad():
        out = ref(input_ids=tr.input_ids[None], output_attentions=True)
    for l in (0, lm.n_layers - 1):
        assert rel(tr.layers[l].probs, out.attentions[l][0]) < RTOL
    assert rel(tr.final_hidden, out.last_hidden_state[0]) < RTOL


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_layer0_cbow_split_and_gate_score_split_are_exact(arch):
    lm = loaded(arch)
    tr = trace_text(lm, TEXT)
    refusal = lm.adapter.gate_split_refusal
    for h in range(tr.n_heads):
        cs = D.cbow_split(lm, tr, h)
        assert cs.max_rel_err() < RTOL
        if refusal:   # rotary / disentangled positions: positions live in the gate, not in the messages
            assert float(cs.position_part.norm()) == 0 and float(cs.word_part.norm()) > 0
            with pytest.raises(D.SplitRefused, match="split"):
                D.gate_score_split(lm, tr, h)
            continue
        gs = D.gate_score_split(lm, tr, h)
        scale = max(float(abs(gs.total).max()), 1e-6)
        assert gs.max_abs_err() / scale < RTOL
        # the split scores are the model's own: their softmax is the captured gate
        p = torch.softmax(torch.as_tensor(gs.total, dtype=torch.float64), -1)
        assert float((p - tr.layers[0].probs[h].double()).abs().max()) < 1e-5
        # the parts really are different things (not one part carrying everything)
        if arch != "expertlens-paper":
            assert float(cs.word_part.norm()) > 0 and float(cs.position_part.norm()) > 0
        assert ("relative position" in gs.parts) == (arch == "mpnet")


def test_cbow_split_real_minilm():
    lm = minilm()
    tr = trace_text(lm, "The capital of France is [MASK], and it is lovely in spring.")
    for h in (0, 5, 11):
        assert D.cbow_split(lm, tr, h).max_rel_err() < RTOL
        gs = D.gate_score_split(lm, tr, h)
        assert gs.max_abs_err() / float(abs(gs.total).max()) < RTOL


def test_firing_effective_experts_and_profile_closed_forms():
    lm = loaded("bert")
    tr = trace_text(lm, TEXT)
    lt = tr.layers[1]
    f = D.firing_strength(lm, lt, 1)
    msgs = D.messages(lm, lt, 1)
    h, i, j = 2, 3, 5
    c = msgs[h, j] - msgs[h, j].mean()
    assert abs(float(f[h, i, j]) - float(lt.probs[h, i, j] * c.norm() / lt.ln_sigma[i])) < 1e-6
    # effective experts: 1 for a one-hot row, n for a uniform row
    one_hot = torch.zeros(1, 4, 6)
    one_hot[..., 2] = 1
    assert torch.allclose(D.effective_experts(one_hot), torch.ones(1, 4))
    assert torch.allclose(D.effective_experts(torch.full((1, 4, 6), 1 / 6)), torch.full((1, 4), 6.0))
    prof = D.positional_profile(lt, tr.special)
    assert abs(prof.mass.sum(-1) - 1).max() < 1e-6  # float32 softmax rows sum to 1 within 1e-6
    # mass at offset −1 equals the mean of the sub-diagonal gates
    n = tr.n
    sub = torch.stack([lt.probs[:, i, i - 1] for i in range(1, n)], -1).sum(-1) / n
    assert abs(prof.mass[:, n - 2] - sub.double().numpy()).max() < 1e-7


def test_roles_from_constructed_profiles():
    """Roles follow the stated thresholds on hand-built gates."""
    lm = loaded("bert")
    tr = trace_text(lm, "the cat sat on the mat and the dog ran")
    n = tr.n
    lt = tr.layers[0]
    H = lt.probs.shape[0]
    probs = torch.zeros(H, n, n)
    for i in range(n):
        probs[0, i, max(i - 1, 0)] = 1            # previous token
        probs[1, i, min(i + 1, n - 1)] = 1        # next token
        probs[2, i, n - 1] = 1                    # [SEP]
        probs[3, i, 1:n - 1] = 1 / (n - 2)        # uniform over words
    lt.probs = probs
    ov = D.overview(lm, tr, with_checks=False)
    assert ov.role[0] == ["previous-token", "next-token", "delimiter sink", "broad (CBOW-like)"]


def test_overview_top_expert_and_special_mass_match_gates():
    lm = minilm()
    tr = trace_text(lm, "Bidirectional attention is a mixture of continuous word experts.")
    ov = D.overview(lm, tr)
    for l in (0, 3):
        p = tr.layers[l].probs
        assert (ov.top_expert[l] == p.argmax(-1).numpy()).all()
        assert abs(ov.special_mass[l] - p[..., tr.special].sum(-1).numpy()).max() < 1e-6
        assert abs(ov.effective_experts[l] - torch.exp(-(p * p.log()).sum(-1)).numpy()).max() < 1e-4


def test_overview_special_excluded_variants_and_firing_match_brute_force():
    """The overview's fast forms (entropy split, matmuls) against plain loops over the definitions."""
    lm = loaded("bert")
    tr = trace_text(lm, "the cat sat on the mat and the dog ran")
    ov = D.overview(lm, tr, with_checks=False, with_top_firing=True)
    assert D.overview(lm, tr, with_checks=False).top_firing_expert is None   # computed only when asked for
    spec = tr.special
    for l in range(tr.n_layers):
        lt = tr.layers[l]
        f = D.firing_strength(lm, lt, l)
        assert abs(ov.firing_total[l] - f.sum(-1).numpy()).max() < 1e-5 * float(f.sum(-1).abs().max())
        assert (ov.top_firing_expert[l] == f.argmax(-1).numpy()).all()
        for h in range(tr.n_heads):
            for i in range(tr.n):
                if spec[i]:
                    assert np.isnan(ov.effective_experts_nospecial[l, h, i])
                    continue
                row = lt.probs[h, i].double()[~spec]
                row = row / row.sum()
                want = float(torch.exp(-(row * row.log()).sum()))
                assert abs(ov.effective_experts_nospecial[l, h, i] - want) < 1e-4 * want
        prof = D.positional_profile(lt, spec, exclude_special=True)
        n = tr.n
        q_idx = [i for i in range(n) if not spec[i]]
        for h in (0, tr.n_heads - 1):
            want = np.zeros(2 * n - 1)
            for i in q_idx:
                row = lt.probs[h, i].double() * (~spec).double()
                row = row / row.sum()
                for j in range(n):
                    want[j - i + n - 1] += float(row[j]) / len(q_idx)
            assert abs(prof.mass[h] - want).max() < 1e-6


def test_corpus_profile_of_one_text_equals_its_own_profile():
    lm = loaded("bert")
    text = "the cat sat on the mat and the dog ran"
    tr = trace_text(lm, text)
    cp = D.corpus_profile(lm, [text], window=3)
    n = tr.n
    for l in range(tr.n_layers):
        prof = D.positional_profile(tr.layers[l], tr.special, exclude_special=True)
        assert abs(cp.mass[l] - prof.mass[:, n - 1 - 3:n + 3]).max() < 1e-6
        assert abs(cp.mass[l].sum(-1) + cp.beyond[l] - 1).max() < 1e-5
    # two copies of the same text: the same averages; roles as for the single input
    cp2 = D.corpus_profile(lm, [text, text], window=3)
    assert abs(cp2.mass - cp.mass).max() < 1e-6 and cp2.texts == 2
    ov = D.overview(lm, tr, with_checks=False)
    assert abs(cp.special_mass - ov.mean_special_mass).max() < 1e-5
