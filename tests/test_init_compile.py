"""``runner.program.init_compiler_options``: init compiled at XLA's optimisation level 0
unless it runs a replay prefill."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from plasticine_jax.config import load_config
from plasticine_jax.runner import program as program_module
from plasticine_jax.runner.plan import plan
from tests.conftest import tiny


def test_options_by_prefill():
    assert program_module.init_compiler_options(0) == {"xla_backend_optimization_level": 0}
    assert program_module.init_compiler_options(1000) is None


def test_programs_pass_their_prefill(monkeypatch):
    seen = []
    real = program_module.init_compiler_options
    monkeypatch.setattr(program_module, "init_compiler_options",
                        lambda n: seen.append(n) or real(n))  # fmt: skip
    program_module.Program(plan(load_config(data=tiny()))[0])
    dqn = tiny(agent={"name": "dqn", "buffer_size": 256, "learning_starts": 64,
                      "num_steps": 10})  # fmt: skip
    del dqn["agent"]["num_minibatches"], dqn["agent"]["update_epochs"]
    program = program_module.Program(plan(load_config(data=dqn))[0])
    assert seen == [0, program.prefill_steps] and program.prefill_steps > 0


def test_level_0_init_is_the_same_initialisation():
    """The level-0 init gives the optimised build's states up to float32 rounding."""
    prog = program_module.Program(plan(load_config(data=tiny()))[0])
    keys, hp = prog._keys(), prog.group.hp
    fast = jax.tree.leaves(prog.init().members)
    init = lambda k, h: jax.vmap(prog.agent.init)(k, h)  # noqa: E731
    optimised = jax.tree.leaves(jax.jit(init, compiler_options={
        "xla_backend_optimization_level": 2})(keys, hp))  # fmt: skip
    assert len(fast) == len(optimised)
    for a, b in zip(fast, optimised, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        elif a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, b)


def test_init_shapes_trace_what_init_returns():
    """``init_shapes`` works where ``jax.eval_shape(program.init)`` is refused (init's
    compiler options), and gives the shapes and dtypes ``init`` returns."""
    prog = program_module.Program(plan(load_config(data=tiny()))[0])
    assert program_module.init_compiler_options(prog.prefill_steps)  # options are set
    with pytest.raises(ValueError, match="compiler_options"):
        jax.eval_shape(prog.init)
    shapes, states = prog.init_shapes(), prog.init()
    assert jax.tree.structure(shapes) == jax.tree.structure(states)
    for s, a in zip(jax.tree.leaves(shapes), jax.tree.leaves(states), strict=True):
        assert (s.shape, s.dtype) == (a.shape, a.dtype)
