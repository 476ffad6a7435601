"""``OfflineMARLDataModule``: the data contract every benchmark implements.

A benchmark subclass sets the dims in ``__init__`` (``n_agents``, ``obs_dim``, ``action_dim``, ``state_dim``,
``discrete``) so LightningCLI can link them into the model before anything is loaded, then implements
:meth:`build_data` (load or generate :class:`TransitionData`) and :meth:`make_env` (evaluation episodes).
Training batches come from :class:`RandomBatches` on the training device, seeded by ``data_seed + rank``;
validation iterates over the evaluation-episode seeds (:func:`macflow.evaluation.eval_seeds`), which Lightning
shards across DDP ranks.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from macflow.datamodules.augment import BatchTransform
from macflow.datamodules.sampling import LIGHTNING_LOOKAHEAD, RandomBatches
from macflow.envs.base import MultiAgentEnv
from macflow.evaluation import eval_seeds
from macflow.transitions import TransitionData


class OfflineMARLDataModule(LightningDataModule):
    """Base class of offline multi-agent datasets with a simulator for evaluation.

    Args:
        batch_size: transitions per training batch (per rank).
        n_eval_episodes: evaluation episodes per validation run (keep it a multiple of the number of devices).
        eval_batch_size: evaluation episodes simulated side by side in one rollout.
        data_seed: seed of the batch sampler (each rank adds its rank).
    """

    n_agents: int
    obs_dim: int
    action_dim: int
    state_dim: int = 0
    discrete: bool = False

    def __init__(self, batch_size: int = 256, n_eval_episodes: int = 10, eval_batch_size: int = 10,
                 data_seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.n_eval_episodes, self.eval_batch_size = batch_size, n_eval_episodes, eval_batch_size
        self.data_seed = data_seed
        self.data: TransitionData | None = None

    # ------------------------------------------------------------------ what a benchmark implements
    @abstractmethod
    def build_data(self) -> TransitionData:
        """Load (or generate and cache) the dataset."""

    @abstractmethod
    def make_env(self, seeds: list[int]) -> MultiAgentEnv:
        """An evaluation environment running one episode per seed."""

    def normalized_score(self, returns: torch.Tensor) -> torch.Tensor | None:
        """``(R - R_random) / (R_expert - R_random)`` where the benchmark has references; else ``None``."""
        return None

    def batch_transform(self) -> BatchTransform | None:
        """An augmentation applied to every training batch (``None``: the logged transitions as they are)."""
        return None

    def load_cached(self, path: Path) -> TransitionData:
        """Load a generated dataset from the cache, and its per-episode modes file (``<path>.modes.npy``) if any."""
        data = TransitionData.load(path)
        modes = path.with_suffix(".modes.npy")
        self.episode_modes = np.load(modes) if modes.exists() else None
        return data

    # ------------------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            data = self.build_data()
            self.check_dims(data)
            self.data = data

    def check_dims(self, data: TransitionData) -> None:
        expected = dict(n_agents=self.n_agents, obs_dim=self.obs_dim, action_dim=self.action_dim,
                        state_dim=self.state_dim)
        got = dict(n_agents=data.n_agents, obs_dim=data.obs_dim, action_dim=data.action_dim,
                   state_dim=data.state_dim)
        if expected != got:
            raise ValueError(f"{type(self).__name__}: the data has dims {got} but the datamodule declared {expected}; "
                             "fix the datamodule's arguments or regenerate the data")
        if self.discrete and data.legal is None:
            raise ValueError(f"{type(self).__name__}: discrete data needs legal-action masks (TransitionData.legal)")

    def train_dataloader(self) -> RandomBatches:
        """The endless training sampler; its state in a checkpoint (batch stream and process-wide random state)
        makes a resumed fit continue exactly where the saved one stopped."""
        assert self.data is not None, "call setup() first"
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        rank = trainer.global_rank if trainer is not None else 0
        return RandomBatches(self.data.to(device), self.batch_size, seed=self.data_seed + rank,
                             transform=self.batch_transform(), lookahead=LIGHTNING_LOOKAHEAD,
                             restores_process_rng=True, rank=rank)

    def val_dataloader(self) -> DataLoader:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.n_eval_episodes % world:
            rank_zero_warn(f"n_eval_episodes={self.n_eval_episodes} is not a multiple of the {world} devices: the "
                           "distributed sampler repeats some episodes, which biases eval/* slightly")
        return DataLoader(eval_seeds(self.n_eval_episodes), batch_size=self.eval_batch_size)
