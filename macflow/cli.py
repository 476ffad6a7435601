"""``python -m macflow {fit,validate,...} --config <yaml>``: LightningCLI with the data dims linked into the model."""

from __future__ import annotations

import sys
from typing import Any

import yaml
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

LINKED_DIMS = ("n_agents", "obs_dim", "action_dim", "state_dim", "discrete")
"""Attributes every datamodule defines after ``__init__`` and every macflow model takes."""


class MACFlowCLI(LightningCLI):
    """Subclass mode for model and data; dims flow from the datamodule to the model so no config repeats them."""

    def add_arguments_to_parser(self, parser) -> None:
        for name in LINKED_DIMS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        """Keep the raw command line: :meth:`_parse_ckpt_path` needs to know which flags the user typed."""
        self._command_line = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, Lightning 2.6 rebuilds the model from the checkpoint's hyperparameters, over the
        config and the command line. Keep that (the network must match the weights), then put back the
        ``--model.init_args.*`` flags typed on the command line, so evaluation options (``eval_noise``,
        ``flow_steps``) can change at ``validate``."""
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        if not (subcommand and self.config[subcommand].get("ckpt_path")):
            return
        overrides = model_init_overrides(self._command_line)
        if overrides:
            model = {"class_path": self.config[subcommand].model.class_path, "init_args": overrides}
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)


def model_init_overrides(command_line: list[str]) -> dict[str, Any]:
    """``--model.init_args.a.b=v`` (or ``--model.init_args.a.b v``) flags as a nested dict of YAML-parsed values.

    ``init_args`` may be left out, as jsonargparse allows (``--model.flow_steps=3``). A module given by class path
    (``--model.init_args.vector_field=pkg.Field``) takes its own flags (``--model.init_args.vector_field.width=64``)
    as ``init_args``, as jsonargparse reads them."""
    prefix, out = "--model.", {}
    for i, token in enumerate(command_line):
        if not token.startswith(prefix):
            continue
        key, sep, value = token[len(prefix):].partition("=")
        if not sep:
            if i + 1 >= len(command_line):
                continue
            value = command_line[i + 1]
        names = [name for name in key.split(".") if name != "init_args"]
        if not names or names[0] in ("class_path", "dict_kwargs"):  # the model class comes from the checkpoint
            continue
        *parents, leaf = names
        node = out
        for name in parents:
            if isinstance(node.get(name), str):  # a class path given earlier on the command line
                node[name] = {"class_path": node[name]}
            node = node.setdefault(name, {})
            if "class_path" in node:
                node = node.setdefault("init_args", {})
        node[leaf] = yaml.safe_load(value)
    return out


def main(args: list[str] | None = None, run: bool = True) -> MACFlowCLI:
    return MACFlowCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                      save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False, args=args, run=run)
