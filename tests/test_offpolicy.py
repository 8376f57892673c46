"""SAC and TD3 against independent references: the temperature loss and the tanh-Gaussian
log-probability by hand, the clipped target smoothing noise, the delayed actor's step count,
the update-to-data ratio's gradient-step count, the critic ensemble against two separate
critics, and the contract: a vmapped member equals the same member alone."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.agents import make_agent
from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner.plan import plan, traced_hp
from plasticine_jax.runner.program import Program
from tests.test_value_agents import assert_second_member_equals_alone


def ac_cfg(agent: str, *extra: str, env_id: str = "Pendulum-v1"):
    base = [f"agent.name={agent}", f"env.id={env_id}", "env.num_envs=2",
            "agent.batch_size=8", "agent.buffer_size=200", "agent.learning_starts=20",
            "agent.network.hidden_sizes=[16]", "metrics.every=2", "metrics.probe_size=8",
            "run.total_timesteps=60", "run.progress=false"]  # fmt: skip
    return load_config(None, [*base, *extra])


def build(cfg):
    e = cfg.env
    env = make_env(e.backend, e.id, e.num_envs, e.options, e.scenario, e.scenario_options,
                   e.normalize)
    return make_agent(cfg, env, plan(cfg)[0].methods)


def adam_counts(opt_state) -> list[int]:
    """Every Adam step count in an optimizer state (one per ensemble member)."""
    found = [s for s in jax.tree.leaves(
        opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(s, optax.ScaleByAdamState)]  # fmt: skip
    assert len(found) == 1
    return np.atleast_1d(np.asarray(found[0].count)).tolist()


# ------------------------------------------------------------------ SAC by hand


def test_temperature_loss_against_a_hand_value():
    agent = build(ac_cfg("sac"))
    hp = traced_hp(agent.cfg, [])
    # Pendulum: one action dimension, target entropy -1. alpha = 0.5, log pi = (-0.2, 0.4):
    # mean(-0.5 * (log pi - 1)) = mean(0.6, 0.3) = 0.45; d/d log_alpha is the same (the
    # loss is linear in exp(log_alpha)).
    log_alpha = jnp.log(0.5)
    logp = jnp.array([-0.2, 0.4])
    assert float(agent.target_entropy(hp)) == -1.0
    assert float(agent.alpha_loss(log_alpha, logp, hp)) == pytest.approx(0.45, rel=1e-6)
    grad = jax.grad(agent.alpha_loss)(log_alpha, logp, hp)
    assert float(grad) == pytest.approx(0.45, rel=1e-6)
    # Discrete (CartPole, 2 actions): target entropy 0.89 log 2.
    discrete = build(ac_cfg("sac", env_id="CartPole-v1"))
    want = 0.89 * math.log(2)
    assert float(discrete.target_entropy(traced_hp(discrete.cfg, []))) == pytest.approx(want)


def test_tanh_gaussian_log_prob_matches_the_change_of_variables():
    agent = build(ac_cfg("sac"))
    params = agent.init_params(jax.random.PRNGKey(0))["actor"]
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    key = jax.random.PRNGKey(2)
    action, logp = agent.policy_sample(params, obs, key)
    out = agent.actor_net.apply(params, obs)
    mean, log_std = np.asarray(out.policy, np.float64), np.asarray(out.log_std, np.float64)
    assert (log_std >= -5).all() and (log_std <= 2).all()
    x = mean + np.exp(log_std) * np.asarray(jax.random.normal(key, mean.shape), np.float64)
    # log N(x; mean, std) - log |d a / d x|, a = 2 tanh(x): CleanRL's 1e-6 inside the log.
    normal = -0.5 * ((x - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    want = (normal - np.log(2.0 * (1 - np.tanh(x) ** 2) + 1e-6)).sum(-1)
    np.testing.assert_allclose(np.asarray(action), 2.0 * np.tanh(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logp), want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ TD3 by hand


def test_target_smoothing_noise_is_clipped():
    agent = build(ac_cfg("td3"))
    hp = traced_hp(agent.cfg, [])
    hp["agent"]["policy_noise"] = 10.0  # almost every draw is beyond the clip
    params = agent.init_params(jax.random.PRNGKey(0))["actor"]
    obs = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (4096, 3))
    mu = np.asarray(agent.act_greedy(params, obs, hp))
    got = np.asarray(agent.smoothed_target_action(params, obs, hp, jax.random.PRNGKey(3)))
    noise = got - mu
    # noise_clip 0.5 in units of the action scale (2 on Pendulum): |noise| <= 1, reached.
    assert np.abs(mu).max() < 0.5  # the fresh actor stays well inside the box
    assert np.abs(noise).max() <= 1.0 + 1e-6
    assert np.isclose(np.abs(noise), 1.0, atol=1e-6).mean() > 0.9
    # and the smoothed action stays in the box
    hp["agent"]["noise_clip"] = 100.0
    wide = np.asarray(agent.smoothed_target_action(params, obs, hp, jax.random.PRNGKey(3)))
    assert wide.min() >= -2.0 and wide.max() <= 2.0 and np.isclose(np.abs(wide), 2.0).any()


# ------------------------------------------------------------------ step counts


@pytest.mark.parametrize(
    ("agent", "pf", "utd"),
    [("td3", 2, 0.5), ("td3", 3, 2.0), ("sac", 2, 0.5), ("sac", 3, 4.0), ("td3", 2, 16.0)],
)
def test_actor_steps_every_policy_frequency_and_utd_counts_critic_steps(agent, pf, utd):
    # 2 envs x 1 step an update; replay_ratio 0.5 = 1 critic step an update, 2.0 = 4, 4.0 = 8,
    # 16.0 = 32 (UTD 16, inside the scan).
    cfg = ac_cfg(agent, f"agent.policy_frequency={pf}", f"agent.replay_ratio={utd}",
                 "metrics.every=0")
    prog = Program(plan(cfg)[0])
    state = prog.init()
    updates = 7
    env_steps = updates * 2
    s1, out = prog.run_chunk(state, 0, 1)
    g = round(utd * 2)  # critic steps an update
    state = s1
    for u in range(1, updates):
        before = jax.tree.map(np.asarray, state.members.actor.params)
        state, out = prog.run_chunk(state, u, 1)
        # an update whose critic steps u*g .. u*g+g-1 hold no multiple of pf leaves the
        # actor as it was, and logs no actor loss
        due = any(c % pf == 0 for c in range(u * g, (u + 1) * g))
        same = all(np.array_equal(a, np.asarray(b)) for a, b in zip(
            jax.tree.leaves(before), jax.tree.leaves(state.members.actor.params), strict=True))
        assert same != due, u
        assert np.isnan(out["actor_loss"]).all() != due, u
    critic_steps = updates * g
    assert critic_steps == round(utd * env_steps)  # UTD k: k critic steps an env step
    assert adam_counts(state.members.critic.opt_state) == [[critic_steps, critic_steps]]
    actor_phases = len([c for c in range(critic_steps) if c % pf == 0])
    # TD3: one actor step a phase; SAC: policy_frequency of them (CleanRL's compensation)
    per_phase = pf if agent == "sac" else 1
    assert adam_counts(state.members.actor.opt_state) == [actor_phases * per_phase]


def test_critic_ensemble_step_equals_two_separate_critics():
    # One vmapped step of the twin critics against each critic stepped alone with its own
    # Adam on its own loss (CleanRL's single Adam over qf1 + qf2 is the same, elementwise).
    agent = build(ac_cfg("td3", "agent.num_critics=2"))
    hp = traced_hp(agent.cfg, [])
    state = agent.init(jax.random.PRNGKey(0), hp)
    from plasticine_jax.agents import replay as rb

    batch = rb.sample(state.buffer, jax.random.PRNGKey(1), 8, 1, 0.99)
    y = jnp.linspace(-1.0, 1.0, 8)
    critic, _ = agent._critic_step(state.critic, batch, y, hp, jax.random.PRNGKey(2))
    x = jnp.concatenate([batch.obs, batch.action], -1)
    for i in range(2):
        p = jax.tree.map(lambda a, i=i: a[i], state.critic.params)

        def loss(p):
            q = agent.critic_net.apply(p, x).q
            return jnp.sum(batch.weight * (q - y) ** 2) / jnp.sum(batch.weight)

        tx = optax.adam(3e-4, eps=1e-8)
        upd, _ = tx.update(jax.grad(loss)(p), tx.init(p), p)
        want = optax.apply_updates(p, upd)
        got = jax.tree.map(lambda a, i=i: a[i], critic.params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_vmapped_member_equals_member_alone(agent):
    _, out1 = assert_second_member_equals_alone(lambda *x: ac_cfg(agent, *x), 4)
    for net in ("actor", "critic"):  # per-network metrics with the network's name
        for k in ("dormant_ratio", "fau", "weight_magnitude"):
            assert f"{net}/{k}" in out1, k


def test_discrete_sac_trains_on_cartpole_actions():
    prog = Program(plan(ac_cfg("sac", env_id="CartPole-v1"))[0])
    state, out = prog.run_chunk(prog.init(), 0, 4)
    assert np.isfinite(out["critic_loss"]).all()
    assert np.asarray(state.members.buffer.action).dtype == np.int32
    alpha = out["alpha"][np.isfinite(out["alpha"])]
    assert alpha.size and (alpha > 0).all()


def test_offpolicy_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="whole number >= 1"):
        ac_cfg("td3", "agent.replay_ratio=0.1")
    with pytest.raises(ConfigError, match="unknown key 'agent.eps_end'"):
        ac_cfg("sac", "agent.eps_end=0.1")
    with pytest.raises(ConfigError, match="does not apply to agent.name='td3'"):
        ac_cfg("td3", "methods=[{name: hl_gauss, hp: {v_min: 0, v_max: 100}}]")
    with pytest.raises(ValueError, match="needs continuous actions"):
        build(ac_cfg("td3", env_id="CartPole-v1"))


@pytest.mark.parametrize("agent", ["td3", "sac"])
def test_per_joint_action_bounds_reach_the_actor_and_the_clips(agent):
    # DMC's quadruped bounds its actuators differently ([-1, 1], [-1, 1.1], [-0.8, 0.8]):
    # one box for all of them let a random or saturated action pass the ankles' 0.8.
    envpool = pytest.importorskip("envpool")
    from pathlib import Path

    box = envpool.make_spec("QuadrupedWalk-v1").action_space
    low, high = box.low.astype(np.float32), box.high.astype(np.float32)
    assert len(set(low)) > 1 and len(set(high)) > 1  # the case under test
    path = Path(__file__).resolve().parents[1] / "configs" / "envs" / "dmc_quadruped_walk.yaml"
    cfg = load_config(path, [f"agent.name={agent}", "env.num_envs=2", "agent.batch_size=8",
                             "agent.buffer_size=200", "agent.learning_starts=20",
                             "agent.network.hidden_sizes=[16]", "metrics.probe_size=8",
                             "run.total_timesteps=60", "run.progress=false"])  # fmt: skip
    agent = build(cfg)
    a = np.asarray(jax.vmap(agent.random_action)(jax.random.split(jax.random.PRNGKey(0), 500)))
    a = a.reshape(-1, low.size)
    assert (a >= low).all() and (a <= high).all()
    np.testing.assert_allclose(a.min(0), low, atol=0.02)
    np.testing.assert_allclose(a.max(0), high, atol=0.02)
    np.testing.assert_allclose(agent.env_action(jnp.full((2, low.size), 9.0)), [high] * 2)
    np.testing.assert_allclose(agent.env_action(jnp.full((2, low.size), -9.0)), [low] * 2)
    # tanh's ends map onto every joint's own bounds: a saturated head gives them exactly.
    actor = agent.init_params(jax.random.PRNGKey(1))["actor"]
    obs = jnp.zeros((2, *agent.env.spec.obs_shape))
    hp = traced_hp(agent.cfg, [])
    for sign, bound in ((1.0, high), (-1.0, low)):

        def saturate(path, x, s=sign):
            name = jax.tree_util.keystr(path)
            return jnp.full_like(x, 50 * s) if "actor_head" in name and "bias" in name else x

        saturated = jax.tree_util.tree_map_with_path(saturate, actor)
        np.testing.assert_allclose(agent.act_greedy(saturated, obs, hp), [bound] * 2, atol=1e-6)


def test_sac_runs_on_dmc_through_envpool_within_each_joints_bounds():
    # TD3 on this env runs end to end in tests/test_experiments.py (td3_dmc_quadruped); SAC
    # here: the envpool callback under vmap, float64 actions, per-joint bounds in the buffer.
    envpool = pytest.importorskip("envpool")
    from pathlib import Path

    box = envpool.make_spec("QuadrupedWalk-v1").action_space
    path = Path(__file__).resolve().parents[1] / "configs" / "envs" / "dmc_quadruped_walk.yaml"
    cfg = load_config(path, ["agent.name=sac", "env.num_envs=2", "agent.batch_size=8",
                             "agent.buffer_size=64", "agent.learning_starts=16",
                             "agent.network.hidden_sizes=[16]", "metrics.every=1",
                             "metrics.probe_size=8", "run.num_seeds=2",
                             "run.total_timesteps=24", "run.progress=false"])  # fmt: skip
    prog = Program(plan(cfg)[0])
    state, out = prog.run_chunk(prog.init(), 0, 4)
    assert np.isfinite(out["critic_loss"]).all() and np.isfinite(out["q_mean"]).all()
    actions = np.asarray(state.members.buffer.action).reshape(-1, box.shape[0])
    assert (actions >= box.low - 1e-6).all() and (actions <= box.high + 1e-6).all()
    obs = np.asarray(state.members.buffer.obs)
    assert obs.shape[-1] == 113 and np.abs(obs).sum() > 0
    # each seed's envs are seeded from its own key: the two members saw different episodes
    assert not np.allclose(obs[0], obs[1])


CONTINUOUS_ENVS = [
    ("gymnax", "mountaincar_continuous", None),
    ("brax", "brax_halfcheetah_mass_shift", "brax"),
    ("envpool", "dmc_walker_sequence", "envpool"),
]
# Both agents on gymnax and DMC; Brax (the slowest to trace) with SAC here, TD3 on Brax
# hopper running end to end and resuming in tests/test_experiments.py (ne_td3_hopper).
CASES = [(a, *e) for a in ("sac", "td3") for e in CONTINUOUS_ENVS
         if not (a == "td3" and e[0] == "brax")]


@pytest.mark.slow
@pytest.mark.parametrize(("agent", "backend", "env_file", "extra"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_every_continuous_env_traces_with_the_agent(agent, backend, env_file, extra):
    # CI installs every extra (the README's test command); elsewhere these are optional.
    if extra:
        pytest.importorskip(extra)
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "envs" / f"{env_file}.yaml"
    cfg = load_config(path, [
        f"agent.name={agent}", "env.num_envs=2", "agent.batch_size=8",
        "agent.buffer_size=200", "agent.learning_starts=20", "agent.network.hidden_sizes=[16]",
        "metrics.every=1", "metrics.probe_size=8", "run.total_timesteps=60",
        "run.progress=false",
        *(["env.scenario_options.steps_per_task=20"] if "sequence" in env_file
          or "shift" in env_file else []),
    ])  # fmt: skip
    prog = Program(plan(cfg)[0])
    states = prog.init_shapes()
    new, out = jax.eval_shape(lambda s: prog._chunk(s, jnp.int32(0), 2), states)
    assert jax.tree.structure(new) == jax.tree.structure(states)
    assert out["critic_loss"].shape == (prog.chunk, 1)  # the [chunk, M] buffer
    buf = states.members.buffer
    assert buf.obs.dtype == jnp.float32 and buf.action.dtype == jnp.float32
    assert "stable_rank/actor" in out and "stable_rank/critic" in out


@pytest.mark.parametrize("on", [None, ["critic"]])
def test_neuroplastic_expansion_sparsifies_the_networks_it_is_given(on):
    # The reference's settings: both networks sparse (its defaults), or the critic alone
    # (--actor_sparsity 0: a dense actor). Each critic of the ensemble has masks of its own.
    ne = {"name": "neuroplastic_expansion", "options": {"rule": "reference"},
          "hp": {"initial_stl_sparsity": 0.8, "delta": 1e9}}
    if on:
        ne["networks"] = on
    cfg = ac_cfg("td3", "agent.network.hidden_sizes=[32, 32]", "metrics.every=0",
                 "agent.policy_frequency=1", f"methods=[{ne}]")
    prog = Program(plan(cfg)[0])
    state, _ = prog.run_chunk(prog.init(), 0, 2)

    def zero_fraction(params):
        kernels = [np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params)
                   if "kernel" in jax.tree_util.keystr(p)]
        return sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)

    critic = state.members.critic.params
    for i in range(2):  # each ensemble member is ~80% sparse, with its own masks
        one = jax.tree.map(lambda x, i=i: x[0, i], critic)
        assert 0.7 < zero_fraction(one) < 0.85
    k0 = np.asarray(critic["params"]["critic"]["layer_0"]["kernel"])[0]
    assert not np.array_equal(k0[0] == 0, k0[1] == 0)
    actor_zeros = zero_fraction(jax.tree.map(lambda x: x[0], state.members.actor.params))
    if on:
        assert actor_zeros == 0.0
    else:
        assert 0.7 < actor_zeros < 0.85


def test_a_last_layer_reset_with_its_adam_state_is_mirrored_in_the_targets():
    # Nikishin et al. 2022: the last layers of actor and critics, with their optimizer
    # statistics; tau = 0 so that only the reset moves the targets.
    reset = ("methods=[{name: layer_reset, options: {layers: [heads], schedule: every_update, "
             "reset_opt_state: true}}]")
    prog = Program(plan(ac_cfg("td3", "agent.hp.tau=0", "metrics.every=0", reset))[0])
    s0 = prog.init()
    t0 = jax.tree.map(np.asarray, s0.members.critic_target)
    s1, _ = prog.run_chunk(s0, 0, 1)
    m = s1.members
    for online, target in ((m.actor.params, m.actor_target), (m.critic.params, m.critic_target)):
        head = "actor_head" if "actor_head" in online["params"] else "critic_head"
        np.testing.assert_array_equal(target["params"][head]["kernel"],
                                      online["params"][head]["kernel"])
    # the critics' torsos trained online only; the twin heads are different fresh draws
    ct, cp = m.critic_target["params"], m.critic.params["params"]
    np.testing.assert_array_equal(ct["critic"]["layer_0"]["kernel"],
                                  t0["params"]["critic"]["layer_0"]["kernel"])
    assert not np.allclose(cp["critic"]["layer_0"]["kernel"], ct["critic"]["layer_0"]["kernel"])
    heads = np.asarray(cp["critic_head"]["kernel"])[0]
    assert not np.allclose(heads[0], heads[1])
    assert not np.allclose(heads[0], t0["params"]["critic_head"]["kernel"][0, 0])
    # the reset head's Adam moments are zero, the torso's are not
    adam = [s for s in jax.tree.leaves(m.critic.opt_state,
                                       is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]
    assert not np.asarray(adam.mu["params"]["critic_head"]["kernel"]).any()
    assert np.asarray(adam.mu["params"]["critic"]["layer_0"]["kernel"]).any()
