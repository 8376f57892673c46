"""The Craftax / Crafter score: a geometric mean of per-achievement success rates.

Defined in Hafner (2021, "Benchmarking the Spectrum of Agent Capabilities", Crafter, eq. 1)
and reported for Craftax by Matthews et al. (2024, "Craftax: A Lightning-Fast Benchmark for
Open-Ended Reinforcement Learning"):

    S = exp( (1/N) * sum_i ln(1 + s_i) ) - 1,    s_i in [0, 100] (percent),

where ``s_i`` is the percentage of finished episodes in which achievement ``i`` was unlocked
at least once, over all ``N`` achievements. The ``+1`` offset keeps never-seen achievements
from sending the score to zero. Matches ``compute_scores`` in Crafter's ``analysis/common.py``.

Note: Craftax's own ``info["score"]`` applies the same formula to *one* episode's 0/100
achievement vector at each step; the score here is over success *rates*, as the papers
report it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def achievement_success_rates(achievements: Array, episode_done: Array) -> Array:
    """Per-achievement success rates in percent over the episodes that ended.

    Args:
      achievements: ``[..., A]`` bool/0-1, what each finished episode unlocked (as in the
        Craftax adapter's ``info.extras["achievements"]``; zero where no episode ended).
      episode_done: ``[...]`` bool, where an episode ended (``terminated | truncated``).

    Returns:
      ``[A]`` float32 percentages; NaN where no episode ended at all.
    """
    done = episode_done.astype(jnp.float32).reshape(-1)
    unlocked = achievements.astype(jnp.float32).reshape(done.shape[0], -1)
    count = jnp.sum(done)
    rates = 100.0 * jnp.sum(unlocked * done[:, None], axis=0) / count
    return jnp.where(count > 0, rates, jnp.nan)


def craftax_score(success_rates_percent: Array) -> Array:
    """Craftax score ``exp(mean_i ln(1 + s_i)) - 1`` of ``[..., A]`` rates in percent.

    NaN rates (no episodes) are ignored in the mean, as Crafter's ``nanmean`` does.
    """
    s = jnp.asarray(success_rates_percent, jnp.float32)
    return jnp.exp(jnp.nanmean(jnp.log1p(s), axis=-1)) - 1.0


ACHIEVEMENT_PREFIX = "achievement/"
SCORE_NAME = "craftax_score"


def achievement_metrics(names: tuple[str, ...], achievements: Array) -> dict[str, Array]:
    """One episode metric per achievement: ``{"achievement/<name>": [...] float32}``.

    Args:
      names: achievement names (lower case), in the order of the last axis.
      achievements: ``[..., A]`` what the episode that ended at each step unlocked, zero
        where no episode ended (the Craftax adapter's ``info.extras["achievements"]``).

    The agent's per-episode mean of each entry is that achievement's success *rate* in
    ``[0, 1]``; ``score_from_means`` turns the rates into the Craftax score.
    """
    if achievements.shape[-1] != len(names):
        raise ValueError(
            f"achievements have {achievements.shape[-1]} entries but {len(names)} names"
        )
    a = jnp.asarray(achievements, jnp.float32)
    return {f"{ACHIEVEMENT_PREFIX}{n}": a[..., i] for i, n in enumerate(names)}


def score_from_means(names: tuple[str, ...], means: dict[str, Array]) -> dict[str, Array]:
    """``{"craftax_score": S}`` from the per-episode means of ``achievement_metrics``.

    The means are success rates in ``[0, 1]``; the score takes them in percent (x100). NaN
    means (no episode ended) give a NaN score.
    """
    keys = [f"{ACHIEVEMENT_PREFIX}{n}" for n in names]
    missing = [k for k in keys if k not in means]
    if missing:
        raise KeyError(f"the Craftax score needs every achievement's rate; missing {missing}")
    rates = 100.0 * jnp.stack([jnp.asarray(means[k], jnp.float32) for k in keys], axis=-1)
    return {SCORE_NAME: craftax_score(rates)}
