"""Sampled attention versus dense attention: schemes (a registry), metrics, the effect on the model's output,
and the full per-head report, configured by one ``SamplingSettings`` value. See docs/SAMPLING.md."""
from .downstream import DownstreamResult, downstream_effect  # noqa: F401
from .schemes import SCHEMES, estimate, scheme_flops  # noqa: F401
from .settings import SamplingSettings  # noqa: F401
