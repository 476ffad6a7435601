"""Screening of loaded data: NaN/inf in any array and actions outside [-1, 1] raise, drop or clip, with counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, REPO

from macflow.datamodules import CoordinationDataModule, TransitionData
from macflow.datamodules.omar import write_omar
from macflow.datamodules.screening import _bad_rows, _row_extremes, _row_max_abs, screen_transitions
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


def test_row_screens_agree_with_elementwise_checks_across_chunks_and_layouts():
    x = torch.randn(10, 4, 3).permute(0, 2, 1)  # non-contiguous rows
    x[1, 0, 2], x[4, 2, 0], x[8, 1, 1] = float("nan"), float("inf"), -float("inf")
    x[6, 1, 3] = -7.5  # the largest |x| of row 6 is a negative value
    low, high = _row_extremes(x, chunk=3)
    flat = x.reshape(10, -1)
    finite = torch.isfinite(flat).all(1)
    assert torch.equal(_bad_rows(x), ~finite)
    assert torch.equal(low[finite], flat[finite].amin(1)) and torch.equal(high[finite], flat[finite].amax(1))
    magnitude = _row_max_abs(x)
    assert torch.equal(magnitude[finite], flat[finite].abs().amax(1)) and magnitude[6] == 7.5
    assert torch.equal(magnitude[~finite], torch.zeros(3))
    assert not _bad_rows(torch.ones(4, 0)).any() and not _row_max_abs(torch.ones(0, 3)).numel()


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


def test_the_default_option_keeps_the_committed_run_hashes():
    """bad_transitions is new: at its default the run hash (run directory, records, the CLI's resume guard) is
    the one the committed records have; another value is a different run."""
    import json

    from macflow.experiments.grid import load_grid
    from macflow.experiments.runner import Runner
    from macflow.run_config import hashed_config

    record = json.loads((REPO / "docs/records/mpe/teacher/expert/seed0.json").read_text())
    planned = Runner(load_grid(REPO / "configs/experiments/mpe.yaml"), dry_run=True).plan("teacher", "expert", 0)
    assert planned.config_hash == record["config_hash"]
    config = {"data": {"init_args": {"bad_transitions": "drop", "batch_size": 8}}}
    assert hashed_config(config, "/r") == config
    config["data"]["init_args"]["bad_transitions"] = "error"
    assert hashed_config(config, "/r") == {"data": {"init_args": {"batch_size": 8}}}


def _macflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "macflow", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_stops_on_batch_size_zero_with_one_line_and_status_2(tmp_path):
    run = _macflow(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--data.init_args.batch_size=0",
                    f"--trainer.default_root_dir={tmp_path / 'run'}"], tmp_path)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1] == ("macflow: error: data.init_args.batch_size=0: must be a positive "
                                                   "integer; set it to at least 1")
    assert "Traceback" not in run.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_stops_on_nan_rewards_before_training(tmp_path):
    from test_omar import _omar_arrays

    obs, actions, rewards, next_obs, dones = _omar_arrays(2)
    rewards[30, 0] = np.nan
    seed_dir = write_omar(tmp_path / "seed_0_data", obs, actions, rewards, next_obs, dones)
    common = ["fit", "--config", str(CONFIGS / "teacher.yaml"), "--trainer.callbacks=[]", "--trainer.max_steps=2",
              f"--trainer.default_root_dir={tmp_path / 'run'}", "--data.init_args.source=omar",
              f"--data.init_args.path={seed_dir}", "--data.init_args.physics=omar", "--data.init_args.reward=omar",
              f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.n_reference_episodes=2",
              "--data.init_args.batch_size=8", "--data.init_args.n_eval_episodes=2",
              "--data.init_args.eval_batch_size=2", "--trainer.enable_progress_bar=false"]
    run = _macflow(common, tmp_path)
    assert run.returncode == 2, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"macflow: error: OMAR folder {seed_dir}: 1 of 50 transitions have NaN or inf values "
                           "(in rewards: 1)") and "bad_transitions=drop" in last
    assert "Traceback" not in run.stderr and not list((tmp_path / "run").rglob("*.ckpt"))
    run = _macflow([*common, "--data.init_args.bad_transitions=drop"], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "bad_transitions=drop dropped 1 and clipped 0 of 50 transitions" in run.stderr
