"""Runs that must end well: chunks that do not divide the run, diverging members, damaged
checkpoints, a killed process, W&B steps across groups, envpool resume refusal."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import yaml

from plasticine_jax.config import ConfigError, load_config, to_dict
from plasticine_jax.runner.checkpoint import CheckpointError
from plasticine_jax.runner.loop import run
from tests.conftest import tiny

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("group", "member", "update", "env_steps", "pg_loss", "v_loss", "grad_norm")


def _rows(run_dir):
    with (Path(run_dir) / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _same_rows(a, b, keys=COMPARED):
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for k in keys:
            np.testing.assert_allclose(float(ra[k]), float(rb[k]), rtol=1e-6, err_msg=k)


def test_chunk_that_does_not_divide_the_run(tmp_path):
    # 4 updates in chunks of 3: one chunk of 3, a last chunk of 1, from the same compile
    base = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 3, "num_seeds": 1})
    ends = []
    full = run(load_config(data=base, overrides=["run.name=full"]),
               on_chunk=lambda info: ends.append(info["update"]))
    assert full.status == "finished" and full.programs_compiled == 1
    assert ends == [3, 4]
    assert [int(r["update"]) for r in _rows(full.run_dir)] == [1, 2, 3, 4]
    summary = json.loads((full.run_dir / "summary.json").read_text())
    assert summary["notes"] == full.notes == []
    part = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=1)
    assert part.status == "interrupted" and len(_rows(part.run_dir)) == 3
    _same_rows(_rows(full.run_dir), _rows(run(resume=part.run_dir).run_dir))


def test_chunk_sizer_fixed_and_by_time():
    from plasticine_jax.runner.program import ChunkSizer

    fixed = ChunkSizer(3, None)
    assert [fixed.next(r) for r in (10, 7, 4, 1)] == [3, 3, 3, 1]
    timed = ChunkSizer(100, 2.0)
    assert timed.next(1000) == 1  # its time includes the compile: not used
    assert timed.next(999, 1, 30.0) == 2
    # 2 updates in 0.1 s: 0.05 s each, 2 s wants 40, but at most 8 x 2 = 16
    assert timed.next(997, 2, 0.1) == 16
    assert timed.next(981, 16, 0.4) == 80  # 0.025 s each: 80 (under 8 x 16)
    assert timed.next(901, 80, 0.1) == 100  # the cap
    assert timed.next(50, 100, 0.1) == 50  # what remains
    assert timed.next(10, 50, 500.0) == 1  # slower than the target: one update a chunk
    assert ChunkSizer(100, 2.0).next(0) == 1 and ChunkSizer(5, None).next(2) == 2


def test_chunks_sized_by_time_share_one_compile_and_resume_exactly(tmp_path):
    # chunk_updates 0: chunks of 1, 2, then sized from the measured seconds (ChunkSizer)
    base = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 0, "num_seeds": 1,
                     "total_timesteps": 4 * 16 * 24, "chunk_seconds": 0.05})
    infos = []
    timed = run(load_config(data=base, overrides=["run.name=timed"]), on_chunk=infos.append)
    assert timed.status == "finished" and timed.programs_compiled == 1
    ends = [i["update"] for i in infos]
    lengths = np.diff([0, *ends]).tolist()
    assert ends[-1] == 24 and lengths[:2] == [1, 2]
    replay = _replayed(lengths, [i["seconds"] for i in infos], cap=24, target=0.05)
    assert lengths == replay, "the loop did not size its chunks from their measured seconds"
    fixed = run(load_config(data=base, overrides=["run.name=fixed", "run.chunk_updates=24"]))
    _same_rows(_rows(fixed.run_dir), _rows(timed.run_dir))
    part = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=2)
    assert len(_rows(part.run_dir)) == 3  # chunks of 1 and 2
    _same_rows(_rows(timed.run_dir), _rows(run(resume=part.run_dir).run_dir))


def _replayed(lengths, seconds, cap, target):
    """The lengths a fresh ChunkSizer gives from the recorded (length, seconds) pairs."""
    from plasticine_jax.runner.program import ChunkSizer

    sizer, out, done = ChunkSizer(cap, target), [], 0
    for k in range(len(lengths)):
        prev = (lengths[k - 1], seconds[k - 1]) if k else (0, 0.0)
        out.append(sizer.next(24 - done, *prev))
        done += out[-1]
    return out


NAN_METHOD = [{"name": "tests.user_methods:nan_at", "options": {"chain": "after"}}]


def test_a_diverging_member_is_frozen_flagged_and_left_out(tmp_path):
    # 2 epochs x 2 minibatches = optimizer steps 4(u-1)..4u-1 in update u: step 9 is in update 3
    base = tiny(run={"out_dir": str(tmp_path)}, methods=NAN_METHOD)
    cfg = load_config(data=base, overrides=["run.name=mixed", "sweep.methods.0.hp.step=[-1, 9]"])
    mixed = run(cfg)
    rows = _rows(mixed.run_dir)
    bad = [r for r in rows if r["sweep:methods.0.hp.step"] == "9"]
    good = [r for r in rows if r["sweep:methods.0.hp.step"] == "-1"]
    assert {int(r["update"]) for r in bad} == {1, 2, 3, 4}
    for r in bad:
        u = int(r["update"])
        assert r["diverged"] == ("1.0" if u >= 3 else "0.0")
        assert r["diverged_at"] == ("3.0" if u >= 3 else "0.0")
        assert (r["pg_loss"] == "") == (u >= 3)  # nothing non-finite written after it
    assert all(r["diverged"] == "0.0" for r in good)
    # the healthy members equal a run without the diverging setting
    clean = run(load_config(data=base, overrides=["run.name=clean", "methods.0.hp.step=-1"]))
    _same_rows(good, _rows(clean.run_dir), keys=("update", "seed", "pg_loss", "v_loss",
                                                 "grad_norm"))
    summary = json.loads((mixed.run_dir / "summary.json").read_text())
    assert [(d["seed"], d["update"]) for d in summary["diverged"]] == [(0, 3), (1, 3)]
    by_setting = {r["methods.0.hp.step"]: r for r in summary["summary"]}
    assert by_setting[9.0]["diverged"] == 2 and by_setting[-1.0]["diverged"] == 0
    assert np.isnan(by_setting[9.0]["return_mean"])  # no healthy member left to aggregate


def test_a_corrupted_checkpoint_falls_back_to_the_previous(tmp_path):
    base = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 1, "num_seeds": 1,
                     "checkpoint_every": 0})  # a checkpoint every chunk
    full = run(load_config(data=base, overrides=["run.name=full"]))
    part = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=3)
    files = sorted(p.name for p in part.run_dir.glob("checkpoint-*.ckpt"))
    assert files == ["checkpoint-g0-u2.ckpt", "checkpoint-g0-u3.ckpt"]  # the last two
    newest = part.run_dir / "checkpoint-g0-u3.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    _same_rows(_rows(full.run_dir), _rows(run(resume=part.run_dir).run_dir))


def test_no_intact_checkpoint_is_a_clear_error_and_keeps_the_rows(tmp_path):
    base = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 1, "num_seeds": 1,
                     "checkpoint_every": 0})
    part = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=2)
    before = (part.run_dir / "metrics.csv").read_text()
    for p in part.run_dir.glob("checkpoint-*.ckpt"):
        p.write_bytes(p.read_bytes()[:-7])  # truncated
    with pytest.raises(CheckpointError, match="truncated"):
        run(resume=part.run_dir)
    assert (part.run_dir / "metrics.csv").read_text() == before


@pytest.mark.timeout(600)
def test_kill_9_mid_run_then_resume_equals_uninterrupted(tmp_path):
    cfg = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 1, "name": "killed",
                    "total_timesteps": 4 * 16 * 40, "checkpoint_every": 0})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "plasticine_jax.cli", "run", str(path)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pointer = tmp_path / "killed" / "checkpoint.json"
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None:
            if pointer.exists():
                entries = json.loads(pointer.read_text())["checkpoints"]
                if entries[0]["update"] >= 3:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert len(_rows(tmp_path / "killed")) < 40 * 2
    resumed = run(resume=tmp_path / "killed")
    full = run(load_config(data=cfg, overrides=["run.name=full"]))
    _same_rows(_rows(full.run_dir), _rows(resumed.run_dir))


class _FakeRun:
    def __init__(self, log, run_id):
        self.log_calls, self.id, self.name = log, run_id, "fake"

    def define_metric(self, *a, **k):
        pass

    def log(self, values, step):
        self.log_calls.append((step, values))

    def log_artifact(self, art):
        pass

    def finish(self):
        pass


class _FakeWandb:
    """Records what the sink sends; ``init`` returns a run with the requested id."""

    def __init__(self):
        self.inits, self.logs = [], []

    def init(self, **kw):
        self.inits.append(kw)
        return _FakeRun(self.logs, kw.get("id") or f"id{len(self.inits)}")

    class Artifact:
        def __init__(self, *a, **k):
            pass

        def add_file(self, p):
            pass


def test_wandb_steps_grow_across_groups_and_resume_continues_the_run(tmp_path, monkeypatch):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    base = tiny(run={"out_dir": str(tmp_path), "num_seeds": 1}, wandb={"mode": "offline"})
    over = ["run.name=wb", "sweep.agent.network.hidden_sizes=[[8],[16]]"]
    part = run(load_config(data=base, overrides=over), stop_after_chunks=3)
    run(resume=part.run_dir)
    steps = [s for s, _ in fake.logs]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # 2 groups x 4 updates
    assert len(steps) == 8 and steps[-1] == 2 * 4 * 64
    assert fake.logs[-1][1]["env_steps"] == 4 * 64  # plotted against the group's own steps
    assert fake.inits[0].get("id") is None and fake.inits[1]["id"] == "id1"
    assert fake.inits[1]["resume"] == "allow"


def test_envpool_runs_refuse_resume_and_keep_their_rows(tmp_path):
    run_dir = tmp_path / "pool"
    run_dir.mkdir()
    cfg = load_config(data=tiny(env={"backend": "envpool", "id": "CartPole-v1"}))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    (run_dir / "metrics.csv").write_text("group,member\n0,0\n")
    with pytest.raises(ConfigError, match="envpool.*not in the checkpoint"):
        run(resume=run_dir)
    assert (run_dir / "metrics.csv").read_text() == "group,member\n0,0\n"


def test_member_sharding_that_cannot_split_evenly_says_so():
    from plasticine_jax.runner.program import member_sharding

    sharding, note = member_sharding(3, ["dev0", "dev1"])
    assert sharding is None
    assert "3 members do not divide over 2 devices" in note and "multiple of 2" in note
    assert member_sharding(3, ["dev0"]) == (None, "")


def test_weakly_typed_env_state_compiles_each_chunk_once(tmp_path):
    """gymnax's SpaceInvaders-MinAtar reset returns weakly typed ints; the program's init
    makes them strong, or the second chunk would compile again."""
    base = tiny(env={"id": "SpaceInvaders-MinAtar", "num_envs": 2},
                agent={"network": {"torso": "minatar_cnn", "hidden_sizes": [8]}},
                run={"out_dir": str(tmp_path), "num_seeds": 1, "name": "si"})
    result = run(load_config(data=base))
    assert result.status == "finished" and result.programs_compiled == 1


def test_the_guard_keeps_a_frozen_members_state_and_takes_the_others_new_state():
    import jax
    import jax.numpy as jnp

    from plasticine_jax.runner.program import guard_update

    class S(NamedTuple):
        w: jax.Array
        steps: jax.Array
        buf: jax.Array

    def update(s, i):  # member 1 (the negative buffer) turns NaN at update 2
        w = jnp.where((i == 2) & (s.buf < 0), jnp.nan, s.w + 1.0)
        return S(w, s.steps + 1, s.buf + 10), {"loss": w.sum(), "other": s.w.sum()}

    guarded = jax.jit(guard_update(update, lambda s: s.w, ["loss"], unguarded="buf"))
    s = S(jnp.array([[1.0, 2.0], [-1.0, 0.0]]), jnp.zeros(2, jnp.int32), jnp.array([0.0, -100.0]))
    at = jnp.zeros(2, jnp.int32)
    history = []
    for i in range(4):
        s, at, out = guarded(s, at, jnp.int32(i))
        history.append(out)
    # member 0: four updates; member 1: updates 0 and 1, then frozen at its state after them
    np.testing.assert_array_equal(s.w, [[5.0, 6.0], [1.0, 2.0]])
    np.testing.assert_array_equal(s.steps, [4, 2])
    np.testing.assert_array_equal(s.buf, [40.0, -60.0])  # the unguarded field always advances
    np.testing.assert_array_equal(at, [0, 3])  # 1-based update of the first non-finite value
    assert [float(o["diverged"][1]) for o in history] == [0.0, 0.0, 1.0, 1.0]
    assert np.isnan(history[3]["other"][1]) and history[3]["other"][0] == 9.0
    assert history[1]["loss"][1] == 3.0  # healthy updates report their scalars


def test_a_checkpoint_cadence_writes_fewer_checkpoints_and_resumes_exactly(tmp_path):
    # checkpoint_every far longer than the run: only the chunk the run stops after is saved
    base = tiny(run={"out_dir": str(tmp_path), "chunk_updates": 1, "num_seeds": 1,
                     "checkpoint_every": 3600})
    full = run(load_config(data=base, overrides=["run.name=full"]))
    part = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=3)
    files = sorted(p.name for p in part.run_dir.glob("checkpoint-*.ckpt"))
    assert files == ["checkpoint-g0-u3.ckpt"]
    _same_rows(_rows(full.run_dir), _rows(run(resume=part.run_dir).run_dir))
    assert not list(full.run_dir.glob("checkpoint-*.ckpt"))  # finished: nothing to keep


def test_the_update_is_traced_once_for_the_metric_names_and_the_chunk(monkeypatch):
    # The chunk loop reuses the trace that found the metrics buffer's shapes (the guarded
    # update is jitted), instead of tracing the agent's update a second time (seconds each).
    import jax.numpy as jnp

    from plasticine_jax.runner import program as program_module
    from plasticine_jax.runner.plan import plan

    traces = []
    real = program_module.make_agent

    def counting_agent(*args, **kw):
        agent = real(*args, **kw)
        update = agent.update

        def counted(state, i):
            traces.append(i)
            return update(state, i)

        agent.update = counted
        return agent

    monkeypatch.setattr(program_module, "make_agent", counting_agent)
    prog = program_module.Program(plan(load_config(data=tiny()))[0])
    assert "pg_loss" in prog.metric_names() and len(traces) == 1
    states = prog.init_shapes()
    prog._run_chunk.lower(states, jnp.int32(0), jnp.int32(1))
    assert len(traces) == 1
