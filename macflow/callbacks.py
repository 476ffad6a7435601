"""Checkpoint callbacks: every run's checkpoints live in its ``trainer.default_root_dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from macflow.checkpoints import RECORD, datamodule_fingerprint

FINAL = "final.ckpt"
"""File name of the checkpoint a completed fit writes into its run directory."""


class RunCheckpoints(ModelCheckpoint):
    """``<trainer.default_root_dir>/last.ckpt`` and ``<trainer.default_root_dir>/final.ckpt``.

    ``last.ckpt`` is written every ``every_n_train_steps`` steps, when training stops and when the process gets
    SIGTERM, so a run that dies resumes with ``--ckpt_path <root>/last.ckpt``. ``final.ckpt`` is written only when
    ``fit`` completes, so it never holds a half-trained model: a student's ``teacher_ckpt``, ``validate`` and
    ``export`` read it. The CLI adds this callback to every run as the ``checkpoint`` group
    (``--checkpoint.every_n_train_steps=N``); ``--trainer.enable_checkpointing=false`` leaves it out.

    When a validation runs at a save step (with the defaults every save step is one), ``last.ckpt`` is written after
    it, in ``on_validation_end``, once Lightning has logged that step's ``eval/*`` values and saved the loggers: a
    resume counts the validation of the saved step as done, so a checkpoint written before it lost that evaluation
    when the process died during it. Validation runs inside ``torch.random.fork_rng`` and draws no training batch,
    so the checkpoint holds the same training state either way.
    """

    def __init__(self, every_n_train_steps: int = 1000) -> None:
        super().__init__(save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)
        self._save_after_validation: tuple[int, int] | None = None
        """``(global_step, batch_idx)`` of a save step whose save waits for its validation."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.dirpath = trainer.default_root_dir
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Save as :class:`ModelCheckpoint` does, or leave the save to ``on_validation_end`` when one follows."""
        if self._save_after_validation is not None:  # no validation ran after that step after all: save now
            rank_zero_warn(f"RunCheckpoints: the validation expected after step {self._save_after_validation[0]} "
                           f"did not run; saving last.ckpt at step {trainer.global_step} instead")
            self._save_after_validation = None
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if validation_follows(trainer):
            self._save_after_validation = (trainer.global_step, batch_idx)
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Make the save left by ``on_train_batch_end``: the loggers have written this step's evaluation by now."""
        pending, self._save_after_validation = self._save_after_validation, None
        if pending is not None and pending[0] == trainer.global_step and not trainer.sanity_checking:
            super().on_train_batch_end(trainer, pl_module, None, None, pending[1])  # it reads neither output nor batch
        super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write ``last.ckpt`` at the step training stopped, also between two ``every_n_train_steps`` saves."""
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """On SIGTERM (raised by Lightning between two steps), write ``last.ckpt`` so the run can resume."""
        if not isinstance(exception, SIGTERMException) or self._last_global_step_saved == trainer.global_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        rank_zero_info(f"SIGTERM at step {trainer.global_step}: saved {self.last_model_path}; resume with "
                       f"--ckpt_path {self.last_model_path}")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.interrupted:
            return
        path = Path(trainer.default_root_dir) / FINAL
        trainer.save_checkpoint(path)  # every rank calls it; the strategy writes on rank 0
        rank_zero_info(f"final checkpoint: {path}")


def validation_follows(trainer: Trainer) -> bool:
    """Whether the fit validates right after the training step that has just ended (call it in
    ``on_train_batch_end``).

    The same decision as Lightning 2.6's ``_TrainingEpochLoop._should_check_val_fx``, from public attributes: False
    without validation (no ``val_dataloader`` or ``validation_step``, ``limit_val_batches=0``, an empty loader) and in
    an epoch that ``check_val_every_n_epoch`` skips; otherwise every ``trainer.val_check_batch`` batches, which
    Lightning sets from ``val_check_interval`` given as an int (batches, counted over the fit when
    ``check_val_every_n_epoch`` is None and within the epoch otherwise) or as a float (that fraction of the epoch);
    for a loader without a length, at its last batch or every int ``limit_train_batches``. A time-based
    ``val_check_interval`` and the validation of an early stop are not known in advance: False, so the save comes
    before such a validation, as it always did.
    """
    if not trainer.enable_validation or trainer.sanity_checking:
        return False
    if trainer.num_val_batches and sum(trainer.num_val_batches) == 0:
        return False  # an empty validation loader: the loop skips it without on_validation_end
    every_n_epochs = trainer.check_val_every_n_epoch
    if every_n_epochs is not None and (trainer.current_epoch + 1) % every_n_epochs:
        return False
    check_batch = trainer.val_check_batch
    if check_batch is None:  # a time-based val_check_interval: the clock decides after this hook
        return False
    loop = trainer.fit_loop.epoch_loop
    if check_batch == float("inf"):  # a loader without a length
        limit = trainer.limit_train_batches
        return loop.batch_progress.is_last_batch or (isinstance(limit, int) and (loop.batch_idx + 1) % limit == 0)
    batch = loop.total_batch_idx if every_n_epochs is None else loop.batch_idx
    return (batch + 1) % check_batch == 0


class FinalCheckpoint(Callback):
    """Write the trained model to a fixed ``path`` when ``fit`` completes (never a half-trained model).

    :class:`RunCheckpoints`, which the CLI adds to every run, already writes ``<default_root_dir>/final.ckpt``;
    this callback serves configs that name another path in ``trainer.callbacks``.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.interrupted:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)  # every rank calls it; the strategy writes on rank 0
        rank_zero_info(f"final checkpoint: {self.path}")


class RunRecord(Callback):
    """Record in every checkpoint (key :data:`~macflow.checkpoints.RECORD`) what the run was trained on:
    ``data_fingerprint`` of the datamodule's one-observation table, and ``config``, the run's resolved config without
    the settings that do not change results. A student compares the fingerprint with its teacher's; a fresh ``fit`` into a
    directory compares the config with that of the run that wrote its checkpoints. The CLI adds it to every run."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config
        self.fingerprint: str | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.fingerprint = datamodule_fingerprint(trainer.datamodule)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.setdefault(RECORD, {})
        if self.fingerprint is not None:
            record["data_fingerprint"] = self.fingerprint
        if self.config is not None:
            record["config"] = self.config
