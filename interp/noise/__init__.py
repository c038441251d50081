"""Noise probes: is sampled attention robust to messy text? Seeded perturbations (``perturb``), the paired
clean-vs-noisy probe under dense and sampled attention (``probe``), its statistics (``stats``) and the corpus
sources (``corpus``). UI-free."""
from .perturb import PERTURBATIONS, Alignment, Noisy, perturb, protected_tokens

__all__ = ["PERTURBATIONS", "Alignment", "Noisy", "perturb", "protected_tokens"]
