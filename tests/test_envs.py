"""The environment contract and ``rollout``: per-episode returns stop at each episode's end, one policy call per
step for every episode, metrics of the env merged in, and the env closed afterwards."""

from __future__ import annotations

import torch
from torch import Tensor

from macflow.envs import EnvStep, MultiAgentEnv, rollout


class CountdownEnv(MultiAgentEnv):
    """Episode e lasts ``lengths[e]`` steps; the reward of a step is the sum of the actions (zero after the end)."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = torch.tensor(lengths)
        self.n_episodes, self.max_steps = len(lengths), 10
        self.t, self.closed, self.policy_batches = 0, False, []

    def reset(self) -> EnvStep:
        self.t = 0
        return EnvStep(torch.zeros(self.n_episodes, 2, 1), torch.zeros(self.n_episodes),
                       torch.zeros(self.n_episodes, dtype=torch.bool))

    def step(self, actions: Tensor) -> EnvStep:
        self.policy_batches.append(actions.shape[0])
        self.t += 1
        reward = torch.where(self.t <= self.lengths, actions.sum((1, 2)), torch.zeros(()))
        obs = torch.full((self.n_episodes, 2, 1), float(self.t))
        return EnvStep(obs, reward, self.t >= self.lengths)

    def episode_metrics(self) -> dict[str, Tensor]:
        return {"long": (self.lengths > 2).float()}

    def close(self) -> None:
        self.closed = True


def test_rollout_sums_rewards_until_each_episode_ends():
    env = CountdownEnv([1, 3, 2])
    out = rollout(env, lambda obs, legal: torch.ones(obs.shape[0], 2, 1) * (obs[:, :1] + 1))
    # step t (1-based) plays 2 * t per episode: returns 2, 2+4+6, 2+4
    assert torch.equal(out["return"], torch.tensor([2.0, 12.0, 6.0], dtype=torch.float64))
    assert torch.equal(out["length"], torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64))
    assert torch.equal(out["long"], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert env.policy_batches == [3, 3, 3]  # stops once every episode is over, all episodes in each call
    assert env.closed
