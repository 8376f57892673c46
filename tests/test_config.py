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
        # on a continual env (some fire at task switches), and on a single-task env, where
        # those are refused as never firing
        continual = {"scenario": "permuted_obs", "scenario_options": {"steps_per_task": 5000}}
        plan(load_config(data={**data, "env": continual}))
        try:
            plan(load_config(data=data))
        except ConfigError as e:
            assert "can never fire: env.scenario='none' has a single task" in str(e)
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


# ---------------------------------------------------------------- found by the config fuzzer
# (tests/test_config_fuzz.py): each input below raised something other than a ConfigError.


def _refused(data, message, overrides=()):
    with pytest.raises(ConfigError) as err:
        plan(load_config(data=data, overrides=overrides))
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"env.id.x": [0]}, "'env.id' is 'CartPole-v1', not a section, so it has no key 'x'"),
        ({"agent.hp.lr.x": [0]}, "'agent.hp.lr' is 0.00025, not a section"),
        ({1: [0]}, "sweep: key 1 is not a name (a string)"),
        ({None: [0]}, "sweep: key None is not a name (a string)"),
        ({"": [0]}, "sweep: key '' is not a dotted config key"),
    ],
)
def test_sweep_keys_through_a_value_or_not_strings_are_refused(sweep, message):
    from tests.conftest import tiny

    data = tiny(agent={"hp": {"lr": 0.00025}})
    _refused({**data, "sweep": sweep}, message)


def test_an_override_through_a_list_item_that_is_not_a_section_is_refused():
    from tests.conftest import tiny

    _refused({**tiny(), "methods": ["l2"]}, "'methods.0' is 'l2', not a section",
             ["methods.0.hp.coef=1"])


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_integer_field_refuses_inf_and_nan(value):
    from tests.conftest import tiny

    _refused(tiny(agent={"num_steps": value}),
             f"agent.num_steps: expected an integer, got {value!r}")


@pytest.mark.parametrize(
    "value, message",
    [(10**400, "agent.hp.clip_eps=1000"),
     (1e300, "agent.hp.clip_eps=1e+300 does not fit a float32")],
)
def test_a_float_field_refuses_values_beyond_float32(value, message):
    from tests.conftest import tiny

    _refused(tiny(agent={"hp": {"clip_eps": value}}), message)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps_per_task": float("inf")},
         "env.scenario_options.steps_per_task: expected an integer, got inf"),
        ({"steps_per_task": 4, "num_tasks": float("inf")},
         "env.scenario_options.num_tasks: expected an integer, got inf"),
        ({"steps_per_task": 4, "num_tasks": 10**9},
         "env.scenario_options.num_tasks=1000000000 is out of range; allowed: [1, 10000]"),
        ({"steps_per_task": 10**30}, "steps_per_task=1000000000000000000000000000000 is out"),
        ({"steps_per_task": 4, "mode": "pixel"},
         "env.scenario_options.mode='pixel' is not allowed (did you mean 'pixels'?)"),
        ({"steps_per_task": 4, "seed": "x"}, "env.scenario_options.seed: expected an integer"),
        ({"steps_per_task": 4, "patch_size": 0}, "patch_size=0 is out of range"),
    ],
)
def test_scenario_option_values_are_checked_at_load(options, message):
    from tests.conftest import tiny

    env = {"backend": "gymnax", "id": "CartPole-v1", "num_envs": 4, "scenario": "permuted_obs",
           "scenario_options": options}
    _refused({**tiny(), "env": env}, message)


@pytest.mark.parametrize(
    "games, message",
    [(7, "games: expected a non-empty list of names, got 7"),
     ([], "games: expected a non-empty list of names, got []"),
     (["Breakout", 3], "games: expected a non-empty list of names")],
)
def test_game_sequence_games_must_be_a_list_of_names(games, message):
    from tests.conftest import tiny

    env = {"backend": "gymnax", "id": "MinAtar", "num_envs": 4, "scenario": "game_sequence",
           "scenario_options": {"steps_per_task": 4, "games": games}}
    _refused({**tiny(), "env": env}, message)


def test_scenario_option_value_checks_match_the_adapters():
    from plasticine_jax.envs.game_sequence import CHANNEL_LAYOUTS
    from plasticine_jax.envs.permuted import MODES
    from plasticine_jax.envs.validate import OPTION_VALUES, SCENARIO_OPTIONS

    assert OPTION_VALUES["mode"][1] == MODES
    assert OPTION_VALUES["channels"][1] == CHANNEL_LAYOUTS
    assert {o for opts in SCENARIO_OPTIONS.values() for o in opts} == set(OPTION_VALUES)


@pytest.mark.parametrize(
    "hp, message",
    [
        ({"coef": "abc"}, "methods.0.hp.coef: expected a number, got 'abc'"),
        ({"coef": [1, 2]}, "methods.0.hp.coef: expected a number, got [1, 2]"),
        ({"coef": None}, "methods.0.hp.coef: expected a number, got None"),
        ({"coef": True}, "methods.0.hp.coef: expected a number, got True"),
        ({"coef": float("nan")}, "methods.0.hp.coef: expected a finite number, got nan"),
        ({"coef": 1e300}, "methods.0.hp.coef=1e+300 does not fit a float32"),
        ({1: 0.1, "x": 0.2}, "methods.0.hp: key 1 is not a name (a string)"),
    ],
)
def test_method_hp_values_must_be_finite_numbers(hp, message):
    from tests.conftest import tiny

    _refused({**tiny(), "methods": [{"name": "l2", "hp": hp}]}, message)


def test_a_method_hp_swept_to_a_string_is_refused():
    from tests.conftest import tiny

    _refused({**tiny(), "methods": [{"name": "l2"}], "sweep": {"methods.0.hp.coef": [0.1, "x"]}},
             "methods.0.hp.coef: expected a number, got 'x'")


def test_seeds_are_bounded():
    from tests.conftest import tiny

    _refused(tiny(run={"num_seeds": 10**20}), "run.num_seeds=100000000000000000000 is out of range")
    _refused(tiny(run={"seed": 2**63 - 1, "num_seeds": 2}), "exceeds the largest PRNG seed")


def test_updates_must_fit_an_int32_counter():
    from tests.conftest import tiny

    _refused(tiny(run={"total_timesteps": 10**20}), "update counters are int32")


def test_continual_backprop_refuses_an_activation_of_another_width():
    from tests.conftest import tiny

    _refused({**tiny(), "methods": [{"name": "crelu"}, {"name": "continual_backprop"}]},
             "method 'continual_backprop' needs the network's activation in ('relu'")
    _refused({**tiny(), "methods": [{"name": "continual_backprop",
                                    "options": {"activation_width": 3}}]},
             "no network activation suits its options {'activation_width': 3}")
    cfg = load_config(data={**tiny(), "methods": [
        {"name": "crelu"}, {"name": "continual_backprop", "options": {"activation_width": 2}}]})
    assert len(plan(cfg)) == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["methods=[{name: layer_reset}]"],
         "methods.0 (layer_reset): schedule=['at_task_switch'] can never fire: env.scenario="
         "'none' has a single task. Use options: {schedule: every_k_updates}"),
        (["methods=[{name: opt_reset, options: {schedule: at_task_fraction}}]"],
         "schedule=['at_task_fraction'] can never fire"),
        (["env.scenario=permuted_obs", "env.scenario_options={steps_per_task: 256}"],
         "run.total_timesteps=256 never reaches the second task of scenario 'permuted_obs': "
         "env.scenario_options.steps_per_task=256"),
        (["methods=[{name: hl_gauss, hp: {v_max: 100.0}}]"],
         "methods.0 (hl_gauss): set hp ['v_min'], the support of the categorical critic"),
        (["env.scenario=permuted_obs", "env.scenario_options={steps_per_task: 6}"],
         "steps_per_task=6 (env steps per member, summed over its envs) is not a multiple "
         "of env.num_envs=4; use 4 or 8"),
    ],
)
def test_runs_that_cannot_do_what_they_ask_are_refused(overrides, message):
    from tests.conftest import tiny

    with pytest.raises(ConfigError) as err:
        from plasticine_jax.runner.loop import build_programs

        build_programs(plan(load_config(data=tiny(), overrides=overrides)))
    assert message in str(err.value)


def test_task_schedules_are_fine_where_tasks_switch():
    from tests.conftest import tiny

    cfg = load_config(data=tiny(), overrides=[
        "env.scenario=permuted_obs", "env.scenario_options={steps_per_task: 128}",
        "methods=[{name: layer_reset}, {name: opt_reset}]"])
    assert [m.name for m in cfg.methods] == ["layer_reset", "opt_reset"]


@pytest.mark.parametrize(
    "section, message",
    [
        ({"env": {"backend": "gymnax", "id": "CartPole-v1", "num_envs": 4, "options": {1: 0}}},
         "env.options: key 1 is not a name (a string)"),
        ({"methods": [{"name": "parseval", "options": {"layers": [{None: 1}]}}]},
         "methods.0.options.layers.0: key None is not a name (a string)"),
    ],
)
def test_mapping_keys_must_be_names(section, message):
    from tests.conftest import tiny

    _refused({**tiny(), **section}, message)


@pytest.mark.parametrize(
    "options, message",
    [
        # the run-feasibility check read this schedule before the method refused it
        ({"schedule": 0, " schedule": 1},
         "methods.0 (continual_backprop): method 'continual_backprop': option schedule=0 "
         "must be a string or a list of strings"),
        ({" schedule": 1}, "method 'continual_backprop': unknown option ' schedule' (did you "
                           "mean 'schedule'?); its options are ['schedule',"),
        ({"schedule": {"every_update": 1}}, "option schedule={'every_update': 1} must be a "
                                            "string or a list of strings"),
    ],
)
def test_method_options_are_checked_before_the_run_feasibility_check(options, message):
    from tests.conftest import tiny

    _refused({**tiny(), "methods": [{"name": "continual_backprop", "options": options}]},
             message)


def test_a_huge_batch_is_refused_at_once():
    import time

    from tests.conftest import tiny

    t0 = time.perf_counter()
    # listing the batch's divisors for the message used to count up to the batch
    _refused(tiny(env={"num_envs": 10**30}, run={"total_timesteps": 10**40}),
             "observations per rollout; batch indices are int32, so at most 2147483647")
    _refused(tiny(env={"num_envs": 2**20 + 1}, agent={"num_steps": 1, "num_minibatches": 3},
                  run={"total_timesteps": 2**21}),
             "pick num_minibatches from the divisors of 1048577, e.g. [1, 17, 61681]")
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize(
    "method, message",
    [
        # a string where a list is expected was read letter by letter ("layer 'l' not found")
        ({"name": "parseval", "options": {"layers": "last"}},
         "methods.0 (parseval): method 'parseval': option layers='last' must be a list of "
         "strings"),
        ({"name": "redo", "options": {"torsos": "actor"}},
         "option torsos='actor' must be a list of strings or null"),
        ({"name": "redo", "options": {"reset_counts": "yes"}},
         "option reset_counts='yes' must be true or false"),
        ({"name": "trac", "options": {"betas": ["a"]}}, "option betas=['a'] must be a list of "
                                                        "numbers"),
        ({"name": "redo", "options": {"schedul": "never"}},
         "unknown option 'schedul' (did you mean 'schedule'?)"),
        # overflowed an int32 while tracing
        ({"name": "hl_gauss", "options": {"num_bins": 10**9}, "hp": {"v_min": 0, "v_max": 1}},
         "hl_gauss: num_bins=1000000000; it needs 2 to 10000 bins"),
        # raised while tracing: the network has only these two heads
        ({"name": "plasticity_injection",
          "options": {"heads": ["nope"], "schedule": "every_k_updates"}},
         "plasticity_injection: heads=['nope']; name 'heads' (all of them) or some of"),
        ({"name": "plasticity_injection", "options": {"heads": []}}, "heads=[]; name"),
    ],
)
def test_method_options_are_checked_against_the_factory(method, message):
    from tests.conftest import tiny

    _refused({**tiny(agent={"network": {"hidden_sizes": [8], "activation": "relu"}}),
              "methods": [method]}, message)


@pytest.mark.parametrize("sizes, message", [
    ([4, 0], "agent.network.hidden_sizes.1=0 is out of range; allowed: [1, inf]"),
    ([-3], "agent.network.hidden_sizes.0=-3 is out of range; allowed: [1, inf]"),
])
def test_hidden_widths_are_positive(sizes, message):
    # planned and built, then failed while tracing (IndexError, XLA's slice TypeError)
    from tests.conftest import tiny

    _refused(tiny(agent={"network": {"hidden_sizes": sizes}}), message)


def test_make_schedule_refuses_what_is_not_a_name_or_a_list():
    from plasticine_jax.methods.schedules import make_schedule

    with pytest.raises(ValueError, match="a schedule is a name or a list of names, got 0"):
        make_schedule(0)


@pytest.mark.parametrize(
    "options, message",
    [
        # each was built, then failed while tracing the env's reset and step
        ({"max_steps_in_episode": "abc"},
         "env.options.max_steps_in_episode: CartPole-v1's max_steps_in_episode is an int32; "
         "expected an integer of magnitude at most 2147483647, got 'abc'"),
        ({"max_steps_in_episode": 10**30}, "max_steps_in_episode is an int32"),
        ({"max_steps_in_episode": 2.5}, "max_steps_in_episode is an int32"),
        ({"gravity": None}, "env.options.gravity: CartPole-v1's gravity is a float32; expected "
                            "a finite number of magnitude at most 3.403e+38, got None"),
        ({"gravity": [1, 2]}, "got [1, 2]"),
        ({"gravity": float("nan")}, "got nan"),
    ],
)
def test_gymnax_env_params_options_are_type_checked(options, message):
    from tests.conftest import tiny

    _refused(tiny(env={"options": options}), message)


def test_gymnax_env_params_options_of_the_right_type_are_used():
    from plasticine_jax.runner.loop import build_programs
    from tests.conftest import tiny

    cfg = load_config(data=tiny(env={"options": {"gravity": 12, "max_steps_in_episode": 50}}))
    (program,) = build_programs(plan(cfg))
    params = program.agent.env._params
    assert (params.gravity, params.max_steps_in_episode) == (12, 50)


@pytest.mark.parametrize("agent", ["ppo", "dqn", "c51", "pqn", "sac", "td3"])
def test_a_partial_network_override_keeps_the_agents_own_network_defaults(agent):
    # PQN's default network is ReLU + LayerNorm, DQN's ReLU 120-84, SAC/TD3's ReLU 256-256:
    # overriding one key must change that key only, not fall back to the generic tanh MLP.
    import dataclasses

    from plasticine_jax.config import schema

    own = {
        "ppo": schema.PPOConfig,
        "dqn": schema.DQNConfig,
        "c51": schema.C51Config,
        "pqn": schema.PQNConfig,
        "sac": schema.SACConfig,
        "td3": schema.TD3Config,
    }[agent]().network
    got = load_config(
        None, [f"agent.name={agent}", "agent.network.hidden_sizes=[64]", "metrics.probe_size=32"]
    ).agent.network
    assert got == dataclasses.replace(own, hidden_sizes=(64,))
    if agent == "pqn":
        assert (got.activation, got.norm) == ("relu", "layernorm")


def test_an_agent_of_another_name_does_not_inherit_the_default_agents_keys():
    # agent's default is PPO; a mapping naming another agent replaces it whole, so PPO-only
    # keys are not merged in (DQN would refuse them as unknown).
    cfg = load_config(None, ["agent.name=dqn", "metrics.probe_size=32"])
    assert cfg.agent.name == "dqn" and not hasattr(cfg.agent, "num_minibatches")
