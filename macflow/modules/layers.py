"""Small building blocks shared by the networks: an MLP, a time embedding and agent-id features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, layer_norm: bool = False) -> nn.Sequential:
    """Linear -> GELU (-> LayerNorm) per hidden layer, then a linear output layer (the reference block)."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_dims:
        layers += [nn.Linear(d, h), nn.GELU()]
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """Fourier features of a time ``t`` in [0, 1]: ``[sin(2^k pi t), cos(2^k pi t)]``, ``[B] -> [B, dim]``.

    The same frequencies as the reference's discrete flow (k = 0 .. dim/2 - 1).
    """
    half = dim // 2
    freqs = math.pi * 2.0 ** torch.arange(half, device=t.device, dtype=t.dtype)
    angles = t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def agent_ids(batch_shape: Sequence[int], n_agents: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """One-hot agent identities broadcast to ``[*batch_shape, N, N]``."""
    eye = torch.eye(n_agents, device=device, dtype=dtype)
    return eye.expand(*batch_shape, n_agents, n_agents)


def with_agent_ids(x: Tensor, n_agents: int) -> Tensor:
    """Prepend the one-hot agent id to per-agent features: ``[..., N, D] -> [..., N, N + D]``."""
    ids = agent_ids(x.shape[:-2], n_agents, x.device, x.dtype)
    return torch.cat([ids, x], dim=-1)


def check_shape(name: str, x: Tensor, expected: Sequence[int | None]) -> None:
    """Raise a readable error when ``x`` does not have ``expected`` shape (``None`` = any size)."""
    ok = x.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(x.shape)}")
