"""The IMPALA ResNet torso against flax's own conv and max pool, its shapes and size on Procgen
frames, ReDo along its layer chain, a PPO update with it; the agent presets load and plan."""

from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.envs.registry import make_env
from plasticine_jax.envs.testing import FAST_COMPILE
from plasticine_jax.methods.redo import redo_params
from plasticine_jax.networks import ActorCritic, NetworkSpec
from plasticine_jax.networks.impala import max_pool_3x3_s2
from plasticine_jax.networks.torso import Torso
from plasticine_jax.runner.plan import build_methods, plan, traced_hp
from tests.conftest import tiny

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs" / "agents").glob("*.yaml"))
SPEC = NetworkSpec(torso="impala_cnn", hidden_sizes=(256,), activation="relu", shared_torso=True)


def reference_impala(params: dict, x: jax.Array) -> jax.Array:
    """CleanRL's ``ppo_procgen.py`` network written with flax's ``nn.Conv(padding=1)`` and
    ``nn.max_pool(padding=1)``, reading our parameters ``layer_0 .. layer_15``."""

    def conv(i, h):
        kernel = params[f"layer_{i}"]["kernel"]
        layer = nn.Conv(kernel.shape[-1], (3, 3), padding=((1, 1), (1, 1)))
        return layer.apply({"params": params[f"layer_{i}"]}, h)

    i = 0
    for _ in range(3):
        x = nn.max_pool(conv(i, x), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        i += 1
        for _ in range(2):
            x = x + conv(i + 1, nn.relu(conv(i, nn.relu(x))))
            i += 2
    x = nn.relu(x).reshape((x.shape[0], -1))
    dense = params[f"layer_{i}"]
    return nn.relu(x @ dense["kernel"] + dense["bias"])


@pytest.mark.parametrize("size", [64, 9, 10])
def test_max_pool_is_pytorchs_3x3_stride_2_padding_1(size):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))
    ref = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    out = max_pool_3x3_s2(x)
    assert out.shape == ref.shape == (2, (size + 1) // 2, (size + 1) // 2, 3)
    np.testing.assert_array_equal(out, ref)
    g = jax.grad(lambda v: (max_pool_3x3_s2(v) ** 2).sum())(x)
    g_ref = jax.grad(
        lambda v: (nn.max_pool(v, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))) ** 2).sum()
    )(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)


def test_torso_equals_an_independent_flax_computation_with_its_gradients():
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 20, 20, 3))
    spec = NetworkSpec(torso="impala_cnn", hidden_sizes=(8,), activation="relu")
    torso = Torso(spec)
    params = torso.init(jax.random.PRNGKey(1), x)["params"]
    params = jax.tree.map(lambda a: a + 0.05, params)  # non-zero biases: a misplaced one shows

    def both(params):
        ours = lambda p: torso.apply({"params": p}, x)[0]  # noqa: E731
        ref = lambda p: reference_impala(p, x)  # noqa: E731
        grads = [jax.grad(lambda p, f=f: (f(p) ** 2).mean())(params) for f in (ours, ref)]
        return ours(params), ref(params), *grads

    features, ref, g, g_ref = jax.jit(both).lower(params).compile(FAST_COMPILE)(params)
    np.testing.assert_allclose(features, ref, rtol=1e-4, atol=1e-5)
    for name in ("layer_0", "layer_7", "layer_14", "layer_15"):
        np.testing.assert_allclose(
            g[name]["kernel"], g_ref[name]["kernel"], rtol=1e-3, atol=1e-6, err_msg=name
        )


def test_procgen_frames_give_cleanrls_shapes_and_parameter_count():
    obs = jnp.zeros((2, 64, 64, 3))
    net = ActorCritic(SPEC, DiscreteActions(15))
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0), obs)
    out = jax.eval_shape(net.apply, params, obs)
    assert out.policy.shape == (2, 15) and out.value.shape == (2,)
    assert out.features["shared"].shape == (2, 256)
    acts = out.activations
    assert len(acts) == 16
    assert acts["shared/layer_0"].shape == (2, 32, 32, 16)
    assert acts["shared/layer_5"].shape == (2, 16, 16, 32)
    assert acts["shared/layer_14"].shape == (2, 8, 8, 32)
    torso = params["params"]["shared"]
    # CleanRL's ConvSequences (16, 32, 32) and Linear(2048, 256): 622,144 parameters.
    assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(torso)) == 622_144
    assert torso["layer_15"]["kernel"].shape == (8 * 8 * 32, 256)


def test_widening_activations_widen_what_the_next_conv_reads():
    spec = NetworkSpec(torso="impala_cnn", hidden_sizes=(8,), activation="crelu")
    params = jax.eval_shape(Torso(spec).init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
    params = params["params"]
    assert params["layer_1"]["kernel"].shape == (3, 3, 32, 16)  # reads crelu(stream)
    assert params["layer_5"]["kernel"].shape == (3, 3, 16, 32)  # reads the raw stream
    assert params["layer_15"]["kernel"].shape == (2 * 32, 8)  # 1x1x32 after crelu


def test_redo_recycles_along_the_chain_and_zeroes_the_next_layers_inputs():
    net = ActorCritic(NetworkSpec(torso="impala_cnn", hidden_sizes=(16,), activation="relu",
                                  shared_torso=True), DiscreteActions(3))
    obs = jax.random.uniform(jax.random.PRNGKey(0), (8, 10, 10, 3))

    def recycle(obs):
        params = net.init(jax.random.PRNGKey(1), obs)
        acts = net.apply(params, obs).activations
        new, _, recycled = redo_params(params, acts, net.init(jax.random.PRNGKey(2), obs), 1.0)
        return new["params"]["shared"], recycled

    p, recycled = jax.jit(recycle).lower(obs).compile(FAST_COMPILE)(obs)
    # tau 1: the units below their layer's mean score. A block's inner conv, one writing the
    # stream a block reads, one writing the stream the next sequence reads, a sequence's conv.
    for i in (1, 2, 4, 10):
        mask = np.asarray(recycled[f"shared/layer_{i}"])
        following = np.asarray(recycled[f"shared/layer_{i + 1}"])
        assert mask.any() and not following.all(), i
        # Weights from a recycled unit into a kept one are zero (between two recycled units
        # they are fresh, as Plasticine's ReDo has them).
        kernel = np.asarray(p[f"layer_{i + 1}"]["kernel"])
        np.testing.assert_array_equal(kernel[:, :, mask][..., ~following], 0.0)
    assert np.asarray(recycled["shared/layer_15"]).shape == (16,)


@pytest.mark.slow  # the 15-conv torso's update compiles in about 30 s on two cores
def test_one_ppo_update_with_impala_trains_every_layer():
    data = tiny(
        env={"id": "Breakout-MinAtar", "num_envs": 2},
        agent={"num_steps": 8, "num_minibatches": 2, "update_epochs": 1,
               "network": {"torso": "impala_cnn", "hidden_sizes": [16], "activation": "relu",
                           "shared_torso": True}},
        metrics={"every": 0},
        run={"total_timesteps": 64, "num_seeds": 1},
    )
    cfg = load_config(data=data)
    methods = build_methods(cfg)
    agent = PPO(cfg, make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs), methods)
    hp = jax.tree.map(jnp.asarray, traced_hp(cfg, methods))
    state = agent.init(jax.random.PRNGKey(0), hp)
    update = jax.jit(agent.update).lower(state, jnp.int32(0)).compile(FAST_COMPILE)
    new, out = update(state, jnp.int32(0))
    assert all(np.isfinite(float(out[k])) for k in ("pg_loss", "v_loss", "entropy"))
    before = state.learner.params["params"]["shared"]
    after = new.learner.params["params"]["shared"]
    assert len(before) == 16
    for name in before:
        assert not np.allclose(before[name]["kernel"], after[name]["kernel"]), name


# ---------------------------------------------------------------- the presets


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_plans_and_discounts_its_normalised_return_as_its_agent(path):
    cfg = load_config(path)
    assert plan(cfg)
    if cfg.env.normalize.reward:
        assert cfg.env.normalize.gamma == cfg.agent.hp.gamma


def _combined(tmp_path: Path, *parts: str):
    exp = tmp_path / "exp.yaml"
    # a run of 10M env steps: past the continual config's second task (2M steps each)
    exp.write_text(f"include: [{', '.join(str(ROOT / 'configs' / p) for p in parts)}]\n"
                   "run: {total_timesteps: 10000000}\n")
    cfg = load_config(exp)
    assert plan(cfg)
    return cfg


def test_atari_preset_on_an_atari_env_is_cleanrls(tmp_path):
    cfg = _combined(tmp_path, "envs/atari_pong.yaml", "agents/ppo_atari.yaml")
    assert cfg.env.id == "Pong-v5" and cfg.env.num_envs == 8 and cfg.agent.num_steps == 128
    assert cfg.agent.hp.clip_eps == 0.1 and cfg.agent.network.torso == "atari_cnn"
    assert cfg.agent.network.shared_torso and cfg.agent.anneal_lr


def test_procgen_preset_on_the_continual_config_runs_2m_steps_per_task(tmp_path):
    cfg = _combined(tmp_path, "envs/procgen_coinrun_continual.yaml", "agents/ppo_procgen.yaml")
    steps = cfg.env.scenario_options["steps_per_task"]
    # Plasticine's 2M env steps per task, whether steps_per_task counts each env's steps
    # (x 64 envs) or the member's env steps summed over its envs.
    assert 2_000_000 in (steps, steps * cfg.env.num_envs)
    assert cfg.agent.network.torso == "impala_cnn" and not cfg.agent.anneal_lr
    norm = cfg.env.normalize
    assert norm.reward and not norm.obs and norm.returns == "gym" and norm.gamma == 0.999
