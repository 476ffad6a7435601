"""The student stage: its losses and updates, resuming, old checkpoints and discrete actions, on a teacher after one
step (fast tier); learning to coordinate on discrete actions (slow tier). Teacher-free loading: tests/test_export.py."""

from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, coordination_callbacks, quiet_trainer_args, run_cli, save_checkpoint

from macflow.errors import InputError
from macflow.modules import QMIX, FlowTeacher, OneStepStudent, SharedMLPPolicy
from macflow.modules.mixed_critic import MixedCritic


def checksum(module: torch.nn.Module) -> float:
    return float(sum(p.double().abs().sum() + p.double().sum() for p in module.state_dict().values()))


def student_args(teacher: Path, root: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / "coordination/student.yaml"), f"--model.init_args.teacher_ckpt={teacher}",
            "--trainer.val_check_interval=100000", *quiet_trainer_args(root), *coordination_callbacks(root, "student"),
            *extra]


def _student(teacher: Path, **kwargs) -> OneStepStudent:
    student = OneStepStudent(teacher_ckpt=str(teacher), n_agents=2, obs_dim=3, action_dim=2, state_dim=5, **kwargs)
    student.load_teacher()
    return student


def _batch(n: int, discrete: bool = False) -> dict[str, torch.Tensor]:
    a = 4 if discrete else 2
    actions = torch.nn.functional.one_hot(torch.randint(a, (n, 2)), a).float() if discrete else torch.rand(n, 2, a) * 2 - 1
    return {"obs": torch.randn(n, 2, 3), "actions": actions, "next_obs": torch.randn(n, 2, 3), "rewards": torch.rand(n),
            "dones": torch.zeros(n), "state": torch.randn(n, 5), "next_state": torch.randn(n, 5)}


# ------------------------------------------------------------------------------------------ one training step
def test_student_step_changes_actor_and_critic_never_the_teacher(untrained_teacher, tmp_path):
    cli = run_cli(student_args(untrained_teacher, tmp_path, "--trainer.max_steps=3"), run=False)
    model = cli.model
    assert model.teacher is None  # loaded when fit starts, not at construction
    before = {"actor": checksum(model.actor), "critic": checksum(model.q.online), "target": checksum(model.q.target)}
    teacher_file = checksum(FlowTeacher.load_from_checkpoint(untrained_teacher).vector_field)
    cli.trainer.fit(model, cli.datamodule)
    assert cli.trainer.global_step == 3  # one optimizer step per batch
    assert checksum(model.actor) != before["actor"]
    assert checksum(model.q.online) != before["critic"]
    assert checksum(model.q.target) != before["target"]
    assert checksum(model.teacher.vector_field) == teacher_file
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())


def test_target_critic_takes_one_polyak_step_after_each_optimizer_step(untrained_teacher, tmp_path):
    cli = run_cli(student_args(untrained_teacher, tmp_path, "--trainer.max_steps=1", "--model.init_args.tau=0.25"),
                  run=False)
    model = cli.model
    start = [p.detach().clone() for p in model.q.online.parameters()]  # the target starts as a copy of them
    assert all(torch.equal(a, b) for a, b in zip(start, model.q.target.parameters()))
    cli.trainer.fit(model, cli.datamodule)
    for s, online, target in zip(start, model.q.online.parameters(), model.q.target.parameters()):
        torch.testing.assert_close(target, s + 0.25 * (online.detach() - s), rtol=0, atol=1e-7)
    assert any(not torch.equal(s, o) for s, o in zip(start, model.q.online.parameters()))


def test_mixed_critic_update_target_is_polyak_and_its_frozen_call_trains_only_the_inputs():
    torch.manual_seed(0)
    from macflow.modules import EnsembleCritic, VDNMean

    q = MixedCritic(EnsembleCritic, VDNMean, n_agents=2, obs_dim=3, action_dim=2, state_dim=0)
    assert not any(p.requires_grad for p in q.target.parameters())
    target_before = [p.clone() for p in q.target.parameters()]
    with torch.no_grad():
        for p in q.online.parameters():
            p.add_(1.0)
    q.update_target(0.1)
    for before, online, target in zip(target_before, q.online.parameters(), q.target.parameters()):
        torch.testing.assert_close(target, 0.9 * before + 0.1 * online.detach())
    obs, actions = torch.randn(4, 2, 3), torch.randn(4, 2, 2, requires_grad=True)
    frozen = q.frozen(obs, actions, obs.flatten(1))
    torch.testing.assert_close(frozen, q(obs, actions, obs.flatten(1)))
    frozen.sum().backward()
    assert actions.grad.abs().sum() > 0 and all(p.grad is None for p in q.parameters())


# --------------------------------------------------------------------------------------------------- the losses
def test_td_target_never_bootstraps_from_a_terminal_step(untrained_teacher):
    student = _student(untrained_teacher, gamma=0.9)
    student.q.target.forward = lambda *args, **kw: torch.full((2, 4), 10.0)  # Q'(s', a') = 10
    batch = {"obs": torch.randn(4, 2, 3), "actions": torch.zeros(4, 2, 2), "next_obs": torch.randn(4, 2, 3),
             "rewards": torch.tensor([1.0, 2.0, 3.0, 4.0]), "dones": torch.tensor([1.0, 0.0, 1.0, 0.0]),
             "state": torch.randn(4, 5), "next_state": torch.randn(4, 5)}
    _, logs = student.critic_loss(batch)
    expected = torch.tensor([1.0, 2.0 + 9.0, 3.0, 4.0 + 9.0]).mean()
    assert torch.isclose(logs["train/critic/target_mean"], expected)


def test_q_term_reaches_only_the_actor_and_distillation_uses_the_teacher(untrained_teacher):
    torch.manual_seed(0)
    student = _student(untrained_teacher)
    loss, logs = student.actor_loss({"obs": torch.randn(16, 2, 3), "state": torch.randn(16, 5)})
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in student.q.parameters())
    assert all(p.grad is None for p in student.teacher.parameters())
    assert sum(p.grad.abs().sum() for p in student.actor.parameters()) > 0
    assert logs["train/actor/distill_loss"] > 0
    # the Q term alone (alpha = 0) still moves the actor: its gradient flows through the detached critic
    student.actor.zero_grad()
    student.hparams.alpha = 0.0
    student.actor_loss({"obs": torch.randn(16, 2, 3), "state": torch.randn(16, 5)})[0].backward()
    assert sum(p.grad.abs().sum() for p in student.actor.parameters()) > 0


def test_distillation_regresses_the_actor_on_the_clipped_teacher_sample_from_the_same_noise(untrained_teacher):
    torch.manual_seed(0)
    student = _student(untrained_teacher, noise="independent")
    seen = {}

    def sample(obs, x_0, steps):
        seen["x_0"] = x_0
        return torch.full_like(x_0, 3.0)  # outside [-1, 1]: the target is clipped to 1

    student.teacher.sample = sample
    obs = torch.randn(8, 2, 3)
    torch.manual_seed(1)
    _, logs = student.actor_loss({"obs": obs, "state": torch.randn(8, 5)})
    assert seen["x_0"].shape == (8, 2, 2)
    out = student.actor(obs, seen["x_0"])  # independent noise: agent i reads the teacher's own z_i
    torch.testing.assert_close(logs["train/actor/distill_loss"], (out - 1.0).pow(2).mean())
    student.hparams.normalize_q_loss = False
    student.q.online.forward = lambda *args, **kw: torch.zeros(2, 8)  # no Q term: the loss is alpha * distill
    torch.manual_seed(1)
    loss, _ = student.actor_loss({"obs": obs, "state": torch.randn(8, 5)})
    loss.backward()
    grads = torch.autograd.grad((out - 1.0).pow(2).mean(), list(student.actor.parameters()))
    for p, g in zip(student.actor.parameters(), grads):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize(("actor_q_agg", "expected"), [("mean", -2.0), ("min", -1.0)])
def test_actor_q_term_aggregates_the_ensemble_as_asked(untrained_teacher, actor_q_agg, expected):
    student = _student(untrained_teacher, actor_q_agg=actor_q_agg, normalize_q_loss=False)
    q_tot = torch.tensor([[1.0, 3.0] * 4, [3.0, 1.0] * 4])  # [K=2, B=8]: members disagree, mean 2, min 1
    student.q.online.forward = lambda *args, **kw: q_tot
    _, logs = student.actor_loss({"obs": torch.randn(8, 2, 3), "state": torch.randn(8, 5)})
    assert torch.isclose(logs["train/actor/q_loss"], torch.tensor(expected))


def test_qmix_student_trains_on_the_global_state(untrained_teacher):
    torch.manual_seed(0)
    student = _student(untrained_teacher, mixer=lambda n, s: QMIX(n, s, 8, 16))
    assert student.q.online.mixer.state_dim == 5  # the data's global state, not the flattened observations
    batch = _batch(8)
    opt = student.configure_optimizers()
    losses = []
    for _ in range(30):
        critic_loss, _ = student.critic_loss(batch)
        opt.zero_grad()
        critic_loss.backward()
        opt.step()
        losses.append(critic_loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.q.online.mixer.parameters())


def test_discrete_student_keeps_legal_actions_and_its_expected_q_term_has_a_gradient(untrained_discrete_teacher):
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt=str(untrained_discrete_teacher), n_agents=2, obs_dim=3, action_dim=4,
                             state_dim=5, discrete=True, alpha=3.0, normalize_q_loss=False)
    student.load_teacher()
    batch = _batch(32, discrete=True)
    legal = torch.rand(32, 2, 4) > 0.5
    legal[..., 2] = True
    acts = student.act(batch["obs"], legal)
    assert torch.equal(acts.sum(-1), torch.ones(32, 2)) and (acts.bool() <= legal).all()
    loss, logs = student.actor_loss({**batch, "legal": legal})
    assert logs["train/actor/distill_loss"].shape == () and logs["train/actor/distill_loss"] > 0  # cross-entropy
    student.hparams.alpha = 0.0  # the expected-Q term alone (the reference's argmax Q term has no gradient)
    loss, _ = student.actor_loss({**batch, "legal": legal})
    loss.backward()
    assert sum(p.grad.abs().sum() for p in student.actor.parameters()) > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in student.q.parameters())


# ---------------------------------------------------------------------------------------------- the teacher
def test_missing_teacher_checkpoint_gives_a_clear_error_when_fitting(tmp_path):
    student = OneStepStudent(teacher_ckpt=str(tmp_path / "nope.ckpt"), n_agents=2, obs_dim=3, action_dim=2)
    student.setup("validate")  # only fitting reads the teacher
    with pytest.raises(InputError, match="teacher_ckpt .*nope.ckpt not found.*train the teacher first"):
        student.setup("fit")


def test_teacher_trained_on_other_data_is_rejected(untrained_teacher):
    student = OneStepStudent(teacher_ckpt=str(untrained_teacher), n_agents=3, obs_dim=3, action_dim=2)
    with pytest.raises(ValueError, match="same dataset"):
        student.load_teacher()


def test_the_old_argument_name_policy_is_rejected_with_the_new_one(tmp_path):
    with pytest.raises(ValueError, match="policy is now actor"):
        OneStepStudent(teacher_ckpt="unused.ckpt", policy=SharedMLPPolicy)
    with pytest.raises(ValueError, match="model.init_args.actor"):
        run_cli(["--config", str(CONFIGS / "coordination/student.yaml"),
                 "--model.init_args.policy=macflow.modules.SharedMLPPolicy", *quiet_trainer_args(tmp_path)], run=False)


# ----------------------------------------------------------------------------------------- checkpoints
def test_student_resumes_from_last_ckpt_with_its_teacher(untrained_teacher, tmp_path):
    first = run_cli(["fit", *student_args(untrained_teacher, tmp_path, "--trainer.max_steps=2")])
    assert first.trainer.global_step == 2
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert not any(k.startswith("teacher.") for k in saved["state_dict"])  # the teacher lives in teacher_ckpt
    second = run_cli(["fit", *student_args(untrained_teacher, tmp_path, "--trainer.max_steps=3",
                                           f"--ckpt_path={tmp_path / 'last.ckpt'}")])
    assert second.trainer.global_step == 3 and second.model.teacher is not None
    assert saved["state_dict"].keys() == {k for k in second.model.state_dict() if not k.startswith("teacher.")}


def test_checkpoint_with_the_old_critic_key_names_loads(tmp_path):
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused.ckpt", n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    with torch.no_grad():
        for p in student.q.target.parameters():
            p.mul_(0.5)  # target differs from online, so a swapped remap would show
    old = {k.replace("q.online.", "q_net.", 1).replace("q.target.", "target_q_net.", 1): v
           for k, v in student.state_dict().items()}
    assert any(k.startswith("q_net.critic.") for k in old) and any(k.startswith("target_q_net.mixer") or
                                                                  k.startswith("target_q_net.critic.") for k in old)
    path = tmp_path / "old.ckpt"
    loaded = OneStepStudent.load_from_checkpoint(save_checkpoint(student, path, old), weights_only=False)
    for key, value in student.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    hparams = dict(student.hparams)
    hparams["policy"] = hparams.pop("actor")  # the argument's name before the rename
    torch.save({**torch.load(path, weights_only=False), "hyper_parameters": hparams}, path)
    with pytest.raises(ValueError, match="rename the 'policy' key of its 'hyper_parameters' to 'actor'"):
        OneStepStudent.load_from_checkpoint(path, weights_only=False)


# ------------------------------------------------------------------------------------ learning outcomes (slow)
@pytest.mark.slow
def test_discrete_pipeline_learns_to_coordinate(tmp_path):
    data = ["--data.init_args.discrete=true", "--data.init_args.n_samples=4000", "--data.init_args.n_eval_episodes=200",
            "--data.init_args.eval_batch_size=200"]
    run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.max_steps=600",
             "--trainer.val_check_interval=100000", *data, *quiet_trainer_args(tmp_path / "t"),
             *coordination_callbacks(tmp_path / "t", "teacher")])
    cli = run_cli(["fit", *student_args(tmp_path / "t/teacher.ckpt", tmp_path / "s", "--trainer.max_steps=300",
                                        "--model.init_args.alpha=3.0", "--model.init_args.normalize_q_loss=false",
                                        "--trainer.val_check_interval=300", *data)])
    assert cli.model.discrete and cli.model.action_dim == 4
    assert cli.trainer.callback_metrics["eval/coordinated"] > 0.5  # random decentralised play coordinates 3/16


class OneAgentActor(SharedMLPPolicy):
    """A custom actor that returns one action for all agents, ``[B, 1, A]``, which would broadcast in the losses."""

    def forward(self, obs, z):
        return super().forward(obs, z).mean(1, keepdim=True)


def test_an_actor_of_the_wrong_output_shape_stops_training_and_acting(untrained_teacher):
    student = _student(untrained_teacher, actor=OneAgentActor)
    message = r"model.init_args.actor OneAgentActor returned shape \[16, 1, 2\], expected \[16, 2, 2\]"
    with pytest.raises(InputError, match=message):
        student.actor_loss({"obs": torch.randn(16, 2, 3), "state": torch.randn(16, 5)})
    with pytest.raises(InputError, match=message):
        student.act(torch.randn(16, 2, 3))
