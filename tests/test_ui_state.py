"""The shareable view (ui.state.View): parsed once from the URL with each parameter's type and range, written
back only from typed values; one range per parameter shared by the URL, the widgets and the CLI."""
from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interp import ranges
from interp.cli.args import in_range
from ui.state import PARAMS, View, from_query, parse_param, schemes


def test_display_strings_are_refused_as_view_values():
    v = View(model="mini-bert", text="hello [MASK]")
    for name, bad in (("layer", "L"), ("head", "a"), ("query", "5: [MASK]"), ("k", 3.0), ("seed", True)):
        with pytest.raises(TypeError):
            v.replace(**{name: bad})
    with pytest.raises(ValueError):
        v.replace(k=0)
    with pytest.raises(ValueError):
        v.replace(scheme="Z")
    with pytest.raises(TypeError):
        v.replace(colour=1)
    assert v.replace(layer=2).layer == 2 and isinstance(v.replace(layer=__import__("numpy").int64(2)).layer, int)


def test_new_text_or_model_drops_the_query():
    v = View(model="m", text="a b c", query=2)
    assert v.replace(text="other").query is None
    assert v.replace(model="n").query is None
    assert v.replace(text="a b c").query == 2
    assert v.replace(text="other", query=1).query == 1


@pytest.mark.parametrize("name, raw, shown", [("k", "5000", ranges.K.hi), ("k", "0", 1), ("k", "-3", 1),
                                               ("seed", str(2**31), 2**31 - 1), ("seed", str(10**20), 2**31 - 1),
                                               ("seed", "-1", 0)])
def test_out_of_range_url_values_are_clamped_with_a_message(name, raw, shown):
    view, problems = from_query({name: raw})
    assert getattr(view, name) == shown
    assert len(problems) == 1 and f"{name}={raw}" in problems[0] and f"showing {name}={shown}" in problems[0]
    assert view.to_query()[name] == str(shown)          # the URL then says what is shown


@pytest.mark.parametrize("name, raw", [("layer", "L"), ("head", "a"), ("k", "abc"), ("seed", "1e3"),
                                       ("scheme", "Z"), ("text", "   "), ("text", "x" * (ranges.TEXT_MAX_CHARS + 1))])
def test_unreadable_url_values_are_refused_with_a_message(name, raw):
    base = View(model="m", text="hello")
    view, problems = from_query({name: raw}, base)
    assert view == base and len(problems) == 1 and name in problems[0]


def test_fit_resets_what_the_input_cannot_show():
    v = View(model="m", text="t", layer=7, head=1, query=40)
    fitted, problems = v.fit(n_layers=2, n_heads=4, n_tokens=10, default_query=3)
    assert (fitted.layer, fitted.head, fitted.query) == (0, 1, 3)
    assert len(problems) == 2 and "layer=7" in problems[0] and "query=40" in problems[1]
    fitted, problems = View(model="m", text="t").fit(2, 4, 10, 5)
    assert fitted.query == 5 and not problems


views = st.builds(
    View, model=st.sampled_from(["mini-bert", "paper", "/tmp/a folder/with & and ="]),
    text=st.text(min_size=1, max_size=60).filter(lambda s: s.strip()),
    layer=st.integers(ranges.LAYER.lo, ranges.LAYER.hi), head=st.integers(ranges.HEAD.lo, ranges.HEAD.hi),
    query=st.none() | st.integers(ranges.QUERY.lo, ranges.QUERY.hi), scheme=st.sampled_from(schemes()),
    k=st.integers(ranges.K.lo, ranges.K.hi), seed=st.integers(ranges.SEED.lo, ranges.SEED.hi))


@settings(max_examples=200, deadline=None)
@given(views)
def test_url_round_trip_reopens_the_same_view(view):
    params = view.to_query()
    assert set(params) <= set(PARAMS)
    again, problems = from_query(params)
    assert again == view and not problems


@pytest.mark.parametrize("bounds", [ranges.K, ranges.SEED, ranges.SEEDS])
def test_cli_accepts_exactly_the_ui_range(bounds):
    parse = in_range(bounds)
    assert parse(str(bounds.lo)) == bounds.lo and parse(str(bounds.hi)) == bounds.hi
    for bad in (str(bounds.lo - 1), str(bounds.hi + 1), "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=bounds.name):
            parse(bad)
        val, problem = (parse_param(bounds.name, bad) if bounds.name in ("k", "seed") else (None, "n/a"))
        assert problem                                                        # the URL says so too


@pytest.mark.parametrize("seed", [str(2**31), str(10**20), "-1"])
def test_sample_command_refuses_seeds_the_ui_cannot_show(seed, capsys):
    from interp.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--model", "mini-bert", "--text", "a [MASK] b", "--scheme", "A", "--k", "4",
              "--seed", seed, "--json", "-"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"seed must be a non-negative integer in 0–2147483647, not {int(seed)}" in err
