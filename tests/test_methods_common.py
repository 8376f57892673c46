"""One suite over the whole method registry (optax ``contrib/_common_test.py`` style).

Every registered method trains PPO for two updates on a tiny CartPole config, vmapped over
2 seeds × 2 values of one of its hyperparameters, inside one jitted ``run_chunk``; outputs
must be finite and the train state must keep its tree structure, shapes and dtypes.

To stay fast, the methods that ``methods.plan`` can batch (optimizer / penalty hooks with
identity values) share **one** program, each member running one method (the others at their
identity values) plus an all-identity member; this also tests the planner. The cheap ones
run by default; the full batch, and the methods that edit the network or intervene (a
program each), are marked ``slow``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.config import load_config
from plasticine_jax.methods import REGISTRY, compose, make_method
from plasticine_jax.methods.plan import Group, group_method_lists, is_batchable
from plasticine_jax.runner.plan import CompileGroup, Member, traced_hp
from plasticine_jax.runner.program import Program
from tests.conftest import tiny

LOSSES = ("pg_loss", "v_loss", "entropy", "grad_norm", "approx_kl")


def _config(methods):
    data = tiny(agent={"network": {"hidden_sizes": [16, 16], "activation": "relu"}})
    data["methods"] = [{"name": m.name, "options": dict(m.options)} for m in methods]
    for mc in data["methods"]:
        if mc["name"] == "hl_gauss":  # its support must be given: CartPole's returns
            mc["hp"] = {"v_min": 0.0, "v_max": 100.0}
    data["run"] = {**data["run"], "total_timesteps": 4 * 16 * 2, "chunk_updates": 2}
    if any(_waits_for_tasks(m) for m in methods):
        # a method scheduled at task switches needs them: a second task from update 2 on
        data["env"] = {**data["env"], "scenario": "permuted_obs",
                       "scenario_options": {"num_tasks": 2, "steps_per_task": 4 * 16}}
    return load_config(data=data)


def _waits_for_tasks(m):
    from plasticine_jax.config.feasibility import TASK_SCHEDULES, _schedules

    return any(set(names) & set(TASK_SCHEDULES)
               for names in _schedules(m.name, dict(m.options)).values())


def _second_value(m):
    """A hyperparameter to sweep and a second value for it (a no-op value where known)."""
    if not m.hp:
        return None, None
    key = sorted(m.hp)[0]
    if m.identity_hp is not None and m.identity_hp.get(key) != m.hp[key]:
        return key, m.identity_hp[key]
    return key, m.hp[key] * 0.5


def _program(methods, member_hps, seeds):
    cfg = _config(methods)
    agent = traced_hp(cfg, methods)["agent"]
    members = [Member(i, i, s, {}) for i, s in enumerate(seeds)]
    stacked = jax.tree.map(
        lambda *xs: jnp.asarray(xs, jnp.float32),
        *[{"agent": agent, "methods": hp} for hp in member_hps],
    )
    return Program(CompileGroup(0, cfg, tuple(methods), members, stacked))


def _check_run(prog):
    s0 = prog.init()
    s1, out = prog.run_chunk(jax.tree.map(jnp.copy, s0), 0)
    assert jax.tree.structure(s0) == jax.tree.structure(s1)
    chex.assert_trees_all_equal_shapes_and_dtypes(s0, s1)
    for k in LOSSES:
        assert np.isfinite(out[k]).all(), k
    for leaf in jax.tree.leaves(s1.members.learner.params):
        assert np.isfinite(np.asarray(leaf)).all()
    return s1, out


def _batchable_names():
    names = []
    for n in sorted(REGISTRY):
        m = make_method(n)
        if is_batchable(m) and m.network is None and (m.optimizer or m.penalty):
            names.append(n)
    return names


def _other_names():
    return [n for n in sorted(REGISTRY) if n not in _batchable_names()]


def test_registry_is_populated():
    assert {"shrink_perturb", "l2", "l2_init", "parseval", "trac", "kron", "sam"} <= set(REGISTRY)
    for n in REGISTRY:
        m = make_method(n)
        assert m.name == n
        assert all(isinstance(v, float | int) for v in m.hp.values()), n
        if m.identity_hp is not None:
            assert set(m.identity_hp) == set(m.hp), n


LIGHT = ("l2", "l2_init", "parseval", "weight_clipping")


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("light"),
        # every batchable method (Kron, TRAC, S&P's fresh orthogonal draws...): ~2-3 min
        pytest.param("all", marks=pytest.mark.slow),
    ],
)
def test_batchable_methods_share_one_program(which):
    names = [n for n in _batchable_names() if n != "sam"]  # sam: see its own test
    if which == "light":
        names = [n for n in names if n in LIGHT]
    lists, hps = [[]], [{}]
    for n in names:
        m = make_method(n)
        key, second = _second_value(m)
        for v in (m.hp[key], second):
            lists.append([m])
            hps.append({n: {key: v}})
    groups = group_method_lists(lists, hps)
    assert len(groups) == 1, [[m.name for m in g.methods] for g in groups]
    (group,) = groups
    assert isinstance(group, Group) and len(group.members) == len(lists)
    # two seeds per member: the seed axis is innermost
    member_hps = [h for h in group.member_hps for _ in range(2)]
    seeds = [s for _ in group.member_hps for s in (0, 1)]
    prog = _program(group.methods, member_hps, seeds)
    _, out = _check_run(prog)
    assert prog.compiles == 1
    # members differ: the methods did something
    pg = out["pg_loss"][-1]
    assert len({round(float(x), 6) for x in pg}) > 2


def _single_method_run(name):
    m = make_method(name)
    key, second = _second_value(m)
    values = [dict(m.hp)]
    if key is not None:
        values.append({**m.hp, key: second})
    else:
        values.append(dict(m.hp))
    member_hps = [{name: v} for v in values for _ in (0, 1)]
    seeds = [s for _ in values for s in (0, 1)]
    return _check_run(_program([m], member_hps, seeds))


def test_sam_in_ppo():
    # PPO passes ``grad_fn`` to ``tx.update``; SAM raises without it.
    _single_method_run("sam")


@pytest.mark.slow
@pytest.mark.parametrize("name", _other_names())
def test_structural_method_in_ppo(name):
    _single_method_run(name)


# --------------------------------------------------------------------- planner and validation


def test_plan_groups_by_structure():
    from plasticine_jax.networks.spec import NetworkSpec

    l2, l2i, trac = make_method("l2"), make_method("l2_init"), make_method("trac")
    sq = make_method("l2_init", {"variant": "squared"})
    crelu, nap = make_method("crelu"), make_method("nap")
    lists = [[], [l2], [l2i], [trac, l2], [crelu], [crelu, l2], [nap], [sq]]
    groups = group_method_lists(lists, [{}, {"l2": {"coef": 0.5}}] + [{}] * 6, NetworkSpec())
    members = [g.members for g in groups]
    assert members == [(0, 1, 2, 3), (4, 5), (6,), (7,)]
    g0 = groups[0]
    assert [m.name for m in g0.methods] == ["trac", "l2_init", "l2"]
    assert g0.member_hps[0] == {
        "trac": {"enabled": 0.0, "s_prev": 1e-8, "eps": 1e-8},
        "l2": {"coef": 0.0},
        "l2_init": {"coef": 0.0},
    }
    assert g0.member_hps[1]["l2"] == {"coef": 0.5}
    assert g0.member_hps[3]["trac"]["enabled"] == 1.0
    # wrappers in opposite orders cannot share a program
    a, b = make_method("shrink_perturb"), make_method("weight_clipping")
    assert len(group_method_lists([[a, b], [b, a]])) == 2
    # LayerNorm on a LayerNorm network changes nothing: same program as plain members
    ln_groups = group_method_lists(
        [[], [make_method("layer_norm")]], None, NetworkSpec(norm="layernorm")
    )
    assert len(ln_groups) == 1


def test_validation_names_both_sides():
    from plasticine_jax.methods.validate import MethodConflictError, check_methods
    from plasticine_jax.networks.spec import NetworkSpec

    with pytest.raises(MethodConflictError, match="'crelu' and 'fourier'"):
        check_methods([make_method("crelu"), make_method("fourier")], NetworkSpec())
    with pytest.raises(MethodConflictError, match="unknown hyperparameter.*'lambda'"):
        check_methods([make_method("l2")], NetworkSpec(), [{"lambda": 1.0}])
    with pytest.raises(MethodConflictError, match="listed twice"):
        check_methods([make_method("l2"), make_method("l2")], NetworkSpec())
    # layer_norm and nap agree on the norm: allowed
    spec = check_methods([make_method("layer_norm"), make_method("nap")], NetworkSpec())
    assert spec.norm == "layernorm"
    if "redo" in REGISTRY and make_method("redo").requires:
        with pytest.raises(MethodConflictError, match="'redo'.*network config.*'tanh'"):
            check_methods([make_method("redo")], NetworkSpec(activation="tanh"))
        with pytest.raises(MethodConflictError, match="'redo'.*'fourier'"):
            check_methods(
                [make_method("fourier"), make_method("redo")], NetworkSpec(activation="relu")
            )


@pytest.mark.parametrize("name", _batchable_names())
def test_identity_hp_is_a_no_op(name):
    """At its identity values a batchable method leaves the agent's optimizer unchanged."""
    m = make_method(name)
    params = {
        "layer_0": {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "bias": jnp.zeros(4)}
    }
    grads = jax.tree.map(lambda x: jnp.cos(3.0 * x) + 0.1, params)
    base = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))
    ident = {k: jnp.float32(v) for k, v in m.identity_hp.items()}
    tx = compose.wrap_optimizer(base, [m], {name: ident})
    grad_fn = jax.grad(lambda p: sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(p)))
    if name == "sam":
        grads = grad_fn(params)

    @jax.jit
    def run(p):
        s, s0 = tx.init(p), base.init(p)
        u, _ = tx.update(grads, s, p, key=jax.random.PRNGKey(0), grad_fn=grad_fn)
        u0, _ = base.update(grads, s0, p)
        pen = m.penalty(p, p, ident) if m.penalty is not None else jnp.float32(0)
        g_pen = jax.grad(lambda q: m.penalty(q, p, ident))(p) if m.penalty is not None else None
        return u, u0, pen, g_pen

    u, u0, pen, g_pen = run(params)
    chex.assert_trees_all_close(u, u0, rtol=1e-6, atol=1e-9)
    assert float(pen) == 0.0
    if g_pen is not None:
        chex.assert_trees_all_equal(g_pen, jax.tree.map(jnp.zeros_like, params))
