"""Decentralised one-step student policies ``mu_i(o_i, z_i)``: one forward pass per agent at run time.

Contract (:class:`StudentPolicy`): built as ``cls(obs_dim, action_dim, n_agents, noise_dim, **init_args)`` and
called as ``forward(obs [B, N, O], z [B, N, noise_dim]) -> [B, N, A]``. Agent i's output may depend only on
``obs[:, i]`` and ``z[:, i]`` (tests check this): that is what makes the policy deployable without communication.
Continuous students return raw (unclipped) actions; discrete students return logits.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from macflow.modules.layers import mlp, with_agent_ids


class StudentPolicy(nn.Module):
    """Base class of student policies: subclass it and implement :meth:`forward`."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, noise_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.n_agents, self.noise_dim = obs_dim, action_dim, n_agents, noise_dim

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Per-agent actions (or logits) ``[B, N, A]`` from local observations and noise."""
        raise NotImplementedError


class SharedMLPPolicy(StudentPolicy):
    """One MLP shared by all agents on ``[onehot(i), o_i, z_i]`` (the paper's shared weights plus agent id).

    Args:
        hidden_dims: hidden layer widths.
        layer_norm: LayerNorm after each hidden activation.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, noise_dim: int,
                 hidden_dims: Sequence[int] = (256, 256, 256), layer_norm: bool = False) -> None:
        super().__init__(obs_dim, action_dim, n_agents, noise_dim)
        self.net = mlp(n_agents + obs_dim + noise_dim, list(hidden_dims), action_dim, layer_norm=layer_norm)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.net(with_agent_ids(torch.cat([obs, z], dim=-1), self.n_agents))


