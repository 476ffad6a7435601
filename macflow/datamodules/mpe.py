"""``MPEDataModule``: MPE simple_spread offline data (generated, or public OMAR data) with mpe2 evaluation.

Generated datasets (``quality``; :mod:`macflow.datagen.mpe`) are made in ``prepare_data()`` and cached atomically
under ``cache_dir`` with a JSON manifest that names everything needed to regenerate them bit-for-bit. The
normalised score uses references simulated with the random and expert policies in the same env, stored with the
data. ``source="omar"`` / ``"vault"`` read public OMAR npy folders / OG-MARL vaults of the OMAR data instead.
Evaluation runs :class:`macflow.envs.mpe.MPESpreadEnv`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from macflow.datagen.mpe import MEDIUM_SIGMA, QUALITIES, generate_dataset, reference_returns
from macflow.datamodules.augment import BatchTransform, d4_augment
from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.screening import BadTransitions
from macflow.envs.mpe import MPESpreadEnv, obs_dim_for
from macflow.errors import InputError
from macflow.files import atomic_write
from macflow.transitions import MissingDataFile, TransitionData

DEFAULT_EPISODES = {"random": 2000, "medium": 2000, "expert": 2000, "medium-replay": 400}
"""Default episodes per quality (50k transitions; the public OMAR sets have 40k episodes, medium-replay 3.9k):
quick to generate on one core; pass ``n_episodes=40000`` for OMAR-sized data."""


class MPEDataModule(OfflineMARLDataModule):
    """MPE simple_spread offline data (generated, or public OMAR data) with mpe2 rollout evaluation.

    Args:
        quality: ``random``, ``medium``, ``expert`` or ``medium-replay`` (generated data).
        n_agents: agents and landmarks (3 in OMAR).
        max_cycles: episode length (25).
        physics: ``mpe2`` (plain mpe2) or ``omar`` (the integration order that recorded the OMAR data).
        reward: ``mpe2`` (native) or ``omar`` (OMAR's modified reward; use it with OMAR data).
        n_episodes: generated episodes; ``null`` = the per-quality default (``DEFAULT_EPISODES``).
        expert_tol: total-distance tolerance defining the expert's near-optimal landmark assignments.
        medium_sigma: force-noise std of the medium policy (end point of medium-replay).
        source: ``generated``, ``omar`` (an OMAR npy ``seed_<k>_data`` folder at ``path``) or ``vault`` (an OG-MARL
            vault quality folder at ``path``, e.g. ``.../omar/mpe/simple_spread.vlt/Expert``).
        path: folder of the public data when ``source`` is ``omar`` or ``vault``.
        vault_rows: which batch rows (OMAR seeds) of the vault to use; ``null`` = all.
        cache_dir: where generated datasets and references are cached (git-ignored ``data_cache/`` by default).
        n_reference_episodes: episodes simulated for the random / expert references of the normalised score.
        data_seed: seed of the generated data and of the batch sampler.
        batch_size, n_eval_episodes, eval_batch_size: see :class:`OfflineMARLDataModule`.
        augment: ``none`` or ``d4``: turn every training transition by a random symmetry of the square
            (:func:`~macflow.datamodules.augment.d4_augment`; simple_spread is invariant under them).
        bad_transitions: ``error``, ``drop`` or ``clip``: see :class:`OfflineMARLDataModule`.
        obs_history: observations per agent the models read (1: the current one): see :class:`OfflineMARLDataModule`.
    """

    def __init__(self, quality: Literal["random", "medium", "expert", "medium-replay"] = "expert",
                 n_agents: int = 3, max_cycles: int = 25, physics: Literal["mpe2", "omar"] = "mpe2",
                 reward: Literal["mpe2", "omar"] = "mpe2", n_episodes: int | None = None, expert_tol: float = 0.25,
                 medium_sigma: float = MEDIUM_SIGMA, source: Literal["generated", "omar", "vault"] = "generated",
                 path: str | None = None, vault_rows: list[int] | None = None, cache_dir: str = "data_cache",
                 n_reference_episodes: int = 200, batch_size: int = 256, n_eval_episodes: int = 50,
                 eval_batch_size: int = 50, data_seed: int = 0, augment: Literal["none", "d4"] = "none",
                 bad_transitions: BadTransitions = "error", obs_history: int = 1) -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed, bad_transitions, obs_history)
        self.save_hyperparameters()
        if quality not in QUALITIES:
            raise InputError(f"unknown MPE quality {quality!r}; choose one of {QUALITIES}")
        if source != "generated" and path is None:
            raise InputError(f"source={source!r} needs data.init_args.path (the downloaded dataset folder)")
        if augment not in ("none", "d4"):
            raise InputError(f"unknown augment {augment!r}; choose 'none' or 'd4'")
        self.n_agents, self.obs_dim, self.action_dim, self.state_dim = n_agents, obs_dim_for(n_agents), 2, 0
        self.discrete = False
        self.n_episodes = n_episodes or DEFAULT_EPISODES[quality]
        self.references: dict | None = None
        self.episode_modes: np.ndarray | None = None

    # ----------------------------------------------------------------------------------- cache paths
    @property
    def env_tag(self) -> str:
        h = self.hparams
        return f"simple_spread_N{h.n_agents}_T{h.max_cycles}_{h.physics}-physics_{h.reward}-reward"

    def dataset_path(self) -> Path:
        h = self.hparams
        name = f"{self.env_tag}_{h.quality}_ep{self.n_episodes}_seed{h.data_seed}"
        if h.expert_tol != 0.25 or h.medium_sigma != MEDIUM_SIGMA:
            name += f"_tol{h.expert_tol:g}_sigma{h.medium_sigma:g}"
        return Path(h.cache_dir) / "mpe" / f"{name}.npz"

    def references_path(self) -> Path:
        h = self.hparams
        name = f"{self.env_tag}_references_n{h.n_reference_episodes}_tol{h.expert_tol:g}.json"
        return Path(h.cache_dir) / "mpe" / name

    def data_source(self) -> str:
        return str(self.hparams.path if self.hparams.source != "generated" else self.dataset_path())

    # ------------------------------------------------------------------------------------ lightning
    def prepare_data(self) -> None:
        """Simulate the normalised-score references and (for generated data) the dataset, unless cached and
        intact (a corrupt or checksum-mismatched cache is made again, with a warning)."""
        h = self.hparams
        ref_path = self.references_path()
        if _read_references(ref_path) is None:
            ref_path.parent.mkdir(parents=True, exist_ok=True)
            refs = reference_returns(h.n_reference_episodes, h.n_agents, h.max_cycles, h.physics, h.reward,
                                     h.expert_tol)
            atomic_write(ref_path, lambda f: f.write(json.dumps(refs, indent=2).encode()))
        path = self.dataset_path()
        if h.source != "generated" or self.cache_is_current(path):
            return
        generate_dataset(path, h.quality, self.n_episodes, h.data_seed, json.loads(ref_path.read_text()),
                         h.n_agents, h.max_cycles, h.physics, h.reward, h.expert_tol, h.medium_sigma)

    def build_data(self) -> TransitionData:
        h = self.hparams
        ref_path = self.references_path()
        if not ref_path.exists():
            raise MissingDataFile(f"{ref_path} not found: call the datamodule's prepare_data() first "
                                  "(Trainer.fit does it)")
        self.references = _read_references(ref_path)
        if self.references is None:
            raise InputError(f"{ref_path}: not a valid references file; run prepare_data() (Trainer.fit does it) "
                             "to regenerate it")
        if h.source == "omar":
            from macflow.datamodules.omar import read_omar

            return read_omar(h.path, n_agents=h.n_agents, episode_length=h.max_cycles,
                             bad_transitions=self.bad_transitions)
        if h.source == "vault":
            from macflow.datamodules.vault import read_vault_transitions

            return read_vault_transitions(h.path, rows=h.vault_rows, terminals_are_timeouts=True,
                                          state_key=None, bad_transitions=self.bad_transitions)
        return self.load_cached(self.dataset_path())

    def batch_transform(self) -> BatchTransform | None:
        return d4_augment if self.hparams.augment == "d4" else None

    def manifest(self) -> dict:
        """The generated dataset's manifest (behaviour, seed, episodes, mean return, references)."""
        return TransitionData.load_manifest(self.dataset_path())

    def make_env(self, seeds: list[int], record: bool = False) -> MPESpreadEnv:
        h = self.hparams
        return MPESpreadEnv(seeds, h.n_agents, h.max_cycles, h.physics, h.reward, record=record)

    def normalized_score(self, returns: Tensor) -> Tensor | None:
        if self.references is None:
            self.references = _read_references(self.references_path())
            if self.references is None:
                return None
        r, e = self.references["random"], self.references["expert"]
        return (returns - r) / (e - r)


def _read_references(path: Path) -> dict | None:
    """The references file at ``path``, or ``None`` when it is missing or unreadable (a warning says which), so
    :meth:`MPEDataModule.prepare_data` simulates it again."""
    if not path.exists():
        return None
    try:
        refs = json.loads(path.read_text())
        if isinstance(refs, dict) and {"random", "expert"} <= set(refs):
            return refs
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    rank_zero_warn(f"{path}: not a valid references file (truncated?); simulating the references again")
    return None
