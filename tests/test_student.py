"""The student stage: what it changes, its TD target, discrete actions, and the end-to-end result."""

from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, coordination_callbacks, quiet_trainer_args, run_cli

from macflow.modules import FlowTeacher, OneStepStudent


def checksum(module: torch.nn.Module) -> float:
    return float(sum(p.double().abs().sum() + p.double().sum() for p in module.state_dict().values()))


def student_args(teacher: Path, root: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / "coordination/student.yaml"), f"--model.init_args.teacher_ckpt={teacher}",
            "--trainer.val_check_interval=100000", *quiet_trainer_args(root), *coordination_callbacks(root, "student"),
            *extra]


@pytest.mark.slow
def test_student_step_changes_students_and_critics_never_the_teacher(coordination_teacher, tmp_path):
    cli = run_cli(student_args(coordination_teacher, tmp_path, "--trainer.max_steps=5"), run=False)
    model = cli.model
    before = {"actor": checksum(model.actor), "critic": checksum(model.q_net), "target": checksum(model.target_q_net)}
    teacher_file = checksum(FlowTeacher.load_from_checkpoint(coordination_teacher).vector_field)
    cli.trainer.fit(model, cli.datamodule)
    assert cli.trainer.global_step == 5  # one optimizer step per batch
    assert checksum(model.actor) != before["actor"]
    assert checksum(model.q_net) != before["critic"]
    assert checksum(model.target_q_net) != before["target"]
    assert checksum(model.teacher.vector_field) == teacher_file
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())


def _student(teacher: Path, **kwargs) -> OneStepStudent:
    student = OneStepStudent(teacher_ckpt=str(teacher), n_agents=2, obs_dim=3, action_dim=2, state_dim=5, **kwargs)
    student.configure_model()
    return student


@pytest.mark.slow
def test_td_target_never_bootstraps_from_a_terminal_step(coordination_teacher):
    student = _student(coordination_teacher, gamma=0.9)
    student.target_q_net.forward = lambda *args, **kw: torch.full((2, 4), 10.0)  # Q'(s', a') = 10
    batch = {"obs": torch.randn(4, 2, 3), "actions": torch.zeros(4, 2, 2), "next_obs": torch.randn(4, 2, 3),
             "rewards": torch.tensor([1.0, 2.0, 3.0, 4.0]), "dones": torch.tensor([1.0, 0.0, 1.0, 0.0]),
             "state": torch.randn(4, 5), "next_state": torch.randn(4, 5)}
    _, logs = student.critic_loss(batch)
    expected = torch.tensor([1.0, 2.0 + 9.0, 3.0, 4.0 + 9.0]).mean()
    assert torch.isclose(logs["train/critic/target_mean"], expected)


@pytest.mark.slow
def test_q_term_reaches_only_the_actor_and_distillation_uses_the_teacher(coordination_teacher):
    torch.manual_seed(0)
    student = _student(coordination_teacher)
    batch = {"obs": torch.randn(16, 2, 3), "state": torch.randn(16, 5)}
    loss, logs = student.actor_loss(batch)
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in student.q_net.parameters())
    assert sum(p.grad.abs().sum() for p in student.actor.parameters()) > 0
    assert logs["train/actor/distill_loss"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("actor_q_agg", "expected"), [("mean", -2.0), ("min", -1.0)])
def test_actor_q_term_aggregates_the_ensemble_as_asked(coordination_teacher, actor_q_agg, expected):
    student = _student(coordination_teacher, actor_q_agg=actor_q_agg, normalize_q_loss=False)
    q_tot = torch.tensor([[1.0, 3.0] * 4, [3.0, 1.0] * 4])  # [K=2, B=8]: members disagree, mean 2, min 1
    student.q_net.forward = lambda *args, **kw: q_tot
    _, logs = student.actor_loss({"obs": torch.randn(8, 2, 3), "state": torch.randn(8, 5)})
    assert torch.isclose(logs["train/actor/q_loss"], torch.tensor(expected))


def test_missing_teacher_checkpoint_gives_a_clear_error(tmp_path):
    student = OneStepStudent(teacher_ckpt=str(tmp_path / "nope.ckpt"), n_agents=2, obs_dim=3, action_dim=2)
    with pytest.raises(FileNotFoundError, match="train the teacher first"):
        student.configure_model()


@pytest.mark.slow
def test_teacher_trained_on_other_data_is_rejected(coordination_teacher):
    student = OneStepStudent(teacher_ckpt=str(coordination_teacher), n_agents=3, obs_dim=3, action_dim=2)
    with pytest.raises(ValueError, match="same dataset"):
        student.configure_model()


@pytest.mark.slow
def test_discrete_pipeline_keeps_legal_actions_and_trains_by_a_nonzero_q_gradient(tmp_path):
    data = ["--data.init_args.discrete=true", "--data.init_args.n_samples=4000", "--data.init_args.n_eval_episodes=200",
            "--data.init_args.eval_batch_size=200"]
    run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.max_steps=600",
             "--trainer.val_check_interval=100000", *data, *quiet_trainer_args(tmp_path / "t"),
             *coordination_callbacks(tmp_path / "t", "teacher")])
    teacher_ckpt = tmp_path / "t/teacher.ckpt"
    cli = run_cli(["fit", *student_args(teacher_ckpt, tmp_path / "s", "--trainer.max_steps=300",
                                        "--model.init_args.alpha=3.0", "--model.init_args.normalize_q_loss=false",
                                        "--trainer.val_check_interval=300", *data)])
    metrics = cli.trainer.callback_metrics
    student = cli.model
    assert student.discrete and student.action_dim == 4
    assert metrics["eval/coordinated"] > 0.5  # random decentralised play coordinates 3/16 of the time
    dm = cli.datamodule
    ctx = dm.contexts(300, seed=5)
    acts = student.act(ctx["obs"], ctx["legal"])
    assert torch.equal(acts.sum(-1), torch.ones(300, 2)) and (acts.bool() <= ctx["legal"]).all()
    # the expected-Q term has a gradient (the reference's argmax Q term has none)
    student.hparams.alpha = 0.0
    batch = next(iter(dm.train_dataloader()))
    loss, _ = student.actor_loss(batch)
    student.actor.zero_grad()
    loss.backward()
    assert sum(p.grad.abs().sum() for p in student.actor.parameters()) > 0


@pytest.mark.slow
def test_student_resumes_and_validates_from_its_checkpoint(coordination_teacher, tmp_path):
    first = run_cli(["fit", *student_args(coordination_teacher, tmp_path, "--trainer.max_steps=4")])
    assert first.trainer.global_step == 4
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert not any(k.startswith("teacher.") for k in saved["state_dict"])  # the teacher lives in teacher_ckpt
    second = run_cli(["fit", *student_args(coordination_teacher, tmp_path, "--trainer.max_steps=6",
                                           f"--ckpt_path={tmp_path / 'last.ckpt'}")])
    assert second.trainer.global_step == 6
    for name in ("actor", "q_net", "target_q_net"):  # weights came back from step 4, then trained on
        restored = {k[len(name) + 1:]: v for k, v in saved["state_dict"].items() if k.startswith(name + ".")}
        assert restored.keys() == getattr(second.model, name).state_dict().keys()
    validated = run_cli(["validate", *student_args(coordination_teacher, tmp_path, "--data.init_args.n_eval_episodes=200",
                                                   "--data.init_args.eval_batch_size=100"),
                         f"--ckpt_path={tmp_path / 'student.ckpt'}"])
    metrics = validated.trainer.callback_metrics
    assert metrics["eval/episodes"] == 200 and 0.0 <= metrics["eval/return"] <= 1.0


@pytest.mark.slow
def test_qmix_student_trains_on_the_global_state(coordination_teacher):
    torch.manual_seed(0)
    student = _student(coordination_teacher, mixer=lambda n, s: __import__("macflow").modules.QMIX(n, s, 8, 16))
    assert student.q_net.mixer.state_dim == 5  # the data's global state, not the flattened observations
    batch = {"obs": torch.randn(8, 2, 3), "actions": torch.rand(8, 2, 2) * 2 - 1, "next_obs": torch.randn(8, 2, 3),
             "rewards": torch.rand(8), "dones": torch.zeros(8), "state": torch.randn(8, 5),
             "next_state": torch.randn(8, 5)}
    opt = student.configure_optimizers()
    losses = []
    for _ in range(30):
        critic_loss, _ = student.critic_loss(batch)
        opt.zero_grad()
        critic_loss.backward()
        opt.step()
        losses.append(critic_loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.q_net.mixer.parameters())
