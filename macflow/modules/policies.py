"""Decentralised one-step student actors ``mu_i(o_i, z_i)``: one forward pass per agent at run time.

Contract (:class:`StudentPolicy`, the student's ``actor`` argument): built as
``cls(obs_dim, action_dim, n_agents, noise_dim, **init_args)`` and called as
``forward(obs [B, N, O], z [B, N, noise_dim]) -> [B, N, A]``. Agent i's output may depend only on ``obs[:, i]`` and
``z[:, i]`` (tests check this): that is what makes the actor deployable without communication. Continuous actors
return raw (unclipped) actions; discrete actors return logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from macflow.modules.layers import mlp, with_agent_ids


class StudentPolicy(nn.Module):
    """Base class of student actors (``model.init_args.actor``): subclass it and implement :meth:`forward`."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, noise_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.n_agents, self.noise_dim = obs_dim, action_dim, n_agents, noise_dim

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Per-agent actions (or logits) ``[B, N, A]`` from local observations and noise."""
        raise NotImplementedError


class SharedMLPPolicy(StudentPolicy):
    """Actor: one MLP shared by all agents on ``[onehot(i), o_i, z_i]`` (the paper's shared weights plus agent id).

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


class RecurrentHistoryPolicy(StudentPolicy):
    """Actor for partially observed tasks: a GRU, trained with the actor, reads the agent's last ``frames``
    observations (data and rollouts with ``data.init_args.obs_history: frames``), and an MLP shared by all agents
    maps ``[onehot(i), o_i(t), h_i, z_i]`` to the action, where ``h_i`` is the GRU's state after the newest frame.

    The window is the GRU's input sequence (oldest first), so its state restarts with every window and a rollout
    carries no hidden state between steps: the datamodule's :class:`~macflow.envs.history.ObservationHistory`
    keeps the window, refilled at each episode's start.

    Args:
        frames: observations per window; must equal the datamodule's ``obs_history`` (the student checks it when a trainer
            runs it).
        hidden_size: GRU state size.
        hidden_dims: widths of the MLP head.
        layer_norm: LayerNorm after each hidden activation of the head.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, noise_dim: int, frames: int = 4,
                 hidden_size: int = 128, hidden_dims: Sequence[int] = (256, 256), layer_norm: bool = False) -> None:
        super().__init__(obs_dim, action_dim, n_agents, noise_dim)
        if frames < 1 or obs_dim % frames:
            raise ValueError(f"RecurrentHistoryPolicy frames={frames} must divide the observation size {obs_dim} "
                             "(obs_history frames of one observation each): set frames to data.init_args.obs_history")
        self.frames, self.frame_dim = frames, obs_dim // frames
        self.encoder = nn.GRU(self.frame_dim, hidden_size, batch_first=True)
        self.net = mlp(n_agents + self.frame_dim + hidden_size + noise_dim, list(hidden_dims), action_dim,
                       layer_norm=layer_norm)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        b, n = obs.shape[:2]
        window = obs.reshape(b * n, self.frames, self.frame_dim)
        _, state = self.encoder(window)  # [1, B * N, hidden]
        memory = state[-1].reshape(b, n, -1)
        current = obs[..., -self.frame_dim:]
        return self.net(with_agent_ids(torch.cat([current, memory, z], dim=-1), self.n_agents))


class EntityAttentionPolicy(StudentPolicy):
    """Actor: a shared transformer over the entities in one agent's own observation (landmarks, other agents, ...).

    Observations that list several entities of one kind (MPE: relative landmark and agent positions) are read as
    a set of tokens, one per entity, plus a token for the agent itself (every observation dim outside the entity
    groups, its id and its noise). Self-attention runs over those tokens only, never across agents, so agent i
    still sees only ``obs[:, i]``; the action is read from its own token. On MPE the team's landmark assignment is
    a function of such a set, and a flat MLP generalises it poorly from logged data (docs/results_mpe.md).

    Args:
        entity_groups: ``[start, count, size]`` per kind: ``count`` entities of ``size`` dims each from obs dim
            ``start``; each kind has its own input embedding.
        width: token width.
        depth: transformer layers.
        heads: attention heads.
    """

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, noise_dim: int,
                 entity_groups: Sequence[Sequence[int]] = (), width: int = 64, depth: int = 2,
                 heads: int = 4) -> None:
        super().__init__(obs_dim, action_dim, n_agents, noise_dim)
        in_groups = torch.zeros(obs_dim, dtype=torch.bool)
        for start, count, size in entity_groups:
            if start < 0 or start + count * size > obs_dim or in_groups[start:start + count * size].any():
                raise ValueError(f"entity group [start={start}, count={count}, size={size}] must lie inside the "
                                 f"{obs_dim} observation dims and not overlap another group")
            in_groups[start:start + count * size] = True
        self.groups = [(int(start), int(count), int(size)) for start, count, size in entity_groups]
        self.register_buffer("own_dims", torch.nonzero(~in_groups).flatten(), persistent=False)
        self.embed_own = nn.Linear(len(self.own_dims) + n_agents + noise_dim, width)
        self.embed_groups = nn.ModuleList(nn.Linear(size, width) for _, _, size in self.groups)
        self.blocks = nn.ModuleList(EntityBlock(width, heads) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(width), mlp(width, [width], action_dim))

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        own = with_agent_ids(torch.cat([obs[..., self.own_dims], z], dim=-1), self.n_agents)
        tokens = [self.embed_own(own).unsqueeze(2)]
        for (start, count, size), embed in zip(self.groups, self.embed_groups):
            tokens.append(embed(obs[..., start:start + count * size].unflatten(-1, (count, size))))
        x = torch.cat(tokens, dim=2)  # [B, N, 1 + entities, width]: attention runs within one agent's tokens
        for block in self.blocks:
            x = block(x)
        return self.head(x[..., 0, :])


class EntityBlock(nn.Module):
    """Pre-LayerNorm transformer block over the token axis (-2) of ``[..., tokens, width]``.

    Written out with ``scaled_dot_product_attention`` rather than ``nn.TransformerEncoderLayer``: the latter's
    fused inference kernel has no ONNX form, and its unfused path traces a fixed batch size into exported graphs
    (``python -m macflow export``; tests/test_export.py covers this actor)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be a multiple of heads {heads}")
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.feed_forward = nn.Sequential(nn.LayerNorm(width), mlp(width, [2 * width], width))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(-3, -2)  # [..., heads, tokens, width / heads]
                   for t in self.qkv(self.attention_norm(x)).chunk(3, dim=-1))
        attended = nn.functional.scaled_dot_product_attention(q, k, v).transpose(-3, -2).flatten(-2)
        x = x + self.out(attended)
        return x + self.feed_forward(x)
