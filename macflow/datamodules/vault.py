"""Reader (and fixture writer) of OG-MARL / flashbax vaults without JAX, through tensorstore (datasets.md §1).

A vault quality folder ``<scenario>.vlt/<Quality>/`` holds ``metadata.json`` and a TensorStore OCDBT database with
one zarr v2 array per pytree leaf, named by the leaf path with a dot after each component (``observations.``,
``infos.state.``) plus ``vault_index`` (int32 ``[1]``: the number of valid timesteps T). Arrays are
``[B, 10**13, ...]``; only ``[:, :T]`` holds data. Row t of batch row b is ``(o_t, a_t, r_t, terminal_t,
truncation_t, info_t)`` and there is no next-observation array (the next observation is row t+1).

:class:`VaultReader` opens everything read-only and slices lazily; :func:`read_vault_transitions` turns a vault
into :class:`TransitionData` via ``TransitionData.from_stream`` (benchmark-agnostic: MPE, MaMuJoCo, SMAC).
:func:`write_vault` writes the same layout (for test fixtures and conversions).
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

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


def read_vault_transitions(vault_dir: str | Path, rows: Sequence[int] | None = None,
                           terminals_are_timeouts: bool = False, state_key: str | None = "infos.state",
                           legal_key: str | None = "infos.legals", n_actions: int | None = None,
                           t1: int | None = None, bad_transitions: BadTransitions = "error") -> TransitionData:
    """A vault (all or some batch rows, each its own stream) -> :class:`TransitionData`.

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
    get = lambda leaf: reader.read(leaf, 0, t1, rows)  # noqa: E731
    obs, actions, rewards = get("observations"), get("actions"), get("rewards")
    terminals, truncations = get("terminals"), get("truncations")
    b, t = obs.shape[:2]
    if obs.ndim != 4:
        raise InputError(f"{vault_dir}: observations must be [B, T, N, O], got {list(obs.shape)}")
    legal = get(legal_key) if legal_key and legal_key in reader.leaves else None
    discrete = np.issubdtype(actions.dtype, np.integer)
    if discrete:
        idx = actions.reshape(b, t, obs.shape[2]).astype(np.int64)
        n = n_actions or (legal.shape[-1] if legal is not None else None)
        if n is None:
            raise InputError(f"{vault_dir}: integer actions need n_actions (no legal-action mask to read it from)")
        actions = np.eye(n, dtype=np.float32)[idx]
    else:
        legal = None
    state = get(state_key) if state_key and state_key in reader.leaves else None
    if state is not None and state.ndim == 4:
        state = state.reshape(b, t, -1)
    terminals = terminals.astype(bool).reshape(b, t, -1).all(-1)
    truncations = truncations.astype(bool).reshape(b, t, -1).all(-1)
    if terminals_are_timeouts:
        truncations, terminals = truncations | terminals, np.zeros_like(terminals)
    truncations[:, -1] |= ~terminals[:, -1]  # each row is its own stream: never pair across rows
    flat = lambda x: None if x is None else x.reshape((b * t,) + x.shape[2:])  # noqa: E731
    data = TransitionData.from_stream(flat(obs), flat(actions), flat(rewards), flat(terminals), flat(truncations),
                                      state=flat(state), legal=flat(legal))
    return screen_transitions(data, bad_transitions, f"vault {vault_dir}")


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
