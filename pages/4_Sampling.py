"""Sampled vs dense attention (placeholder until the sampling engine lands)."""
import streamlit as st

import app_support as ui

st.title(ui.tr("samp.header"))
