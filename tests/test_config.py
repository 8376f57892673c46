"""Config loading: every shipped YAML builds; bad input is refused with a precise message."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.config.load import parse_override
from plasticine_jax.runner.plan import plan

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(
    p for p in (ROOT / "configs").rglob("*.yaml")
    if p.parent.name not in ("envs", "methods")
)  # fmt: skip
FRAGMENTS = sorted((ROOT / "configs").glob("envs/*.yaml")) + sorted(
    (ROOT / "configs").glob("methods/*.yaml")
)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_experiment_yaml_builds(path):
    cfg = load_config(path)
    groups = plan(cfg)
    assert sum(len(g.members) for g in groups) >= cfg.run.num_seeds


@pytest.mark.parametrize("path", FRAGMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fragment_yaml_parses_into_a_config(path):
    data = yaml.safe_load(path.read_text())
    if "methods" in data:  # method fragments are checked against the method registry
        cfg = load_config(data=data)
        plan(cfg)
    else:
        from plasticine_jax.config.load import from_dict
        from plasticine_jax.config.schema import ExperimentConfig

        from_dict(ExperimentConfig, data)


def test_there_are_experiment_configs():
    assert len(EXPERIMENTS) >= 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["agent.hp.lrr=0.1"], "unknown key 'agent.hp.lrr' (did you mean 'lr'?)"),
        (["agent.num_steps=abc"], "agent.num_steps: expected an integer, got 'abc'"),
        (["agent.num_steps=2.5"], "agent.num_steps: expected an integer"),
        (["agent.hp.gamma=1.5"], "agent.hp.gamma=1.5 is out of range; allowed: [0.0, 1.0]"),
        (["agent.network.norm=batch"], "agent.network.norm='batch' is not allowed"),
        (["agent.num_minibatches=3"], "is not divisible by agent.num_minibatches=3"),
        (["metrics.probe_size=1000"], "metrics.probe_size=1000 exceeds the rollout batch"),
        (["run.total_timesteps=10"], "is less than one update"),
        (["agent.network.activation=relu6"], "activation='relu6' is unknown"),
        (["sweep.agent.hp.gamma=[0.9,2.0]"], "sweep.agent.hp.gamma value 2.0"),
        (["sweep.agent.hp.nope=[1]"], "unknown key 'agent.hp.nope'"),
        (["agent.hp.lr"], "is not of the form key=value"),
        (["methods=[{name: no_such_method}]"], "unknown method 'no_such_method'"),
        (["run.progress=yes please"], "run.progress: expected true or false"),
        (["env.id=Nope-v1"], "env.id='Nope-v1' is not a gymnax environment; choose one of:"),
        (["env.id=CartPol-v1"], "(did you mean 'CartPole-v1'?)"),
        (["env.backend=craftax"], "is not a craftax environment; backend 'gymnax'"),
        (["env.id=Craftax-Classic-Symbolic-v1"], "backend 'craftax' has it: set env.backend="),
        (["env.backend=gym"], "env.backend='gym' is unknown (did you mean 'gymnax'?)"),
        (["env.scenario=permuted"], "env.scenario='permuted' is unknown (did you mean"),
        (["env.scenario=dynamics_shift"], "runs on the 'brax' backend, not env.backend="),
        (["env.scenario=permuted_obs", "env.scenario_options={steps_per_task: 8, sed: 1}"],
         "env.scenario_options.sed is not an option of scenario 'permuted_obs' (did you mean"),
        (["env.scenario=permuted_obs"], "env.scenario_options.steps_per_task is required"),
        (["env.id=MinAtar", "env.scenario=game_sequence",
          "env.scenario_options={steps_per_task: 8, games: [Breakout, Pong]}"],
         "games.1='Pong' is not a MinAtar game"),
        (["sweep.env.id=[CartPole-v1, Nope-v1]"], "sweep.env.id value 'Nope-v1': env.id="),
    ],
)
def test_bad_config_is_refused_with_the_key_named(tiny_config, overrides, message):
    from tests.conftest import tiny

    with pytest.raises(ConfigError) as err:
        cfg = load_config(data=tiny(), overrides=overrides)
        plan(cfg)
    assert message in str(err.value)


def test_overrides_parse_yaml_and_scientific_notation():
    assert parse_override("agent.hp.lr=3e-4") == (["agent", "hp", "lr"], 3e-4)
    assert parse_override("sweep.agent.hp.lr=[1, 2]") == (["sweep", "agent.hp.lr"], [1, 2])
    assert parse_override("run.name=abc") == (["run", "name"], "abc")


def test_include_composes_and_overrides_win(tmp_path):
    (tmp_path / "base.yaml").write_text("agent: {num_steps: 64, hp: {lr: 0.1}}\n")
    (tmp_path / "exp.yaml").write_text("include: [base.yaml]\nagent: {hp: {lr: 0.2}}\n")
    cfg = load_config(tmp_path / "exp.yaml", ["agent.hp.gamma=0.5"])
    assert (cfg.agent.num_steps, cfg.agent.hp.lr, cfg.agent.hp.gamma) == (64, 0.2, 0.5)


def test_sweep_over_traced_hp_is_one_group_static_key_splits(tiny_config):
    cfg = load_config(
        data={**__import__("tests.conftest").conftest.tiny(), "sweep": {
            "agent.hp.lr": [1e-3, 3e-4], "agent.hp.ent_coef": [0.0, 0.01]}}
    )
    groups = plan(cfg)
    assert len(groups) == 1 and len(groups[0].members) == 4 * cfg.run.num_seeds
    cfg2 = load_config(
        data={**__import__("tests.conftest").conftest.tiny(), "sweep": {
            "agent.network.hidden_sizes": [[8], [16]]}}
    )
    assert len(plan(cfg2)) == 2


def test_method_sweep_batches_compatible_methods_and_splits_structural_ones():
    from tests.conftest import tiny

    data = tiny(agent={"network": {"hidden_sizes": [16], "activation": "relu"}})
    data["sweep"] = {
        "methods": [[], [{"name": "l2"}], [{"name": "l2_init", "hp": {"coef": 0.1}}],
                    [{"name": "trac"}], [{"name": "crelu"}], [{"name": "redo"}]],
        "agent.hp.lr": [1e-3, 3e-4],
    }
    groups = plan(load_config(data=data))
    assert [sorted(m.name for m in g.methods) for g in groups] == [
        ["l2", "l2_init", "trac"], ["crelu"], ["redo"]
    ]
    g = groups[0]
    assert len(g.members) == 4 * 2 * 2  # 4 method lists x 2 lrs x 2 seeds
    assert [mc.name for mc in g.cfg.methods] == [m.name for m in g.methods]
    labels = [m.values["methods"] for m in g.members]
    coef = np.asarray(g.hp["methods"]["l2_init"]["coef"])
    # Members without L2-to-init run it at its identity value, the others at 0.1.
    for label, c in zip(labels, coef, strict=True):
        assert c == pytest.approx(0.1 if label == "l2_init(coef=0.1)" else 0.0)
    assert {m.values["agent.hp.lr"] for m in g.members} == {1e-3, 3e-4}


@pytest.mark.parametrize(
    "methods, message",
    [
        ([{"name": "crelu"}, {"name": "fourier"}], "'crelu' and 'fourier' both set"),
        ([{"name": "l2"}, {"name": "l2"}], r"\['l2'\] listed more than once"),
        ([{"name": "l2", "hp": {"lambda": 1.0}}], "unknown hyperparameter"),
    ],
)
def test_impossible_method_mixes_are_refused_before_compiling(methods, message):
    from tests.conftest import tiny

    with pytest.raises(ConfigError, match=message):
        plan(load_config(data={**tiny(), "methods": methods}))


def test_readme_user_transform_sweep_is_one_program():
    # The README's worked example: an optax transform by import path, its traced hp swept.
    cfg = load_config(
        ROOT / "configs" / "cartpole_ppo.yaml",
        [
            'methods=[{name: "tests.user_methods:scaled_sign", hp: {scale: 1.0e-3}, '
            "options: {chain: after}}]",
            "sweep.methods.0.hp.scale=[1.0e-4,1.0e-3]",
        ],
    )
    (group,) = plan(cfg)
    scale = np.asarray(group.hp["methods"]["tests.user_methods:scaled_sign"]["scale"])
    np.testing.assert_allclose(sorted(set(scale.tolist())), [1e-4, 1e-3], rtol=1e-6)
    assert len(group.members) == 2 * cfg.run.num_seeds


@pytest.mark.parametrize(
    "text, value",
    [("1e-3", 1e-3), ("1E-3", 1e-3), (".5", 0.5), ("5.", 5.0), ("1_000", 1000),
     ("1.0e-3", 1e-3), ("2e+4", 2e4), ("+.5", 0.5), ("3", 3)],
)
def test_numbers_as_people_write_them_in_files_overrides_and_sweeps(tmp_path, text, value):
    """YAML 1.1 (PyYAML) reads 1e-3 as a string; configs read it as the number."""
    from tests.conftest import tiny

    path = tmp_path / "c.yaml"
    path.write_text(f"include: []\nagent:\n  hp:\n    max_grad_norm: {text}\n")
    assert load_config(path).agent.hp.max_grad_norm == value
    cfg = load_config(data=tiny(), overrides=[f"agent.hp.max_grad_norm={text}",
                                              f"sweep.agent.hp.ent_coef=[{text}, 0.1]"])
    assert cfg.agent.hp.max_grad_norm == value and cfg.sweep["agent.hp.ent_coef"][0] == value
    big = load_config(data=tiny(), overrides=["run.total_timesteps=1E5"])
    assert big.run.total_timesteps == 100_000


def test_a_string_that_is_not_a_number_is_still_refused(tiny_config):
    with pytest.raises(ConfigError, match="agent.hp.lr: expected a number, got '1e-3x'"):
        load_config(data=__import__("tests.conftest").conftest.tiny(),
                    overrides=["agent.hp.lr=1e-3x"])


def test_method_lists_of_included_fragments_concatenate(tmp_path):
    (tmp_path / "a.yaml").write_text("methods:\n- {name: l2, hp: {coef: 0.01}}\n")
    (tmp_path / "b.yaml").write_text("methods:\n- {name: crelu}\n")
    (tmp_path / "exp.yaml").write_text(
        "include: [a.yaml, b.yaml]\nmethods:\n- {name: trac}\n"
    )
    cfg = load_config(tmp_path / "exp.yaml")
    assert [m.name for m in cfg.methods] == ["l2", "crelu", "trac"]
    assert cfg.methods[0].hp == {"coef": 0.01}
    # an override replaces the list as written
    assert [m.name for m in load_config(tmp_path / "exp.yaml", ["methods=[]"]).methods] == []
    (tmp_path / "twice.yaml").write_text("include: [a.yaml, a.yaml]\n")
    with pytest.raises(ConfigError, match="listed more than once"):
        load_config(tmp_path / "twice.yaml")
