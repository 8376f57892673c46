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

# The agents' gradient clips (``agents.common.gradient_clip``).
GRAD_CLIPS = ("global_norm", "elementwise")


def _f(default: Any = dataclasses.MISSING, *, factory: Any = None, **meta: Any) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _grad_clip() -> Any:
    """``agent.grad_clip`` (PPO, PQN, DQN/C51): which clip ``max_grad_norm`` sets."""
    return _f(
        "global_norm", choices=GRAD_CLIPS,
        help="global_norm: scale the whole gradient to norm <= max_grad_norm (PureJaxRL, "
        "purejaxql, CleanRL, Plasticine); elementwise: clip each entry to +-max_grad_norm "
        "(optax.clip, as rejax does)",
    )


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
class PPOConfig:
    """PPO's static settings, network and traced hyperparameters (``agent.name: ppo``)."""

    name: str = _f("ppo", choices=("ppo",))
    num_steps: int = _f(128, range=(1, None), help="rollout length per env per update")
    num_minibatches: int = _f(4, range=(1, None))
    update_epochs: int = _f(4, range=(1, None))
    anneal_lr: bool = _f(True, help="linear learning-rate decay to 0 over the run")
    clip_vloss: bool = _f(True, help="clip the value loss as CleanRL does")
    norm_adv: bool = _f(True, help="normalise advantages per minibatch")
    grad_clip: str = _grad_clip()
    network: NetworkConfig = _f(factory=NetworkConfig)
    hp: PPOHyperparams = _f(factory=PPOHyperparams)


AgentConfig = PPOConfig  # the default agent; kept under its old name


def _q_network() -> NetworkConfig:
    return NetworkConfig(hidden_sizes=(120, 84), activation="relu")


@dataclasses.dataclass(frozen=True)
class DQNHyperparams:
    """DQN's traced hyperparameters: CleanRL ``dqn.py`` defaults (classic control)."""

    lr: float = _f(2.5e-4, range=(0.0, 1.0), help="Adam learning rate")
    gamma: float = _f(0.99, range=(0.0, 1.0))
    tau: float = _f(1.0, range=(0.0, 1.0), help="target update rate; 1 = hard copy")
    target_every: float = _f(
        500.0, range=(1.0, None), help="env steps per member between target updates"
    )
    eps_start: float = _f(1.0, range=(0.0, 1.0), help="epsilon-greedy: first epsilon")
    eps_end: float = _f(0.05, range=(0.0, 1.0), help="epsilon-greedy: final epsilon")
    exploration_fraction: float = _f(
        0.5, range=(0.0, 1.0), help="fraction of run.total_timesteps over which eps decays"
    )
    max_grad_norm: float = _f(10.0, range=(0.0, None), help="used when clip_grad_norm")
    adam_eps: float = _f(1e-8, range=(0.0, None), help="torch's default, as CleanRL")
    huber_delta: float = _f(1.0, range=(0.0, None), help="Huber loss threshold")


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """DQN (Mnih et al. 2015) with double-Q, dueling heads and n-step returns as options
    (``agent.name: dqn``). Defaults: CleanRL ``dqn.py``; its Atari settings are in
    ``configs/agents/dqn_atari.yaml``. One update collects ``num_steps`` steps of every env,
    stores them, then takes ``replay_ratio * num_steps * num_envs`` gradient steps."""

    name: str = _f("dqn", choices=("dqn",))
    num_steps: int = _f(10, range=(1, None), help="env steps per env per update (train freq)")
    replay_ratio: float = _f(
        0.1, range=(0.0, None), help="gradient steps per env step (static: one per program)"
    )
    batch_size: int = _f(128, range=(1, None), help="transitions per gradient step")
    buffer_size: int = _f(10_000, range=(1, None), help="replay capacity, transitions/member")
    learning_starts: int = _f(
        10_000, range=(0, None), help="random-action env steps per member before learning"
    )
    n_step: int = _f(1, range=(1, 100), help="n-step returns")
    double: bool = _f(False, help="double DQN: online argmax, target value")
    dueling: bool = _f(False, help="dueling value and advantage heads")
    loss: str = _f("mse", choices=("mse", "huber"), help="CleanRL: mse; Dopamine: huber")
    clip_grad_norm: bool = _f(False, help="clip the gradient to max_grad_norm (grad_clip)")
    grad_clip: str = _grad_clip()
    network: NetworkConfig = _f(factory=_q_network)
    hp: DQNHyperparams = _f(factory=DQNHyperparams)


@dataclasses.dataclass(frozen=True)
class C51Hyperparams(DQNHyperparams):
    """C51's traced hyperparameters: CleanRL ``c51.py`` defaults (classic control)."""

    v_min: float = _f(-100.0, help="lowest atom of the return distribution")
    v_max: float = _f(100.0, help="highest atom")
    adam_eps: float = _f(0.01 / 128, range=(0.0, None), help="CleanRL: 0.01 / batch_size")


@dataclasses.dataclass(frozen=True)
class C51Config(DQNConfig):
    """C51 (Bellemare et al. 2017), distributional DQN with the categorical projection
    (``agent.name: c51``). Defaults: CleanRL ``c51.py``; Atari (CleanRL ``c51_atari.py``,
    Plasticine ``c51_atari_plasticine.py``) in ``configs/agents/c51_atari.yaml``. With the
    ``hl_gauss`` method the loss is HL-Gauss cross-entropy to the scalar target instead."""

    name: str = _f("c51", choices=("c51",))
    num_atoms: int = _f(101, range=(2, 10_000), help="atoms of the return distribution")
    hp: C51Hyperparams = _f(factory=C51Hyperparams)


def _pqn_network() -> NetworkConfig:
    return NetworkConfig(hidden_sizes=(256, 256), activation="relu", norm="layernorm")


@dataclasses.dataclass(frozen=True)
class PQNHyperparams:
    """PQN's traced hyperparameters: purejaxql ``pqn_cartpole.yaml``."""

    lr: float = _f(1e-4, range=(0.0, 1.0), help="RAdam learning rate")
    gamma: float = _f(0.99, range=(0.0, 1.0))
    q_lambda: float = _f(0.95, range=(0.0, 1.0), help="Q(lambda)'s lambda")
    eps_start: float = _f(1.0, range=(0.0, 1.0))
    eps_end: float = _f(0.2, range=(0.0, 1.0))
    exploration_fraction: float = _f(
        0.2, range=(0.0, 1.0), help="fraction of the run's updates over which eps decays"
    )
    max_grad_norm: float = _f(10.0, range=(0.0, None))
    adam_eps: float = _f(1e-8, range=(0.0, None))
    reward_scale: float = _f(0.1, range=(0.0, None), help="rewards are multiplied by it")


@dataclasses.dataclass(frozen=True)
class PQNConfig:
    """PQN (Gallici et al. 2024): no buffer, no target network, LayerNorm, Q(lambda) over a
    rollout of many envs (``agent.name: pqn``). Defaults: purejaxql ``pqn_cartpole.yaml``;
    MinAtar and Craftax presets in ``configs/agents/pqn_*.yaml``."""

    name: str = _f("pqn", choices=("pqn",))
    num_steps: int = _f(64, range=(1, None), help="rollout length per env per update")
    num_minibatches: int = _f(16, range=(1, None))
    update_epochs: int = _f(4, range=(1, None))
    anneal_lr: bool = _f(True, help="linear learning-rate decay to 0 over the run")
    optimizer: str = _f("radam", choices=("radam", "adam"), help="purejaxql: radam")
    grad_clip: str = _grad_clip()
    network: NetworkConfig = _f(factory=_pqn_network)
    hp: PQNHyperparams = _f(factory=PQNHyperparams)


def _ac_network() -> NetworkConfig:
    return NetworkConfig(hidden_sizes=(256, 256), activation="relu")


@dataclasses.dataclass(frozen=True)
class TD3Hyperparams:
    """TD3's traced hyperparameters: CleanRL ``td3_continuous_action.py`` defaults (and the
    neuroplastic-expansion seed's TD3: discount 0.99, tau 0.005, policy noise 0.2, noise
    clip 0.5)."""

    policy_lr: float = _f(3e-4, range=(0.0, 1.0), help="actor's Adam learning rate")
    q_lr: float = _f(3e-4, range=(0.0, 1.0), help="critics' Adam learning rate")
    gamma: float = _f(0.99, range=(0.0, 1.0))
    tau: float = _f(0.005, range=(0.0, 1.0), help="Polyak rate of the target networks")
    policy_noise: float = _f(
        0.2, range=(0.0, None), help="target smoothing noise std, in action-scale units"
    )
    noise_clip: float = _f(
        0.5, range=(0.0, None), help="target smoothing noise clip, in action-scale units"
    )
    exploration_noise: float = _f(
        0.1, range=(0.0, None), help="Gaussian exploration noise std, in action-scale units"
    )
    adam_eps: float = _f(1e-8, range=(0.0, None), help="torch's default, as CleanRL")


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """TD3 (Fujimoto et al. 2018): twin critics (one vmapped ensemble), target policy
    smoothing with a noise clip, an actor and targets updated every ``policy_frequency``
    critic steps (``agent.name: td3``). Defaults: CleanRL ``td3_continuous_action.py``.
    One update collects ``num_steps`` steps of every env, then takes ``replay_ratio *
    num_steps * num_envs`` critic steps (the update-to-data ratio). SAC's config extends
    it."""

    name: str = _f("td3", choices=("td3",))
    num_steps: int = _f(1, range=(1, None), help="env steps per env per update")
    replay_ratio: float = _f(
        1.0, range=(0.0, None), help="critic gradient steps per env step (UTD; static)"
    )
    batch_size: int = _f(256, range=(1, None), help="transitions per gradient step")
    buffer_size: int = _f(1_000_000, range=(1, None), help="replay capacity, transitions/member")
    learning_starts: int = _f(
        25_000, range=(0, None), help="random-action env steps per member before learning"
    )
    n_step: int = _f(1, range=(1, 100), help="n-step returns")
    num_critics: int = _f(2, range=(1, 100), help="critic ensemble size (min over them)")
    policy_frequency: int = _f(
        2, range=(1, None), help="critic steps per actor step and target update (delay)"
    )
    network: NetworkConfig = _f(factory=_ac_network)
    hp: TD3Hyperparams = _f(factory=TD3Hyperparams)


@dataclasses.dataclass(frozen=True)
class SACHyperparams:
    """SAC's traced hyperparameters: CleanRL ``sac_continuous_action.py`` defaults."""

    policy_lr: float = _f(3e-4, range=(0.0, 1.0), help="actor's Adam learning rate")
    q_lr: float = _f(1e-3, range=(0.0, 1.0), help="critics' (and temperature's) Adam rate")
    gamma: float = _f(0.99, range=(0.0, 1.0))
    tau: float = _f(0.005, range=(0.0, 1.0), help="Polyak rate of the target critics")
    alpha: float = _f(
        0.2, range=(0.0, None),
        help="entropy temperature without autotune (with it: learned from 1, as CleanRL)",
    )  # fmt: skip
    target_entropy_scale: float = _f(
        0.89, range=(0.0, None),
        help="discrete actions: target entropy = scale * log(num_actions) (CleanRL Atari)",
    )  # fmt: skip
    adam_eps: float = _f(1e-8, range=(0.0, None), help="torch's default, as CleanRL")


@dataclasses.dataclass(frozen=True)
class SACConfig(TD3Config):
    """SAC (Haarnoja et al. 2018): twin critics (one vmapped ensemble), a tanh-squashed
    Gaussian actor, automatic entropy temperature; discrete actions (Christodoulou 2019,
    CleanRL ``sac_atari.py``) when the env's are (``agent.name: sac``). Defaults: CleanRL
    ``sac_continuous_action.py``; the replay settings are TD3's."""

    name: str = _f("sac", choices=("sac",))
    learning_starts: int = _f(
        5_000, range=(0, None), help="random-action env steps per member before learning"
    )
    policy_frequency: int = _f(
        2, range=(1, None),
        help="every k-th critic step takes k actor (and temperature) steps (CleanRL)",
    )  # fmt: skip
    target_network_frequency: int = _f(
        1, range=(1, None), help="critic steps between Polyak updates of the target critics"
    )
    autotune: bool = _f(True, help="learn the temperature towards the target entropy")
    hp: SACHyperparams = _f(factory=SACHyperparams)


AGENT_CONFIGS = {
    "ppo": PPOConfig, "dqn": DQNConfig, "c51": C51Config, "pqn": PQNConfig,
    "sac": SACConfig, "td3": TD3Config,
}  # fmt: skip
AnyAgentConfig = PPOConfig | DQNConfig | C51Config | PQNConfig | SACConfig | TD3Config


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Greedy evaluation episodes on a separate copy of the env (every agent)."""

    every: int = _f(0, range=(0, None), help="evaluate every N updates; 0 turns it off")
    num_envs: int = _f(8, range=(1, None), help="evaluation envs (one episode each)")
    epsilon: float = _f(0.0, range=(0.0, 1.0), help="random-action probability")
    max_steps: int = _f(
        1000, range=(1, None), help="steps per evaluation; unfinished episodes do not count"
    )


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """One mitigation method: registry name, static options, traced hyperparameters."""

    name: str = _f(help="registry name (plasticine-jax list) or 'module:factory'")
    hp: dict = _f(factory=dict, help="traced hyperparameters overriding the defaults")
    options: dict = _f(factory=dict, help="static settings (layers, variants)")
    networks: tuple[str, ...] = _f(
        (), help="the agent's networks it applies to (e.g. [critic]); default every one"
    )


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
    chunk_updates: int = _f(
        0, range=(0, None),
        help="updates per chunk (the host writes rows and checkpoints between chunks); "
        "0 = sized by time, see chunk_seconds",
    )
    chunk_seconds: float = _f(
        2.0, range=(0.01, None),
        help="with chunk_updates 0: the wall seconds a chunk aims at, measured on the "
        "chunks before it (the first has 1 update, the second 2)",
    )
    out_dir: str = _f("runs", help="parent folder of run directories")
    name: str | None = _f(None, help="run directory name; default <config name>-<time>")
    progress: bool = _f(True, help="show a progress bar")
    checkpoint: bool = _f(True, help="write resumable checkpoints (see checkpoint_every)")
    checkpoint_every: float = _f(
        60.0, range=(0, None),
        help="seconds between checkpoints: one is written after the first chunk that ends "
        "this long after the last; 0 = after every chunk. The chunk a run stops after (Ctrl-C, "
        "end) is always checkpointed; a killed run resumes from the last one written",
    )
    report: bool = _f(
        True, help="write <run>/report (html, md, json) when the run finishes"
    )


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: env × agent × methods, swept over ``sweep`` and seeds."""

    name: str = _f("experiment")
    env: EnvConfig = _f(factory=EnvConfig)
    agent: AnyAgentConfig = _f(
        factory=PPOConfig,
        help="ppo | dqn | c51 | pqn | sac | td3, chosen by agent.name (default ppo)",
    )
    methods: tuple[MethodConfig, ...] = _f(())
    metrics: MetricsConfig = _f(factory=MetricsConfig)
    eval: EvalConfig = _f(factory=EvalConfig)
    run: RunConfig = _f(factory=RunConfig)
    wandb: WandbConfig = _f(factory=WandbConfig)
    sweep: dict = _f(
        factory=dict,
        help="dotted key -> list of values; the grid's cartesian product (× seeds)",
    )
