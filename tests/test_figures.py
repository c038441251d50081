"""The dashboard's figures and tables show exactly the numbers of independent computations: the model's own
forward pass (attention probabilities, hidden states, logits) and closed forms computed here from the model's
weights, in float32 at ~1e-5 relative tolerance. Also: exports are self-contained, colour scales are
colour-blind safe, and the browser payload does not grow with n where it must not."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from engine_fixtures import loaded, long_text
from interp import decompose
from interp.figures import common
from interp.figures import explore as fx
from interp.figures import head as fh
from interp.figures import sampling as fs
from interp.i18n import EN, t
from interp.lenses import LENSES
from interp.trace import encode, trace_text

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the cat sat on the [MASK] near the river bank ."
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def lm():
    return loaded("bert")


@pytest.fixture(scope="module")
def trace(lm):
    return trace_text(lm, TEXT)


@pytest.fixture(scope="module")
def reference(lm):
    """Independent numbers from the model's own forward pass (transformers' outputs) and its weights."""
    enc = encode(lm, [TEXT])
    with torch.no_grad():
        out = lm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                       token_type_ids=enc.token_type_ids, output_attentions=True, output_hidden_states=True)
    bert = lm.model.bert
    layers = []
    for l, block in enumerate(bert.encoder.layer):
        x = out.hidden_states[l][0].double()
        probs = out.attentions[l][0].double()                                   # H × n × n
        H = probs.shape[0]
        att = block.attention
        dh = att.self.query.weight.shape[0] // H
        v = (x @ att.self.value.weight.double().T + att.self.value.bias.double()).view(-1, H, dh).transpose(0, 1)
        q = (x @ att.self.query.weight.double().T + att.self.query.bias.double()).view(-1, H, dh).transpose(0, 1)
        k = (x @ att.self.key.weight.double().T + att.self.key.bias.double()).view(-1, H, dh).transpose(0, 1)
        Wo, bo = att.output.dense.weight.double(), att.output.dense.bias.double()
        msgs = torch.stack([v[h] @ Wo[:, h * dh:(h + 1) * dh].T for h in range(H)])   # H × n × d
        centred = msgs - msgs.mean(-1, keepdim=True)
        context = torch.einsum("hij,hjd->ihd", probs, v).reshape(x.shape[0], -1)
        dense = context @ Wo.T + bo
        pre = dense + x
        sigma = torch.sqrt(pre.var(-1, unbiased=False) + att.output.LayerNorm.eps)
        norms = centred.norm(dim=-1)                                              # H × n
        firing = probs * norms[:, None, :] / sigma[None, :, None]
        layers.append(dict(probs=probs, norms=norms, firing=firing, scores=q @ k.transpose(1, 2) / math.sqrt(dh),
                           msgs=msgs))
    return dict(layers=layers, logits=out.logits[0].double(), special=enc.special[0])


def close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol)


def trace_by_name(fig: go.Figure, name: str):
    found = [tr for tr in fig.data if tr.name == name]
    assert found, f"no trace named {name!r}: {[tr.name for tr in fig.data]}"
    return found[0]


# --- overview ------------------------------------------------------------------------------------------------

def test_overview_grid_matches_forward_pass(lm, trace, reference):
    ov = decompose.overview(lm, trace)
    query = fx.default_query(trace, lm.tokenizer.mask_token_id)
    assert trace.tokens[query] == "[MASK]"
    fig = fx.overview_figure(ov, query, (1, 2))
    L, H = len(ov.role), len(ov.role[0])
    special = reference["special"].numpy()
    for name, expected in ((t("ov.firing"), lambda p, r: r["firing"][:, query].sum(-1)),
                           (t("ov.eff"), lambda p, r: torch.exp(-(p * torch.where(p > 0, p.log(), 0 * p)).sum(-1)).mean(-1)),
                           (t("ov.special"), lambda p, r: p[..., special].sum(-1).mean(-1))):
        tr = trace_by_name(fig, name)
        got = np.full((L, H), np.nan)
        for (l, h), val in zip(np.asarray(tr.customdata), np.asarray(tr.marker.color)):
            got[l, h] = val
        want = np.stack([expected(r["probs"], r).numpy() for r in reference["layers"]])
        close(got, want)
    # every head appears once per panel, and its role letter is the role the decomposition gave it
    roles = {}
    for tr in fig.data:
        if tr.name in fx.ROLE_SHORT:
            for (l, h), letter in zip(np.asarray(tr.customdata), tr.text):
                assert letter == fx.ROLE_SHORT[tr.name]
                roles[(int(l), int(h))] = tr.name
    assert roles == {(l, h): ov.role[l][h] for l in range(L) for h in range(H)}


def test_overview_table_and_click(lm, trace, reference):
    ov = decompose.overview(lm, trace)
    df = fx.overview_table(ov, 3)
    assert len(df) == len(ov.role) * len(ov.role[0])
    row = df[(df[t("ov.layer")] == 1) & (df[t("ov.head")] == 2)].iloc[0]
    close(row[t("ov.firing")], reference["layers"][1]["firing"][2, 3].sum())
    top = int(reference["layers"][1]["probs"][2, 3].argmax())
    assert row[t("ov.col.top_expert")] == f"{top}·{trace.tokens[top]}"
    event = {"selection": {"points": [{"customdata": [1, 3], "x": 3, "y": 1}]}}
    assert fx.selected_head(event) == (1, 3)
    assert fx.selected_head({"selection": {"points": [{"customdata": {"0": 2, "1": 0}}]}}) == (2, 0)
    assert fx.selected_head({"selection": {"points": []}}) is None
    assert fx.selected_head(None) is None


def test_tokens_and_mask_predictions(lm, trace, reference):
    df = fx.tokens_table(trace)
    assert list(df[t("tokens.col.token")]) == trace.tokens
    assert list(df[t("tokens.col.special")]) == [bool(s) for s in reference["special"].tolist()]
    md = fx.tokens_markdown(trace.tokens, trace.special.tolist(), 6)
    assert md.count(":gray[") == int(reference["special"].sum())
    preds = fx.mask_predictions(trace, lm.tokenizer, top=5)
    i = trace.tokens.index("[MASK]")
    p = torch.softmax(reference["logits"][i], -1)
    val, idx = torch.topk(p, 5)
    assert list(preds[t("pred.col.token")]) == lm.tokenizer.convert_ids_to_tokens(idx.tolist())
    close(preds[t("pred.col.prob")], val.numpy())
    assert set(preds[t("pred.col.position")]) == {i}
    no_mask = trace_text(lm, "the cat sat .")
    assert len(fx.mask_predictions(no_mask, lm.tokenizer)) == 0


def test_no_predictions_without_mlm_head():
    enc_lm = loaded("bert", with_head=False)
    tr = trace_text(enc_lm, TEXT)
    assert not tr.has_mlm_head
    assert len(fx.mask_predictions(tr, enc_lm.tokenizer)) == 0


# --- one head --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,head", [(0, 1), (1, 3)])
def test_head_figures_match_forward_pass(lm, trace, reference, layer, head):
    hv = decompose.head_view(lm, trace, layer, head)
    ref = reference["layers"][layer]
    query = 6
    fig = fh.gate_heatmap(hv, query, "gate")
    close(fig.data[0].z, ref["probs"][head])
    fig = fh.gate_heatmap(hv, query, "firing")
    close(fig.data[0].z, ref["firing"][head])
    row = fh.query_row(hv, query)
    close(row.data[0].y, ref["probs"][head, query])
    close(row.data[1].y, ref["firing"][head, query])
    for show, key in (("gate", "probs"), ("firing", "firing")):      # the page's one chart: heatmap over the row
        both = fh.head_figure(hv, query, show)
        close(both.data[0].z, ref[key][head])
        for steps, want in ((both.data[1], ref["probs"][head, query]), (both.data[2], ref["firing"][head, query])):
            n = len(want)                  # one step per expert at its centre j, the end values repeated at the edges
            close(steps.y[1:-1], want)
            assert steps.y[0] == steps.y[1] and steps.y[-1] == steps.y[-2]
            assert list(steps.x) == [-0.5, *range(n), n - 0.5] and list(steps.customdata) == [0, *range(n), n - 1]
            assert steps.line.shape == "hvh" and steps.fill == "tozeroy"
        assert [d.yaxis for d in both.data] == ["y", "y2", "y3"] and {d.xaxis for d in both.data} == {"x"}
        shape = both.layout.shapes[0]                                  # the selected query's row is outlined
        assert (shape.y0, shape.y1) == (query - 0.5, query + 0.5)
    norms = fh.message_norms_figure(hv, trace.special.tolist())
    close(norms.data[0].y, ref["norms"][head])
    top = fh.top_experts_table(hv, query, 4)
    order = np.argsort(-ref["probs"][head, query].numpy(), kind="stable")[:4]
    assert list(top[t("head.col.position")]) == order.tolist()
    close(top[t("head.col.gate")], ref["probs"][head, query].numpy()[order])
    close(top[t("head.col.firing")], ref["firing"][head, query].numpy()[order])
    text = fh.caption(hv, query)
    assert f"{ref['probs'][head, query].max().item():.0%}" in text
    assert trace.tokens[int(order[0])] in text and hv.role in text


def test_profile_figure_sums(lm, trace):
    hv = decompose.head_view(lm, trace, 0, 0)
    fig = fh.profile_figure(hv, window=trace.n)
    for tr in fig.data:       # with the window covering every offset, each profile is a distribution
        close(np.sum(tr.y), 1.0, rtol=1e-5)


def test_anchored_lens_pool_equals_model(lm, trace, reference):
    """Anchored lens: Σ_j a_ij z_j = y_i exactly, so the geometric pool shown equals the model's distribution."""
    query = 6
    res = LENSES["anchored"](lm, trace, 1, 2, query)
    s = fh.lens_summary(res, trace.tokens, lm.tokenizer, top=5)
    p_model = torch.softmax(reference["logits"][query], -1)
    ids = lm.tokenizer.convert_tokens_to_ids(list(s.compare["token"]))
    close(s.compare[t("lens.pool_model")], p_model[ids].numpy())
    close(s.compare[t("lens.pool_pool")], p_model[ids].numpy(), rtol=1e-4, atol=1e-6)
    arith = (res.gates.double()[:, None] * torch.softmax(res.experts.double(), -1)).sum(0)
    close(s.compare[t("lens.pool_arith")], arith[ids].numpy())
    assert s.mixture_max_rel_err < 1e-4
    fig = fh.pool_figure(s)
    close(fig.data[1].y, s.compare[t("lens.pool_pool")])
    # per-expert top-1 of softmax(z_j)
    top = torch.softmax(res.experts.double(), -1).max(-1)
    assert list(s.experts[t("lens.col.top")]) == lm.tokenizer.convert_ids_to_tokens(top.indices.tolist())
    close(s.experts[t("lens.col.prob")], top.values.numpy())
    close(s.experts[t("lens.col.gate")], reference["layers"][1]["probs"][2, query].numpy())
    bars = fh.lens_experts_figure(s, k=4)
    close(sorted(bars.data[0].x, reverse=True), np.sort(reference["layers"][1]["probs"][2, query].numpy())[::-1][:4])


def test_vocabulary_lens_expert_tops(lm, trace, reference):
    """Vocabulary lens: expert j's top token is argmax of W_dec c(o_j) + b, computed here from the weights."""
    res = LENSES["vocabulary"](lm, trace, 0, 3, 2)
    s = fh.lens_summary(res, trace.tokens, lm.tokenizer)
    msgs = reference["layers"][0]["msgs"][3]
    dec = lm.model.cls.predictions.decoder
    z = (msgs - msgs.mean(-1, keepdim=True)) @ dec.weight.double().T + dec.bias.double()
    assert list(s.experts[t("lens.col.top")]) == lm.tokenizer.convert_ids_to_tokens(z.argmax(-1).tolist())


def test_embedding_lens_summary_uses_cosine():
    enc_lm = loaded("bert", with_head=False)
    tr = trace_text(enc_lm, TEXT)
    res = LENSES["anchored"](enc_lm, tr, 0, 0, 2)
    s = fh.lens_summary(res, tr.tokens, enc_lm.tokenizer)
    cos = torch.nn.functional.cosine_similarity(res.experts.double(), res.model_output.double()[None], dim=-1)
    close(s.experts["cosine to output"], cos.numpy())
    assert fh.pool_figure(s) is None and s.compare.empty


def test_layer0_split_figures_sum_to_scores(lm, trace, reference):
    head, query = 2, 6
    gss = decompose.gate_score_split(lm, trace, head)
    fig = fh.gate_score_split_figure(gss.parts, gss.total, query, trace.tokens)
    stacked = sum(np.asarray(tr.y, dtype=np.float64) for tr in fig.data if isinstance(tr, go.Bar))
    want = reference["layers"][0]["scores"][head, query].numpy()
    close(stacked, want, rtol=1e-4, atol=1e-5)
    close(fig.data[-1].y, want, rtol=1e-4, atol=1e-5)
    cbow = decompose.cbow_split(lm, trace, head)
    fig = fh.cbow_split_figure(cbow.norms(), trace.tokens)
    for tr, key in zip(fig.data, ("word", "position", "segment_bias")):
        close(tr.y, getattr(cbow, f"{key}_part").norm(dim=-1).numpy())
    table = fh.score_split_table(gss.parts, gss.total, query, trace.tokens)
    close(table[list(gss.parts)].sum(1), want, rtol=1e-4, atol=1e-5)


# --- sampled vs dense ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(lm, trace):
    from interp.sampling.report import sampling_report
    return sampling_report(lm, trace, "A", 4, 6, 7, downstream=False)


def test_sampled_rows_are_the_reports_draws(lm, trace, report):
    """The rows the page shows are the report's own draws: their TV to the dense row, averaged over seeds,
    equals the report's per-query TV; scheme A rows are counts / k."""
    import app_support as ui
    layer, head, query = 1, 2, 6
    dense, sampled = ui.sampled_rows(str(lm.folder), TEXT, "A", 4, 6, 7, layer, head, query)
    close(dense, trace.layers[layer].probs[head, query].numpy())
    tv = 0.5 * np.abs(sampled - dense[None]).sum(-1)
    close(tv.mean(), report.per_query["tv"][report.layers.index(layer), head, query], rtol=1e-5)
    close(sampled * 4, np.round(sampled * 4), atol=1e-5)
    close(sampled.sum(-1), np.ones(6))
    fig = fs.rows_figure(dense, sampled, trace.tokens, 2, query, layer, head, 7)
    close(fig.data[0].y, dense)
    close(fig.data[1].y, sampled[2])
    close(fig.data[2].y, sampled.mean(0))
    table = fs.row_table(dense, sampled, trace.tokens)
    close(table["sampled r5"], sampled[5])


def test_error_grid_and_variance(report, lm):
    grid = fs.head_grid(report, "tv", n_layers=lm.n_layers, n_heads=lm.n_heads)
    for row in report.heads:
        close(grid[row["layer"], row["head"]], row["tv_mean"])
    close(fs.head_grid(report, "worst5", nospecial=True)[1, 3], report.head(1, 3)["worst5_share_nospecial"])
    fig = fs.error_heatmap(grid, "tv", (1, 2))
    close(fig.data[0].z, grid)
    var, bias2, mse = (report.per_query[k][1, 2] for k in ("var_rel", "bias2_rel", "mse_rel"))
    fig = fs.variance_figure(var, bias2, report.tokens)
    close(np.asarray(fig.data[0].y, np.float64) + np.asarray(fig.data[1].y, np.float64), mse, rtol=1e-4)


def test_concentration_stats_closed_form():
    rng = np.random.default_rng(0)
    err = rng.gamma(0.5, size=41)
    err[3] = np.nan
    s = fs.concentration_stats(err)
    e = err[~np.isnan(err)]
    top = math.ceil(0.05 * e.size)
    sq = sorted((x * x for x in e), reverse=True)
    assert s["queries"] == 40
    close(s["worst5_share"], sum(sq[:top]) / sum(sq))
    close([s["mean"], s["p95"], s["max"]], [e.mean(), np.percentile(e, 95), e.max()])
    fig = fs.concentration_figure(err, [f"t{i}" for i in range(41)])
    close(fig.data[0].y, np.sort(e)[::-1])
    close(fig.data[1].y[top - 1], s["worst5_share"])
    assert math.isnan(fs.concentration_stats(np.array([np.nan]))["mean"])


def test_flops_table_closed_forms():
    from interp.sampling.schemes import NEEDS_FULL_QK, SCHEMES, dense_flops, scheme_flops
    n, d, dm, k = 128, 64, 768, 16
    df = fs.flops_table(list(SCHEMES), scheme_flops, dense_flops, NEEDS_FULL_QK, n, n, d, dm, k).set_index("scheme")
    close(df.loc["dense", "FLOPs per head"], 4 * n * n * d)
    close(df.loc["B-uniform", "ratio to dense"], k / n)                 # SAMPLING.md: B ≈ 4nkd
    close(df.loc["D", "ratio to dense"], 8 * n * k * d / (4 * n * n * d))  # D ≈ 8nmd with m = k
    close(df.attrs["attention_share"], n / (n + 6 * dm))
    assert round(df.attrs["attention_share"], 2) == 0.03                # ≈ 3% at n = 128 for BERT-base
    assert set(df.index) == {"dense", *SCHEMES}


def test_downstream_table(lm):
    from interp.sampling import downstream_effect
    res = downstream_effect(lm, encode(lm, [TEXT]), "C", 2, 3, 0, layers=[0], heads=[1])
    df = fs.downstream_table(res).set_index("metric")
    assert df.loc["compared at", "value"] == "mask"
    close(float(df.loc["flip rate across seeds", "value"]), res.flip_rate[0], rtol=1e-5)
    close(float(df.loc["top-1 agreement", "value"]), res.top1_agreement[0], rtol=1e-5)


# --- exports, colours, payload, strings -----------------------------------------------------------------------

def all_figures(lm, trace, report):
    ov = decompose.overview(lm, trace)
    hv = decompose.head_view(lm, trace, 0, 1)
    s = fh.lens_summary(LENSES["vocabulary"](lm, trace, 0, 1, 6), trace.tokens, lm.tokenizer)
    gss = decompose.gate_score_split(lm, trace, 1)
    grid = fs.head_grid(report, "kl")
    dense, sampled = trace.layers[0].probs[1, 6].numpy(), np.tile(trace.layers[0].probs[1, 6].numpy(), (2, 1))
    return [fx.overview_figure(ov, 6, (0, 1)), fh.gate_heatmap(hv, 6), fh.gate_heatmap(hv, 6, "firing"),
            fh.head_figure(hv, 6), fh.head_figure(hv, 6, "firing"),
            fh.query_row(hv, 6), fh.message_norms_figure(hv, trace.special.tolist()), fh.profile_figure(hv),
            fh.lens_experts_figure(s), fh.pool_figure(s), fh.cbow_split_figure(decompose.cbow_split(lm, trace, 1).norms(),
                                                                             trace.tokens),
            fh.gate_score_split_figure(gss.parts, gss.total, 6, trace.tokens), fs.error_heatmap(grid, "kl"),
            fs.rows_figure(dense, sampled, trace.tokens, 0, 6, 0, 1, 0),
            fs.variance_figure(report.per_query["var_rel"][0, 1], report.per_query["bias2_rel"][0, 1], trace.tokens),
            fs.concentration_figure(report.per_query["rel_err"][0, 1], trace.tokens)]


def _stops(scale) -> list[str]:
    return [str(c).lower().replace(" ", "") for _, c in scale]


def test_colour_scales_are_colour_blind_safe(lm, trace, report):
    """Sequential data on viridis/cividis, signed data on the blue–orange scale, categories in Okabe–Ito."""
    import plotly.colors as pc
    safe_scales = [_stops(pc.get_colorscale(name)) for name in ("viridis", "cividis")] + [_stops(common.DIVERGING)]
    allowed_colours = {c.lower() for c in common.OKABE_ITO}

    def check_scale(scale):
        if scale is None:
            return
        if isinstance(scale, str):
            assert scale.lower() in ("viridis", "cividis"), scale
        else:
            assert _stops(scale) in safe_scales, scale

    seen = 0
    for fig in all_figures(lm, trace, report):
        for tr in fig.data:
            check_scale(getattr(tr, "colorscale", None))
            marker = getattr(tr, "marker", None)
            if marker is not None:
                check_scale(marker.colorscale)
                colours = marker.color
                if isinstance(colours, str):
                    assert colours.lower() in allowed_colours, colours
                    seen += 1
                elif colours is not None and len(colours) and isinstance(colours[0], str):
                    assert {c.lower() for c in colours} <= allowed_colours
                    seen += 1
            line = getattr(tr, "line", None)
            if line is not None and isinstance(getattr(line, "color", None), str):
                assert line.color.lower() in allowed_colours
    assert seen > 10


def test_html_export_is_self_contained(lm, trace):
    hv = decompose.head_view(lm, trace, 0, 0)
    html = common.to_html(fh.gate_heatmap(hv, 3), "gates L0 H0")
    assert html.lstrip().lower().startswith("<html") or html.lstrip().lower().startswith("<!doctype")
    assert len(html) > 1_000_000                                    # plotly.js itself is inlined
    assert not re.search(r"<script[^>]+src=", html), "no external scripts (no CDN)"
    assert "Plotly.newPlot" in html
    assert '"filename":"gates-L0-H0"' in html.replace(" ", "")      # PNG export name in the modebar config
    assert common.safe_filename("a/b c?.png") == "a-b-c-.png"


def test_payload_does_not_ship_all_heads():
    """At n = 512 the overview ships O(L·H) numbers and one head's heatmap one n × n float32 array."""
    big = loaded("bert")
    long = trace_text(big, long_text(600))
    assert long.n == big.max_tokens or long.n >= 512
    short = trace_text(big, "the cat sat .")
    size = lambda fig: len(pio.to_json(fig, validate=False))
    ov_long = size(fx.overview_figure(decompose.overview(big, long, with_checks=False), 5, (0, 0)))
    ov_short = size(fx.overview_figure(decompose.overview(big, short, with_checks=False), 1, (0, 0)))
    assert ov_long < 1.2 * ov_short + 2000 and ov_long < 100_000
    hv = decompose.head_view(big, long, 1, 1)
    heat = size(fh.gate_heatmap(hv, 5))
    n = long.n
    assert heat < 4 * n * n * 4 / 3 * 1.1 + 60_000                  # base64 float32 (JSON escapes "/"), nothing else n²
    assert heat < 3_000_000


def test_every_string_key_exists():
    sources = [ROOT / "app.py", ROOT / "app_support.py", *sorted((ROOT / "pages").glob("[124]_*.py")),
               *sorted((ROOT / "interp" / "figures").glob("*.py"))]
    keys = set()
    for path in sources:
        keys |= set(re.findall(r"\bt[r]?\(\s*\"([a-z0-9_.]+)\"", path.read_text(encoding="utf-8")))
    assert keys, "no keys found: the pattern is wrong"
    missing = sorted(k for k in keys if k not in EN)
    assert not missing, missing
    for family in ("lens.vocabulary", "lens.anchored", "lens.counterfactual", "samp.where.head", "samp.where.layer",
                   "samp.where.all", "head.show_gate", "head.show_firing", "l0.word", "l0.position", "l0.segment_bias"):
        assert family in EN
    assert t("head.header", "xx", layer=1, head=2) == "Layer 1, head 2"   # unknown language falls back to English
    with pytest.raises(KeyError):
        t("no.such.key")
