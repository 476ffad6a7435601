"""MaMuJoCo on the real gymnasium-robotics mamujoco_v1: scenario table, observation layouts of the public data,
action routing, batched rollouts, and seeded, cached, reproducible behaviour-data generation on a tiny budget."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium_robotics")

from conftest import quiet_trainer_args, run_cli  # noqa: E402

from macflow.datagen.mamujoco import BUDGETS, select  # noqa: E402
from macflow.datamodules import MaMuJoCoDataModule, TransitionData  # noqa: E402
from macflow.envs import rollout  # noqa: E402
from macflow.envs.mamujoco import (  # noqa: E402
    SCENARIOS,
    MaMuJoCoEnv,
    MaMuJoCoEpisode,
    omiga_observation,
    omiga_raw_observation,
)


def single_env(name: str):
    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(f"{name}-v5")


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_scenario_table_matches_the_real_env(key):
    spec = SCENARIOS[key]
    ep = MaMuJoCoEpisode(*key, obs_layout="mamujoco")
    obs, state, single = ep.reset(0)
    assert [ep.env.observation_space(a).shape[0] for a in ep.names] == list(spec.native_obs_dims)
    assert obs.shape == (spec.n_agents, spec.obs_dim("mamujoco")) and state.shape == (spec.single_obs_dim,)
    assert ep.low.shape == (spec.n_agents, spec.action_dim)
    ep.close()
    o, s, _ = MaMuJoCoEpisode(*key, obs_layout="omiga").reset(0)
    assert o.shape == (spec.n_agents, spec.obs_dim("omiga")) and s.shape == (spec.state_dim("omiga"),)


def test_native_layout_pads_smaller_agents_with_zeros():
    ep = MaMuJoCoEpisode("Hopper", "3x1")
    obs, _, _ = ep.reset(3)
    raw, _ = ep.env.reset(seed=3)
    for i, a in enumerate(ep.names):
        np.testing.assert_allclose(obs[i, :len(raw[a])], raw[a], atol=1e-6)
        assert (obs[i, len(raw[a]):] == 0).all()
    assert obs.shape == (3, 9)


def test_actions_drive_the_same_physics_as_the_single_agent_env():
    """Agent actions, concatenated in agent order, are the single-agent action (HalfCheetah maps identically)."""
    ep, ref = MaMuJoCoEpisode("HalfCheetah", "2x3"), single_env("HalfCheetah")
    _, state, _ = ep.reset(11)
    ref_obs, _ = ref.reset(seed=11)
    np.testing.assert_allclose(state, ref_obs, atol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, (2, 3)).astype(np.float32)  # the parallel env passes float32 actions on
        _, state, _, r, _, _ = ep.step(a)
        ref_obs, ref_r, *_ = ref.step(a.reshape(-1))
        np.testing.assert_allclose(state, ref_obs, atol=1e-5)
        assert r == pytest.approx(ref_r, abs=1e-6)
    with pytest.raises(ValueError, match=r"actions must be \[N, A\]"):
        ep.step(np.zeros(6))


def test_ant_legacy_routing_feeds_agent_actions_in_agent_order():
    a = np.arange(8, dtype=np.float64).reshape(2, 4) / 10
    new, legacy = MaMuJoCoEpisode("Ant", "2x4", "mamujoco"), MaMuJoCoEpisode("Ant", "2x4", "omiga")
    assert legacy.legacy and not new.legacy
    # mamujoco_v1 routes agent 0 to actuators 2..5 (datasets.md §5.2); legacy = agent a -> [4a, 4a+4)
    np.testing.assert_allclose(new.env.map_local_actions_to_global_action({"agent_0": a[0], "agent_1": a[1]}),
                               [a[1, 2], a[1, 3], *a[0], a[1, 0], a[1, 1]])
    ref = single_env("Ant")
    legacy.reset(4)
    ref.reset(seed=4)
    _, _, single, *_ = legacy.step(a)
    np.testing.assert_allclose(single, ref.step(a.reshape(-1))[0], atol=1e-5)
    np.testing.assert_allclose(legacy.global_to_local(a.reshape(-1)), a, rtol=1e-6)


def test_omiga_layout_is_zscored_state_plus_id_and_invertible():
    ep = MaMuJoCoEpisode("Hopper", "3x1", "omiga")
    obs, state, single = ep.reset(0)
    x = np.concatenate([np.tile(single, (3, 1)), np.eye(3)], 1)
    np.testing.assert_allclose(obs, (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(state, obs[0])
    for i in range(3):
        np.testing.assert_allclose(omiga_raw_observation(obs[i], 3, i), single, atol=1e-4)
    assert omiga_observation(single, 3).std(1) == pytest.approx(1.0, abs=1e-5)
    ant, _, _ = MaMuJoCoEpisode("Ant", "2x4", "omiga").reset(0)  # v2 layout: contact forces are zeros
    raw = omiga_raw_observation(ant[0], 2, 0)
    assert raw.shape == (111,) and np.abs(raw[27:]).max() < 1e-3


def test_omar_layout_is_qpos_qvel_per_joint_sorted_by_name():
    ep = MaMuJoCoEpisode("HalfCheetah", "2x3", "omar")
    ep.reset(1)
    obs, *_ = ep.step(np.full((2, 3), 0.3))
    qpos, qvel = ep.single.data.qpos, ep.single.data.qvel
    # qpos: rootx rootz rooty bthigh bshin bfoot fthigh fshin ffoot; per agent, joints sorted by name
    # (bfoot, bshin, bthigh / ffoot, fshin, fthigh), each joint's [qpos, qvel] (datasets.md §2, §5.2)
    for agent, joints in enumerate(([5, 4, 3], [8, 7, 6])):
        np.testing.assert_allclose(obs[agent], np.stack([qpos[joints], qvel[joints]], 1).reshape(-1), atol=1e-6)


def test_batched_rollout_scores_policies_and_ends_hopper_on_a_fall():
    env = MaMuJoCoEnv([1, 2], "Hopper", "3x1")
    out = rollout(env, lambda o, legal: torch.ones(o.shape[0], 3, 1))  # full torque: Hopper falls quickly
    assert (out["length"] < 200).all() and (out["length"] > 0).all()
    ep = MaMuJoCoEpisode("Hopper", "3x1")
    ep.reset(1)
    total, n, done = 0.0, 0, False
    while not done:
        *_, r, term, trunc = ep.step(np.ones((3, 1)))
        total, n, done = total + r, n + 1, term or trunc
    assert out["return"][0].item() == pytest.approx(total, rel=1e-6) and out["length"][0].item() == n
    short = rollout(MaMuJoCoEnv([0], "HalfCheetah", "2x3", max_steps=40), lambda o, legal: torch.zeros(1, 2, 3))
    assert short["length"].item() == 40


def _tiny(tmp_path, **kw):
    args = dict(scenario="HalfCheetah", quality="expert", n_episodes=2, budget="tiny", cache_dir=str(tmp_path),
                progress=False, n_eval_episodes=2, eval_batch_size=2)
    args.update(kw)
    return MaMuJoCoDataModule(**args)


def test_generation_is_cached_atomic_and_reproducible_for_a_seed(tmp_path):
    a = _tiny(tmp_path / "a")
    a.prepare_data()
    a.setup()
    m = a.manifest()
    assert m["episodes"] == 2 and m["transitions"] == 2000 and m["terminated_episodes"] == 0
    assert m["mean_return"] == pytest.approx(a.data.episode_returns().mean().item(), rel=1e-5)
    assert set(m["mode_returns"]) == {"0", "1"}  # ARS expert and one CPG gait (round robin)
    np.testing.assert_array_equal(a.episode_modes, [0, 1])
    assert not list((tmp_path / "a" / "mamujoco").glob(".*tmp"))
    b = _tiny(tmp_path / "b")  # same seed elsewhere: bit-identical data, behaviours retrained from scratch
    b.prepare_data()
    b.setup()
    for k, v in a.data.tensors().items():
        torch.testing.assert_close(v, b.data.tensors()[k], rtol=0, atol=0)
    mtime = a.dataset_path().stat().st_mtime_ns
    a.prepare_data()  # cached: not regenerated
    assert a.dataset_path().stat().st_mtime_ns == mtime
    c = _tiny(tmp_path / "a", data_seed=1)
    c.prepare_data()
    c.setup()
    assert not torch.equal(a.data.actions, c.data.actions)
    # time-limit ends bootstrap: the last step of each 1000-step episode is not terminal
    assert not a.data.terminals.any() and a.data.state_dim == 17 and a.data.obs_dim == 12


def test_hopper_random_data_marks_falls_as_terminal(tmp_path):
    dm = _tiny(tmp_path, scenario="Hopper", quality="random", n_episodes=3)
    dm.prepare_data()
    dm.setup()
    d = dm.data
    assert d.terminals.sum().item() == 3 and d.n_transitions < 300
    last = torch.nonzero(d.terminals).squeeze(1)
    assert torch.equal(d.episode_ids[last], torch.arange(3))
    assert (d.observations.shape[1:], d.actions.shape[1:]) == ((3, 9), (3, 1))


def test_cached_data_made_under_another_budget_definition_is_made_again(tmp_path):
    dm = _tiny(tmp_path, scenario="Hopper", quality="random", n_episodes=2)
    dm.prepare_data()
    manifest_path = dm.dataset_path().with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["budget"] == BUDGETS["tiny"].as_dict()
    manifest["budget"]["ars_iterations"] += 1  # as if the budget's definition had changed since
    manifest_path.write_text(json.dumps(manifest))
    dm.prepare_data()
    assert json.loads(manifest_path.read_text())["budget"] == BUDGETS["tiny"].as_dict()


def test_damaged_dataset_and_behaviour_caches_are_made_again_with_a_warning(tmp_path):
    dm = _tiny(tmp_path, scenario="Hopper", quality="random", n_episodes=2)
    dm.prepare_data()
    path = dm.dataset_path()
    original, before = path.read_bytes(), TransitionData.load(path)
    (ars,) = path.parent.glob("ars_*.json")
    trained = ars.read_text()
    ars.write_text(trained[: len(trained) // 2])  # killed mid-write by an older version without atomic writes
    path.write_bytes(original[:-100])
    with pytest.warns(UserWarning) as caught:
        dm.prepare_data()
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{path}: the sha256 of {path.name} does not match") and m.endswith("regenerating it")
               for m in messages), messages
    assert any(m.startswith(f"{ars}: not valid JSON") for m in messages), messages
    after = TransitionData.load(path)  # the same data (the caches also record wall-clock timings)
    assert all(torch.equal(v, after.tensors()[k]) for k, v in before.tensors().items())
    untimed = lambda text: [{k: v for k, v in c.items() if k != "seconds"} for c in json.loads(text)["ars"]]  # noqa: E731
    assert untimed(ars.read_text()) == untimed(trained)


def test_budget_keys_ignore_unset_ars_settings():
    from macflow.datagen.mamujoco import Budget

    assert Budget().key("ars") == Budget(ars_directions=None).key("ars") != Budget(ars_directions=16).key("ars")
    assert "ars_directions" not in Budget().as_dict() and BUDGETS["hopper"].as_dict()["ars_directions"] == 16


def test_medium_is_the_checkpoint_nearest_half_the_best():
    ars = [{"eval_return": r} for r in (-300.0, 800.0, 1900.0, 2500.0, 4000.0, 3500.0)]
    assert select({"ars": ars}) == {"expert": 4, "medium": 2, "replay": [0, 1, 2]}


def test_datamodule_rejects_mismatched_layout_and_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="obs_layout: omiga"):
        MaMuJoCoDataModule(source="omiga", path=str(tmp_path / "x.hdf5"))
    with pytest.raises(ValueError, match="unsupported MaMuJoCo scenario"):
        MaMuJoCoDataModule(scenario="Walker2d")
    with pytest.raises(ValueError, match="unknown MaMuJoCo quality"):
        MaMuJoCoDataModule(quality="good")
    with pytest.raises(ValueError, match="HalfCheetah 2x3 only"):
        MaMuJoCoDataModule(scenario="Hopper", obs_layout="omar")
    assert set(BUDGETS) >= {"default", "tiny"}


@pytest.mark.slow
def test_teacher_fit_and_rollout_validation_through_the_cli(tmp_path):
    cache = tmp_path / "cache"
    _tiny(cache, quality="medium").prepare_data()
    cli = run_cli(["fit", "--model=macflow.modules.FlowTeacher", "--model.flow_steps=2",
                   "--data=macflow.datamodules.MaMuJoCoDataModule", "--data.quality=medium", "--data.budget=tiny",
                   "--data.n_episodes=2", f"--data.cache_dir={cache}", "--data.n_eval_episodes=2",
                   "--data.eval_batch_size=2", "--trainer.max_steps=5", "--trainer.val_check_interval=5",
                   "--trainer.check_val_every_n_epoch=null", "--trainer.num_sanity_val_steps=0",
                   "--trainer.accelerator=cpu", "--trainer.logger=false", *quiet_trainer_args(tmp_path)])
    metrics = cli.trainer.callback_metrics
    assert "eval/return" in metrics and torch.isfinite(metrics["eval/return"])
    assert cli.model.hparams.get("obs_dim", 12) == 12
    json.dumps({k: float(v) for k, v in metrics.items()})


def test_datagen_entry_point_collects_requested_qualities(tmp_path, capsys):
    from macflow.datagen.__main__ import main

    main(["mamujoco", "--scenario", "Hopper", "--qualities", "medium,medium-replay", "--episodes", "2", "--budget",
          "tiny", "--cache-dir", str(tmp_path), "--quiet"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["quality"] for x in lines] == ["medium", "medium-replay"] and all(x["episodes"] == 2 for x in lines)
    files = sorted(p.name for p in (tmp_path / "mamujoco").glob("*.npz"))
    assert files == [f"Hopper_3x1_mamujoco_{q}_ep2_seed0_tiny.npz" for q in ("medium-replay", "medium")]
    assert len(list((tmp_path / "mamujoco").glob("ars_Hopper_*.json"))) == 1  # behaviours trained once, shared
    with pytest.raises(SystemExit):
        main(["smac"])
