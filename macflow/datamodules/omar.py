"""Reader of the original OMAR release (Pan et al., ICML 2022): ``datasets/<env>/<quality>/seed_<k>_data/*.npy``.

Each seed folder holds, per agent i, ``obs_{i}.npy [M, O_i]``, ``acs_{i}.npy [M, A]``, ``rews_{i}.npy [M]``,
``next_obs_{i}.npy [M, O_i]`` and ``dones_{i}.npy [M]`` (float64 in OMAR's buffer; cast to float32 here).
Transitions are flat and episodes are consecutive blocks of ``episode_length`` steps (25 for MPE). The explicit
``next_obs`` is kept (observation table = ``obs`` then ``next_obs``), so nothing depends on guessing boundaries.
OMAR's ``dones`` mark the time limit in MPE, so by default they are *not* terminations (the last step bootstraps).
Agents with smaller observations (simple_tag / simple_world prey) are zero-padded to the largest, like the vaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from macflow.datamodules.screening import BadTransitions, screen_transitions
from macflow.errors import InputError
from macflow.transitions import MissingDataFile, TransitionData

FIELDS = ("obs", "acs", "rews", "next_obs", "dones")


def omar_agent_count(seed_dir: str | Path) -> int:
    """Number of agents in an OMAR seed folder (files ``obs_0.npy``, ``obs_1.npy``, ...)."""
    n = 0
    while (Path(seed_dir) / f"obs_{n}.npy").exists():
        n += 1
    return n


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise MissingDataFile(f"OMAR data folder {path} not found; point it at a 'seed_<k>_data' folder of the "
                              "OMAR release (datasets/<env>/<quality>/seed_<k>_data)")
    if not (path / "obs_0.npy").exists():
        seeds = sorted(path.glob("seed_*_data"))
        if seeds:
            raise MissingDataFile(f"{path} holds several OMAR seed datasets ({', '.join(s.name for s in seeds)}); "
                                  "pass one of them")
        raise MissingDataFile(f"{path} has no obs_0.npy: not an OMAR seed folder (seed_<k>_data)")
    return path


def _load_npy(file: Path) -> np.ndarray:
    """``file`` as float32; a truncated or foreign file raises :class:`InputError` naming it."""
    try:
        return np.load(file).astype(np.float32)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{file}: not a readable .npy file ({type(err).__name__}: {str(err)[:80]}); the "
                         "download is truncated or corrupt: download the OMAR dataset again") from None


def read_omar(path: str | Path, n_agents: int | None = None, episode_length: int = 25,
              dones_are_timeouts: bool = True, bad_transitions: BadTransitions = "error") -> TransitionData:
    """One OMAR seed dataset -> :class:`TransitionData` (team reward = mean of the per-agent rewards).

    Args:
        path: a ``seed_<k>_data`` folder.
        n_agents: expected agents (checked); ``None`` = as many as there are ``obs_<i>.npy`` files.
        episode_length: steps per episode, used for episode ids (returns); 25 for MPE, 1000 for HalfCheetah.
        dones_are_timeouts: OMAR's ``dones`` flag the time limit (MPE): no termination, the last step bootstraps.
        bad_transitions: NaN/inf values and actions outside [-1, 1]: ``error``, ``drop`` or ``clip``
            (:func:`~macflow.datamodules.screening.screen_transitions`).
    """
    path = _resolve(path)
    found = omar_agent_count(path)
    if n_agents is not None and found != n_agents:
        raise InputError(f"{path} has {found} agents (obs_<i>.npy files) but {n_agents} were expected; "
                         "set the datamodule's n_agents to match the data")
    agents = []
    for i in range(found):
        arrays = {}
        for f in FIELDS:
            file = path / f"{f}_{i}.npy"
            if not file.exists():
                raise MissingDataFile(f"{file} is missing: an OMAR seed folder needs {', '.join(FIELDS)} per agent")
            arrays[f] = _load_npy(file)
        agents.append(arrays)
    m = len(agents[0]["obs"])
    obs_dim = max(a["obs"].shape[1] for a in agents)
    for i, a in enumerate(agents):
        shapes = {f: a[f].shape for f in FIELDS}
        if any(s[0] != m for s in shapes.values()) or a["obs"].shape != a["next_obs"].shape \
                or a["acs"].ndim != 2 or a["rews"].reshape(m, -1).shape[1] != 1:
            raise InputError(f"agent {i} of {path}: inconsistent OMAR shapes {shapes}; expected obs/next_obs "
                             f"[{m}, O], acs [{m}, A], rews and dones [{m}]")
    if m % episode_length:
        raise InputError(f"{path}: {m} transitions are not whole episodes of {episode_length} steps; "
                         "set episode_length (25 for MPE, 1000 for HalfCheetah)")

    def stack(key: str) -> np.ndarray:
        return np.stack([np.pad(a[key], ((0, 0), (0, obs_dim - a[key].shape[1]))) for a in agents], 1)

    obs, next_obs = stack("obs"), stack("next_obs")  # [M, N, O]
    actions = np.stack([a["acs"] for a in agents], 1)
    rewards = np.stack([a["rews"].reshape(m) for a in agents], 1).mean(1)
    dones = np.stack([a["dones"].reshape(m) for a in agents], 1).any(1)
    terminals = np.zeros(m, bool) if dones_are_timeouts else dones
    index = torch.arange(m)
    data = TransitionData(
        observations=torch.from_numpy(np.concatenate([obs, next_obs])),
        obs_index=index, next_obs_index=index + m, actions=torch.from_numpy(actions),
        rewards=torch.from_numpy(rewards.astype(np.float32)), terminals=torch.from_numpy(terminals),
        episode_ids=index // episode_length,
    )
    return screen_transitions(data, bad_transitions, f"OMAR folder {path}")


def write_omar(path: str | Path, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               next_obs: np.ndarray, dones: np.ndarray) -> Path:
    """Write arrays ``obs/next_obs [M, N, O]``, ``actions [M, N, A]``, ``rewards/dones [M, N]`` in the OMAR layout
    (float64, one file per agent and field) to ``path`` (a ``seed_<k>_data`` folder). For tests and conversions."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(obs.shape[1]):
        for name, x in (("obs", obs), ("acs", actions), ("rews", rewards), ("next_obs", next_obs), ("dones", dones)):
            np.save(path / f"{name}_{i}.npy", np.asarray(x[:, i], dtype=np.float64))
    return path
