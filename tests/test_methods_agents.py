"""The registry-wide method suite over the replay and value-based agents (DQN, C51, PQN,
SAC, TD3; PPO's is ``tests/test_methods_common.py``): every method with every agent it
applies to.

* the methods ``methods.plan`` batches share one compiled program per agent, each member
  running one of them, and train for two updates with finite losses and parameters;
* every other method (network edits, interventions) builds and traces the agent's whole
  update chunk (``jax.eval_shape``: shapes, names and tree structure are checked without a
  compile each), and the members' state keeps its structure;
* the impossible pairs are refused with a config error naming the agent.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.agents import agent_class
from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.methods import make_method
from plasticine_jax.methods.plan import group_method_lists
from plasticine_jax.runner.plan import CompileGroup, Member, traced_hp
from plasticine_jax.runner.program import Program
from tests.test_methods_common import (
    _batchable_names,
    _other_names,
    _second_value,
    _waits_for_tasks,
)

AGENTS = ("dqn", "c51", "pqn", "sac", "td3")
# Per agent: its loss scalar and a layer of its (first) torso.
LOSS = {"dqn": "td_loss", "c51": "td_loss", "pqn": "td_loss", "sac": "critic_loss",
        "td3": "critic_loss"}  # fmt: skip
LAYER = {"dqn": "q", "c51": "q", "pqn": "q", "sac": "critic", "td3": "critic"}
CONTINUOUS = ("sac", "td3")  # on Pendulum (TD3 needs continuous actions), the rest CartPole


def _data(agent: str, methods) -> dict:
    if agent == "pqn":
        a = {"num_steps": 8, "num_minibatches": 2, "update_epochs": 1}
        total = 2 * 8 * 2
    else:
        a = {"num_steps": 4, "replay_ratio": 0.25, "batch_size": 8, "buffer_size": 200,
             "learning_starts": 40}
        total = 40 + 2 * 4 * 2
    data = {
        "name": "tiny",
        "env": {"backend": "gymnax", "num_envs": 2,
                "id": "Pendulum-v1" if agent in CONTINUOUS else "CartPole-v1"},
        "agent": {"name": agent, **a,
                  "network": {"hidden_sizes": [16, 16], "activation": "relu"}},
        "metrics": {"every": 1, "probe_size": 8},
        "run": {"total_timesteps": total, "chunk_updates": 2, "progress": False},
        "methods": [{"name": m.name, "options": dict(m.options)} for m in methods],
    }
    for mc in data["methods"]:
        if mc["name"] == "hl_gauss":
            mc["hp"] = {"v_min": 0.0, "v_max": 100.0}
    if agent == "pqn" and any(m.needs_element_counts for m in methods):
        data["agent"]["optimizer"] = "adam"  # RAdam keeps no per-entry step counts
    if any(_waits_for_tasks(m) for m in methods):
        per_update = 2 * a["num_steps"]
        data["env"].update(scenario="permuted_obs",
                           scenario_options={"num_tasks": 2, "steps_per_task": per_update})
    return data


def _program(agent, methods, member_hps):
    cfg = load_config(data=_data(agent, methods))
    base = traced_hp(cfg, methods)["agent"]
    members = [Member(i, i, i % 2, {}) for i in range(len(member_hps))]
    stacked = jax.tree.map(
        lambda *xs: jnp.asarray(xs, jnp.float32),
        *[{"agent": base, "methods": hp} for hp in member_hps],
    )
    return Program(CompileGroup(0, cfg, tuple(methods), members, stacked))


def _applies(agent: str, name: str) -> bool:
    return name not in agent_class(agent).unsupported_methods


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["dqn", "pqn", "sac", "td3"])
def test_batchable_methods_share_one_program_in_value_agents(agent):
    names = [n for n in _batchable_names() if _applies(agent, n)]
    lists, hps = [[]], [{}]
    for n in names:
        m = make_method(n)
        key, second = _second_value(m)
        for v in (m.hp[key], second):
            lists.append([m])
            hps.append({n: {key: v}})
    (group,) = group_method_lists(lists, hps)
    prog = _program(agent, group.methods, list(group.member_hps))
    s0 = prog.init()
    s1, out = prog.run_chunk(jax.tree.map(jnp.copy, s0), 0)
    assert prog.compiles == 1
    chex.assert_trees_all_equal_shapes_and_dtypes(s0, s1)
    for k in (LOSS[agent], "grad_norm"):
        assert np.isfinite(out[k]).all(), k
    for leaf in jax.tree.leaves(prog.agent.trained_params(s1.members)):
        assert np.isfinite(np.asarray(leaf)).all()
    # the members differ: the methods did something
    assert len({round(float(x), 6) for x in out[LOSS[agent]][-1]}) > 2


@pytest.mark.slow
@pytest.mark.parametrize("agent", AGENTS)
def test_every_structural_method_traces_in_every_value_agent(agent):
    traced = []
    for name in _other_names():
        if not _applies(agent, name):
            continue
        m = make_method(name)
        prog = _program(agent, [m], [{name: dict(m.hp)}, {name: dict(m.hp)}])
        states = prog.init_shapes()
        new, out = jax.eval_shape(lambda s, p=prog: p._chunk(s, jnp.int32(0), 2), states)
        assert jax.tree.structure(new) == jax.tree.structure(states), name
        assert out[LOSS[agent]].shape == (2, 2), name
        if prog.agent.cfg.metrics.every:
            t = LAYER[agent]
            assert f"dormant/{t}/layer_0" in out and f"stable_rank/{t}" in out, name
        traced.append(name)
    assert len(traced) >= 10, traced


def test_an_impossible_pair_is_refused_naming_the_agent():
    m = make_method("hl_gauss")
    with pytest.raises(ConfigError, match=r"hl_gauss\) does not apply to agent.name='pqn'"):
        load_config(data=_data("pqn", [m]))
    data = _data("pqn", [make_method("continual_backprop")])
    data["agent"]["optimizer"] = "radam"
    with pytest.raises(ConfigError, match="set agent.optimizer=adam"):
        load_config(data=data)
