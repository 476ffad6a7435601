"""Checkpoint callbacks: every run's checkpoints live in its ``trainer.default_root_dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from macflow.checkpoints import RECORD, data_fingerprint

FINAL = "final.ckpt"
"""File name of the checkpoint a completed fit writes into its run directory."""


class RunCheckpoints(ModelCheckpoint):
    """``<trainer.default_root_dir>/last.ckpt`` and ``<trainer.default_root_dir>/final.ckpt``.

    ``last.ckpt`` is written every ``every_n_train_steps`` steps, when training stops and when the process gets
    SIGTERM, so a run that dies resumes with ``--ckpt_path <root>/last.ckpt``. ``final.ckpt`` is written only when
    ``fit`` completes, so it never holds a half-trained model: a student's ``teacher_ckpt``, ``validate`` and
    ``export`` read it. The CLI adds this callback to every run as the ``checkpoint`` group
    (``--checkpoint.every_n_train_steps=N``); ``--trainer.enable_checkpointing=false`` leaves it out.
    """

    def __init__(self, every_n_train_steps: int = 1000) -> None:
        super().__init__(save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.dirpath = trainer.default_root_dir
        super().setup(trainer, pl_module, stage)

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
    ``data_fingerprint`` of the datamodule's ``data``, and ``config``, the run's resolved config without the settings
    that do not change results. A student compares the fingerprint with its teacher's; a fresh ``fit`` into a
    directory compares the config with that of the run that wrote its checkpoints. The CLI adds it to every run."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config
        self.fingerprint: str | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        data = getattr(trainer.datamodule, "data", None)
        self.fingerprint = data_fingerprint(data) if data is not None and hasattr(data, "tensors") else None

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.setdefault(RECORD, {})
        if self.fingerprint is not None:
            record["data_fingerprint"] = self.fingerprint
        if self.config is not None:
            record["config"] = self.config
