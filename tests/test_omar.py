"""OMAR npy reader: round trip of the published per-agent layout written from real simulator episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from macflow.datagen.mpe import generate
from macflow.datamodules import MPEDataModule
from macflow.datamodules.omar import read_omar, write_omar
from macflow.errors import InputError


def _omar_arrays(n_episodes: int = 4):
    """Flat OMAR-style transitions from real mpe2 episodes, per-agent rewards that differ between agents."""
    episodes, _ = generate("medium", n_episodes, data_seed=1)
    obs = np.concatenate([ep["obs"][:-1] for ep in episodes])
    next_obs = np.concatenate([ep["obs"][1:] for ep in episodes])
    actions = np.concatenate([ep["actions"] for ep in episodes])
    team = np.concatenate([ep["rewards"] for ep in episodes])
    rewards = team[:, None] + np.array([-1.0, 0.0, 1.0])  # per agent; the mean is the team reward
    dones = np.zeros_like(rewards)
    dones[24::25] = 1.0  # OMAR flags the time limit
    return obs, actions, rewards, next_obs, dones


def test_omar_round_trip(tmp_path):
    obs, actions, rewards, next_obs, dones = _omar_arrays()
    seed_dir = write_omar(tmp_path / "datasets/simple_spread/medium/seed_0_data", obs, actions, rewards, next_obs,
                          dones)
    assert sorted(p.name for p in seed_dir.iterdir())[:5] == ["acs_0.npy", "acs_1.npy", "acs_2.npy", "dones_0.npy",
                                                               "dones_1.npy"]
    assert np.load(seed_dir / "obs_0.npy").dtype == np.float64  # OMAR's buffer dtype
    data = read_omar(seed_dir, n_agents=3)
    m = len(obs)
    assert data.n_transitions == m and data.observations.dtype == torch.float32
    batch = data.gather(torch.arange(m))
    np.testing.assert_allclose(batch["obs"], obs, rtol=1e-6)
    np.testing.assert_allclose(batch["next_obs"], next_obs, rtol=1e-6)
    np.testing.assert_allclose(batch["actions"], actions, rtol=1e-6)
    np.testing.assert_allclose(batch["rewards"], rewards.mean(1), rtol=1e-5)
    assert not batch["dones"].any()  # time-limit ends bootstrap
    assert data.episode_returns().shape == (4,)
    np.testing.assert_allclose(data.episode_returns()[1], rewards[25:50].mean(1).sum(), rtol=1e-5)
    term = read_omar(seed_dir, dones_are_timeouts=False)
    assert term.terminals.sum() == 4 and bool(term.terminals[24])


def test_omar_reader_errors_name_the_fix(tmp_path):
    obs, actions, rewards, next_obs, dones = _omar_arrays(1)
    quality_dir = tmp_path / "medium"
    seed_dir = write_omar(quality_dir / "seed_0_data", obs, actions, rewards, next_obs, dones)
    with pytest.raises(FileNotFoundError, match="seed_0_data"):
        read_omar(quality_dir)  # the quality folder, not a seed folder
    with pytest.raises(FileNotFoundError, match="not found"):
        read_omar(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="n_agents"):
        read_omar(seed_dir, n_agents=4)
    with pytest.raises(ValueError, match="episode_length"):
        read_omar(seed_dir, episode_length=24)
    (seed_dir / "rews_2.npy").unlink()
    with pytest.raises(FileNotFoundError, match="rews_2.npy"):
        read_omar(seed_dir)


def test_truncated_npy_and_nan_rewards_name_the_file(tmp_path):
    obs, actions, rewards, next_obs, dones = _omar_arrays(1)
    rewards[7, 1] = np.nan
    seed_dir = write_omar(tmp_path / "seed_0_data", obs, actions, rewards, next_obs, dones)
    with pytest.raises(InputError, match=r"seed_0_data: 1 of 25 transitions have NaN or inf values \(in rewards"):
        read_omar(seed_dir)
    with pytest.warns(UserWarning, match="dropped 1 and clipped 0 of 25"):
        assert read_omar(seed_dir, bad_transitions="drop").n_transitions == 24
    file = seed_dir / "acs_1.npy"
    file.write_bytes(file.read_bytes()[:150])
    with pytest.raises(InputError, match=r"acs_1\.npy: not a readable \.npy file .*download the OMAR dataset again"):
        read_omar(seed_dir)


def test_mpe_datamodule_reads_omar_folders(tmp_path):
    obs, actions, rewards, next_obs, dones = _omar_arrays(2)
    seed_dir = write_omar(tmp_path / "seed_3_data", obs, actions, rewards, next_obs, dones)
    dm = MPEDataModule(source="omar", path=str(seed_dir), physics="omar", reward="omar", cache_dir=str(tmp_path),
                       n_reference_episodes=5)
    dm.prepare_data()
    dm.setup()  # dims checked against the datamodule's
    assert dm.data.n_transitions == 50 and dm.references["expert"] > dm.references["random"]
