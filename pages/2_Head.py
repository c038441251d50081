"""One head as a mixture of experts: gates and firing, top experts, messages, lenses, layer-0 splits."""
import functools

import streamlit as st

import ui
from interp.figures import head as fh
from interp.report import head_report

tr = ui.tr
v = ui.start_page()
result = ui.analysed()
if result is None:
    st.title(tr("nav.head"))
    ui.empty_state("head.empty")
    st.stop()
lm, trace = result


@st.fragment
def head_view() -> None:
    """Everything that depends on the chosen layer, head and query. Changing one of them reruns only this
    fragment (not the navigation, the sidebar or the analysis of the input); the pickers' callbacks write the
    typed view back to the URL, so a deep link opens the same view."""
    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        layer = ui.layer_picker(trace, "hd_layer")
    with c2:
        head = ui.head_picker(trace, "hd_head")
    with c3:
        query = ui.query_picker(trace, "hd_query")
    v = ui.view()
    st.title(tr("head.header", layer=layer, head=head))
    ui.show_notes(trace)
    hv = ui.head(v.model, v.text, layer, head)
    st.markdown(fh.caption(hv, query, ui.lang()))

    # --- gates and firing: one chart (heatmap over the query's row); top experts; report -------------------------
    left, right = st.columns([3, 2])
    with left:
        show = st.radio(tr("head.show"), options=["gate", "firing"], horizontal=True, key="hd_show",
                        format_func=lambda s: tr(f"head.show_{s}"))
        # drawn in place on a head switch (one chart kept mounted under this key), not mounted anew
        ui.show_live_figure(fh.head_figure(hv, query, show, ui.lang()), f"{show}-L{layer}H{head}q{query}-{lm.name}",
                            key="hd_heatmap", alt=tr("head.figure_alt"),
                            summary=fh.head_figure_summary(hv, query, show, ui.lang()))
    with right:
        ui.show_markdown_table(fh.top_experts_table(hv, query, 8, ui.lang()), f"top-experts-L{layer}H{head}q{query}",
                               key="hd_top", title=tr("head.top"))
        ui.report_buttons(functools.partial(head_report, hv, query, v.model, v.text, trace.special.tolist(), ui.lang()),
                          f"report-head-L{layer}H{head}q{query}-{lm.name}", "hd", (v.model, v.text, layer, head, query))

    # --- one more view at a time: messages, lens, layer-0 splits -------------------------------------------------
    section = st.radio(tr("head.more"), options=["messages", "lens", "layer0"], horizontal=True, key="hd_section",
                       index=None, format_func=lambda s: tr(f"head.section.{s}"), help=tr("head.more_help"))
    if section is None:
        st.caption(tr("head.more_empty"))
    elif section == "messages":
        m1, m2 = st.columns(2)
        with m1:
            ui.show_figure(fh.message_norms_figure(hv, trace.special.tolist(), ui.lang()),
                           f"message-norms-L{layer}H{head}", key="hd_norms")
        with m2:
            ui.show_figure(fh.profile_figure(hv, ui.lang()), f"profile-L{layer}H{head}", key="hd_profile")

    elif section == "lens":
        lens_name = st.radio(tr("lens.choose"), options=["vocabulary", "anchored", "counterfactual"], horizontal=True,
                             key="hd_lens", format_func=lambda s: tr(f"lens.{s}"), help=tr("lens.choose_help"))
        partial_slot = st.empty()     # a progressive lens shows its top-gate experts here while the rest run

        def show_partial(part, done: int, total: int) -> None:
            with partial_slot.container():
                st.progress(done / total, text=tr("lens.partial", done=done, n=total))
                st.plotly_chart(fh.lens_experts_figure(part, lang=ui.lang()), width="stretch", theme=None,
                                config={"displaylogo": False})

        try:
            with st.spinner(tr(f"lens.{lens_name}") + "…"):
                summary = ui.lens(v.model, v.text, layer, head, query, lens_name, on_partial=show_partial)
        except (ImportError, ValueError) as err:
            st.warning(tr("lens.unavailable", message=str(err)))
            summary = None
        partial_slot.empty()
        if summary is not None:
            what = f"{summary.exactness}; max |Σ_j a_ij z_j − y_i| = {summary.mixture_max_abs_err:.2e}"
            if summary.pool_kl is not None:
                what += f"; KL(model ‖ pool) = {summary.pool_kl:.3g} nats"
            st.caption(tr("lens.error", err=summary.mixture_max_rel_err, what=what))
            for note in summary.notes:
                st.caption(note)
            l1, l2 = st.columns(2)
            with l1:
                ui.show_figure(fh.lens_experts_figure(summary, lang=ui.lang()),
                               f"lens-{lens_name}-L{layer}H{head}q{query}", key="hd_lens_fig")
            with l2:
                pool = fh.pool_figure(summary, ui.lang())
                if pool is not None:
                    ui.show_figure(pool, f"pool-{lens_name}-L{layer}H{head}q{query}", key="hd_pool")
                    if summary.arithmetic_kl is not None:
                        st.caption(f"KL(model ‖ arithmetic mixture) = {summary.arithmetic_kl:.3g} nats")
                else:
                    st.caption(tr("pred.no_head", name=lm.name))
            with st.expander(tr("lens.experts_title")):
                ui.show_table(summary.experts, f"lens-{lens_name}-L{layer}H{head}q{query}", key="hd_lens_table")

    else:
        if layer != 0:
            st.caption(tr("l0.only"))
        else:
            split = ui.layer0(v.model, v.text, head)
            a, b = st.columns(2)
            with a:
                ui.show_figure(fh.cbow_split_figure(split["norms"], trace.tokens, ui.lang()), f"cbow-split-H{head}",
                               key="hd_cbow")
                st.caption(tr("l0.cbow_err", err=split["cbow_err"]))
            with b:
                if "refused" in split:
                    st.info(tr("l0.score_refused", reason=split["refused"]))
                else:
                    ui.show_figure(fh.gate_score_split_figure(split["parts"], split["total"], query, trace.tokens,
                                                              ui.lang()), f"gate-score-split-H{head}q{query}",
                                   key="hd_score")
                    st.caption(tr("l0.score_err", err=split["score_err"]))
            if "refused" not in split:
                with st.expander(tr("l0.score_title")):
                    ui.show_table(fh.score_split_table(split["parts"], split["total"], query, trace.tokens, ui.lang()),
                                  f"gate-score-split-H{head}q{query}", key="hd_score_table")


head_view()
