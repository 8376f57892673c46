"""The Craftax / Crafter score: a geometric mean of per-achievement success rates.

Defined in Hafner (2021, "Benchmarking the Spectrum of Agent Capabilities", Crafter, eq. 1)
and reported for Craftax by Matthews et al. (2024, "Craftax: A Lightning-Fast Benchmark for
Open-Ended Reinforcement Learning"):

    S = exp( (1/N) * sum_i ln(1 + s_i) ) - 1,    s_i in [0, 100] (percent),

where ``s_i`` is the percentage of finished episodes in which achievement ``i`` was unlocked
at least once, over all ``N`` achievements. The ``+1`` offset keeps never-seen achievements
from sending the score to zero. Matches ``compute_scores`` in Crafter's ``analysis/common.py``.
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
