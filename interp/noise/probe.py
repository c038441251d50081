"""The noise probe: does a prediction survive a perturbed input, under dense attention and under sampled attention?

For one input text and a model (MLM head), and for every perturbation p, rate ρ and noise seed ν:

* **reference** = the model's prediction on the *clean* text under *dense* attention (top-1 t_ref and the
  distribution p_ref at each compared position);
* **dense flip** at a position: top-1 of the dense pass on the noisy text ≠ t_ref;
* **sampled flip** for scheme X, budget k and sampling replicate r: top-1 of the pass with X substituted (all
  layers and heads unless told otherwise) on the noisy text ≠ t_ref. Replicate r of an input uses the generator
  of (seed, input key, layer, r) (``interp.sampling.seeds``) for the clean text and for *every* noisy version,
  so all conditions share the same sampling seeds (paired);
* **floor** for X, k: the sampled flip rate on the clean text itself (sampling seeds alone, no noise). Any
  robustness claim for sampled attention must be read against it; at rate 0 the noisy text is the clean one and
  the sampled flip rate equals the floor exactly;
* also KL(p_ref ‖ p_noisy) (nats), the rank of t_ref under the noisy logits (0 = still the top-1) and the
  sampled *self* flip (noisy sampled top-1 ≠ clean sampled top-1 of the same replicate);
* paired comparison: units are (input, variant, position, noise seed, replicate), the dense flip of a unit being
  that of its (input, variant, position, noise seed). Difference of flip rates sampled − dense with a cluster
  bootstrap interval (clusters: inputs; noise seeds when there is one input) and the exact McNemar test on the
  discordant units (units of one input are correlated, so read its p-value as indicative);
* which heads' gates moved: per (layer, head), the total variation between the clean and the noisy dense gate
  rows, both aggregated to the clean text's words (token rows averaged over a word's tokens, key mass summed per
  word; [CLS]/[SEP]-like tokens are their own buckets), averaged over the query words that survive.

Compared positions: the [MASK] tokens of the text. A text without [MASK] is probed at up to ``mask_cap`` of its
words, masked one at a time (evenly spread; or the word indices given in ``mask_words``), each a *variant* of
the input. Perturbations never touch [MASK] or special tokens, so the m-th [MASK] of a noisy text is the m-th of
the clean one. A model without an MLM head is compared by the cosine between the clean-dense and the noisy mean
-pooled embeddings (no flips, no McNemar).

Deterministic schemes (top-k ``C``, ``null``) are run with one replicate and counted S times, which changes no
rate. Identical (variant, text) pairs are run once (e.g. every noisy text at rate 0), which changes no number:
a pass's draws depend only on (seed, input key, layer, replicate), never on the batch.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from ..loader import LoadedModel
from ..sampling.downstream import SamplingPlan, replicate, resolve_targets, subset
from ..sampling.schemes import SCHEMES, check_params
from ..trace import InputError, capture_encoded, clean_text, encode, forward, model_output
from . import stats
from .perturb import PERTURBATIONS, Noisy, perturb, protected_tokens, segment

DETERMINISTIC = frozenset({"C", "null"})
DEFAULT_PERTURBATIONS = ("typo", "word-drop")
DEFAULT_RATES = (0.0, 0.1, 0.2)
DEFAULT_SCHEMES = ("A", "C")


@dataclass(frozen=True)
class NoiseSettings:
    """What to probe. ``noise_seeds`` noisy versions per (perturbation, rate); ``seeds`` sampling replicates;
    ``seed`` the user-visible seed both derive from; ``layers``/``heads`` where schemes are substituted (None =
    all); ``mask_cap`` words masked in turn when a text has no [MASK]; ``max_rows`` rows per forward pass."""
    perturbations: tuple[str, ...] = DEFAULT_PERTURBATIONS
    rates: tuple[float, ...] = DEFAULT_RATES
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    ks: tuple[int, ...] = (8,)
    noise_seeds: int = 4
    seeds: int = 4
    seed: int = 0
    mask_cap: int = 4
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    max_rows: int = 64
    n_boot: int = 2000

    def check(self) -> None:
        """Raise ValueError with one clear line for a bad setting."""
        if not self.perturbations:
            raise ValueError("no perturbation chosen: pick at least one of " + ", ".join(PERTURBATIONS))
        for p in self.perturbations:
            if p not in PERTURBATIONS:
                raise ValueError(f"unknown perturbation '{p}': choose from {', '.join(PERTURBATIONS)}")
        if not self.rates:
            raise ValueError("no rate given: give rates between 0 and 1, e.g. 0,0.1,0.2")
        for r in self.rates:
            if not (isinstance(r, (int, float)) and 0.0 <= float(r) <= 1.0) or math.isnan(float(r)):
                raise ValueError(f"rate must be between 0 and 1, not {r!r}")
        for s in self.schemes:
            if s not in SCHEMES:
                raise ValueError(f"unknown scheme '{s}': choose one of {', '.join(SCHEMES)}")
        if self.schemes and not self.ks:
            raise ValueError("no k given: give at least one budget k")
        for k in self.ks:
            check_params(self.schemes[0] if self.schemes else "A", k)
        for name, v in (("noise seeds", self.noise_seeds), ("seeds", self.seeds), ("mask cap", self.mask_cap),
                        ("max rows", self.max_rows)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")

    def configs(self) -> list[tuple[str, int]]:
        return [(s, int(k)) for s in self.schemes for k in self.ks]


@dataclass
class Variant:
    """One probed version of an input: its clean ``text`` (with [MASK]), where it is compared (``kind``: "mask",
    "mask-each" or "pooled") and, for mask-each, the word that was masked."""
    text: str
    kind: str
    masked_word: str | None = None


@dataclass
class Tally:
    """Totals of one cluster (input, noise seed) for one (perturbation, rate, scheme, k). ``units`` counts
    (position, replicate) pairs; ``dense_flips`` counts dense flips broadcast over replicates (so
    dense_flips/units is the dense flip rate)."""
    units: int = 0
    positions: int = 0
    dense_flips: int = 0
    sampled_flips: int = 0
    self_flips: int = 0
    b: int = 0
    c: int = 0
    dense_kl: float = 0.0
    sampled_kl: float = 0.0
    dense_rank: float = 0.0
    sampled_rank: float = 0.0
    dense_cos: float = 0.0
    sampled_cos: float = 0.0
    texts: int = 0
    changed: int = 0

    def add(self, other: "Tally") -> None:
        for f in self.__dataclass_fields__:
            setattr(self, f, getattr(self, f) + getattr(other, f))


@dataclass
class InputProbe:
    """Everything the probe learnt about one input: the variants, their clean predictions and noisy versions
    (for display), and the per-(noise seed) tallies the summary aggregates."""
    key: str
    text: str
    variants: list[Variant]
    has_mlm_head: bool
    clean_top: list[list[str]]                                   # per variant, per compared position
    noisy: dict[tuple[str, float], list[list[Noisy]]]            # (p, rate) → per noise seed, per variant
    noisy_top: dict[tuple[str, float], list[list[list[str]]]]    # dense top-1 tokens, same nesting
    tallies: dict[tuple[str, float, str, int], list[Tally]]      # per noise seed
    dense_tallies: dict[tuple[str, float], list[Tally]]          # dense-only metrics per noise seed
    floors: dict[tuple[str, int], Tally]                         # clean sampled vs reference
    gate_tv: dict[tuple[str, float], np.ndarray]                 # L × H, mean over noise seeds and variants
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ variants ---

def _mask_token(lm: LoadedModel) -> str | None:
    return getattr(lm.tokenizer, "mask_token", None)


def normalised(lm: LoadedModel, text: str) -> str:
    """The text as the model reads it before tokenising (control characters and BOM removed, every mask
    spelling turned into the model's mask token), so that perturbations and alignments work on it."""
    text, _ = clean_text(text)
    mask = _mask_token(lm)
    if mask:
        for alias in ("[MASK]", "[mask]", "[Mask]", "<mask>"):
            if alias != mask:
                text = text.replace(alias, mask)
    return text


def variants_of(lm: LoadedModel, text: str, mask_cap: int = 4, mask_words: list[int] | None = None) -> list[Variant]:
    """The variants probed for ``text`` (see the module docstring). Raises InputError on empty text."""
    text = normalised(lm, text)
    if not lm.has_mlm_head:
        return [Variant(text, "pooled")]
    mask = _mask_token(lm)
    segs = segment(text, protected_tokens(lm.tokenizer))
    if any(s.kind == "protected" and s.text == mask for s in segs):
        return [Variant(text, "mask")]
    units = [i for i, s in enumerate(segs) if s.kind != "space"]
    words = [i for i in units if segs[i].kind == "word" and re.search(r"\w", segs[i].text)]
    if not words:
        raise InputError("the text has no word to mask and no [MASK]: nothing to predict")
    if mask_words:
        chosen = []
        for w in mask_words:
            if not 0 <= int(w) < len(units) or units[int(w)] not in words:
                raise InputError(f"word {w} cannot be masked: the text has words 0..{len(units) - 1} "
                                 "(special tokens and punctuation excluded)")
            chosen.append(units[int(w)])
    else:
        n = min(mask_cap, len(words))
        chosen = [words[int(round(x))] for x in np.linspace(0, len(words) - 1, n)] if n > 1 else [words[0]]
        chosen = list(dict.fromkeys(chosen))
    out = []
    for i in chosen:
        word = segs[i].text
        m = re.search(r"\w+", word)
        masked = word[:m.start()] + mask + word[m.end():]
        out.append(Variant("".join(masked if j == i else s.text for j, s in enumerate(segs)), "mask-each", m.group(0)))
    return out


# ------------------------------------------------------------------------------------------ model runs ---

@dataclass
class _Run:
    """Outputs of one distinct (variant, text): positions, dense log-probs at them (P × V) or pooled (d), the
    dense gates (L × H × n × n), the token→word map, and the sampled log-probs per (scheme, k): R × P × V."""
    positions: list[int]
    dense: torch.Tensor
    probs: list[torch.Tensor]
    buckets: list[int]
    sampled: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)


def _token_words(lm: LoadedModel, text: str, n_tokens: int) -> list[int]:
    """For each of the first ``n_tokens`` tokens of ``text``: the index of its word unit (words and protected
    tokens, in order), −1 for the first special token and −2 for any other token outside every unit."""
    segs = segment(text, protected_tokens(lm.tokenizer))
    spans, pos = [], 0
    for s in segs:
        if s.kind != "space":
            spans.append((pos, pos + len(s.text)))
        pos += len(s.text)
    enc = lm.tokenizer(text, truncation=False, return_offsets_mapping=True, add_special_tokens=True, verbose=False)
    out = []
    for j, (a, b) in enumerate(list(enc["offset_mapping"])[:n_tokens]):
        if b <= a:
            out.append(-1 if j == 0 else -2)
            continue
        unit = next((u for u, (s, e) in enumerate(spans) if s <= a < e), -2)
        out.append(unit)
    while len(out) < n_tokens:
        out.append(-2)
    if len(enc["input_ids"]) > n_tokens and n_tokens > 0:      # truncated: the last kept token is the final special
        out[n_tokens - 1] = -2
    return out


def _positions(lm: LoadedModel, ids: list[int]) -> list[int]:
    mask_id = getattr(lm.tokenizer, "mask_token_id", None)
    return [i for i, t in enumerate(ids) if mask_id is not None and t == mask_id]


def _run_dense(lm: LoadedModel, texts: list[str], max_rows: int) -> list[_Run]:
    out: list[_Run] = []
    for start in range(0, len(texts), max_rows):
        chunk = texts[start:start + max_rows]
        enc = encode(lm, chunk)
        bt = capture_encoded(lm, enc)
        for b, text in enumerate(chunk):
            n = int(enc.attention_mask[b].sum())
            ids = enc.input_ids[b, :n].tolist()
            if lm.has_mlm_head:
                pos = _positions(lm, ids)
                dense = torch.log_softmax(bt.output[b, pos].to(torch.float32), -1)
            else:
                pos = []
                dense = bt.output[b].to(torch.float32)
            probs = [p[b, :, :n, :n].to(torch.float32).cpu() for p in bt.probs]
            out.append(_Run(pos, dense.cpu(), probs, _token_words(lm, text, n)))
    return out


def _run_sampled(lm: LoadedModel, texts: list[str], keys: list[str], runs: list[_Run], scheme: str, k: int,
                 reps: int, seed: int, targets: dict[int, list[int]], max_rows: int) -> None:
    h, m = check_params(scheme, k)
    per_pass = max(1, max_rows // reps)
    for start in range(0, len(texts), per_pass):
        rows = list(range(start, min(len(texts), start + per_pass)))
        enc = encode(lm, [texts[i] for i in rows])
        lengths = [int(x) for x in enc.attention_mask.sum(1).tolist()]
        plan = SamplingPlan(lm.adapter.layer_of, scheme, k, h, m, seed, [keys[i] for i in rows], lengths,
                            list(range(reps)), targets)
        rep = replicate(enc, reps)
        with torch.no_grad():
            out = model_output(lm, forward(lm, rep, plan), rep).to(torch.float32)
        out = out.reshape(reps, len(rows), *out.shape[1:])
        for j, i in enumerate(rows):
            if lm.has_mlm_head:
                runs[i].sampled[(scheme, k)] = torch.log_softmax(out[:, j, runs[i].positions], -1).cpu()
            else:
                runs[i].sampled[(scheme, k)] = out[:, j].cpu()


# ------------------------------------------------------------------------------------------ comparisons ---

def _compare(ref: torch.Tensor, other: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip (top-1 ≠ reference top-1), KL(ref ‖ other) and the rank of the reference top-1, per position.
    ``ref``: P × V log-probs; ``other``: … × P × V log-probs. Ties in the rank count only strictly larger."""
    top = ref.argmax(-1)
    flip = (other.argmax(-1) != top).numpy()
    kl = (ref.exp() * (ref - other)).double().sum(-1).numpy()
    at = torch.gather(other, -1, top.expand(*other.shape[:-1])[..., None])
    rank = (other > at).sum(-1).numpy()
    return flip, kl, rank


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).numpy()


def word_gate_rows(probs: torch.Tensor, buckets: list[int], n_units: int, unit_of=None) -> dict[int, torch.Tensor]:
    """Gate rows of one layer (H × n × n) aggregated to words: for each word unit u with tokens, the mean of its
    tokens' rows with the key mass summed per bucket (clean word units 0..U−1, then the first special token,
    then everything else). ``unit_of`` maps this text's units to clean units (identity when None)."""
    H, n, _ = probs.shape
    def col(u):
        if u >= 0:
            return unit_of[u] if unit_of is not None else u
        return n_units if u == -1 else n_units + 1
    cols = torch.tensor([col(u) for u in buckets[:n]], dtype=torch.long)
    agg = torch.zeros(H, n, n_units + 2, dtype=probs.dtype).index_add_(2, cols, probs)      # H × n × buckets
    rows: dict[int, list[int]] = {}
    for i, u in enumerate(buckets[:n]):
        if u >= 0:
            rows.setdefault(col(u), []).append(i)
    return {cu: agg[:, idx].mean(1) for cu, idx in rows.items()}


def gate_movement(clean: _Run, noisy: _Run, word_map: list[int | None], n_units: int) -> np.ndarray:
    """L × H mean TV between the clean and noisy word-level gate rows over the clean words that survive."""
    inv = {k: i for i, k in enumerate(word_map) if k is not None}
    L = len(clean.probs)
    H = clean.probs[0].shape[0]
    out = np.zeros((L, H))
    for l in range(L):
        a = word_gate_rows(clean.probs[l], clean.buckets, n_units)
        b = word_gate_rows(noisy.probs[l], noisy.buckets, n_units, inv)
        common = [u for u in a if u in b]
        if not common:
            out[l] = np.nan
            continue
        tv = torch.stack([0.5 * (a[u] - b[u]).abs().sum(-1) for u in common])      # U × H
        out[l] = tv.mean(0).double().numpy()
    return out


def noise_seed_of(seed: int, nu: int) -> int:
    """The perturbation seed of noise replicate ν under the user-visible ``seed``."""
    return int(seed) * 1_000_003 + int(nu)


def probe_text(lm: LoadedModel, text: str, settings: NoiseSettings, key: str | None = None,
               mask_words: list[int] | None = None) -> InputProbe:
    """Probe one input (see the module docstring). ``key`` is intrinsic to the input (its line number, an id);
    default: the normalised text itself. Raises InputError on an empty text, ValueError on bad settings."""
    settings.check()
    variants = variants_of(lm, text, settings.mask_cap, mask_words)
    key = normalised(lm, text) if key is None else str(key)
    protected = protected_tokens(lm.tokenizer)
    conds = [(p, float(r)) for p in settings.perturbations for r in settings.rates]
    noisy: dict[tuple[str, float], list[list[Noisy]]] = {}
    items: dict[tuple[int, str], int] = {}
    texts, keys, owner = [], [], []

    def item(v: int, t: str) -> int:
        if (v, t) not in items:
            items[(v, t)] = len(texts)
            texts.append(t)
            keys.append(f"{key}|{v}")
            owner.append(v)
        return items[(v, t)]

    for v, var in enumerate(variants):
        item(v, var.text)
    for cond in conds:
        noisy[cond] = [[perturb(var.text, cond[0], cond[1], noise_seed_of(settings.seed, nu), protected)
                        for var in variants] for nu in range(settings.noise_seeds)]
        for per_seed in noisy[cond]:
            for v, nz in enumerate(per_seed):
                item(v, nz.text)

    runs = _run_dense(lm, texts, settings.max_rows)
    targets = resolve_targets(lm.n_layers, lm.n_heads, settings.layers, settings.heads)
    S = settings.seeds
    for scheme, k in settings.configs():
        reps = 1 if scheme in DETERMINISTIC else S
        _run_sampled(lm, texts, keys, runs, scheme, k, reps, settings.seed, targets, settings.max_rows)

    tok = lm.tokenizer
    notes: list[str] = []
    clean_runs = [runs[items[(v, var.text)]] for v, var in enumerate(variants)]
    clean_top = [[tok.convert_ids_to_tokens(int(i)) for i in r.dense.argmax(-1).tolist()] if lm.has_mlm_head else []
                 for r in clean_runs]
    n_units = [len([s for s in segment(var.text, protected) if s.kind != "space"]) for var in variants]

    def sampled(run: _Run, cfg) -> torch.Tensor:
        x = run.sampled[cfg]
        return x.expand(S, *x.shape[1:]) if x.shape[0] == 1 and S > 1 else x

    floors: dict[tuple[str, int], Tally] = {}
    for cfg in settings.configs():
        t = Tally()
        for v, cr in enumerate(clean_runs):
            xs = sampled(cr, cfg)
            if lm.has_mlm_head:
                flip, kl, rank = _compare(cr.dense, xs)
                t.units += flip.size
                t.sampled_flips += int(flip.sum())
                t.sampled_kl += float(kl.sum())
                t.sampled_rank += float(rank.sum())
            else:
                t.units += xs.shape[0]
                t.sampled_cos += float(_cos(xs, cr.dense[None]).sum())
        floors[cfg] = t

    tallies: dict[tuple[str, float, str, int], list[Tally]] = {}
    dense_tallies: dict[tuple[str, float], list[Tally]] = {}
    noisy_top: dict[tuple[str, float], list[list[list[str]]]] = {}
    gate_tv: dict[tuple[str, float], np.ndarray] = {}
    for cond in conds:
        per_seed_dense, tops, gates = [], [], []
        per_seed_cfg: dict[tuple[str, int], list[Tally]] = {cfg: [] for cfg in settings.configs()}
        for nu in range(settings.noise_seeds):
            dt = Tally()
            cts = {cfg: Tally() for cfg in settings.configs()}
            top_row = []
            for v, cr in enumerate(clean_runs):
                nz = noisy[cond][nu][v]
                nr = runs[items[(v, nz.text)]]
                dt.texts += 1
                dt.changed += int(nz.changed)
                gates.append(gate_movement(cr, nr, nz.alignment.word_map, n_units[v]))
                if lm.has_mlm_head:
                    P = min(len(cr.positions), len(nr.positions))
                    if P < len(cr.positions):
                        notes.append(f"{cond[0]} at rate {cond[1]:g}, noise seed {nu}: the noisy text keeps "
                                     f"{P} of {len(cr.positions)} [MASK] positions (truncated); compared those")
                    ref = cr.dense[:P]
                    dflip, dkl, drank = _compare(ref, nr.dense[:P])
                    top_row.append([tok.convert_ids_to_tokens(int(i)) for i in nr.dense[:P].argmax(-1).tolist()])
                    dt.positions += P
                    dt.units += P
                    dt.dense_flips += int(dflip.sum())
                    dt.dense_kl += float(dkl.sum())
                    dt.dense_rank += float(drank.sum())
                    for cfg in settings.configs():
                        xs = sampled(nr, cfg)[:, :P]
                        sflip, skl, srank = _compare(ref, xs)                       # S × P
                        clean_x = sampled(cr, cfg)[:, :P]
                        self_flip = (xs.argmax(-1) != clean_x.argmax(-1)).numpy()
                        dpair = np.broadcast_to(dflip[None], sflip.shape)
                        b, c = stats.discordant(dpair, sflip)
                        t = cts[cfg]
                        t.texts += 1
                        t.changed += int(nz.changed)
                        t.positions += P
                        t.units += sflip.size
                        t.dense_flips += int(dpair.sum())
                        t.sampled_flips += int(sflip.sum())
                        t.self_flips += int(self_flip.sum())
                        t.b += b
                        t.c += c
                        t.dense_kl += float(dkl.sum()) * S
                        t.sampled_kl += float(skl.sum())
                        t.dense_rank += float(drank.sum()) * S
                        t.sampled_rank += float(srank.sum())
                else:
                    top_row.append([])
                    dcos = float(_cos(nr.dense, cr.dense))
                    dt.units += 1
                    dt.dense_cos += dcos
                    for cfg in settings.configs():
                        xs = sampled(nr, cfg)
                        t = cts[cfg]
                        t.texts += 1
                        t.changed += int(nz.changed)
                        t.units += xs.shape[0]
                        t.dense_cos += dcos * xs.shape[0]
                        t.sampled_cos += float(_cos(xs, cr.dense[None]).sum())
            per_seed_dense.append(dt)
            tops.append(top_row)
            for cfg in settings.configs():
                per_seed_cfg[cfg].append(cts[cfg])
        dense_tallies[cond] = per_seed_dense
        noisy_top[cond] = tops
        for cfg in settings.configs():
            tallies[(cond[0], cond[1], cfg[0], cfg[1])] = per_seed_cfg[cfg]
        with np.errstate(all="ignore"):
            gate_tv[cond] = np.nanmean(np.stack(gates), 0) if gates else np.zeros((lm.n_layers, lm.n_heads))
    return InputProbe(key, text, variants, lm.has_mlm_head, clean_top, noisy, noisy_top, tallies, dense_tallies,
                      floors, gate_tv, list(dict.fromkeys(notes)))


# ------------------------------------------------------------------------------------------ summary ---

def _rate(num: float, den: float) -> float | None:
    return None if den <= 0 else float(num) / float(den)


class NoiseSummary:
    """Streams :class:`InputProbe` results into totals per cluster and condition; :meth:`results` gives the
    table the CLI, the page and the README show. Holds only counts, so a corpus of any size fits in memory."""

    def __init__(self, settings: NoiseSettings, model: str = "", has_mlm_head: bool = True):
        self.settings = settings
        self.model = model
        self.has_mlm_head = has_mlm_head
        self.inputs = 0
        self.skipped: list[tuple[str, str]] = []
        self.cells: dict[tuple[str, float, str, int], list[list[Tally]]] = {}   # per input, per noise seed
        self.dense_cells: dict[tuple[str, float], list[list[Tally]]] = {}
        self.floor_cells: dict[tuple[str, int], list[Tally]] = {}
        self.gate_sum: dict[tuple[str, float], np.ndarray] = {}
        self.notes: list[str] = []
        self.seconds = 0.0

    def add(self, probe: InputProbe) -> None:
        self.inputs += 1
        self.has_mlm_head = probe.has_mlm_head
        for key, per_seed in probe.tallies.items():
            self.cells.setdefault(key, []).append(per_seed)
        for key, per_seed in probe.dense_tallies.items():
            self.dense_cells.setdefault(key, []).append(per_seed)
        for key, t in probe.floors.items():
            self.floor_cells.setdefault(key, []).append(t)
        for key, g in probe.gate_tv.items():
            self.gate_sum[key] = self.gate_sum.get(key, 0) + np.nan_to_num(g)
        self.notes.extend(n for n in probe.notes if n not in self.notes)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append((where, reason))

    def _clusters(self, per_input: list[list[Tally]]) -> list[Tally]:
        """Inputs as clusters; with one input, its noise seeds."""
        if len(per_input) == 1:
            return list(per_input[0])
        out = []
        for seeds in per_input:
            t = Tally()
            for s in seeds:
                t.add(s)
            out.append(t)
        return out

    def floor(self, scheme: str, k: int) -> dict:
        ts = self.floor_cells.get((scheme, int(k)), [])
        tot = Tally()
        for t in ts:
            tot.add(t)
        seed = self.settings.seed
        if self.has_mlm_head:
            ci = stats.bootstrap_ratio([t.units for t in ts], [t.sampled_flips for t in ts], self.settings.n_boot,
                                       seed=seed) if len(ts) > 1 else (None, None)
            return {"scheme": scheme, "k": int(k), "floor_flip_rate": _rate(tot.sampled_flips, tot.units),
                    "floor_flip_ci": _ci(ci), "floor_kl": _rate(tot.sampled_kl, tot.units), "units": tot.units}
        return {"scheme": scheme, "k": int(k), "floor_flip_rate": None, "floor_flip_ci": [None, None],
                "floor_cosine": _rate(tot.sampled_cos, tot.units), "units": tot.units}

    def results(self) -> list[dict]:
        """One row per (perturbation, rate, scheme, k) (and per (perturbation, rate) with scheme "dense" when no
        scheme was asked for)."""
        out = []
        st = self.settings
        for p in st.perturbations:
            for r in st.rates:
                r = float(r)
                if not st.schemes:
                    out.append(self._dense_row(p, r))
                for scheme, k in st.configs():
                    out.append(self._row(p, r, scheme, k))
        return out

    def _dense_row(self, p: str, r: float) -> dict:
        cl = self._clusters(self.dense_cells.get((p, r), []))
        tot = Tally()
        for t in cl:
            tot.add(t)
        row = {"perturbation": p, "rate": r, "scheme": "dense", "k": None, "units": tot.units,
               "changed_text_share": _rate(tot.changed, tot.texts)}
        if self.has_mlm_head:
            ci = stats.bootstrap_ratio([t.units for t in cl], [t.dense_flips for t in cl], st_boot(self),
                                       seed=self.settings.seed)
            row.update(dense_flip_rate=_rate(tot.dense_flips, tot.units), dense_flip_ci=_ci(ci),
                       dense_kl=_rate(tot.dense_kl, tot.units), dense_rank_mean=_rate(tot.dense_rank, tot.units))
        else:
            row.update(dense_flip_rate=None, dense_cosine=_rate(tot.dense_cos, tot.units))
        return row

    def _row(self, p: str, r: float, scheme: str, k: int) -> dict:
        cl = self._clusters(self.cells.get((p, r, scheme, k), []))
        tot = Tally()
        for t in cl:
            tot.add(t)
        fl = self.floor(scheme, k)
        row = {"perturbation": p, "rate": r, "scheme": scheme, "k": int(k), "units": tot.units,
               "clusters": len(cl), "changed_text_share": _rate(tot.changed, tot.texts)}
        boot = st_boot(self)
        seed = self.settings.seed
        units = [t.units for t in cl]
        if self.has_mlm_head:
            d = _rate(tot.dense_flips, tot.units)
            s = _rate(tot.sampled_flips, tot.units)
            row.update(
                dense_flip_rate=d, sampled_flip_rate=s, floor_flip_rate=fl["floor_flip_rate"],
                sampled_excess=None if s is None or fl["floor_flip_rate"] is None else s - fl["floor_flip_rate"],
                difference=None if s is None else s - d,
                difference_ci=_ci(stats.bootstrap_difference(units, [t.dense_flips for t in cl],
                                                             [t.sampled_flips for t in cl], boot, seed=seed)),
                dense_flip_ci=_ci(stats.bootstrap_ratio(units, [t.dense_flips for t in cl], boot, seed=seed)),
                sampled_flip_ci=_ci(stats.bootstrap_ratio(units, [t.sampled_flips for t in cl], boot, seed=seed)),
                mcnemar_b=tot.b, mcnemar_c=tot.c, mcnemar_p=stats.mcnemar_exact(tot.b, tot.c),
                sampled_self_flip_rate=_rate(tot.self_flips, tot.units),
                dense_kl=_rate(tot.dense_kl, tot.units), sampled_kl=_rate(tot.sampled_kl, tot.units),
                dense_rank_mean=_rate(tot.dense_rank, tot.units), sampled_rank_mean=_rate(tot.sampled_rank, tot.units))
        else:
            dc, sc = _rate(tot.dense_cos, tot.units), _rate(tot.sampled_cos, tot.units)
            drift = stats.bootstrap_difference(units, [t.units - t.dense_cos for t in cl],
                                               [t.units - t.sampled_cos for t in cl], boot, seed=seed)
            row.update(dense_flip_rate=None, sampled_flip_rate=None, floor_flip_rate=None, difference=None,
                       difference_ci=[None, None], mcnemar_p=None, dense_cosine=dc, sampled_cosine=sc,
                       floor_cosine=fl.get("floor_cosine"), drift_difference_ci=_ci(drift))
        return row

    def heads(self, perturbation: str, rate: float, top: int = 10) -> list[dict]:
        """The heads whose gates moved most under (perturbation, rate): mean word-aligned TV over inputs."""
        g = self.gate_sum.get((perturbation, float(rate)))
        if g is None or not self.inputs:
            return []
        mean = g / self.inputs
        order = np.argsort(-mean, axis=None, kind="stable")[:top]
        return [{"layer": int(i // mean.shape[1]), "head": int(i % mean.shape[1]), "gate_tv": float(mean.flat[i])}
                for i in order]

    def floors(self) -> list[dict]:
        return [self.floor(s, k) for s, k in self.settings.configs()]

    def to_json(self) -> dict:
        st = self.settings
        floor_map: dict[str, dict[str, float | None]] = {}
        for f in self.floors():
            floor_map.setdefault(f["scheme"], {})[str(f["k"])] = f["floor_flip_rate"]
        return {
            "model": self.model, "has_mlm_head": self.has_mlm_head, "inputs": self.inputs,
            "skipped": [{"where": w, "reason": r} for w, r in self.skipped],
            "settings": {"perturbations": list(st.perturbations), "rates": [float(r) for r in st.rates],
                         "schemes": list(st.schemes), "ks": [int(k) for k in st.ks], "noise_seeds": st.noise_seeds,
                         "seeds": st.seeds, "seed": st.seed, "mask_cap": st.mask_cap,
                         "layers": None if st.layers is None else list(st.layers),
                         "heads": None if st.heads is None else list(st.heads)},
            "floor_flip_rate": floor_map,
            "floors": self.floors(),
            "results": self.results(),
            "heads_moved": {f"{p}@{float(r):g}": self.heads(p, r) for p in st.perturbations for r in st.rates},
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "definitions": DEFINITIONS,
            "versions": {"torch": torch.__version__},
        }


def st_boot(summary: NoiseSummary) -> int:
    return summary.settings.n_boot


def _ci(pair) -> list:
    lo, hi = pair
    f = (lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x))
    return [f(lo), f(hi)]


DEFINITIONS = {
    "reference": "the clean text's top-1 under dense attention at each [MASK] position",
    "dense_flip_rate": "share of (position, noise seed) units whose dense top-1 on the noisy text differs from the "
                       "reference",
    "sampled_flip_rate": "share of (position, noise seed, sampling replicate) units whose sampled top-1 on the noisy "
                         "text differs from the reference (same sampling seeds for clean and noisy texts)",
    "floor_flip_rate": "the sampled flip rate on the clean text: sampling seeds alone, no noise",
    "sampled_excess": "sampled_flip_rate − floor_flip_rate",
    "difference_ci": "95% cluster-bootstrap interval of sampled_flip_rate − dense_flip_rate (clusters: inputs; "
                     "noise seeds for a single input)",
    "mcnemar_p": "exact two-sided McNemar (binomial) test on the discordant paired units",
    "sampled_self_flip_rate": "share of units whose sampled top-1 on the noisy text differs from the sampled top-1 "
                              "of the same replicate on the clean text",
    "gate_tv": "total variation between clean and noisy dense gate rows aggregated to the clean words",
}


# ------------------------------------------------------------------------------------------ corpus ---

@dataclass
class Progress:
    done: int
    total: int | None
    fraction: float | None
    seconds: float

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        tot = f"/{self.total}" if self.total else ""
        return f"noise probe: {self.done}{tot} inputs · {rate:.2f} inputs/s"


def probe_corpus(lm: LoadedModel, inputs: Iterable[tuple[str, str]], settings: NoiseSettings,
                 total: int | None = None, progress: Callable[[Progress], None] | None = None,
                 fraction: Callable[[], float] | None = None, time_budget: float | None = None) -> NoiseSummary:
    """The probe over a stream of (key, text) pairs, one input at a time (memory: one input's runs plus the
    counts). An input that cannot be probed (empty, nothing to mask) is recorded in ``skipped`` with its reason.
    ``progress`` is called after every input; ``time_budget`` (seconds) stops early (the summary says how many
    inputs it holds)."""
    settings.check()
    summary = NoiseSummary(settings, lm.name, lm.has_mlm_head)
    t0 = time.perf_counter()
    for key, text in inputs:
        try:
            summary.add(probe_text(lm, text, settings, key=key))
        except InputError as err:
            summary.skip(str(key), str(err))
        summary.seconds = time.perf_counter() - t0
        if progress is not None:
            progress(Progress(summary.inputs + len(summary.skipped), total, fraction() if fraction else None,
                              summary.seconds))
        if time_budget is not None and summary.seconds > time_budget:
            summary.notes.append(f"stopped after the time budget of {time_budget:g} s")
            break
    return summary


def probe(lm: LoadedModel, text: str, settings: NoiseSettings, mask_words: list[int] | None = None
          ) -> tuple[InputProbe, NoiseSummary]:
    """One text: its probe and the summary over it (clusters = noise seeds)."""
    ip = probe_text(lm, text, settings, mask_words=mask_words)
    summary = NoiseSummary(settings, lm.name, lm.has_mlm_head)
    summary.add(ip)
    return ip, summary


# ------------------------------------------------------------------------------------------ triage hook ---

def noise_sensitivity(lm: LoadedModel, text: str, perturbation: str = "typo", rate: float = 0.1,
                      noise_seeds: int = 3, seed: int = 0, scheme: str | None = None, k: int = 8,
                      seeds: int = 2) -> dict:
    """A cheap per-input noise-sensitivity score for triage: the dense flip rate of the [MASK] predictions
    (or, without [MASK], of up to 2 words masked in turn) under ``noise_seeds`` noisy versions at one
    perturbation and rate, with KL(clean ‖ noisy); with ``scheme``, also the sampled flip rate (``seeds``
    replicates) and its floor.

    Cost: one batched dense pass over at most V·(1 + noise_seeds) rows (V ≤ 2 variants; duplicates run once),
    plus V·(1 + noise_seeds)·seeds rows when a scheme is given; i.e. 4–8× a plain forward pass with the
    defaults. Keys: ``noise_flip_rate``, ``noise_kl``, ``changed_text_share`` and, with a scheme,
    ``noise_sampled_flip_rate``, ``noise_floor_flip_rate``; ``noise_cosine`` for models without an MLM head."""
    st = NoiseSettings(perturbations=(perturbation,), rates=(float(rate),),
                       schemes=(scheme,) if scheme else (), ks=(int(k),), noise_seeds=int(noise_seeds),
                       seeds=int(seeds), seed=int(seed), mask_cap=2, n_boot=1)
    ip = probe_text(lm, text, st)
    tot = Tally()
    for t in ip.dense_tallies[(perturbation, float(rate))]:
        tot.add(t)
    out = {"changed_text_share": _rate(tot.changed, tot.texts)}
    if lm.has_mlm_head:
        out.update(noise_flip_rate=_rate(tot.dense_flips, tot.units), noise_kl=_rate(tot.dense_kl, tot.units))
    else:
        out.update(noise_cosine=_rate(tot.dense_cos, tot.units))
    if scheme:
        s = Tally()
        for t in ip.tallies[(perturbation, float(rate), scheme, int(k))]:
            s.add(t)
        f = ip.floors[(scheme, int(k))]
        out.update(noise_sampled_flip_rate=_rate(s.sampled_flips, s.units),
                   noise_floor_flip_rate=_rate(f.sampled_flips, f.units))
    return out
