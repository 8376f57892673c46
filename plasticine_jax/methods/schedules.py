"""Traced schedules: when an intervention fires.

A schedule is ``(events, hp) -> bool[]``. Its numbers (periods, fractions) are read from the
method's traced ``hp`` under keys chosen by the factory, so a grid may sweep them inside one
compiled program. Schedules compose with ``any_of`` / ``all_of`` / ``negate``.

``SCHEDULES`` maps the names configs use (``every_k_updates``, ``at_task_switch``,
``at_task_fraction``, ``every_update``, ``never``) to ``(factory, hp_defaults)``;
``make_schedule`` builds one (or the union of several) from a name or a list of names, so a
method offers its schedule as a static option and merges the defaults into its ``hp``.

Conventions (see ``methods.base.Events``): ``update_step`` counts updates *including* the
current one, so ``every_k_updates`` with period k fires after updates k, 2k, 3k, ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from plasticine_jax.methods.base import HP, Events

Array = jax.Array
Schedule = Callable[[Events, HP], Array]


def every_k_updates(period_key: str = "period") -> Schedule:
    """Fires after every ``hp[period_key]``-th update (``update_step % k == 0``).

    A period ``<= 0`` never fires, so a sweep may switch the intervention off.
    """

    def schedule(events: Events, hp: HP) -> Array:
        k = jnp.asarray(hp[period_key]).astype(jnp.int32)
        step = jnp.asarray(events.update_step).astype(jnp.int32)
        return (k > 0) & (step > 0) & (step % jnp.maximum(k, 1) == 0)

    return schedule


def at_update(at_key: str = "at") -> Schedule:
    """Fires once, after update ``hp[at_key]`` (1-based; ``update_step == at``): a one-off
    intervention at a fixed point of the run (plasticity injection as its reference DQN
    injects once). A value ``<= 0`` never fires."""

    def schedule(events: Events, hp: HP) -> Array:
        at = jnp.asarray(hp[at_key]).astype(jnp.int32)
        return (at > 0) & (jnp.asarray(events.update_step).astype(jnp.int32) == at)

    return schedule


def every_update() -> Schedule:
    """Fires after every update (continual backprop, the masks of sparse training)."""

    def schedule(events: Events, hp: HP) -> Array:
        del events, hp
        return jnp.ones((), bool)

    return schedule


def never() -> Schedule:
    """Never fires."""

    def schedule(events: Events, hp: HP) -> Array:
        del events, hp
        return jnp.zeros((), bool)

    return schedule


def at_task_switch() -> Schedule:
    """Fires on the update whose rollout saw a task switch (``events.task_switched``)."""

    def schedule(events: Events, hp: HP) -> Array:
        del hp
        return jnp.asarray(events.task_switched, bool)

    return schedule


def at_task_fraction(fraction_key: str = "task_fraction") -> Schedule:
    """Fires once per task, on the update during which ``task_step`` crosses ``f * T``.

    With ``T = events.steps_per_task`` and ``f = hp[fraction_key]`` in ``[0, 1)``, the
    threshold is ``c = f * T`` env steps (per env) into the task. An update covers ``R``
    env steps per env, so it crossed ``c`` when ``task_step - R < c <= task_step``; an update
    in which the task switched has ``task_step < R`` and fires iff ``c <= task_step``.
    ``R`` is ``events.rollout_steps`` (the agent's rollout length). Never fires on a
    single-task scenario (``T == 0``).
    """

    def schedule(events: Events, hp: HP) -> Array:
        f = jnp.asarray(hp[fraction_key], jnp.float32)
        T = jnp.asarray(events.steps_per_task, jnp.float32)
        R = jnp.asarray(events.rollout_steps, jnp.float32)
        t = jnp.asarray(events.task_step, jnp.float32)
        c = jnp.floor(f * T)
        return (T > 0) & (t - R < c) & (c <= t)

    return schedule


def any_of(*schedules: Schedule) -> Schedule:
    """Fires when any of ``schedules`` fires (the union)."""

    def schedule(events: Events, hp: HP) -> Array:
        out = jnp.zeros((), bool)
        for s in schedules:
            out = out | jnp.asarray(s(events, hp), bool)
        return out

    return schedule


def all_of(*schedules: Schedule) -> Schedule:
    """Fires when all of ``schedules`` fire (the intersection)."""

    def schedule(events: Events, hp: HP) -> Array:
        out = jnp.ones((), bool)
        for s in schedules:
            out = out & jnp.asarray(s(events, hp), bool)
        return out

    return schedule


def negate(inner: Schedule) -> Schedule:
    """Fires when ``inner`` does not."""

    def schedule(events: Events, hp: HP) -> Array:
        return ~jnp.asarray(inner(events, hp), bool)

    return schedule


def before_update(until_key: str = "until") -> Schedule:
    """True while ``update_step <= hp[until_key]`` (a negative value means forever)."""

    def schedule(events: Events, hp: HP) -> Array:
        until = jnp.asarray(hp[until_key]).astype(jnp.int32)
        return (until < 0) | (jnp.asarray(events.update_step).astype(jnp.int32) <= until)

    return schedule


# name -> (factory with no arguments, traced hp defaults it reads).
SCHEDULES: dict[str, tuple[Callable[[], Schedule], Mapping[str, float]]] = {
    "every_k_updates": (every_k_updates, {"period": 1000.0}),
    "every_update": (every_update, {}),
    "at_update": (at_update, {"at": 0.0}),
    "at_task_switch": (at_task_switch, {}),
    "at_task_fraction": (at_task_fraction, {"task_fraction": 0.5}),
    "never": (never, {}),
}


def make_schedule(
    names: str | Sequence[str], defaults: Mapping[str, float] | None = None
) -> tuple[Schedule, dict[str, float]]:
    """Builds a schedule from a name or the union of several names.

    Args:
      names: a key of ``SCHEDULES`` or a sequence of them (the union fires when any does).
      defaults: overrides of the schedules' traced defaults (a method's own preferred
        period, say).

    Returns:
      ``(schedule, hp_defaults)``; the method merges ``hp_defaults`` into its ``hp``.
    """
    if not isinstance(names, str | list | tuple):
        raise ValueError(f"a schedule is a name or a list of names, got {names!r}")
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError(f"a schedule needs at least one name; choose from {sorted(SCHEDULES)}")
    parts, hp = [], {}
    for name in names:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
        factory, hp_defaults = SCHEDULES[name]
        parts.append(factory())
        hp.update(hp_defaults)
    for k, v in (defaults or {}).items():
        if k in hp:
            hp[k] = float(v)
    return (parts[0] if len(parts) == 1 else any_of(*parts)), hp
