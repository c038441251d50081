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


# --- the built-in sample log of the Triage page ("try it on a sample log") ------------------------------------

SUPPORT = (
    "My order has not [MASK] yet and it has been two weeks.",
    "I want to [MASK] my subscription before the next billing date.",
    "The app crashes every time I open the [MASK] page.",
    "Please reset my [MASK] so I can log in again.",
    "I was charged twice for the same [MASK].",
    "Where can I download my [MASK] for last month?",
    "The delivery driver left the package at the wrong [MASK].",
    "Can I change the shipping [MASK] after the order is placed?",
    "Your website says the item is in stock but I cannot [MASK] it.",
    "I never received the confirmation [MASK] for my booking.",
    "How do I add a second user to my [MASK]?",
    "The discount code did not [MASK] at checkout.",
    "My refund was approved but the money is not in my [MASK].",
    "The product arrived [MASK] and I would like a replacement.",
    "I cannot update my phone number in the [MASK] settings.",
    "Is there a way to speak to a [MASK] instead of the chat bot?",
    "The tracking link shows no [MASK] since Monday.",
    "I would like to return these shoes because they are too [MASK].",
    "Why was my account [MASK] without any warning?",
    "The invoice shows the wrong company [MASK].",
    "Thank you, the problem is solved now.",
    "I have been waiting on hold for an hour.",
)
NON_ENGLISH = (
    "注文した商品がまだ届きません。",
    "パスワードを再設定できません。",
    "Mi pedido llegó dañado y quiero un reembolso.",
    "Je n'arrive pas à me connecter à mon compte.",
)
MALFORMED = ('{"id": "req-broken", "text": "my order is late"', "<html><body>502 Bad Gateway</body></html>",
             '{"id": "req-empty", "text": ""}', "")


def sample_log_records(n: int = 240, seed: int = 7) -> list[str]:
    """The lines of a realistic customer-support log: short requests (most with one [MASK]), a few duplicates
    (a user pressing send twice), a few long complaint threads, a few non-English requests and a few malformed
    lines, with id, timestamp, channel, region, the logged prediction and a label."""
    rng = random.Random(seed)
    fill = ("arrived", "cancel", "settings", "password", "item", "invoice", "address", "address", "buy", "email",
            "account", "work", "account", "damaged", "profile", "person", "update", "small", "locked", "name")
    lines = []
    t0 = 1_760_000_000
    for i in range(n):
        ts = _iso(t0 + i * 97)
        base = {"id": f"req-{10000 + i}", "ts": ts, "channel": CHANNELS[rng.randrange(3)],
                "region": REGIONS[rng.randrange(3)]}
        r = rng.random()
        if i % 61 == 13:
            lines.append(MALFORMED[(i // 61) % len(MALFORMED)])
            continue
        if i % 47 == 5:
            text = NON_ENGLISH[(i // 47) % len(NON_ENGLISH)]
            lines.append(json.dumps({**base, "text": text, "prediction": "", "label": ""}, ensure_ascii=False))
            continue
        if i % 53 == 20:
            parts = [SUPPORT[rng.randrange(len(SUPPORT))].replace("[MASK]", rng.choice(fill)) for _ in range(40)]
            text = " ".join(parts) + " Please [MASK] me back as soon as possible."
            lines.append(json.dumps({**base, "text": text, "prediction": "call", "label": "call"}))
            continue
        j = rng.randrange(len(SUPPORT)) if r > 0.08 else 0
        text = SUPPORT[j]
        want = fill[j] if j < len(fill) else ""
        pred = want if rng.random() < 0.8 else rng.choice(fill)
        lines.append(json.dumps({**base, "text": text, "prediction": pred if "[MASK]" in text else "",
                                 "label": want if "[MASK]" in text else ""}))
    return lines


def _iso(epoch: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_sample_log(folder: str | os.PathLike) -> Path:
    """Write the built-in sample log (``support-sample.jsonl``) into ``folder`` once; returns its path."""
    path = Path(folder) / "support-sample.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(sample_log_records()) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return path
