"""Where the page keeps uploaded logs and run folders (a per-user cache; override with EXPERTLENS_CACHE)."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict
from pathlib import Path

from . import registry


def cache_root() -> Path:
    base = os.environ.get("EXPERTLENS_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "expertlens"
    return root / "triage"


def save_upload(name: str, data: bytes) -> Path:
    """Store uploaded bytes under their content hash (the same upload twice is one file; runs resume)."""
    digest = hashlib.blake2b(data, digest_size=12).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip("-.") or "log"
    folder = cache_root() / "uploads" / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe
    if not path.exists() or path.stat().st_size != len(data):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def run_folder(log: str | os.PathLike, model: str, mapping, settings, **extra) -> Path:
    """A run folder named by everything that decides the results, so the same request finds (and resumes) its
    earlier run."""
    p = Path(log).resolve()
    st = p.stat()
    ident = {"log": str(p), "size": st.st_size, "mtime": int(st.st_mtime), "model": model,
             "mapping": asdict(mapping), "settings": registry.identity(settings), **extra}
    digest = hashlib.blake2b(json.dumps(ident, sort_keys=True, default=str).encode(), digest_size=10).hexdigest()
    return cache_root() / "runs" / f"{re.sub(r'[^A-Za-z0-9_-]+', '-', p.stem)[:40]}-{digest}"
