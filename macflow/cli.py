"""``python -m macflow {fit,validate,...} --config <yaml> [--config <yaml> ...]``: LightningCLI with the data dims
linked into the model.

Every subcommand starts from ``configs/trainer/cpu.yaml`` (jsonargparse ``default_config_files``; ``--help`` names
the file, ``--print_config`` shows its values), the trainer settings every run shares. ``--config`` files stack
on top of it, later ones winning key by key: a benchmark's base config, then a quality delta, then e.g.
``configs/trainer/gpu.yaml``. A list (``trainer.callbacks``) is replaced whole, not merged.

Every run also gets the ``checkpoint`` group, a :class:`macflow.callbacks.RunCheckpoints`, so
``--trainer.default_root_dir=D`` alone makes ``D/last.ckpt`` (resumable) and ``D/final.ckpt`` (when fit completes);
TensorBoard logs and the resolved ``config.yaml`` go to ``D/lightning_logs/version_<k>/``. Checkpoints are written
atomically (:class:`macflow.checkpoints.AtomicCheckpointIO`) and record the run's data fingerprint and config
(:class:`macflow.callbacks.RunRecord`). ``{seed}`` in any config string (``trainer.default_root_dir``,
``model.init_args.teacher_ckpt``; :mod:`macflow.run_dirs`) becomes the run's ``seed_everything``, so runs of different seeds keep apart and
the student of seed k reads the teacher of seed k; ``{model}`` becomes the model's class name.

A checkpoint that cannot be read, or that holds another model class than the config, and a fresh ``fit`` into a
directory holding another config's checkpoints stop with an :class:`~macflow.errors.InputError`. SIGTERM during
``fit`` writes ``last.ckpt`` and exits with status :data:`EXIT_SIGTERM`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from macflow.callbacks import FINAL, RunCheckpoints, RunRecord
from macflow.checkpoints import AtomicCheckpointIO
from macflow.run_config import hashed_config
from macflow.run_dirs import check_checkpoint_kind, check_run_dir, fill_placeholders

LINKED_DIMS = ("n_agents", "obs_dim", "action_dim", "state_dim", "discrete")
"""Attributes every datamodule defines after ``__init__`` and every macflow model takes."""

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TRAINER_DEFAULTS = CONFIGS / "trainer" / "cpu.yaml"
"""Applied before any ``--config``; skipped where the package is installed without its configs."""

RENAMED_CONFIGS = {f"configs/mpe/{quality}_{stage}.yaml":
                   f"--config configs/mpe/{stage}.yaml --config configs/mpe/{quality}/{stage}.yaml"
                   for quality in ("expert", "medium", "medium-replay", "random") for stage in ("teacher", "student")}
"""Removed config paths (relative to the repository root) -> the ``--config`` flags that replace them."""

EXIT_SIGTERM = 143
"""Exit status of a ``fit`` stopped by SIGTERM (128 + 15, as a shell reports it), after ``last.ckpt`` is saved."""

class MACFlowCLI(LightningCLI):
    """Subclass mode for model and data; dims flow from the datamodule to the model so no config repeats them.

    ``parser_kwargs`` left at ``None`` applies :data:`TRAINER_DEFAULTS` to every subcommand (or to the one parser
    when ``run=False``); pass ``{}`` for Lightning's own trainer defaults."""

    def __init__(self, *args: Any, parser_kwargs: dict[str, Any] | None = None, run: bool = True,
                 **kwargs: Any) -> None:
        if parser_kwargs is None:
            parser_kwargs = default_parser_kwargs(run)
        super().__init__(*args, parser_kwargs=parser_kwargs, run=run, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        for name in LINKED_DIMS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoints, "checkpoint")

    def parse_arguments(self, parser, args) -> None:
        """Keep the raw command line: :meth:`_parse_ckpt_path` needs to know which flags the user typed. A removed
        config path, a checkpoint name that runs no longer write or a delta config without its base stops here with the
        fix named."""
        self._command_line = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        message = (moved_path_message(self._command_line) or delta_message(self._command_line)
                   or misplaced_flag_message(self._command_line))
        if message:
            parser.error(message)
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        """Fill ``{seed}``, stop a fresh ``fit`` that would overwrite another run, and keep the run's hashed config
        for :class:`RunRecord`."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        model = config.get("model")
        fill_placeholders(config, config.get("seed_everything"), getattr(model, "class_path", None))
        self._run_config = None
        if subcommand == "fit":
            resolved = yaml.safe_load(self._parser(subcommand).dump(config, skip_none=False, skip_check=True))
            root = config.trainer.default_root_dir or "."
            self._run_config = hashed_config(resolved, root)
            if not config.get("ckpt_path"):
                check_run_dir(Path(root), self._run_config)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        """``--trainer.enable_checkpointing=false`` turns the ``checkpoint`` group off (Lightning refuses both).
        Checkpoints are written by :class:`AtomicCheckpointIO` unless a ``CheckpointIO`` plugin is given, and
        carry a :class:`RunRecord`."""
        if config.get("enable_checkpointing") is False:
            callbacks = [c for c in callbacks if not isinstance(c, RunCheckpoints)]
        plugins = config.get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        callbacks = [*callbacks, RunRecord(getattr(self, "_run_config", None))]
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, Lightning 2.6 rebuilds the model from the checkpoint's hyperparameters, over the
        config and the command line. Keep that (the network must match the weights), then put back the
        ``--model.init_args.*`` flags typed on the command line, so evaluation options (``eval_noise``,
        ``flow_steps``) can change at ``validate``. An unreadable checkpoint, or one of another model class than
        the config's, stops first."""
        subcommand = self.config.get("subcommand")
        if not (subcommand and self.config[subcommand].get("ckpt_path")):
            return super()._parse_ckpt_path()
        config = self.config[subcommand]
        check_checkpoint_kind(Path(config.ckpt_path), config.get("model"))
        super()._parse_ckpt_path()
        overrides = model_init_overrides(self._command_line)
        if overrides:
            model = {"class_path": self.config[subcommand].model.class_path, "init_args": overrides}
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)


def misplaced_flag_message(command_line: list[str]) -> str | None:
    """The error for ``--trainer.callbacks.every_n_train_steps`` (jsonargparse gives it to the config's last
    callback, e.g. a figure): the checkpoint interval is ``--checkpoint.every_n_train_steps``."""
    for token in command_line:
        if token.split("=")[0] in ("--trainer.callbacks.every_n_train_steps",
                                   "--trainer.callbacks.init_args.every_n_train_steps"):
            value = token.partition("=")[2] or "N"
            return (f"{token.split('=')[0]} sets an option of the config's last callback, not the checkpoint "
                    f"interval: use --checkpoint.every_n_train_steps={value}")
    return None


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


def default_parser_kwargs(run: bool) -> dict[str, Any]:
    """``default_config_files`` for each subcommand parser (``run=True``) or for the single parser."""
    if not TRAINER_DEFAULTS.is_file():
        return {}
    defaults = {"default_config_files": [str(TRAINER_DEFAULTS)]}
    return {name: dict(defaults) for name in LightningCLI.subcommands()} if run else defaults


def _flag_values(command_line: list[str], *names: str) -> list[str]:
    """Values of ``--name=v`` / ``--name v`` flags."""
    values = []
    for i, token in enumerate(command_line):
        name, sep, value = token.partition("=")
        if name in names:
            if sep:
                values.append(value)
            elif i + 1 < len(command_line):
                values.append(command_line[i + 1])
    return values


def moved_path_message(command_line: list[str]) -> str | None:
    """The error for a ``--config`` that names a removed config file, or a ``--ckpt_path`` that does not exist
    beside the ``final.ckpt`` runs write; ``None`` when neither applies."""
    for value in _flag_values(command_line, "--config", "-c"):
        path = Path(value)
        if path.exists():
            continue
        for old, new in RENAMED_CONFIGS.items():
            if path.as_posix().endswith(old):
                return f"{value} no longer exists: a quality is now a delta on the benchmark's base config, {new}"
    for value in _flag_values(command_line, "--ckpt_path"):
        path = Path(value)
        if path.exists():
            continue
        if path.name != FINAL and (path.parent / FINAL).is_file():
            return (f"{value} does not exist; a completed fit writes {path.parent / FINAL} "
                    f"(and a resumable last.ckpt): --ckpt_path {path.parent / FINAL}")
        seeds = sorted(path.parent.glob(f"seed*/{path.name}"))
        if seeds:
            return (f"{value} does not exist; runs now write one folder per seed: "
                    + " or ".join(f"--ckpt_path {p}" for p in seeds[:3]))
    return None


def delta_message(command_line: list[str]) -> str | None:
    """The error for a ``--config`` delta (``model``/``data`` settings without a ``class_path``) that comes before
    any config or flag naming the class, e.g. ``--config configs/mpe/medium/student.yaml`` alone; ``None`` otherwise.
    """
    named = {group for group in ("model", "data") for token in command_line
             if token in (f"--{group}", f"--{group}.class_path") or token.startswith((f"--{group}=",
                                                                                       f"--{group}.class_path="))}
    for value in _flag_values(command_line, "--config", "-c"):
        path = Path(value)
        try:
            config = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, yaml.YAMLError):
            return None  # the parser reports it
        for group in ("model", "data"):
            section = config.get(group) if isinstance(config, dict) else None
            if group in named or section is None:
                continue
            if not isinstance(section, dict) or "class_path" in section:  # a class path, alone or with init_args
                named.add(group)
                continue
            base = path.parent.parent / path.name
            stack = (f"--config {base} --config {value}" if base.is_file()
                     else f"--config <base config> --config {value}")
            return (f"{value} sets {group} options but no {group}.class_path: it is a delta on a base config "
                    f"(its header names it); stack it after that base: {stack}")
    return None


CLI_KWARGS: dict[str, Any] = dict(model_class=LightningModule, datamodule_class=LightningDataModule,
                                  subclass_mode_model=True, subclass_mode_data=True, auto_configure_optimizers=False)


def main(args: list[str] | None = None, run: bool = True) -> MACFlowCLI:
    """Run the CLI; a ``fit`` stopped by SIGTERM (``last.ckpt`` saved) exits with status :data:`EXIT_SIGTERM`."""
    try:
        return MACFlowCLI(**CLI_KWARGS, save_config_kwargs={"overwrite": True}, args=args, run=run)
    except SIGTERMException:
        print("macflow: stopped by SIGTERM (a fit saved last.ckpt first: resume it with --ckpt_path "
              "<trainer.default_root_dir>/last.ckpt)", file=sys.stderr)
        raise SystemExit(EXIT_SIGTERM) from None


class _Built(Exception):
    def __init__(self, parser) -> None:
        self.parser = parser


class _ParserOnly(MACFlowCLI):
    """Stops right after building the parser: nothing is parsed, seeded or instantiated."""

    def parse_arguments(self, parser, args) -> None:
        raise _Built(parser)


@functools.lru_cache(maxsize=2)
def config_parser(trainer_defaults: bool = True):
    """The parser of ``MACFlowCLI(run=False)`` (no subcommand), built once; without ``trainer_defaults`` it starts
    from Lightning's own trainer defaults instead of :data:`TRAINER_DEFAULTS`."""
    try:
        _ParserOnly(**CLI_KWARGS, run=False, parser_kwargs=None if trainer_defaults else {})
    except _Built as built:
        return built.parser
    raise AssertionError("unreachable")  # pragma: no cover


def resolve_config(args: list[str], trainer_defaults: bool = True, keep_none: bool = False) -> dict[str, Any]:
    """The full config that ``python -m macflow fit <args>`` runs with (every default filled in, as
    ``--print_config`` shows it), without building anything (no model, data or teacher checkpoint is loaded): e.g.
    to compare or hash runs. ``keep_none`` keeps the options set to ``None`` (the experiment runner hashes them)."""
    message = moved_path_message(list(args))
    if message:
        raise FileNotFoundError(message)
    message = delta_message(list(args))
    if message:
        raise ValueError(message)
    parser = config_parser(trainer_defaults)
    parsed = parser.parse_args(list(args))
    return yaml.safe_load(parser.dump(parsed, skip_none=False, skip_check=True) if keep_none else parser.dump(parsed))
