"""Exact resume: a fit killed with SIGKILL and resumed from ``last.ckpt`` ends bitwise like an uninterrupted one.

The end-to-end tests run ``python -m macflow fit`` in subprocesses; :mod:`kill_at_step` kills the fit between two
checkpoint saves. The fast tests pin the pieces: the sampler resumes at the batch Lightning drew ahead, its state
carries the process-wide random state and the uninterrupted batch stream is the plain sampler's, and a cosine schedule
refuses another length.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, REPO, quiet_trainer_args, run_cli
from lightning.pytorch import Callback

from macflow.datamodules import RandomBatches, TransitionData
from macflow.datamodules.sampling import LIGHTNING_LOOKAHEAD
from macflow.errors import InputError

SAVE_EVERY, KILL_AT, MAX_STEPS = 40, 70, 120
"""Checkpoints at steps 40 and 80; the kill at step 70 falls between them, after an evaluation at step 50."""


def fit_args(stage: str, root: Path, *extra: str) -> list[str]:
    """A short coordination fit with a cosine schedule, evaluations, a CSV log of every 5th step and two saves."""
    return ["fit", "--config", str(CONFIGS / f"coordination/{stage}.yaml"), f"--trainer.max_steps={MAX_STEPS}",
            "--trainer.val_check_interval=50", "--trainer.log_every_n_steps=5",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={root}",
            f"--checkpoint.every_n_train_steps={SAVE_EVERY}", "--data.init_args.n_samples=2000",
            "--data.init_args.n_eval_episodes=50", "--data.init_args.eval_batch_size=50", *quiet_trainer_args(root),
            *extra]


def macflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "macflow", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def logged(root: Path) -> dict[tuple[int, str], str]:
    """``(step, metric) -> value`` over every CSV log of a run directory (a resumed run adds a version)."""
    values = {}
    for path in sorted(root.glob("lightning_logs/version_*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                values.update({(int(row["step"]), k): v for k, v in row.items() if v and k not in ("step", "epoch")})
    return values


def assert_killed_fit_resumes_bitwise(stage: str, tmp_path: Path, *extra: str, kill_at: int = KILL_AT,
                                      in_validation: bool = False, saved_at: int = SAVE_EVERY) -> tuple[Path, Path]:
    """Kill a fit at step ``kill_at`` (:class:`kill_at_step.KillAtStep`; its last save: ``saved_at``), resume it, and
    compare it with an uninterrupted one; returns the run directories ``(uninterrupted, killed and resumed)``."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = macflow(fit_args(stage, full, *extra), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    died = macflow(fit_args(stage, killed, *extra, "--trainer.callbacks+=kill_at_step.KillAtStep",
                            f"--trainer.callbacks.step={kill_at}",
                            f"--trainer.callbacks.in_validation={str(in_validation).lower()}"), tmp_path)
    assert died.returncode == -9, died.stderr[-3000:]
    saved = torch.load(killed / "last.ckpt", weights_only=True)
    assert saved["global_step"] == saved_at  # the last save before the kill
    resumed = macflow(fit_args(stage, killed, *extra, f"--ckpt_path={killed / 'last.ckpt'}"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = torch.load(full / "final.ckpt", weights_only=True)
    got = torch.load(killed / "final.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == MAX_STEPS
    assert got["state_dict"].keys() == expected["state_dict"].keys()
    differ = [k for k, v in expected["state_dict"].items() if not torch.equal(v, got["state_dict"][k])]
    assert not differ, differ
    for mine, theirs in zip(got["optimizer_states"][0]["state"].values(),
                            expected["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert got["lr_schedulers"] == expected["lr_schedulers"]

    uninterrupted, after_resume = logged(full), logged(killed)
    later = {key: value for key, value in uninterrupted.items() if key[0] >= saved_at}
    assert any(name.startswith("eval/") for _, name in later) and any(name.startswith("train/") for _, name in later)
    assert {key: after_resume.get(key) for key in later} == later
    return full, killed


def evaluations(root: Path, version: str = "*") -> list[tuple[int, str, str]]:
    """Every ``(step, eval/* metric, value)`` of the CSV logs of a run directory (all versions), repeats kept."""
    rows = []
    for path in sorted(root.glob(f"lightning_logs/version_{version}/metrics.csv")):
        with path.open() as f:
            rows += [(int(row["step"]), k, v) for row in csv.DictReader(f) for k, v in row.items()
                     if v and k.startswith("eval/")]
    return sorted(rows)


@pytest.mark.slow
def test_killed_teacher_fit_resumes_bitwise(tmp_path):
    assert_killed_fit_resumes_bitwise("teacher", tmp_path)


@pytest.mark.slow
def test_killed_student_fit_resumes_bitwise_with_its_target_critic(untrained_teacher, tmp_path):
    assert_killed_fit_resumes_bitwise("student", tmp_path, f"--model.init_args.teacher_ckpt={untrained_teacher}")


@pytest.mark.slow
def test_a_kill_as_a_save_steps_evaluation_starts_logs_each_evaluation_once(tmp_path):
    # evaluations and saves both every 40 steps; the kill comes as step 80's evaluation starts. Before, last.ckpt of
    # step 80 was written before that evaluation and the resume counted it as done: eval/* of step 80 never logged
    every = f"--trainer.val_check_interval={SAVE_EVERY}"
    full, killed = assert_killed_fit_resumes_bitwise("teacher", tmp_path, every, kill_at=2 * SAVE_EVERY,
                                                     in_validation=True, saved_at=SAVE_EVERY)
    expected = evaluations(full)
    assert sorted({step for step, _, _ in expected}) == [SAVE_EVERY - 1, 2 * SAVE_EVERY - 1, MAX_STEPS - 1]
    assert evaluations(killed) == expected  # each evaluation step once, with the same values
    assert {step for step, _, _ in evaluations(killed, "0")} == {SAVE_EVERY - 1}  # the killed fit logged step 40's


# ----------------------------------------------------------------------------------------------- the pieces
def _data(n: int = 64) -> TransitionData:
    return TransitionData(observations=torch.randn(n + 1, 2, 3), obs_index=torch.arange(n),
                          next_obs_index=torch.arange(1, n + 1), actions=torch.rand(n, 2, 2) * 2 - 1,
                          rewards=torch.randn(n), terminals=torch.zeros(n, dtype=torch.bool),
                          episode_ids=torch.zeros(n, dtype=torch.long))


def test_sampler_state_resumes_at_the_batch_drawn_ahead():
    data = _data()
    plain = [b["obs"] for b, _ in zip(RandomBatches(data, 8, seed=3), range(6))]
    sampler = RandomBatches(data, 8, seed=3, lookahead=LIGHTNING_LOOKAHEAD)
    it = iter(sampler)
    drawn = [next(it)["obs"] for _ in range(4)]  # the consumer has trained on 3, holds the 4th
    assert all(torch.equal(a, b) for a, b in zip(drawn, plain))  # the lookahead never changes the stream
    state = sampler.state_dict()
    resumed = RandomBatches(data, 8, seed=3, lookahead=LIGHTNING_LOOKAHEAD)
    resumed.load_state_dict(state)
    again = iter(resumed)
    assert torch.equal(next(again)["obs"], plain[3]) and torch.equal(next(again)["obs"], plain[4])


def test_sampler_state_carries_the_process_random_state_through_a_weights_only_checkpoint(tmp_path):
    sampler = RandomBatches(_data(), 8, seed=0, restores_process_rng=True)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save(sampler.state_dict(), tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    sampler.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_a_sampler_state_saved_by_rank_0_keeps_another_ranks_batches_apart():
    # a checkpoint holds rank 0's state only; rank 1 must not draw rank 0's batches after a DDP resume
    data = _data()
    saved = RandomBatches(data, 8, seed=0, lookahead=LIGHTNING_LOOKAHEAD, rank=0)
    next(iter(saved))
    state = saved.state_dict()
    rank0, rank1 = (RandomBatches(data, 8, seed=r, lookahead=LIGHTNING_LOOKAHEAD, rank=r) for r in (0, 1))
    rank0.load_state_dict(state)
    with pytest.warns(UserWarning, match="not exact"):
        rank1.load_state_dict(state)
    assert not torch.equal(next(iter(rank0))["obs"], next(iter(rank1))["obs"])


class RecordBatches(Callback):
    def __init__(self) -> None:
        self.obs: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.obs.append(batch["obs"].clone())


def test_fit_trains_on_the_plain_samplers_batches_in_order(tmp_path):
    cli = run_cli(["--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.max_steps=5",
                   "--trainer.val_check_interval=100000", "--data.init_args.n_samples=500",
                   *quiet_trainer_args(tmp_path)], run=False)
    record = RecordBatches()
    cli.trainer.callbacks.append(record)
    cli.trainer.fit(cli.model, cli.datamodule)
    plain = RandomBatches(cli.datamodule.data, cli.datamodule.batch_size, seed=cli.datamodule.data_seed)
    assert len(record.obs) == 5
    assert all(torch.equal(seen, b["obs"]) for seen, (b, _) in zip(record.obs, zip(plain, range(5))))


def test_cosine_schedule_resumed_with_another_max_steps_stops_with_the_fix(tmp_path):
    args = ["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.val_check_interval=100000",
            "--data.init_args.n_samples=500", "--data.init_args.batch_size=16", *quiet_trainer_args(tmp_path)]
    run_cli([*args, "--trainer.max_steps=40"])
    with pytest.raises(InputError, match=r"trainer.max_steps=60 .* 40.*--trainer.max_steps=40"):
        run_cli([*args, "--trainer.max_steps=60", f"--ckpt_path={tmp_path / 'last.ckpt'}"])
    resumed = run_cli([*args, "--trainer.max_steps=40", f"--ckpt_path={tmp_path / 'last.ckpt'}"])
    assert resumed.trainer.global_step == 40
