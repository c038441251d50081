"""Synthetic production logs for demos, tests and benchmarks (written streaming, any size)."""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

WORDS = ("the a this that my your our their one some every no cat dog bird child teacher doctor city house "
         "river car train book letter song market garden window road sun rain wind night morning winter summer "
         "runs walks sees finds keeps opens reads writes sings waits brings leaves takes makes gives calls "
         "small large quiet bright old new cold warm early late happy tired busy slow fast green red blue "
         "near under over behind beside with without from into across and but or because while").split()
REGIONS = ("eu", "us", "apac")
CHANNELS = ("web", "app", "api")


def sentence(rng: random.Random, min_words: int = 4, max_words: int = 14, mask_prob: float = 0.5) -> str:
    n = rng.randint(min_words, max_words)
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < mask_prob:
        words[rng.randrange(n)] = "[MASK]"
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def records(n: int, seed: int = 0, min_words: int = 4, max_words: int = 14, mask_prob: float = 0.5):
    """``n`` log records: id, ts (ISO 8601), text, prediction, label, region, channel."""
    rng = random.Random(seed)
    t0 = 1_760_000_000
    for i in range(n):
        text = sentence(rng, min_words, max_words, mask_prob)
        pred, label = rng.choice(WORDS), rng.choice(WORDS)
        if rng.random() < 0.7:
            label = pred
        yield {"id": f"req-{i:08d}", "ts": f"2025-10-{1 + (i * 7 // max(n, 1)) % 28:02d}T{(i * 13) % 24:02d}:"
               f"{(i * 7) % 60:02d}:00Z", "text": text, "prediction": pred, "label": label,
               "region": REGIONS[rng.randrange(3)], "channel": CHANNELS[rng.randrange(3)],
               "_epoch": t0 + i * 37}


def generate_log(path: str | os.PathLike, n: int, fmt: str | None = None, seed: int = 0, min_words: int = 4,
                 max_words: int = 14, mask_prob: float = 0.5) -> Path:
    """Write a log of ``n`` good records as JSONL, CSV or Parquet (from the suffix or ``fmt``)."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    fields = ["id", "ts", "text", "prediction", "label", "region", "channel"]
    gen = records(n, seed, min_words, max_words, mask_prob)
    if fmt in ("jsonl", "json"):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for r in gen:
                f.write(json.dumps({k: r[k] for k in fields}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(fields)
            for r in gen:
                w.writerow([r[k] for k in fields])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        writer = None
        chunk: list[dict] = []
        try:
            for r in gen:
                chunk.append({k: r[k] for k in fields})
                if len(chunk) >= 50_000:
                    t = pa.Table.from_pylist(chunk)
                    writer = writer or pq.ParquetWriter(path, t.schema)
                    writer.write_table(t)
                    chunk = []
            if chunk or writer is None:
                t = pa.Table.from_pylist(chunk) if chunk else pa.table({k: pa.array([], pa.string()) for k in fields})
                writer = writer or pq.ParquetWriter(path, t.schema)
                writer.write_table(t)
        finally:
            if writer is not None:
                writer.close()
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return path
