"""Vector fields ``v(x_t, t, obs)`` over the joint action, the teacher's pluggable network.

Contract (:class:`VectorField`): built as ``cls(obs_dim, action_dim, n_agents, **init_args)`` and called as
``forward(x_t [B, N, A], t [B], obs [B, N, O]) -> velocity [B, N, A]``. Three are shipped:

* :class:`AgentAttentionVectorField` (default): one token per agent, self-attention across agents, so agent i's
  velocity depends on every agent's observation and noisy action; cost grows gently with N.
* :class:`AgentMixerVectorField`: a shared per-agent MLP whose blocks also attend across agents, with every
  attention starting at zero: training starts from the per-agent model and adds cross-agent terms where they lower
  the loss. Joint like the attention field, and it generalises like the per-agent one on MPE (docs/results_mpe.md).
* :class:`JointMLPVectorField`: an MLP on all agents concatenated; joint, but sized for a fixed N.
* :class:`PerAgentVectorField`: a shared-weight per-agent MLP that sees only its own agent (what the public
  reference code does). Its joint sample is a product of independent per-agent flows; kept as an ablation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from macflow.modules.layers import mlp, sinusoidal_embedding, with_agent_ids


def per_agent_inputs(x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
    """Each agent's own features ``[onehot(i), o_i, x_i, t]``: ``[B, N, N + O + A + 1]``."""
    t_agents = t[:, None, None].expand(-1, x_t.shape[1], 1)
    return with_agent_ids(torch.cat([obs, x_t, t_agents], dim=-1), x_t.shape[1])


class VectorField(nn.Module):
    """Base class of teacher vector fields: subclass it and implement :meth:`forward`."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.n_agents = obs_dim, action_dim, n_agents

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Velocity ``[B, N, A]`` of the noisy joint action ``x_t [B, N, A]`` at time ``t [B]`` given ``obs``."""
        raise NotImplementedError


class AgentAttentionVectorField(VectorField):
    """Per-agent tokens ``[o_i, x_i]`` plus agent-id and time embeddings, mixed by self-attention over agents.

    Args:
        width: token width.
        depth: number of transformer blocks.
        heads: attention heads per block.
        time_features: size of the Fourier time features.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, width: int = 128, depth: int = 2,
                 heads: int = 4, time_features: int = 16) -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.time_features = time_features
        self.embed_in = mlp(obs_dim + action_dim, [width], width)
        self.agent_embedding = nn.Parameter(torch.randn(n_agents, width) * 0.02)
        self.embed_time = mlp(time_features, [width], width)
        block = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, action_dim))

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        tokens = self.embed_in(torch.cat([obs, x_t], dim=-1)) + self.agent_embedding
        tokens = tokens + self.embed_time(sinusoidal_embedding(t, self.time_features))[:, None, :]
        return self.head(self.blocks(tokens))


class AgentMixerVectorField(VectorField):
    """A shared per-agent MLP on ``[onehot(i), o_i, x_i, t]`` whose residual blocks also mix agents by attention.

    Each block is ``h += attention_over_agents(LN(h))`` then ``h += MLP(LN(h))``. The attention output projections
    start at zero, so the untrained field is a per-agent one: cross-agent terms grow only where they lower the loss.
    On MPE's joint observations this generalises far better than attention from the start (docs/results_mpe.md),
    and agent i's velocity still depends on every agent's observation and noisy action.

    Args:
        width: hidden width of every agent's features.
        depth: number of residual blocks.
        heads: attention heads per block.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, width: int = 128, depth: int = 2,
                 heads: int = 4) -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.embed_in = mlp(n_agents + obs_dim + action_dim + 1, [width], width)
        self.attention_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.attentions = nn.ModuleList(nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(depth))
        for attention in self.attentions:
            nn.init.zeros_(attention.out_proj.weight)
            nn.init.zeros_(attention.out_proj.bias)
        self.feed_forwards = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), mlp(width, [2 * width], width))
                                           for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, action_dim))

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        h = self.embed_in(per_agent_inputs(x_t, t, obs))
        for norm, attention, feed_forward in zip(self.attention_norms, self.attentions, self.feed_forwards):
            z = norm(h)
            h = h + attention(z, z, z, need_weights=False)[0]
            h = h + feed_forward(h)
        return self.head(h)


class JointMLPVectorField(VectorField):
    """An MLP on ``[all observations, all noisy actions, time features]`` that outputs the joint velocity."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, hidden_dims: Sequence[int] = (256, 256, 256),
                 time_features: int = 16) -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.time_features = time_features
        self.net = mlp(n_agents * (obs_dim + action_dim) + time_features, list(hidden_dims), n_agents * action_dim)

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        b = x_t.shape[0]
        h = torch.cat([obs.reshape(b, -1), x_t.reshape(b, -1), sinusoidal_embedding(t, self.time_features)], -1)
        return self.net(h).view(b, self.n_agents, self.action_dim)


class PerAgentVectorField(VectorField):
    """The reference code's field: a shared MLP on ``[onehot(i), o_i, x_i, t]``, blind to other agents."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int,
                 hidden_dims: Sequence[int] = (256, 256, 256)) -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.net = mlp(n_agents + obs_dim + action_dim + 1, list(hidden_dims), action_dim)

    def forward(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        return self.net(per_agent_inputs(x_t, t, obs))
