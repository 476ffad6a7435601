"""``SMAXDataModule``: generated SMAX offline data (discrete, legal masks, world state) with SMAX rollout evaluation.

Datasets (``quality`` on ``map_name``; :mod:`macflow.datagen.smax`) are made in ``prepare_data()`` and cached
atomically under ``cache_dir/smax/`` with a JSON manifest (behaviour, seed, win rate, versions). Actions are one-hot
over the map's ``5 + n_enemies`` actions, ``legal`` masks come from the simulator and ``state`` is the world state
(for state-conditioned mixers). The dims are known from the map alone, so configs build without jaxmarl; making
data or evaluating needs ``pip install 'macflow[smax]'``. Evaluation runs :class:`macflow.envs.smax.SMAXEnv` and
logs ``eval/win_rate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from macflow.datagen.smax import QUALITIES, generate_dataset
from macflow.datamodules.base import OfflineMARLDataModule
from macflow.envs.smax import SMAXEnv, dims_for
from macflow.transitions import TransitionData

DEFAULT_EPISODES = 2000
"""Episodes per generated dataset (about 30k transitions on 3m)."""


class SMAXDataModule(OfflineMARLDataModule):
    """Generated SMAX offline data with rollout evaluation in jaxmarl's SMAX.

    Args:
        map_name: a SMAX map, e.g. ``3m``, ``2s3z``, ``5m_vs_6m`` or ``smacv2_5_units`` (``macflow.envs.smax.MAP_UNITS``).
        quality: ``random``, ``medium``, ``expert`` or ``medium-replay`` (:mod:`macflow.datagen.smax`).
        n_episodes: generated episodes; ``null`` = ``DEFAULT_EPISODES``.
        cache_dir: where generated datasets are cached (git-ignored ``data_cache/`` by default).
        data_seed: seed of the generated data and of the batch sampler.
        batch_size, n_eval_episodes, eval_batch_size: see :class:`OfflineMARLDataModule`.
    """

    def __init__(self, map_name: str = "3m",
                 quality: Literal["random", "medium", "expert", "medium-replay"] = "medium",
                 n_episodes: int | None = None, cache_dir: str = "data_cache", batch_size: int = 256,
                 n_eval_episodes: int = 32, eval_batch_size: int = 32, data_seed: int = 0) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed)
        self.save_hyperparameters()
        if quality not in QUALITIES:
            raise ValueError(f"unknown SMAX quality {quality!r}; choose one of {QUALITIES}")
        dims = dims_for(map_name)
        self.n_agents, self.obs_dim, self.action_dim = dims.n_agents, dims.obs_dim, dims.action_dim
        self.state_dim, self.discrete = dims.state_dim, True
        self.n_episodes = n_episodes or DEFAULT_EPISODES
        self.episode_modes: np.ndarray | None = None

    def dataset_path(self) -> Path:
        h = self.hparams
        return Path(h.cache_dir) / "smax" / f"{h.map_name}_{h.quality}_ep{self.n_episodes}_seed{h.data_seed}.npz"

    def prepare_data(self) -> None:
        """Generate and cache the dataset unless it is cached."""
        path = self.dataset_path()
        if not path.exists():
            h = self.hparams
            generate_dataset(path, h.map_name, h.quality, self.n_episodes, h.data_seed)

    def build_data(self) -> TransitionData:
        return self.load_cached(self.dataset_path())

    def manifest(self) -> dict:
        """The generated dataset's manifest (behaviour, seed, episodes, win rate, mean return)."""
        return TransitionData.load_manifest(self.dataset_path())

    def make_env(self, seeds: list[int]) -> SMAXEnv:
        return SMAXEnv(seeds, self.hparams.map_name)
