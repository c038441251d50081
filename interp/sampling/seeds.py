"""Reproducible randomness for sampled attention.

One explicit ``torch.Generator`` per (example, layer, replicate), derived from one user-visible seed and an
*example key* that is intrinsic to the example (its index in the user's file, a content hash, ...), never its
position in a batch. A result therefore does not depend on batch size, batch order or device count.
Generators live on the CPU; draws are moved to the compute device afterwards.
"""
from __future__ import annotations

import hashlib

import torch


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


def generator(seed: int, example_key, layer: int, replicate: int) -> torch.Generator:
    """The CPU generator of one (example, layer, replicate)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, example_key, layer, replicate))
    return g


def generators(seed: int, example_keys: list, layer: int, n_seeds: int) -> list[list[torch.Generator]]:
    """``gens[s][b]``: one generator per replicate s and example b of a batch, for one layer."""
    return [[generator(seed, key, layer, s) for key in example_keys] for s in range(n_seeds)]
