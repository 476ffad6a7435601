"""``SMAXDataModule``: generated SMAX offline data (discrete, legal masks, world state) with SMAX rollout evaluation;
``SMACVaultDataModule``: OG-MARL SMACv1/v2 vaults, evaluated in SMAX only where a map has the vault's dims.

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
from macflow.datamodules.screening import BadTransitions
from macflow.datamodules.vault import read_vault_transitions, vault_dims
from macflow.envs.sc2 import SC2Env, sc2_problem
from macflow.envs.smax import MAP_UNITS, SMAXEnv, dims_for
from macflow.errors import InputError
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
        batch_size, n_eval_episodes, eval_batch_size, obs_history: see :class:`OfflineMARLDataModule`.
    """

    def __init__(self, map_name: str = "3m",
                 quality: Literal["random", "medium", "expert", "medium-replay"] = "medium",
                 n_episodes: int | None = None, cache_dir: str = "data_cache", batch_size: int = 256,
                 n_eval_episodes: int = 32, eval_batch_size: int = 32, data_seed: int = 0,
                 obs_history: int = 1) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed, obs_history=obs_history)
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


class SMACVaultDataModule(OfflineMARLDataModule):
    """An OG-MARL SMACv1 / SMACv2 vault (discrete actions, legal masks, world state), evaluated in SMAX where a
    SMAX map has the vault's dims.

    The dims come from the vault's ``metadata.json``; ``setup()`` streams the vault once
    (:func:`~macflow.datamodules.vault.read_vault_transitions`): int actions become one-hot over the legal set,
    ``infos.legals`` the legal masks, ``infos.state`` the state for QMIX, and episodes end where every agent's
    ``terminals`` (a real termination, no bootstrap) or ``truncations`` flag is set. Vaults recorded in StarCraft II
    have SMAC's features (3m: obs 30, state 48, 9 actions), not SMAX's (3m: obs 75, state 72, 8 actions), so no
    SMAX map evaluates them: ``setup()`` for a fit that validates, or for ``validate``, stops with one line saying
    so before any training; fit with ``--trainer.limit_val_batches=0`` to train without evaluation, or evaluate in
    StarCraft II (``simulator: sc2``, :mod:`macflow.envs.sc2`, which says what to install where it is missing).

    Args:
        path: the vault quality folder, e.g. ``vaults/og_marl/smac_v1/3m.vlt/Good``.
        map_name: SMAX map to evaluate in; ``null`` = the scenario's name (``3m`` for ``.../3m.vlt/Good``).
        vault_rows: batch rows of the vault (``null``: all).
        simulator: ``smax`` (jaxmarl's SMAX, where a map has the vault's dims) or ``sc2`` (the real SMAC).
        batch_size, n_eval_episodes, eval_batch_size, data_seed, bad_transitions, obs_history: see
            :class:`OfflineMARLDataModule`.
    """

    def __init__(self, path: str, map_name: str | None = None, vault_rows: list[int] | None = None,
                 simulator: Literal["smax", "sc2"] = "smax", batch_size: int = 256, n_eval_episodes: int = 32, eval_batch_size: int = 32, data_seed: int = 0,
                 bad_transitions: BadTransitions = "error", obs_history: int = 1) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed, bad_transitions, obs_history)
        self.save_hyperparameters()
        if simulator not in ("smax", "sc2"):
            raise InputError(f"data.init_args.simulator={simulator!r}: choose 'smax' or 'sc2'")
        dims = vault_dims(path)
        if not dims["discrete"] or not dims["legal"]:
            raise InputError(f"{path}: not a SMAC vault (actions {'int' if dims['discrete'] else 'float'}, "
                             f"{'with' if dims['legal'] else 'no'} infos.legals); SMAC vaults have int actions and "
                             "legal masks: use MPEDataModule or MaMuJoCoDataModule with source=vault for this one")
        self.n_agents, self.obs_dim, self.action_dim = dims["n_agents"], dims["obs_dim"], dims["action_dim"]
        self.state_dim, self.discrete = dims["state_dim"], True
        folder = Path(path).resolve()
        self.map_name = map_name or folder.parent.name.removesuffix(".vlt")

    def data_source(self) -> str:
        return str(self.hparams.path)

    def build_data(self) -> TransitionData:
        return read_vault_transitions(self.hparams.path, rows=self.hparams.vault_rows,
                                      bad_transitions=self.bad_transitions)

    def simulator_problem(self) -> str | None:
        """Why the simulator cannot evaluate a model trained on this vault (``None``: it can)."""
        if self.hparams.simulator == "sc2":
            problem = sc2_problem(self.map_name)
            return None if problem is None else f"StarCraft II cannot evaluate it: {problem}"
        fix = ("fit with --trainer.limit_val_batches=0 to train without evaluation, or evaluate in StarCraft II "
               "(data.init_args.simulator=sc2)")
        if self.map_name not in MAP_UNITS:
            return f"SMAX has no map {self.map_name!r} to evaluate this vault in; {fix}"
        d = dims_for(self.map_name)
        ours = (self.n_agents, self.frame_dim, self.state_dim, self.action_dim)
        if (d.n_agents, d.obs_dim, d.state_dim, d.action_dim) == ours:
            return None
        return (f"the vault has {self.n_agents} agents, obs {self.frame_dim}, state {self.state_dim}, "
                f"{self.action_dim} actions (StarCraft II features), SMAX map {self.map_name!r} has {d.n_agents}, "
                f"{d.obs_dim}, {d.state_dim}, {d.action_dim}: no simulator here evaluates it; {fix}")

    def _validates(self, stage: str | None) -> bool:
        trainer = self.trainer
        if stage == "validate":
            return True
        return stage == "fit" and trainer is not None and trainer.limit_val_batches != 0

    def setup(self, stage: str | None = None) -> None:
        problem = self.simulator_problem() if self._validates(stage) else None
        if problem is not None:
            raise InputError(f"{self.hparams.path}: {problem}")
        super().setup(stage)

    def make_env(self, seeds: list[int]) -> SMAXEnv | SC2Env:
        problem = self.simulator_problem()
        if problem is not None:
            raise InputError(f"{self.hparams.path}: {problem}")
        if self.hparams.simulator == "sc2":
            return SC2Env(seeds, self.map_name)
        return SMAXEnv(seeds, self.map_name)
