"""Optional triage score: **noise sensitivity** — how often the model's dense prediction flips when the input
gets a little noise (typos, dropped words, casing …).

Per analysed input, :func:`interp.noise.probe.noise_sensitivity` on the cleaned text the model reads (the same
text the other scores see): ``noise_seeds`` noisy versions at one perturbation and rate; the dense top-1 at the
[MASK] positions (without [MASK], up to 2 words masked in turn) compared clean vs noisy:

* ``noise_flip_rate``: share of (position, noise seed) units whose top-1 changes (MLM head);
* ``noise_kl``: mean KL(clean ‖ noisy) over those units, in nats (MLM head);
* ``noise_cosine``: mean cosine of pooled embeddings clean vs noisy (models without an MLM head);
* ``noise_changed_share``: share of the noisy versions whose text differs from the clean one (a text with
  nothing to perturb scores as stable: read this column before trusting a 0).

Seeds: the perturbation of noise replicate ν is seeded by (the run's seed, ν, perturbation, rate, the text
itself), so the score depends only on the input's content, never on its batch or position: the local engine,
worker processes and Ray give the same numbers. Off by default; cost: at most V·(1 + noise_seeds) extra dense
forward-pass rows per input (V ≤ 2 compared variants; 8 with the defaults, 4 when the text has a [MASK]), i.e.
about 1.8× the time of the default scores (1 dense + S = 4 sampled passes = 5), up to 2.6×.
Ranked by ``noise``: flip rate, most sensitive first (1 − cosine for models without an MLM head).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import TriageScore, register


@dataclass(frozen=True)
class NoiseOptions:
    perturbation: str = "typo"
    rate: float = 0.1
    noise_seeds: int = 3

    def check(self, lm=None) -> None:
        from ...noise.perturb import PERTURBATIONS
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {self.perturbation!r}: choose one of {', '.join(PERTURBATIONS)}")
        try:
            rate = float(self.rate)
        except (TypeError, ValueError):
            raise ValueError(f"noise rate must be a number between 0 and 1, not {self.rate!r}") from None
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"noise rate must be above 0 and at most 1, not {self.rate!r}")
        if isinstance(self.noise_seeds, bool) or not isinstance(self.noise_seeds, int) or self.noise_seeds < 1:
            raise ValueError(f"noise seeds must be a positive integer, not {self.noise_seeds!r}")


COLUMNS = (("noise_flip_rate", "float"), ("noise_kl", "float"), ("noise_cosine", "float"),
           ("noise_changed_share", "float"))


def compute(lm, texts: list[str], settings, options: NoiseOptions) -> list[dict]:
    """One dict of the noise columns per text (each text probed on its own: batch-independent)."""
    from ...noise.probe import noise_sensitivity
    nan = float("nan")
    out = []
    for text in texts:
        r = noise_sensitivity(lm, text, options.perturbation, float(options.rate), int(options.noise_seeds),
                              seed=int(settings.seed))
        out.append({"noise_flip_rate": r.get("noise_flip_rate", nan), "noise_kl": r.get("noise_kl", nan),
                    "noise_cosine": r.get("noise_cosine", nan),
                    "noise_changed_share": r.get("changed_text_share", nan)})
    return out


def cost_factor(options: NoiseOptions) -> float:
    """Extra dense forward-pass rows per input, at most: 2 variants × (clean + each noisy version)."""
    return 2.0 * (1 + int(options.noise_seeds))


SCORE = register(TriageScore(
    name="noise", columns=COLUMNS,
    rankings=(("noise", "coalesce(noise_flip_rate, 1 - noise_cosine)", "DESC"),),
    compute=compute, options=NoiseOptions, cost_factor=cost_factor, label_key="triage.rank_noise",
    cost="at most 2·(1 + noise seeds) extra dense forward-pass rows per input (8 with 3 noise seeds; 4 when the "
         "text has a [MASK]): about 1.8–2.6× the time of the default scores (1 + S = 5 passes)"))
