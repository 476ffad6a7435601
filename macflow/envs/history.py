"""``ObservationHistory``: an evaluation env whose agents see their last few observations, as the data does.

With ``obs_history: W`` a datamodule trains on windows of each agent's last W observations
(:meth:`macflow.transitions.TransitionData.with_history`); this wrapper keeps the same window during a rollout.
The window is refilled with the first observation at every reset, so it never carries one episode into the next.
"""

from __future__ import annotations

import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv


class ObservationHistory(MultiAgentEnv):
    """Wrap ``env`` so each agent observes ``[o_{t-W+1}, ..., o_t]`` flattened (oldest first) ``[E, N, W * O]``."""

    def __init__(self, env: MultiAgentEnv, frames: int) -> None:
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        self.env, self.frames = env, frames
        self.n_episodes, self.max_steps = env.n_episodes, env.max_steps
        self.window: Tensor | None = None  # [E, N, W, O]

    def reset(self) -> EnvStep:
        step = self.env.reset()
        self.window = step.obs.unsqueeze(2).repeat(1, 1, self.frames, 1)
        return self._seen(step)

    def step(self, actions: Tensor) -> EnvStep:
        if self.window is None:
            raise RuntimeError("call reset() before step()")
        step = self.env.step(actions)
        self.window = torch.cat([self.window[:, :, 1:], step.obs.unsqueeze(2)], dim=2)
        return self._seen(step)

    def _seen(self, step: EnvStep) -> EnvStep:
        assert self.window is not None
        return EnvStep(self.window.flatten(2), step.rewards, step.dones, step.legal)

    def episode_metrics(self) -> dict[str, Tensor]:
        return self.env.episode_metrics()

    def close(self) -> None:
        self.env.close()
