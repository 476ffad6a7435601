"""Reader (and fixture writer) of the original OMIGA MaMuJoCo release (Wang et al., NeurIPS 2023), datasets.md §3.1.

One HDF5 per task, ``<Scenario>-<agent_conf>-<data_type>.hdf5`` (e.g. ``Hopper-v2-3x1-expert.hdf5``) with keys
``o [T, N, D]`` (observations), ``s [T, N, D]`` (states, built like ``o``), ``a [T, N, A]`` (actions in [-1, 1]),
``r`` (team reward, ``T`` elements) and ``d [T, 1]``. Episodes are stored back to back and each ends with an
**extra final-observation row** flagged ``d = 1``: its action and reward are not a transition. So a 1000-step episode
takes 1001 rows, transition t is ``(o_t, a_t, r_t, o_{t+1})`` for every row with ``d_t = 0``, and the step before a
``d = 1`` row is the episode's last.

OMIGA's own loader treats every episode end as terminal. Here an episode that reached the time limit
(``max_episode_steps`` steps) is a truncation and bootstraps; a shorter one (Hopper falling) is a termination.
``terminals="omiga"`` reproduces OMIGA's convention instead. :func:`read_omiga_vault` reads OG-MARL's re-hosted
``omiga/mamujoco`` vaults (same rows, ``terminals`` on the final row) with the same logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from macflow.datamodules.screening import BadTransitions, screen_transitions
from macflow.errors import InputError
from macflow.transitions import MissingDataFile, TransitionData

KEYS = ("o", "s", "a", "r", "d")


def _h5py():
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading OMIGA hdf5 files needs h5py: pip install 'macflow[omiga]'") from err
    return h5py


def _unreadable(path: Path, err: BaseException) -> InputError:
    return InputError(f"{path}: not a readable HDF5 file ({type(err).__name__}: {str(err).splitlines()[0][:80]}); "
                      "the download is truncated or corrupt: download it again")


def _open(path: Path):
    """``h5py.File(path)`` read-only; an unreadable file raises :class:`InputError` naming it."""
    try:
        return _h5py().File(path, "r")
    except OSError as err:
        raise _unreadable(path, err) from None


def omiga_dims(path: str | Path) -> dict[str, int]:
    """``{n_agents, obs_dim, action_dim, rows}`` from the file's dataset shapes (reads no data)."""
    with _open(_check(path)) as h:
        t, n, d = h["o"].shape
        return {"n_agents": n, "obs_dim": d, "action_dim": h["a"].shape[2], "rows": t}


def _check(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingDataFile(f"OMIGA file {path} not found; point data.init_args.path at a downloaded "
                              "'<Scenario>-v2-<agent_conf>-<data_type>.hdf5' (e.g. Hopper-v2-3x1-expert.hdf5)")
    with _open(path) as h:
        missing = [k for k in KEYS if k not in h]
        if missing:
            raise InputError(f"{path} is not an OMIGA MaMuJoCo file: keys {missing} missing (it has {sorted(h)}; "
                             f"expected {list(KEYS)})")
    return path


def read_omiga(path: str | Path, max_episode_steps: int = 1000, terminals: Literal["length", "omiga"] = "length",
               bad_transitions: BadTransitions = "error") -> TransitionData:
    """One OMIGA hdf5 -> :class:`TransitionData` (observation table = every row; state = agent 0's ``s``).

    Args:
        path: the ``.hdf5`` file.
        max_episode_steps: the time limit; an episode of this many steps ended by truncation (bootstraps).
        terminals: ``length`` (termination iff the episode is shorter than the limit) or ``omiga`` (every episode
            end is terminal, as OMIGA's loader does).
        bad_transitions: NaN/inf values and actions outside [-1, 1]: ``error``, ``drop`` or ``clip``
            (:func:`~macflow.datamodules.screening.screen_transitions`).
    """
    if terminals not in ("length", "omiga"):
        raise ValueError(f"terminals must be 'length' or 'omiga', got {terminals!r}")
    path = _check(path)
    with _open(path) as h:
        try:
            o = np.asarray(h["o"][:], dtype=np.float32)
            s = np.asarray(h["s"][:], dtype=np.float32)
            a = np.asarray(h["a"][:], dtype=np.float32)
            r = np.asarray(h["r"][:], dtype=np.float32).reshape(-1)
            d = np.asarray(h["d"][:]).reshape(-1).astype(bool)
        except OSError as err:
            raise _unreadable(path, err) from None
    t = len(o)
    if not (len(s) == len(a) == len(r) == len(d) == t) or o.ndim != 3 or a.ndim != 3 or s.shape[:2] != o.shape[:2]:
        raise InputError(f"{path}: inconsistent OMIGA shapes o {o.shape}, s {s.shape}, a {a.shape}, r {r.shape}, "
                         f"d {d.shape}; expected o/s [T, N, D], a [T, N, A], r and d with T rows")
    data = omiga_transitions([(o, s[:, 0], a, r, d)], max_episode_steps, terminals, str(path))
    return screen_transitions(data, bad_transitions, str(path))


def omiga_transitions(streams: list[tuple[np.ndarray, ...]], max_episode_steps: int = 1000,
                      terminals: str = "length", source: str = "OMIGA data") -> TransitionData:
    """Streams ``(o [T, N, D], state [T, S], a [T, N, A], r [T], d [T])`` in OMIGA's row convention (each episode
    ends with an extra final-observation row flagged ``d = 1``) -> :class:`TransitionData`. Several streams (the
    batch rows of a vault) never pair across each other; an unfinished tail keeps its recorded transitions and is
    not terminal. Values are not screened here (the readers do it)."""
    cols: dict[str, list] = {k: [] for k in ("o", "s", "a", "r", "rows", "term", "ids")}
    offset, n_eps = 0, 0
    for o, state, a, r, d in streams:
        d = np.asarray(d).reshape(-1).astype(bool)
        rows = np.nonzero(~d[:-1])[0]  # sources: rows with d = 0 and a next row (t + 1, maybe the final row)
        ends = d[rows + 1]  # the transition is the last of its episode
        ids = np.concatenate([[0], np.cumsum(d[:-1])])[rows]  # a d = 1 row closes its episode
        lengths = np.bincount(ids, minlength=int(ids.max(initial=-1)) + 1)
        if (lengths > max_episode_steps).any():
            raise InputError(f"{source}: an episode has {lengths.max()} steps, more than max_episode_steps="
                             f"{max_episode_steps}; set max_episode_steps to the data's time limit")
        term = ends if terminals == "omiga" else ends & (lengths[ids] < max_episode_steps)
        cols["o"].append(np.asarray(o, np.float32))
        cols["s"].append(np.asarray(state, np.float32))
        cols["a"].append(np.asarray(a, np.float32)[rows])
        cols["r"].append(np.asarray(r, np.float32).reshape(-1)[rows])
        cols["rows"].append(rows.astype(np.int64) + offset)
        cols["term"].append(term)
        cols["ids"].append(ids + n_eps)
        offset += len(d)
        n_eps += len(lengths)
    cat = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in cols.items()}  # one stream: no copy
    return TransitionData(
        observations=torch.from_numpy(cat["o"]), obs_index=torch.from_numpy(cat["rows"]),
        next_obs_index=torch.from_numpy(cat["rows"] + 1), actions=torch.from_numpy(cat["a"]),
        rewards=torch.from_numpy(cat["r"]), terminals=torch.from_numpy(cat["term"]),
        episode_ids=torch.from_numpy(np.unique(cat["ids"], return_inverse=True)[1].astype(np.int64)),
        states=torch.from_numpy(np.ascontiguousarray(cat["s"])),
    )


def read_omiga_vault(vault_dir: str | Path, rows: list[int] | None = None, max_episode_steps: int = 1000,
                     terminals: Literal["length", "omiga"] = "length",
                     bad_transitions: BadTransitions = "error") -> TransitionData:
    """An OG-MARL ``omiga/mamujoco`` vault (OMIGA rows converted: ``terminals`` flags the extra final row,
    ``infos.state [B, T, D]``) -> :class:`TransitionData`, through the generic :class:`VaultReader`, screened
    like :func:`read_omiga`."""
    from macflow.datamodules.vault import VaultReader

    reader = VaultReader(vault_dir)
    rows = list(range(reader.n_rows)) if rows is None else [int(b) for b in rows]
    streams = []
    for b in rows:
        get = lambda leaf: reader.read(leaf, rows=[b])[0]  # noqa: E731
        o = get("observations")
        state = get("infos.state") if "infos.state" in reader.leaves else o[:, 0]
        streams.append((o, state.reshape(len(o), -1), get("actions"), get("rewards").reshape(len(o), -1).mean(1),
                        get("terminals").reshape(len(o), -1).all(1)))
    data = omiga_transitions(streams, max_episode_steps, terminals, str(vault_dir))
    return screen_transitions(data, bad_transitions, f"vault {vault_dir}")


def write_omiga(path: str | Path, episodes: list[dict]) -> Path:
    """Write episodes (``obs [L+1, N, D]`` incl. the final observation, ``state [L+1, N, D]`` (default: obs),
    ``actions [L, N, A]``, ``rewards [L]``) in OMIGA's layout: L+1 rows per episode, the last one flagged ``d = 1``
    with a zero action and reward. float32 like the release; for tests and conversions."""
    o, s, a, r, d = [], [], [], [], []
    for ep in episodes:
        obs = np.asarray(ep["obs"], dtype=np.float32)
        act = np.asarray(ep["actions"], dtype=np.float32)
        length = len(act)
        o.append(obs)
        s.append(np.asarray(ep.get("state", obs), dtype=np.float32))
        a.append(np.concatenate([act, np.zeros((1,) + act.shape[1:], np.float32)]))
        r.append(np.concatenate([np.asarray(ep["rewards"], np.float32).reshape(length), [0.0]]))
        d.append(np.r_[np.zeros(length), 1.0])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _h5py().File(path, "w") as h:
        h["o"], h["s"], h["a"] = np.concatenate(o), np.concatenate(s), np.concatenate(a)
        h["r"] = np.concatenate(r).astype(np.float32).reshape(-1, 1)
        h["d"] = np.concatenate(d).astype(np.float32).reshape(-1, 1)
    return path
