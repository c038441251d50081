"""User-facing strings of the dashboard, one table per language.

Every label, help text and message the app shows is looked up here by key, so that a language is one more
table. ``t(key, lang, **values)`` formats the string with ``str.format``; a key missing in a language falls
back to English, and a key missing everywhere raises ``KeyError`` (tests check that every key the app uses
exists). UI-free: no Streamlit import.
"""
from __future__ import annotations

DEFAULT_LANG = "en"

EN: dict[str, str] = {
    # --- app and navigation ----------------------------------------------------------------------------
    "app.title": "ExpertLens",
    "app.tagline": "Every attention head as a mixture of positional experts — and what sampled attention changes.",
    "nav.explore": "Explore",
    "nav.head": "One head",
    "nav.triage": "Triage",
    "nav.sampling": "Sampled vs dense",
    # --- input -----------------------------------------------------------------------------------------
    "input.header": "Input",
    "input.model": "Model",
    "input.model_help": "A model from the registry, or a local folder (choose “local folder…”). "
                        "Safetensors only; nothing is downloaded.",
    "input.local_option": "local folder…",
    "input.folder": "Model folder",
    "input.folder_help": "Path to a folder holding config.json, the tokenizer and model.safetensors.",
    "input.folder_placeholder": "/path/to/a/bert-model",
    "input.text": "Text",
    "input.text_help": "Type a sentence. Put [MASK] where the model should predict a word.",
    "input.text_placeholder": "The capital of France is [MASK].",
    "input.example": "Example",
    "input.example_help": "Pick an example sentence to fill the text box.",
    "input.example_none": "(choose an example)",
    "input.insert_mask": "Insert [MASK]",
    "input.insert_mask_help": "Adds [MASK] at the end of the text: Streamlit's text box does not tell the app "
                              "where the cursor is. To mask a word inside the sentence, type [MASK] in its place.",
    "input.analyze": "Analyze",
    "input.analyze_help": "Run the text through the model and decompose every head.",
    "input.model_card": "Model: {name} · {type} · {layers_n} × {heads_n} · width {hidden} · "
                        "up to {max_tokens} tokens · {head_text}",
    "input.has_head": "has an MLM head",
    "input.no_head": "no MLM head",
    "input.empty_state": "Type a sentence (or pick an example) and press **Analyze**.",
    "input.changed": "The text box differs from the analysed text: press **Analyze** to analyse it.",
    "input.loading": "Loading model {name}…",
    "input.analysing": "Analysing {n} characters with {name}…",
    "tokens.header": "Tokens",
    "tokens.caption": "{n_tokens}; special tokens are marked ⟨…⟩ and greyed.",
    "tokens.col.position": "position",
    "tokens.col.token": "token",
    "tokens.col.special": "special",
    "tokens.col.segment": "segment",
    "pred.header": "Masked-token predictions",
    "pred.none_mask": "The text has no [MASK] token: insert one to see what the model predicts there.",
    "pred.no_head": "{name} has no MLM head, so it cannot predict masked tokens; its output is the mean-pooled "
                    "sentence embedding. Every other view works.",
    "pred.col.position": "position",
    "pred.col.rank": "rank",
    "pred.col.token": "token",
    "pred.col.prob": "probability",
    "notes.header": "What was changed in the input",
    "trunc.warning": "Input too long — {message}.",
    # --- errors ----------------------------------------------------------------------------------------
    "error.model": "Could not load the model: {message}",
    "error.input": "Could not analyse this text: {message}",
    "error.param": "Ignored URL parameter {name}={value}: {reason}",
    "error.param_clamped": "URL parameter {name}={value} is outside its range {range}: showing {name}={shown}.",
    "error.param_model": "URL parameter {name}={value} is out of range for this model and input (0–{hi}): "
                         "showing {name}={shown}.",
    "error.reason_int": "not an integer (allowed: {range})",
    "error.reason_empty": "empty",
    "error.reason_long": "{n} characters; a shareable view holds at most {max}",
    "error.reason_scheme": "unknown scheme (choose one of {choices})",
    "error.text_too_long": "the text has {n:,} characters; at most {max:,} can be analysed and shared (the model "
                           "reads only its first tokens anyway): shorten it",
    "error.unexpected": "Something went wrong while showing “{page}” ({kind}). The rest of the app still works: "
                        "change a setting or the input and try again, or reset the view below. The details are "
                        "in the server log.",
    "error.reset": "Reset the view",
    "error.reset_help": "Back to the default layer, head, query and sampling settings (the model is kept).",
    "error.folder_empty": "Type the path of a model folder.",
    # --- query / selection -----------------------------------------------------------------------------
    "select.query": "Query token",
    "select.query_help": "The position i whose attention row (gate) is shown.",
    "select.layer": "Layer",
    "select.head": "Head",
    "select.head_fallback": "Open head (layer · head)",
    "select.head_fallback_help": "Accessible alternative to clicking a cell of the grid.",
    "select.open_head": "Open this head",
    "select.head_option": "Layer {layer} · Head {head} — {role}",
    # --- overview ---------------------------------------------------------------------------------------
    "ov.header": "Model overview: all layers × heads",
    "ov.caption": "Each square is one head. Role, effective experts exp(H(a_i·)) and special-token mass are over "
                  "this input; firing Σ_j a_ij‖c(o_j)‖/σ_i is for the selected query token “{token}” (position "
                  "{query}). Role letters: P previous-token, N next-token, S self, D delimiter sink, B broad "
                  "(CBOW-like), C content-driven. Click a square to open the head.",
    "ov.role": "role",
    "ov.eff": "effective experts (mean)",
    "ov.special": "special-token mass (mean)",
    "ov.firing": "firing at the query",
    "ov.layer": "layer",
    "ov.head": "head",
    "ov.alt": "Grid of {L} layers by {H} heads showing each head's role, effective number of experts, mass on "
              "special tokens and firing strength at the selected query.",
    "ov.checks": "Exactness on this input — identity 1 (dense output): {d}; identity 2 (LayerNorm frozen): "
                 "{ln}; layer output through the model's own FFN: {c} (max relative error).",
    "ov.table": "overview table",
    "ov.col.eff_query": "effective experts at query",
    "ov.col.special_query": "special mass at query",
    "ov.col.top_expert": "top expert at query",
    # --- one head ---------------------------------------------------------------------------------------
    "head.header": "Layer {layer}, head {head}",
    "head.empty": "Nothing analysed yet: go to **Explore**, type a sentence and press **Analyze**.",
    "head.gates_title": "Gates a_ij (query × expert)",
    "head.firing_title": "Firing strength f_ij = a_ij‖c(o_j)‖/σ_i",
    "head.show": "Heatmap shows",
    "head.show_gate": "gate",
    "head.show_firing": "firing strength",
    "head.row_title": "Query {query}·{token}: gate and firing per expert",
    "head.top": "Top experts for the selected query",
    "head.col.position": "expert position j",
    "head.col.token": "token",
    "head.col.gate": "gate a_ij",
    "head.col.firing": "firing f_ij",
    "head.norms_title": "Expert message norms ‖c(o_j)‖",
    "head.profile_title": "Positional profile: mean gate mass by offset j − i",
    "head.caption_role": "Layer {layer}, head {head} acts as a **{role}** head on this input.",
    "head.caption_gate": "For “{token}” (position {query}) it gives {gate:.0%} of its gate to “{top_token}” "
                         "(position {top}) and spreads over about {eff:.1f} experts.",
    "head.caption_firing": "Weighted by message size, the expert that moves the output most is “{f_token}” "
                           "(position {f_pos}): a large gate on a small message changes little.",
    "head.caption_same": "That expert also moves the output most once message sizes are counted.",
    "head.more": "More about this head",
    "head.more_help": "One view at a time keeps the page light; each is computed when chosen.",
    "head.more_empty": "Choose a view above: the experts' message norms and positional profile, what each expert "
                        "predicts under a lens, or (at layer 0) the CBOW and gate-score splits.",
    "head.section.messages": "messages and positional profile",
    "head.section.lens": "what each expert predicts (lenses)",
    "head.section.layer0": "layer 0: CBOW and gate-score splits",
    "head.gates_alt": "Heatmap of gate weights: rows are query tokens, columns are expert tokens.",
    # --- lenses ------------------------------------------------------------------------------------------
    "lens.header": "What each expert predicts",
    "lens.choose": "Lens",
    "lens.choose_help": "vocabulary: messages projected to the vocabulary (cheap, heuristic); anchored: exact "
                        "local linearisation at this input; counterfactual: re-run with the head listening only "
                        "to expert j (causal).",
    "lens.vocabulary": "vocabulary (heuristic)",
    "lens.anchored": "anchored linear (exact, local)",
    "lens.counterfactual": "counterfactual routing (causal)",
    "lens.error": "Reconstruction error of this lens: {err:.2e} ({what})",
    "lens.progress_start": "Re-running the network once per expert ({n} experts)…",
    "lens.progress": "Re-running the network once per expert: {f:.0%} of {n}",
    "lens.unavailable": "The lens module is not available in this build: {message}",
    "lens.col.expert": "expert j",
    "lens.col.token": "token",
    "lens.col.gate": "gate",
    "lens.col.top": "top prediction",
    "lens.col.prob": "p(top)",
    "lens.experts_title": "Each expert's own prediction (largest gates first)",
    "lens.pool_title": "Geometric pool vs the model's output",
    "lens.pool_model": "model",
    "lens.pool_pool": "geometric pool",
    "lens.pool_arith": "arithmetic mixture (teaching aid, not the model)",
    "lens.no_head_note": "Without an MLM head the lens reads the tied input embeddings.",
    # --- layer 0 ------------------------------------------------------------------------------------------
    "l0.header": "Layer 0: the CBOW split",
    "l0.only": "The CBOW split and the gate-score split exist at layer 0 only: open a head of layer 0.",
    "l0.cbow_title": "Layer-0 message norm by input part",
    "l0.cbow_err": "The three parts sum to the message: max relative error {err:.1e}.",
    "l0.score_title": "Gate score s_ij at the query, by part",
    "l0.score_err": "The parts sum to the score the model used: max absolute error {err:.1e}.",
    "l0.word": "word",
    "l0.position": "position",
    "l0.segment_bias": "segment + bias",
    # --- sampling -----------------------------------------------------------------------------------------
    "samp.header": "Sampled vs dense attention",
    "samp.empty": "Nothing analysed yet: go to **Explore**, type a sentence and press **Analyze**.",
    "samp.unavailable": "The sampling module is not available in this build: {message}",
    "samp.scheme": "Scheme",
    "samp.scheme_help": "How the attention row is estimated from k keys (see SAMPLING.md).",
    "samp.k": "k (keys per query)",
    "samp.k_help": "Number of sampled (or kept) keys per query ({range}).",
    "samp.seed": "Seed",
    "samp.seed_help": "Base seed ({range}); replicate r uses a generator derived from (seed, layer, replicate).",
    "samp.seeds": "Seeds (replicates)",
    "samp.seeds_help": "Number of independent replicates, for variance and flip rate.",
    "samp.where": "Substitute in",
    "samp.where_help": "Where sampled attention replaces dense attention for the downstream effect.",
    "samp.where.head": "this head",
    "samp.where.layer": "this layer",
    "samp.where.all": "all layers",
    "samp.rows_title": "Query “{token}”: dense vs sampled gate row (layer {layer}, head {head}, seed {seed})",
    "samp.replicate": "Replicate shown",
    "samp.replicate_help": "Which of the S replicates is drawn as the sampled row.",
    "samp.dense": "dense",
    "samp.sampled": "sampled",
    "samp.err_title": "{metric} per head (mean over queries)",
    "samp.errors": "Errors over layers × heads",
    "samp.metric": "Error metric",
    "samp.downstream": "Downstream effect",
    "samp.flip": "Flip rate across seeds: at {rate:.0%} of the compared positions ({where}) at least one of "
                 "the {seeds_n} changes the top-1 prediction.",
    "samp.where_mask": "the [MASK] token at position {pos}|the {n} [MASK] tokens at positions {pos}",
    "samp.where_nonspecial": "every non-special token: the text has no [MASK]",
    "samp.cosine": "Cosine between the dense and sampled pooled embeddings: mean {mean:.4f}, min {min:.4f}.",
    "samp.variance": "Variance across seeds",
    "samp.concentration": "How concentrated the error is",
    "samp.flops": "FLOPs per scheme",
    "samp.progress": "Sampling {done}/{total}…",
    # --- counts: "singular|plural" (English: 1 is singular) ---------------------------------------------
    "count.layer": "{n} layer|{n} layers",
    "count.head": "{n} head|{n} heads",
    "count.token": "{n} token|{n} tokens",
    "count.seed": "{n} seed|{n} seeds",
    # --- exports ----------------------------------------------------------------------------------------
    "export.html": "HTML",
    "export.html_help": "Self-contained HTML with plotly.js inlined (works offline). PNG: use the camera icon "
                        "in the chart's toolbar.",
    "export.csv": "CSV",
    "export.csv_help": "Download this table as CSV.",
    "empty.no_data": "Nothing to show for this selection.",
}

TABLES: dict[str, dict[str, str]] = {"en": EN}
LANGS = tuple(TABLES)


def t(key: str, lang: str = DEFAULT_LANG, **values) -> str:
    """The string for ``key`` in ``lang`` (English when the language lacks it), formatted with ``values``."""
    table = TABLES.get(lang, EN)
    text = table.get(key)
    if text is None:
        text = EN[key]
    return text.format(**values) if values else text


def plural(n: int, key: str, lang: str = DEFAULT_LANG, **values) -> str:
    """A "singular|plural" entry chosen for the count ``n`` (English rule: 1 is singular) and formatted with
    ``n`` and ``values``; an entry without "|" is used for every count."""
    forms = t(key, lang).split("|")
    form = forms[0] if n == 1 or len(forms) == 1 else forms[1]
    return form.format(n=n, **values)
