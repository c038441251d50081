"""Noise robustness: perturb the analysed text, see the clean and noisy texts side by side with the changes
marked, the predictions, the flip rates of dense and sampled attention with intervals and the floor, and the
heads whose gates moved. All computation is in ``interp.noise``; this page only lays it out."""
import streamlit as st

import app_support as ui
from interp.figures import noise as fn
from interp.i18n import error_line, perturbation_text
from interp.noise.perturb import PERTURBATIONS
from interp.noise.probe import NoiseSettings, probe

tr = ui.tr
v = ui.start_page()
st.title(tr("noise.header"))
st.caption(tr("noise.caption"))
result = ui.analysed()
if result is None:
    ui.empty_state("noise.empty")
    st.stop()
lm, trace = result
model, text = v.model, v.text


@st.cache_data(show_spinner=False, max_entries=32)
def run_probe(model: str, text: str, perturbation: str, rate: float, schemes: tuple, k: int, noise_seeds: int,
              seeds: int, seed: int):
    """The probe at rates 0 and ``rate`` (rate 0 gives the floor side by side), its result rows and heads."""
    settings = NoiseSettings(perturbations=(perturbation,), rates=tuple(dict.fromkeys((0.0, float(rate)))),
                             schemes=schemes, ks=(k,), noise_seeds=noise_seeds, seeds=seeds, seed=seed, n_boot=1000)
    ip, summary = probe(ui.get_model(model), text, settings)
    return ip, summary.results(), summary.heads(perturbation, rate)


# --- settings ---------------------------------------------------------------------------------------------
names = list(PERTURBATIONS)
lang_now = ui.lang()       # bound: a picker's labels are also formatted outside the run
c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
with c1:
    perturbation = st.selectbox(tr("noise.perturbation"), options=names, index=names.index("typo"), key="nz_pert",
                                format_func=lambda n: f"{n} — {perturbation_text(n, PERTURBATIONS[n].description, lang_now)}",
                                help=tr("noise.perturbation_help"))
with c2:
    rate = st.slider(tr("noise.rate"), min_value=0.0, max_value=0.5, value=0.1, step=0.05, key="nz_rate",
                     help=tr("noise.rate_help"))
with c3:
    schemes = st.multiselect(tr("noise.schemes"), options=ui.schemes(), default=["A", "C"], key="nz_schemes",
                             help=tr("noise.schemes_help"))
with c4:
    ui.bind("nz_k", ui.current("k"))
    k = int(st.number_input(tr("noise.k"), min_value=1, max_value=4096, step=1, key="nz_k", help=tr("noise.k_help"),
                            on_change=ui.from_widget("nz_k", "k")))
c5, c6 = st.columns(2)
with c5:
    noise_seeds = int(st.number_input(tr("noise.noise_seeds"), min_value=1, max_value=32, value=4, step=1,
                                      key="nz_noise_seeds", help=tr("noise.noise_seeds_help")))
with c6:
    seeds = int(st.number_input(tr("noise.seeds"), min_value=1, max_value=32, value=4, step=1, key="nz_seeds",
                                help=tr("noise.seeds_help")))
if not schemes:
    st.info(tr("noise.schemes_empty"), icon=":material/info:")
    st.stop()
seed = int(ui.current("seed"))
ui.show_notes(trace)

with st.spinner(tr("noise.running", n=noise_seeds, configs=len(schemes))):
    try:
        ip, rows, heads = run_probe(model, text, perturbation, float(rate), tuple(schemes), k, noise_seeds, seeds,
                                    seed)
    except ValueError as err:        # includes InputError: one clear line
        st.error(error_line(err, ui.lang()), icon=":material/error:")
        st.stop()

# --- clean and noisy side by side -------------------------------------------------------------------------
if ip.variants[0].kind == "mask-each":
    st.info(tr("noise.no_mask", cap=4, words=", ".join(f"“{x.masked_word}”" for x in ip.variants)),
            icon=":material/info:")
variant = 0
if len(ip.variants) > 1:
    variant = st.selectbox(tr("noise.variant"), options=list(range(len(ip.variants))), key="nz_variant",
                           format_func=lambda i: f"{i}: [MASK] = “{ip.variants[i].masked_word}”")
shown = 0
if noise_seeds > 1:
    shown = st.slider(tr("noise.show_seed"), min_value=0, max_value=noise_seeds - 1, value=0, key="nz_show",
                      help=tr("noise.show_seed_help"))
nz = ip.noisy[(perturbation, float(rate))][shown][variant]
a, b = st.columns(2)
with a:
    st.markdown("**" + tr("noise.clean") + "**")
    st.markdown(fn.marked_html(nz.clean, nz.alignment.clean_marks), unsafe_allow_html=True)
with b:
    st.markdown("**" + tr("noise.noisy", seed=shown) + "**")
    st.markdown(fn.marked_html(nz.text, nz.alignment.noisy_marks), unsafe_allow_html=True)
if not nz.changed:
    st.caption(tr("noise.nothing"))
with st.expander(tr("noise.texts")):
    ui.show_table(fn.texts_table(ip, perturbation, rate), f"noise-texts-{perturbation}-{rate:g}", key="nz_texts")

# --- predictions and flip rates ---------------------------------------------------------------------------
if ip.has_mlm_head:
    st.subheader(tr("noise.predictions"))
    ui.show_table(fn.predictions_table(ip, perturbation, rate), f"noise-predictions-{perturbation}-{rate:g}",
                  key="nz_pred")
st.subheader(tr("noise.rates"))
at_rate = [r for r in rows if r["rate"] == float(rate)]
for r in at_rate:
    if ip.has_mlm_head:
        lo, hi = r["difference_ci"]
        st.markdown(tr("noise.summary", perturbation=perturbation, rate=rate, dense=r["dense_flip_rate"],
                       scheme=r["scheme"], k=r["k"], sampled=r["sampled_flip_rate"], floor=r["floor_flip_rate"],
                       diff=r["difference"], lo=lo, hi=hi, p=r["mcnemar_p"]))
    else:
        st.markdown(tr("noise.cosine", dense=r["dense_cosine"], sampled=r["sampled_cosine"], scheme=r["scheme"],
                       k=r["k"]))
if ip.has_mlm_head:
    ui.show_figure(fn.flip_figure(rows, perturbation, ui.lang()), f"noise-flips-{perturbation}-k{k}", key="nz_fig")
ui.show_table(fn.results_table(rows), f"noise-results-{perturbation}-{rate:g}-k{k}", key="nz_results")

# --- heads that moved -------------------------------------------------------------------------------------
st.subheader(tr("noise.heads"))
st.caption(tr("noise.heads_caption"))
ui.show_table(fn.heads_table(heads), f"noise-heads-{perturbation}-{rate:g}", key="nz_heads")
