"""Where a record comes from: the hash of a run's resolved config, the git commit, the machine."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from macflow.run_config import IGNORED_KEYS, RUN_DIR, hashed_config

__all__ = ["IGNORED_KEYS", "RUN_DIR", "config_hash", "device_info", "git_commit", "hashed_config"]


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a (hashed) config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_commit(repo: str | Path = ".") -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout at ``repo``; dirty counts changed and untracked files outside docs/
    (records and tables change while a grid runs)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!docs"],
                               cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        return {"commit": head, "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict[str, Any]:
    """The machine a run was made on."""
    cuda = torch.cuda.is_available()
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "accelerator": torch.cuda.get_device_name() if cuda else "cpu"}
