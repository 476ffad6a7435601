"""``python -m macflow {fit,validate,...} --config <yaml>``: LightningCLI with the data dims linked into the model."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

LINKED_DIMS = ("n_agents", "obs_dim", "action_dim", "state_dim", "discrete")
"""Attributes every datamodule defines after ``__init__`` and every macflow model takes."""


class MACFlowCLI(LightningCLI):
    """Subclass mode for model and data; dims flow from the datamodule to the model so no config repeats them."""

    def add_arguments_to_parser(self, parser) -> None:
        for name in LINKED_DIMS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")


def main(args: list[str] | None = None, run: bool = True) -> MACFlowCLI:
    return MACFlowCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                      save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False, args=args, run=run)
