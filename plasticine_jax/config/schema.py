"""Typed experiment configuration.

Every field is *static* (decides a shape or a program: env id, widths, methods present,
chunk length) unless it lives in a ``*Hyperparams`` dataclass or a method's ``hp`` mapping,
which are *traced*: stacked into pytrees, vmapped, and swept without recompiling.

Field metadata: ``range=(lo, hi)`` (inclusive, ``None`` = unbounded), ``choices=(...)``,
``items={...}`` (the same, for each item of a list field), ``help="..."``. The loader checks
them and names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


def _f(default: Any = dataclasses.MISSING, *, factory: Any = None, **meta: Any) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class NormalizeConfig:
    """Observation and reward normalisation by running statistics (``envs.normalize``, gym's
    ``NormalizeObservation`` / ``NormalizeReward`` with CleanRL's clipping); static."""

    obs: bool = _f(False, help="normalise observations: clip((obs - mean) / sqrt(var + 1e-8))")
    reward: bool = _f(False, help="normalise rewards: clip(r / sqrt(var(G) + 1e-8))")
    clip_obs: float = _f(10.0, range=(0.0, None), help="bound of normalised observations")
    clip_reward: float = _f(10.0, range=(0.0, None), help="bound of normalised rewards")
    gamma: float = _f(
        0.99, range=(0.0, 1.0), help="discount of the return G (set it to agent.hp.gamma)"
    )
    returns: str = _f(
        "gymnasium",
        choices=("gymnasium", "gym"),
        help="gymnasium: G = G * gamma * (1 - terminated) + r; gym (<= 0.26): G restarts "
        "after any episode end",
    )
    reset_on_task_switch: bool = _f(
        False, help="restart the statistics at each task switch (Plasticine's fresh wrappers)"
    )


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Which environment, how many copies per seed, and its continual scenario (static)."""

    backend: str = _f("gymnax", help="gymnax | brax | envpool | craftax")
    id: str = _f("CartPole-v1", help="the backend's environment id")
    num_envs: int = _f(4, range=(1, None), help="parallel environments per seed")
    options: dict = _f(factory=dict, help="backend keyword arguments")
    scenario: str = _f("none", help="continual scenario wrapper, or none")
    scenario_options: dict = _f(factory=dict, help="scenario settings (task length, ...)")
    normalize: NormalizeConfig = _f(factory=NormalizeConfig)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The actor-critic's architecture (static); methods may edit it further."""

    torso: str = _f("mlp", choices=("mlp", "minatar_cnn", "atari_cnn", "impala_cnn"))
    hidden_sizes: tuple[int, ...] = _f(
        (64, 64), items={"range": (1, None)}, help="dense widths after any convolutions"
    )
    activation: str = _f("tanh", help="a name from plasticine_jax.networks.ACTIVATIONS")
    norm: str = _f("none", choices=("none", "layernorm"))
    shared_torso: bool = _f(False, help="one torso for actor and critic (CleanRL Atari)")


@dataclasses.dataclass(frozen=True)
class PPOHyperparams:
    """PPO's traced hyperparameters (CleanRL defaults). Sweepable in one program."""

    lr: float = _f(2.5e-4, range=(0.0, 1.0), help="Adam learning rate")
    gamma: float = _f(0.99, range=(0.0, 1.0))
    gae_lambda: float = _f(0.95, range=(0.0, 1.0))
    clip_eps: float = _f(0.2, range=(0.0, None), help="surrogate (and value) clip range")
    vf_coef: float = _f(0.5, range=(0.0, None))
    ent_coef: float = _f(0.01, range=(0.0, None))
    max_grad_norm: float = _f(0.5, range=(0.0, None), help="global gradient-norm clip")
    adam_eps: float = _f(1e-5, range=(0.0, None))


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """PPO's static settings, network and traced hyperparameters."""

    name: str = _f("ppo", choices=("ppo",))
    num_steps: int = _f(128, range=(1, None), help="rollout length per env per update")
    num_minibatches: int = _f(4, range=(1, None))
    update_epochs: int = _f(4, range=(1, None))
    anneal_lr: bool = _f(True, help="linear learning-rate decay to 0 over the run")
    clip_vloss: bool = _f(True, help="clip the value loss as CleanRL does")
    norm_adv: bool = _f(True, help="normalise advantages per minibatch")
    network: NetworkConfig = _f(factory=NetworkConfig)
    hp: PPOHyperparams = _f(factory=PPOHyperparams)


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """One mitigation method: registry name, static options, traced hyperparameters."""

    name: str = _f(help="registry name (plasticine-jax list) or 'module:factory'")
    hp: dict = _f(factory=dict, help="traced hyperparameters overriding the defaults")
    options: dict = _f(factory=dict, help="static settings (layers, variants)")


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """Plasticity metrics computed inside the compiled update."""

    every: int = _f(10, range=(0, None), help="compute every N updates; 0 turns them off")
    probe_size: int = _f(256, range=(1, None), help="probe batch (observations) per member")
    dormant_tau: float = _f(0.025, range=(0.0, None), help="ReDo/Plasticine dormancy threshold")
    rank_threshold: float = _f(0.99, range=(0.0, 1.0), help="stable-rank mass threshold")
    squared_rank: bool = _f(False, help="stable rank on squared singular values")
    feature_variance_over: str = _f(
        "features",
        choices=("features", "batch"),
        help="feature variance over each sample's features, ddof 1 (Plasticine), or over "
        "the batch per feature dim, ddof 0",
    )


@dataclasses.dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases sink; off unless ``mode`` is online or offline."""

    mode: str = _f("disabled", choices=("disabled", "online", "offline"))
    project: str = _f("plasticine-jax")
    entity: str | None = _f(None)
    group: str | None = _f(None)
    tags: tuple[str, ...] = _f(())


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long, how many seeds, where results go."""

    total_timesteps: int = _f(100_000, range=(1, None), help="env steps per member")
    num_seeds: int = _f(
        1, range=(1, 100_000), help="seeds per hyperparameter setting (members of one program)"
    )
    seed: int = _f(0, range=(0, None), help="seed s of a member uses PRNGKey(seed + s)")
    chunk_updates: int = _f(0, range=(0, None), help="updates per compiled chunk; 0 = auto")
    out_dir: str = _f("runs", help="parent folder of run directories")
    name: str | None = _f(None, help="run directory name; default <config name>-<time>")
    progress: bool = _f(True, help="show a progress bar")
    checkpoint: bool = _f(True, help="write a resumable checkpoint after every chunk")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: env × agent × methods, swept over ``sweep`` and seeds."""

    name: str = _f("experiment")
    env: EnvConfig = _f(factory=EnvConfig)
    agent: AgentConfig = _f(factory=AgentConfig)
    methods: tuple[MethodConfig, ...] = _f(())
    metrics: MetricsConfig = _f(factory=MetricsConfig)
    run: RunConfig = _f(factory=RunConfig)
    wandb: WandbConfig = _f(factory=WandbConfig)
    sweep: dict = _f(
        factory=dict,
        help="dotted key -> list of values; the grid's cartesian product (× seeds)",
    )
