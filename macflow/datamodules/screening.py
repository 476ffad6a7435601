"""``screen_transitions``: find transitions with NaN/inf values or actions outside [-1, 1], then raise, drop or clip.

Every reader and every datamodule screens its data where it enters, so a bad value is reported once, naming the
file and the array, instead of turning into a NaN loss later. ``bad_transitions`` says what to do:

* ``error`` (default): raise :class:`~macflow.errors.InputError` with the counts and the option that changes it.
* ``drop``: drop the transitions with a non-finite value (in ``o_t``, ``o_{t+1}``, ``a_t``, ``r_t``, ``s_t``,
  ``s_{t+1}``) or an out-of-bounds action, and the non-finite rows of the observation table.
* ``clip``: clip out-of-bounds actions to [-1, 1]; non-finite values cannot be clipped, so their transitions are
  dropped as with ``drop``.

Dropping keeps every remaining pair ``(o_t, o_{t+1})`` as recorded (indices are remapped, episode ids renumbered).
Actions within ``ACTION_TOLERANCE`` of the bounds are float rounding and are clipped silently.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from macflow.errors import InputError
from macflow.transitions import TransitionData

BadTransitions = Literal["error", "drop", "clip"]
BAD_TRANSITIONS = ("error", "drop", "clip")
ACTION_TOLERANCE = 1e-4
"""Largest excess of |a| over 1 taken as float rounding (clipped without a report)."""
OPTION = "data.init_args.bad_transitions"


SCREEN_ROWS = 65536
"""Rows per chunk while screening: the temporaries stay small beside the data."""


def check_bad_transitions(value: str) -> None:
    """Raise :class:`InputError` unless ``value`` is one of :data:`BAD_TRANSITIONS`."""
    if value not in BAD_TRANSITIONS:
        raise InputError(f"{OPTION}={value!r} is not an option; choose one of {', '.join(BAD_TRANSITIONS)}")


def _row_extremes(x: Tensor, chunk: int = SCREEN_ROWS) -> tuple[Tensor, Tensor]:
    """``[len(x)]`` smallest and largest value of each row of ``x`` (as float), NaN where a row holds one.

    ``aminmax`` reduces without an elementwise temporary (``isfinite`` or ``abs`` would allocate one the size of
    each chunk, and the freed chunks stay in the process's resident set); rows go in chunks so that a
    non-contiguous or non-float ``x`` is copied a chunk at a time."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if not len(x) or not x[0].numel():
        zeros = torch.zeros(len(x), dtype=dtype, device=x.device)
        return zeros, zeros
    lows, highs = zip(*(torch.aminmax(c.reshape(len(c), -1).to(dtype), dim=1) for c in x.split(chunk)))
    return torch.cat(lows), torch.cat(highs)


def _bad_rows(x: Tensor | None) -> Tensor | None:
    """``[len(x)]`` bool, True where a row holds NaN or inf (inf shows as an extreme, NaN propagates)."""
    if x is None:
        return None
    if x.dtype == torch.bool or not x.is_floating_point():
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)
    low, high = _row_extremes(x)
    return ~(torch.isfinite(low) & torch.isfinite(high))


def _row_max_abs(x: Tensor) -> Tensor:
    """``[len(x)]`` largest ``|x|`` of each row, 0 for a row with NaN or inf (screened as non-finite instead)."""
    low, high = _row_extremes(x)
    magnitude = torch.maximum(high, -low).float()
    return torch.where(torch.isfinite(magnitude), magnitude, torch.zeros_like(magnitude))


def screen_transitions(data: TransitionData, bad_transitions: BadTransitions = "error",
                       source: str = "the data") -> TransitionData:
    """``data`` with bad transitions handled as ``bad_transitions`` says (see the module docstring).

    ``source`` names the file or folder in messages. Returns ``data`` itself when nothing is wrong."""
    check_bad_transitions(bad_transitions)
    t = data.n_transitions
    obs_rows, state_rows = _bad_rows(data.observations), _bad_rows(data.states)
    table_rows = obs_rows if state_rows is None else obs_rows | state_rows
    per_array = {
        "observations": obs_rows[data.obs_index] | obs_rows[data.next_obs_index],
        "actions": _bad_rows(data.actions),
        "rewards": ~torch.isfinite(data.rewards),
    }
    if state_rows is not None:
        per_array["states"] = state_rows[data.obs_index] | state_rows[data.next_obs_index]
    non_finite = torch.zeros(t, dtype=torch.bool)
    for mask in per_array.values():
        non_finite |= mask
    magnitude = _row_max_abs(data.actions)
    max_abs = float(magnitude.max()) if magnitude.numel() else 0.0
    out_of_bounds = (magnitude > 1.0 + ACTION_TOLERANCE) & ~non_finite
    n_bad, n_oob, n_rows = int(non_finite.sum()), int(out_of_bounds.sum()), int(table_rows.sum())
    if not (n_bad or n_oob or n_rows):
        return replace(data, actions=data.actions.clamp(-1.0, 1.0)) if max_abs > 1.0 else data
    counts = ", ".join(f"{name}: {int(mask.sum())}" for name, mask in per_array.items() if mask.any())
    if bad_transitions == "error":
        if n_bad or n_rows:
            where = f"in {counts}" if n_bad else f"{n_rows} observation rows that no transition uses"
            raise InputError(f"{source}: {n_bad} of {t} transitions have NaN or inf values ({where}); fix the "
                             f"data, or set {OPTION}=drop to drop them")
        raise InputError(f"{source}: {n_oob} of {t} transitions have actions outside [-1, 1] (max |a| = "
                         f"{max_abs:.3g}); rescale the actions to [-1, 1], or set {OPTION}=clip to clip them "
                         "(or drop to drop them)")
    drop = non_finite | out_of_bounds if bad_transitions == "drop" else non_finite
    clipped = 0 if bad_transitions == "drop" else n_oob
    data = _keep(data, ~drop, ~table_rows)
    if data.n_transitions == 0:
        raise InputError(f"{source}: {bad_transitions} left no transitions (all {t} are bad); fix the data")
    if max_abs > 1.0:
        data = replace(data, actions=data.actions.clamp(-1.0, 1.0))
    reasons = ", ".join(part for part in (f"non-finite values in {counts}" if n_bad else "",
                                          f"actions outside [-1, 1]: {n_oob}" if n_oob else "") if part)
    rank_zero_warn(f"{source}: {OPTION}={bad_transitions} dropped {int(drop.sum())} and clipped {clipped} of {t} "
                   f"transitions ({reasons or f'{n_rows} unused non-finite observation rows removed'})")
    return data


def _keep(data: TransitionData, keep: Tensor, keep_rows: Tensor) -> TransitionData:
    """The transitions ``keep`` of ``data`` over the observation-table rows ``keep_rows`` (indices remapped)."""
    new_row = torch.cumsum(keep_rows.long(), 0) - 1
    episode_ids = data.episode_ids[keep]
    return TransitionData(
        observations=data.observations[keep_rows], obs_index=new_row[data.obs_index[keep]],
        next_obs_index=new_row[data.next_obs_index[keep]], actions=data.actions[keep], rewards=data.rewards[keep],
        terminals=data.terminals[keep], episode_ids=torch.unique(episode_ids, return_inverse=True)[1],
        states=None if data.states is None else data.states[keep_rows],
        legal=None if data.legal is None else data.legal[keep_rows],
    )
