"""Two-process DDP on CPU through the real CLI (``--trainer.devices=2 --trainer.strategy=ddp``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS, REPO

pytestmark = pytest.mark.slow


def ddp_fit(config: str, root: Path, probe: Path, *extra: str) -> list[dict]:
    probe.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]),
           "MACFLOW_PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "macflow", "fit", "--config", str(CONFIGS / config), "--trainer.devices=2",
           "--trainer.strategy=ddp", "--trainer.max_steps=30", "--trainer.val_check_interval=30",
           "--data.init_args.n_eval_episodes=100", "--data.init_args.eval_batch_size=25",
           f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
           "--trainer.callbacks=macflow.callbacks.FinalCheckpoint", f"--trainer.callbacks.path={root}/final.ckpt",
           "--trainer.callbacks+=ddp_probe.Probe", *extra]
    done = subprocess.run(cmd, cwd=root.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_ranks(ranks: list[dict]) -> None:
    r0, r1 = ranks
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["first_batch"] != r1["first_batch"]  # each rank samples its own batches
    assert len(r0["local_returns"]) == len(r1["local_returns"]) == 50  # the 100 episodes are sharded
    everything = r0["local_returns"] + r1["local_returns"]
    for r in ranks:  # the logged evaluation is the global mean over both ranks' episodes
        assert r["metrics"]["eval/episodes"] == 100
        assert r["metrics"]["eval/return"] == pytest.approx(sum(everything) / 100, rel=1e-5)
    assert r0["checksums"] == r1["checksums"]  # gradients were synchronised: identical weights everywhere


def test_teacher_and_student_train_correctly_on_two_processes(tmp_path: Path):
    teacher = ddp_fit("coordination/teacher.yaml", tmp_path / "teacher", tmp_path / "probe_t",
                      "--model.init_args.lr_schedule=constant")
    check_ranks(teacher)
    assert "vector_field" in teacher[0]["checksums"]
    student = ddp_fit("coordination/student.yaml", tmp_path / "student", tmp_path / "probe_s",
                      f"--model.init_args.teacher_ckpt={tmp_path / 'teacher/final.ckpt'}")
    check_ranks(student)
    assert {"actor", "q"} <= set(student[0]["checksums"])  # "q" holds the target critic too
