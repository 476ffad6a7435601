"""The offline data contract: episode boundaries, truncation vs termination, batches, files, rank seeding."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from macflow.datamodules import RandomBatches, TransitionData
from macflow.errors import InputError
from macflow.files import atomic_write, file_sha256
from macflow.transitions import saved_dataset_problem


def _episode(length: int, terminated: bool, start: float, n: int = 2, with_extras: bool = False) -> dict:
    obs = start + np.arange(length + 1, dtype=np.float32)[:, None, None] * np.ones((1, n, 3), np.float32)
    ep = {"obs": obs, "actions": np.zeros((length, n, 2), np.float32), "rewards": np.ones(length),
          "terminated": terminated}
    if with_extras:
        ep["state"] = obs[:, 0, :1]
        ep["legal"] = np.ones((length + 1, n, 2), bool)
    return ep


def test_from_episodes_pairs_next_obs_within_episodes_only():
    data = TransitionData.from_episodes([_episode(3, True, 0.0), _episode(2, False, 100.0)])
    assert data.n_transitions == 5
    batch = data.gather(torch.arange(5))
    assert torch.equal(batch["next_obs"][:, 0, 0] - batch["obs"][:, 0, 0], torch.ones(5))  # always o_{t+1}
    assert batch["next_obs"][2, 0, 0] == 3.0  # final observation of episode 0, not episode 1's first
    assert batch["dones"].tolist() == [0, 0, 1, 0, 0]  # truncated episode 1 bootstraps at its end
    assert data.episode_returns().tolist() == [3.0, 2.0]


def test_from_stream_follows_the_vault_row_convention():
    # two episodes: rows 0-2 end by termination, rows 3-4 end by truncation (no final observation stored)
    obs = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    terminals = np.array([0, 0, 1, 0, 0], bool)
    truncations = np.array([0, 0, 0, 0, 1], bool)
    data = TransitionData.from_stream(obs, np.zeros((5, 2, 2)), np.arange(5.0), terminals, truncations)
    batch = data.gather(torch.arange(data.n_transitions))
    assert batch["obs"][:, 0, 0].tolist() == [0, 1, 2, 3]  # the truncated last row has no next obs: dropped
    assert batch["next_obs"][:, 0, 0].tolist()[:2] == [1, 2] and batch["next_obs"][3, 0, 0] == 4
    assert batch["dones"].tolist() == [0, 0, 1, 0]
    assert data.episode_ids.tolist() == [0, 0, 0, 1]


def test_per_agent_rewards_average_into_the_team_reward():
    obs = np.zeros((2, 2, 1), np.float32)
    data = TransitionData.from_stream(obs, np.zeros((2, 2, 1)), np.array([[1.0, 3.0], [0.0, 2.0]]),
                                      np.array([[0, 0], [1, 1]]), np.zeros((2, 2)))
    assert data.rewards.tolist() == [2.0, 1.0]


def test_save_load_round_trip_and_manifest(tmp_path):
    data = TransitionData.from_episodes([_episode(3, True, 0.0, with_extras=True), _episode(4, False, 9.0,
                                                                                            with_extras=True)])
    path = tmp_path / "d.npz"
    data.save(path, manifest={"policy": "test"})
    loaded = TransitionData.load(path)
    for k, v in data.tensors().items():
        assert torch.equal(v, getattr(loaded, k)), k
    assert (tmp_path / "d.json").read_text().count("test") == 1
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written is left behind
    batch = loaded.gather(torch.tensor([0, 4]))
    assert set(batch) == {"obs", "actions", "rewards", "dones", "next_obs", "state", "next_state", "legal",
                          "next_legal"}


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        TransitionData.load(tmp_path / "missing.npz")
    bad = _episode(3, True, 0.0)
    bad["obs"] = bad["obs"][:-1]
    with pytest.raises(ValueError, match="final observation"):
        TransitionData.from_episodes([bad])



def test_atomic_write_removes_temp_files_of_a_killed_write_and_uses_normal_permissions(tmp_path):
    target = tmp_path / "d.npz"
    stale = tmp_path / ".d.npz.abc123.tmp"  # what a write killed with SIGKILL leaves behind
    stale.write_bytes(b"")
    other = tmp_path / ".e.npz.abc123.tmp"  # another file's temp: not ours to remove
    other.write_bytes(b"")
    live = tmp_path / ".d.npz.live99.tmp"  # a write of the same file in progress in another process
    live.write_bytes(b"")
    hour_ago = time.time() - 3600
    for left in (stale, other):
        os.utime(left, (hour_ago, hour_ago))
    old = os.umask(0o022)
    try:
        atomic_write(target, lambda f: f.write(b"data"))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"data" and not stale.exists() and other.exists() and live.exists()
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_to_a_relative_path_keeps_its_own_temp_file(tmp_path, monkeypatch):
    """``mkstemp`` returns an absolute path; a relative target (``data_cache/...``, the default cache) must still
    be written, not lose its temporary file before the rename."""
    monkeypatch.chdir(tmp_path)
    Path("cache").mkdir()
    atomic_write(Path("cache/refs.json"), lambda f: f.write(b"{}"))
    assert (tmp_path / "cache/refs.json").read_bytes() == b"{}"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["refs.json"]


def test_a_write_that_runs_out_of_space_keeps_the_previous_file(tmp_path):
    """A real short write: a file-size limit makes the kernel refuse the bytes (EFBIG), as a full disk does."""
    script = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from macflow.errors import InputError
        from macflow.files import atomic_write
        target = Path({str(tmp_path / "d.npz")!r})
        atomic_write(target, lambda f: f.write(b"old" * 100))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            atomic_write(target, lambda f: f.write(b"new" * 10000))
        except InputError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"cannot write {tmp_path / 'd.npz'}: File too large; free space under ")
    assert done.stdout.rstrip().endswith("(the previous file is kept)")
    assert (tmp_path / "d.npz").read_bytes() == b"old" * 100 and not list(tmp_path.glob(".*.tmp"))


def test_saved_dataset_problems_are_found_and_named(tmp_path):
    data = TransitionData.from_episodes([_episode(3, True, 0.0)])
    path = tmp_path / "d.npz"
    data.save(path, manifest={"policy": "test"})
    assert saved_dataset_problem(path) is None
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == {"d.npz": file_sha256(path)}
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    assert "sha256 of d.npz does not match" in saved_dataset_problem(path)
    with pytest.raises(InputError, match=r"d\.npz: not a readable dataset file \(BadZipFile.*regenerate"):
        TransitionData.load(path)
    path.with_suffix(".json").write_text("{")
    assert "not valid JSON" in saved_dataset_problem(path)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(InputError, match="x.npy: not a readable dataset file"):
        TransitionData.load(tmp_path / "x.npy")


def test_random_batches_differ_by_seed_and_resume_exactly():
    data = TransitionData.from_episodes([_episode(50, True, float(i * 100)) for i in range(4)])
    rank0, rank1 = iter(RandomBatches(data, 8, seed=0)), iter(RandomBatches(data, 8, seed=1))
    assert not torch.equal(next(rank0)["obs"], next(rank1)["obs"])
    sampler = RandomBatches(data, 8, seed=3)
    it = iter(sampler)
    next(it)
    state = sampler.state_dict()
    expected = next(it)["obs"]
    resumed = RandomBatches(data, 8, seed=3)
    resumed.load_state_dict(state)
    assert torch.equal(next(iter(resumed))["obs"], expected)
