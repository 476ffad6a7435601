"""A callback the resume tests add on the command line: the fit kills itself with SIGKILL at a given step."""

import os
import signal

from lightning.pytorch import Callback


class KillAtStep(Callback):
    """``os.kill(getpid(), SIGKILL)`` once ``trainer.global_step`` reaches ``step``: no hook, no save, no cleanup,
    as when the machine or the OOM killer stops a run. The kill comes at the end of that training step, or, with
    ``in_validation``, as the first validation at or after it starts (before any of its values are logged)."""

    def __init__(self, step: int, in_validation: bool = False) -> None:
        self.step, self.in_validation = step, in_validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.in_validation and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.in_validation and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
