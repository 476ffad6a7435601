"""MPE simple_spread: action map and physics options on the real mpe2, batched env, deterministic cached generation,
the multimodal expert, normalised scores, and a short end-to-end fit that beats the untrained student."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, quiet_trainer_args, run_cli

from macflow.datagen.mpe import MEDIUM_SIGMA, episode_seed, generate
from macflow.datagen.mpe_policies import ExpertPolicy, assignments
from macflow.datamodules import MPEDataModule
from macflow.envs import rollout
from macflow.envs.mpe import MPESpreadEnv, SpreadEpisode, omar_rewards, to_mpe2_action
from macflow.errors import InputError
from macflow.evaluation import eval_seeds, evaluate


def test_action_map_follows_mpe2_convention():
    u = np.array([[0.5, -0.25], [-1.0, 1.0], [2.0, 0.0]])
    a = to_mpe2_action(u)
    # [no-op, -x, +x, -y, +y]; mpe2 force is 5 * (a[2] - a[1], a[4] - a[3]); out-of-range forces are clipped
    np.testing.assert_allclose(a, [[0, 0, 0.5, 0.25, 0], [0, 1, 0, 0, 1], [0, 0, 1, 0, 0]])
    np.testing.assert_allclose(a[:, 2] - a[:, 1], np.clip(u[:, 0], -1, 1))


@pytest.mark.parametrize("physics", ["mpe2", "omar"])
def test_physics_option_sets_the_integration_order(physics):
    sim = SpreadEpisode(physics=physics)
    sim.reset(seed=3)
    before = sim.positions()[0]
    obs, _, _ = sim.step(np.tile([1.0, 0.0], (3, 1)))
    after = sim.positions()[0]
    np.testing.assert_allclose(obs[:, 0:2], np.tile([0.5, 0.0], (3, 1)), atol=1e-6)  # v = 0.1 * 5 * u / mass
    moved = after - before
    if physics == "mpe2":  # position moves with the old (zero) velocity first
        np.testing.assert_allclose(moved, 0.0, atol=1e-7)
    else:  # OMAR: velocity first, then position with the new velocity (dt = 0.1)
        np.testing.assert_allclose(moved, np.tile([0.05, 0.0], (3, 1)), atol=1e-6)


def test_omar_reward_formula():
    sim = SpreadEpisode(reward="omar")
    sim.reset(seed=0)
    world = sim.world
    for agent, mark, x in zip(world.agents, world.landmarks, (-0.8, 0.0, 0.8)):
        mark.state.p_pos = np.array([x, 0.5])
        agent.state.p_pos = np.array([x, 0.5])  # every landmark covered (capped at 10 each), no collisions
    np.testing.assert_allclose(omar_rewards(world), 30.0)
    world.agents[1].state.p_pos = np.array([-0.7, 0.5])  # agent 1 leaves its landmark and hits agent 0
    r = omar_rewards(world)
    cover = 10 + 10 + 1 / 0.7
    np.testing.assert_allclose(r, [cover - 5, cover - 5, cover], rtol=1e-6)


def test_batched_env_equals_single_episodes_and_team_reward_is_agent_mean():
    seeds = [5, 6, 7]
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, size=(25, 3, 3, 2)).astype(np.float32)
    env = MPESpreadEnv(seeds)
    out = env.reset()
    assert out.obs.shape == (3, 3, 18)
    total = torch.zeros(3)
    for t in range(25):
        step = env.step(torch.from_numpy(u[t]))
        total += step.rewards
    assert step.dones.all()
    from mpe2 import simple_spread_v3

    for e, seed in enumerate(seeds):  # the plain PettingZoo parallel env, per-agent rewards averaged
        raw = simple_spread_v3.parallel_env(N=3, max_cycles=25, continuous_actions=True)
        raw.reset(seed=seed)
        ret = 0.0
        for t in range(25):
            _, rew, _, _, _ = raw.step({f"agent_{i}": to_mpe2_action(u[t, e, i]) for i in range(3)})
            ret += np.mean(list(rew.values()))
        assert total[e].item() == pytest.approx(ret, abs=1e-4)


def test_expert_is_multimodal_and_near_optimal():
    sim = SpreadEpisode()
    policy = ExpertPolicy(3, tol=0.25)
    for seed in range(200):  # find a start with several near-optimal assignments
        obs = sim.reset(seed)
        if len(policy.near_optimal(obs)) >= 2:
            break
    candidates = set(policy.near_optimal(obs).tolist())
    picked = set()
    for k in range(40):
        policy.reset(obs, np.random.default_rng(k))
        picked.add(policy.mode)
    assert picked == candidates and len(picked) >= 2
    costs = policy.costs(obs)
    assert all(costs[m] <= costs.min() + 0.25 + 1e-9 for m in picked)
    assert len(assignments(3)) == 6


def test_generation_is_deterministic_for_a_seed():
    a, behaviour = generate("medium", 3, data_seed=4)
    b, _ = generate("medium", 3, data_seed=4)
    c, _ = generate("medium", 3, data_seed=5)
    for x, y in zip(a, b):
        for key in ("obs", "actions", "rewards"):
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["obs"], c[0]["obs"])
    assert behaviour["sigma"] == MEDIUM_SIGMA
    assert a[0]["obs"].shape == (26, 3, 18) and a[0]["actions"].shape == (25, 3, 2)
    assert np.abs(a[0]["actions"]).max() <= 1.0
    assert episode_seed(13, 0, 1) != episode_seed(13, 0, 2)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _datamodule(tmp_path: Path, **kw) -> MPEDataModule:
    kw = {"quality": "expert", "n_episodes": 6, "n_reference_episodes": 10, "cache_dir": str(tmp_path),
          "n_eval_episodes": 4, "eval_batch_size": 4, **kw}
    return MPEDataModule(**kw)


def test_cached_dataset_regenerates_bit_for_bit_with_a_manifest(tmp_path):
    dm = _datamodule(tmp_path / "a", data_seed=2)
    dm.prepare_data()
    dm.setup()
    path = dm.dataset_path()
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["quality"] == "expert" and manifest["data_seed"] == 2 and manifest["episodes"] == 6
    returns = dm.data.episode_returns()
    assert manifest["mean_return"] == pytest.approx(float(returns.mean()), abs=1e-4)
    assert set(manifest["references"]) >= {"random", "expert"}
    assert manifest["references"]["expert"] > manifest["references"]["random"]
    assert dm.episode_modes.shape == (6,) and (dm.episode_modes >= 0).all()
    assert dm.data.n_transitions == 150 and not dm.data.terminals.any()  # time limit: bootstrap
    again = _datamodule(tmp_path / "b", data_seed=2)  # a fresh cache: same bytes
    again.prepare_data()
    assert _sha(again.dataset_path()) == _sha(path)
    assert _sha(again.dataset_path().with_suffix(".modes.npy")) == _sha(path.with_suffix(".modes.npy"))


def test_interrupted_generation_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    dm = _datamodule(tmp_path)

    def crash_mid_write(file, **arrays):  # the process dies half-way through writing the .npz
        file.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        dm.prepare_data()
    assert not dm.dataset_path().exists()
    assert not list(dm.dataset_path().parent.glob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        dm.setup()
    monkeypatch.undo()
    dm.prepare_data()  # the next run regenerates it completely
    dm.setup()
    assert dm.data.n_transitions == 150


def test_manifest_records_the_checksums_of_the_cached_files(tmp_path):
    dm = _datamodule(tmp_path)
    umask = os.umask(0o022)
    try:
        dm.prepare_data()
    finally:
        os.umask(umask)
    path = dm.dataset_path()
    assert dm.manifest()["sha256"] == {path.name: _sha(path), path.with_suffix(".modes.npy").name:
                                       _sha(path.with_suffix(".modes.npy"))}
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in path.parent.iterdir())  # not mkstemp's 0600


@pytest.mark.parametrize("damage", ["truncate_npz", "flip_byte", "truncate_modes", "truncate_manifest",
                                    "delete_manifest"])
def test_a_damaged_cache_is_regenerated_with_a_warning(tmp_path, damage):
    dm = _datamodule(tmp_path)
    dm.prepare_data()
    path = dm.dataset_path()
    original = _sha(path)
    target = {"truncate_npz": path, "flip_byte": path, "truncate_modes": path.with_suffix(".modes.npy"),
              "truncate_manifest": path.with_suffix(".json"), "delete_manifest": path.with_suffix(".json")}[damage]
    raw = target.read_bytes()
    if damage == "flip_byte":
        target.write_bytes(raw[:300] + bytes([raw[300] ^ 1]) + raw[301:])
    elif damage == "delete_manifest":
        target.unlink()
    else:
        target.write_bytes(raw[: len(raw) // 2])
    fresh = _datamodule(tmp_path)
    with pytest.raises(InputError, match=rf"{path.name}: .*run prepare_data\(\)") if damage != "delete_manifest" \
            else pytest.raises(InputError, match="manifest .* is missing"):
        fresh.setup()  # setup alone never regenerates (every DDP rank runs it): it names the file and the fix
    with pytest.warns(UserWarning, match=rf"{path.name}: .*; regenerating it"):
        fresh.prepare_data()
    fresh.setup()
    assert _sha(path) == original and fresh.data.n_transitions == 150


def test_old_cache_without_checksums_is_kept_unless_unreadable(tmp_path):
    dm = _datamodule(tmp_path)
    dm.prepare_data()
    path, manifest_path = dm.dataset_path(), dm.dataset_path().with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    del manifest["sha256"]  # written before checksums existed
    manifest_path.write_text(json.dumps(manifest))
    mtime = path.stat().st_mtime_ns
    dm.prepare_data()
    assert path.stat().st_mtime_ns == mtime  # accepted: its zip CRCs check out
    raw = bytearray(path.read_bytes())
    raw[200] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="regenerating"):
        dm.prepare_data()
    assert "sha256" in dm.manifest()


def test_a_truncated_references_file_is_simulated_again(tmp_path):
    dm = _datamodule(tmp_path)
    dm.prepare_data()
    refs = dm.references_path()
    good = refs.read_text()
    refs.write_text(good[:10])
    with pytest.warns(UserWarning, match="not a valid references file"):
        dm.prepare_data()
    assert refs.read_text() == good


def test_normalized_score_uses_the_stored_references(tmp_path):
    dm = _datamodule(tmp_path)
    dm.prepare_data()
    dm.setup()
    refs = dm.references
    score = dm.normalized_score(torch.tensor([refs["random"], refs["expert"]], dtype=torch.float64))
    torch.testing.assert_close(score, torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="quality"):
        MPEDataModule(quality="expertt")
    with pytest.raises(ValueError, match="path"):
        MPEDataModule(source="omar")


def test_datagen_entry_point_writes_the_datasets_the_datamodule_reads(tmp_path, capsys):
    from macflow.datagen.__main__ import main

    main(["mpe", "--qualities", "random,expert", "--episodes", "3", "--reference-episodes", "4", "--seed", "2",
          "--cache-dir", str(tmp_path)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["quality"] for x in lines] == ["random", "expert"] and all(x["episodes"] == 3 for x in lines)
    dm = MPEDataModule(quality="expert", n_episodes=3, n_reference_episodes=4, data_seed=2, cache_dir=str(tmp_path))
    assert str(dm.dataset_path()) == lines[1]["path"]
    dm.setup()  # reads the cache: nothing is generated again
    episodes, _ = generate("expert", 3, data_seed=2)
    assert torch.equal(dm.data.actions, torch.from_numpy(np.concatenate([ep["actions"] for ep in episodes])))


@pytest.mark.slow
def test_short_fit_on_tiny_generated_data_beats_the_untrained_student(tmp_path):
    cache = tmp_path / "cache"
    data = [f"--data.init_args.cache_dir={cache}", "--data.init_args.n_episodes=300",
            "--data.init_args.n_reference_episodes=20", "--data.init_args.n_eval_episodes=20",
            "--data.init_args.eval_batch_size=20"]
    teacher_root, student_root = tmp_path / "teacher", tmp_path / "student"
    run_cli(["fit", "--config", str(CONFIGS / "teacher.yaml"), "--trainer.max_steps=600",
             "--trainer.val_check_interval=100000", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
             f"--trainer.callbacks.path={teacher_root}/teacher.ckpt", *quiet_trainer_args(teacher_root), *data])
    cli = run_cli(["fit", "--config", str(CONFIGS / "student.yaml"), "--trainer.max_steps=600",
                   "--trainer.val_check_interval=600", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
                   f"--trainer.callbacks.path={student_root}/student.ckpt",
                   "--trainer.callbacks+=macflow.mpe_figures.MPETrajectoryFigure",
                   f"--trainer.callbacks.save_dir={student_root}/figures",
                   f"--model.init_args.teacher_ckpt={teacher_root}/teacher.ckpt",
                   *quiet_trainer_args(student_root), *data])
    trained = cli.trainer.callback_metrics["eval/return"].item()
    assert list((student_root / "figures").glob("trajectories_step*.png"))
    dm = cli.datamodule
    torch.manual_seed(0)
    untrained = copy.deepcopy(cli.model)  # the configured student network, freshly initialised
    for module in untrained.actor.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    before = evaluate(dm, untrained.policy, eval_seeds(20))["return"].mean().item()
    assert trained > before + 3.0, (trained, before)


def test_a_policy_answering_in_bfloat16_runs_in_the_simulator():
    """Under bf16-mixed evaluation the student's actions are bfloat16; the rollout hands the env float32."""
    actions = torch.full((2, 3, 2), 0.5)

    def policy(obs, legal):
        return actions.to(torch.bfloat16)

    out = rollout(MPESpreadEnv([5, 6]), policy)
    expected = rollout(MPESpreadEnv([5, 6]), lambda obs, legal: actions)
    assert torch.equal(out["return"], expected["return"])
