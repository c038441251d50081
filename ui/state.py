"""The shareable view as one typed, validated value: what the URL holds and what every page shows.

``View`` is parsed once from the URL's query parameters (each with its type and range, see
:mod:`interp.ranges`), changed only through :meth:`View.replace` (which refuses values of the wrong type or out
of range), fitted to the analysed input with :meth:`View.fit`, and written back to the URL only from its typed
fields by :meth:`View.to_query`. Widget labels and other display strings never become view state.

No Streamlit here: the session glue is :mod:`ui.session`.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Mapping

from interp import ranges
from interp.i18n import DEFAULT_LANG, t

PARAMS = ("model", "text", "layer", "head", "query", "scheme", "k", "seed")
INT_RANGES = {"layer": ranges.LAYER, "head": ranges.HEAD, "query": ranges.QUERY, "k": ranges.K,
              "seed": ranges.SEED}
DEFAULT_SCHEME = "A"
DEFAULTS = {"layer": 0, "head": 0, "query": None, "scheme": DEFAULT_SCHEME, "k": 8, "seed": 0}


def schemes() -> list[str]:
    """The sampling schemes' names (the ``scheme`` parameter's values)."""
    from interp.sampling import SCHEMES
    return list(SCHEMES)


def _as_int(name: str, value) -> int:
    """``value`` as a plain int, or ``TypeError`` (a display string such as a widget label is refused)."""
    if isinstance(value, bool) or isinstance(value, (str, bytes, float)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} {str(value)[:40]!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


@dataclass(frozen=True)
class View:
    """model and text (None until chosen), layer, head, query (None: the input's default), scheme, k, seed."""
    model: str | None = None
    text: str | None = None
    layer: int = DEFAULTS["layer"]
    head: int = DEFAULTS["head"]
    query: int | None = None
    scheme: str = DEFAULT_SCHEME
    k: int = DEFAULTS["k"]
    seed: int = DEFAULTS["seed"]

    def __post_init__(self):
        for name in ("model", "text"):
            val = getattr(self, name)
            if val is not None and not isinstance(val, str):
                raise TypeError(f"{name} must be a string, not {type(val).__name__}")
        if self.text is not None and (not self.text.strip() or len(self.text) > ranges.TEXT_MAX_CHARS):
            raise ValueError(f"text must be non-empty and at most {ranges.TEXT_MAX_CHARS} characters")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must be non-empty")
        for name, bounds in INT_RANGES.items():
            val = getattr(self, name)
            if val is None and name == "query":
                continue
            val = _as_int(name, val)
            if val not in bounds:
                raise ValueError(f"{name} must be in {bounds.describe()}, not {val}")
            object.__setattr__(self, name, val)
        if not isinstance(self.scheme, str) or self.scheme not in schemes():
            raise ValueError(f"unknown scheme {self.scheme!r}")

    def replace(self, **changes) -> View:
        """A new view with ``changes`` (validated: ``TypeError``/``ValueError`` on a bad value). A new model or
        text drops the query (it indexes the old input's tokens)."""
        unknown = set(changes) - set(PARAMS)
        if unknown:
            raise TypeError(f"not view parameters: {sorted(unknown)}")
        if any(name in changes and changes[name] != getattr(self, name) for name in ("model", "text")) \
                and "query" not in changes:
            changes["query"] = None
        return dataclasses.replace(self, **changes)

    def to_query(self) -> dict[str, str]:
        """The URL's query parameters for this view (unset model/text/query left out)."""
        out = {}
        for name in PARAMS:
            val = getattr(self, name)
            if val is not None:
                out[name] = str(val)
        return out

    def fit(self, n_layers: int, n_heads: int, n_tokens: int, default_query: int,
            lang: str = DEFAULT_LANG) -> tuple[View, list[str]]:
        """This view brought into range for an analysed input (layer < n_layers, head < n_heads, query <
        n_tokens; an unset query becomes ``default_query``), with one message per value that was out of range."""
        problems, changes = [], {}
        for name, n in (("layer", n_layers), ("head", n_heads), ("query", n_tokens)):
            val = getattr(self, name)
            if val is not None and val >= n:
                problems.append(t("error.param_model", lang, name=name, value=val, hi=n - 1,
                                  shown=DEFAULTS[name] if name != "query" else default_query))
                changes[name] = DEFAULTS[name] if name != "query" else default_query
        if self.query is None:
            changes["query"] = default_query
        return (dataclasses.replace(self, **changes) if changes else self), problems


def parse_param(name: str, raw: str, lang: str = DEFAULT_LANG) -> tuple[object, str | None]:
    """One URL parameter as its typed value, and a message when it was refused (value None) or clamped."""
    raw = str(raw)
    if name in INT_RANGES:
        bounds = INT_RANGES[name]
        try:
            val = int(raw.strip())
        except ValueError:
            return None, t("error.param", lang, name=name, value=raw[:40],
                           reason=t("error.reason_int", lang, range=bounds.describe()))
        if val not in bounds:
            shown = bounds.clamp(val)
            return shown, t("error.param_clamped", lang, name=name, value=raw[:40], range=bounds.describe(),
                            shown=shown)
        return val, None
    if name == "text":
        if not raw.strip():
            return None, t("error.param", lang, name=name, value=raw[:40], reason=t("error.reason_empty", lang))
        if len(raw) > ranges.TEXT_MAX_CHARS:
            return None, t("error.param", lang, name=name, value=raw[:40] + "…",
                           reason=t("error.reason_long", lang, n=len(raw), max=ranges.TEXT_MAX_CHARS))
        return raw, None
    if name == "scheme":
        if raw not in schemes():
            return None, t("error.param", lang, name=name, value=raw[:40],
                           reason=t("error.reason_scheme", lang, choices=", ".join(schemes())))
        return raw, None
    if name == "model":
        if not raw.strip():
            return None, t("error.param", lang, name=name, value=raw[:40], reason=t("error.reason_empty", lang))
        return raw, None
    raise KeyError(name)


def from_query(params: Mapping[str, str], base: View | None = None, lang: str = DEFAULT_LANG,
               only: set[str] | None = None) -> tuple[View, list[str]]:
    """The view described by URL ``params`` on top of ``base`` (default: the empty view), with a message for
    every parameter that was refused or clamped. ``only`` limits which parameters are read."""
    view = base or View()
    changes, problems = {}, []
    for name in PARAMS:
        if name not in params or (only is not None and name not in only):
            continue
        val, problem = parse_param(name, params[name], lang)
        if problem:
            problems.append(problem)
        if val is not None:
            changes[name] = val
    if changes:
        view = view.replace(**changes)
    return view, problems
