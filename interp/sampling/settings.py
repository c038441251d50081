"""The settings of one sampled-versus-dense comparison, as one value (docs/SAMPLING.md).

``SamplingSettings(scheme, k, seeds, seed, h, m)``: the scheme id (a key of ``schemes.SCHEMES``), the budget k
(keys drawn per query for A, B, E's tail; keys kept for C; default random features for D), the number of
independent replicates S, the user-visible seed every draw derives from, and the scheme's own parameters
(h: keys kept exactly by E, default k; m: random features of D, default k).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class SamplingSettings:
    scheme: str
    k: int
    seeds: int = 8
    seed: int = 0
    h: int | None = None
    m: int | None = None

    def checked(self) -> "SamplingSettings":
        """These settings validated, with the scheme's defaults filled in (h, m); ValueError with one line."""
        from .schemes import check_params
        h, m = check_params(self.scheme, self.k, self.h, self.m)
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds <= 0:
            raise ValueError(f"seeds must be a positive integer, not {self.seeds!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, not {self.seed!r}")
        return replace(self, k=int(self.k), h=h, m=m)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        """Inverse of :meth:`to_dict` (unknown keys are an error, so a typo is not silently ignored)."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sampling setting(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def as_settings(scheme, k=None, seeds=None, seed=0, h=None, m=None) -> SamplingSettings:
    """Old loose arguments or a ``SamplingSettings`` → a checked ``SamplingSettings``."""
    if isinstance(scheme, SamplingSettings):
        return scheme.checked()
    return SamplingSettings(scheme, k, seeds, seed, h, m).checked()
