"""Screening of loaded data: NaN/inf in any array and actions outside [-1, 1] raise, drop or clip, with counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from macflow.datamodules import CoordinationDataModule, TransitionData
from macflow.datamodules.screening import screen_transitions
from macflow.errors import InputError


def _data(n_episodes: int = 3, length: int = 4, with_state: bool = False) -> TransitionData:
    episodes = []
    for e in range(n_episodes):
        obs = 10.0 * e + np.arange(length + 1, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
        ep = {"obs": obs, "actions": np.full((length, 2, 2), 0.5, np.float32),
              "rewards": np.arange(length, dtype=np.float32) + e, "terminated": e == 0}
        if with_state:
            ep["state"] = obs[:, 0, :2]
        episodes.append(ep)
    return TransitionData.from_episodes(episodes)


def test_clean_data_is_returned_unchanged():
    data = _data()
    assert screen_transitions(data) is data


def test_nan_rewards_raise_naming_the_source_the_array_and_the_option():
    data = _data()
    data.rewards[[1, 5]] = torch.tensor([float("nan"), float("inf")])
    with pytest.raises(InputError, match=r"^d\.npz: 2 of 12 transitions have NaN or inf values \(in rewards: 2\)"
                                         r".*bad_transitions=drop"):
        screen_transitions(data, "error", "d.npz")


def test_non_finite_states_and_next_observations_are_found():
    data = _data(with_state=True)
    data.states[2, 1] = float("nan")  # row 2 is o_2 of episode 0: s_t of transition 2, s_{t+1} of transition 1
    with pytest.raises(InputError, match=r"2 of 12 .*states: 2"):
        screen_transitions(data)
    data = _data()
    data.observations[4, 0, 0] = float("-inf")  # final observation of episode 0: only a next_obs
    with pytest.raises(InputError, match=r"1 of 12 .*observations: 1"):
        screen_transitions(data)


def test_out_of_bounds_actions_raise_with_the_count_and_max():
    data = _data()
    data.actions[3, 1, 0] = 4.99
    data.actions[7, 0, 1] = -1.00005  # float rounding: within the tolerance, not counted
    with pytest.raises(InputError, match=r"1 of 12 transitions have actions outside \[-1, 1\] \(max \|a\| = 4\.99\)"
                                         r".*bad_transitions=clip"):
        screen_transitions(data)


def test_drop_keeps_every_remaining_pair_and_reports_the_count():
    data = _data()
    data.observations[6, 1, 2] = float("nan")  # o_1 of episode 1: transitions 4 (next) and 5 (current)
    data.actions[9, 0, 0] = 2.0
    expected_pairs = [(data.observations[o].clone(), data.observations[o2].clone())
                      for o, o2 in zip(data.obs_index.tolist(), data.next_obs_index.tolist())]
    with pytest.warns(UserWarning, match=r"bad_transitions=drop dropped 3 and clipped 0 of 12 transitions"):
        kept = screen_transitions(data, "drop", "d.npz")
    survivors = [t for t in range(12) if t not in (4, 5, 9)]
    assert kept.n_transitions == 9 and torch.isfinite(kept.observations).all()
    for i, t in enumerate(survivors):
        torch.testing.assert_close(kept.observations[kept.obs_index[i]], expected_pairs[t][0])
        torch.testing.assert_close(kept.observations[kept.next_obs_index[i]], expected_pairs[t][1])
    assert kept.episode_ids.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2]
    assert kept.terminals.tolist() == data.terminals[survivors].tolist()


def test_clip_clips_actions_and_drops_non_finite_rows():
    data = _data()
    data.actions[3, 1, 0] = 4.99
    data.rewards[0] = float("nan")
    with pytest.warns(UserWarning, match=r"dropped 1 and clipped 1 of 12"):
        kept = screen_transitions(data, "clip")
    assert kept.n_transitions == 11 and float(kept.actions.abs().max()) == 1.0
    assert kept.actions[2, 1, 0] == 1.0  # transition 3 is now row 2


def test_dropping_everything_is_an_error():
    data = _data(1)
    data.rewards[:] = float("nan")
    with pytest.raises(InputError, match="no transitions"):
        screen_transitions(data, "drop")


@pytest.mark.parametrize("option", ["batch_size", "n_eval_episodes", "eval_batch_size"])
def test_datamodule_rejects_non_positive_sizes(option):
    with pytest.raises(InputError, match=rf"data\.init_args\.{option}=0: must be a positive integer"):
        CoordinationDataModule(**{option: 0})


def test_datamodule_option_is_checked_and_applied_in_setup():
    with pytest.raises(InputError, match="bad_transitions='skip' is not an option"):
        CoordinationDataModule(bad_transitions="skip")
    dm = CoordinationDataModule(n_samples=200)
    dm.setup()
    assert dm.data.n_transitions == 200 and dm.bad_transitions == "error"
