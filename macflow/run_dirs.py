"""Run directories: ``{seed}`` / ``{model}`` placeholders in config strings, and the checks that keep one run from
writing over another or resuming from a checkpoint of another kind.

A fresh ``fit`` may write into its ``trainer.default_root_dir`` only when the folder is empty or holds checkpoints of
the same resolved config (hashed as the experiment runner hashes it, :mod:`macflow.run_config`); a ``--ckpt_path``
must hold the config's model class. Both stop with an :class:`~macflow.errors.InputError` naming the fixes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from macflow.callbacks import FINAL
from macflow.checkpoints import model_class_path, read_checkpoint, run_record, short_class
from macflow.errors import InputError

SEED, MODEL = "{seed}", "{model}"
"""Placeholders in config strings for the run's ``seed_everything`` and its model's class name."""


def check_checkpoint_kind(path: Path, model: Any) -> None:
    """Stop when ``--ckpt_path`` cannot be read or holds another LightningModule class than the config's ``model``
    (Lightning would otherwise rebuild the checkpoint's class and run it under this config)."""
    if str(path) in ("last", "best", "hpc", "registry"):  # Lightning's own names, resolved by the Trainer
        return
    checkpoint = read_checkpoint(path, "--ckpt_path")
    saved = model_class_path(checkpoint)
    wanted = getattr(model, "class_path", None) if model is not None else None
    if saved is None or wanted is None or saved == wanted or short_class(saved) == short_class(wanted):
        return
    configs = sorted(path.parent.glob("lightning_logs/version_*/config.yaml"))
    fix = (f"--config {configs[-1]} (the config that wrote it)" if configs else
           f"the config that trained the {short_class(saved)}")
    raise InputError(f"--ckpt_path {path} holds a {short_class(saved)} checkpoint but the config's model is "
                     f"{short_class(wanted)}: pass {fix}, or a {short_class(wanted)} checkpoint")


def check_run_dir(root: Path, config: dict[str, Any]) -> None:
    """Stop a fresh ``fit`` into ``root`` when its checkpoints were written by a run of another resolved config
    (hashed as the experiment runner hashes it); the same config may write again, as it reproduces the run."""
    for name in ("last.ckpt", FINAL):
        path = root / name
        if not path.is_file():
            continue
        try:
            theirs = run_record(read_checkpoint(path, "trainer.default_root_dir file"))
        except InputError:
            raise InputError(f"trainer.default_root_dir {root} holds an unreadable {name}: delete it (or the folder) "
                             "or pick another --trainer.default_root_dir") from None
        if "config" not in theirs:
            raise InputError(f"trainer.default_root_dir {root} holds {name} of an earlier run with no recorded "
                             f"config: resume it with --ckpt_path {path}, pick another --trainer.default_root_dir, "
                             "or delete the folder")
        changed = config_changes(theirs["config"], config)
        if changed:
            raise InputError(f"trainer.default_root_dir {root} holds {name} of another run ({changed}): pick another "
                             f"--trainer.default_root_dir, resume that run with --ckpt_path {path}, or delete the "
                             "folder")
        return


def config_changes(old: dict[str, Any], new: dict[str, Any], shown: int = 3) -> str:
    """``key: old -> new`` for the first ``shown`` dotted keys that differ, and how many more."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    text = ", ".join(f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out


def fill_placeholders(config: Any, seed: Any, model_class: str | None) -> None:
    """Replace :data:`SEED` by ``seed`` and :data:`MODEL` by the model's class name in every string of ``config``
    (a jsonargparse Namespace), in place."""
    swaps = {}
    if seed is not None and not isinstance(seed, bool):
        swaps[SEED] = str(seed)
    if model_class:
        swaps[MODEL] = short_class(model_class)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for placeholder, text in swaps.items():
                value = value.replace(placeholder, text)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, Namespace):
            for key, item in vars(value).items():
                setattr(value, key, fill(item))
        return value

    fill(config)
