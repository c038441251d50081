"""A small reader for R's serialization format (XDR, versions 2 and 3) and for lazy-load databases
(``Rdata.rdx`` index + ``Rdata.rdb`` records), enough to read the data sets of an R package without R.

Supported: NULL, symbols, pairlists, character/logical/integer/double vectors, generic vectors (lists),
attributes and back-references. Anything else raises ``ValueError`` naming the type. Returned values:
``RVector(values, attributes)`` for vectors, ``dict`` for pairlists (tag → value), ``None`` for NULL.
Written from the format's description in "R Internals", section "Serialization formats".
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP = 255, 254, 253, 242, 241
NA_INTEGER = -2147483648


@dataclass
class RVector:
    values: list
    attributes: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str] | None:
        n = self.attributes.get("names")
        return None if n is None else list(n.values)

    def as_dict(self) -> dict:
        """Named vector → {name: value}."""
        names = self.names
        if names is None:
            raise ValueError("vector has no names")
        return dict(zip(names, self.values))


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.refs: list = []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise ValueError("truncated R serialization stream")
        self.pos += n
        return out

    def length(self) -> int:
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        return n

    def header(self) -> None:
        fmt = self.bytes(2)
        if fmt != b"X\n":
            raise ValueError(f"only the XDR serialization format is supported, got {fmt!r}")
        version = self.int()
        self.int()  # writer's R version
        self.int()  # minimal reader version
        if version == 3:
            self.bytes(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"unsupported serialization version {version}")

    def item(self):
        flags = self.int()
        sxp = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if sxp == NILVALUE_SXP:
            return None
        if sxp in (GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP):
            return f"<environment {sxp}>"
        if sxp == REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if sxp == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if sxp == LISTSXP:
            out: dict = {}
            attrs = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            out[tag if tag is not None else len(out)] = car
            cdr = self.item()
            if isinstance(cdr, dict):
                for k, v in cdr.items():
                    out[k if not isinstance(k, int) else len(out)] = v
            del attrs
            return out
        if sxp == CHARSXP:
            n = self.int()
            if n == -1:
                return None
            raw = self.bytes(n)
            latin1 = bool(levels & (1 << 2)) and not levels & (1 << 3)
            return raw.decode("latin-1" if latin1 else "utf-8", errors="replace")
        if sxp in (LGLSXP, INTSXP):
            n = self.length()
            vals = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
            if sxp == LGLSXP:
                vals = [None if v == NA_INTEGER else bool(v) for v in vals]
            return self._attrs(RVector(vals), has_attr)
        if sxp == REALSXP:
            n = self.length()
            vals = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
            return self._attrs(RVector(vals), has_attr)
        if sxp in (STRSXP, VECSXP):
            n = self.length()
            vals = [self.item() for _ in range(n)]
            return self._attrs(RVector(vals), has_attr)
        raise ValueError(f"unsupported R object type {sxp}")

    def _attrs(self, vec: RVector, has_attr: bool) -> RVector:
        if has_attr:
            attrs = self.item()
            vec.attributes = attrs if isinstance(attrs, dict) else {}
        return vec


def unserialize(data: bytes):
    """One serialized R object (already decompressed) → Python value."""
    r = _Reader(data)
    r.header()
    return r.item()


def _decompress(record: bytes, compressed) -> bytes:
    """A lazy-load record: 4-byte big-endian uncompressed length, then the compressed stream."""
    (n,) = struct.unpack_from(">I", record, 0)
    if compressed in (True, 1):
        out = zlib.decompress(record[4:])
    else:
        kind = record[4:5]
        body = record[5:]
        if kind == b"Z":
            out = zlib.decompress(body)
        elif kind == b"2":
            out = bz2.decompress(body)
        elif kind == b"X":
            out = lzma.decompress(body)
        elif kind == b"0":
            out = body
        else:
            raise ValueError(f"unknown lazy-load compression {kind!r}")
    if len(out) != n:
        raise ValueError(f"lazy-load record length {len(out)} != recorded {n}")
    return out


def read_lazyload(rdx: Path, rdb: Path) -> dict:
    """All variables of an R lazy-load database → {name: value}."""
    index = unserialize(gzip.decompress(rdx.read_bytes()))
    parts = index.as_dict()
    variables = parts["variables"].as_dict()
    comp = parts.get("compressed")
    compressed = comp.values[0] if isinstance(comp, RVector) else True
    data = rdb.read_bytes()
    out = {}
    for name, loc in variables.items():
        offset, length = loc.values
        out[name] = unserialize(_decompress(data[offset:offset + length], compressed))
    return out
