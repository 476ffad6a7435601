"""``TransitionData``: offline multi-agent transitions in memory, one observation table plus index arrays.

Observations are stored once (``[M, N, O]``, final observations of episodes included) and transitions point into
that table with ``obs_index`` / ``next_obs_index``, so ``next_obs`` costs no extra memory. Transitions never pair
rows across an episode boundary. ``terminals`` marks a real termination (no bootstrap); a time-limit truncation is
not terminal and bootstraps from the recorded final observation.

Batches are ``dict[str, Tensor]`` with keys ``obs [B,N,O]``, ``actions [B,N,A]``, ``rewards [B]``, ``dones [B]``,
``next_obs [B,N,O]`` and, when present, ``state``/``next_state [B,S]`` and ``legal``/``next_legal [B,N,A]``.

Construction checks structure only; values (NaN/inf, action bounds) are screened where data enters
(:func:`macflow.datamodules.screening.screen_transitions`), so a reader can drop or clip bad rows on request.
:meth:`TransitionData.save` records the sha256 of every file it writes in the manifest, and
:func:`saved_dataset_problem` checks a saved dataset against it, so a corrupt cache is found before it is read.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from macflow.errors import InputError
from macflow.files import atomic_write, file_sha256


@dataclass
class TransitionData:
    """Transitions of one offline dataset. Actions are in [-1, 1] (continuous) or one-hot (discrete)."""

    observations: Tensor  # [M, N, O] float32, every observation recorded (episode ends included)
    obs_index: Tensor  # [T] int64, row of o_t in ``observations``
    next_obs_index: Tensor  # [T] int64, row of o_{t+1}
    actions: Tensor  # [T, N, A] float32
    rewards: Tensor  # [T] float32, team reward
    terminals: Tensor  # [T] bool, True when step t ended the episode by termination
    episode_ids: Tensor  # [T] int64
    states: Tensor | None = None  # [M, S] float32 global state, aligned with ``observations``
    legal: Tensor | None = None  # [M, N, A] bool legal-action mask, aligned with ``observations``

    def __post_init__(self) -> None:
        t = self.actions.shape[0]
        for name in ("obs_index", "next_obs_index", "rewards", "terminals", "episode_ids"):
            if getattr(self, name).shape != (t,):
                raise ValueError(f"TransitionData.{name} must have shape [{t}], got {list(getattr(self, name).shape)}")
        m = self.observations.shape[0]
        for name in ("states", "legal"):
            x = getattr(self, name)
            if x is not None and x.shape[0] != m:
                raise ValueError(f"TransitionData.{name} must have {m} rows (one per observation), got {x.shape[0]}")
        if t and int(torch.maximum(self.obs_index.max(), self.next_obs_index.max())) >= m:
            raise ValueError("TransitionData index points past the observation table")

    # ----------------------------------------------------------------------------------------------- dims
    @property
    def n_transitions(self) -> int:
        return self.actions.shape[0]

    @property
    def n_agents(self) -> int:
        return self.observations.shape[1]

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[2]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[2]

    @property
    def state_dim(self) -> int:
        return 0 if self.states is None else self.states.shape[1]

    def nbytes(self) -> int:
        """Bytes held by all tensors (the dataset's in-memory size)."""
        return sum(x.numel() * x.element_size() for x in self.tensors().values())

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def to(self, device: torch.device | str) -> TransitionData:
        return TransitionData(**{k: v.to(device) for k, v in self.tensors().items()})

    # --------------------------------------------------------------------------------------------- batches
    def gather(self, idx: Tensor) -> dict[str, Tensor]:
        """The batch of transitions ``idx`` (one indexing op per key)."""
        o, o2 = self.obs_index[idx], self.next_obs_index[idx]
        batch = {
            "obs": self.observations[o],
            "actions": self.actions[idx],
            "rewards": self.rewards[idx],
            "dones": self.terminals[idx].to(self.rewards.dtype),
            "next_obs": self.observations[o2],
        }
        if self.states is not None:
            batch["state"], batch["next_state"] = self.states[o], self.states[o2]
        if self.legal is not None:
            batch["legal"], batch["next_legal"] = self.legal[o], self.legal[o2]
        return batch

    def with_history(self, frames: int) -> TransitionData:
        """The same transitions with each observation row replaced by the agent's last ``frames`` observations of
        its episode, oldest first, flattened to ``[M, N, frames * O]``; before the episode's first observation the
        first one repeats (what :class:`macflow.envs.history.ObservationHistory` shows in rollouts).

        The previous row of an observation is the ``obs_index`` of the transition whose ``next_obs_index`` it is,
        so the history never crosses an episode boundary, whatever the row order.
        """
        if frames == 1:
            return self
        m = self.observations.shape[0]
        prev = torch.arange(m)
        moves = self.next_obs_index != self.obs_index  # a vault's terminal row points at itself
        prev[self.next_obs_index[moves]] = self.obs_index[moves]
        rows = [torch.arange(m)]
        for _ in range(frames - 1):
            rows.append(prev[rows[-1]])
        window = torch.stack(rows[::-1], dim=1)  # [M, frames], oldest first
        stacked = self.observations[window].transpose(1, 2).reshape(m, self.n_agents, frames * self.obs_dim)
        return replace(self, observations=stacked)

    def episode_returns(self) -> Tensor:
        """Undiscounted team return of every episode in the data ``[E]``."""
        n = int(self.episode_ids.max()) + 1 if self.n_transitions else 0
        return torch.zeros(n, dtype=torch.float64).index_add_(0, self.episode_ids, self.rewards.double())

    # ------------------------------------------------------------------------------------------ builders
    @staticmethod
    def from_episodes(episodes: Iterable[Mapping[str, np.ndarray | bool]]) -> TransitionData:
        """Build from whole episodes.

        Each episode maps ``obs [L+1,N,O]`` (final observation included), ``actions [L,N,A]``, ``rewards [L]``,
        ``terminated`` (bool: the last step terminated rather than hit a time limit) and optionally
        ``state [L+1,S]`` and ``legal [L+1,N,A]``.
        """
        cols: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "terminals", "ids", "oi", "state", "legal")}
        offset = 0
        for e, ep in enumerate(episodes):
            obs = np.asarray(ep["obs"], dtype=np.float32)
            length = len(ep["actions"])
            if obs.shape[0] != length + 1:
                raise ValueError(f"episode {e}: obs must have one row more than actions (the final observation), "
                                 f"got {obs.shape[0]} and {length}")
            term = np.zeros(length, dtype=bool)
            term[-1] = bool(ep["terminated"])
            cols["obs"].append(obs)
            cols["actions"].append(np.asarray(ep["actions"], dtype=np.float32))
            cols["rewards"].append(np.asarray(ep["rewards"], dtype=np.float32).reshape(length))
            cols["terminals"].append(term)
            cols["ids"].append(np.full(length, e, dtype=np.int64))
            cols["oi"].append(offset + np.arange(length, dtype=np.int64))
            for key in ("state", "legal"):
                if key in ep and ep[key] is not None:
                    cols[key].append(np.asarray(ep[key]))
            offset += length + 1
        if not cols["actions"]:
            raise ValueError("no episodes given")
        obs_index = torch.from_numpy(np.concatenate(cols["oi"]))
        return TransitionData(
            observations=torch.from_numpy(np.concatenate(cols["obs"])),
            obs_index=obs_index,
            next_obs_index=obs_index + 1,
            actions=torch.from_numpy(np.concatenate(cols["actions"])),
            rewards=torch.from_numpy(np.concatenate(cols["rewards"])),
            terminals=torch.from_numpy(np.concatenate(cols["terminals"])),
            episode_ids=torch.from_numpy(np.concatenate(cols["ids"])),
            states=torch.from_numpy(np.concatenate(cols["state"]).astype(np.float32)) if cols["state"] else None,
            legal=torch.from_numpy(np.concatenate(cols["legal"]).astype(bool)) if cols["legal"] else None,
        )

    @staticmethod
    def from_stream(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminals: np.ndarray,
                    truncations: np.ndarray, state: np.ndarray | None = None,
                    legal: np.ndarray | None = None) -> TransitionData:
        """Build from one time stream of concatenated episodes, row t = ``(o_t, a_t, r_t, terminal_t, trunc_t)``.

        This is the OG-MARL vault convention: ``terminal_t``/``trunc_t`` is the flag returned by ``step(a_t)`` and
        no final observation is stored. So ``next_obs`` of row t is row t+1 of the same episode; a terminal last
        row needs no next observation (it does not bootstrap); a truncated last row, and a stream that stops
        mid-episode, has none recorded and is dropped. ``rewards`` may be ``[T]`` or ``[T, N]`` (team reward
        replicated or per agent: averaged over agents).
        """
        n = len(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        if rewards.ndim == 2:
            rewards = rewards.mean(-1)
        terminals, truncations = np.asarray(terminals).astype(bool), np.asarray(truncations).astype(bool)
        if terminals.ndim == 2:  # per-agent flags: the episode ends when any agent's flag is set
            terminals, truncations = terminals.any(-1), truncations.any(-1)
        end = terminals | truncations
        episode_ids = np.concatenate([[0], np.cumsum(end[:-1])]).astype(np.int64)
        has_next = np.zeros(n, dtype=bool)
        has_next[:-1] = ~end[:-1]
        keep = has_next | terminals
        rows = np.nonzero(keep)[0]
        next_rows = np.where(terminals[rows], rows, rows + 1)
        return TransitionData(
            observations=torch.from_numpy(np.asarray(obs, dtype=np.float32)),
            obs_index=torch.from_numpy(rows.astype(np.int64)),
            next_obs_index=torch.from_numpy(next_rows.astype(np.int64)),
            actions=torch.from_numpy(np.asarray(actions, dtype=np.float32)[rows]),
            rewards=torch.from_numpy(rewards[rows]),
            terminals=torch.from_numpy(terminals[rows]),
            episode_ids=torch.from_numpy(np.unique(episode_ids[rows], return_inverse=True)[1].astype(np.int64)),
            states=None if state is None else torch.from_numpy(np.asarray(state, dtype=np.float32)),
            legal=None if legal is None else torch.from_numpy(np.asarray(legal).astype(bool)),
        )

    # ------------------------------------------------------------------------------------------------ I/O
    def save(self, path: str | Path, manifest: Mapping | None = None, side_files: Sequence[Path] = ()) -> None:
        """Write an ``.npz`` and then its ``<path>.json`` manifest, each atomically.

        The manifest records ``sha256`` of the ``.npz`` and of ``side_files`` (written before, e.g. the
        ``.modes.npy``), so :func:`saved_dataset_problem` can tell a complete dataset from a corrupt or
        half-replaced one. Written last, the manifest is what makes the dataset complete."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: v.cpu().numpy() for k, v in self.tensors().items()}
        atomic_write(path, lambda f: np.savez(f, **arrays))
        if manifest is not None:
            checksums = {p.name: file_sha256(p) for p in (*map(Path, side_files), path)}
            text = json.dumps({**manifest, "sha256": checksums}, indent=2)
            atomic_write(path.with_suffix(".json"), lambda f: f.write(text.encode()))

    @staticmethod
    def load_manifest(path: str | Path) -> dict:
        """The manifest written by :meth:`save` beside the dataset file ``path``."""
        return json.loads(Path(path).with_suffix(".json").read_text())

    @staticmethod
    def load(path: str | Path) -> TransitionData:
        """Read a dataset written by :meth:`save`; an unreadable file raises :class:`InputError` naming it."""
        path = Path(path)
        if not path.exists():
            raise MissingDataFile(f"dataset file {path} not found; run the datamodule's prepare_data() to make it")
        try:
            z = np.load(path)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            with z:
                arrays = {k: torch.from_numpy(z[k]) for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"{path}: not a readable dataset file ({_short(err)}); delete it and run again to "
                             "regenerate it") from None
        try:
            return TransitionData(**arrays)
        except (TypeError, ValueError) as err:
            raise InputError(f"{path}: not a macflow dataset ({_short(err)}); delete it and run again to "
                             "regenerate it") from None


class MissingDataFile(InputError, FileNotFoundError):
    """A data file or folder the user named, or a cache a step before should have made, does not exist."""


def saved_dataset_problem(path: str | Path) -> str | None:
    """Why the dataset saved at ``path`` cannot be used (missing, manifest unreadable, checksum mismatch, corrupt
    zip), or ``None`` when it is complete.

    Manifests without ``sha256`` (caches written before checksums) are accepted when the ``.npz`` passes its zip
    CRC check and the side files load, so existing caches stay valid without regenerating them."""
    path = Path(path)
    manifest_path = path.with_suffix(".json")
    if not path.exists():
        return "the dataset file is missing"
    if not manifest_path.exists():
        return f"its manifest {manifest_path.name} is missing (an interrupted write)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"its manifest {manifest_path.name} is not valid JSON (truncated?)"
    if not isinstance(manifest, dict):
        return f"its manifest {manifest_path.name} is not a JSON object"
    checksums = manifest.get("sha256")
    if isinstance(checksums, dict):
        for name, expected in checksums.items():
            file = path.parent / name
            if not file.exists():
                return f"{name} named in its manifest is missing"
            if file_sha256(file) != expected:
                return f"the sha256 of {name} does not match its manifest (a corrupt or partly replaced file)"
        return None
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip()
        if broken is not None:
            return f"member {broken} fails its CRC check"
        modes = path.with_suffix(".modes.npy")
        if modes.exists():
            np.load(modes)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        return f"not readable ({_short(err)})"
    return None


def _short(err: BaseException, limit: int = 120) -> str:
    """The first line of an error message, at most ``limit`` characters (library errors can be pages long)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
