"""Observation history (``obs_history``): windows in the data, the same windows in rollouts, and the recurrent
actor that reads them, trained through the student's losses."""

import pytest
import torch
from conftest import CONFIGS, quiet_trainer_args, run_cli

from macflow.envs.base import EnvStep, MultiAgentEnv
from macflow.envs.history import ObservationHistory
from macflow.errors import InputError
from macflow.modules import OneStepStudent, RecurrentHistoryPolicy
from macflow.transitions import TransitionData


def _episode(start: float, length: int, terminated: bool) -> dict:
    """One 2-agent episode whose observation at step t is ``start + t`` (agent 1: its negative)."""
    steps = torch.arange(length + 1, dtype=torch.float32) + start
    obs = torch.stack([steps, -steps], dim=1)[..., None].numpy()  # [L+1, 2, 1]
    return {"obs": obs, "actions": torch.zeros(length, 2, 1).numpy(), "rewards": torch.zeros(length).numpy(),
            "terminated": terminated}


def test_windows_hold_the_last_observations_of_the_episode_only():
    data = TransitionData.from_episodes([_episode(0, 4, True), _episode(100, 2, False)]).with_history(3)
    assert data.obs_dim == 3
    windows = {int(data.observations[i, 0, -1]): data.observations[i, 0].tolist() for i in range(len(data.observations))}
    assert windows[0] == [0, 0, 0] and windows[1] == [0, 0, 1] and windows[4] == [2, 3, 4]
    assert windows[100] == [100, 100, 100] and windows[102] == [100, 101, 102]  # never the first episode's end
    assert torch.equal(data.observations[:, 1], -data.observations[:, 0])  # each agent its own history
    batch = data.gather(torch.arange(data.n_transitions))
    assert torch.equal(batch["next_obs"][:, :, :-1], batch["obs"][:, :, 1:])  # o' extends the same window


def test_vault_stream_windows_ignore_the_terminal_self_link():
    obs = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1).numpy()  # episodes [0, 1, 2] and [3, 4]
    terminals = torch.tensor([False, False, True, False, True]).numpy()
    data = TransitionData.from_stream(obs, torch.zeros(5, 1, 1).numpy(), torch.zeros(5).numpy(), terminals,
                                      torch.zeros(5, dtype=torch.bool).numpy()).with_history(2)
    assert data.observations[:, 0].tolist() == [[0, 0], [0, 1], [1, 2], [3, 3], [3, 4]]


class Counter(MultiAgentEnv):
    """Two episodes whose agents observe the step count (agent 1: its negative)."""

    n_episodes, max_steps = 2, 5

    def reset(self) -> EnvStep:
        self.t = 0
        return self._step()

    def step(self, actions: torch.Tensor) -> EnvStep:
        self.t += 1
        return self._step()

    def _step(self) -> EnvStep:
        obs = torch.tensor([[self.t, -self.t]] * 2, dtype=torch.float32)[..., None]
        return EnvStep(obs, torch.zeros(2), torch.full((2,), self.t >= 4))


def test_rollout_window_matches_the_data_window_and_restarts_at_reset():
    env = ObservationHistory(Counter(), 3)
    assert env.reset().obs[0, 0].tolist() == [0, 0, 0]
    for _ in range(4):
        step = env.step(torch.zeros(2, 2, 1))
    data = TransitionData.from_episodes([_episode(0, 4, True)]).with_history(3)
    assert step.obs[0, 0].tolist() == data.observations[4, 0].tolist() == [2, 3, 4]
    assert step.obs[0, 1].tolist() == [-2, -3, -4]
    assert env.reset().obs[0, 0].tolist() == [0, 0, 0]  # nothing of the finished episode is carried


def test_recurrent_actor_reads_every_frame_and_gets_the_students_gradient(untrained_teacher):
    torch.manual_seed(0)
    actor = lambda *dims: RecurrentHistoryPolicy(*dims, frames=2, hidden_size=8, hidden_dims=[16])  # noqa: E731
    student = OneStepStudent(teacher_ckpt=str(untrained_teacher), actor=actor, n_agents=2, obs_dim=6, action_dim=2,
                             state_dim=5)
    with pytest.raises(InputError, match="same dataset"):
        student.load_teacher()  # without a datamodule saying obs_history=2, 6 features are not 2 frames of 3

    class Trainer:
        datamodule = type("Data", (), {"obs_history": 2})()

    student._trainer = Trainer()
    student.setup("fit")  # the teacher reads the newest frame (its 3 features)
    assert student.teacher_obs_dim == 3
    obs = torch.randn(16, 2, 6)
    z, x_0 = student.draw_noise(16, obs.device)
    assert torch.equal(student.distillation_targets(obs, x_0), student.teacher.sample(obs[..., 3:], x_0))
    older = obs.clone()
    older[..., :3] += 1.0  # only the older frame changes
    assert not torch.allclose(student.actor(older, z), student.actor(obs, z))
    batch = {"obs": obs, "actions": torch.rand(16, 2, 2) * 2 - 1, "state": torch.randn(16, 5)}
    loss, _ = student.actor_loss(batch)
    loss.backward()
    grads = [p.grad for p in student.actor.encoder.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_actor_frames_must_match_the_datas_history(untrained_teacher):
    actor = lambda *dims: RecurrentHistoryPolicy(*dims, frames=3)  # noqa: E731
    student = OneStepStudent(teacher_ckpt=str(untrained_teacher), actor=actor, n_agents=2, obs_dim=6, action_dim=2)

    class Trainer:
        datamodule = type("Data", (), {"obs_history": 2})()

    student._trainer = Trainer()
    with pytest.raises(InputError, match="windows of 3 observations but the data gives 2"):
        student.setup("validate")
    with pytest.raises(ValueError, match="frames=4 must divide"):
        RecurrentHistoryPolicy(6, 2, 2, 2, frames=4)


def test_history_student_fits_and_validates_through_the_cli(untrained_teacher, tmp_path):
    args = ["--config", str(CONFIGS / "coordination/student.yaml"), f"--model.init_args.teacher_ckpt={untrained_teacher}",
            "--data.init_args.obs_history=2", "--model.init_args.actor=macflow.modules.RecurrentHistoryPolicy",
            "--model.init_args.actor.init_args.frames=2", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
            "--data.init_args.n_eval_episodes=8", "--data.init_args.eval_batch_size=8", *quiet_trainer_args(tmp_path)]
    cli = run_cli(["fit", *args])
    assert cli.model.obs_dim == 2 * cli.datamodule.frame_dim and cli.datamodule.data.obs_dim == cli.model.obs_dim
    assert cli.trainer.callback_metrics["eval/episodes"].item() == 8
