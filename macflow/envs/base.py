"""The environment contract: batched evaluation environments and the rollout loop that scores a policy in them.

A :class:`MultiAgentEnv` runs E episodes side by side. Actions are ``[E, N, A]`` in [-1, 1] (continuous; the env
maps them to its own bounds) or one-hot (discrete). The team reward of a step is one number per episode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Policy = Callable[[Tensor, "Tensor | None"], Tensor]
"""``policy(obs [E, N, O], legal [E, N, A] | None) -> actions [E, N, A]``."""


@dataclass
class EnvStep:
    """What the agents see after a reset or a step."""

    obs: Tensor  # [E, N, O]
    rewards: Tensor  # [E] team reward of the step (zeros after reset)
    dones: Tensor  # [E] bool, episode over (terminated or truncated)
    legal: Tensor | None = None  # [E, N, A] bool legal actions, discrete envs only


class MultiAgentEnv(ABC):
    """E episodes of a cooperative multi-agent task, stepped together."""

    n_episodes: int
    max_steps: int

    @abstractmethod
    def reset(self) -> EnvStep:
        """Start all episodes (seeded at construction)."""

    @abstractmethod
    def step(self, actions: Tensor) -> EnvStep:
        """Advance every episode that is not done; finished episodes are ignored."""

    def episode_metrics(self) -> dict[str, Tensor]:
        """Extra per-episode metrics ``{name: [E]}`` after the rollout (e.g. success); none by default."""
        return {}

    def close(self) -> None:
        """Release simulator resources."""


@torch.no_grad()
def rollout(env: MultiAgentEnv, policy: Policy, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Run every episode of ``env`` to its end with ``policy``; one policy call per step for all episodes.

    Returns ``{"return": [E], "length": [E], **env.episode_metrics()}`` on ``device``.
    """
    step = env.reset()
    returns = torch.zeros(env.n_episodes, dtype=torch.float64)
    lengths = torch.zeros(env.n_episodes, dtype=torch.long)
    alive = torch.ones(env.n_episodes, dtype=torch.bool)
    for _ in range(env.max_steps):
        legal = None if step.legal is None else step.legal.to(device)
        actions = policy(step.obs.to(device), legal).cpu()
        if actions.is_floating_point():
            actions = actions.float()  # a policy under bf16 autocast answers in bfloat16; simulators take float32
        step = env.step(actions)
        returns += torch.where(alive, step.rewards.double().cpu(), 0.0)
        lengths += alive.long()
        alive &= ~step.dones.cpu()
        if not alive.any():
            break
    env.close()
    out = {"return": returns, "length": lengths.double(), **env.episode_metrics()}
    return {k: v.to(device=device, dtype=torch.float64) for k, v in out.items()}
