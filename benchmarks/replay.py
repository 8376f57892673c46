"""Our replay buffer against flashbax's, side by side: add, sample and memory, vmapped.

For each member count, builds the same MinAtar-shaped experience (obs ``10x10x4`` uint8,
int32 action, float32 reward, bool terminated/truncated/valid) in both buffers, one buffer
per member, and times three compiled programs per library, each a ``lax.scan`` over
``--steps`` steps of the whole vmapped batch of members: ``add`` (one ``[N, ...]`` row per
member per step), ``sample`` (``B`` transitions per member per step) and ``add+sample``.
Programs of the two libraries alternate (A B A B ...) and the table reports median times
and flashbax / ours ratios, so load drift on a shared machine hits both alike. The buffer
is donated, so no call copies it.

What is compared. n = 1: our ``sample(n_step=1)`` (the one-step target with its truncation
and validity weights) against flashbax's flat buffer (a trajectory buffer sampling pairs).
n = 3: ours against flashbax's trajectory buffer sampling ``[B, 4]`` sequences, raw: the
n-step target would still have to be computed on top of flashbax's output, so its column
is a lower bound on what an n-step flashbax sampler costs. Memory: the bytes of one
member's buffer state (``jax.eval_shape``, nothing allocated), against the naive layout
(float32 obs and next_obs per transition), and XLA's temporary bytes for the compiled
``add+sample`` program (a copy of the buffer would show up there).

flashbax must not go into the project venv (it may pull another jax). Run it from its own:

    python3 -m venv /tmp/fbxvenv
    /tmp/fbxvenv/bin/pip install jax==0.9.2 jaxlib==0.9.2 flashbax
    PYTHONPATH=/work/main /tmp/fbxvenv/bin/python benchmarks/replay.py --members 8 32

Without flashbax it measures our buffer alone.
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.agents import replay as R

OBS_SHAPE = (10, 10, 4)
MODES = ("add", "sample", "add+sample")


def row_data(steps: int, members: int, num_envs: int) -> dict[str, jax.Array]:
    """``[steps, members, num_envs, ...]`` MinAtar-like rows: 0/1 obs, rare episode ends."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    lead = (steps, members, num_envs)
    return {
        "obs": jax.random.bernoulli(k[0], 0.1, (*lead, *OBS_SHAPE)).astype(jnp.uint8),
        "action": jax.random.randint(k[1], lead, 0, 6),
        "reward": jax.random.normal(k[2], lead),
        "terminated": jax.random.bernoulli(k[3], 0.01, lead),
        "truncated": jax.random.bernoulli(k[4], 0.002, lead),
        "valid": jnp.ones(lead, bool),
    }


def checksum(tree) -> jax.Array:
    """A scalar depending on every sampled leaf, so XLA cannot drop the sampling."""
    return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree_util.tree_leaves(tree))


class Library:
    """One buffer implementation: ``init() -> states``, ``add(states, row)``, ``sample``."""

    def __init__(self, name: str, init: Callable, add: Callable, sample: Callable):
        self.name, self.init, self.add, self.sample = name, init, add, sample


def ours(capacity: int, num_envs: int, batch: int, n_step: int, members: int) -> Library:
    def init():
        one = lambda _: R.init_buffer(capacity, num_envs, OBS_SHAPE, jnp.uint8)
        return jax.vmap(one)(jnp.arange(members))

    def add(buf, row):
        return jax.vmap(R.add)(
            buf, row["obs"], row["action"], row["reward"], row["terminated"],
            row["truncated"], row["valid"],
        )  # fmt: skip

    def sample(buf, keys):
        fn = functools.partial(R.sample, batch_size=batch, n_step=n_step, gamma=0.99)
        return jax.vmap(fn)(buf, keys)

    return Library("ours", init, add, sample)


def flashbax(capacity: int, num_envs: int, batch: int, n_step: int, members: int) -> Library:
    import flashbax as fbx

    if n_step == 1:
        name = "flashbax flat"
        buffer = fbx.make_flat_buffer(
            max_length=capacity, min_length=num_envs * 2, sample_batch_size=batch,
            add_batch_size=num_envs,
        )  # fmt: skip
        add_one = buffer.add
    else:
        name = "flashbax trajectory"
        buffer = fbx.make_trajectory_buffer(
            max_length_time_axis=capacity // num_envs, min_length_time_axis=n_step + 1,
            sample_batch_size=batch, add_batch_size=num_envs,
            sample_sequence_length=n_step + 1, period=1,
        )  # fmt: skip
        add_one = lambda state, row: buffer.add(state, jax.tree.map(lambda x: x[:, None], row))
    example = jax.tree.map(lambda x: x[0, 0, 0], row_data(1, 1, 1))

    def init():
        return jax.vmap(lambda _: buffer.init(example))(jnp.arange(members))

    return Library(
        name, init, jax.vmap(add_one), lambda s, k: jax.vmap(buffer.sample)(s, k).experience
    )


def program(lib: Library, mode: str, members: int) -> Callable:
    """jit of a scan over the data's steps doing ``mode`` (add, sample or add+sample)."""

    def step(carry, xs):
        state, acc = carry
        row, key = xs
        if "add" in mode:
            state = lib.add(state, row)
        if "sample" in mode:
            acc = acc + checksum(lib.sample(state, jax.random.split(key, members)))
        return (state, acc), None

    def run(state, data, key):
        keys = jax.random.split(key, jax.tree_util.tree_leaves(data)[0].shape[0])
        (state, acc), _ = jax.lax.scan(step, (state, jnp.zeros(())), (data, keys))
        return state, acc

    return jax.jit(run, donate_argnums=0)


def prefill(lib: Library, capacity: int, num_envs: int, members: int):
    """A full buffer: ``capacity // num_envs`` rows, added in scans of the benchmark data."""
    chunk = 500
    data = row_data(chunk, members, num_envs)
    fill = jax.jit(
        lambda s, d: jax.lax.scan(lambda s, r: (lib.add(s, r), None), s, d)[0], donate_argnums=0
    )
    state = jax.jit(lib.init)()
    for _ in range(-(-capacity // num_envs // chunk)):
        state = fill(state, data)
    return state


def measure(members, capacity, num_envs, batch, n_step, steps, repeats, libs):
    """Rows of median seconds per call, compile seconds and XLA temp bytes per (op, lib)."""
    data = row_data(steps, members, num_envs)
    key = jax.random.PRNGKey(1)
    states, compiled, stats = {}, {}, {}
    for make in libs:
        lib = make(capacity, num_envs, batch, n_step, members)
        states[lib.name] = prefill(lib, capacity, num_envs, members)
        for mode in MODES:
            start = time.perf_counter()
            fn = program(lib, mode, members).lower(states[lib.name], data, key).compile()
            mem = fn.memory_analysis()
            temp = getattr(mem, "temp_size_in_bytes", float("nan"))
            compiled[mode, lib.name] = fn
            stats[mode, lib.name] = {"compile": time.perf_counter() - start, "temp": temp,
                                     "times": []}  # fmt: skip
            states[lib.name], acc = fn(states[lib.name], data, key)  # warm-up
            jax.block_until_ready(acc)
    for mode in MODES:
        for r in range(repeats):  # A B A B ...
            for name in states:
                k = jax.random.fold_in(key, r)
                start = time.perf_counter()
                states[name], acc = compiled[mode, name](states[name], data, k)
                jax.block_until_ready(acc)
                stats[mode, name]["times"].append(time.perf_counter() - start)
    return {
        (mode, name): {
            "median_s": statistics.median(st["times"]),
            "compile_s": st["compile"],
            "temp": st["temp"],
            "lib": name,
        }  # fmt: skip
        for (mode, name), st in stats.items()
    }


def memory_rows(capacity: int, num_envs: int, libs) -> list[tuple[str, int]]:
    out = []
    for make in libs:
        lib = make(capacity, num_envs, 32, 1, 1)
        out.append((lib.name, R.buffer_bytes(jax.eval_shape(lib.init))))
    per = int(np.prod(OBS_SHAPE))
    naive = capacity * (2 * 4 * per + 4 + 4 + 1 + 1)  # f32 obs + next_obs, action, reward, 2 flags
    out.append(("naive: float32 obs and next_obs", naive))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, nargs="+", default=[8, 32])
    p.add_argument("--capacity", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-steps", type=int, nargs="+", default=[1, 3])
    p.add_argument("--steps", type=int, default=200, help="scan steps per timed call")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    libs = [ours]
    try:
        import flashbax as fbx  # noqa: F401

        libs.append(flashbax)
    except ImportError:
        print("flashbax not importable here: measuring our buffer alone")
    print(f"jax {jax.__version__} · {jax.default_backend()} · {platform.processor() or '?'} · "
          f"{jax.device_count()} device(s)")  # fmt: skip
    print(f"\nMemory per member, capacity {args.capacity:,}, obs {OBS_SHAPE}:")
    print("| buffer | MB per member | GB for 32 members |\n|---|---|---|")
    for name, nbytes in memory_rows(args.capacity, args.num_envs, libs):
        print(f"| {name} | {nbytes / 1e6:.1f} | {32 * nbytes / 1e9:.2f} |")

    print(f"\nN={args.num_envs} envs per member, B={args.batch}, {args.steps} scan steps per "
          f"call, median of {args.repeats} alternated calls:")  # fmt: skip
    print(
        "| members | n | op | ours ms/step | flashbax ms/step | flashbax / ours | "
        "compile s ours / fbx | XLA temp MB ours / fbx |\n|---|---|---|---|---|---|---|---|"
    )
    for members in args.members:
        for n_step in args.n_steps:
            rows = measure(members, args.capacity, args.num_envs, args.batch, n_step,
                           args.steps, args.repeats, libs)  # fmt: skip
            for mode in MODES:
                mine = rows[mode, "ours"]
                other = [r for (m, name), r in rows.items() if m == mode and name != "ours"]
                ms = lambda r: 1e3 * r["median_s"] / args.steps
                if other:
                    o = other[0]
                    print(f"| {members} | {n_step} | {mode} | {ms(mine):.3f} | {ms(o):.3f} "
                          f"({o['lib']}) | {ms(o) / ms(mine):.2f}x | {mine['compile_s']:.1f} / "
                          f"{o['compile_s']:.1f} | {mine['temp'] / 1e6:.1f} / "
                          f"{o['temp'] / 1e6:.1f} |")  # fmt: skip
                else:
                    print(
                        f"| {members} | {n_step} | {mode} | {ms(mine):.3f} | - | - | "
                        f"{mine['compile_s']:.1f} / - | {mine['temp'] / 1e6:.1f} / - |"
                    )


if __name__ == "__main__":
    main()
