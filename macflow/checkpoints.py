"""Checkpoint files: written atomically, read with errors that name the file and the fix, and what a checkpoint
records about its run (the model class, the data fingerprint, the resolved config).

A checkpoint written through :class:`AtomicCheckpointIO` goes to a temporary file beside its target, is fsynced and
renamed into place, and the folder is fsynced: a full disk or a kill during a save leaves the previous file whole.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from macflow.errors import InputError
from macflow.files import atomic_write
from macflow.transitions import TransitionData

RECORD = "macflow"
"""Top-level checkpoint key of :func:`run_record`'s entries (``data_fingerprint``, ``config``, ``teacher``)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic on the target's filesystem, and whose reads turn a
    missing, truncated or corrupt file into an :class:`~macflow.errors.InputError` naming it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomically(checkpoint, Path(path))

    def load_checkpoint(self, path: _PATH, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location, weights_only)
        if not Path(path).is_file():
            raise missing_checkpoint_error(Path(path))
        try:
            return super().load_checkpoint(path, map_location, weights_only)
        except Exception as error:  # noqa: BLE001  (any failure to read it means the file is damaged)
            if _is_weights_only_refusal(error):
                raise
            raise corrupt_checkpoint_error(Path(path), error) from None


def save_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save(checkpoint)`` to ``path`` through :func:`~macflow.files.atomic_write` (its folder made first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def read_checkpoint(path: str | Path, option: str) -> dict[str, Any]:
    """The checkpoint dict in ``path`` on the CPU; ``option`` (e.g. ``--ckpt_path``) names where the user gave it.

    Missing or unreadable files raise :class:`InputError`. A checkpoint whose hyperparameters hold Python objects
    (a module built in Python, not from a config) is read with the full unpickler, as it was written by this user."""
    path = Path(path)
    if not path.is_file():
        raise missing_checkpoint_error(path, option)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            if not _is_weights_only_refusal(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001  (any failure to read it means the file is damaged)
        raise corrupt_checkpoint_error(path, error, option) from None


def missing_checkpoint_error(path: Path, option: str = "checkpoint") -> InputError:
    """The one-line error for a checkpoint path where no file is."""
    return InputError(f"{option} {path} not found: check the path (a completed fit writes "
                      "<default_root_dir>/final.ckpt, a running one last.ckpt)")


def corrupt_checkpoint_error(path: Path, error: BaseException, option: str = "checkpoint") -> InputError:
    """The one-line error for a checkpoint file that exists but cannot be read (truncated, empty, not a checkpoint)."""
    other = "final.ckpt" if path.name != "final.ckpt" else "last.ckpt"
    cause = "is empty" if path.stat().st_size == 0 else "is truncated or not a checkpoint"
    return InputError(f"{option} {path} {cause}: use another checkpoint of the run (e.g. {path.parent / other}) "
                      "or retrain it")


def _is_weights_only_refusal(error: BaseException) -> bool:
    return isinstance(error, pickle.UnpicklingError) and "weights_only" in str(error).replace(" ", "_").lower()


def _is_local(path: _PATH) -> bool:
    return type(get_filesystem(path)).__name__ == "LocalFileSystem"


def model_class_path(checkpoint: dict[str, Any]) -> str | None:
    """The ``class_path`` of the LightningModule a CLI run saved in ``checkpoint`` (``None`` when not recorded)."""
    return (checkpoint.get("hyper_parameters") or {}).get("_class_path")


def data_fingerprint(data: TransitionData) -> str:
    """``sha256`` over the names, dtypes, shapes and bytes of every tensor of ``data``: equal for the same dataset,
    different for another one of the same dims."""
    digest = hashlib.sha256()
    for name, tensor in sorted(data.tensors().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
        if tensor.numel():
            digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()


def datamodule_fingerprint(datamodule: Any) -> str | None:
    """:func:`data_fingerprint` of a datamodule's one-observation table (``frame_data``, else ``data``), so a run
    with ``obs_history`` windows and a one-observation run on the same dataset agree; ``None`` without a table."""
    data = getattr(datamodule, "frame_data", None)
    if data is None:
        data = getattr(datamodule, "data", None)
    return data_fingerprint(data) if data is not None and hasattr(data, "tensors") else None


def run_record(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What macflow recorded about the run that wrote ``checkpoint`` (empty for checkpoints without a record)."""
    return checkpoint.get(RECORD) or {}


def short_class(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]
