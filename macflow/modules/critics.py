"""Per-agent critics ``Q_i(o_i, a_i)``: an ensemble of shared-weight MLPs with LayerNorm.

Contract (:class:`AgentCritic`): built as ``cls(obs_dim, action_dim, n_agents, **init_args)`` and called as
``forward(obs [B, N, O], actions [B, N, A]) -> q [K, B, N]`` for an ensemble of K members. Agent i's value sees
only agent i's observation and action, so a monotonic mixer on top keeps Individual-Global-Max.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from macflow.modules.layers import mlp, with_agent_ids


class AgentCritic(nn.Module):
    """Base class of per-agent critic ensembles."""

    n_critics: int

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.n_agents = obs_dim, action_dim, n_agents

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Per-agent values ``[K, B, N]``."""
        raise NotImplementedError


class EnsembleCritic(AgentCritic):
    """K independent MLPs on ``[onehot(i), o_i, a_i]`` (weights shared across agents), LayerNorm by default.

    Args:
        n_critics: ensemble size (the reference uses 2, aggregated by their mean).
        hidden_dims: hidden layer widths.
        layer_norm: LayerNorm after each hidden activation (keeps Q Lipschitz in the action; paper Prop. 4.3).
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, n_critics: int = 2,
                 hidden_dims: Sequence[int] = (256, 256, 256), layer_norm: bool = True) -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.n_critics = n_critics
        self.members = nn.ModuleList(
            mlp(n_agents + obs_dim + action_dim, list(hidden_dims), 1, layer_norm=layer_norm) for _ in range(n_critics)
        )

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        x = with_agent_ids(torch.cat([obs, actions], dim=-1), self.n_agents)
        return torch.stack([m(x).squeeze(-1) for m in self.members])
