"""``ObservationNormalizer``: z-scores observations per agent and feature with statistics of the training data.

Locomotion observations mix features of very different scales (joint angles and velocities: in the generated
Hopper medium data their stds range from 0.04 to 6.1); an MLP fed them raw generalises worse off the logged states
(the usual fix in offline RL, e.g. TD3+BC). The statistics are buffers,
so checkpoints and exported per-agent policies carry them and deployment normalises exactly as training did.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from macflow.modules.layers import check_shape


class ObservationNormalizer(nn.Module):
    """``(obs - mean) / std`` per agent and feature; the identity until :meth:`fit` is called.

    Args:
        n_agents, obs_dim: the observation shape ``[N, O]``.
        min_std: features whose std over the data is below this (constants such as padding) are only centred.
    """

    def __init__(self, n_agents: int, obs_dim: int, min_std: float = 1e-3) -> None:
        super().__init__()
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(n_agents, obs_dim))
        self.register_buffer("std", torch.ones(n_agents, obs_dim))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, observations: Tensor, chunk: int = 65536) -> None:
        """Set the statistics from every observation ``[M, N, O]`` of the data (float64 sums, in chunks, so a large
        dataset costs no full-size copy)."""
        check_shape("observations", observations, [None, *self.mean.shape])
        if observations.shape[0] == 0:
            raise ValueError("cannot fit observation statistics on an empty dataset")
        total = torch.zeros_like(self.mean, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, observations.shape[0], chunk):
            x = observations[start:start + chunk].to(total.device, torch.float64)
            total += x.sum(0)
            squares += x.square().sum(0)
        mean = total / observations.shape[0]
        std = (squares / observations.shape[0] - mean.square()).clamp_min(0.0).sqrt()
        std = torch.where(std < self.min_std, torch.ones_like(std), std)
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.fitted.fill_(True)

    def forward(self, obs: Tensor) -> Tensor:
        """Normalised observations ``[..., N, O]``."""
        return (obs - self.mean) / self.std
