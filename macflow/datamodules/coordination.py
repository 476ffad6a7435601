"""``CoordinationDataModule``: logged coordinated play of the coordination game (:mod:`macflow.envs.coordination`).

The data plays every mode equally often with a little noise; evaluation runs :class:`CoordinationEnv`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.screening import BadTransitions
from macflow.envs.coordination import CoordinationEnv, CoordinationGame
from macflow.transitions import TransitionData


class CoordinationDataModule(OfflineMARLDataModule):
    """Logged coordinated play of the game above (generated in memory; it takes well under a second).

    Args:
        n_agents: agents in the team.
        n_modes: coordinated joint actions the data plays equally often.
        discrete: one-hot actions with legal-action masks instead of 2-D continuous actions.
        private_dim: private distractor features per agent.
        n_samples: logged decisions.
        action_noise: std of the Gaussian noise around the mode points in the logged continuous actions.
        data_seed, batch_size, n_eval_episodes, eval_batch_size, bad_transitions, obs_history: see
            :class:`OfflineMARLDataModule`.
    """

    def __init__(self, n_agents: int = 2, n_modes: int = 4, discrete: bool = False, private_dim: int = 2,
                 n_samples: int = 20_000, action_noise: float = 0.05, batch_size: int = 256,
                 n_eval_episodes: int = 1000, eval_batch_size: int = 1000, data_seed: int = 0,
                 bad_transitions: BadTransitions = "error", obs_history: int = 1) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed, bad_transitions, obs_history)
        self.save_hyperparameters()
        self.game = CoordinationGame(n_agents, n_modes, private_dim, discrete)
        self.n_agents, self.obs_dim, self.action_dim = n_agents, self.game.obs_dim, self.game.action_dim
        self.state_dim, self.discrete = 1 + n_agents * private_dim, discrete

    def build_data(self) -> TransitionData:
        gen = torch.Generator().manual_seed(self.data_seed)
        n = self.hparams.n_samples
        ctx = self.game.contexts(n, gen)
        actions = self.game.expert_actions(ctx, self.hparams.action_noise, gen)
        rewards = self.game.reward(ctx, actions)
        obs_table = torch.stack([ctx["obs"], ctx["obs"]], 1).flatten(0, 1)  # next obs: terminal, never used
        index = torch.arange(n) * 2
        return TransitionData(
            observations=obs_table, obs_index=index, next_obs_index=index + 1, actions=actions.contiguous(),
            rewards=rewards, terminals=torch.ones(n, dtype=torch.bool), episode_ids=torch.arange(n),
            states=torch.stack([ctx["state"], ctx["state"]], 1).flatten(0, 1),
            legal=torch.stack([ctx["legal"], ctx["legal"]], 1).flatten(0, 1) if self.discrete else None,
        )

    def make_env(self, seeds: list[int]) -> CoordinationEnv:
        return CoordinationEnv(self.game, seeds)

    def contexts(self, n: int, seed: int) -> dict[str, Tensor]:
        """``n`` fresh contexts (for figures and tests)."""
        return self.game.contexts(n, torch.Generator().manual_seed(seed))
