"""Shared fixtures: one thread per process, and a coordination teacher trained once per test session."""

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
    """Replace the config's callbacks with a final checkpoint at ``root/<name>.ckpt``; the CLI's checkpoint group
    writes ``root/last.ckpt`` and ``root/final.ckpt`` when ``root`` is the run's ``trainer.default_root_dir``."""
    return ["--trainer.callbacks=macflow.callbacks.FinalCheckpoint", f"--trainer.callbacks.path={root}/{name}.ckpt"]


@pytest.fixture(scope="session")
def coordination_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped coordination teacher config, trained once (≈40 s on one core); returns the checkpoint path."""
    root = tmp_path_factory.mktemp("teacher")
    run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.val_check_interval=100000",
             *quiet_trainer_args(root), *coordination_callbacks(root, "teacher")])
    return root / "teacher.ckpt"
