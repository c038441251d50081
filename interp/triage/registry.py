"""The registry of triage scores: every score a run can write, its results columns, its rankings and its cost.

Two kinds of entry:

* ``core``: the scores every run computes together in one scoring stage (``scores.score_batch``: they share
  the dense pass and the sampled passes); its columns are the fields of :class:`~interp.triage.schema.Scored`.
* **optional scores** (off unless asked for): one module each in ``interp/triage/extras/`` that calls
  :func:`register` at import. A score is a function ``compute(lm, texts, settings, options) -> list[dict]``
  (one dict of its columns per cleaned text, each depending only on that text, the settings and the options,
  never on the batch), an options dataclass (with ``check()``), its columns, its rankings (SQL over the results
  table) and its cost in words and as a factor of forward passes.

Everything else derives from here: the results schema (``store.schema_for``), the fields the scoring stage
returns (local engine, worker processes and Ray actors alike), the query layer's rankings
(``ResultsQuery.rankings``), the CLI's ``--rank-by`` choices and the page's ranking list. Adding an optional
score therefore touches one file in ``extras/`` (plus its test, and its label in the i18n tables if the page is
to name it).

An optional score is switched on per run through ``ScoreSettings.extras``: a tuple of ``(name, options as
JSON)`` pairs (hashable, and part of the run's identity, so a resumed run keeps the same scores). When a score is
off its columns are absent from the results (the schema is exactly the core one). Torch-free at import.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from .schema import score_columns

KINDS = {"int": pa.int32(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}


@dataclass(frozen=True)
class TriageScore:
    """One registered score (see the module docstring)."""
    name: str
    columns: tuple[tuple[str, str], ...]                  # (column, int | float | bool | str)
    rankings: tuple[tuple[str, str, str], ...] = ()       # (ranking name, SQL expression, ASC | DESC)
    compute: Callable[..., list[dict]] | None = None      # None: the core stage (scores.score_batch)
    options: type | None = None                           # a dataclass with check(lm) raising ValueError
    cost: str = ""                                        # in words, for the CLI help and the page
    cost_factor: Callable[[Any], float] | None = None     # options → extra forward-pass rows per input (at most)
    label_key: str | None = None                          # i18n key of its name on the page

    def arrow_columns(self) -> list[tuple[str, pa.DataType]]:
        return [(c, KINDS[k]) for c, k in self.columns]


CORE = TriageScore(
    name="core",
    columns=tuple((n, {pa.int32(): "int", pa.float64(): "float", pa.bool_(): "bool", pa.string(): "str"}[t])
                  for n, t in score_columns()),
    rankings=(("flip_rate", "flip_rate", "DESC"), ("kl", "kl", "DESC"), ("drift", "cosine", "ASC"),
              ("confidence", "confidence", "ASC"), ("margin", "margin", "ASC")),
    cost="one dense pass per input plus S sampled passes (1 + S forward passes)")

_REGISTRY: dict[str, TriageScore] = {}
_LOADED = False


def register(score: TriageScore) -> TriageScore:
    """Add an optional score (called by its module in ``extras/`` at import)."""
    if score.name == "core" or (score.name in _REGISTRY and _REGISTRY[score.name] is not score):
        raise ValueError(f"a triage score named {score.name!r} is already registered")
    taken = {c for c, _ in CORE.columns} | {c for s in _REGISTRY.values() if s.name != score.name
                                            for c, _ in s.columns}
    clash = [c for c, _ in score.columns if c in taken]
    if clash:
        raise ValueError(f"triage score {score.name!r}: columns {', '.join(clash)} are already taken")
    _REGISTRY[score.name] = score
    return score


def _load() -> None:
    """Import every module of ``extras/`` once (each registers its score)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import extras
    for mod in sorted(m.name for m in pkgutil.iter_modules(extras.__path__)):
        if not mod.startswith("_"):
            importlib.import_module(f"{extras.__name__}.{mod}")


def optional_scores() -> dict[str, TriageScore]:
    """The registered optional scores, by name."""
    _load()
    return dict(_REGISTRY)


def get(name: str) -> TriageScore:
    scores = optional_scores()
    if name not in scores:
        raise ValueError(f"unknown triage score {name!r}: choose one of {', '.join(scores) or '(none)'}")
    return scores[name]


def all_columns() -> list[str]:
    """Every column any registered optional score may write (reserved: a slice field may not use them)."""
    return [c for s in optional_scores().values() for c, _ in s.columns]


# --- per-run selection (ScoreSettings.extras) -------------------------------------------------------------

def encode_options(options) -> str:
    return json.dumps(dataclasses.asdict(options), sort_keys=True)


def with_score(settings, name: str, **options):
    """``settings`` with the optional score ``name`` switched on (options: its options dataclass's fields);
    raises ValueError (one line) for an unknown score or bad options."""
    sc = get(name)
    try:
        opts = sc.options(**options) if sc.options is not None else None
    except TypeError as err:
        raise ValueError(f"triage score {name!r}: {err}") from None
    if opts is not None and hasattr(opts, "check"):
        opts.check(None)
    extras = tuple((n, o) for n, o in settings.extras if n != name) + ((name, encode_options(opts) if opts else "{}"),)
    return dataclasses.replace(settings, extras=tuple(sorted(extras)))


def enabled(settings) -> list[tuple[TriageScore, Any]]:
    """The optional scores switched on in ``settings``, with their options objects, in name order."""
    out = []
    for name, opts in sorted(getattr(settings, "extras", ()) or ()):
        sc = get(name)
        kw = json.loads(opts) if opts else {}
        out.append((sc, sc.options(**kw) if sc.options is not None else None))
    return out


def enabled_columns(settings) -> list[tuple[str, pa.DataType]]:
    """(column, arrow type) of the optional scores switched on in ``settings``."""
    return [c for sc, _ in enabled(settings) for c in sc.arrow_columns()]


def check(settings, lm=None) -> None:
    """Validate the optional-score selection of ``settings`` (ValueError, one line)."""
    for sc, opts in enabled(settings):
        if opts is not None and hasattr(opts, "check"):
            opts.check(lm)


def compute_enabled(lm, texts: list[str], settings) -> list[dict]:
    """The columns of every optional score switched on in ``settings``, per text (empty dicts when none)."""
    out: list[dict] = [{} for _ in texts]
    for sc, opts in enabled(settings):
        got = sc.compute(lm, texts, settings, opts)
        if len(got) != len(texts):  # pragma: no cover - a score module's bug
            raise RuntimeError(f"triage score {sc.name!r} returned {len(got)} rows for {len(texts)} texts")
        names = [c for c, _ in sc.columns]
        for row, vals in zip(out, got):
            row.update({c: vals.get(c) for c in names})
    return out


def rankings(columns: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Rankings of the optional scores (name → (SQL expression, direction)); with ``columns``, only those whose
    score's columns are all present (a run where the score was on)."""
    out = {}
    for sc in optional_scores().values():
        if columns is not None and not all(c in columns for c, _ in sc.columns):
            continue
        for name, expr, direction in sc.rankings:
            out[name] = (expr, direction)
    return out


def extra_cost_factor(settings) -> float:
    """Forward-pass rows per input the switched-on optional scores add, at most."""
    return float(sum(sc.cost_factor(opts) for sc, opts in enabled(settings) if sc.cost_factor is not None))


def identity(settings) -> dict:
    """``asdict(settings)`` without ``extras`` when none is on (so runs made before optional scores existed
    keep their identity and resume)."""
    d = dataclasses.asdict(settings)
    if not d.get("extras"):
        d.pop("extras", None)
    return d


def settings_from_dict(d: dict):
    """A ScoreSettings from its ``asdict`` form (as sent to worker processes and Ray actors)."""
    from .scores import ScoreSettings
    s = dict(d)
    for k in ("layers", "heads"):
        if s.get(k) is not None:
            s[k] = tuple(s[k])
    s["extras"] = tuple(tuple(x) for x in s.get("extras") or ())
    return ScoreSettings(**s)


__all__ = ["CORE", "TriageScore", "register", "optional_scores", "get", "with_score", "enabled",
           "enabled_columns", "compute_enabled", "rankings", "identity", "settings_from_dict", "check",
           "extra_cost_factor", "all_columns"]
