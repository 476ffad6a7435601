"""A callback the DDP test adds on the command line: each rank writes what it saw to ``$MACFLOW_PROBE_DIR``."""

import json
import os
from pathlib import Path

import torch
from lightning.pytorch import Callback


def checksum(module: torch.nn.Module) -> float:
    return float(sum(p.double().sum() for p in module.state_dict().values()))


class Probe(Callback):
    def __init__(self) -> None:
        self.record: dict = {"first_batch": None, "local_returns": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.record["first_batch"] is None:
            self.record["first_batch"] = float(batch["obs"].sum())

    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # runs before the module's own hook
        self.record["local_returns"] += [float(x) for r in pl_module._eval_results for x in r["return"]]

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record["metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("eval/")}
        self.record["world_size"] = trainer.world_size
        self.record["checksums"] = {name: checksum(m) for name, m in pl_module.named_children()
                                    if name in ("vector_field", "actor", "q")}
        out = Path(os.environ["MACFLOW_PROBE_DIR"]) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(self.record))
