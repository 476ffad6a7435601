"""Mixers ``Q_tot = f(Q_1 .. Q_N, s)`` that are monotonic in every ``Q_i`` (Individual-Global-Max holds).

Contract (:class:`Mixer`): built as ``cls(n_agents, state_dim, **init_args)`` and called as
``forward(q [..., N], state [..., S]) -> [...]``; ``state`` is the global state, or all observations flattened
when the data has no state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Mixer(nn.Module):
    """Base class of value mixers."""

    def __init__(self, n_agents: int, state_dim: int) -> None:
        super().__init__()
        self.n_agents, self.state_dim = n_agents, state_dim

    def forward(self, q: Tensor, state: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class VDNMean(Mixer):
    """``Q_tot = mean_i Q_i`` (the reference code's continuous mixer; keeps Q on the team-reward scale)."""

    def forward(self, q: Tensor, state: Tensor) -> Tensor:
        return q.mean(-1)


class VDNSum(Mixer):
    """``Q_tot = sum_i Q_i`` (VDN; the reference code's discrete mixer)."""

    def forward(self, q: Tensor, state: Tensor) -> Tensor:
        return q.sum(-1)


class QMIX(Mixer):
    """QMIX: a state-conditioned mixing network with non-negative weights (hypernetworks, Rashid et al. 2018).

    Args:
        embed_dim: width of the mixing layer.
        hypernet_dim: hidden width of the hypernetworks.
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_dim: int = 64) -> None:
        super().__init__(n_agents, state_dim)
        self.embed_dim = embed_dim
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_dim), nn.ReLU(),
                                      nn.Linear(hypernet_dim, n_agents * embed_dim))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_dim), nn.ReLU(), nn.Linear(hypernet_dim, embed_dim))
        self.hyper_b2 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, q: Tensor, state: Tensor) -> Tensor:
        state = state.expand(*q.shape[:-1], state.shape[-1])
        w1 = self.hyper_w1(state).abs().view(*q.shape[:-1], self.n_agents, self.embed_dim)
        hidden = F.elu(torch.einsum("...n,...ne->...e", q, w1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.hyper_b2(state).squeeze(-1)
