"""Reproducible randomness for sampled attention, drawn on the compute device.

Every draw belongs to the stream of one (seed, example, layer, replicate), keyed by an *example key* that is
intrinsic to the example (its index in the user's file, a content hash, ...), never its position in a batch.
A result therefore does not depend on batch size, batch order, padding or device count.

The generator is counter-based: draw t of query i in head h of a stream is a pure function of (stream key,
h, i, t), computed with the SplitMix64 finaliser in 64-bit integer tensor ops, vectorised over the whole batch
on the device where the attention lives. No generator object exists per input; the only per-input CPU work is
one 64-bit hash of its key, cached.

    base(seed, key)            = BLAKE2b-64("expertlens-stream|seed|canonical key")        (once per example)
    stream(seed, key, l, r)    = mix(base ⊕ mix(l·C_l + r·C_r + 1))                           (on the device)
    bits(stream, purpose, c)   = mix(stream ⊕ mix(purpose·C_p + c)),   c = (h ≪ 42) | (i ≪ 21) | t
    uniform                    = (bits ≫ 40) · 2⁻²⁴ ∈ [0, 1)   (24-bit float32 grid)
    normal                     = Box–Muller of two uniforms of purposes 2 and 3

mix = SplitMix64's finaliser (Steele, Lea, Flood 2014): z += 0x9E3779B97F4A7C15;
z = (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z = (z ⊕ z≫27)·0x94D049BB133111EB; z ⊕ z≫31 (logical shifts, mod 2⁶⁴).
Limits of the counter: h, i, t < 2²¹.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import torch

_M64 = (1 << 64) - 1


def _i64(x: int) -> int:
    """An unsigned 64-bit value as the int64 with the same bits."""
    x &= _M64
    return x - (1 << 64) if x >= 1 << 63 else x


GOLDEN, MIX1, MIX2 = _i64(0x9E3779B97F4A7C15), _i64(0xBF58476D1CE4E5B9), _i64(0x94D049BB133111EB)
C_LAYER, C_REPLICATE, C_PURPOSE = _i64(0xD1B54A32D192ED03), _i64(0xAEF17502108EF2D9), _i64(0xDB4F0B9175AE2165)
PURPOSE_UNIFORM, PURPOSE_NORMAL_R, PURPOSE_NORMAL_THETA = 1, 2, 3
MAX_INDEX = 1 << 21


def canonical_key(example_key) -> str:
    """A stable text form of an example key (int, str, bytes or a tuple of those)."""
    if isinstance(example_key, bool):
        raise TypeError("an example key must be an int, str, bytes or tuple, not bool")
    if isinstance(example_key, int):
        return f"i:{example_key}"
    if isinstance(example_key, str):
        return f"s:{example_key}"
    if isinstance(example_key, (bytes, bytearray)):
        return f"b:{bytes(example_key).hex()}"
    if isinstance(example_key, tuple):
        return "t:(" + ",".join(canonical_key(x) for x in example_key) + ")"
    if hasattr(example_key, "item"):  # numpy / torch scalar
        return canonical_key(example_key.item())
    raise TypeError(f"unsupported example key type {type(example_key).__name__}")


def content_key(input_ids) -> str:
    """Content hash of one example's real token ids: an example key that needs no bookkeeping."""
    ids = [int(i) for i in (input_ids.tolist() if hasattr(input_ids, "tolist") else input_ids)]
    return hashlib.blake2b(",".join(map(str, ids)).encode(), digest_size=12).hexdigest()


def derive_seed(seed: int, example_key, layer: int, replicate: int) -> int:
    """63-bit seed = hash(seed, example key, layer, replicate) (BLAKE2b; platform independent)."""
    text = f"expertlens-sampling|{int(seed)}|{canonical_key(example_key)}|{int(layer)}|{int(replicate)}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & ((1 << 63) - 1)


@functools.lru_cache(maxsize=1 << 16)
def _base(seed: int, canon: str) -> int:
    text = f"expertlens-stream|{int(seed)}|{canon}"
    return _i64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def base_key(seed: int, example_key) -> int:
    """The 64-bit base of an example's streams (int64 bits), cached."""
    return _base(int(seed), canonical_key(example_key))


# --- 64-bit integer mixing in torch (int64 arithmetic wraps mod 2⁶⁴) --------------------------------------

def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (bitwise as on uint64)."""
    x = x + GOLDEN
    x = (x ^ _srl(x, 30)) * MIX1
    x = (x ^ _srl(x, 27)) * MIX2
    return x ^ _srl(x, 31)


def mix_int(x: int) -> int:
    """The same on a Python int (reference for tests and for single keys)."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return _i64(z ^ (z >> 31))


def stream_keys(bases: torch.Tensor, layer: int, replicates) -> torch.Tensor:
    """R × B int64 stream keys of (base b, layer, replicate r) — on the device of ``bases``."""
    if isinstance(replicates, torch.Tensor):     # already a tensor (callers cache it on the device)
        reps = replicates.to(device=bases.device, dtype=torch.int64)
    else:
        reps = torch.as_tensor(list(replicates), dtype=torch.int64, device=bases.device)
    salt = mix(reps * C_REPLICATE + _i64(int(layer) * (C_LAYER & _M64) + 1))          # R (wraps mod 2⁶⁴)
    return mix(bases[None, :] ^ salt[:, None])


def stream_keys_of_layers(bases: torch.Tensor, layers, replicates: torch.Tensor) -> torch.Tensor:
    """:func:`stream_keys` of several layers at once: L × R × B (the same integer operations element by element,
    so the same bits; one set of kernel launches for the pass instead of one per layer)."""
    reps = replicates.to(device=bases.device, dtype=torch.int64)
    terms = torch.tensor([_i64(int(l) * (C_LAYER & _M64) + 1) for l in layers], dtype=torch.int64)
    from .transfer import to_device
    salt = mix(reps[None, :] * C_REPLICATE + to_device(terms, bases.device)[:, None])    # L × R (wraps mod 2⁶⁴)
    return mix(bases[None, None, :] ^ salt[:, :, None])


def stream_key(seed: int, example_key, layer: int, replicate: int) -> int:
    """The int64 key of one stream (Python ints; equal to :func:`stream_keys`)."""
    salt = mix_int((int(replicate) * (C_REPLICATE & _M64) + int(layer) * (C_LAYER & _M64) + 1) & _M64)
    return mix_int((base_key(seed, example_key) ^ salt) & _M64)


def _bits(streams: torch.Tensor, purpose: int, counters: torch.Tensor) -> torch.Tensor:
    """streams (… ) × counters (shape C) → (… , *C) int64 random bits."""
    return _mix_streams(streams, _salt(counters, purpose))


def _salt(counters: torch.Tensor, purpose: int) -> torch.Tensor:
    return mix(counters + _i64(purpose * (C_PURPOSE & _M64)))


def _mix_streams(streams: torch.Tensor, salted: torch.Tensor) -> torch.Tensor:
    return mix(streams.reshape(*streams.shape, *([1] * salted.dim())) ^ salted)


@functools.lru_cache(maxsize=64)
def _salted(purpose: int, H: int, n: int, count: int, device: torch.device) -> torch.Tensor:
    """mix(counter + purpose salt) of every (head, query, draw): the same for every stream, so made once per
    shape and device rather than once per layer (a dozen kernel launches each time)."""
    return _salt(_counters(H, n, count, device), purpose)


def _counters(H: int, n: int, count: int, device) -> torch.Tensor:
    if max(H, n, count) >= MAX_INDEX:
        raise ValueError(f"random-stream counter out of range (heads, tokens, draws must be < {MAX_INDEX})")
    h = torch.arange(H, dtype=torch.int64, device=device)[:, None, None] << 42
    i = torch.arange(n, dtype=torch.int64, device=device)[None, :, None] << 21
    t = torch.arange(count, dtype=torch.int64, device=device)[None, None, :]
    return h | i | t


def _unit(bits: torch.Tensor) -> torch.Tensor:
    return _srl(bits, 40).to(torch.float32) * (2.0 ** -24)


def _device(t: torch.Tensor) -> torch.device:
    d = t.device
    return torch.device(d.type, torch.cuda.current_device()) if d.type == "cuda" and d.index is None else d


def uniform(streams: torch.Tensor, H: int, n: int, count: int) -> torch.Tensor:
    """U[0, 1) draws of shape (*streams.shape, H, n, count): draw t of query i, head h of each stream."""
    if max(H, n, count) >= MAX_INDEX:
        _counters(H, n, count, streams.device)        # raises
    return _unit(_mix_streams(streams, _salted(PURPOSE_UNIFORM, int(H), int(n), int(count), _device(streams))))


def normal(streams: torch.Tensor, H: int, rows: int, cols: int) -> torch.Tensor:
    """N(0, 1) draws of shape (*streams.shape, H, rows, cols) (Box–Muller of two uniform streams)."""
    if max(H, rows, cols) >= MAX_INDEX:
        _counters(H, rows, cols, streams.device)       # raises
    dev = _device(streams)
    u1 = _unit(_mix_streams(streams, _salted(PURPOSE_NORMAL_R, int(H), int(rows), int(cols), dev)))
    u2 = _unit(_mix_streams(streams, _salted(PURPOSE_NORMAL_THETA, int(H), int(rows), int(cols), dev)))
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2.0 * math.pi) * u2)


@dataclass(frozen=True)
class StreamKey:
    """The random stream of one (seed, example key, layer, replicate). Draws come from :func:`uniform` /
    :func:`normal` on the device; this object is only its 64-bit key."""
    value: int


@dataclass
class Streams:
    """The streams of a batch for one layer: ``keys`` is R × B int64 (replicate-major), on the device.
    ``len()`` is R and ``streams[r][b]`` the :class:`StreamKey` of one (replicate, example)."""
    keys: torch.Tensor

    def __len__(self) -> int:
        return self.keys.shape[0]

    def __getitem__(self, r: int):
        return [StreamKey(int(v)) for v in self.keys[r].tolist()]

    @classmethod
    def of(cls, seed: int, example_keys: list, layer: int, replicates, device=None) -> "Streams":
        bases = torch.tensor([base_key(seed, k) for k in example_keys], dtype=torch.int64, device=device)
        return cls(stream_keys(bases, layer, replicates))

    @classmethod
    def from_nested(cls, nested, device=None) -> "Streams":
        """From ``nested[s][b]`` :class:`StreamKey` objects."""
        return cls(torch.tensor([[g.value for g in row] for row in nested], dtype=torch.int64, device=device))

    def uniform(self, H: int, n: int, count: int) -> torch.Tensor:
        return uniform(self.keys, H, n, count)

    def normal(self, H: int, rows: int, cols: int) -> torch.Tensor:
        return normal(self.keys, H, rows, cols)


class SharedDraws:
    """The uniform draws of several layers' streams (``keys``: L × R × B, the layers in ``layers``' order), made
    at once on first use (:func:`uniform` of the stacked keys: the same bits as layer by layer) and handed out
    per layer by :class:`LayerStreams`. One shape of draws is kept (the last asked for)."""

    def __init__(self, keys: torch.Tensor, layers):
        self.keys = keys
        self.index = {int(l): i for i, l in enumerate(layers)}
        self._draws: tuple | None = None

    def uniform(self, layer: int, H: int, n: int, count: int) -> torch.Tensor:
        shape = (int(H), int(n), int(count))
        if self._draws is None or self._draws[0] != shape:
            self._draws = (shape, uniform(self.keys, *shape))
        return self._draws[1][self.index[int(layer)]]


@dataclass
class LayerStreams(Streams):
    """:class:`Streams` of one layer whose uniform draws come from a :class:`SharedDraws` of all the layers."""
    shared: SharedDraws | None = None
    layer: int = 0

    def uniform(self, H: int, n: int, count: int) -> torch.Tensor:
        if self.shared is None:
            return super().uniform(H, n, count)
        return self.shared.uniform(self.layer, H, n, count)


def is_streams(gens) -> bool:
    """True when ``gens`` are counter-based streams (a :class:`Streams`, or nested :class:`StreamKey`)."""
    return isinstance(gens, Streams) or (len(gens) > 0 and len(gens[0]) > 0 and isinstance(gens[0][0], StreamKey))


def as_streams(gens, device=None) -> Streams:
    if isinstance(gens, Streams):
        if device is None or _device(gens.keys) == torch.device(device) or (
                torch.device(device).type == gens.keys.device.type and torch.device(device).index is None):
            return gens                                  # already there (a LayerStreams keeps its shared draws)
        return Streams(gens.keys.to(device))
    return Streams.from_nested(gens, device)


def generator(seed: int, example_key, layer: int, replicate: int) -> StreamKey:
    """The random stream of one (example, layer, replicate): a :class:`StreamKey` (no generator object; draws
    are made on the device by the schemes)."""
    return StreamKey(stream_key(seed, example_key, layer, replicate))


def generators(seed: int, example_keys: list, layer: int, n_seeds: int) -> Streams:
    """``gens[s][b]``: the streams of replicate s and example b of a batch, for one layer."""
    return Streams.of(seed, example_keys, layer, range(n_seeds))
