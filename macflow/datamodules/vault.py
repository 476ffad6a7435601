"""Reader (and fixture writer) of OG-MARL / flashbax vaults without JAX, through tensorstore (datasets.md §1).

A vault quality folder ``<scenario>.vlt/<Quality>/`` holds ``metadata.json`` and a TensorStore OCDBT database with
one zarr v2 array per pytree leaf, named by the leaf path with a dot after each component (``observations.``,
``infos.state.``) plus ``vault_index`` (int32 ``[1]``: the number of valid timesteps T). Arrays are
``[B, 10**13, ...]``; only ``[:, :T]`` holds data. Row t of batch row b is ``(o_t, a_t, r_t, terminal_t,
truncation_t, info_t)`` and there is no next-observation array (the next observation is row t+1).

:class:`VaultReader` opens everything read-only and slices lazily; :func:`read_vault_transitions` streams a vault
into :class:`TransitionData` in time chunks, reading each value once (benchmark-agnostic: MPE, MaMuJoCo, SMAC);
:func:`vault_dims` gives its dims from ``metadata.json`` alone.
:func:`write_vault` writes the same layout (for test fixtures and conversions).
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from macflow.datamodules.screening import BadTransitions, screen_transitions
from macflow.errors import InputError
from macflow.transitions import MissingDataFile, TransitionData

TIME_BOUND = 10**13
"""Declared length of the time axis of every vault array (flashbax's upper bound)."""


def _tensorstore():
    try:
        import tensorstore
    except ImportError as err:
        raise ImportError("reading vaults needs tensorstore: pip install 'macflow[vault]'") from err
    return tensorstore


def _leaves(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, val in tree.items():
        if isinstance(val, Mapping):
            out.update(_leaves(val, prefix + (key,)))
        else:
            out[".".join(prefix + (key,))] = val
    return out


def _spec(vault_dir: Path, name: str) -> dict:
    return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": "file://" + os.path.abspath(vault_dir),
                                          "path": name}}


class VaultReader:
    """Read-only view of one vault quality folder.

    Attributes:
        leaves: ``{"observations": dtype, "infos.state": dtype, ...}`` from ``metadata.json``.
        n_rows: B, the batch rows (5 in the OMAR vaults, one per OMAR seed).
        length: T, the valid timesteps (``vault_index``).
    """

    def __init__(self, vault_dir: str | Path) -> None:
        self.path = Path(vault_dir)
        meta_file = self.path / "metadata.json"
        if not meta_file.exists():
            subs = sorted(p.name for p in self.path.iterdir() if p.is_dir()) if self.path.is_dir() else []
            hint = f" It has sub-folders {subs}: pass one quality folder, e.g. {self.path / subs[0]}." if subs else ""
            raise MissingDataFile(f"{meta_file} not found: not a vault quality folder "
                                  f"(<scenario>.vlt/<Quality>/).{hint}")
        try:
            self.metadata = json.loads(meta_file.read_text())
            version = float(self.metadata.get("version", 1.0))
            self.leaves = _leaves(self.metadata["structure_dtype"])
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as err:
            raise InputError(f"{meta_file}: not a valid vault metadata file ({type(err).__name__}); the vault "
                             "download is truncated or corrupt: download it again") from None
        if int(version) != 1:
            raise InputError(f"{self.path}: vault version {version} is not supported (1.x)")
        self.ts = _tensorstore()
        self._arrays: dict[str, object] = {}
        self.length = int(self._result(lambda: self._open("vault_index").read().result(), "vault_index")[0])
        self.n_rows = int(self.array("observations").shape[0])

    def _result(self, call, name: str):
        """``call()``, with a tensorstore failure (missing or truncated chunk, broken database) re-raised as one
        :class:`InputError` line naming the vault and the array instead of pages of tensorstore text."""
        try:
            return call()
        except InputError:
            raise
        except (ValueError, OSError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            reason = first if len(first) <= 100 else first[:97] + "..."
            raise InputError(f"{self.path}: cannot read the vault array {name.rstrip('.')!r} ({reason}); the vault is incomplete "
                             "or corrupt: download it again") from None

    def _open(self, name: str):
        return self._result(lambda: self.ts.open(_spec(self.path, name), open=True, read=True).result(), name)

    def array(self, leaf: str):
        """The lazy tensorstore array of ``leaf`` (e.g. ``"infos.state"``), shape ``[B, 10**13, ...]``."""
        if leaf not in self.leaves:
            raise KeyError(f"{self.path} has no leaf {leaf!r}; it has {sorted(self.leaves)}")
        if leaf not in self._arrays:
            self._arrays[leaf] = self._open("".join(part + "." for part in leaf.split(".")))
        return self._arrays[leaf]

    def read(self, leaf: str, t0: int = 0, t1: int | None = None, rows: Sequence[int] | None = None) -> np.ndarray:
        """``leaf[rows, t0:t1]`` as numpy (``t1`` defaults to T; only valid timesteps are read)."""
        t1 = self.length if t1 is None else min(t1, self.length)
        arr = self.array(leaf)
        if rows is None:
            return self._result(lambda: np.asarray(arr[:, t0:t1].read().result()), leaf)
        return np.stack([self._result(lambda: np.asarray(arr[int(b), t0:t1].read().result()), leaf) for b in rows])


READ_ROWS = 2**18
"""Timesteps read per call while streaming a vault (rounded up to whole storage chunks of each array)."""


def _time_chunk(arr) -> int:
    """Timesteps per read of ``arr``: ``READ_ROWS`` rounded up to a multiple of its storage chunk along time."""
    try:
        chunk = int(arr.chunk_layout.read_chunk.shape[1])
    except (AttributeError, TypeError, IndexError, ValueError):
        chunk = 0
    return READ_ROWS if chunk <= 0 else -(-READ_ROWS // chunk) * chunk


def _stream(reader: VaultReader, leaf: str, rows: Sequence[int], t: int):
    """``(flat start, block)`` over ``leaf[rows, :t]`` in time chunks, row by row; ``flat start`` indexes the
    stream of the rows laid end to end (row ``i`` starts at ``i * t``). Each value is read once."""
    arr = reader.array(leaf)
    step = _time_chunk(arr)
    for i, b in enumerate(rows):
        for t0 in range(0, t, step):
            t1 = min(t, t0 + step)
            block = reader._result(lambda b=b, t0=t0, t1=t1: np.asarray(arr[int(b), t0:t1].read().result()), leaf)
            yield i * t + t0, block


def _episode_ends(reader: VaultReader, rows: Sequence[int], t: int, terminals_are_timeouts: bool):
    """``terminals``, ``truncations`` ``[len(rows) * t]`` bool: a step ends an episode when every agent's flag is
    set; each row's last step is a truncation unless it terminates (rows are separate streams)."""
    flags = {}
    for leaf in ("terminals", "truncations"):
        out = np.zeros(len(rows) * t, dtype=bool)
        for s, block in _stream(reader, leaf, rows, t):
            out[s:s + len(block)] = block.astype(bool).reshape(len(block), -1).all(-1)
        flags[leaf] = out
    terminals, truncations = flags["terminals"], flags["truncations"]
    if terminals_are_timeouts:
        truncations, terminals = truncations | terminals, np.zeros_like(terminals)
    last = np.arange(1, len(rows) + 1) * t - 1
    truncations[last] |= ~terminals[last]
    return terminals, truncations


def release_freed_memory() -> None:
    """Give the pages of freed heap blocks back to the system (glibc ``malloc_trim``; a no-op elsewhere): the
    streamed reads leave many freed chunk buffers that would otherwise stay in the process's resident set."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def read_vault_transitions(vault_dir: str | Path, rows: Sequence[int] | None = None,
                           terminals_are_timeouts: bool = False, state_key: str | None = "infos.state",
                           legal_key: str | None = "infos.legals", n_actions: int | None = None,
                           t1: int | None = None, bad_transitions: BadTransitions = "error") -> TransitionData:
    """A vault (all or some batch rows, each its own stream) -> :class:`TransitionData`, streamed.

    Every array is read once, in time chunks, straight into the final tables: the observation table (and state
    and legal mask) of every row, the actions, rewards and flags of the kept transitions only; integer actions
    become one-hot as they are read. Row t pairs with row t+1 of the same episode (``TransitionData.from_stream``'s
    convention): a terminal last row is kept without a next observation, a truncated last row and a row's
    unfinished tail are dropped (no next observation is recorded).

    Args:
        vault_dir: the quality folder.
        rows: batch rows to use (``None``: all); each row is a separate stream and its unfinished tail is dropped.
        terminals_are_timeouts: the source's ``terminals`` flag time-limit ends (OMAR): read them as truncations.
        state_key: leaf of the global state (``None`` or absent: no state). Per-agent states ``[B, T, N, S]``
            (OMAR MaMuJoCo) are flattened to ``N * S``.
        legal_key: leaf of the legal-action mask (``None`` or absent: none); kept only for discrete actions.
        n_actions: number of discrete actions for integer actions ``[B, T, N]`` / ``[B, T, N, 1]`` (default: the
            legal mask's last dim).
        t1: read only the first ``t1`` timesteps of each row (quick looks at big vaults).
        bad_transitions: NaN/inf values and actions outside [-1, 1]: ``error``, ``drop`` or ``clip``
            (:func:`~macflow.datamodules.screening.screen_transitions`).
    """
    reader = VaultReader(vault_dir)
    rows = list(range(reader.n_rows)) if rows is None else [int(r) for r in rows]
    bad = [r for r in rows if not 0 <= r < reader.n_rows]
    if bad:
        raise InputError(f"{vault_dir} has {reader.n_rows} batch rows; rows {bad} do not exist")
    t = reader.length if t1 is None else min(int(t1), reader.length)
    trailing = lambda leaf: tuple(int(d) for d in reader.array(leaf).shape[2:])  # noqa: E731
    obs_shape = trailing("observations")
    if len(obs_shape) != 2:
        raise InputError(f"{vault_dir}: observations must be [B, T, N, O], got [B, T, "
                         f"{', '.join(map(str, obs_shape))}]; this is not a multi-agent vault")
    n_agents, m = obs_shape[0], len(rows) * t
    discrete = np.issubdtype(np.dtype(reader.leaves["actions"]), np.integer)
    legal_key = legal_key if discrete and legal_key and legal_key in reader.leaves else None
    state_key = state_key if state_key and state_key in reader.leaves else None
    if discrete:
        n = n_actions or (trailing(legal_key)[-1] if legal_key else None)
        if n is None:
            raise InputError(f"{vault_dir}: integer actions need n_actions (no legal-action mask to read it from)")
        action_dim = int(n)
    else:
        action_dim = trailing("actions")[-1]

    terminals, truncations = _episode_ends(reader, rows, t, terminals_are_timeouts)
    end = terminals | truncations
    has_next = np.zeros(m, dtype=bool)
    has_next[:-1] = ~end[:-1]
    kept = np.nonzero(has_next | terminals)[0]
    slot = np.full(m, -1, dtype=np.int64)  # position of each stream row among the kept transitions
    slot[kept] = np.arange(len(kept))

    observations = np.empty((m, *obs_shape), dtype=np.float32)
    for s, block in _stream(reader, "observations", rows, t):
        observations[s:s + len(block)] = block
    states = None
    if state_key:
        states = np.empty((m, int(np.prod(trailing(state_key)))), dtype=np.float32)
        for s, block in _stream(reader, state_key, rows, t):
            states[s:s + len(block)] = block.reshape(len(block), -1)
    legal = None
    if legal_key:
        legal = np.empty((m, n_agents, action_dim), dtype=bool)
        for s, block in _stream(reader, legal_key, rows, t):
            legal[s:s + len(block)] = block.reshape(len(block), n_agents, -1)[..., :action_dim] != 0
    actions = np.zeros((len(kept), n_agents, action_dim), dtype=np.float32)
    for s, block in _stream(reader, "actions", rows, t):
        at = slot[s:s + len(block)]
        sel = at >= 0
        if discrete:
            idx = block.reshape(len(block), n_agents)[sel].astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= action_dim):
                raise InputError(f"{vault_dir}: actions hold indices {idx.min()}..{idx.max()} but there are "
                                 f"{action_dim} actions; pass n_actions or check the vault's infos.legals")
            actions[at[sel][:, None], np.arange(n_agents)[None], idx] = 1.0
        else:
            actions[at[sel]] = block.reshape(len(block), n_agents, -1)[sel]
    rewards = np.empty(len(kept), dtype=np.float32)
    for s, block in _stream(reader, "rewards", rows, t):
        at = slot[s:s + len(block)]
        sel = at >= 0
        rewards[at[sel]] = block.reshape(len(block), -1).astype(np.float32).mean(-1)[sel]

    episode_ids = np.concatenate([[0], np.cumsum(end[:-1])]).astype(np.int64)[kept]
    data = TransitionData(
        observations=torch.from_numpy(observations), obs_index=torch.from_numpy(kept),
        next_obs_index=torch.from_numpy(np.where(terminals[kept], kept, kept + 1)),
        actions=torch.from_numpy(actions), rewards=torch.from_numpy(rewards),
        terminals=torch.from_numpy(terminals[kept]),
        episode_ids=torch.from_numpy(np.unique(episode_ids, return_inverse=True)[1].astype(np.int64)),
        states=None if states is None else torch.from_numpy(states),
        legal=None if legal is None else torch.from_numpy(legal))
    release_freed_memory()  # the chunk buffers' pages, before screening allocates its own
    return screen_transitions(data, bad_transitions, f"vault {vault_dir}")


def vault_dims(vault_dir: str | Path) -> dict[str, int | bool]:
    """``n_agents``, ``obs_dim``, ``action_dim``, ``state_dim`` and ``discrete`` of a vault from its
    ``metadata.json`` alone (no tensorstore, nothing read): what a datamodule declares before loading."""
    path = Path(vault_dir)
    meta_file = path / "metadata.json"
    if not meta_file.exists():
        subs = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
        hint = f" It has sub-folders {subs}: pass one quality folder, e.g. {path / subs[0]}." if subs else \
            " Pass a quality folder <scenario>.vlt/<Quality>/ of a downloaded vault."
        raise MissingDataFile(f"{meta_file} not found: not a vault quality folder.{hint}")
    try:
        metadata = json.loads(meta_file.read_text())
        shapes, dtypes = structure_shape(metadata), _leaves(metadata["structure_dtype"])
        obs, actions = shapes["observations"], shapes["actions"]
        discrete = np.issubdtype(np.dtype(dtypes["actions"]), np.integer)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError,
            SyntaxError) as err:
        raise InputError(f"{meta_file}: not a valid vault metadata file ({type(err).__name__}); the vault "
                         "download is truncated or corrupt: download it again") from None
    if len(obs) != 4:
        raise InputError(f"{meta_file}: observations have shape {obs}, not [B, T, N, O]; this is not a "
                         "multi-agent vault")
    legals, state = shapes.get("infos.legals"), shapes.get("infos.state")
    if discrete:
        action_dim = int(legals[-1]) if legals is not None else 0
    else:
        action_dim = int(actions[-1])
    return {"n_agents": int(obs[2]), "obs_dim": int(obs[3]), "action_dim": action_dim,
            "state_dim": 0 if state is None else int(np.prod(state[2:])), "discrete": bool(discrete),
            "legal": legals is not None}


def write_vault(vault_dir: str | Path, experience: Mapping, version: float = 1.2) -> Path:
    """Write ``experience`` (a nested dict of numpy arrays ``[B, T, ...]``) as a flashbax vault at ``vault_dir``.

    Same layout as flashbax 0.1.3 (version 1.2: gzip level 5; version 1.0 leaves the compressor to tensorstore's
    default, blosc). Used by the tests to make fixtures in the published layout without JAX.
    """
    ts = _tensorstore()
    vault_dir = Path(vault_dir)
    vault_dir.mkdir(parents=True, exist_ok=True)
    leaves = _leaves(experience)
    lengths = {np.asarray(x).shape[1] for x in leaves.values()}
    if len(lengths) != 1:
        raise ValueError(f"all leaves need the same time length, got {sorted(lengths)}")
    t = lengths.pop()
    for leaf, x in leaves.items():
        x = np.asarray(x)
        meta = {"dtype": x.dtype.str, "shape": [x.shape[0], TIME_BOUND, *x.shape[2:]]}
        if version >= 1.1:
            meta["compressor"] = {"id": "gzip", "level": 5}
        spec = {**_spec(vault_dir, "".join(p + "." for p in leaf.split("."))), "metadata": meta}
        arr = ts.open(spec, create=True).result()
        arr[:, 0:t].write(x).result()
    index = ts.open({**_spec(vault_dir, "vault_index"), "metadata": {"dtype": "<i4", "shape": [1]}},
                    create=True).result()
    index.write(np.array([t], dtype=np.int32)).result()

    def tree(fn, node):
        return {k: tree(fn, v) if isinstance(v, Mapping) else fn(np.asarray(v)) for k, v in node.items()}

    metadata = {"version": version, "structure_shape": tree(lambda x: str(tuple(x.shape)), experience),
                "structure_dtype": tree(lambda x: x.dtype.name, experience)}
    (vault_dir / "metadata.json").write_text(json.dumps(metadata))
    return vault_dir


def structure_shape(metadata: Mapping) -> dict[str, tuple[int, ...]]:
    """Parsed ``structure_shape`` leaves (strings of tuples in the file)."""
    return {k: tuple(ast.literal_eval(v)) for k, v in _leaves(metadata["structure_shape"]).items()}
