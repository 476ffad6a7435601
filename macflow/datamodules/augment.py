"""Batch augmentation by a symmetry of the task: ``d4_augment`` for planar scenes like MPE simple_spread.

simple_spread's dynamics, rewards and start distribution (agents and landmarks uniform in the box [-1, 1]²) are
unchanged by the eight symmetries of the square (rotations by multiples of 90° and reflections). Every field of an
MPE observation is a 2-D vector (velocity, position, relative positions, communication) and an action is a 2-D force,
so applying one symmetry to a whole transition (observations, next observations and actions of all agents) yields
another transition the simulator could have produced. Augmenting a batch this way shows the models up to eight times
as many distinct scenes for free; it is exact, so it cannot bias the data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

BatchTransform = Callable[[dict[str, Tensor], torch.Generator], dict[str, Tensor]]
"""``(batch, generator) -> batch``: applied by :class:`~macflow.datamodules.sampling.RandomBatches` to each batch."""

D4_MATRICES = torch.tensor([
    [[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],  # rotations by 0, 90, 180, 270°
    [[1, 0], [0, -1]], [[-1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]],  # reflections
], dtype=torch.float32)
"""The eight symmetries of the square as 2x2 matrices acting on column vectors."""

PLANAR_KEYS = ("obs", "next_obs", "actions")


def d4_augment(batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Apply one random symmetry of the square per transition to every 2-D vector of ``obs``, ``next_obs`` and
    ``actions`` (``[B, N, 2k]``: consecutive pairs are (x, y)) that the batch has; other keys (rewards, dones) are
    invariant."""
    first = batch["actions"]
    g = torch.randint(len(D4_MATRICES), (first.shape[0],), generator=generator, device=first.device)
    m = D4_MATRICES.to(first.device)[g]  # [B, 2, 2]
    out = dict(batch)
    for key in (k for k in PLANAR_KEYS if k in batch):
        x = batch[key]
        if x.shape[-1] % 2:
            raise ValueError(f"d4_augment needs 2-D vector fields, but batch[{key!r}] has {x.shape[-1]} features")
        pairs = x.unflatten(-1, (-1, 2))  # [B, N, k, 2]
        out[key] = torch.einsum("bij,bnkj->bnki", m.to(x.dtype), pairs).flatten(-2)
    return out
