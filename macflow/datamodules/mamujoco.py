"""MaMuJoCo (gymnasium-robotics ``mamujoco_v1``) offline data with rollout evaluation in the real simulator.

``source``:

* ``generated`` (default): behaviour data made by this project from code and a seed (``macflow.datagen.mamujoco``:
  random, ARS checkpoints, CPG gaits), cached atomically under ``cache_dir`` with a JSON manifest by
  ``prepare_data()`` (or ``python -m macflow.datagen mamujoco``).
* ``omiga``: an OMIGA hdf5 file (use ``obs_layout: omiga``).
* ``omar``: an OMAR ``HalfCheetah-v2/<quality>/seed_<k>_data`` npy folder (use ``obs_layout: omar``).
* ``vault``: an OG-MARL vault quality folder whose observations match ``obs_layout``: ``omiga`` for the re-hosted
  OMIGA vaults (their extra final-observation rows handled like the hdf5), ``omar`` for the OMAR vault (terminals
  are time limits), ``mamujoco`` for vaults recorded with ``mamujoco_v1`` itself (generic vault convention).

Env, scenarios and observation layouts: :mod:`macflow.envs.mamujoco`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor

from macflow.datagen.mamujoco import BUDGETS, QUALITIES, default_budget, generate_dataset
from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.screening import BadTransitions
from macflow.envs.mamujoco import MAX_STEPS, MaMuJoCoEnv, get_scenario
from macflow.errors import InputError
from macflow.transitions import TransitionData

DEFAULT_CONF = {"HalfCheetah": "2x3", "Hopper": "3x1", "Ant": "2x4"}
DEFAULT_EPISODES = {"random": 100, "medium": 100, "expert": 100, "medium-replay": 100, "medium-expert": 200}
"""Default episodes per quality (≤ 100k transitions: CPU-sized; pass n_episodes=1000 for D4RL-sized data)."""


class MaMuJoCoDataModule(OfflineMARLDataModule):
    """MaMuJoCo offline data with rollout evaluation in ``mamujoco_v1``.

    Args:
        scenario, agent_conf: ``HalfCheetah 2x3``, ``Hopper 3x1`` or ``Ant 2x4``.
        quality: ``random``, ``medium``, ``expert``, ``medium-replay`` or ``medium-expert`` (generated data).
        obs_layout: ``mamujoco`` (native), ``omiga`` or ``omar``: see :mod:`macflow.envs.mamujoco`.
        legacy_actions: legacy MA-MuJoCo action routing (``null``: on for Ant with ``omiga``).
        n_episodes: generated episodes (``null``: ``DEFAULT_EPISODES``).
        budget: behaviour-training budget of generated data (``null``: per scenario; ``tiny`` for tests).
        source: ``generated``, ``omiga``, ``omar`` or ``vault``; ``path`` is the public file / folder.
        vault_rows: batch rows of a vault (``null``: all).
        cache_dir: where generated data and trained behaviours are cached.
        progress: progress bars while generating.
        data_seed: seed of the behaviour training, the collected episodes and the batch sampler.
        bad_transitions: ``error``, ``drop`` or ``clip``: see :class:`OfflineMARLDataModule`.
        obs_history: observations per agent the models read (1: the current one): see :class:`OfflineMARLDataModule`.
    """

    def __init__(self, scenario: Literal["HalfCheetah", "Hopper", "Ant"] = "HalfCheetah", agent_conf: str | None = None,
                 quality: Literal["random", "medium", "expert", "medium-replay", "medium-expert"] = "medium",
                 obs_layout: Literal["mamujoco", "omiga", "omar"] = "mamujoco", legacy_actions: bool | None = None,
                 n_episodes: int | None = None, budget: str | None = None,
                 source: Literal["generated", "omiga", "omar", "vault"] = "generated", path: str | None = None,
                 vault_rows: list[int] | None = None, cache_dir: str = "data_cache", progress: bool = True,
                 batch_size: int = 256, n_eval_episodes: int = 10, eval_batch_size: int = 10,
                 data_seed: int = 0, bad_transitions: BadTransitions = "error", obs_history: int = 1) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed, bad_transitions, obs_history)
        agent_conf = agent_conf or DEFAULT_CONF.get(scenario, "")
        self.save_hyperparameters()
        self.hparams.agent_conf = agent_conf
        if quality not in QUALITIES:
            raise InputError(f"unknown MaMuJoCo quality {quality!r}; choose one of {QUALITIES}")
        if source != "generated" and path is None:
            raise InputError(f"source={source!r} needs data.init_args.path (the downloaded file or folder)")
        expected_layout = {"omiga": "omiga", "omar": "omar"}.get(source)
        if expected_layout and obs_layout != expected_layout:
            raise InputError(f"source={source!r} data is in the {expected_layout!r} observation layout; set "
                             f"obs_layout: {expected_layout} so the policy is evaluated in the same coordinates")
        self.spec = get_scenario(scenario, agent_conf)
        self.budget = budget or default_budget(scenario)
        if self.budget not in BUDGETS:
            raise InputError(f"unknown budget {self.budget!r}; choose one of {sorted(BUDGETS)}")
        self.n_agents, self.action_dim = self.spec.n_agents, self.spec.action_dim
        self.obs_dim = self.spec.obs_dim(obs_layout)
        self.state_dim = 0 if source == "omar" else self.spec.state_dim(obs_layout)
        if source == "vault":
            self.state_dim = self._vault_state_dim(path)
        self.discrete = False
        self.n_episodes = n_episodes or DEFAULT_EPISODES[quality]
        self.episode_modes: np.ndarray | None = None

    @staticmethod
    def _vault_state_dim(path: str) -> int:
        from macflow.datamodules.vault import VaultReader, structure_shape

        reader = VaultReader(path)
        shape = structure_shape(reader.metadata).get("infos.state")
        return 0 if shape is None else int(np.prod(shape[2:]))

    def dataset_path(self) -> Path:
        h = self.hparams
        name = (f"{h.scenario}_{h.agent_conf}_{h.obs_layout}_{h.quality}_ep{self.n_episodes}_seed{h.data_seed}"
                f"_{self.budget}")
        return Path(h.cache_dir) / "mamujoco" / f"{name}.npz"

    def prepare_data(self) -> None:
        """Train the behaviours and collect the dataset unless cached (generated data only).

        A cached file made under other budget settings (the budget's definition changed since), or one that is
        corrupt or does not match its manifest's checksums, is made again."""
        h = self.hparams
        if h.source != "generated":
            return
        path = self.dataset_path()
        if self.cache_is_current(path) and \
                TransitionData.load_manifest(path).get("budget") == BUDGETS[self.budget].as_dict():
            return

        generate_dataset(path, h.quality, h.scenario, h.agent_conf, self.n_episodes, h.data_seed,
                         self.budget, h.cache_dir, h.obs_layout, MAX_STEPS, h.progress)

    def build_data(self) -> TransitionData:
        h = self.hparams
        if h.source == "omiga":
            from macflow.datamodules.omiga import read_omiga

            return read_omiga(h.path, max_episode_steps=MAX_STEPS, bad_transitions=self.bad_transitions)
        if h.source == "omar":
            from macflow.datamodules.omar import read_omar

            return read_omar(h.path, n_agents=self.n_agents, episode_length=MAX_STEPS, dones_are_timeouts=True,
                             bad_transitions=self.bad_transitions)
        if h.source == "vault" and h.obs_layout == "omiga":
            from macflow.datamodules.omiga import read_omiga_vault

            return read_omiga_vault(h.path, rows=h.vault_rows, max_episode_steps=MAX_STEPS,
                                    bad_transitions=self.bad_transitions)
        if h.source == "vault":
            from macflow.datamodules.vault import read_vault_transitions

            return read_vault_transitions(h.path, rows=h.vault_rows, terminals_are_timeouts=h.obs_layout == "omar",
                                          bad_transitions=self.bad_transitions)
        return self.load_cached(self.dataset_path())

    def data_source(self) -> str:
        return str(self.hparams.path if self.hparams.source != "generated" else self.dataset_path())

    def manifest(self) -> dict:
        """The generated dataset's manifest (behaviour, seeds, budget, mean return, timings)."""
        return TransitionData.load_manifest(self.dataset_path())

    def make_env(self, seeds: list[int]) -> MaMuJoCoEnv:
        h = self.hparams
        return MaMuJoCoEnv(seeds, h.scenario, h.agent_conf, h.obs_layout, h.legacy_actions, MAX_STEPS)

    def normalized_score(self, returns: Tensor) -> Tensor | None:
        return None
