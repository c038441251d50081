"""A seeded random walk over the dashboard (AppTest), standing in for a long browser session: analyse varied
texts, switch among the bundled models, pick heads and queries, change scheme/k/seed, open pages, send the
stale labels a browser sends when options change under a selection, reload from the URL. After every step:
no exception, no error box; and regularly, a fresh session opened with the URL shows the same view."""
from __future__ import annotations

import random

import pytest

from interp.i18n import t
from interp.loader import available_models
from test_app import HEAD, SAMPLING, no_exception, stale_labels  # noqa: F401  (fixture re-used)

EXPLORE = "pages/1_Explore.py"
MODELS = [m for m in ("mini-bert", "paper", "cbow", "minilm") if m in available_models()]
TEXTS = ["The meeting was moved to [MASK] morning.", "Please reset my [MASK] so I can log in.",
         "It rained all [MASK].", "Where is my [MASK]?", "東京は日本の[MASK]です。",
         "I love it 😀🚀 [MASK]!",
         "- * # not markdown | [MASK] `x`", "word " * 300 + "[MASK]", "the cat sat on the mat ."]
STEPS = 36
RELOAD_EVERY = 4


def page_of(at) -> str:
    titles = [str(x.value) for x in at.title]
    if t("samp.header") in titles:
        return SAMPLING
    if t("app.title") in titles:
        return EXPLORE
    return HEAD


def widget_values(at) -> dict:
    """What the view shows: the values of the view-bound widgets present on the page, and the titles."""
    out = {"titles": [str(x.value) for x in at.title]}
    for sb in at.selectbox:
        if sb.key in ("hd_layer", "hd_head", "hd_query", "sp_layer", "sp_head", "sp_query", "sp_scheme",
                      "ov_query", "ov_pick"):
            out[sb.key] = sb.value
    for ni in at.number_input:
        if ni.key in ("sp_k", "sp_seed"):
            out[ni.key] = ni.value
    return out


def healthy(at) -> None:
    no_exception(at)
    assert not [e.value for e in at.error if "Something went wrong" in str(e.value)]


def reopen_matches(app, at) -> None:
    page = page_of(at)
    fresh = app(**dict(at.query_params)).run()
    if page != EXPLORE:
        fresh.switch_page(page).run()
    healthy(fresh)
    assert dict(fresh.query_params) == dict(at.query_params)
    assert widget_values(fresh) == widget_values(at)


@pytest.mark.skipif(len(MODELS) < 3, reason="needs the bundled models (make models)")
def test_random_walk_never_raises_and_url_reopens_the_view(app, stale_labels):  # noqa: F811
    rng = random.Random(20261203)
    at = app(model=MODELS[0]).run()
    healthy(at)

    def to(page):
        if page_of(at) != page:
            at.switch_page(page).run()

    def analyse():
        to(EXPLORE)
        at.text_area(key="in_text").input(rng.choice(TEXTS))
        at.button(key="analyze").click().run()

    def switch_model():
        to(EXPLORE)
        at.selectbox(key="in_model").select(rng.choice(MODELS)).run()

    def pick_head():
        to(EXPLORE)
        if "ov_pick" in [s.key for s in at.selectbox]:
            box = at.selectbox(key="ov_pick")
            box.select(rng.randrange(len(box.options))).run()
            if rng.random() < 0.5:
                [b for b in at.button if b.label == t("select.open_head")][0].click().run()

    def pick_query():
        keys = [s.key for s in at.selectbox if s.key in ("ov_query", "hd_query", "sp_query")]
        if keys:
            box = at.selectbox(key=keys[0])
            box.select(rng.randrange(len(box.options))).run()

    def head_page():
        to(HEAD)
        keys = [s.key for s in at.selectbox]
        if "hd_layer" in keys and rng.random() < 0.5:
            box = at.selectbox(key=rng.choice(["hd_layer", "hd_head"]))
            box.select(rng.randrange(len(box.options))).run()

    def sampling_page():
        to(SAMPLING)
        keys = [s.key for s in at.selectbox]
        if "sp_scheme" not in keys:
            return
        what = rng.choice(["scheme", "k", "seed", "head"])
        if what == "scheme":
            box = at.selectbox(key="sp_scheme")
            box.select(rng.choice(box.options)).run()
        elif what == "k":
            at.number_input(key="sp_k").set_value(rng.choice([1, 2, 5, 4096])).run()
        elif what == "seed":
            at.number_input(key="sp_seed").set_value(rng.choice([0, 7, 2**31 - 1])).run()
        else:
            box = at.selectbox(key="sp_head")
            box.select(rng.randrange(len(box.options))).run()

    def stale():
        keys = [s.key for s in at.selectbox if s.key]
        if keys:
            stale_labels[rng.choice(keys)] = rng.choice(["Layer 0 · Head 0 — an old role", "3: [MASK]", "L"])
            at.run()

    actions = [analyse, analyse, switch_model, pick_head, pick_query, head_page, sampling_page, stale]
    done, pages, models = [], set(), set()
    for step in range(STEPS):
        action = rng.choice(actions)
        action()
        healthy(at)
        done.append(action.__name__)
        pages.add(page_of(at))
        models.add(at.query_params.get("model"))
        if step % RELOAD_EVERY == RELOAD_EVERY - 1:
            reopen_matches(app, at)
    reopen_matches(app, at)
    assert set(done) == {a.__name__ for a in actions}, done           # the walk really did every kind of action
    assert pages == {EXPLORE, HEAD, SAMPLING} and len(models) >= 3, (pages, models)
