"""Shared fixtures: one thread per process, and coordination teachers (trained, or after one step) once a session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def run_cli(args: list[str], run: bool = True):
    """Run ``python -m macflow <args>`` in-process (fast); returns the LightningCLI object."""
    from macflow.cli import main

    old = sys.argv
    sys.argv = ["macflow"]  # keep pytest's own argv away from the CLI
    try:
        return main(args, run=run)
    finally:
        sys.argv = old


def save_checkpoint(module: torch.nn.Module, path: Path, state_dict: dict | None = None) -> Path:
    """What a Trainer writes that ``load_from_checkpoint`` reads: the module's hyperparameters and state dict
    (``state_dict`` to write another), for a module built in Python rather than trained."""
    import lightning

    torch.save({"hyper_parameters": dict(module.hparams), "pytorch-lightning_version": lightning.__version__,
                "state_dict": module.state_dict() if state_dict is None else state_dict}, path)
    return path


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (not a package) as a module, to test its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quiet_trainer_args(root: Path) -> list[str]:
    """Trainer overrides for tests: output under ``root``, no progress bar or model summary."""
    return [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]


def coordination_callbacks(root: Path, name: str) -> list[str]:
    """Replace the config's callbacks with a final checkpoint at ``root/<name>.ckpt`` and ``last.ckpt``."""
    return ["--trainer.callbacks=macflow.callbacks.FinalCheckpoint", f"--trainer.callbacks.path={root}/{name}.ckpt",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={root}", "--trainer.callbacks.save_last=true",
            "--trainer.callbacks.save_top_k=0"]


def write_teacher(root: Path, *extra: str) -> Path:
    """Fit the shipped coordination teacher config with ``extra`` overrides; returns ``root/teacher.ckpt``."""
    run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.val_check_interval=100000",
             *quiet_trainer_args(root), *coordination_callbacks(root, "teacher"), *extra])
    return root / "teacher.ckpt"


@pytest.fixture(scope="session")
def untrained_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The coordination teacher after one optimizer step (a few seconds): a real checkpoint, loadable by
    ``FlowTeacher.load_from_checkpoint``, for student tests that need its dims and mechanics, not its quality."""
    return write_teacher(tmp_path_factory.mktemp("untrained_teacher"), "--trainer.max_steps=1")


@pytest.fixture(scope="session")
def untrained_discrete_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As :func:`untrained_teacher`, on the discrete coordination game (4 one-hot actions per agent)."""
    return write_teacher(tmp_path_factory.mktemp("untrained_discrete_teacher"), "--trainer.max_steps=1",
                         "--data.init_args.discrete=true", "--data.init_args.n_samples=4000")


@pytest.fixture(scope="session")
def coordination_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped coordination teacher config, trained once (≈40 s on one core); returns the checkpoint path."""
    return write_teacher(tmp_path_factory.mktemp("teacher"))
