"""Where models trained from a user's table are kept: one folder per (table content, target, bins, form, epochs)
under a per-user cache (override with EXPERTLENS_CACHE), so a retrain of the same settings is instant and the
other pages can load the model by its folder path."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .data import Prepared
from .model import TrainSettings, save, train


def cache_root() -> Path:
    base = os.environ.get("EXPERTLENS_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "expertlens"
    return root / "tabular"


def model_key(data_digest: str, target: str, bins: int, settings: TrainSettings) -> str:
    blob = json.dumps({"data": data_digest, "target": target, "bins": bins, **settings.__dict__}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def trained_folder(prep: Prepared, key: str, settings: TrainSettings,
                   progress: Callable[[float, str], None] | None = None) -> tuple[Path, dict]:
    """The model folder for ``key``: trained on ``prep``'s training rows unless it is already there."""
    folder = cache_root() / key
    info_path = folder / "tabular.json"
    if (folder / "model.safetensors").exists() and info_path.exists():
        return folder, json.loads(info_path.read_text(encoding="utf-8")).get("training", {})
    model, info = train(prep.enc, prep.codes[prep.train], settings, progress)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    save(model, prep.enc, tmp, info)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder, info
