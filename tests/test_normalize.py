"""Observation / reward normalisation: our wrappers against a numpy transcription of gym's
``RunningMeanStd``, ``NormalizeObservation`` and ``NormalizeReward`` (both lines of gym) on a
scripted sequence of batched steps; statistics per member, in the checkpoint, raw returns."""

from __future__ import annotations

import csv
import math
from typing import NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.config import load_config
from plasticine_jax.config.schema import NormalizeConfig
from plasticine_jax.envs.core import DiscreteActions, Environment, EnvSpec, EpisodeStats, StepInfo
from plasticine_jax.envs.normalize import NormalizeObservation, NormalizeReward, normalize_env
from plasticine_jax.envs.registry import make_env
from plasticine_jax.envs.testing import jit_fast, rollout
from plasticine_jax.runner.loop import run
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program
from tests.conftest import tiny

T, N, D = 10, 3, 2
GAMMA, CLIP = 0.9, 2.0
RNG = np.random.default_rng(0)
OBS = RNG.normal(3.0, 2.0, (T + 1, N, D)).astype(np.float32)  # obs[0] from reset
FINAL = RNG.normal(3.0, 2.0, (T, N, D)).astype(np.float32)
REWARD = (RNG.normal(0.0, 1.0, (T, N)) * np.array([1.0, 10.0, 0.1])).astype(np.float32)
TERM = np.zeros((T, N), bool)
TRUNC = np.zeros((T, N), bool)
TERM[[2, 5, 6], [0, 1, 0]] = True
TRUNC[[3, 7], [2, 0]] = True


# ---------------------------------------------------------------- gym, in numpy (float64)


class GymRunningMeanStd:
    """gym / gymnasium ``RunningMeanStd`` (``wrappers/utils.py``), transcribed."""

    def __init__(self, shape=(), epsilon=1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x):
        batch_mean, batch_var, batch_count = np.mean(x, axis=0), np.var(x, axis=0), x.shape[0]
        delta = batch_mean - self.mean
        tot_count = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot_count
        m_a = self.var * self.count
        m_b = batch_var * batch_count
        m2 = m_a + m_b + np.square(delta) * self.count * batch_count / tot_count
        self.mean, self.var, self.count = new_mean, m2 / tot_count, tot_count


def gym_reference(returns: str, task_end: int | None = None):
    """What gym's vector wrappers (NormalizeObservation, then NormalizeReward, each followed by
    CleanRL's clip) return over the script. ``task_end``: the step whose returned observation
    starts a new task, where fresh wrappers take over (Plasticine's rebuilt envs)."""
    obs_rms, ret_rms, g = GymRunningMeanStd((D,)), GymRunningMeanStd(), np.zeros(N)

    def norm_obs(rms, o):
        return np.clip((o - rms.mean) / np.sqrt(rms.var + 1e-8), -CLIP, CLIP)

    obs_rms.update(OBS[0].astype(np.float64))
    out = {"obs": [norm_obs(obs_rms, OBS[0])], "final": [], "reward": []}
    for t in range(T):
        old = (obs_rms.mean.copy(), obs_rms.var.copy(), obs_rms.count)
        obs_rms.update(OBS[t + 1].astype(np.float64))
        final_rms = obs_rms
        if t == task_end:
            final_rms = GymRunningMeanStd((D,))
            final_rms.mean, final_rms.var, final_rms.count = old
            obs_rms = GymRunningMeanStd((D,))
            obs_rms.update(OBS[t + 1].astype(np.float64))
        out["obs"].append(norm_obs(obs_rms, OBS[t + 1]))
        out["final"].append(norm_obs(final_rms, FINAL[t]))
        r = REWARD[t].astype(np.float64)
        if returns == "gymnasium":  # gymnasium >= 0.27
            g = g * GAMMA * (1 - TERM[t]) + r
            ret_rms.update(g)
            out["reward"].append(np.clip(r / np.sqrt(ret_rms.var + 1e-8), -CLIP, CLIP))
        else:  # gym 0.23.1 - 0.26
            g = g * GAMMA + r
            ret_rms.update(g)
            out["reward"].append(np.clip(r / np.sqrt(ret_rms.var + 1e-8), -CLIP, CLIP))
            g[TERM[t] | TRUNC[t]] = 0.0
        if t == task_end:
            ret_rms, g = GymRunningMeanStd(), np.zeros(N)
    return {k: np.stack(v) for k, v in out.items()}, obs_rms, ret_rms


# ---------------------------------------------------------------- a scripted environment


class ScriptState(NamedTuple):
    t: jax.Array
    stats: EpisodeStats


class Scripted(Environment):
    """Replays the script: ``reset`` returns ``OBS[0]``, step ``t`` returns ``OBS[t + 1]``,
    ``REWARD[t]``, ``TERM[t]``, ``TRUNC[t]`` and ``FINAL[t]``."""

    def __init__(self, num_tasks: int = 1, steps_per_task: int = 0):
        self.spec = EnvSpec("scripted", N, (D,), DiscreteActions(2), num_tasks, steps_per_task)

    def reset(self, key):
        del key
        return jnp.asarray(OBS[0]), ScriptState(jnp.int32(0), EpisodeStats.zeros(N))

    def step(self, key, state, action):
        del key, action
        t = state.t
        reward, term, trunc = (jnp.asarray(a)[t] for a in (REWARD, TERM, TRUNC))
        stats, ep_ret, ep_len = state.stats.update(reward, term | trunc)
        info = StepInfo(
            jnp.asarray(FINAL)[t], jnp.zeros(N, jnp.int32), jnp.zeros(N, bool), ep_ret, ep_len, {}
        )
        obs = jnp.asarray(OBS)[t + 1]
        return obs, ScriptState(t + 1, stats), reward, term, trunc, info


def run_script(env: Environment):
    obs0, state = env.reset(jax.random.PRNGKey(0))

    def body(state, _):
        obs, state, reward, term, trunc, info = env.step(
            jax.random.PRNGKey(0), state, jnp.zeros(N, jnp.int32)
        )
        return state, (obs, reward, info)

    state, (obs, reward, info) = jax.lax.scan(body, state, None, T)
    return obs0, obs, reward, info, state


def wrapped(returns: str = "gymnasium", reset_on_task_switch: bool = False, **spec):
    cfg = NormalizeConfig(obs=True, reward=True, clip_obs=CLIP, clip_reward=CLIP, gamma=GAMMA,
                          returns=returns, reset_on_task_switch=reset_on_task_switch)
    return normalize_env(Scripted(**spec), cfg)


@pytest.mark.parametrize("returns", ["gymnasium", "gym"])
def test_wrappers_equal_gyms_step_by_step(returns):
    ref, obs_rms, ret_rms = gym_reference(returns)
    obs0, obs, reward, info, state = jax.jit(run_script, static_argnums=0)(wrapped(returns))
    np.testing.assert_allclose(obs0, ref["obs"][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(obs, ref["obs"][1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info.final_obs, ref["final"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reward, ref["reward"], rtol=1e-5, atol=1e-6)
    # The clips bind somewhere, so they are checked too.
    assert np.abs(ref["obs"]).max() == CLIP and np.abs(ref["reward"]).max() == CLIP
    # The statistics the state carries are gym's.
    np.testing.assert_allclose(state.inner.obs_rms.mean, obs_rms.mean, rtol=1e-5)
    np.testing.assert_allclose(state.inner.obs_rms.var, obs_rms.var, rtol=1e-5)
    np.testing.assert_allclose(state.inner.obs_rms.count, obs_rms.count, rtol=1e-6)
    np.testing.assert_allclose(state.return_rms.var, ret_rms.var, rtol=1e-5)


def test_the_two_lines_of_gym_differ_where_an_episode_ended():
    a, _, _ = gym_reference("gymnasium")
    b, _, _ = gym_reference("gym")
    # Equal until the first termination (step 2), which gymnasium already restarts G at.
    np.testing.assert_array_equal(a["reward"][:2], b["reward"][:2])
    assert not np.allclose(a["reward"], b["reward"])


def test_episode_return_stays_raw():
    *_, raw_info, _ = run_script(Scripted())
    *_, info, _ = run_script(wrapped())
    np.testing.assert_array_equal(info.episode_return, raw_info.episode_return)
    np.testing.assert_array_equal(info.episode_length, raw_info.episode_length)
    # The raw return of env 0's first episode (steps 0..2), which the normalised rewards
    # would not sum to.
    np.testing.assert_allclose(info.episode_return[2, 0], REWARD[:3, 0].sum(), rtol=1e-6)


def test_reset_on_task_switch_starts_fresh_statistics_on_the_new_tasks_first_obs():
    # 2 tasks of 4 steps: step 3 ends task 0 and returns task 1's first observation.
    ref, obs_rms, ret_rms = gym_reference("gymnasium", task_end=3)
    env = wrapped(reset_on_task_switch=True, num_tasks=2, steps_per_task=4)
    obs0, obs, reward, info, state = jax.jit(run_script, static_argnums=0)(env)
    np.testing.assert_allclose(obs, ref["obs"][1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info.final_obs, ref["final"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reward, ref["reward"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.inner.obs_rms.count, obs_rms.count, rtol=1e-6)
    np.testing.assert_allclose(state.return_rms.count, ret_rms.count, rtol=1e-6)
    # Without the option the statistics run on across the switch.
    plain = jax.jit(run_script, static_argnums=0)(wrapped(num_tasks=2, steps_per_task=4))
    assert not np.allclose(plain[1][4:], obs[4:])


# ---------------------------------------------------------------- a real env, vmapped


def cartpole(**cfg):
    base = {"obs": True, "reward": True, **cfg}
    return make_env("gymnax", "CartPole-v1", 4, normalize=NormalizeConfig(**base))


def test_make_env_wraps_obs_inside_reward_and_only_as_asked():
    env = cartpole()
    assert isinstance(env, NormalizeReward) and isinstance(env.inner, NormalizeObservation)
    assert isinstance(cartpole(reward=False), NormalizeObservation)
    plain = make_env("gymnax", "CartPole-v1", 4, normalize=NormalizeConfig())
    assert not isinstance(plain, NormalizeObservation | NormalizeReward)


def test_statistics_are_per_member_under_vmap():
    env = cartpole()
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    states, traj = jit_fast(jax.vmap(lambda k: rollout(env, k, 20)), keys)
    alone, traj1 = jit_fast(lambda k: rollout(env, k, 20), keys[1])
    rms = states.inner.obs_rms
    assert not np.allclose(rms.mean[0], rms.mean[1])
    assert not np.allclose(states.return_rms.var[0], states.return_rms.var[1])
    for member, single in (
        (rms.mean[1], alone.inner.obs_rms.mean),
        (states.return_rms.var[1], alone.return_rms.var),
        (traj.next_obs[1], traj1.next_obs),
        (traj.reward[1], traj1.reward),
    ):
        np.testing.assert_allclose(member, single, rtol=1e-5, atol=1e-6)


def test_statistics_survive_serialization_and_the_run_goes_on_the_same():
    env = cartpole()
    step = jax.jit(env.step)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 12)
    act = jnp.zeros(4, jnp.int32)
    for k in keys[:6]:
        state = step(k, state, act)[1]
    template = jax.jit(env.reset)(jax.random.PRNGKey(9))[1]
    restored = flax.serialization.from_bytes(template, flax.serialization.to_bytes(state))
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(restored.inner.obs_rms.count) == pytest.approx(1e-4 + 7 * 4)
    for k in keys[6:]:
        out_a, out_b = step(k, state, act), step(k, restored, act)
        for a, b in zip(jax.tree.leaves(out_a), jax.tree.leaves(out_b), strict=True):
            np.testing.assert_array_equal(a, b)
        state, restored = out_a[1], out_b[1]


def test_the_config_turns_them_on_in_the_program():
    cfg = load_config(data=tiny(env={"normalize": {"obs": True, "reward": True, "gamma": 0.9}}))
    env = Program(plan(cfg)[0]).agent.env
    assert isinstance(env, NormalizeReward) and isinstance(env.inner, NormalizeObservation)
    assert env._gamma == 0.9
    plain = Program(plan(load_config(data=tiny()))[0]).agent.env
    assert not isinstance(plain, NormalizeObservation | NormalizeReward)


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # three runs, three compiles: about 45 s on two cores
def test_a_resumed_run_goes_on_with_the_statistics_and_logs_raw_returns(tmp_path):
    norm = {"normalize": {"obs": True, "reward": True, "gamma": 0.99}}
    data = tiny(env=norm, agent={"num_steps": 32}, metrics={"every": 0},
                run={"out_dir": str(tmp_path), "num_seeds": 1, "total_timesteps": 4 * 32 * 4})
    full = run(load_config(data=data, overrides=["run.name=full"]))
    part = run(load_config(data=data, overrides=["run.name=part"]), stop_after_chunks=1)
    resumed = run(resume=part.run_dir)
    rows, again = _rows(full.run_dir), _rows(resumed.run_dir)
    assert len(rows) == len(again) == 4
    for a, b in zip(rows, again, strict=True):
        for k in ("pg_loss", "v_loss", "episode_return"):
            assert math.isclose(float(a[k]), float(b[k]), rel_tol=1e-5, abs_tol=1e-7), k
    # CartPole pays 1 per step: a raw episode return is the episode's length.
    logged = [r for r in rows if r["episode_return"] not in ("", "nan")]
    assert logged
    for r in logged:
        assert math.isclose(float(r["episode_return"]), float(r["episode_length"]), rel_tol=1e-6)
