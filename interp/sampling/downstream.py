"""What sampled attention does to the model's output: substitute a scheme into chosen heads/layers, run the
model itself with S seeds batched, and compare with the dense pass.

The substitution is an :class:`~interp.attention.AttentionPlan` whose ``rows()`` returns the sampled weights,
active only inside ``with attention_plan(...)`` (a ContextVar): no hooks, no patched modules, the model's
config untouched, so the shared model object is exactly as it was afterwards, even when the call raises.
Each replicate s of example b draws from the counter-based stream of (seed, example key, layer, s), on the
device (``seeds.py``), so results do not depend on batch size, batch order or how the work is split into passes.

Comparisons (exact computations on the two outputs; the effect itself is of course random):
with an MLM head, at the [MASK] positions (or, when an example has none, at every non-special real
position): top-1 agreement, KL(p‖p̂) over the vocabulary, rank of the dense top-1 under p̂, flip rate;
without one: cosine between the dense and the sampled mean-pooled embeddings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attention import AttentionPlan
from ..loader import LoadedModel
from ..trace import Encoded, forward, model_output
from . import seeds as seeding
from .schemes import check_params, estimate
from .transfer import Fetch, to_device


def resolve_targets(n_layers: int, n_heads: int, layers=None, heads=None) -> dict[int, list[int]]:
    """Which heads of which layers get the scheme: ``layers`` None = all; ``heads`` None = all, a list of head
    indices (in every chosen layer), or a list of (layer, head) pairs. Raises ValueError on bad indices."""
    chosen = list(range(n_layers)) if layers is None else sorted({int(x) for x in layers})
    for l in chosen:
        if not 0 <= l < n_layers:
            raise ValueError(f"layer {l} does not exist: the model has layers 0..{n_layers - 1}")
    out: dict[int, list[int]] = {}
    if heads is None:
        return {l: list(range(n_heads)) for l in chosen}
    heads = list(heads)
    if heads and isinstance(heads[0], (tuple, list)):
        for l, hd in heads:
            l, hd = int(l), int(hd)
            if layers is not None and l not in chosen:
                continue
            if not 0 <= l < n_layers:
                raise ValueError(f"layer {l} does not exist: the model has layers 0..{n_layers - 1}")
            if not 0 <= hd < n_heads:
                raise ValueError(f"head {hd} does not exist: the model has heads 0..{n_heads - 1}")
            out.setdefault(l, []).append(hd)
        return {l: sorted(set(v)) for l, v in sorted(out.items())}
    for hd in heads:
        if not 0 <= int(hd) < n_heads:
            raise ValueError(f"head {hd} does not exist: the model has heads 0..{n_heads - 1}")
    return {l: sorted({int(x) for x in heads}) for l in chosen}


# Where every layer's uniform draws of a sampled pass are made at once ("cuda": on a GPU; "always"; "never"):
# the same bits either way (element-wise integer hashing), fewer kernel launches, more memory at once.
SHARED_DRAWS = "cuda"


class SamplingPlan(AttentionPlan):
    """Replace the rows of the chosen heads by ``scheme``'s weights. The batch the model sees is the examples
    replicated for ``replicates`` (replicate-major: row r·B + b is replicate ``replicates[r]`` of example b).
    Records, per layer, the TV between the sampled rows and the exact rows of the same pass (B × H, mean over
    real queries and replicates; NaN for heads left dense)."""

    def __init__(self, layer_of, scheme: str, k: int, h: int | None, m: int | None, seed: int, example_keys: list,
                 lengths: list[int], replicates: list[int], targets: dict[int, list[int]]):
        super().__init__(layer_of)
        self.scheme, self.k, self.h, self.m, self.seed = scheme, k, h, m, seed
        self.example_keys, self.lengths, self.replicates, self.targets = example_keys, lengths, replicates, targets
        self.tv_sum: dict[int, torch.Tensor] = {}
        self._bases: torch.Tensor | None = None      # the examples' stream bases, on the device

    def rows(self, layer, query, key, value, scores, probs, key_valid):
        heads = self.targets.get(layer)
        if not heads:
            return None
        R, B = len(self.replicates), len(self.example_keys)
        _, H, n, d = query.shape
        def split(t):
            return t.reshape(R, B, *t.shape[1:])
        if key_valid is None:
            valid = torch.ones((1, 1, 1, 1, n), dtype=torch.bool, device=query.device)
        else:
            valid = split(key_valid.expand(R * B, *key_valid.shape[1:]))
        if self._bases is None or self._bases.device != query.device:
            self._bases = to_device(torch.tensor([seeding.base_key(self.seed, ex) for ex in self.example_keys],
                                                 dtype=torch.int64), query.device)
            self._reps = to_device(torch.tensor(list(self.replicates), dtype=torch.int64), query.device)
            layers = sorted(self.targets)       # every substituted layer's stream keys, made once per pass
            every = seeding.stream_keys_of_layers(self._bases, layers, self._reps)
            self._keys = dict(zip(layers, every))
            # on a GPU every layer's uniform draws are made in one set of launches (the same integer operations
            # element by element, so the same bits); the CPU draws layer by layer (less memory at once)
            shared = SHARED_DRAWS == "always" or (SHARED_DRAWS == "cuda" and query.device.type == "cuda")
            self._shared = seeding.SharedDraws(every, layers) if shared else None
        gens = (seeding.Streams(self._keys[layer]) if self._shared is None
                else seeding.LayerStreams(self._keys[layer], self._shared, layer))
        est = estimate(self.scheme, split(query), split(key), split(value), split(scores), split(probs), valid,
                       self.lengths, gens, self.k, self.h, self.m).weights          # R×B×H×n×n
        p = split(probs).to(torch.float32)
        every = len(heads) == H
        head_on = None if every else self._head_on(tuple(heads), H, query.device)
        w = est if every else torch.where(head_on[None, None, :, None, None], est, p)
        qmask = self._qmask(n, query.device)                                          # B×n
        tv = 0.5 * torch.sub(est, p).abs_().sum(-1)                                   # R×B×H×n
        tv = (tv * qmask[None, :, None, :]).sum(-1).sum(0)                             # B×H (sum)
        if not every:                        # NaN for the heads left dense (none when every head is sampled)
            tv = tv.masked_fill(~head_on[None, :], float("nan"))
        # stays on the device; the first pass's sum is the tensor itself (0 + x = x: one launch fewer)
        self.tv_sum[layer] = tv if layer not in self.tv_sum else self.tv_sum[layer] + tv
        return w.reshape(R * B, H, n, n).to(probs.dtype)

    def _head_on(self, heads: tuple, H: int, device) -> torch.Tensor:
        """The substituted heads as an H-vector of flags on the device (made once per pass and head set, not
        per layer: each one is a host-to-device copy)."""
        cache = self.__dict__.setdefault("_flags", {})
        key = (heads, H, str(device))
        if key not in cache:
            on = torch.zeros(H, dtype=torch.bool)
            on[list(heads)] = True
            cache[key] = to_device(on, device)
        return cache[key]

    def _qmask(self, n: int, device) -> torch.Tensor:
        """B × n float flags of the real queries (made once per pass)."""
        cache = self.__dict__.setdefault("_qmasks", {})
        key = (n, str(device))
        if key not in cache:
            lengths = torch.tensor(self.lengths)
            cache[key] = to_device((torch.arange(n)[None, :] < lengths[:, None]).to(torch.float32), device)
        return cache[key]


@dataclass
class DownstreamResult:
    """Per-example effect of a scheme on the model's output (arrays have one entry per example, in the order
    of the encoded batch). ``positions[b]`` says where the MLM comparison was made: ``"mask"`` ([MASK]
    positions), ``"non-special"`` (every non-special real token; the example had no [MASK]) or ``"pooled"``
    (no MLM head: the mean-pooled embedding). Metrics that do not apply are NaN.

    * ``top1_agreement``: fraction of (seed, position) pairs whose sampled top-1 equals the dense top-1;
    * ``flip_rate``: fraction of positions whose top-1 differs from dense in at least one seed;
    * ``kl_mean`` / ``kl_max``: KL(p‖p̂) over the vocabulary (nats), mean / max over seeds and positions;
    * ``rank_mean`` / ``rank_max``: rank of the dense top-1 under p̂ (0 = still the top-1);
    * ``cosine_mean`` / ``cosine_min``: cosine(dense pooled, sampled pooled) over seeds;
    * ``head_tv``: B × L × H mean TV(P̂, P) of substituted heads over real queries and seeds (NaN elsewhere),
      P being the exact rows of the same (perturbed) pass; ``worst_head[b]`` = its argmax (layer, head).
    """
    scheme: str
    k: int
    h: int
    m: int
    seeds: int
    seed: int
    example_keys: list
    targets: dict[int, list[int]]
    has_mlm_head: bool
    positions: list[str]
    n_positions: np.ndarray
    top1_agreement: np.ndarray
    flip_rate: np.ndarray
    kl_mean: np.ndarray
    kl_max: np.ndarray
    rank_mean: np.ndarray
    rank_max: np.ndarray
    cosine_mean: np.ndarray
    cosine_min: np.ndarray
    head_tv: np.ndarray
    worst_head: list[tuple[int, int] | None]
    worst_head_tv: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(self.example_keys)

    def summary(self) -> dict:
        """Means over examples (each example weighs the same); NaN-valued metrics are left out."""
        out = {}
        for name in ("top1_agreement", "flip_rate", "kl_mean", "rank_mean", "cosine_mean"):
            arr = getattr(self, name)
            if arr.size and not np.all(np.isnan(arr)):
                out[name] = float(np.nanmean(arr))
        for name, fn in (("kl_max", np.nanmax), ("rank_max", np.nanmax), ("cosine_min", np.nanmin)):
            arr = getattr(self, name)
            if arr.size and not np.all(np.isnan(arr)):
                out[name] = float(fn(arr))
        out["positions"] = sorted(set(self.positions))
        return out

    def to_json(self) -> dict:
        def clean(a):
            return [None if (isinstance(x, float) and math.isnan(x)) else x for x in np.asarray(a, float).tolist()]
        return {"scheme": self.scheme, "k": self.k, "h": self.h, "m": self.m, "seeds": self.seeds, "seed": self.seed,
                "example_keys": [str(x) for x in self.example_keys],
                "targets": {str(l): hs for l, hs in self.targets.items()}, "has_mlm_head": self.has_mlm_head,
                "summary": self.summary(), "positions": self.positions, "n_positions": self.n_positions.tolist(),
                "top1_agreement": clean(self.top1_agreement), "flip_rate": clean(self.flip_rate),
                "kl_mean": clean(self.kl_mean), "kl_max": clean(self.kl_max), "rank_mean": clean(self.rank_mean),
                "rank_max": clean(self.rank_max), "cosine_mean": clean(self.cosine_mean),
                "cosine_min": clean(self.cosine_min),
                "worst_head": [None if w is None else list(w) for w in self.worst_head],
                "worst_head_tv": clean(self.worst_head_tv), "meta": self.meta}


def subset(enc: Encoded, rows: list[int]) -> Encoded:
    """Rows of an encoded batch (padding width kept)."""
    idx = to_device(torch.tensor(rows, dtype=torch.long), enc.input_ids.device)
    return Encoded(enc.input_ids[idx], enc.attention_mask[idx],
                   None if enc.token_type_ids is None else enc.token_type_ids[idx],
                   [enc.tokens[i] for i in rows], enc.special[to_device(idx, enc.special.device)],
                   [enc.notes[i] for i in rows], [enc.truncation[i] for i in rows])


def replicate(enc: Encoded, times: int) -> Encoded:
    """The batch repeated ``times`` times, replicate-major (row r·B + b is example b)."""
    if times == 1:
        return enc
    return Encoded(enc.input_ids.repeat(times, 1), enc.attention_mask.repeat(times, 1),
                   None if enc.token_type_ids is None else enc.token_type_ids.repeat(times, 1),
                   enc.tokens * times, enc.special.repeat(times, 1), enc.notes * times, enc.truncation * times)


def on_device(enc: Encoded, device) -> Encoded:
    """The model's inputs of ``enc`` on ``device``, copied without waiting (``transfer.to_device``); the forward
    pass then finds them there and copies nothing (a plain copy would wait for the queued work)."""
    return Encoded(to_device(enc.input_ids, device), to_device(enc.attention_mask, device),
                   None if enc.token_type_ids is None else to_device(enc.token_type_ids, device), enc.tokens,
                   enc.special, enc.notes, enc.truncation)


def compare_positions(lm: LoadedModel, enc: Encoded, b: int) -> tuple[list[int], str]:
    """Where example b's MLM output is compared: its [MASK] positions, else its non-special real positions."""
    n = int(enc.attention_mask[b].sum())
    return positions_in(enc.input_ids[b, :n].tolist(), enc.special[b, :n].tolist(),
                        getattr(lm.tokenizer, "mask_token_id", None))


def all_compare_positions(lm: LoadedModel, enc: Encoded) -> list[tuple[list[int], str]]:
    """:func:`compare_positions` of every example of a batch (the tensors leave the device once)."""
    lengths = enc.attention_mask.sum(1).tolist()
    ids, special = enc.input_ids.tolist(), enc.special.tolist()
    mask_id = getattr(lm.tokenizer, "mask_token_id", None)
    return [positions_in(ids[b][:int(n)], special[b][:int(n)], mask_id) for b, n in enumerate(lengths)]


def positions_in(ids: list[int], special: list[bool], mask_id: int | None) -> tuple[list[int], str]:
    """The compared positions of one example from its real token ids and special flags (see
    :func:`compare_positions`)."""
    n = len(ids)
    masks = [i for i, t in enumerate(ids) if t == mask_id] if mask_id is not None else []
    if masks:
        return masks, "mask"
    plain = [i for i in range(n) if not special[i]]
    return (plain, "non-special") if plain else (list(range(n)), "non-special")


# Where the MLM head is applied only at the compared positions rather than at every position of every pass:
# "cuda" (on a GPU), "always" or "never". Only the compared positions' logits are ever read, and the head
# (d → vocabulary) is about half of a small encoder's work per token, so on a GPU the passes then cost less
# than the model's plain forward passes. The logits at a position are the same function of its last hidden
# state either way; a matrix product over fewer rows may round differently in the last bit on a GPU. The CPU
# keeps the full head ("cuda"), so its numbers are unchanged.
HEAD_AT_POSITIONS = "cuda"


def head_at_positions(lm: LoadedModel) -> bool:
    """True when ``lm``'s passes return last hidden states and the MLM head is applied at the compared
    positions only (see :data:`HEAD_AT_POSITIONS`)."""
    base = getattr(lm.adapter, "base", None)
    if not lm.has_mlm_head or base is None or base is lm.model:    # no separate base model: the full head
        return False
    return HEAD_AT_POSITIONS == "always" or (HEAD_AT_POSITIONS == "cuda" and torch.device(lm.device).type == "cuda")


def last_hidden(lm: LoadedModel, enc: Encoded, plan: AttentionPlan | None = None) -> torch.Tensor:
    """The model's last hidden state (B × n × d, the input of its MLM head): its base model run on ``enc``
    under ``plan`` (the same modules and attention function as :func:`interp.trace.forward`, without the head)."""
    return forward(lm, enc, plan, module=lm.adapter.base).last_hidden_state


def logits_at(lm: LoadedModel, x: torch.Tensor, hidden: bool) -> torch.Tensor:
    """MLM logits (… × V, float32) of gathered rows ``x``: ``x`` itself when it holds logits, the model's head
    applied to it when it holds last hidden states (``hidden``)."""
    if not hidden:
        return x
    with torch.no_grad():
        return lm.adapter.mlm_logits(x.to(lm.dtype)).to(torch.float32)


def _run(lm: LoadedModel, enc: Encoded, plan: AttentionPlan | None, hidden: bool = False) -> torch.Tensor:
    if hidden:
        return last_hidden(lm, enc, plan)
    return model_output(lm, forward(lm, enc, plan), enc).to(torch.float32)


@dataclass
class PassEffect:
    """Per-example comparisons of the S sampled passes with the dense output (see :class:`DownstreamResult`
    for the definitions); ``head_tv`` is B × L × H."""
    top1_agreement: np.ndarray
    flip_rate: np.ndarray
    kl_mean: np.ndarray
    kl_max: np.ndarray
    rank_mean: np.ndarray
    rank_max: np.ndarray
    cosine_mean: np.ndarray
    cosine_min: np.ndarray
    head_tv: np.ndarray


def pass_rows(width: int, max_rows: int, cells: int | None) -> int:
    """Rows (examples × replicates) per forward pass: at most ``max_rows``, and at most ``cells`` / width² so
    that a pass's attention tensors (rows × heads × width²) stay bounded; at least one."""
    cap = int(max_rows)
    if cells:
        cap = min(cap, int(cells) // max(1, int(width)) ** 2)
    return max(1, cap)


def sampled_passes(lm: LoadedModel, enc: Encoded, scheme: str, k: int, h: int, m: int, seeds: int, seed: int,
                   example_keys: list, targets: dict[int, list[int]], dense: torch.Tensor | None = None,
                   max_rows: int = 64, cells: int | None = None, positions: list[list[int]] | None = None
                   ) -> PassEffect:
    """The one implementation of the sampled forward passes and their comparison with the dense output, used
    by :func:`downstream_effect` and by the triage scores.

    ``dense``: the dense output of ``enc`` (B × n × V logits, or B × d pooled without an MLM head; B × n × d
    last hidden states when :func:`head_at_positions`) when the caller has it already; None: one dense pass is
    run per group of examples. Examples are processed in groups
    and replicates batched so that a pass has at most :func:`pass_rows` rows; replicate s of example b at
    layer l draws from the stream of (seed, key b, l, s), so the result does not depend on the grouping.
    ``positions[b]``: where example b's MLM output is compared (default :func:`compare_positions`).
    The device work of every group is queued first and its results leave the device in one transfer
    (:func:`queue_sampled_passes`)."""
    fetch = Fetch()
    finish = queue_sampled_passes(lm, enc, scheme, k, h, m, seeds, seed, example_keys, targets, fetch, dense,
                                  max_rows, cells, positions)
    fetch.run()
    return finish()


def queue_sampled_passes(lm: LoadedModel, enc: Encoded, scheme: str, k: int, h: int, m: int, seeds: int,
                         seed: int, example_keys: list, targets: dict[int, list[int]], fetch: Fetch,
                         dense: torch.Tensor | None = None, max_rows: int = 64, cells: int | None = None,
                         positions: list[list[int]] | None = None):
    """:func:`sampled_passes` in two halves: queue the passes and the comparisons on the device, registering
    the per-example results with ``fetch``; returns ``finish()``, which builds the :class:`PassEffect` once
    ``fetch`` has run. No step waits for the device (no ``.cpu()``/``.item()``/blocking copy), so a caller can
    queue other work and move everything in one transfer."""
    B = enc.input_ids.shape[0]
    L, H = lm.n_layers, lm.n_heads
    lengths = [int(x) for x in enc.attention_mask.sum(1).tolist()]
    mlm = lm.has_mlm_head
    if mlm and positions is None:
        positions = [p[0] for p in all_compare_positions(lm, enc)]
    dev = lm.device
    hid = head_at_positions(lm)          # passes return last hidden states; the head runs at compared positions
    cap = pass_rows(enc.input_ids.shape[1], max_rows, cells)
    per = max(1, min(B, cap))
    groups = []                 # (rows, tv layers, tv handle, kind, handles)
    for start in range(0, B, per):
        rows = list(range(start, min(B, start + per)))
        whole = len(rows) == B
        sub = on_device(enc if whole else subset(enc, rows), dev)
        if dense is None:
            d = _run(lm, sub, None, hid)
        else:
            d = (dense if whole else dense[to_device(torch.tensor(rows, dtype=torch.long), dense.device)]
                 ).to(torch.float32)
        per_pass = max(1, cap // len(rows))
        outs, tv_sum = [], {}
        for r0 in range(0, seeds, per_pass):
            reps = list(range(r0, min(seeds, r0 + per_pass)))
            plan = SamplingPlan(lm.adapter.layer_of, scheme, k, h, m, seed, [example_keys[b] for b in rows],
                                [lengths[b] for b in rows], reps, targets)
            out = _run(lm, replicate(sub, len(reps)), plan, hid)
            outs.append(out.reshape(len(reps), len(rows), *out.shape[1:]))
            for l, t in plan.tv_sum.items():
                tv_sum[l] = t if l not in tv_sum else tv_sum[l] + t
        sampled = outs[0] if len(outs) == 1 else torch.cat(outs, 0)                   # S × b × …
        ls = list(tv_sum)
        tv_handle = None
        if tv_sum:                             # every layer's TV sums leave the device at once
            norm = to_device(torch.tensor([seeds * lengths[b] for b in rows], dtype=torch.float64)[:, None],
                             sampled.device)
            tv_handle = fetch.add(torch.stack([tv_sum[l] for l in ls]).to(torch.float64) / norm)
        if not mlm:
            cos = torch.nn.functional.cosine_similarity(sampled, d[None], dim=-1)       # S × b
            groups.append((rows, ls, tv_handle, "pooled",
                           (fetch.add(cos.mean(0).double()), fetch.add(cos.min(0).values.double()))))
            continue
        # every compared (example, position) of the group at once: P = Σ_b |positions[b]| rows
        counts = [len(positions[b]) for b in rows]
        if not sum(counts):
            groups.append((rows, ls, tv_handle, "none", ()))
            continue
        ddev = d.device
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        flat = np.concatenate([np.asarray(positions[b], dtype=np.int64).reshape(-1) for b in rows])
        ex = to_device(torch.from_numpy(owner), ddev)                                    # P
        at = to_device(torch.from_numpy(flat), ddev)
        dj, sj = logits_at(lm, d[ex, at], hid), logits_at(lm, sampled[:, ex, at], hid)    # P×V, S×P×V
        lp = torch.log_softmax(dj, -1).double()
        lq = torch.log_softmax(sj, -1).double()
        # Σ_v p_v (lp_v − lq_v), in place in lq's buffer (S × P × V float64, the largest tensor here): the same
        # products and the same sum as p·(lp − lq) (floating-point multiplication commutes exactly)
        kl = torch.sub(lp[None], lq, out=lq).mul_(lp.exp()[None]).sum(-1)              # S × P
        top = dj.argmax(-1)                                                              # P
        at_top = torch.gather(sj, -1, top[None, :, None].expand(seeds, -1, 1))
        rank = (sj > at_top).sum(-1).to(torch.float64)                                   # S × P
        same = (sj.argmax(-1) == top[None]).to(torch.float64)                            # S × P
        G = len(rows)
        cnt = torch.zeros(G, dtype=torch.float64, device=ddev).index_add_(0, ex, torch.ones_like(top, dtype=torch.float64))

        def mean_of(x):                        # S × P → per example, mean over seeds and its positions
            return torch.zeros(G, dtype=torch.float64, device=ddev).index_add_(0, ex, x.sum(0)) / (seeds * cnt)

        def max_of(x):
            return torch.full((G,), -math.inf, dtype=torch.float64, device=ddev).scatter_reduce_(
                0, ex, x.amax(0), "amax", include_self=True)
        flipped = (same < 1).any(0).to(torch.float64)                                    # P
        stats = torch.stack([mean_of(same), torch.zeros(G, dtype=torch.float64, device=ddev).index_add_(
            0, ex, flipped) / cnt, mean_of(kl), max_of(kl), mean_of(rank), max_of(rank)])
        groups.append((rows, ls, tv_handle, "mlm", (fetch.add(stats), fetch.add(cnt > 0))))

    def finish() -> PassEffect:
        nan = np.full(B, np.nan)
        agree, flip, klm, klx, rkm, rkx, cosm, cosn = (nan.copy() for _ in range(8))
        head_tv = np.full((B, L, H), np.nan)
        for rows, ls, tv_handle, kind, handles in groups:
            if tv_handle is not None:
                tvs = fetch.get(tv_handle)
                for j, l in enumerate(ls):
                    head_tv[rows, l] = tvs[j]
            if kind == "pooled":
                cosm[rows], cosn[rows] = fetch.get(handles[0]), fetch.get(handles[1])
            elif kind == "mlm":
                stats, has = fetch.get(handles[0]), fetch.get(handles[1])
                idx = np.asarray(rows)[has]
                agree[idx], flip[idx], klm[idx], klx[idx], rkm[idx], rkx[idx] = (v[has] for v in stats)
        return PassEffect(agree, flip, klm, klx, rkm, rkx, cosm, cosn, head_tv)
    return finish


def downstream_effect(lm: LoadedModel, enc: Encoded, scheme: str, k: int, seeds: int, seed: int,
                      example_keys: list | None = None, layers=None, heads=None, h: int | None = None,
                      m: int | None = None, max_rows: int = 64, cells: int | None = None) -> DownstreamResult:
    """Effect on the model's output of substituting ``scheme`` (budget ``k``; ``h`` exact keys for E, ``m``
    features for D, both default k) into ``heads`` of ``layers`` (None = all), for S = ``seeds`` replicates.

    ``enc`` is an encoded batch (``interp.trace.encode``). ``example_keys[b]`` must be intrinsic to example b
    (its index in the user's file, a record id, a content hash); default: a hash of its token ids
    (``seeds.content_key``). Replicate s of example b at layer l uses the random stream of (seed, key, l, s), so
    the result does not depend on batch size or order. The model runs on at most ``max_rows`` rows per pass
    (examples × replicates; and at most ``cells``/n² when given), one dense pass per group of examples plus the
    sampled passes (:func:`sampled_passes`). Returns a :class:`DownstreamResult` with per-example arrays.
    Raises ValueError on a bad scheme, k, layer or head. The shared model object is never modified.
    """
    h, m = check_params(scheme, k, h, m)
    if not isinstance(seeds, int) or seeds <= 0:
        raise ValueError(f"seeds must be a positive integer, not {seeds!r}")
    B = enc.input_ids.shape[0]
    lengths = [int(x) for x in enc.attention_mask.sum(1).tolist()]
    if example_keys is None:
        example_keys = [seeding.content_key(enc.input_ids[b, :lengths[b]]) for b in range(B)]
    example_keys = list(example_keys)
    if len(example_keys) != B:
        raise ValueError(f"{len(example_keys)} example keys for a batch of {B}")
    for key in example_keys:
        seeding.canonical_key(key)
    targets = resolve_targets(lm.n_layers, lm.n_heads, layers, heads)
    H = lm.n_heads
    pos = all_compare_positions(lm, enc) if lm.has_mlm_head else [([], "pooled")] * B
    eff = sampled_passes(lm, enc, scheme, k, h, m, seeds, seed, example_keys, targets, None, max_rows, cells,
                         [p[0] for p in pos] if lm.has_mlm_head else None)
    head_tv = eff.head_tv
    worst, worst_tv = [], np.full(B, np.nan)
    for b in range(B):
        if np.all(np.isnan(head_tv[b])):
            worst.append(None)
            continue
        flat = int(np.nanargmax(head_tv[b]))
        worst.append((flat // H, flat % H))
        worst_tv[b] = head_tv[b].flat[flat]
    return DownstreamResult(scheme, int(k), h, m, int(seeds), int(seed), example_keys, targets, lm.has_mlm_head,
                            [p[1] for p in pos], np.array([len(p[0]) for p in pos]), eff.top1_agreement,
                            eff.flip_rate, eff.kl_mean, eff.kl_max, eff.rank_mean, eff.rank_max, eff.cosine_mean,
                            eff.cosine_min, head_tv, worst, worst_tv,
                            {"dtype": str(lm.dtype).replace("torch.", ""), "device": str(lm.device),
                             "torch": torch.__version__, "model": lm.name})
