"""The value-based agents (DQN, C51, PQN) against independent references: the categorical
projection by hand, Q(lambda) and the TD targets against plain loops in numpy, the target
network's update count for any number of envs, CleanRL's epsilon schedule; and the
contract: a vmapped member equals the same member alone, buffer included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.agents import make_agent, replay
from plasticine_jax.agents.common import crossed, linear_schedule
from plasticine_jax.agents.dqn import target_update_due
from plasticine_jax.agents.returns import categorical_projection
from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program


def value_cfg(agent: str, *extra: str):
    base = ["env.num_envs=2", "run.total_timesteps=400", "metrics.every=2",
            "metrics.probe_size=8", "agent.network.hidden_sizes=[16]", "run.progress=false"]
    if agent in ("dqn", "c51"):
        base += ["agent.num_steps=4", "agent.replay_ratio=0.25", "agent.batch_size=8",
                 "agent.buffer_size=200", "agent.learning_starts=40"]
    else:
        base += ["agent.num_steps=8", "agent.num_minibatches=2", "agent.update_epochs=1"]
    return load_config(None, [f"agent.name={agent}", *base, *extra])


def build(cfg):
    e = cfg.env
    env = make_env(e.backend, e.id, e.num_envs, e.options, e.scenario, e.scenario_options,
                   e.normalize)
    methods = plan(cfg)[0].methods
    return make_agent(cfg, env, methods)


# ------------------------------------------------------------------ C51 projection


def test_categorical_projection_by_hand():
    support = jnp.array([0.0, 1.0, 2.0, 3.0])
    z = jnp.array([0.5, 1.0, 2.75, 5.0])  # 5.0 is clipped to the last atom
    p = jnp.array([0.1, 0.2, 0.3, 0.4])
    # 0.5 splits 0.1 evenly onto atoms 0 and 1; 1.0 lands on atom 1; 2.75 gives a quarter
    # of 0.3 to atom 2 and three quarters to atom 3; the clipped 3.0 lands on atom 3.
    want = [0.05, 0.05 + 0.2, 0.25 * 0.3, 0.75 * 0.3 + 0.4]
    np.testing.assert_allclose(categorical_projection(z, p, support), want, atol=1e-7)


def projection_loop(z, p, v_min, v_max, n):
    """CleanRL c51.py's projection, as a loop: l, u = floor, ceil of b; mass to both."""
    dz = (v_max - v_min) / (n - 1)
    m = np.zeros(n)
    for zi, pi in zip(z, p, strict=True):
        b = (np.clip(zi, v_min, v_max) - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        m[lo] += pi * (hi + (lo == hi) - b)
        m[hi] += pi * (b - lo)
    return m


@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_projection_matches_cleanrl_loop(seed):
    rng = np.random.default_rng(seed)
    n, v_min, v_max = 11, -5.0, 5.0
    support = np.linspace(v_min, v_max, n)
    z = 0.7 + 0.9 * support + rng.normal(size=n)  # r + gamma z, some outside the support
    p = rng.dirichlet(np.ones(n))
    got = categorical_projection(jnp.asarray(z, jnp.float32), jnp.asarray(p, jnp.float32),
                                 jnp.asarray(support, jnp.float32))
    np.testing.assert_allclose(got, projection_loop(z, p, v_min, v_max, n), atol=1e-6)


# ------------------------------------------------------------------ PQN's Q(lambda)


def q_lambda_loop(r, term, trunc, q_max, q_final, last_q, gamma, lam):
    """purejaxql's backward recursion, with truncations bootstrapping from the final obs:
    G_t = r_t + gamma (1 - term_t) [lam G_{t+1} + (1 - lam) max Q(s_{t+1})]."""
    T = len(r)
    G = np.zeros(T)
    for t in reversed(range(T)):
        if term[t]:
            G[t] = r[t]
        elif trunc[t]:
            G[t] = r[t] + gamma * q_final[t]
        elif t == T - 1:
            G[t] = r[t] + gamma * last_q
        else:
            G[t] = r[t] + gamma * (lam * G[t + 1] + (1 - lam) * q_max[t + 1])
    return G


def test_pqn_targets_match_the_q_lambda_loop():
    agent = build(value_cfg("pqn"))
    rng = np.random.default_rng(0)
    T, N, gamma, lam = 9, 2, 0.97, 0.65
    term = np.zeros((T, N), bool)
    trunc = np.zeros((T, N), bool)
    term[2, 0] = term[6, 1] = True
    trunc[4, 0] = True
    traj = {
        "reward": rng.normal(size=(T, N)), "q_max": rng.normal(size=(T, N)),
        "q_final": rng.normal(size=(T, N)), "terminated": term, "truncated": trunc,
    }  # fmt: skip
    last_q = rng.normal(size=N)
    hp = {"agent": {"gamma": gamma, "q_lambda": lam}}
    got = agent.targets(jax.tree.map(jnp.asarray, traj), jnp.asarray(last_q), hp)
    for n in range(N):
        want = q_lambda_loop(traj["reward"][:, n], term[:, n], trunc[:, n],
                             traj["q_max"][:, n], traj["q_final"][:, n], last_q[n], gamma, lam)
        np.testing.assert_allclose(got[:, n], want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ DQN targets and loss


@pytest.mark.parametrize(("double", "loss"), [(False, "mse"), (True, "huber")])
def test_dqn_loss_matches_numpy(double, loss):
    agent = build(value_cfg("dqn", f"agent.double={str(double).lower()}", f"agent.loss={loss}"))
    params = agent.init_params(jax.random.PRNGKey(0))
    target = agent.init_params(jax.random.PRNGKey(1))
    rng = np.random.default_rng(0)
    B = 6
    batch = replay.NStepBatch(
        obs=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        action=jnp.asarray(rng.integers(0, 2, B), jnp.int32),
        reward=jnp.asarray(rng.normal(size=B), jnp.float32),
        discount=jnp.asarray([0.99, 0.0, 0.99**3, 0.99, 0.99, 0.0], jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        weight=jnp.asarray([1, 1, 1, 0, 1, 1], jnp.float32),
    )
    hp = {"agent": {"huber_delta": 1.0}, "methods": {}}
    got, aux = agent.loss(params, target, batch, hp, params)
    q = np.asarray(agent.network.apply(params, batch.obs).q)
    q_next_t = np.asarray(agent.network.apply(target, batch.next_obs).q)
    q_next_online = np.asarray(agent.network.apply(params, batch.next_obs).q)
    per, w = [], np.asarray(batch.weight)
    for i in range(B):
        a_star = np.argmax(q_next_online[i] if double else q_next_t[i])
        y = float(batch.reward[i]) + float(batch.discount[i]) * q_next_t[i, a_star]
        td = q[i, int(batch.action[i])] - y
        if loss == "mse":
            per.append(td**2)
        else:
            per.append(0.5 * td**2 if abs(td) <= 1.0 else abs(td) - 0.5)
    want = (w * np.array(per)).sum() / w.sum()
    np.testing.assert_allclose(float(aux["td_loss"]), want, rtol=1e-5)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_c51_loss_matches_numpy():
    agent = build(value_cfg("c51", "agent.num_atoms=11", "agent.hp.v_min=-5",
                            "agent.hp.v_max=5"))
    params = agent.init_params(jax.random.PRNGKey(0))
    target = agent.init_params(jax.random.PRNGKey(1))
    rng = np.random.default_rng(1)
    B = 4
    batch = replay.NStepBatch(
        obs=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        action=jnp.asarray([0, 1, 1, 0], jnp.int32),
        reward=jnp.asarray([1.0, -0.5, 0.3, 2.0], jnp.float32),
        discount=jnp.asarray([0.99, 0.0, 0.9801, 0.99], jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        weight=jnp.ones(B, jnp.float32),
    )
    hp = {"agent": {"v_min": -5.0, "v_max": 5.0}, "methods": {}}
    _, aux = agent.loss(params, target, batch, hp, params)
    z = np.linspace(-5.0, 5.0, 11)
    softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(  # noqa: E731
        x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
    logits = np.asarray(agent.network.apply(params, batch.obs).q, np.float64)
    p_next = softmax(np.asarray(agent.network.apply(target, batch.next_obs).q, np.float64))
    losses = []
    for i in range(B):
        a_star = np.argmax((p_next[i] * z).sum(-1))
        m = projection_loop(float(batch.reward[i]) + float(batch.discount[i]) * z,
                            p_next[i, a_star], -5.0, 5.0, 11)
        logp = np.log(softmax(logits[i, int(batch.action[i])]))
        losses.append(-(m * logp).sum())
    np.testing.assert_allclose(float(aux["td_loss"]), np.mean(losses), rtol=1e-5)


# ------------------------------------------------------------------ schedules


@pytest.mark.parametrize("num_envs", [1, 3, 7, 8, 16])
@pytest.mark.parametrize(("num_steps", "grad_steps"), [(1, 1), (4, 1), (5, 2), (10, 10)])
def test_target_updates_happen_once_per_multiple_for_any_num_envs(num_envs, num_steps,
                                                                  grad_steps):
    every, per_update = 500, num_envs * num_steps
    steps = 0
    count = 0
    for _ in range(3000 // per_update + 1):
        due = [bool(target_update_due(jnp.int32(steps), jnp.int32(g), per_update, grad_steps,
                                      jnp.float32(every))) for g in range(grad_steps)]
        count += sum(due)
        steps += per_update
    assert count == steps // every
    # Counting by modulo of a counter that jumps by num_envs misses multiples:
    modulo = sum((k * per_update) % every == 0 for k in range(1, steps // per_update + 1))
    if every % per_update:
        assert modulo < steps // every


def test_crossed_counts_multiples_in_the_interval():
    assert bool(crossed(jnp.int32(499), jnp.int32(503), 500))
    assert not bool(crossed(jnp.int32(500), jnp.int32(999), 500))
    assert bool(crossed(jnp.int32(500), jnp.int32(1000), 500))


def test_epsilon_follows_cleanrl_linear_schedule():
    # CleanRL dqn.py: slope = (end - start) / duration; max(slope * t + start, end).
    start, end, duration = 1.0, 0.05, 250_000.0
    for t in (0, 1, 125_000, 249_999, 250_000, 400_000):
        want = max((end - start) / duration * t + start, end)
        got = float(linear_schedule(start, end, duration, jnp.float32(t)))
        assert got == pytest.approx(want, abs=1e-6)


# ------------------------------------------------------------------ the contract


def assert_second_member_equals_alone(make_cfg, updates: int):
    """Seeds 3 and 4 vmapped together against seed 4 alone, ``updates`` updates: every
    logged scalar and every leaf of the member state agree. Returns the lone run's
    ``(state, out)``."""
    together = Program(plan(make_cfg("run.num_seeds=2", "run.seed=3"))[0])
    alone = Program(plan(make_cfg("run.num_seeds=1", "run.seed=4"))[0])
    s2, out2 = together.run_chunk(together.init(), 0, updates)
    s1, out1 = alone.run_chunk(alone.init(), 0, updates)
    for k in out1:
        np.testing.assert_allclose(out2[k][:, 1], out1[k][:, 0], rtol=2e-5, atol=1e-6,
                                   err_msg=k)
    leaves2 = jax.tree.leaves(s2.members)
    leaves1 = jax.tree.leaves(s1.members)
    assert len(leaves1) == len(leaves2)
    for a, b in zip(leaves2, leaves1, strict=True):
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0], rtol=2e-5, atol=1e-6)
    return s1, out1


@pytest.mark.parametrize("agent", ["dqn", "pqn"])
def test_vmapped_member_equals_member_alone(agent):
    s1, _ = assert_second_member_equals_alone(lambda *x: value_cfg(agent, *x), 3)
    if agent == "dqn":  # the buffer is part of the member's state, and it holds the rollouts
        buf = s1.members.buffer
        assert int(buf.size[0]) == (40 + 3 * 4 * 2) // 2


def test_value_agent_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="whole number >= 1"):
        value_cfg("dqn", "agent.replay_ratio=0.1")
    with pytest.raises(ConfigError, match="not a multiple of env.num_envs"):
        value_cfg("dqn", "agent.buffer_size=201")
    with pytest.raises(ConfigError, match="unknown key 'agent.num_minibatches'"):
        value_cfg("dqn", "agent.num_minibatches=2")
    with pytest.raises(ConfigError, match="agent.name='dq' is unknown"):
        load_config(None, ["agent.name=dq"])
    with pytest.raises(ConfigError, match="does not apply to agent.name='pqn'"):
        value_cfg("pqn", "methods=[{name: hl_gauss, hp: {v_min: 0, v_max: 100}}]")
    with pytest.raises(ConfigError, match="agents have different settings"):
        load_config(None, ["sweep={agent.name: [ppo, dqn]}"])


# ------------------------------------------------------------------ evaluation


def test_evaluate_returns_the_first_episode_of_each_env():
    from plasticine_jax.agents.common import evaluate

    env = make_env("gymnax", "CartPole-v1", 3, {}, "none", {}, None)
    policy = lambda obs, key: jnp.zeros(obs.shape[0], jnp.int32)  # noqa: E731  always push left
    key = jax.random.PRNGKey(7)
    got = float(evaluate(env, policy, key, 60))
    # The same episodes stepped one at a time, summing the rewards until each env first ends.
    k_reset, k = jax.random.split(key)
    obs, state = env.reset(k_reset)
    total, done = np.zeros(3), np.zeros(3, bool)
    for _ in range(60):
        k, _k_act, k_env = jax.random.split(k, 3)
        obs, state, r, term, trunc, _ = env.step(k_env, state, policy(obs, None))
        total += np.where(done, 0.0, np.asarray(r))
        done |= np.asarray(term | trunc)
    assert done.all()
    assert got == pytest.approx(total.mean())
    assert 5 <= got <= 20  # pushing one way drops the pole within a few steps


def test_ppo_evaluates_on_the_eval_updates_only(tiny_config):
    cfg = tiny_config(eval={"every": 2, "num_envs": 2, "max_steps": 50})
    prog = Program(plan(cfg)[0])
    _, out = prog.run_chunk(prog.init(), 0, 4)
    ev = out["eval/episode_return"][:, 0]
    assert np.isnan(ev[[0, 2]]).all() and np.isfinite(ev[[1, 3]]).all()
    assert (ev[[1, 3]] >= 1).all()


def test_a_reset_of_the_online_head_is_mirrored_in_the_target():
    cfg = value_cfg("dqn", "agent.hp.target_every=1000000000",
                    "methods=[{name: layer_reset, options: {schedule: every_update}}]")
    prog = Program(plan(cfg)[0])
    s0 = prog.init()
    target0 = jax.tree.map(np.asarray, s0.members.target)
    s1, _ = prog.run_chunk(s0, 0, 1)
    online, target = s1.members.learner.params["params"], s1.members.target["params"]
    # The head was reset after the update's gradient step: the target holds the same fresh
    # head; the torso trained in the online network only (no target update came due).
    np.testing.assert_array_equal(target["q_head"]["kernel"], online["q_head"]["kernel"])
    assert not np.allclose(target["q_head"]["kernel"], target0["params"]["q_head"]["kernel"])
    np.testing.assert_array_equal(target["q"]["layer_0"]["kernel"],
                                  target0["params"]["q"]["layer_0"]["kernel"])
    assert not np.allclose(online["q"]["layer_0"]["kernel"], target["q"]["layer_0"]["kernel"])


def test_a_diverging_dqn_member_is_frozen_and_the_others_run_on(tmp_path):
    import csv

    from plasticine_jax.runner.loop import run

    # Two gradient steps an update: optimizer step 3 (0-based) is in update 2.
    nan = "methods=[{name: 'tests.user_methods:nan_at', options: {chain: after}}]"
    over = [nan, f"run.out_dir={tmp_path}", "run.chunk_updates=2"]
    mixed = run(value_cfg("dqn", *over, "run.name=mixed", "sweep.methods.0.hp.step=[-1, 3]"))
    clean = run(value_cfg("dqn", *over, "run.name=clean", "methods.0.hp.step=-1"))

    def rows(r):
        with (r.run_dir / "metrics.csv").open() as f:
            return list(csv.DictReader(f))

    bad = [r for r in rows(mixed) if r["sweep:methods.0.hp.step"] == "3"]
    good = [r for r in rows(mixed) if r["sweep:methods.0.hp.step"] == "-1"]
    assert [r["diverged_at"] for r in bad] == ["0.0"] + ["2.0"] * (len(bad) - 1)
    assert all(r["td_loss"] == "" for r in bad[1:])
    np.testing.assert_allclose(  # batched with a diverging member vs alone: float noise only
        [float(r["td_loss"]) for r in good], [float(r["td_loss"]) for r in rows(clean)],
        rtol=1e-5,
    )


# ------------------------------------------------------------------ gradient clip


def _two_adam_steps(tx, params, grads):
    state = tx.init(params)
    outs = []
    for g in grads:
        u, state = tx.update(g, state, params, key=jax.random.PRNGKey(0), grad_fn=None,
                             max_grad_norm=None)  # fmt: skip
        outs.append(u)
    return outs


@pytest.mark.parametrize("agent", ["ppo", "pqn", "dqn"])
def test_grad_clip_elementwise_clips_entries_and_global_norm_scales(agent):
    """Each agent's optimizer behind ``agent.grad_clip``: over two Adam steps (so the moments
    see the clipped gradient), ``elementwise`` gives what the same optimizer gives for the
    gradient clipped entry by entry in numpy, ``global_norm`` what it gives for the gradient
    scaled by min(1, max / ||g||) in numpy; the two differ."""
    extra = ["agent.clip_grad_norm=true"] if agent == "dqn" else []
    cfgs = {k: value_cfg(agent, "agent.hp.max_grad_norm=0.5", f"agent.grad_clip={k}", *extra)
            for k in ("elementwise", "global_norm")}  # fmt: skip
    rng = np.random.default_rng(0)
    out = {}
    for kind, cfg in cfgs.items():
        ag = build(cfg)
        hp = jax.tree.map(lambda x: x[0], plan(cfg)[0].hp)
        params = ag.init_params(jax.random.PRNGKey(1))
        grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 2.0, p.dtype),
                              params) for _ in range(2)]  # fmt: skip
        if kind == "elementwise":
            ref = [jax.tree.map(lambda g: jnp.asarray(np.clip(np.asarray(g), -0.5, 0.5)), g)
                   for g in grads]  # fmt: skip
        else:
            def scaled(g):
                n = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(g)))
                return jax.tree.map(lambda x: jnp.asarray(np.asarray(x) * min(1.0, 0.5 / n)), g)

            ref = [scaled(g) for g in grads]
        got = _two_adam_steps(ag.optimizer(hp), params, grads)
        want = _two_adam_steps(ag.optimizer(hp), params, ref)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        out[kind] = got
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(out["elementwise"]),
                               jax.tree.leaves(out["global_norm"]), strict=True))  # fmt: skip
    assert diff > 1e-6


def test_a_method_reading_the_global_norm_clip_is_refused_beside_an_elementwise_clip():
    with pytest.raises(ConfigError, match=r"methods.0 \(trac\).*agent.grad_clip=global_norm"):
        value_cfg("pqn", "agent.grad_clip=elementwise", "methods=[{name: trac}]")
    with pytest.raises(ConfigError, match=r"methods.0 \(kron\)"):
        load_config(None, ["agent.grad_clip=elementwise", "methods=[{name: kron}]"])
    # Kron's psgd_jax variant reads no clip; DQN without clip_grad_norm clips nothing
    value_cfg("pqn", "agent.grad_clip=elementwise",
              "methods=[{name: kron, options: {variant: psgd_jax}}]")
    value_cfg("dqn", "agent.grad_clip=elementwise", "methods=[{name: trac}]")
    with pytest.raises(ConfigError, match="grad_clip"):
        value_cfg("pqn", "agent.grad_clip=l2")
    # a sweep reaching the elementwise clip is refused for the value that does
    with pytest.raises(ConfigError, match=r"sweep.agent.grad_clip value 'elementwise'"):
        value_cfg("pqn", "methods=[{name: trac}]",
                  "sweep={agent.grad_clip: [global_norm, elementwise]}")


def test_a_user_method_reading_the_global_norm_clip_is_refused_by_the_planner(
    monkeypatch, tmp_path
):
    """A user's Method (an import path, built by the planner, not the config loader) that
    declares ``reads_max_grad_norm`` meets the same check."""
    (tmp_path / "gc_probe_methods.py").write_text(
        "from plasticine_jax.methods.base import Method\n"
        "def reclips():\n"
        "    return Method(name='reclips', reads_max_grad_norm=True)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "gc_probe_methods:reclips"
    cfg = value_cfg("pqn", "agent.grad_clip=elementwise", f"methods=[{{name: '{name}'}}]")
    with pytest.raises(ConfigError, match=r"methods.0 \(reclips\).*agent.grad_clip=global_norm"):
        plan(cfg)
    ok = value_cfg("pqn", f"methods=[{{name: '{name}'}}]")  # beside the global-norm clip
    assert [m.name for m in plan(ok)[0].methods] == ["reclips"]
