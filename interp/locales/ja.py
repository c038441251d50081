"""Japanese strings of the dashboard: the same keys as ``interp.i18n.EN``, written for a Japanese reader (an
executive audience as well as engineers), not translated word by word. Placeholders (``{name}``, ``{rate:.0%}``)
are the same as in English; ``tests/test_i18n.py`` checks both. ``scripts/i18n_missing.py`` lists the keys still
missing here. UI-free: no Streamlit import.
"""
from __future__ import annotations

JA: dict[str, str] = {
    # --- app and navigation ----------------------------------------------------------------------------
    "app.title": "ExpertLens",
    "app.tagline": "アテンションの各ヘッドを「位置ごとの専門家の組み合わせ」として可視化し、"
                   "サンプリングによる近似で何が変わるかを示します。",
    "nav.explore": "探索",
    "nav.head": "ヘッド詳細",
    "nav.triage": "トリアージ",
    "nav.sampling": "サンプリングと厳密計算の比較",
    # --- input -----------------------------------------------------------------------------------------
    "input.header": "入力",
    "input.model": "モデル",
    "input.model_help": "登録済みのモデル、またはローカルのフォルダ（「ローカルフォルダ…」を選択）。"
                        "safetensors 形式のみ対応し、ダウンロードは一切行いません。",
    "input.local_option": "ローカルフォルダ…",
    "input.folder": "モデルのフォルダ",
    "input.folder_help": "config.json、トークナイザー、model.safetensors を含むフォルダのパス。",
    "input.folder_placeholder": "/path/to/a/bert-model",
    "input.text": "テキスト",
    "input.text_help": "文を入力してください。モデルに単語を予測させたい箇所には [MASK] を入れます。",
    "input.text_placeholder": "The capital of France is [MASK].",
    "input.example": "例文",
    "input.example_help": "例文を選ぶとテキスト欄に入ります。",
    "input.example_none": "（例文を選択）",
    "input.insert_mask": "[MASK] を挿入",
    "input.insert_mask_help": "テキストの末尾にマスクトークンを追加します。",
    "input.analyze": "分析する",
    "input.analyze_help": "テキストをモデルに通し、すべてのヘッドを分解します。",
    "input.model_card": "モデル: {name} · {type} · {layers_n} × {heads_n} · 幅 {hidden} · "
                        "最大 {max_tokens} トークン · {head_text}",
    "input.has_head": "MLM ヘッドあり",
    "input.no_head": "MLM ヘッドなし",
    "input.empty_state": "文を入力するか例文を選び、**分析する** を押してください。",
    "input.changed": "テキスト欄の内容が分析済みのテキストと異なります。**分析する** を押すと反映されます。",
    "input.loading": "モデル {name} を読み込んでいます…",
    "input.analysing": "{name} で {n} 文字を分析しています…",
    "tokens.header": "トークン",
    "tokens.caption": "{n_tokens}。特殊トークンは ⟨…⟩ で囲み、灰色で表示しています。",
    "tokens.col.position": "位置",
    "tokens.col.token": "トークン",
    "tokens.col.special": "特殊",
    "tokens.col.segment": "セグメント",
    "pred.header": "マスク位置の予測",
    "pred.none_mask": "テキストに [MASK] がありません。挿入すると、その位置でモデルが何を予測するかが表示されます。",
    "pred.no_head": "{name} には MLM ヘッドがないため、マスク位置の単語は予測できません。出力は文全体の平均ベクトル"
                    "（文埋め込み）です。それ以外の表示はすべて利用できます。",
    "pred.col.position": "位置",
    "pred.col.rank": "順位",
    "pred.col.token": "トークン",
    "pred.col.prob": "確率",
    "notes.header": "入力に加えた変更",
    "trunc.warning": "入力が長すぎます — {message}。",
    # --- errors ----------------------------------------------------------------------------------------
    "error.model": "モデルを読み込めませんでした: {message}",
    "error.input": "このテキストは分析できませんでした: {message}",
    "error.param": "URL パラメータ {name}={value} を無視しました: {reason}",
    "error.folder_empty": "モデルフォルダのパスを入力してください。",
    # --- query / selection -----------------------------------------------------------------------------
    "select.query": "注目するトークン（クエリ）",
    "select.query_help": "アテンションの行（ゲート）を表示する位置 i。",
    "select.layer": "層",
    "select.head": "ヘッド",
    "select.head_fallback": "ヘッドを開く（層 · ヘッド）",
    "select.head_fallback_help": "グリッドのマスをクリックする代わりに使える選択欄です。",
    "select.open_head": "このヘッドを開く",
    # --- overview ---------------------------------------------------------------------------------------
    "ov.header": "モデル全体: すべての層 × ヘッド",
    "ov.caption": "各マスが 1 つのヘッドです。役割、実効的な専門家の数 exp(H(a_i·))、特殊トークンへの重みは"
                  "この入力全体での値、発火強度 Σ_j a_ij‖c(o_j)‖/σ_i は選択中のトークン「{token}」（位置 {query}）"
                  "での値です。役割の記号: P 直前のトークン、N 直後のトークン、S 自分自身、D 区切り記号への集中、"
                  "B 広く均等（CBOW 的）、C 内容に依存。マスをクリックするとそのヘッドを開きます。",
    "ov.role": "役割",
    "ov.eff": "実効的な専門家の数（平均）",
    "ov.special": "特殊トークンへの重み（平均）",
    "ov.firing": "クエリでの発火強度",
    "ov.layer": "層",
    "ov.head": "ヘッド",
    "ov.alt": "{L} 層 × {H} ヘッドのグリッド。各ヘッドの役割、実効的な専門家の数、特殊トークンへの重み、"
              "選択中のクエリでの発火強度を示します。",
    "ov.checks": "この入力での厳密性 — 恒等式 1（アテンション出力）: {d}、恒等式 2（LayerNorm 固定）: {ln}、"
                 "モデル自身の FFN を通した層出力: {c}（最大相対誤差）。",
    "ov.table": "全体表",
    "ov.col.eff_query": "クエリでの実効的な専門家の数",
    "ov.col.special_query": "クエリでの特殊トークンへの重み",
    "ov.col.top_expert": "クエリでの最有力の専門家",
    # --- one head ---------------------------------------------------------------------------------------
    "head.header": "第 {layer} 層、ヘッド {head}",
    "head.empty": "まだ何も分析していません。**探索** で文を入力し、**分析する** を押してください。",
    "head.gates_title": "ゲート a_ij（クエリ × 専門家）",
    "head.firing_title": "発火強度 f_ij = a_ij‖c(o_j)‖/σ_i",
    "head.show": "ヒートマップの表示内容",
    "head.show_gate": "ゲート",
    "head.show_firing": "発火強度",
    "head.row_title": "クエリ {query}·{token}: 専門家ごとのゲートと発火強度",
    "head.top": "選択中のクエリで上位の専門家",
    "head.col.position": "専門家の位置 j",
    "head.col.token": "トークン",
    "head.col.gate": "ゲート a_ij",
    "head.col.firing": "発火強度 f_ij",
    "head.norms_title": "専門家メッセージのノルム ‖c(o_j)‖",
    "head.profile_title": "位置の傾向: 相対位置 j − i ごとの平均ゲート",
    "head.caption_role": "第 {layer} 層のヘッド {head} は、この入力では **{role}** 型のヘッドとして働いています。",
    "head.caption_gate": "「{token}」（位置 {query}）では、ゲートの {gate:.0%} を「{top_token}」（位置 {top}）に"
                         "割り当て、おおよそ {eff:.1f} 個の専門家に分散しています。",
    "head.caption_firing": "メッセージの大きさまで考慮すると、出力を最も動かす専門家は「{f_token}」（位置 {f_pos}）です。"
                           "ゲートが大きくても、メッセージが小さければ影響はわずかです。",
    "head.caption_same": "メッセージの大きさを考慮しても、出力を最も動かすのはこの専門家です。",
    "head.more": "このヘッドをさらに詳しく",
    "head.more_help": "表示は一度に 1 つずつにしてページを軽くしています。選んだ時点で計算します。",
    "head.more_empty": "上から表示を選んでください: 専門家メッセージのノルムと位置の傾向、各専門家がレンズ越しに何を"
                       "予測するか、（第 0 層では）CBOW 分解とゲートスコアの分解。",
    "head.section.messages": "メッセージと位置の傾向",
    "head.section.lens": "各専門家の予測（レンズ）",
    "head.section.layer0": "第 0 層: CBOW 分解とゲートスコアの分解",
    "head.gates_alt": "ゲートの重みのヒートマップ。行がクエリのトークン、列が専門家のトークンです。",
    # --- lenses ------------------------------------------------------------------------------------------
    "lens.header": "各専門家が予測するもの",
    "lens.choose": "レンズ",
    "lens.choose_help": "語彙レンズ: メッセージを語彙に射影（軽量・経験則）。アンカー付き線形: この入力での厳密な局所"
                        "線形化。反実仮想ルーティング: ヘッドが専門家 j だけを聞くようにして再計算（因果的）。",
    "lens.vocabulary": "語彙レンズ（経験則）",
    "lens.anchored": "アンカー付き線形（厳密・局所）",
    "lens.counterfactual": "反実仮想ルーティング（因果的）",
    "lens.error": "このレンズの再構成誤差: {err:.2e}（{what}）",
    "lens.unavailable": "このビルドにはレンズのモジュールが含まれていません: {message}",
    "lens.col.expert": "専門家 j",
    "lens.col.token": "トークン",
    "lens.col.gate": "ゲート",
    "lens.col.top": "最上位の予測",
    "lens.col.prob": "p（最上位）",
    "lens.experts_title": "各専門家単独の予測（ゲートの大きい順）",
    "lens.pool_title": "幾何プールとモデル出力の比較",
    "lens.pool_model": "モデル",
    "lens.pool_pool": "幾何プール",
    "lens.pool_arith": "算術混合（説明用であり、モデルの計算ではありません）",
    "lens.no_head_note": "MLM ヘッドがないため、レンズは共有された入力埋め込みを使って読み取ります。",
    # --- layer 0 ------------------------------------------------------------------------------------------
    "l0.header": "第 0 層: CBOW 分解",
    "l0.only": "CBOW 分解とゲートスコアの分解は第 0 層にしかありません。第 0 層のヘッドを開いてください。",
    "l0.cbow_title": "第 0 層のメッセージのノルム（入力の成分別）",
    "l0.cbow_err": "3 つの成分の和はメッセージに一致します: 最大相対誤差 {err:.1e}。",
    "l0.score_title": "クエリでのゲートスコア s_ij（成分別）",
    "l0.score_err": "成分の和はモデルが実際に使ったスコアに一致します: 最大絶対誤差 {err:.1e}。",
    "l0.word": "単語",
    "l0.position": "位置",
    "l0.segment_bias": "セグメント + バイアス",
    # --- sampling -----------------------------------------------------------------------------------------
    "samp.header": "サンプリングと厳密計算の比較",
    "samp.empty": "まだ何も分析していません。**探索** で文を入力し、**分析する** を押してください。",
    "samp.unavailable": "このビルドにはサンプリングのモジュールが含まれていません: {message}",
    "samp.scheme": "方式",
    "samp.scheme_help": "k 個のキーからアテンションの行をどう推定するか（SAMPLING.md 参照）。",
    "samp.k": "k（クエリあたりのキー数）",
    "samp.k_help": "クエリごとにサンプリングする（または残す）キーの数（{range}）。",
    "samp.seed": "シード",
    "samp.seed_help": "基準のシード（{range}）。試行 r には（シード、層、試行）から導いた乱数生成器を使います。",
    "samp.seeds": "シード数（試行回数）",
    "samp.seeds_help": "独立な試行の回数。ばらつきと答えが変わる割合の計算に使います。",
    "samp.where": "置き換える範囲",
    "samp.where_help": "出力への影響を見るとき、厳密なアテンションをサンプリングに置き換える範囲。",
    "samp.where.head": "このヘッド",
    "samp.where.layer": "この層",
    "samp.where.all": "全層",
    "samp.rows_title": "クエリ「{token}」: 厳密計算とサンプリングのゲート行（第 {layer} 層、ヘッド {head}、シード {seed}）",
    "samp.replicate": "表示する試行",
    "samp.replicate_help": "S 回の試行のうち、どれをサンプリングの行として描くか。",
    "samp.dense": "厳密計算",
    "samp.sampled": "サンプリング",
    "samp.err_title": "ヘッドごとの {metric}（クエリ平均）",
    "samp.errors": "層 × ヘッドごとの誤差",
    "samp.metric": "誤差の指標",
    "samp.downstream": "出力への影響",
    "samp.flip": "シード間で答えが変わる割合: 比較した位置（{where}）のうち {rate:.0%} で、{seeds_n}の"
                 "うち少なくとも 1 つで第 1 候補が変わります。",
    "samp.cosine": "厳密計算とサンプリングの文埋め込みのコサイン類似度: 平均 {mean:.4f}、最小 {min:.4f}。",
    "samp.variance": "シード間のばらつき",
    "samp.concentration": "誤差の集中度",
    "samp.flops": "方式ごとの FLOPs",
    "samp.progress": "サンプリング中 {done}/{total}…",
    # --- noise probe (pages/5_Noise.py) ---------------------------------------------------------------
    "nav.noise": "ノイズ耐性",
    "noise.header": "サンプリング型のアテンションはノイズに強いか",
    "noise.caption": "分析したテキストに乱れ（誤字、単語の脱落、大文字・小文字の違い…）を加え、各 [MASK] の予測が、"
                     "乱れのないテキストを厳密計算したときの予測からどれだけの割合で変わるかを調べます。厳密計算と、"
                     "同じシードを使ったサンプリングの両方で測り、ノイズがなくてもサンプリングだけで予測が変わる割合"
                     "（下限）と並べて示します。",
    "noise.empty": "まだ何も分析していません。**探索** で文を入力し、**分析する** を押してください。",
    "noise.perturbation": "ノイズの種類",
    "noise.perturbation_help": "テキストをどう乱すか。特殊トークンと [MASK] は変更しません。",
    "noise.rate": "割合",
    "noise.rate_help": "変更する割合: 文字単位の編集では対象となる文字の、単語単位の編集では対象となる単語のうち、"
                       "どれだけを変えるか。",
    "noise.schemes": "サンプリング方式",
    "noise.schemes_help": "すべての層・すべてのヘッドに適用し、厳密計算と比較する方式。",
    "noise.schemes_empty": "厳密計算と比較するサンプリング方式を少なくとも 1 つ選んでください。",
    "noise.k": "k（クエリあたりのキー数）",
    "noise.k_help": "サンプリング方式で使うキーの数（予算）。",
    "noise.noise_seeds": "ノイズ版の数",
    "noise.noise_seeds_help": "シードを変えて作る、ノイズを加えたテキストの数。",
    "noise.seeds": "サンプリングのシード数",
    "noise.seeds_help": "サンプリングの試行回数。元のテキストとすべてのノイズ版で同じシードを使います。",
    "noise.show_seed": "表示するノイズ版",
    "noise.show_seed_help": "元のテキストと並べて表示するノイズ版を選びます。",
    "noise.running": "ノイズ版 {n} 件 × サンプリング設定 {configs} 通りを検査しています…",
    "noise.clean": "ノイズなし",
    "noise.noisy": "ノイズあり（シード {seed}。変更した文字に印を付けています）",
    "noise.no_mask": "テキストに [MASK] がありません。最大 {cap} 語を 1 語ずつ順に隠して検査します（{words}）。",
    "noise.nothing": "この割合では、このテキストに変更できる箇所がありませんでした（例: 大文字・小文字を区別しない"
                     "トークナイザーで大文字・小文字を変えた場合や、割合が 0 の場合）。",
    "noise.predictions": "予測（厳密計算）",
    "noise.rates": "答えが変わる割合（95% 区間付き）",
    "noise.summary": "{perturbation}（割合 {rate:g}）を加えると、答えが変わる割合は厳密計算で {dense:.0%}、"
                     "{scheme}（k={k}）で {sampled:.0%} でした（ノイズなしの下限 {floor:.0%}）。"
                     "差は {diff:+.0%} [{lo:+.0%}, {hi:+.0%}]、McNemar 検定の p = {p:.2g}。",
    "noise.cosine": "MLM ヘッドがないため、文埋め込みを比較します。ノイズなしとノイズありのコサイン類似度は "
                    "{dense:.4f}（厳密計算）、{sampled:.4f}（{scheme}、k={k}）です。",
    "noise.heads": "ゲートが最も大きく動いたヘッド",
    "noise.heads_caption": "ノイズなしとノイズありの厳密計算のゲート行の全変動距離。どちらもノイズなしのテキストの"
                           "単語ごとに合算し、ノイズ後も残った単語とすべてのノイズ版について平均しています。",
    "noise.fig_title": "{perturbation}を加えたときに答えが変わる割合",
    "noise.dense": "厳密計算",
    "noise.sampled_label": "{scheme}、k={k}",
    "noise.floor_label": "下限 {scheme}、k={k}（ノイズなし）",
    "noise.axis_rate": "{perturbation}の割合",
    "noise.axis_flip": "第 1 候補が変わる割合",
    "noise.texts": "すべてのノイズ版（表）",
    "noise.variant": "表示する隠した単語",
    # --- exports ----------------------------------------------------------------------------------------
    "export.html": "HTML",
    "export.html_help": "plotly.js を埋め込んだ単体の HTML（オフラインで開けます）。PNG はグラフのツールバーの"
                        "カメラアイコンから保存できます。",
    "export.csv": "CSV",
    "export.csv_help": "この表を CSV でダウンロードします。",
    "empty.no_data": "この選択では表示するものがありません。",
}

# === story mode and report export (executive demo) ====================================================== #
JA.update({
    "story.nav": "ストーリー",
    "story.title": "ストーリーで見る",
    "story.step_of": "ステップ {step} / {total}",
    "story.next": "次へ",
    "story.back": "戻る",
    "story.steps": "ステップ",
    "story.text": "テキスト",
    "story.text_help": "どんな文でも入力できます。すべてのステップがその文に合わせて変わります。"
                       "モデルに単語を当てさせたい箇所には [MASK] を入れてください。",
    "story.settings": "設定",
    "story.language": "言語",
    "story.language_help": "URL に lang=en または lang=ja として保存されます。",
    "story.preparing": "{model} で {n} 文字のストーリーを準備しています…",
    "story.empty": "文を入力するとストーリーが始まります。",
    "story.meta": "モデル {model} · サンプリング方式 {scheme}、k = {k} · シード {seed} から {seeds} 回の試行",
    "story.open_view": "この画面を開く",
    "story.export": "レポートをダウンロード",
    "story.export_html": "レポート（HTML）",
    "story.export_html_help": "1 つのファイルで完結し、すべての図を操作でき、オフラインでも開けます。",
    "story.export_pdf": "レポート（PDF）",
    "story.export_pdf_help": "A4 サイズ。ヘッドレス Chromium で作成します。",
    "story.export_pdf_failed": "PDF を作成できませんでした: {message}",
    # step 1
    "story.s1.title": "モデルが読む文と、その予測",
    "story.s1.pred": "空欄に入る語として、モデルは「{token}」を選びました（確信度 {prob:.0%}）。",
    "story.s1.others": "次点の候補: {others}。",
    "story.s1.no_mask": "このテキストには空欄がありません。単語を当てさせたい箇所に [MASK] を入れてください。",
    "story.s1.no_head": "{model} は単語を予測しません（MLM ヘッドがありません）。文全体を 1 つのベクトルに変換する"
                        "モデルです。以降のストーリーはそのまま当てはまります。",
    "story.s1.chart": "空欄に対するモデルの上位候補",
    "story.axis.prob": "確信度",
    "story.axis.word": "単語",
    "story.axis.gate": "注意の配分",
    "story.axis.share": "割合",
    "story.axis.error": "誤差（ヘッド出力に対する割合）",
    # step 2
    "story.s2.title": "一つひとつの単語が「専門家」",
    "story.s2.lead": "「{query}」を理解するために、あるアテンションヘッド（第 {layer} 層、ヘッド {head}）が主に"
                     "耳を傾けているのは {experts} です。",
    "story.s2.item": "「{token}」（{gate:.0%}）",
    "story.s2.eff": "注意は {n} 語のうち約 {eff:.1f} 語に分散しています。各単語が専門家であり、"
                    "アテンションは誰の意見を聞くかを決めているのです。",
    "story.s2.chart": "「{query}」が耳を傾ける相手（第 {layer} 層、ヘッド {head}）",
    # step 3
    "story.s3.title": "アテンションは専門家の組み合わせ、CBOW は固定の平均",
    "story.s3.lead": "単語を 1 つずつ隠し、アテンションを持つモデルと、周りの単語を固定の重みで平均するだけのモデル"
                     "（CBOW）に当てさせます。",
    "story.s3.here": "この文では、アテンションは {n} 語中 {paper_hits} 語を当て、固定の平均は {cbow_hits} 語を"
                     "当てました。",
    "story.s3.heldout": "学習に使っていないテキストで隠した {tokens:,} 語では、正解率はアテンション {paper:.1%}、"
                        "固定の平均 {cbow:.1%}、最も頻出する単語を答え続けた場合 {baseline:.1%} でした。",
    "story.s3.unavailable": "この比較には同梱の paper モデルと cbow モデルが必要ですが、インストールされていません。",
    "story.s3.no_words": "この文には両モデルが知っている単語がないため、隠して当てさせることができません。",
    "story.s3.chart": "正しく当てられた単語の割合",
    "story.s3.attention": "アテンション（専門家の組み合わせ）",
    "story.s3.cbow": "固定の平均（CBOW）",
    "story.s3.baseline": "最頻出の単語",
    "story.s3.sentence": "この文",
    "story.s3.held_out": "未学習のテキスト",
    # step 4
    "story.s4.title": "サンプリングは一部の専門家にだけ耳を傾ける",
    "story.s4.lead": "すべての単語を重み付けする代わりに、サンプリング型のアテンション（方式 {scheme}）は、"
                     "すべての層のすべてのヘッドで、無作為に選んだ {k} 語だけに耳を傾けます。",
    "story.s4.same": "無作為な試行 {seeds} 回で、モデルの答えは {agree:.0%} のケースで変わりませんでした。"
                     "少なくとも 1 回の試行で答えが変わった位置は {flip:.0%} です。",
    "story.s4.cosine": "無作為な試行 {seeds} 回で、文ベクトルは厳密計算のものとほぼ同じです: コサイン類似度は"
                       "平均 {mean:.3f}、最悪でも {min:.3f}。",
    "story.s4.flops": "このとき、アテンションの計算量はこの長さ（{n} トークン）で厳密計算の {ratio:.0%} です。",
    "story.s4.chart": "「{query}」の注意の配分: 厳密計算とサンプリング（第 {layer} 層、ヘッド {head}、1 回目の試行）",
    # step 5
    "story.s5.title": "入力が乱れていたら",
    "story.s5.lead": "実際のテキストには誤字や抜けがあります。入力が乱れたとき、サンプリングは厳密計算より"
                     "間違えやすくなるのでしょうか。",
    "story.s5.not_measured": "まだ測定していません: ノイズ耐性の検査（誤字・単語の脱落）はこのビルドに含まれていません。",
    "story.s5.failed": "このテキストではノイズ耐性を測定できませんでした: {message}",
    "story.s5.result": "{perturbation}（割合 {rate:.0%}）を加えると、答えが変わる割合は厳密計算で {dense:.0%}、"
                       "サンプリングで {sampled:.0%} でした（ノイズなしでサンプリングだけによる変化は {floor:.0%}）。",
    "story.s5.chart": "答えが変わる割合",
    "story.noise.typo": "誤字",
    "story.noise.word-drop": "単語の脱落",
    "story.s5.dense": "厳密計算・ノイズあり",
    "story.s5.sampled": "サンプリング・ノイズあり",
    "story.s5.floor": "サンプリング・ノイズなし",
    # step 6
    "story.s6.title": "どこで崩れるか",
    "story.s6.worst": "このテキストでサンプリングの誤差が最も大きいのは「{token}」（第 {layer} 層、ヘッド {head}）で、"
                      "そのヘッドの出力の {err:.0%} に相当します。このヘッドでは、誤差の大きい上位 5% の単語が"
                      "誤差全体の {share:.0%} を占めています。",
    "story.s6.none": "このテキストでは、測定できるサンプリングの誤差はありませんでした。",
    "story.s6.triage": "直近のログのトリアージ（{analysed:,} 件）で最も不安定だった入力は「{text}」です"
                       "（疑わしさ {suspicion:.2f}。サンプリングで答えが変わる位置の割合 {flip:.0%}）。",
    "story.s6.chart": "単語ごとのサンプリング誤差（大きい順、第 {layer} 層、ヘッド {head}）",
    "story.s6.open": "最悪のケースを開く",
    # step 7
    "story.s7.title": "会議で伝える 3 つのメッセージ",
    "story.s7.lead": "どのメッセージも、このモデルとこのテキストで測定した数値で裏付けを確認しています。",
    "story.m1.supported": "計算量の削減: ここではサンプリング型のアテンションの FLOPs は厳密計算の {ratio:.0%} で、"
                          "答えは {agree:.0%} の試行で変わりませんでした。この長さではアテンションは各層の計算の "
                          "{share:.0%} なので、モデル全体で削減できるのは最大でもその分です。",
    "story.m1.supported_pooled": "計算量の削減: ここではサンプリング型のアテンションの FLOPs は厳密計算の "
                                 "{ratio:.0%} で、文ベクトルは厳密計算とのコサイン類似度 {min:.3f} 以上を保ちました。"
                                 "この長さではアテンションは各層の計算の {share:.0%} なので、モデル全体で削減できる"
                                 "のは最大でもその分です。",
    "story.m1.no_saving": "計算量の削減 — このテキストでは当てはまりません: 方式 {scheme} は {n} トークンで厳密計算の "
                          "{ratio:.0%} の FLOPs を要します。スコアの計算を省く方式か、より長い入力で試してください。",
    "story.m1.flips": "計算量は減るものの、答えはまだ安定しません: FLOPs は {ratio:.0%} ですが、"
                      "試行によって {flip:.0%} の位置で答えが変わりました。",
    "story.m1.drift": "計算量は減るものの、出力はまだ安定しません: FLOPs は {ratio:.0%} ですが、"
                      "文ベクトルのコサイン類似度が {min:.3f} まで下がりました。",
    "story.m2.supported": "ノイズへの強さ: {perturbation} を加えたとき、答えが変わる割合はサンプリングで {sampled:.0%}、"
                          "厳密計算で {dense:.0%} でした。厳密計算より悪くはないため、低リスクで試せます。",
    "story.m2.not_supported": "ノイズへの強さは確認できませんでした: {perturbation} を加えたとき、答えが変わる割合は"
                              "サンプリングで {sampled:.0%}、厳密計算で {dense:.0%} でした。",
    "story.m2.not_measured": "ノイズへの強さ — まだ測定していません（ノイズのないテキストでは、サンプリングだけで答え"
                             "が変わる位置は {flip:.0%} です）。",
    "story.m3.supported": "段階的な導入と監視: ログの {analysed:,} 件のうち不安定な入力（サンプリングで答えが変わるもの）"
                          "は {fragile:.1%} です。段階的に導入し、トリアージで監視できる程度にまれです。",
    "story.m3.not_supported": "導入には注意が必要です: ログの {analysed:,} 件のうち {fragile:.1%} が不安定で、まれとは"
                              "言えません。段階的な導入の前に対処してください。",
    "story.m3.not_measured": "段階的な導入と監視 — まだ測定していません: 本番ログをトリアージして、不安定な入力の数を"
                             "確かめてください。",
    "story.status.supported": "数値で裏付けあり",
    "story.status.not_supported": "ここでは裏付けなし",
    "story.status.not_measured": "未測定",
    # report export
    "report.title": "ExpertLens レポート",
    "report.about": "この分析について",
    "report.model": "モデル",
    "report.text": "テキスト",
    "report.settings": "設定",
    "report.seed": "シード",
    "report.versions": "バージョン",
    "report.created": "作成日時",
    "report.language": "言語",
    "report.footer": "ExpertLens で作成。すべての図は操作でき、オフラインでも表示されます（plotly.js はこのファイルに"
                     "含まれています）。",
    "report.empty": "このレポートにはセクションがありません。",
})

# --- the Triage page (pages/3_Triage.py) -------------------------------------------------------------- #
JA.update({
    "triage.title": "本番ログのトリアージ",
    "triage.intro": "実際の入力を記録したログを 1 行ずつ採点し（厳密計算での確信度、サンプリングと厳密計算の食い違い、"
                    "専門家への異常な集中、ログに記録された出力との一致）、まれにしか現れない不安定な入力を順位付けして、"
                    "どれでも探索画面で開けます。すべての行について、分析済み、スキップ（理由付き）、モデルが読み取れない、"
                    "失敗のいずれになったかを記録します。",
    "triage.step_log": "1 · ログ",
    "triage.source_path": "このマシン上のパス",
    "triage.sample": "サンプルのログで試す",
    "triage.sample_help": "組み込みのカスタマーサポートのログ（240 行: [MASK] を含む問い合わせ、重複、いくつかの長い"
                          "スレッド、英語以外の行や形式の崩れた行）。ファイルがなくてもすべての機能を試せます。",
    "triage.source": "読み込み元",
    "triage.source_upload": "ファイルをアップロード",
    "triage.upload": "ログファイル（JSONL、CSV/TSV、Parquet）",
    "triage.path": "ログファイルのパス",
    "triage.empty": "ログをアップロードするか、そのパスを指定して始めてください。サンプルのログでも試せます。"
                    "JSONL の 1 行、CSV の 1 行、Parquet の 1 レコードがそれぞれ 1 件の入力です。",
    "triage.file_facts": "{format} · {size:,} バイト · {columns} 列{rows} · 文字コード {encoding}",
    "triage.file_rows": " · {rows:,} 行",
    "triage.first_records": "先頭のレコード",
    "triage.step_columns": "2 · 列",
    "triage.text_col": "テキスト（必須）",
    "triage.text_col_help": "モデルへの入力文が入った列（予測させたい箇所は [MASK]）。",
    "triage.role_col": "{role}（任意）",
    "triage.role_id": "識別子",
    "triage.role_timestamp": "タイムスタンプ",
    "triage.role_prediction": "予測",
    "triage.role_label": "ラベル",
    "triage.slices": "スライスに使う項目（任意）",
    "triage.step_score": "3 · 採点",
    "triage.model": "モデル",
    "triage.model_folder": "モデルのフォルダ",
    "triage.policy": "出力を比較する位置",
    "triage.scheme": "方式",
    "triage.k_help": "サンプリング方式でクエリあたりに使うキーの数",
    "triage.seeds": "シード数 S",
    "triage.seed": "シード",
    "triage.seed_help": "各入力のシードは、このシードと入力内容のハッシュから導きます",
    "triage.limit": "行数（0 = すべて）",
    "triage.budget": "制限時間（秒、0 = なし）",
    "triage.batch": "バッチサイズ",
    "triage.cap": "入力あたりのマスク版の数（上限）",
    "triage.engine_box": "実行エンジン: このプロセス、または大規模なログやクラスタ向けの Ray",
    "triage.engine": "実行エンジン",
    "triage.engine_local": "ローカル（このプロセス）",
    "triage.engine_ray": "Ray（分散処理）",
    "triage.engine_help": "Ray はアクターのプールで採点します（このマシンのコア上、または指定したクラスタ上）。"
                          "結果はローカルエンジンと 1 行ずつ完全に一致します。",
    "triage.ray_missing": "Ray がインストールされていません。`make scale` または "
                          "`pip install -r requirements-scale.txt` で拡張機能を入れてから、もう一度 Ray を選んでください。",
    "triage.ray_address": "クラスタのアドレス（空欄: ローカルの Ray インスタンス）",
    "triage.ray_workers": "ワーカー数（アクター。GPU 1 基につき 1 つ）",
    "triage.ray_gpus": "ワーカーあたりの GPU 数",
    "triage.need_folder": "モデルのフォルダを指定してください。",
    "triage.restart": "最初からやり直す（まったく同じ条件での以前の結果を破棄します）",
    "triage.run": "トリアージを実行",
    "triage.folder": "結果フォルダ: `{folder}` — 中断された実行や上限で止まった実行は、もう一度実行すると"
                     "続きから再開します。",
    "triage.loading": "{model} を読み込んでいます…",
    "triage.starting": "開始しています…",
    "triage.done": "完了: {lines:,} 行を {seconds:.1f} 秒で処理しました（毎秒 {rate:.1f} 件）",
    "triage.press_run": "**トリアージを実行** を押すと、ログの採点を始めます。",
    "triage.step_results": "4 · 結果",
    "triage.m_lines": "読み込んだ行",
    "triage.m_analysed": "分析済み",
    "triage.m_skipped": "スキップ",
    "triage.m_failed": "失敗",
    "triage.m_rate": "処理速度（件/秒）",
    "triage.m_unreadable": "読み取り不能",
    "triage.m_unreadable_help": "このモデルでは読み取れない入力: 単語片の大半が語彙にない（[UNK]）ため、"
                                "順位付けの対象外です",
    "triage.stopped": "{lines:,} 行を処理したところで停止しました（{where}）。**トリアージを実行** をもう一度"
                      "押すと続きから再開します。",
    "triage.how": "疑わしさの計算方法",
    "triage.rank_by": "並べ替えの基準",
    "triage.rows": "表示する行数",
    "triage.open": "探索画面で開く",
    "triage.dl_ranked": "順位表（CSV）",
    "triage.dl_bad": "スキップ・失敗した行（CSV、{n:,} 行）",
    "triage.bad_box": "スキップ・失敗した行（{n:,} 行）",
    "triage.hist_alt": "このスライスの分析済み入力における、疑わしさスコアのヒストグラム",
    "triage.note_dup_ids": "{ids:,} 個の ID が複数回出現しています（{lines:,} 行。`first_line_of_id` を参照）",
    "triage.note_replaced": "{n:,} 行に不正なバイトがありました（U+FFFD に置き換えました）",
    "triage.note_nul": "{n:,} 行に NUL バイトがありました（削除しました）",
    "triage.note_truncated": "{n:,} 件のテキストがモデルの読める長さを超えていました（採点前に切り詰め、"
                             "先頭部分を分析しました）",
    "triage.term": "* **{expr}** — {meaning}（重み {weight:.2f}）",
    "triage.norm": "専門家の集中度の正規化基準: {norm}（{n:,} 件の入力の標本から算出）。出力を比較する位置: {policy}。",
    "triage.slice": "スライス: {field}",
    "triage.slice_empty": "（空）",
    "triage.time": "時刻（UTC）",
    "triage.n_sel": "このスライスの分析済み入力は {n:,} 件です。",
    "triage.compare": "スライスを比較する項目",
    "triage.top": "**疑わしい入力の上位** — 実行全体を「{order}」で順位付けしています。同一の入力は 1 行にまとめ、"
                  "件数と行番号を示します（copies、lines）。列見出しをクリックすると並べ替えられ、**開く** を押すと"
                  "同じモデルとサンプリング設定のまま探索画面でその入力を詳しく見られます。",
    "triage.inspect": "**1 件の入力を詳しく見る**",
    "triage.input": "入力",
    "triage.input_label": "{line} 行目 · 疑わしさ {suspicion:.3f} · {text}",
    "triage.open_cell": "開く ↗",
    "triage.rank_suspicion": "疑わしさ",
    "triage.rank_flip_rate": "答えが変わる割合",
    "triage.rank_kl": "KL ダイバージェンス",
    "triage.rank_drift": "文ベクトルのずれ（1 − コサイン類似度）",
    "triage.rank_confidence": "確信度の低さ",
    "triage.rank_margin": "マージンの小ささ",
    "triage.rank_concentration": "集中度 |z|（正負とも）",
    "triage.rank_line": "行番号",
})

# --- URL parameters, selection and progress (ui/state.py, pages/1_Explore.py, ui/engine.py) --------- #
JA.update({
    "error.param_clamped": "URL パラメータ {name}={value} は範囲 {range} の外にあります: {name}={shown} を表示しています。",
    "error.param_model": "URL パラメータ {name}={value} はこのモデルと入力の範囲（0–{hi}）の外にあります: "
                         "{name}={shown} を表示しています。",
    "error.reason_int": "整数ではありません（指定できる値: {range}）",
    "error.reason_empty": "空です",
    "error.reason_long": "{n} 文字あります。共有できる画面には最大 {max} 文字までです",
    "error.reason_scheme": "不明な方式です（{choices} のいずれかを選んでください）",
    "error.text_too_long": "テキストが {n:,} 文字あります。分析・共有できるのは最大 {max:,} 文字です（モデルはいずれにせよ"
                           "先頭のトークンしか読みません）。短くしてください",
    "error.unexpected": "「{page}」の表示中に問題が発生しました（{kind}）。アプリのほかの部分はそのまま使えます: 設定や"
                        "入力を変えてもう一度試すか、下のボタンで表示をリセットしてください。詳細はサーバーのログにあります。",
    "error.reset": "表示をリセット",
    "error.reset_help": "層、ヘッド、クエリ、サンプリングの設定を既定値に戻します（モデルはそのままです）。",
    "select.head_option": "第 {layer} 層 · ヘッド {head} — {role}",
    "lens.progress_start": "専門家ごとにネットワークを再計算しています（専門家 {n} 個）…",
    "lens.progress": "専門家ごとにネットワークを再計算しています: {n} 個中 {f:.0%}",
    "samp.where_mask": "位置 {pos} の [MASK] トークン|位置 {pos} の {n} 個の [MASK] トークン",
    "samp.where_nonspecial": "特殊トークン以外のすべてのトークン（テキストに [MASK] がありません）",
    # counts: "singular|plural" (interp.i18n.plural); Japanese has one form, written twice
    "count.layer": "{n} 層|{n} 層",
    "count.head": "{n} ヘッド|{n} ヘッド",
    "count.token": "{n} トークン|{n} トークン",
    "count.seed": "{n} 個のシード|{n} 個のシード",
})

# --- the Tables page (pages/6_Tables.py) ---------------------------------------------------------------- #
JA.update({
    "nav.tables": "表データ",
    "tab.header": "表データ: 列を位置ごとの専門家として見る",
    "tab.intro": "表の各行を 1 つの文として扱います: 列 j が位置 j、（区間に分けた）各値が 1 つの単語です。モデルは"
                 "マスクした列を予測し、そのゲートから、どの列の専門家に耳を傾けたかがわかります。分解はテキストの"
                 "場合とまったく同じく厳密です。",
    "tab.source": "データ",
    "tab.source_help": "論文の auto-mpg 実験（オフライン、同梱モデル）、またはお手持ちの CSV。",
    "tab.source.auto-mpg": "auto-mpg（同梱モデル）",
    "tab.source.upload": "CSV をアップロード",
    "tab.source.path": "このマシン上の CSV のパス",
    "tab.path": "CSV のパス",
    "tab.path_help": "アプリを実行しているマシン上の CSV ファイル。",
    "tab.upload": "CSV ファイル",
    "tab.upload_help": "区切りはカンマ、セミコロン、タブのいずれか。見出し行が必要で、最大 {mb} MB です。",
    "tab.upload_empty": "CSV をアップロードして始めてください: 見出し行があり、1 行が 1 レコードで、2 列以上のもの。",
    "tab.target": "予測する列",
    "tab.target_help": "モデルが予測する列です（マスクされ、ほかの列はすべて文脈になります）。",
    "tab.bins": "分位点による区間の数",
    "tab.bins_help": "数値の列をこの数の分位区間に分けます（3 = 三分位。論文と同じ）。",
    "tab.form": "モデルの形",
    "tab.form_help": "bert: 論文の大きさの標準的な BertForMaskedLM（1 ブロック、5 ヘッド、幅 20、FFN 5、LayerNorm あり）。"
                     "paper: FFN も LayerNorm もなく、ヘッドは 1 つ — 予測は各列の専門家の組み合わせそのものです。",
    "tab.form.bert": "BERT（論文の大きさ）",
    "tab.form.paper": "論文の形（厳密な専門家の組み合わせ）",
    "tab.epochs": "エポック数",
    "tab.epochs_help": "学習用の行を何周するか。各行はマスクする列ごとに 1 回ずつ使います（論文: 200）。",
    "tab.train": "学習する",
    "tab.train_help": "学習用の行で、マスクした列を予測するモデルを学習します（CPU で数秒から 1 分程度）。",
    "tab.training": "学習中: {message}",
    "tab.trained": "{rows} 行 × {cols} 列（マスクした例 {examples} 件）で {seconds:.1f} 秒かけて学習しました。"
                   "最終的な学習損失は {loss:.3f} です。",
    "tab.untrained": "予測する列と区間の数を選び、**学習する** を押してください。",
    "tab.shipped": "モデル `auto-mpg`（同梱。米国車で学習し、それ以外の生産地の車をテスト用の行としています）。",
    "tab.split": "学習用 {train} 行、テスト用 {test} 行 — {rule}。",
    "tab.test_metrics": "テスト用の {rows} 行での正解率 {acc:.1%}、区間の平均二乗誤差 {mse}。",
    "tab.encoding": "表の符号化の方法",
    "tab.notes": "この表について決めたこと",
    "tab.row": "行",
    "tab.row_help": "表の 1 行（テスト用の行が先）。予測する列をマスクして予測します。",
    "tab.row_label": "{split}用の {i} 行目",
    "tab.split.train": "学習",
    "tab.split.test": "テスト",
    "tab.prediction": "{target} の予測: **{pred}**（確率 {p:.1%}）。正解: **{truth}**。",
    "tab.prediction_unknown": "{target} の予測: **{pred}**（確率 {p:.1%}）。正解の値は欠けています。",
    "tab.listened": "どの列に耳を傾けたか",
    "tab.show": "表示内容",
    "tab.show.gate": "ゲート",
    "tab.show.firing": "発火強度",
    "tab.exact": "この行での厳密な分解: 恒等式 1 の最大相対誤差 {dense:.1e}、恒等式 2 {ln}。",
    "tab.exact_moe": "論文の形: logits = Σ_j a_ij z_j が相対誤差 {err:.1e} で成り立ちます。",
    "tab.experts": "各列の専門家（論文の形）",
    "tab.sampled": "この行でのサンプリングと厳密計算の比較",
    "tab.sampled_caption": "方式 {scheme}、k = {k}、シード {seeds} 個。マスクした列で第 1 候補が変わる割合は {flip:.0%} です。",
    "tab.open": "この行を開く画面",
    "tab.open_help": "この行の文を、このモデルのまま、マスクした列をクエリにしてその画面で開きます。",
    "tab.results": "論文の分布外汎化の実験",
    "tab.results_caption": "`python -m interp tabular --data auto-mpg --out DIR --seeds {seeds}` の結果"
                           "（models/auto-mpg/results.json）。",
    "tab.results_missing": "同梱モデルの隣に結果ファイルがありません。",
    "tab.tables": "表",
    "tab.error": "エラー: {message}",
    "tab.fig.columns": "列（専門家）",
    "tab.fig.heads": "層 · ヘッド",
    "tab.fig.gates_title": "マスクした列「{target}」でのゲート（ヘッドごと）",
    "tab.fig.firing_title": "マスクした列「{target}」での発火強度（ヘッドごと）",
    "tab.fig.gate": "ゲート",
    "tab.fig.firing": "発火強度",
    "tab.fig.sum_heads": "ヘッドの合計",
    "tab.fig.importance_title": "予測がどの列に耳を傾けたか（全ヘッド）",
    "tab.fig.probability": "確率",
    "tab.fig.prediction_title": "{target} の予測（正解を枠で囲んでいます）",
    "tab.fig.expert": "列の専門家 · そのゲート",
    "tab.fig.experts_title": "各列の専門家 z_j が予測する列の各値に与える値（ロジット）",
    "tab.fig.sampled_mean": "サンプリング（シード間の平均 ± 標準偏差）",
    "tab.fig.sampled_title": "マスクした列でのゲート: 厳密計算とサンプリング、{head}",
    "tab.fig.ours": "このプロジェクト（シード間の平均 ± 標準偏差）",
    "tab.fig.published": "論文の値（1 回の実行）",
    "tab.fig.test_acc": "テストでの正解率",
    "tab.fig.results_title": "auto-mpg: 米国車で学習し、それ以外でテスト（シード {seeds} 個）",
})
