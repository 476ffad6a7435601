"""The process-wide random state (torch CPU, every CUDA device, numpy, Python ``random``) as checkpointable data.

Training steps draw their noise (flow times, ``x_0``, the student's ``z``) from torch's global generator, so an
exact resume must put it back as it was at the saved step. Everything is stored as tensors and plain Python values,
so the state loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def process_rng_state() -> dict[str, Any]:
    """The current state of every process-wide generator; CUDA's only where CUDA is already in use."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda,
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate()}


def set_process_rng_state(state: dict[str, Any]) -> None:
    """Put back a :func:`process_rng_state`; CUDA states only where as many devices are visible as were saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
