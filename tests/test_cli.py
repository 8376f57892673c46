"""The CLI end to end on a tiny config: run, list, errors, interrupt + resume, wandb offline."""

import csv
import json

import numpy as np
import pytest
import yaml

from plasticine_jax.cli import main
from plasticine_jax.config import load_config
from plasticine_jax.runner.loop import run
from tests.conftest import tiny


def _write(tmp_path, **kw):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny(**kw)))
    return path


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_cli_run_writes_run_directory(tmp_path, capsys):
    cfg = _write(tmp_path)
    code = main(["run", str(cfg), f"run.out_dir={tmp_path}", "run.name=r1",
                 "sweep.agent.hp.lr=[0.001,0.0003]",
                 "sweep.methods=[[], [{name: l2, hp: {coef: 0.01}}]]"])
    assert code == 0
    run_dir = tmp_path / "r1"
    printed = capsys.readouterr().out
    # lrs x {vanilla, L2}: L2 runs at coef 0 for the vanilla members, so one program
    assert "programs compiled 1" in printed and "return_mean" in printed
    rows = _rows(run_dir)
    assert len(rows) == 8 * 4  # 8 members (2 lrs x 2 method lists x 2 seeds) x 4 updates
    assert {r["sweep:agent.hp.lr"] for r in rows} == {"0.001", "0.0003"}
    assert {r["sweep:methods"] for r in rows} == {"vanilla", "l2(coef=0.01)"}
    assert {int(r["update"]) for r in rows} == {1, 2, 3, 4}
    assert rows[-1]["env_steps"] == str(4 * 64)
    resolved = load_config(run_dir / "config.yaml")
    assert resolved.agent.network.hidden_sizes == (16, 16)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["programs_compiled"] == 1
    assert len(summary["summary"]) == 4


def test_cli_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("environments:", "agents:", "methods:", "metrics:", "dormant_ratio", "ppo"):
        assert word in out


def test_cli_config_error_exits_2_before_compiling(tmp_path, capsys):
    cfg = _write(tmp_path)
    assert main(["run", str(cfg), "agent.num_minibatches=5", f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "agent.num_minibatches=5" in err
    assert not any(tmp_path.glob("tiny-*"))  # nothing was written


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "metrics.csv").write_text("precious\n")
    cfg = _write(tmp_path)
    assert main(["run", str(cfg), f"run.out_dir={tmp_path}", "run.name=taken"]) == 2
    assert (tmp_path / "taken" / "metrics.csv").read_text() == "precious\n"


def test_interrupt_then_resume_equals_uninterrupted(tmp_path):
    base = tiny(run={"out_dir": str(tmp_path)})
    full = run(load_config(data=base, overrides=["run.name=full"]))
    stopped = run(load_config(data=base, overrides=["run.name=part"]), stop_after_chunks=1)
    assert stopped.status == "interrupted"
    assert len(_rows(stopped.run_dir)) == 2 * 2  # one chunk of 2 updates x 2 members
    resumed = run(resume=stopped.run_dir)
    assert resumed.status == "finished"
    a, b = _rows(full.run_dir), _rows(resumed.run_dir)
    assert len(a) == len(b) == 4 * 2
    for ra, rb in zip(a, b, strict=True):
        for k in ("update", "member", "pg_loss", "v_loss", "grad_norm"):
            np.testing.assert_allclose(float(ra[k]), float(rb[k]), rtol=1e-6, err_msg=k)


@pytest.mark.timeout(300)
def test_wandb_offline_writes_a_local_run(tmp_path):
    base = tiny(run={"out_dir": str(tmp_path), "name": "wb"}, wandb={"mode": "offline"})
    result = run(load_config(data=base))
    assert result.status == "finished"
    offline = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert offline, "wandb offline run directory missing"
    assert any(offline[0].rglob("*.wandb"))


def test_static_sweep_with_checkpoints_runs_every_group_and_resumes_across_groups(tmp_path):
    """Two compile groups with checkpointing on: a finished group's checkpoint pointer has
    no file, and the next group must start from it (this crashed), also after a resume."""
    base = tiny(run={"out_dir": str(tmp_path)})
    over = ["sweep.agent.network.hidden_sizes=[[8],[16]]"]
    full = run(load_config(data=base, overrides=[*over, "run.name=full"]))
    assert full.status == "finished"
    rows = _rows(full.run_dir)
    assert {r["group"] for r in rows} == {"0", "1"} and len(rows) == 2 * 2 * 4
    # chunks of 2 updates, 4 updates a group: stop after the first group's last chunk
    part = run(load_config(data=base, overrides=[*over, "run.name=part"]), stop_after_chunks=2)
    assert part.status == "interrupted"
    assert {r["group"] for r in _rows(part.run_dir)} == {"0"}
    resumed = run(resume=part.run_dir)
    assert resumed.status == "finished"
    a, b = _rows(full.run_dir), _rows(resumed.run_dir)
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for k in ("group", "update", "member", "pg_loss", "v_loss", "grad_norm"):
            np.testing.assert_allclose(float(ra[k]), float(rb[k]), rtol=1e-6, err_msg=k)
