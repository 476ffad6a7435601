"""MPE simple_spread (cooperative navigation) on mpe2: one episode, and E episodes batched for evaluation.

Environment: ``mpe2.simple_spread_v3.parallel_env(N, continuous_actions=True, max_cycles=25)``, imported when an
episode is made. Agents act with the OMAR convention, a 2-D force ``u in [-1, 1]^2``, mapped onto mpe2's 5-dim
action ``[0, max(-u_x, 0), max(u_x, 0), max(-u_y, 0), max(u_y, 0)]``. The team reward of a step is the mean over
agents of the per-agent rewards, so the return is ``sum_t mean_i r_{t,i}``. Episodes end by the time limit
(truncation: they bootstrap). Two options make the env match the public OMAR data (datasets.md §5.3):

* ``physics="omar"``: OpenAI/OMAR integration order (velocity first, then position with the new velocity);
  simple_spread has no ``accel``, so OMAR's double acceleration does not apply.
* ``reward="omar"``: OMAR's modified reward ``sum_l min(1 / min_dist_l, 10) - 5 * collisions_i`` per agent.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv


def obs_dim_for(n_agents: int) -> int:
    """``[vel 2, pos 2, landmark_rel 2N, other_rel 2(N-1), comm 2(N-1)]``."""
    return 4 + 2 * n_agents + 4 * (n_agents - 1)


def to_mpe2_action(u: np.ndarray) -> np.ndarray:
    """OMAR 2-D forces ``[..., 2]`` in [-1, 1] -> mpe2 continuous actions ``[..., 5]`` in [0, 1]."""
    u = np.clip(np.asarray(u, dtype=np.float32), -1.0, 1.0)
    zero = np.zeros(u.shape[:-1] + (1,), dtype=np.float32)
    return np.concatenate([zero, np.maximum(-u[..., :1], 0), np.maximum(u[..., :1], 0),
                           np.maximum(-u[..., 1:], 0), np.maximum(u[..., 1:], 0)], axis=-1)


def _omar_integrate_state(self, p_force) -> None:
    """OpenAI/OMAR ``integrate_state``: damp, add force, clip speed, *then* move with the new velocity."""
    for i, entity in enumerate(self.entities):
        if not entity.movable:
            continue
        entity.state.p_vel = entity.state.p_vel * (1 - self.damping)
        if p_force[i] is not None:
            entity.state.p_vel = entity.state.p_vel + (p_force[i] / entity.mass) * self.dt
        if entity.max_speed is not None:
            speed = np.sqrt(np.square(entity.state.p_vel[0]) + np.square(entity.state.p_vel[1]))
            if speed > entity.max_speed:
                entity.state.p_vel = entity.state.p_vel / speed * entity.max_speed
        entity.state.p_pos = entity.state.p_pos + entity.state.p_vel * self.dt


def omar_rewards(world) -> np.ndarray:
    """OMAR's simple_spread reward per agent ``[N]``: ``sum_l min(1 / min_dist_l, 10) - 5 * collisions_i``."""
    agents = np.stack([a.state.p_pos for a in world.agents])  # [N, 2]
    marks = np.stack([lm.state.p_pos for lm in world.landmarks])  # [L, 2]
    min_dist = np.linalg.norm(marks[:, None] - agents[None], axis=-1).min(1)  # [L]
    cover = np.minimum(1.0 / np.maximum(min_dist, 1e-12), 10.0).sum()
    sizes = np.array([a.size for a in world.agents])
    d = np.linalg.norm(agents[:, None] - agents[None], axis=-1)
    hit = (d < sizes[:, None] + sizes[None]) & ~np.eye(len(agents), dtype=bool)
    return cover - 5.0 * hit.sum(1)


class SpreadEpisode:
    """One mpe2 simple_spread episode through the PettingZoo parallel API, with the OMAR options.

    ``reset(seed) -> obs [N, O]``; ``step(u [N, 2]) -> (obs [N, O], team reward, done)``; ``positions()`` gives
    ``(agents [N, 2], landmarks [N, 2])`` for figures.
    """

    def __init__(self, n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2", reward: str = "mpe2") -> None:
        try:
            from mpe2 import simple_spread_v3
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("MPE needs mpe2: pip install 'macflow[mpe]'") from err
        if physics not in ("mpe2", "omar") or reward not in ("mpe2", "omar"):
            raise ValueError(f"physics and reward must be 'mpe2' or 'omar', got {physics!r}, {reward!r}")
        self.env = simple_spread_v3.parallel_env(N=n_agents, max_cycles=max_cycles, continuous_actions=True)
        self.world = self.env.unwrapped.world
        if physics == "omar":
            self.world.integrate_state = types.MethodType(_omar_integrate_state, self.world)
        self.n_agents, self.reward = n_agents, reward
        self.names = [f"agent_{i}" for i in range(n_agents)]

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(seed))
        return np.stack([obs[a] for a in self.names]).astype(np.float32)

    def step(self, u: np.ndarray) -> tuple[np.ndarray, float, bool]:
        act = to_mpe2_action(u)
        obs, rew, term, trunc, _ = self.env.step({a: act[i] for i, a in enumerate(self.names)})
        if self.reward == "omar":
            team = float(omar_rewards(self.world).mean())
        else:
            team = float(np.mean([rew[a] for a in self.names]))
        done = any(term.values()) or any(trunc.values())
        return np.stack([obs[a] for a in self.names]).astype(np.float32), team, done

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([a.state.p_pos for a in self.world.agents]).copy(),
                np.stack([lm.state.p_pos for lm in self.world.landmarks]).copy())

    def close(self) -> None:
        self.env.close()


class MPESpreadEnv(MultiAgentEnv):
    """E simple_spread episodes stepped together (one policy call per step for all episodes and agents).

    Args:
        seeds: one reset seed per episode.
        record: keep agent and landmark positions of every step (``trajectories()``) for figures.
        n_agents, max_cycles, physics, reward: see :class:`SpreadEpisode`.
    """

    def __init__(self, seeds: Sequence[int], n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2",
                 reward: str = "mpe2", record: bool = False) -> None:
        self.seeds, self.n_episodes, self.max_steps = [int(s) for s in seeds], len(seeds), max_cycles
        self.episodes = [SpreadEpisode(n_agents, max_cycles, physics, reward) for _ in self.seeds]
        self.record = record
        self.done = np.zeros(self.n_episodes, dtype=bool)
        self.obs: np.ndarray | None = None
        self._agents: list[list[np.ndarray]] = []
        self._landmarks: list[np.ndarray] = []

    def _snapshot(self) -> None:
        if self.record:
            pos = [ep.positions() for ep in self.episodes]
            self._agents.append([p[0] for p in pos])
            if not self._landmarks:
                self._landmarks = [p[1] for p in pos]

    def reset(self) -> EnvStep:
        self.obs = np.stack([ep.reset(s) for ep, s in zip(self.episodes, self.seeds)])
        self.done[:] = False
        self._agents, self._landmarks = [], []
        self._snapshot()
        return EnvStep(torch.from_numpy(self.obs), torch.zeros(self.n_episodes),
                       torch.zeros(self.n_episodes, dtype=torch.bool))

    def step(self, actions: Tensor) -> EnvStep:
        if actions.shape[1:] != (self.episodes[0].n_agents, 2):
            raise ValueError(f"MPE actions must be [E, N, 2] forces in [-1, 1], got {list(actions.shape)}")
        u = actions.detach().cpu().numpy()
        rewards = np.zeros(self.n_episodes, dtype=np.float32)
        for e, ep in enumerate(self.episodes):
            if self.done[e]:
                continue
            self.obs[e], rewards[e], self.done[e] = ep.step(u[e])
        self._snapshot()
        return EnvStep(torch.from_numpy(self.obs.copy()), torch.from_numpy(rewards), torch.from_numpy(self.done.copy()))

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """Recorded ``(agents [E, T+1, N, 2], landmarks [E, N, 2])`` (needs ``record=True``)."""
        return np.stack(self._agents, 1), np.stack(self._landmarks)

    def close(self) -> None:
        for ep in self.episodes:
            ep.close()
