"""Sampled attention versus dense attention: schemes (a registry), metrics, the effect on the model's output,
and the full per-head report. See SAMPLING.md in the design documents."""
from .downstream import DownstreamResult, downstream_effect  # noqa: F401
from .schemes import SCHEMES, estimate, scheme_flops  # noqa: F401
