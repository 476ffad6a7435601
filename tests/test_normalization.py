"""``ObservationNormalizer`` and the student's ``normalize_obs``: statistics of the data, applied wherever the student
reads observations, saved in checkpoints and carried into exported per-agent policies."""

import pytest
import torch
from conftest import CONFIGS, coordination_callbacks, quiet_trainer_args, run_cli, save_checkpoint

from macflow.export import agent_policies, load_student
from macflow.modules import OneStepStudent
from macflow.modules.normalization import ObservationNormalizer


def test_statistics_are_per_agent_and_feature_and_constants_are_only_centred():
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(1000, 2, 3, generator=gen) * torch.tensor([[1.0, 10.0, 0.1], [5.0, 1.0, 1.0]]) + 3.0
    obs[:, 1, 2] = 7.0  # a constant feature (padding): std 0 must not blow it up
    normalizer = ObservationNormalizer(2, 3)
    torch.testing.assert_close(normalizer(obs), obs)  # identity before fit
    normalizer.fit(obs, chunk=300)  # chunks that do not divide the rows
    torch.testing.assert_close(normalizer.mean, obs.mean(0))
    expected_std = obs.std(0, unbiased=False)
    expected_std[1, 2] = 1.0
    torch.testing.assert_close(normalizer.std, expected_std)
    z = normalizer(obs)
    torch.testing.assert_close(z.mean(0), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, 0].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert bool(normalizer.fitted)
    with pytest.raises(ValueError, match="must have shape"):
        normalizer.fit(torch.zeros(10, 3, 3))


def test_exported_agents_read_raw_observations_like_the_student(tmp_path):
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused.ckpt", normalize_obs=True, n_agents=3, obs_dim=5, action_dim=2)
    scale = torch.tensor([100.0, 0.01, 1.0, 20.0, 3.0])
    student.obs_normalizer.fit(torch.randn(500, 3, 5) * scale + 50.0)
    path = tmp_path / "student.ckpt"
    loaded = load_student(save_checkpoint(student, path))
    torch.testing.assert_close(loaded.obs_normalizer.std, student.obs_normalizer.std)
    obs = torch.randn(7, 3, 5) * scale + 50.0
    z, _ = student.draw_noise(7, obs.device)
    expected = student.eval().act(obs, None, z)
    assert not torch.allclose(expected, student.actor(obs, z).clamp(-1, 1))  # normalising changes the actions
    for i, policy in enumerate(agent_policies(loaded)):
        torch.testing.assert_close(policy(obs[:, i], z[:, i]), expected[:, i])


@pytest.mark.slow
def test_student_fits_statistics_on_its_data_and_a_resumed_run_keeps_them(coordination_teacher, tmp_path):
    args = ["--config", str(CONFIGS / "coordination/student.yaml"), f"--model.init_args.teacher_ckpt={coordination_teacher}",
            "--model.init_args.normalize_obs=true", "--trainer.val_check_interval=100000", *quiet_trainer_args(tmp_path),
            *coordination_callbacks(tmp_path, "student")]
    first = run_cli(["fit", *args, "--trainer.max_steps=3"])
    observations = first.datamodule.data.observations
    normalizer = first.model.obs_normalizer
    torch.testing.assert_close(normalizer.mean, observations.mean(0))
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    torch.testing.assert_close(checkpoint["state_dict"]["obs_normalizer.std"], normalizer.std)
    checkpoint["state_dict"]["obs_normalizer.std"].fill_(123.0)  # stats a refit on resume would overwrite
    torch.save(checkpoint, tmp_path / "marked.ckpt")
    second = run_cli(["fit", *args, "--trainer.max_steps=5", f"--ckpt_path={tmp_path / 'marked.ckpt'}"])
    assert second.trainer.global_step == 5
    assert bool((second.model.obs_normalizer.std == 123.0).all())


def test_teacher_samples_from_raw_observations_through_its_statistics():
    from macflow.modules import FlowTeacher
    from macflow.modules.flow import euler_sample

    torch.manual_seed(0)
    teacher = FlowTeacher(normalize_obs=True, n_agents=2, obs_dim=3, action_dim=2).eval()
    data = torch.randn(400, 2, 3) * torch.tensor([50.0, 1.0, 0.1]) - 20.0
    teacher.obs_normalizer.fit(data)
    obs, noise = data[:6], torch.randn(6, 2, 2)
    normalised = (obs - data.mean(0)) / data.std(0, unbiased=False)
    expected = euler_sample(teacher.velocity, normalised, noise, 4)
    torch.testing.assert_close(teacher.sample(obs, noise, 4), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(euler_sample(teacher.velocity, obs, noise, 4), expected)


@pytest.mark.parametrize("name", ["GaussianBC", "MATD3BC", "DiffusionPolicy"])
def test_baselines_read_observations_through_their_statistics_and_fit_them_at_fit_start(name):
    """The baselines' ``normalize_obs`` (TD3+BC normalises states in its own paper): what the networks read is the
    z-scored observation, the statistics come from the datamodule's data at fit start and live in the state dict."""
    import macflow.modules as modules
    from macflow.datamodules import CoordinationDataModule

    torch.manual_seed(0)
    model = getattr(modules, name)(normalize_obs=True, n_agents=2, obs_dim=3, action_dim=2).eval()
    dm = CoordinationDataModule(n_samples=300)
    dm.setup("fit")
    model.trainer = type("T", (), {"datamodule": dm})()  # what on_fit_start reads
    model.on_fit_start()
    torch.testing.assert_close(model.obs_normalizer.mean, dm.data.observations.mean(0))
    assert "obs_normalizer.std" in model.state_dict()
    obs = dm.data.observations[:5] * 40.0 + 9.0  # far from the data: normalising must change the actions
    seen = []
    network = model.denoiser if name == "DiffusionPolicy" else model.actor
    network.register_forward_pre_hook(lambda _, args: seen.append(args[-1] if name == "DiffusionPolicy" else args[0]))
    model.act(obs)
    torch.testing.assert_close(seen[0], model.obs_normalizer(obs))
    assert not torch.allclose(seen[0], obs)
