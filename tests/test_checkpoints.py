"""Checkpoint files: atomic writes that survive a failed save, readable errors for damaged files, checkpoint kind
against the config, run directories that never take another run's files, SIGTERM, and the data fingerprint."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, REPO, quiet_trainer_args, run_cli
from lightning.pytorch import Callback, LightningModule, Trainer

from macflow.callbacks import RunCheckpoints
from macflow.checkpoints import AtomicCheckpointIO, read_checkpoint, run_record
from macflow.errors import InputError

TEACHER = str(CONFIGS / "coordination/teacher.yaml")
STUDENT = str(CONFIGS / "coordination/student.yaml")


def fit(config: str, root: Path, *extra: str):
    return run_cli(["fit", "--config", config, "--trainer.val_check_interval=100000", "--trainer.callbacks=null",
                    *quiet_trainer_args(root), *extra])


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A coordination teacher run of 2 steps: ``last.ckpt``, ``final.ckpt`` and its saved config."""
    root = tmp_path_factory.mktemp("teacher_run")
    fit(TEACHER, root, "--trainer.max_steps=2")
    return root


@pytest.fixture(scope="module")
def student_run(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("student_run")
    fit(STUDENT, root, "--trainer.max_steps=2", f"--model.init_args.teacher_ckpt={teacher_run / 'final.ckpt'}")
    return root


def failing_save(written: list[str]):
    """A ``torch.save`` that writes part of the file then fails as a full disk does."""

    def save(obj, f, *args, **kwargs):
        written.append(os.readlink(f"/proc/self/fd/{f.fileno()}") if hasattr(f, "fileno") else str(f))
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    return save


# ------------------------------------------------------------------------------------------------ atomic writes
def test_a_failed_save_keeps_the_previous_last_ckpt(teacher_run: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "run"
    root.mkdir()
    for name in ("last.ckpt", "final.ckpt"):
        (root / name).write_bytes((teacher_run / name).read_bytes())
    before = {name: (root / name).read_bytes() for name in ("last.ckpt", "final.ckpt")}
    written: list[str] = []
    monkeypatch.setattr(torch, "save", failing_save(written))
    with pytest.raises(InputError, match="No space left on device; free space under"):
        fit(TEACHER, root, "--trainer.max_steps=4", "--checkpoint.every_n_train_steps=3",
            f"--ckpt_path={root / 'last.ckpt'}")
    monkeypatch.undo()
    assert written and all(Path(w).parent == root and Path(w).name.startswith(".last.ckpt.") for w in written)
    assert {name: (root / name).read_bytes() for name in before} == before  # nothing on disk was touched
    assert read_checkpoint(root / "last.ckpt", "--ckpt_path")["global_step"] == 2  # still resumable
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["final.ckpt", "last.ckpt"]  # no temp left


@pytest.mark.parametrize("saver", ["RunCheckpoints", "FinalCheckpoint"])
def test_a_failed_final_checkpoint_keeps_the_previous_one(teacher_run: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, saver: str):
    """The checkpoint a completed fit writes (``final.ckpt`` of the checkpoint group, or a ``FinalCheckpoint``
    path) goes through the same atomic CheckpointIO: a save that fails leaves the earlier file as it was."""
    root = tmp_path / "run"
    root.mkdir()
    target = root / ("final.ckpt" if saver == "RunCheckpoints" else "teacher.ckpt")
    target.write_bytes((teacher_run / "final.ckpt").read_bytes())
    extra = (["--checkpoint.every_n_train_steps=1000", f"--ckpt_path={target}"] if saver == "RunCheckpoints" else
             ["--trainer.enable_checkpointing=false", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
              f"--trainer.callbacks.path={target}"])
    written: list[str] = []
    real_save, fail = torch.save, failing_save(written)

    def save(obj, f, *args, **kwargs):  # only the final checkpoint's write fails
        name = os.readlink(f"/proc/self/fd/{f.fileno()}") if hasattr(f, "fileno") else str(f)
        return (fail if Path(name).name.startswith(f".{target.name}.") else real_save)(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    args = ["fit", "--config", TEACHER, "--trainer.val_check_interval=100000", *quiet_trainer_args(root),
            "--trainer.max_steps=3", *extra]
    with pytest.raises(InputError, match="No space left on device; free space under"):
        run_cli(args if saver == "FinalCheckpoint" else [*args, "--trainer.callbacks=null"])
    monkeypatch.undo()
    assert len(written) == 1 and Path(written[0]).parent == root
    assert read_checkpoint(target, "--ckpt_path")["global_step"] == 2  # the earlier run's, whole
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_checkpoints_get_the_permissions_of_a_plain_write(teacher_run: Path):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("last.ckpt", "final.ckpt"):
        assert (teacher_run / name).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_every_cli_run_writes_through_the_atomic_checkpoint_io(teacher_run: Path):
    cli = run_cli(["--config", TEACHER, *quiet_trainer_args(teacher_run / "x")], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# ------------------------------------------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_a_damaged_checkpoint_is_an_input_error_naming_the_file(teacher_run: Path, tmp_path: Path, damage: str):
    path = tmp_path / "last.ckpt"
    good = (teacher_run / "last.ckpt").read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "empty": b"", "text": b"not a checkpoint\n"}[damage])
    with pytest.raises(InputError, match=f"--ckpt_path {path} is .*: use another checkpoint of the run "
                                         f"\\(e.g. {tmp_path / 'final.ckpt'}\\) or retrain it"):
        fit(TEACHER, tmp_path / "run", "--trainer.max_steps=4", f"--ckpt_path={path}")
    with pytest.raises(InputError, match=f"model.init_args.teacher_ckpt {path} is "):
        fit(STUDENT, tmp_path / "student", "--trainer.max_steps=1", f"--model.init_args.teacher_ckpt={path}")


def test_a_damaged_checkpoint_through_the_command_line_is_one_line_and_status_2(teacher_run: Path, tmp_path: Path):
    path = tmp_path / "final.ckpt"
    path.write_bytes((teacher_run / "final.ckpt").read_bytes()[:3000])
    result = subprocess.run([sys.executable, "-m", "macflow", "validate", "--config", TEACHER, f"--ckpt_path={path}"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"macflow: error: --ckpt_path {path} is truncated or not a checkpoint: use another checkpoint of "
        f"the run (e.g. {tmp_path / 'last.ckpt'}) or retrain it")


# ------------------------------------------------------------------------------------------------ checkpoint kind
def test_a_teacher_checkpoint_under_the_student_config_is_refused(teacher_run: Path, tmp_path: Path):
    for subcommand in ("validate", "fit", "test"):
        with pytest.raises(InputError, match=(
                f"--ckpt_path {teacher_run / 'final.ckpt'} holds a FlowTeacher checkpoint but the config's model is "
                f"OneStepStudent: pass --config {teacher_run}/lightning_logs/version_0/config.yaml")):
            run_cli([subcommand, "--config", STUDENT, *quiet_trainer_args(tmp_path),
                     f"--ckpt_path={teacher_run / 'final.ckpt'}"])


def test_a_missing_ckpt_path_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match=f"--ckpt_path {tmp_path / 'nope.ckpt'} not found: check the path"):
        run_cli(["validate", "--config", TEACHER, *quiet_trainer_args(tmp_path), f"--ckpt_path={tmp_path}/nope.ckpt"])


def test_a_student_checkpoint_as_teacher_ckpt_is_refused(student_run: Path, tmp_path: Path):
    with pytest.raises(InputError, match=f"teacher_ckpt {student_run / 'final.ckpt'} is a OneStepStudent "
                                         "checkpoint, not a FlowTeacher"):
        fit(STUDENT, tmp_path, "--trainer.max_steps=1", f"--model.init_args.teacher_ckpt={student_run / 'final.ckpt'}")


# -------------------------------------------------------------------------------------------- data fingerprint
def test_checkpoints_record_the_data_and_the_student_its_teacher(teacher_run: Path, student_run: Path):
    teacher = run_record(read_checkpoint(teacher_run / "final.ckpt", "x"))
    student = run_record(read_checkpoint(student_run / "final.ckpt", "x"))
    assert len(teacher["data_fingerprint"]) == 64 and student["data_fingerprint"] == teacher["data_fingerprint"]
    assert student["teacher"] == {"path": str((teacher_run / "final.ckpt").resolve()),
                                  "sha256": hashlib.sha256((teacher_run / "final.ckpt").read_bytes()).hexdigest(),
                                  "data_fingerprint": teacher["data_fingerprint"]}
    assert teacher["config"]["model"]["class_path"].endswith("FlowTeacher")


def test_a_teacher_trained_on_other_data_warns(teacher_run: Path, tmp_path: Path):
    with pytest.warns(UserWarning, match=f"teacher {teacher_run / 'final.ckpt'} was trained on other data"):
        cli = fit(STUDENT, tmp_path, "--trainer.max_steps=1", "--data.init_args.data_seed=1",
                  f"--model.init_args.teacher_ckpt={teacher_run / 'final.ckpt'}")
    assert cli.trainer.global_step == 1  # same dims: it trains, with the warning


@pytest.mark.parametrize("data_seed, warns", [(0, False), (1, True)])
def test_a_history_student_compares_its_one_observation_data_with_the_teacher(teacher_run: Path, tmp_path: Path,
                                                                              recwarn: pytest.WarningsRecorder,
                                                                              data_seed: int, warns: bool):
    cli = fit(STUDENT, tmp_path, "--trainer.max_steps=1", f"--data.init_args.data_seed={data_seed}",
              "--data.init_args.obs_history=2", f"--model.init_args.teacher_ckpt={teacher_run / 'final.ckpt'}")
    other_data = [w for w in recwarn if "was trained on other data" in str(w.message)]
    assert bool(other_data) == warns
    teacher = run_record(read_checkpoint(teacher_run / "final.ckpt", "x"))["data_fingerprint"]
    student = run_record(read_checkpoint(tmp_path / "final.ckpt", "x"))["data_fingerprint"]
    assert (student == teacher) == (not warns) and cli.datamodule.data.obs_dim == 2 * cli.datamodule.frame_dim


# ------------------------------------------------------------------------------------------------ run directories
def test_a_fresh_fit_never_overwrites_another_runs_directory(teacher_run: Path, tmp_path: Path):
    root = tmp_path / "run"
    root.mkdir()
    for name in ("last.ckpt", "final.ckpt"):
        (root / name).write_bytes((teacher_run / name).read_bytes())
    before = (root / "final.ckpt").read_bytes()
    with pytest.raises(InputError, match=(
            f"trainer.default_root_dir {root} holds last.ckpt of another run \\(seed_everything: 0 there, 1 here\\): "
            f"pick another --trainer.default_root_dir, resume that run with --ckpt_path {root / 'last.ckpt'}, "
            "or delete the folder")):
        fit(TEACHER, root, "--trainer.max_steps=2", "--seed_everything=1")
    assert (root / "final.ckpt").read_bytes() == before
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/last.ckpt").write_bytes(b"")
    with pytest.raises(InputError, match=f"default_root_dir {tmp_path / 'bad'} holds an unreadable last.ckpt: delete"):
        fit(TEACHER, tmp_path / "bad", "--trainer.max_steps=2")
    again = fit(TEACHER, root, "--trainer.max_steps=2")  # the same config reproduces the run: it may write again
    assert again.trainer.global_step == 2 and run_record(read_checkpoint(root / "final.ckpt", "x"))["config"]


def test_seed_placeholder_keeps_seeds_apart_and_pairs_the_student_with_its_teacher(tmp_path: Path):
    teacher_dir, student_dir = f"{tmp_path}/teacher/seed{{seed}}", f"{tmp_path}/student/seed{{seed}}"
    args = ["--trainer.max_steps=1", "--trainer.val_check_interval=100000", "--trainer.callbacks=null",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    for seed in (0, 1):
        run_cli(["fit", "--config", TEACHER, *args, f"--trainer.default_root_dir={teacher_dir}",
                 f"--seed_everything={seed}"])
    cli = run_cli(["fit", "--config", STUDENT, *args, f"--trainer.default_root_dir={student_dir}",
                   "--seed_everything=1", f"--model.init_args.teacher_ckpt={teacher_dir}/final.ckpt"])
    assert (tmp_path / "teacher/seed0/final.ckpt").is_file() and (tmp_path / "teacher/seed1/final.ckpt").is_file()
    assert cli.model.hparams.teacher_ckpt == f"{tmp_path}/teacher/seed1/final.ckpt"
    assert run_record(read_checkpoint(tmp_path / "student/seed1/final.ckpt", "x"))["teacher"]["path"] == str(
        tmp_path / "teacher/seed1/final.ckpt")


# ---------------------------------------------------------------------------------------------------- signals
@pytest.mark.slow
def test_sigterm_saves_last_ckpt_and_exits_143(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "macflow", "fit", "--config", TEACHER, "--trainer.max_steps=100000",
                             "--trainer.val_check_interval=100000", "--trainer.callbacks=null",
                             *quiet_trainer_args(tmp_path), "--checkpoint.every_n_train_steps=100000"],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("lightning_logs/version_0/events*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # some training steps
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    saved = read_checkpoint(tmp_path / "last.ckpt", "x")
    assert saved["global_step"] > 0 and not (tmp_path / "final.ckpt").exists()
    assert "stopped by SIGTERM" in err


def test_trainer_callbacks_every_n_train_steps_names_the_checkpoint_flag(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", str(CONFIGS / "teacher.yaml"), "--trainer.callbacks.every_n_train_steps=50"])
    assert "use --checkpoint.every_n_train_steps=50" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- saves and validations
class _Tiny(LightningModule):
    def __init__(self, validates: bool = True) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        if not validates:
            self.validation_step = None  # type: ignore[assignment]

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/x", self.layer(batch[0]).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _RecordSavesAndValidations(Callback):
    def __init__(self) -> None:
        self.validated: list[int] = []
        self.saved: list[tuple[int, bool]] = []  # (global_step, saved during a validation)

    def on_validation_start(self, trainer, pl_module) -> None:
        self.validated.append(trainer.global_step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved.append((trainer.global_step, trainer.validating))


@pytest.mark.filterwarnings("error:RunCheckpoints")  # its warning that an expected validation did not run
@pytest.mark.parametrize(("options", "validates"), [
    ({"val_check_interval": 3, "check_val_every_n_epoch": None}, True),  # int, counted over the fit
    ({"val_check_interval": 3, "check_val_every_n_epoch": 1}, True),  # int, counted within each epoch of 8
    ({"val_check_interval": 0.5}, True),  # float: every 4 batches of 8
    ({"val_check_interval": 1.0, "check_val_every_n_epoch": 2}, True),  # every other epoch end
    ({"limit_val_batches": 0}, True),  # no validation
    ({}, False),  # no validation_step
])
def test_a_save_at_a_validation_step_comes_after_that_validation(tmp_path: Path, options: dict, validates: bool):
    record = _RecordSavesAndValidations()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 2)), batch_size=2)
    trainer = Trainer(default_root_dir=tmp_path, max_steps=30, num_sanity_val_steps=0, logger=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[RunCheckpoints(every_n_train_steps=2), record], **options)
    trainer.fit(_Tiny(validates), loader, loader if validates else None)
    saves = [step for step, _ in record.saved if step % 2 == 0 and step < 30]
    assert saves == list(range(2, 30, 2))  # every periodic save made, once
    after_validation = {step for step, during in record.saved if during}
    assert after_validation == {step for step in record.validated if step % 2 == 0}
    assert bool(record.validated) == (validates and options.get("limit_val_batches") != 0)
