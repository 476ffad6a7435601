"""Callbacks: a stable final-checkpoint path for handing the teacher to the student."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info


class FinalCheckpoint(Callback):
    """Write the trained model to a fixed ``path`` when ``fit`` finishes (e.g. ``runs/teacher/teacher.ckpt``).

    The student config names this path. The file is only (re)written at the end of a completed fit, so it never
    holds a half-trained model; use ``ModelCheckpoint(save_last=True)`` for resumable ``last.ckpt`` files.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.interrupted:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)  # every rank calls it; the strategy writes on rank 0
        rank_zero_info(f"final checkpoint: {self.path}")
