"""``OfflineMARLDataModule``: the data contract every benchmark implements.

A benchmark subclass sets the dims in ``__init__`` (``n_agents``, ``obs_dim``, ``action_dim``, ``state_dim``,
``discrete``) so LightningCLI can link them into the model before anything is loaded, then implements
:meth:`build_data` (load or generate :class:`TransitionData`) and :meth:`make_env` (evaluation episodes).
Training batches come from :class:`RandomBatches` on the training device, seeded by ``data_seed + rank``;
validation iterates over the evaluation-episode seeds (:func:`macflow.evaluation.eval_seeds`), which Lightning
shards across DDP ranks. Loaded data is screened for NaN/inf values and out-of-bounds actions
(:func:`~macflow.datamodules.screening.screen_transitions`, option ``bad_transitions``). With ``obs_history: W``
models read each agent's last W observations, in training (:meth:`TransitionData.with_history`) and in evaluation
rollouts (:class:`~macflow.envs.history.ObservationHistory`) alike.
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
from macflow.datamodules.screening import BadTransitions, check_bad_transitions, screen_transitions
from macflow.envs.base import MultiAgentEnv
from macflow.envs.history import ObservationHistory
from macflow.errors import InputError
from macflow.evaluation import eval_seeds
from macflow.transitions import TransitionData, saved_dataset_problem


class OfflineMARLDataModule(LightningDataModule):
    """Base class of offline multi-agent datasets with a simulator for evaluation.

    Args:
        batch_size: transitions per training batch (per rank).
        n_eval_episodes: evaluation episodes per validation run (keep it a multiple of the number of devices).
        eval_batch_size: evaluation episodes simulated side by side in one rollout.
        data_seed: seed of the batch sampler (each rank adds its rank).
        bad_transitions: what to do with transitions holding NaN/inf or actions outside [-1, 1]: ``error``
            (default), ``drop`` them, or ``clip`` the actions (non-finite ones are dropped); a warning counts them.
        obs_history: observations per agent that models read: 1 = the current one; W > 1 = the last W of the
            episode, oldest first (``obs_dim`` becomes W times the simulator's ``frame_dim``), for partially
            observed tasks; pair it with an actor that encodes the window, e.g. ``RecurrentHistoryPolicy``.
    """

    n_agents: int
    frame_dim: int
    action_dim: int
    state_dim: int = 0
    discrete: bool = False

    def __init__(self, batch_size: int = 256, n_eval_episodes: int = 10, eval_batch_size: int = 10,
                 data_seed: int = 0, bad_transitions: BadTransitions = "error", obs_history: int = 1) -> None:
        super().__init__()
        if isinstance(obs_history, bool) or not isinstance(obs_history, int) or obs_history < 1:
            raise InputError(f"data.init_args.obs_history={obs_history!r}: must be a positive integer (1 = the "
                             "current observation only)")
        self.obs_history = obs_history
        for name, value in (("batch_size", batch_size), ("n_eval_episodes", n_eval_episodes),
                            ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"data.init_args.{name}={value!r}: must be a positive integer; set it to at "
                                 "least 1")
        check_bad_transitions(bad_transitions)
        self.bad_transitions = bad_transitions
        self.batch_size, self.n_eval_episodes, self.eval_batch_size = batch_size, n_eval_episodes, eval_batch_size
        self.data_seed = data_seed
        self.data: TransitionData | None = None
        self.frame_data: TransitionData | None = None  # the screened one-observation table ``data`` is windowed from

    @property
    def obs_dim(self) -> int:
        """Features per agent that models read: ``obs_history`` observations of ``frame_dim`` features each."""
        return self.frame_dim * self.obs_history

    @obs_dim.setter
    def obs_dim(self, value: int) -> None:
        """A benchmark sets the simulator's observation size (one frame)."""
        self.frame_dim = value

    # ------------------------------------------------------------------ what a benchmark implements
    @abstractmethod
    def build_data(self) -> TransitionData:
        """Load (or generate and cache) the dataset."""

    @abstractmethod
    def make_env(self, seeds: list[int]) -> MultiAgentEnv:
        """An evaluation environment running one episode per seed."""

    def evaluation_env(self, seeds: list[int]) -> MultiAgentEnv:
        """:meth:`make_env`, showing the agents the observation history the models were trained on."""
        return self.with_history(self.make_env(seeds))

    def with_history(self, env: MultiAgentEnv) -> MultiAgentEnv:
        """``env`` wrapped in :class:`ObservationHistory` when ``obs_history > 1``."""
        return env if self.obs_history == 1 else ObservationHistory(env, self.obs_history)

    def normalized_score(self, returns: torch.Tensor) -> torch.Tensor | None:
        """``(R - R_random) / (R_expert - R_random)`` where the benchmark has references; else ``None``."""
        return None

    def batch_transform(self) -> BatchTransform | None:
        """An augmentation applied to every training batch (``None``: the logged transitions as they are)."""
        return None

    def data_source(self) -> str:
        """The file or folder the data comes from, as named in messages."""
        return type(self).__name__

    def cache_is_current(self, path: Path) -> bool:
        """Whether the generated dataset at ``path`` is complete and matches its manifest's checksums; a cache
        that exists but does not is reported (one warning) so :meth:`prepare_data` regenerates it."""
        if not path.exists() and not path.with_suffix(".json").exists():
            return False
        problem = saved_dataset_problem(path)
        if problem is not None:
            rank_zero_warn(f"{path}: {problem}; regenerating it")
        return problem is None

    def load_cached(self, path: Path) -> TransitionData:
        """Load a generated dataset from the cache, and its per-episode modes file (``<path>.modes.npy``) if any."""
        if path.exists():
            problem = saved_dataset_problem(path)
            if problem is not None:
                raise InputError(f"{path}: {problem}; run prepare_data() (Trainer.fit does it) to regenerate it")
        data = TransitionData.load(path)
        modes = path.with_suffix(".modes.npy")
        try:
            self.episode_modes = np.load(modes) if modes.exists() else None
        except (OSError, ValueError, EOFError) as err:
            raise InputError(f"{modes}: not a readable .npy ({type(err).__name__}); delete the dataset "
                             f"{path.name} and run again to regenerate it") from None
        return data

    # ------------------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            data = self.build_data()
            self.check_dims(data)
            self.frame_data = screen_transitions(data, self.bad_transitions, self.data_source())
            self.data = self.frame_data.with_history(self.obs_history)

    def check_dims(self, data: TransitionData) -> None:
        expected = dict(n_agents=self.n_agents, obs_dim=self.frame_dim, action_dim=self.action_dim,
                        state_dim=self.state_dim)
        got = dict(n_agents=data.n_agents, obs_dim=data.obs_dim, action_dim=data.action_dim,
                   state_dim=data.state_dim)
        if expected != got:
            raise InputError(f"{self.data_source()}: the data has dims {got} but {type(self).__name__} declared "
                             f"{expected}; fix the datamodule's arguments or regenerate the data")
        if self.discrete and data.legal is None:
            raise InputError(f"{type(self).__name__}: discrete data needs legal-action masks (TransitionData.legal)")

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
