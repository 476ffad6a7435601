"""A callback the resume tests add on the command line: the fit kills itself with SIGKILL at a given step."""

import os
import signal

from lightning.pytorch import Callback


class KillAtStep(Callback):
    """``os.kill(getpid(), SIGKILL)`` once ``trainer.global_step`` reaches ``step``: no hook, no save, no cleanup,
    as when the machine or the OOM killer stops a run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
