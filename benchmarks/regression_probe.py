"""Plain regression of a student network on frozen teacher labels: the distillation term alone, no critic.

Shared by the probes that ask how well a decentralised student *could* imitate its teacher
(benchmarks/mpe_student_capacity.py, benchmarks/mamujoco_info_gap.py): fit on some transitions, score on held-out
ones. The network reads ``(inputs [T, N, D], noise [T, N, noise_dim])`` like a :class:`StudentPolicy`; the noise is
zeros (the policy's mean action) or fresh ``N(0, I)`` draws (as the student trains).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Augment = Callable[[dict[str, Tensor], torch.Generator], dict[str, Tensor]]


def student_noise(rows: int, n_agents: int, noise_dim: int, random: bool) -> Tensor:
    """The noise input ``[rows, N, noise_dim]``: fresh draws from the global generator, or zeros."""
    shape = (rows, n_agents, noise_dim)
    return torch.randn(shape) if random else torch.zeros(shape)


def fit_by_regression(net: nn.Module, inputs: Tensor, target: Tensor, train: Tensor, steps: int, noise_dim: int,
                      random_noise: bool, batch: int = 256, lr: float = 1e-3, augment: Augment | None = None,
                      augment_seed: int = 0) -> nn.Module:
    """Fit ``net`` to ``target [T, N, A]`` on the rows ``train`` by Adam on the squared error; returns ``net``.

    ``augment`` turns each batch's inputs and labels alike (``d4_augment``), drawn from its own generator."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    turns = torch.Generator().manual_seed(augment_seed)
    n = target.shape[1]
    for _ in range(steps):
        i = train[torch.randint(0, len(train), (batch,))]
        x, y = inputs[i], target[i]
        if augment is not None:
            turned = augment({"obs": x, "actions": y}, turns)
            x, y = turned["obs"], turned["actions"]
        loss = (net(x, student_noise(batch, n, noise_dim, random_noise)) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def squared_error(net: nn.Module, inputs: Tensor, target: Tensor, rows: Tensor, noise_dim: int,
                  random_noise: bool) -> Tensor:
    """Per-element squared error ``[len(rows), N, A]`` of ``net`` on the rows ``rows``."""
    noise = student_noise(len(rows), target.shape[1], noise_dim, random_noise)
    return (net(inputs[rows], noise) - target[rows]).pow(2)
