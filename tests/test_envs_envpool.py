"""envpool adapter: one pool for seeds x envs, Atari preprocessing, Procgen levels, DMC."""

import re

import jax
import numpy as np
import pytest

# CI installs the envpool extra (see README's test command); elsewhere this is optional.
pytest.importorskip("envpool")

from plasticine_jax.envs.registry import make_env  # noqa: E402
from plasticine_jax.envs.testing import check_protocol, jit_fast, rollout  # noqa: E402

ATARI = dict(
    episodic_life=True,
    reward_clip=True,
    noop_max=30,
    stack_num=4,
    img_height=84,
    img_width=84,
    gray_scale=True,
)


def make_pong(interface, **options):
    opts = {**ATARI, "max_episode_steps": 5, "interface": interface, **options}
    return make_env("envpool", "Pong-v5", num_envs=2, options=opts)


@pytest.fixture(scope="module", params=["xla", "callback"])
def pong(request):
    return make_pong(request.param)


def test_xla_interface_is_the_default_and_steps_inside_the_program():
    env = make_env("envpool", "Pong-v5", 2, {**ATARI, "max_episode_steps": 5})
    assert env.interface == "xla"
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    text = jax.jit(jax.vmap(lambda k: rollout(env, k, 2))).lower(keys).as_text()
    targets = re.findall(r"custom_call @(\w+)", text)
    # The pool's send/recv are FFI calls in the program; the one Python callback is the
    # reset (it runs once per run, outside the step loop) ...
    for call in ("_send", "_recv"):
        assert any("EnvPool_" in t and t.endswith(call) for t in targets), targets
    assert sum("python_cpu_callback" in t for t in targets) == 1, targets
    # ... on ONE pool for the 3 seeds x 2 envs.
    assert sorted(env._xla_pools) == [6]


def test_atari_preprocessing_and_time_limit(pong):
    assert pong.spec.obs_shape == (84, 84, 4) and pong.spec.action_space.n == 6
    traj = check_protocol(pong, num_seeds=2, num_steps=7)
    assert 0.0 <= traj.obs.min() and traj.obs.max() <= 1.0
    # 5-step limit: the 5th step truncates every env (a time limit, not a termination).
    assert traj.truncated[:, 4].all() and not traj.truncated[:, [0, 1, 2, 3, 5, 6]].any()
    assert not traj.terminated.any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 4], 5)
    np.testing.assert_array_equal(traj.info.extras["lives"][:, 0], 0)  # Pong has no lives
    ignored = traj.info.action_ignored
    if pong.interface == "xla":
        # envpool restarts the env on the next step: the truncating step returns the final
        # observation itself, and the restart step is marked, its action ignored.
        np.testing.assert_array_equal(traj.info.final_obs[:, 4], traj.next_obs[:, 4])
        assert ignored[:, 5].all() and not ignored[:, [0, 1, 2, 3, 4, 6]].any()
        np.testing.assert_array_equal(traj.reward[:, 5], 0.0)
    else:
        # The callback restarts at once: the next observation is the new episode's first.
        assert not np.array_equal(traj.info.final_obs[:, 4], traj.next_obs[:, 4])
        assert not ignored.any()


def test_pooled_seeds_are_independent(pong):
    """Three seeds share one pool of 6 envs; each seed's envs match that seed run alone on
    a fresh pool (its own actions, its own env seeds), so no seed sees or disturbs another's
    envs. The xla interface seeds envs from the ``seed`` option: member ``m`` of the pool
    has the envs of a run alone with ``seed = 2 * m``; the callback interface seeds them
    from the member's key."""
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    fresh = make_pong(pong.interface)
    _, pooled = jit_fast(jax.vmap(lambda k: rollout(fresh, k, 6)), keys)
    for s in (0, 2):
        alone_env = make_pong(
            pong.interface, **({"seed": 2 * s} if pong.interface == "xla" else {})
        )
        _, alone = jit_fast(lambda k, e=alone_env: rollout(e, k, 6), keys[s])
        np.testing.assert_array_equal(pooled.next_obs[s], alone.next_obs)
        np.testing.assert_array_equal(pooled.reward[s], alone.reward)
    assert not np.array_equal(pooled.next_obs[0], pooled.next_obs[1])
    # Nested vmap (hyperparameters x seeds) also maps onto one pool.
    grid = jax.random.split(jax.random.PRNGKey(1), 4).reshape(2, 2, -1)
    _, nested = jit_fast(jax.vmap(jax.vmap(lambda k: rollout(pong, k, 2))), grid)
    assert nested.obs.shape == (2, 2, 2, 2, 84, 84, 4)


def test_reset_runs_even_when_only_rewards_are_used(pong):
    # A pure_callback whose outputs are unused may be dropped; the reset must still happen.
    rewards = jit_fast(lambda k: rollout(pong, k, 3)[1].reward, jax.random.PRNGKey(2))
    assert rewards.shape == (3, 2)


@pytest.mark.parametrize("interface", ["xla", "callback"])
def test_episodic_life_ends_a_life_not_the_game(interface):
    """Breakout with ``episodic_life``: a lost life is ``terminated`` (no bootstrap), the
    step after it is envpool's continuation with the action ignored, and the episode return
    and length are per game (reported only at the game over)."""
    opts = {**ATARI, "noop_max": 1, "interface": interface}
    env = make_env("envpool", "Breakout-v5", 2, opts)
    _, traj = jit_fast(lambda k: rollout(env, k, 400), jax.random.PRNGKey(3))
    traj = jax.tree.map(np.asarray, traj)
    lives, term = traj.info.extras["lives"], traj.terminated
    life_lost = term & (lives > 0)
    assert life_lost.sum() >= 4, "random play should lose lives within 400 steps"
    # The step after each lost life ignores the action and earns nothing.
    t, e = np.nonzero(life_lost[:-1])
    assert traj.info.action_ignored[t + 1, e].all()
    np.testing.assert_array_equal(traj.reward[t + 1, e], 0.0)
    # No episode ends at a lost life; one ends exactly at each game over.
    assert not traj.info.episode_length[life_lost].any()
    game_over = term & (lives == 0)
    assert game_over.any(), "random play should end a game within 400 steps"
    assert (traj.info.episode_length[game_over] > 0).all()
    np.testing.assert_array_equal(traj.info.episode_length > 0, game_over | traj.truncated)
    # A game's length counts the agent's steps: steps whose action was ignored do not count.
    for env_i in range(2):
        ends = np.flatnonzero(game_over[:, env_i])
        first = ends[0]
        counted = (~traj.info.action_ignored[: first + 1, env_i]).sum()
        assert traj.info.episode_length[first, env_i] == counted


def test_ppo_masks_ignored_steps_on_the_xla_pool(tiny_config):
    """PPO (Nature CNN torso) on the xla pool: 2 envs x 8 steps, 4-step episodes. Each env
    truncates at step 3, its restart at step 4 is ignored, so 14 of 16 transitions enter
    the loss."""
    import jax.numpy as jnp

    from plasticine_jax.agents.ppo import PPO
    from plasticine_jax.runner.plan import traced_hp

    env_cfg = {
        "backend": "envpool",
        "id": "Pong-v5",
        "num_envs": 2,
        "options": {**ATARI, "max_episode_steps": 4},
    }
    cfg = tiny_config(
        env=env_cfg,
        agent={
            "num_steps": 8,
            "num_minibatches": 1,
            "update_epochs": 1,
            "network": {"torso": "atari_cnn", "hidden_sizes": [16]},
        },
        metrics={"every": 0},
        run={"total_timesteps": 16, "num_seeds": 1, "chunk_updates": 1},
    )

    def fresh_agent():  # a pool lives on the host: each run below gets its own
        agent = PPO(cfg, make_env("envpool", "Pong-v5", 2, env_cfg["options"]))
        return agent, agent.init(jax.random.PRNGKey(0), traced_hp(cfg, []))

    agent, state = fresh_agent()
    _, traj = jit_fast(agent._rollout, state)
    np.testing.assert_array_equal(np.asarray(traj.valid).sum(axis=0), [7, 7])
    assert not np.asarray(traj.valid)[4].any()
    agent, state = fresh_agent()
    _, out = jit_fast(agent.update, state, jnp.int32(0))
    out = jax.tree.map(np.asarray, out)
    assert out["episodes"] == 2 and out["episode_length"] == 4
    assert all(np.isfinite(out[k]) for k in ("pg_loss", "v_loss", "entropy", "approx_kl"))


def test_interface_errors_name_the_fix():
    with pytest.raises(ValueError, match="choose one of"):
        make_env("envpool", "Pong-v5", 2, {"interface": "grpc"})
    with pytest.raises(ValueError, match="interface: callback"):
        make_env(
            "envpool",
            "CoinrunEasy-v0",
            2,
            {"interface": "xla"},
            scenario="procgen_levels",
            scenario_options={"steps_per_task": 6, "num_tasks": 2},
        )
    # DMC takes float64 actions, which float32 JAX cannot send through envpool's XLA call:
    # the default falls back to the callback, and asking for xla says why not.
    assert make_env("envpool", "CheetahRun-v1", 2).interface == "callback"
    with pytest.raises(ValueError, match="float64 actions"):
        make_env("envpool", "CheetahRun-v1", 2, {"interface": "xla"})
    with pytest.raises(ValueError, match="drop the option"):
        make_env("envpool", "Pong-v5", 2, {"interface": "callback", "seed": 3})


def test_procgen_level_advances_every_task():
    env = make_env(
        "envpool",
        "CoinrunEasy-v0",
        num_envs=2,
        scenario="procgen_levels",
        scenario_options={
            "steps_per_task": 2 * 3,  # env steps per member: 3 steps of each of 2 envs
            "num_tasks": 3,
            "start_level": 5,
            "level_stride": 20,
        },
    )
    assert env.spec.num_tasks == 3 and env.spec.obs_shape == (64, 64, 3)
    traj = check_protocol(env, num_seeds=2, num_steps=8)
    levels = traj.info.extras["level_seed"]
    # Steps 0-1 play level 5; the step that ends a task already hands out the next level.
    np.testing.assert_array_equal(levels[:, :2], 5)
    np.testing.assert_array_equal(levels[:, 3:5], 25)
    np.testing.assert_array_equal(levels[:, 6:], 45)
    np.testing.assert_array_equal(traj.info.task_id[0, :, 0], [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(np.flatnonzero(traj.info.task_switched[0, :, 0]), [3, 6])
    assert (traj.truncated | traj.terminated)[:, [2, 5]].all()


def test_procgen_without_qt_names_the_apt_packages(monkeypatch):
    import envpool

    from plasticine_jax.envs.registry import MissingExtraError

    def no_qt(task_id, **kwargs):  # what envpool raises when libQt5Core.so.5 is missing
        raise ImportError("EnvPool Procgen requires the system Qt 5 runtime on Linux.")

    monkeypatch.setattr(envpool, "make_spec", no_qt)
    with pytest.raises(MissingExtraError, match="apt-get install -y libqt5core5a libqt5gui5"):
        make_env("envpool", "CoinrunEasy-v0", 2)


@pytest.mark.slow
def test_dmc_sequence_switches_task():
    env = make_env(
        "envpool",
        "WalkerStand-v1",
        num_envs=2,
        scenario="dmc_sequence",
        scenario_options={"tasks": "walker", "steps_per_task": 4},
    )
    assert env.spec.num_tasks == 6 and env.spec.obs_shape == (24,)
    traj = check_protocol(env, num_seeds=2, num_steps=5)
    np.testing.assert_array_equal(traj.info.task_id[0, :, 0], [0, 0, 1, 1, 2])
    assert traj.truncated[:, [1, 3]].all()


def test_dmc_action_bounds_are_per_joint_where_joints_differ():
    import envpool

    quadruped = make_env("envpool", "QuadrupedWalk-v1", num_envs=2)
    box = envpool.make_spec("QuadrupedWalk-v1").action_space
    low, high = quadruped.spec.action_space.bounds()
    np.testing.assert_array_equal(low, box.low.astype(np.float32))
    np.testing.assert_array_equal(high, box.high.astype(np.float32))
    hash(quadruped.spec)  # a static argument: per-dimension bounds are tuples
    assert quadruped.interface == "callback" and quadruped.spec.obs_shape == (113,)
    walker = make_env("envpool", "WalkerWalk-v1", num_envs=2).spec.action_space
    assert (walker.low, walker.high) == (-1.0, 1.0)  # one box: plain floats, as before
