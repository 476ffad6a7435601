"""Scripted behaviour policies for MPE simple_spread, acting on each agent's own observation (OMAR 2-D forces).

All policies map ``obs [N, O]`` (mpe2 layout ``[vel 2, pos 2, landmark_rel 2N, other_rel 2(N-1), comm 2(N-1)]``)
to forces ``u [N, 2]`` in [-1, 1] and draw their randomness from the ``numpy.random.Generator`` they are given,
so an episode is reproducible from its seed.

* :class:`RandomPolicy`: ``u ~ U[-1, 1]^2`` per agent.
* :class:`ExpertPolicy`: at the first step the team picks a landmark assignment uniformly among the near-optimal
  ones (total start-to-landmark distance within ``tol`` of the minimum; data_generation.md §1.4) and keeps it for
  the episode, re-planning to the best assignment only if its pick leaves the near-optimal set; each agent runs
  the PD controller ``u = clip(kp * rel_landmark - kd * vel, -1, 1)``. The chosen
  assignment is the episode's ``mode`` (its index in ``itertools.permutations(range(N))``).
* :class:`NoisyExpertPolicy`: the expert plus Gaussian noise on the force (std ``sigma``), clipped (medium data).
"""

from __future__ import annotations

import itertools

import numpy as np


def assignments(n_agents: int) -> list[tuple[int, ...]]:
    """Every one-to-one agent -> landmark assignment; ``assignments(n)[mode][i]`` is agent i's landmark."""
    if n_agents > 7:
        raise ValueError(f"the scripted expert enumerates all N! assignments; N={n_agents} is too many (use N <= 7)")
    return list(itertools.permutations(range(n_agents)))


def landmark_rel(obs: np.ndarray, n_agents: int) -> np.ndarray:
    """Landmark positions relative to each agent ``[N, L, 2]`` from observations ``[N, O]``."""
    return obs[:, 4:4 + 2 * n_agents].reshape(obs.shape[0], n_agents, 2)


class RandomPolicy:
    """Uniform random forces in [-1, 1]^2."""

    name = "random"

    def __init__(self, n_agents: int) -> None:
        self.n_agents = n_agents
        self.mode = -1

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None:
        self.mode = -1

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=(self.n_agents, 2))


class ExpertPolicy:
    """Multimodal scripted expert: a random near-optimal landmark assignment, then a PD controller per agent.

    Args:
        n_agents: agents (= landmarks).
        tol: assignments whose total distance is within ``tol`` of the minimum are equally likely (0: Hungarian).
        kp, kd: PD gains (the measured best: 3, 1).
        replan: switch to the minimum-distance assignment when the current one is no longer within ``tol``.
    """

    name = "expert"

    def __init__(self, n_agents: int, tol: float = 0.25, kp: float = 3.0, kd: float = 1.0,
                 replan: bool = True) -> None:
        self.n_agents, self.tol, self.kp, self.kd, self.replan = n_agents, tol, kp, kd, replan
        self.perms = np.array(assignments(n_agents))  # [P, N]
        self.mode = -1

    def costs(self, obs: np.ndarray) -> np.ndarray:
        """Total agent-to-landmark distance of every assignment ``[P]``."""
        dist = np.linalg.norm(landmark_rel(obs, self.n_agents), axis=-1)  # [N agents, L]
        return dist[np.arange(self.n_agents)[None, :], self.perms].sum(1)

    def best(self, obs: np.ndarray) -> int:
        return int(np.argmin(self.costs(obs)))

    def near_optimal(self, obs: np.ndarray) -> np.ndarray:
        """Indices of the near-optimal assignments for the current observations."""
        cost = self.costs(obs)
        return np.nonzero(cost <= cost.min() + self.tol + 1e-9)[0]

    def reset(self, obs: np.ndarray, rng: np.random.Generator) -> None:
        candidates = self.near_optimal(obs)
        self.mode = int(candidates[rng.integers(len(candidates))])

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.replan:
            candidates = self.near_optimal(obs)
            if self.mode not in candidates:  # the episode's assignment fell out of the near-optimal set
                self.mode = int(candidates[0]) if len(candidates) == 1 else int(self.best(obs))
        target = landmark_rel(obs, self.n_agents)[np.arange(self.n_agents), self.perms[self.mode]]  # [N, 2]
        return np.clip(self.kp * target - self.kd * obs[:, 0:2], -1.0, 1.0)


class NoisyExpertPolicy(ExpertPolicy):
    """The expert with Gaussian force noise of std ``sigma`` (clipped to [-1, 1])."""

    name = "noisy_expert"

    def __init__(self, n_agents: int, sigma: float, tol: float = 0.25, kp: float = 3.0, kd: float = 1.0) -> None:
        super().__init__(n_agents, tol, kp, kd)
        self.sigma = sigma

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = super().__call__(obs, rng)
        return np.clip(u + self.sigma * rng.standard_normal(u.shape), -1.0, 1.0)
