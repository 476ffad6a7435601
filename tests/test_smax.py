"""SMAX: dims without jaxmarl, the batched env against single episodes, legal actions in rollouts and in every
generated quality, deterministic cached generation, the expert's modes, and a short teacher -> student fit.

Tests that run the simulator skip without ``pip install 'macflow[smax]'``; the first run compiles each map's step
(JAX's persistent cache keeps it for the next runs)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS, quiet_trainer_args, run_cli

from macflow.datagen.smax import QUALITIES, generate, mode_permutation, permutation_index
from macflow.datamodules import SMAXDataModule
from macflow.envs.base import rollout
from macflow.envs.smax import N_MOVE_ACTIONS, STOP, SMAXEnv, SMAXSim, dims_for, import_jaxmarl

SMAX_DATA = {"3m": (3, 75, 72, 8), "2s3z": (5, 127, 120, 10), "5m_vs_6m": (5, 140, 132, 11)}
"""``(allies, obs, world state, actions)`` measured with jaxmarl 0.2.0 (shared/docs/data_generation.md §3)."""


@pytest.fixture(scope="module")
def jaxmarl():
    return pytest.importorskip("jaxmarl", reason="SMAX needs pip install 'macflow[smax]'")


def random_legal(obs: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """A one-hot action drawn uniformly from each agent's legal set (torch's global generator)."""
    choice = torch.multinomial(legal.flatten(0, 1).float(), 1).view(legal.shape[:2])
    return torch.nn.functional.one_hot(choice, legal.shape[-1]).float()


def test_map_dims_are_known_without_the_simulator():
    for name, (n, obs, state, actions) in SMAX_DATA.items():
        d = dims_for(name)
        assert (d.n_agents, d.obs_dim, d.state_dim, d.action_dim) == (n, obs, state, actions)
    dm = SMAXDataModule(map_name="5m_vs_6m")
    assert (dm.n_agents, dm.obs_dim, dm.action_dim, dm.state_dim, dm.discrete) == (5, 140, 11, 132, True)
    with pytest.raises(ValueError, match="unknown SMAX map"):
        dims_for("3mm")
    with pytest.raises(ValueError, match="quality"):
        SMAXDataModule(quality="good")


@pytest.mark.parametrize("map_name", ["3m", "2s3z", "5m_vs_6m", "smacv2_5_units"])
def test_map_dims_match_jaxmarl(jaxmarl, map_name):
    sim = SMAXSim(map_name)  # checks its spaces against dims_for (no compilation)
    assert sim.max_steps == 100 and len(sim.agents) == dims_for(map_name).n_agents


def test_missing_jaxmarl_names_the_extra(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m.split(".")[0] == "jaxmarl"] or ["jaxmarl"]:
        monkeypatch.setitem(sys.modules, name, None)  # what an environment without the extra sees
    with pytest.raises(ImportError, match=r"pip install 'macflow\[smax\]'"):
        import_jaxmarl()
    with pytest.raises(ImportError, match=r"pip install 'macflow\[smax\]'"):
        SMAXDataModule(map_name="8m", cache_dir=str(tmp_path)).prepare_data()


def test_dims_are_linked_into_the_model():
    cli = run_cli(["--config", str(CONFIGS / "smax/teacher.yaml"), "--config", str(CONFIGS / "smax/expert/teacher.yaml")],
                  run=False)
    h = cli.model.hparams
    assert (h.n_agents, h.obs_dim, h.action_dim, h.state_dim, h.discrete) == (3, 75, 8, 72, True)
    assert cli.datamodule.hparams.quality == "expert"


@pytest.mark.parametrize("quality", ["medium", "expert", "medium-replay", "random"])
def test_categorical_bc_config_is_a_legal_masked_softmax_per_quality(quality):
    from macflow.modules import GaussianBC

    cli = run_cli(["--config", str(CONFIGS / "smax/categorical_bc.yaml"),
                   "--config", str(CONFIGS / f"smax/{quality}/categorical_bc.yaml")], run=False)
    assert isinstance(cli.model, GaussianBC) and cli.model.discrete
    assert (cli.model.hparams.obs_dim, cli.model.hparams.action_dim) == (75, 8)
    assert cli.datamodule.hparams.quality == quality
    legal = torch.rand(256, 3, 8) > 0.5
    legal[..., STOP] = True
    act = cli.model.act(torch.randn(256, 3, 75), legal)
    assert legal[act.bool()].all() and torch.equal(act.sum(-1), torch.ones(256, 3))


def test_batched_env_equals_single_episodes(jaxmarl):
    torch.manual_seed(0)
    env = SMAXEnv([3, 4], "3m")
    first = env.reset()
    assert first.obs.shape == (2, 3, 75) and first.legal.shape == (2, 3, 8)
    assert first.legal[..., :N_MOVE_ACTIONS].all() and not first.legal[..., N_MOVE_ACTIONS:].any()  # no one in range
    steps, actions = [first], []
    for _ in range(25):
        actions.append(random_legal(steps[-1].obs, steps[-1].legal))
        steps.append(env.step(actions[-1]))
    assert any(s.legal[..., N_MOVE_ACTIONS:].any() for s in steps)  # the armies met: attacks became legal
    single = SMAXEnv([4], "3m")  # the same episode alone, with the same actions
    alone = [single.reset()]
    for a in actions:
        alone.append(single.step(a[1:]))
    for s, t in zip(steps, alone):
        torch.testing.assert_close(s.obs[1:], t.obs, rtol=0, atol=0)
        torch.testing.assert_close(s.rewards[1:], t.rewards, rtol=0, atol=0)
        assert torch.equal(s.legal[1:], t.legal) and torch.equal(s.dones[1:], t.dones)
    assert not torch.equal(steps[1].obs[0], steps[1].obs[1])  # two seeds, two episodes


def test_illegal_action_is_refused(jaxmarl):
    env = SMAXEnv([0], "3m")
    env.reset()
    attack = torch.zeros(1, 3, 8)
    attack[:, :, N_MOVE_ACTIONS] = 1.0  # attack enemy 0: out of range at the start
    with pytest.raises(ValueError, match="illegal SMAX action 5"):
        env.step(attack)


def test_rollouts_of_a_discrete_model_stay_legal_and_report_wins(jaxmarl):
    from macflow.modules import FlowTeacher

    torch.manual_seed(0)
    teacher = FlowTeacher(n_agents=3, obs_dim=75, action_dim=8, state_dim=72, discrete=True, flow_steps=2)
    env = SMAXEnv(list(range(100, 132)), "3m")  # the env refuses any illegal action of an unfinished episode
    results = rollout(env, teacher.policy)
    assert results["length"].sum() >= 32 * 10  # hundreds of decisions of 3 agents, each checked
    assert set(results["win_rate"].tolist()) <= {0.0, 1.0}
    assert ((results["return"] >= 0) & (results["return"] <= 2.0 + 1e-5)).all()
    assert (results["length"] <= 100).all()

    torch.manual_seed(1)
    won = rollout(SMAXEnv(list(range(200, 232)), "3m"), random_legal)
    assert won["win_rate"].mean() == 0.0 and won["return"].mean() < 0.5  # random play loses (docs: 0.18 return)


def _check_episode(ep: dict, n: int, a: int) -> None:
    length = len(ep["actions"])
    assert ep["obs"].shape[0] == ep["state"].shape[0] == ep["legal"].shape[0] == length + 1
    assert ep["actions"].shape == (length, n, a) and (ep["actions"].sum(-1) == 1).all()  # one-hot
    choice = ep["actions"].argmax(-1)
    assert np.take_along_axis(ep["legal"][:-1], choice[..., None], -1).all()  # every logged action was legal
    dead = ~ep["legal"][:-1, :, :STOP].any(-1)  # no move legal: the unit is dead
    assert (choice[dead] == STOP).all()
    assert ep["legal"][:, :, STOP].all()


@pytest.mark.slow
@pytest.mark.parametrize("quality", QUALITIES)
def test_every_quality_logs_only_legal_actions(jaxmarl, quality):
    episodes, _ = generate("3m", quality, 256, data_seed=0)
    for ep in episodes:
        _check_episode(ep, 3, 8)
    won = np.mean([ep["won"] for ep in episodes])
    assert sum(len(ep["actions"]) for ep in episodes) > 2500
    assert all(ep["terminated"] for ep in episodes if len(ep["actions"]) < 100)
    assert {"random": won == 0, "medium": 0.35 < won < 0.65, "expert": won > 0.45,
            "medium-replay": won < 0.3}[quality], won  # docs: 0.000, 0.493, 0.618; replay mixes in random play


def test_generation_is_deterministic_for_a_seed(jaxmarl):
    a, _ = generate("3m", "medium", 5, data_seed=4)
    b, _ = generate("3m", "medium", 5, data_seed=4)
    c, _ = generate("3m", "medium", 5, data_seed=5)
    longer, _ = generate("3m", "medium", 7, data_seed=4)  # episode e does not depend on how many are made
    for x, y, z in zip(a, b, longer):
        for key in ("obs", "state", "legal", "actions", "rewards"):
            np.testing.assert_array_equal(x[key], y[key])
            np.testing.assert_array_equal(x[key], z[key])
    assert not np.array_equal(a[0]["obs"][0], c[0]["obs"][0])
    for ep in a:
        _check_episode(ep, 3, 8)


def test_expert_modes_are_the_drawn_priority_orders(jaxmarl):
    episodes, _ = generate("3m", "expert", 256, data_seed=0)
    modes = np.array([ep["mode"] for ep in episodes])
    counts = np.bincount(modes, minlength=6)
    assert counts.sum() == 256 and (counts > 20).all()  # six orders of three enemies, drawn uniformly
    assert permutation_index(np.array(mode_permutation("3m", 4))) == 4
    first_target = []
    for ep in episodes:  # the first attack of the team goes to the enemy the priority puts first among equals
        choice = ep["actions"].argmax(-1)
        t, i = np.argwhere(choice >= N_MOVE_ACTIONS)[0]
        legal = np.flatnonzero(ep["legal"][t, i, N_MOVE_ACTIONS:])
        order = [j for j in mode_permutation("3m", ep["mode"]) if j in legal]
        first_target.append(choice[t, i] - N_MOVE_ACTIONS == order[0])
    assert np.mean(first_target) > 0.95


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cached_dataset_regenerates_bit_for_bit_with_a_manifest(jaxmarl, tmp_path):
    from macflow.datagen.__main__ import main

    main(["smax", "--qualities", "expert", "--episodes", "6", "--seed", "2", "--cache-dir", str(tmp_path / "a")])
    dm = SMAXDataModule(quality="expert", n_episodes=6, data_seed=2, cache_dir=str(tmp_path / "a"))
    dm.setup()  # reads the cache written by the command line
    m = dm.manifest()
    assert (m["quality"], m["data_seed"], m["episodes"], m["env"]["map"]) == ("expert", 2, 6, "3m")
    assert m["env"]["jaxmarl_version"].startswith("0.2") and m["replaced_illegal_actions"] == 0
    assert m["mean_return"] == pytest.approx(float(dm.data.episode_returns().mean()), abs=1e-5)
    assert m["transitions"] == dm.data.n_transitions and sum(m["modes"]["counts"]) == 6
    assert dm.episode_modes.shape == (6,) and (dm.episode_modes >= 0).all()
    assert int(dm.data.terminals.sum()) == m["terminated_episodes"]  # the rest hit the time limit: bootstrap
    assert dm.data.states.shape == (dm.data.observations.shape[0], 72) and dm.data.legal.dtype == torch.bool
    again = SMAXDataModule(quality="expert", n_episodes=6, data_seed=2, cache_dir=str(tmp_path / "b"))
    again.prepare_data()
    assert _sha(again.dataset_path()) == _sha(dm.dataset_path())
    assert _sha(again.dataset_path().with_suffix(".modes.npy")) == _sha(dm.dataset_path().with_suffix(".modes.npy"))
    stored = json.loads(dm.dataset_path().with_suffix(".json").read_text())
    assert stored["regenerate"].startswith("SMAXDataModule(map_name='3m', quality='expert', n_episodes=6")


@pytest.mark.slow
def test_short_teacher_and_student_fit_reports_the_win_rate(jaxmarl, tmp_path):
    data = [f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.n_episodes=256",
            "--data.init_args.n_eval_episodes=16", "--data.init_args.eval_batch_size=16"]
    teacher_root, student_root = tmp_path / "teacher", tmp_path / "student"
    run_cli(["fit", "--config", str(CONFIGS / "smax/teacher.yaml"), "--trainer.max_steps=100",
             "--trainer.val_check_interval=100", *quiet_trainer_args(teacher_root), *data])
    assert (teacher_root / "final.ckpt").exists()
    cli = run_cli(["fit", "--config", str(CONFIGS / "smax/student.yaml"), "--trainer.max_steps=100",
                   "--trainer.val_check_interval=100", f"--model.init_args.teacher_ckpt={teacher_root}/final.ckpt",
                   *quiet_trainer_args(student_root), *data])
    metrics = cli.trainer.callback_metrics
    assert 0.0 <= metrics["eval/win_rate"].item() <= 1.0 and metrics["eval/episodes"].item() == 16
    assert torch.isfinite(metrics["train/actor/q_loss"]) and torch.isfinite(metrics["train/critic/loss"])
    out = run_cli(["validate", "--config", str(CONFIGS / "smax/student.yaml"),
                   f"--model.init_args.teacher_ckpt={teacher_root}/final.ckpt", "--ckpt_path",
                   str(student_root / "final.ckpt"), *quiet_trainer_args(tmp_path / "validate"), *data])
    assert out.trainer.callback_metrics["eval/win_rate"].item() == pytest.approx(metrics["eval/win_rate"].item())
