"""ExpertLens library: bidirectional attention as a mixture of positional experts, and sampled attention.

UI-free: nothing here imports Streamlit. The app, the command line and scripts all call the same functions.
"""
__version__ = "0.1.0"
