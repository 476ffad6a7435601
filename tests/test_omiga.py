"""Public MaMuJoCo data readers on small files written in the exact published layouts: OMIGA hdf5 (extra final
row per episode, time limit vs termination), OMAR HalfCheetah npy (per-agent float64 files with states) and an
OG-MARL vault of the OMAR HalfCheetah data, each read through ``MaMuJoCoDataModule``."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from macflow.datamodules.omiga import omiga_dims, read_omiga, write_omiga  # noqa: E402
from macflow.errors import InputError  # noqa: E402


def episodes(lengths, n=3, d=14, a=1, seed=0):
    rng = np.random.default_rng(seed)
    return [{"obs": rng.standard_normal((L + 1, n, d)).astype(np.float32),
             "actions": rng.uniform(-1, 1, (L, n, a)).astype(np.float32),
             "rewards": rng.standard_normal(L).astype(np.float32)} for L in lengths]


def test_written_file_has_the_published_layout(tmp_path):
    path = write_omiga(tmp_path / "Hopper-v2-3x1-expert.hdf5", episodes([1000, 7]))
    with h5py.File(path) as h:
        assert sorted(h) == ["a", "d", "o", "r", "s"]
        assert h["o"].shape == (1009, 3, 14) and h["s"].shape == (1009, 3, 14) and h["a"].shape == (1009, 3, 1)
        assert h["r"].shape == (1009, 1) and h["d"].shape == (1009, 1)
        d = h["d"][:, 0]
        assert d[1000] == 1 and d[1008] == 1 and d.sum() == 2  # 1001 rows per 1000-step episode
    assert omiga_dims(path) == {"n_agents": 3, "obs_dim": 14, "action_dim": 1, "rows": 1009}


def test_reader_drops_the_final_rows_and_separates_time_limit_from_termination(tmp_path):
    eps = episodes([1000, 7, 3])
    data = read_omiga(write_omiga(tmp_path / "f.hdf5", eps))
    assert data.n_transitions == 1010 and data.observations.shape[0] == 1013
    # every transition pairs o_t with o_{t+1} of the same episode; the last one reaches the final observation
    for e, ep in enumerate(eps):
        rows = torch.nonzero(data.episode_ids == e).squeeze(1)
        torch.testing.assert_close(data.observations[data.obs_index[rows]], torch.from_numpy(ep["obs"][:-1]))
        torch.testing.assert_close(data.observations[data.next_obs_index[rows]], torch.from_numpy(ep["obs"][1:]))
        torch.testing.assert_close(data.actions[rows], torch.from_numpy(ep["actions"]))
    np.testing.assert_allclose(data.episode_returns().numpy(), [ep["rewards"].sum() for ep in eps], rtol=1e-5)
    ends = torch.nonzero(data.terminals).squeeze(1)
    assert data.episode_ids[ends].tolist() == [1, 2]  # the 1000-step episode hit the time limit: it bootstraps
    assert data.states.shape == (1013, 14)
    omiga = read_omiga(tmp_path / "f.hdf5", terminals="omiga")  # OMIGA's own loader: every end is terminal
    assert omiga.terminals.sum().item() == 3


def test_stream_cut_mid_episode_keeps_recorded_transitions_only(tmp_path):
    path = write_omiga(tmp_path / "f.hdf5", episodes([5, 4]))
    with h5py.File(path, "a") as h:  # cut the stream two rows before the end: no final row for episode 1
        for k in list(h):
            x = h[k][:-2]
            del h[k]
            h[k] = x
    data = read_omiga(path)
    assert data.n_transitions == 5 + 2 and data.terminals.sum().item() == 1
    assert int(data.next_obs_index.max()) == data.observations.shape[0] - 1


def test_reader_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="Hopper-v2-3x1-expert.hdf5"):
        read_omiga(tmp_path / "missing.hdf5")
    with h5py.File(tmp_path / "bad.hdf5", "w") as h:
        h["o"] = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match="keys .* missing"):
        read_omiga(tmp_path / "bad.hdf5")
    with pytest.raises(ValueError, match="max_episode_steps"):
        read_omiga(write_omiga(tmp_path / "long.hdf5", episodes([12])), max_episode_steps=10)


def test_truncated_hdf5_gives_one_line_naming_the_file(tmp_path):
    path = write_omiga(tmp_path / "Hopper-v2-3x1-expert.hdf5", episodes([50]))
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(InputError, match=r"Hopper-v2-3x1-expert\.hdf5: not a readable HDF5 file .*download it again"):
        read_omiga(path)


def test_nan_rewards_and_out_of_bounds_actions_are_reported_or_handled(tmp_path):
    eps = episodes([5, 4])
    eps[1]["rewards"][2] = np.inf
    eps[0]["actions"][1, 0, 0] = 1.5
    path = write_omiga(tmp_path / "f.hdf5", eps)
    with pytest.raises(InputError, match=r"f\.hdf5: 1 of 9 transitions have NaN or inf values \(in rewards: 1\)"):
        read_omiga(path)
    with pytest.warns(UserWarning, match="dropped 2 and clipped 0 of 9"):
        dropped = read_omiga(path, bad_transitions="drop")
    assert dropped.n_transitions == 7 and torch.isfinite(dropped.rewards).all()
    with pytest.warns(UserWarning, match="dropped 1 and clipped 1 of 9"):
        clipped = read_omiga(path, bad_transitions="clip")
    assert clipped.actions[1, 0, 0] == 1.0


def test_omiga_vault_actions_are_checked_not_clipped_silently(tmp_path):
    pytest.importorskip("tensorstore")
    from macflow.datamodules.omiga import read_omiga_vault
    from macflow.datamodules.vault import write_vault

    eps = episodes([6])
    eps[0]["actions"][2, 1, 0] = -3.0
    write_omiga(tmp_path / "f.hdf5", eps)
    with h5py.File(tmp_path / "f.hdf5") as h:
        o, a, r, d = h["o"][:], h["a"][:], h["r"][:], h["d"][:]
    rep = lambda x: np.repeat(x.reshape(1, -1, 1), 3, axis=2).astype(np.float32)  # noqa: E731
    write_vault(tmp_path / "Expert", {"observations": o[None], "actions": a[None], "rewards": rep(r),
                                      "terminals": rep(d), "truncations": np.zeros((1, len(o), 3), np.float32)})
    with pytest.raises(InputError, match=r"vault .*Expert: 1 of 6 transitions have actions outside .*max \|a\| = 3"):
        read_omiga_vault(tmp_path / "Expert", max_episode_steps=6)


def test_omiga_file_from_the_simulator_trains_and_evaluates_in_omiga_coordinates(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from macflow.datamodules import MaMuJoCoDataModule
    from macflow.envs.mamujoco import MaMuJoCoEpisode

    ep = MaMuJoCoEpisode("Hopper", "3x1", "omiga")
    obs, acts, rews = [ep.reset(0)[0]], [], []
    done = False
    while not done:
        a = np.full((3, 1), 0.5)
        o, _, _, r, term, trunc = ep.step(a)
        obs.append(o), acts.append(a), rews.append(r)
        done = term or trunc
    path = write_omiga(tmp_path / "Hopper-v2-3x1-medium.hdf5",
                       [{"obs": np.stack(obs), "actions": np.stack(acts), "rewards": np.array(rews)}])
    dm = MaMuJoCoDataModule(scenario="Hopper", source="omiga", obs_layout="omiga", path=str(path))
    dm.setup()
    assert (dm.obs_dim, dm.state_dim) == (14, 14) and dm.data.terminals[-1]  # a fall, not the time limit
    env = dm.make_env([0])
    torch.testing.assert_close(env.reset().obs[0], dm.data.observations[0])


def write_omar_halfcheetah(path, n_episodes=2, length=1000, seed=0):
    """OMAR's HalfCheetah-v2 seed folder: per agent obs/acs/rews/next_obs/dones + states/next_states, float64."""
    rng = np.random.default_rng(seed)
    m = n_episodes * length
    obs = rng.standard_normal((m + 1, 2, 6))
    path.mkdir(parents=True)
    dones = np.zeros(m)
    dones[length - 1::length] = 1.0  # OMAR flags the time-limit step
    for i in range(2):
        files = {"obs": obs[:-1, i], "acs": rng.uniform(-1, 1, (m, 3)), "rews": np.full(m, 0.5 + i * 0),
                 "next_obs": obs[1:, i], "dones": dones, "states": rng.standard_normal((m, 17)),
                 "next_states": rng.standard_normal((m, 17))}
        for k, v in files.items():
            np.save(path / f"{k}_{i}.npy", v.astype(np.float64))
    return obs


def test_omar_halfcheetah_npy_through_the_datamodule(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from macflow.datamodules import MaMuJoCoDataModule

    folder = tmp_path / "datasets/HalfCheetah-v2/expert/seed_0_data"
    obs = write_omar_halfcheetah(folder)
    dm = MaMuJoCoDataModule(source="omar", obs_layout="omar", path=str(folder))
    dm.setup()
    d = dm.data
    assert (dm.obs_dim, dm.state_dim, d.n_transitions) == (6, 0, 2000)
    assert not d.terminals.any() and d.episode_ids.tolist()[999:1001] == [0, 1]  # time limit: bootstraps
    torch.testing.assert_close(d.observations[d.next_obs_index[5]], torch.from_numpy(obs[6]).float())
    np.testing.assert_allclose(d.episode_returns().numpy(), [500.0, 500.0])
    assert dm.make_env([0]).reset().obs.shape == (1, 2, 6)


def test_omar_halfcheetah_vault_rows_are_separate_streams(tmp_path):
    pytest.importorskip("tensorstore")
    pytest.importorskip("gymnasium_robotics")
    from macflow.datamodules import MaMuJoCoDataModule
    from macflow.datamodules.vault import write_vault

    b, t = 2, 40  # two OMAR seeds, episodes of 20 steps flagged by the time limit in `terminals`
    rng = np.random.default_rng(0)
    term = np.zeros((b, t, 2), np.float32)
    term[:, 19::20] = 1
    write_vault(tmp_path / "2halfcheetah.vlt/Expert", {
        "observations": rng.standard_normal((b, t, 2, 6)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (b, t, 2, 3)).astype(np.float32),
        "rewards": np.ones((b, t, 2), np.float32), "terminals": term, "truncations": np.zeros((b, t, 2), np.float32),
        "infos": {"state": rng.standard_normal((b, t, 2, 17)).astype(np.float32)}})
    dm = MaMuJoCoDataModule(source="vault", obs_layout="omar", path=str(tmp_path / "2halfcheetah.vlt/Expert"))
    assert dm.state_dim == 34
    dm.setup()
    # each 20-step episode loses its last row (no next observation recorded), none is terminal, no cross-row pair
    assert dm.data.n_transitions == 4 * 19 and not dm.data.terminals.any()
    assert (dm.data.next_obs_index - dm.data.obs_index == 1).all()
    assert not ((dm.data.obs_index + 1) % t == 0).any()


def test_omiga_vault_uses_the_final_row_convention(tmp_path):
    pytest.importorskip("tensorstore")
    from macflow.datamodules.omiga import read_omiga_vault
    from macflow.datamodules.vault import write_vault

    eps = episodes([6, 4], n=3, d=14)
    write_omiga(tmp_path / "f.hdf5", eps)
    with h5py.File(tmp_path / "f.hdf5") as h:  # OG-MARL's conversion: (1, T, ...) leaves, per-agent r and d
        o, a, r, d = h["o"][:], h["a"][:], h["r"][:], h["d"][:]
    rep = lambda x: np.repeat(x.reshape(1, -1, 1), 3, axis=2).astype(np.float32)  # noqa: E731
    write_vault(tmp_path / "3hopper.vlt/Expert", {
        "observations": o[None], "actions": a[None], "rewards": rep(r), "terminals": rep(d),
        "truncations": np.zeros((1, len(o), 3), np.float32), "infos": {"state": o[None, :, 0]}})
    vault = read_omiga_vault(tmp_path / "3hopper.vlt/Expert", max_episode_steps=6)
    ref = read_omiga(tmp_path / "f.hdf5", max_episode_steps=6)
    for k, v in ref.tensors().items():
        torch.testing.assert_close(vault.tensors()[k], v)
    assert vault.n_transitions == 10 and vault.terminals.tolist().count(True) == 1  # the 6-step one hit the limit


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    path = write_omiga(tmp_path / "f.hdf5", episodes([3]))
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(ImportError, match=r"pip install 'macflow\[omiga\]'"):
        read_omiga(path)
