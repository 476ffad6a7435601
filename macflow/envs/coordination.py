"""A one-step cooperative coordination game that needs no simulator and shows why a *joint* teacher matters.

Each sample draws a shared context ``s ~ U[-1, 1]`` that every agent observes (plus private distractor features).
The team is rewarded for playing one of ``n_modes`` coordinated joint actions:

* continuous (A = 2): in mode m agent i plays the unit-circle point at angle
  ``theta_{(m + i) mod n_modes} + s * pi / 8`` (scaled by 0.8), so agents hold *different* points in every mode;
  the team reward is ``exp(-d^2 / (2 * 0.25^2))`` with ``d`` the joint distance to the nearest mode.
* discrete (A = n_modes actions): in mode m every agent plays action m; one action, the same for all agents, is
  illegal in each sample; the reward is 1 when all agents play the same legal action, else 0.

The logged data plays every mode equally often with a little noise, so each agent's marginal is uniform over its
points: an agent alone looks random and only the joint action is meaningful (XOR-like). A factored (per-agent)
model samples each agent independently and is coherent only ``n_modes^(1 - N)`` of the time; the joint teacher
must not be. Evaluation is exact: the reward of the sampled joint actions. The logged data is made by
:class:`macflow.datamodules.CoordinationDataModule`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv

RADIUS = 0.8
REWARD_WIDTH = 0.25
MODE_TOLERANCE = 0.2
"""An agent is 'in' a mode when within this distance of its point for that mode."""


def mode_points(s: Tensor, n_agents: int, n_modes: int) -> Tensor:
    """Continuous mode points ``[B, n_modes, N, 2]`` for contexts ``s [B]``."""
    m = torch.arange(n_modes, device=s.device, dtype=s.dtype)
    i = torch.arange(n_agents, device=s.device, dtype=s.dtype)
    k = (m[:, None] + i[None, :]) % n_modes  # [M, N]
    theta = math.pi / 4 + k * (2 * math.pi / n_modes)
    theta = theta[None] + s[:, None, None] * math.pi / 8  # [B, M, N]
    return RADIUS * torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)


def continuous_reward(actions: Tensor, s: Tensor, n_modes: int) -> Tensor:
    """Team reward ``[B]`` of joint actions ``[B, N, 2]``."""
    points = mode_points(s, actions.shape[1], n_modes)
    d2 = (actions[:, None] - points).pow(2).sum((-1, -2)).min(1).values
    return torch.exp(-d2 / (2 * REWARD_WIDTH**2))


def joint_mode(actions: Tensor, s: Tensor, n_modes: int, legal: Tensor | None = None) -> Tensor:
    """Index of the coordinated mode each joint action is in, or -1 when it is in none: ``[B]``.

    Continuous actions ``[B, N, 2]``; discrete actions one-hot ``[B, N, n_modes]`` (with ``legal [B, N, n_modes]``).
    """
    if actions.shape[-1] == n_modes and legal is not None:
        choice = actions.argmax(-1)  # [B, N]
        same = (choice == choice[:, :1]).all(1)
        ok = legal.gather(-1, choice[..., None]).squeeze(-1).all(1)
        return torch.where(same & ok, choice[:, 0], -1)
    points = mode_points(s, actions.shape[1], n_modes)
    close = ((actions[:, None] - points).norm(dim=-1) < MODE_TOLERANCE).all(-1)  # [B, M]
    return torch.where(close.any(1), close.float().argmax(1), -1)


class CoordinationGame:
    """Contexts, observations and rewards of the game (shared by data generation and evaluation)."""

    def __init__(self, n_agents: int, n_modes: int, private_dim: int, discrete: bool) -> None:
        self.n_agents, self.n_modes, self.private_dim, self.discrete = n_agents, n_modes, private_dim, discrete

    @property
    def obs_dim(self) -> int:
        return 1 + self.private_dim

    @property
    def action_dim(self) -> int:
        return self.n_modes if self.discrete else 2

    def contexts(self, n: int, gen: torch.Generator) -> dict[str, Tensor]:
        s = torch.rand(n, generator=gen) * 2 - 1
        private = torch.randn(n, self.n_agents, self.private_dim, generator=gen)
        obs = torch.cat([s[:, None, None].expand(-1, self.n_agents, 1), private], -1)
        out = {"s": s, "obs": obs, "state": torch.cat([s[:, None], private.flatten(1)], -1)}
        if self.discrete:
            blocked = torch.randint(self.n_modes, (n,), generator=gen)
            legal = torch.ones(n, self.n_modes, dtype=torch.bool)
            legal[torch.arange(n), blocked] = False
            out["legal"] = legal[:, None, :].expand(-1, self.n_agents, -1).clone()
        return out

    def expert_actions(self, ctx: dict[str, Tensor], noise: float, gen: torch.Generator) -> Tensor:
        """Coordinated joint actions, each mode equally likely among the legal ones."""
        n = ctx["s"].shape[0]
        if self.discrete:
            weights = ctx["legal"][:, 0].float()
            mode = torch.multinomial(weights, 1, generator=gen).squeeze(1)
            return torch.nn.functional.one_hot(mode, self.n_modes).float()[:, None].expand(-1, self.n_agents, -1)
        mode = torch.randint(self.n_modes, (n,), generator=gen)
        points = mode_points(ctx["s"], self.n_agents, self.n_modes)[torch.arange(n), mode]
        return (points + noise * torch.randn(points.shape, generator=gen)).clamp(-1, 1)

    def reward(self, ctx: dict[str, Tensor], actions: Tensor) -> Tensor:
        if self.discrete:
            return (joint_mode(actions, ctx["s"], self.n_modes, ctx["legal"]) >= 0).float()
        return continuous_reward(actions, ctx["s"], self.n_modes)


class CoordinationEnv(MultiAgentEnv):
    """One decision per episode; the reward is exact.

    Episode metrics: ``coordinated`` (the joint action is in a mode) and ``mode_<k>`` for each mode k (the joint
    action is in mode k, as :func:`joint_mode` decides), so their means are the share of episodes in each mode.
    """

    max_steps = 1

    def __init__(self, game: CoordinationGame, seeds: list[int]) -> None:
        self.game, self.n_episodes = game, len(seeds)
        ctx = [game.contexts(1, torch.Generator().manual_seed(int(s))) for s in seeds]
        self.ctx = {k: torch.cat([c[k] for c in ctx]) for k in ctx[0]}
        self.modes = torch.full((self.n_episodes,), -1, dtype=torch.long)

    def reset(self) -> EnvStep:
        return EnvStep(self.ctx["obs"], torch.zeros(self.n_episodes), torch.zeros(self.n_episodes, dtype=torch.bool),
                       self.ctx.get("legal"))

    def step(self, actions: Tensor) -> EnvStep:
        reward = self.game.reward(self.ctx, actions)
        self.modes = joint_mode(actions, self.ctx["s"], self.game.n_modes, self.ctx.get("legal"))
        return EnvStep(self.ctx["obs"], reward, torch.ones(self.n_episodes, dtype=torch.bool), self.ctx.get("legal"))

    def episode_metrics(self) -> dict[str, Tensor]:
        metrics = {"coordinated": (self.modes >= 0).float()}
        metrics.update({f"mode_{k}": (self.modes == k).float() for k in range(self.game.n_modes)})
        return metrics
