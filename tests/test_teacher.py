"""The joint teacher on the coordination benchmark: it keeps every coordinated mode; a factored field cannot."""

from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, coordination_callbacks, quiet_trainer_args, run_cli

from macflow.datamodules import CoordinationDataModule
from macflow.envs.coordination import joint_mode
from macflow.errors import InputError
from macflow.modules import AgentAttentionVectorField, FlowTeacher, JointMLPVectorField, PerAgentVectorField
from macflow.modules.vector_fields import VectorField


def mode_fractions(teacher: FlowTeacher, n: int = 2000) -> torch.Tensor:
    """Fraction of teacher samples in each coordinated mode (index n_modes = incoherent)."""
    dm = CoordinationDataModule()
    ctx = dm.contexts(n, seed=123)
    torch.manual_seed(0)
    modes = joint_mode(teacher.act(ctx["obs"]), ctx["s"], dm.hparams.n_modes)
    return torch.bincount(torch.where(modes < 0, dm.hparams.n_modes, modes), minlength=5).float() / n


@pytest.mark.slow
def test_default_teacher_samples_every_coordinated_mode(coordination_teacher: Path):
    teacher = FlowTeacher.load_from_checkpoint(coordination_teacher)
    assert isinstance(teacher.vector_field, AgentAttentionVectorField)
    fractions = mode_fractions(teacher)
    assert fractions[:4].sum() >= 0.95, fractions
    assert (fractions[:4] >= 0.20).all(), fractions


@pytest.mark.slow
def test_per_agent_field_samples_incoherent_pairs(tmp_path: Path):
    run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.max_steps=1500",
             "--trainer.val_check_interval=100000", "--model.init_args.vector_field=macflow.modules.PerAgentVectorField",
             "--model.init_args.vector_field.hidden_dims=[128, 128]", *quiet_trainer_args(tmp_path),
             *coordination_callbacks(tmp_path, "factored")])
    teacher = FlowTeacher.load_from_checkpoint(tmp_path / "factored.ckpt")
    assert isinstance(teacher.vector_field, PerAgentVectorField)
    fractions = mode_fractions(teacher)
    # independent agents agree on a mode about 1/4 of the time; the joint teacher does >= 95 %
    assert fractions[:4].sum() < 0.5, fractions


def test_sample_is_a_pure_function_of_noise_and_usable_without_a_trainer():
    torch.manual_seed(0)
    teacher = FlowTeacher(n_agents=3, obs_dim=4, action_dim=2)
    obs, noise = torch.randn(6, 3, 4), torch.randn(6, 3, 2)
    a = teacher.sample(obs, noise)
    assert a.shape == (6, 3, 2) and torch.equal(a, teacher.sample(obs, noise))
    assert not torch.equal(a, teacher.sample(obs, noise, steps=3))
    acted = teacher.act(obs, noise=noise * 100)
    assert acted.abs().max() <= 1.0


def test_fixed_eval_noise_holds_one_draw_per_episode_across_steps():
    # the draw of the MaMuJoCo table's "noise held per episode" teacher: one batch of all episodes, seed 0
    torch.manual_seed(0)
    episodes = 5
    teacher = FlowTeacher(eval_noise="fixed", n_agents=3, obs_dim=4, action_dim=2)
    held = torch.randn(episodes, 3, 2, generator=torch.Generator().manual_seed(0))
    step1, step2 = torch.randn(episodes, 3, 4), torch.randn(episodes, 3, 4)
    first, second = teacher.act(step1), teacher.act(step2)
    assert torch.equal(first, teacher.act(step1, noise=held)) and torch.equal(second, teacher.act(step2, noise=held))
    teacher.hparams.eval_noise = "fresh"
    assert not torch.equal(teacher.act(step1), teacher.act(step1))  # the default draws new noise at every call
    assert FlowTeacher(n_agents=3, obs_dim=4, action_dim=2).hparams.eval_noise == "fresh"
    with pytest.raises(ValueError, match="eval_noise"):
        FlowTeacher(eval_noise="zero", n_agents=3, obs_dim=4, action_dim=2)


def test_discrete_teacher_acts_one_hot_and_legal():
    torch.manual_seed(0)
    teacher = FlowTeacher(n_agents=2, obs_dim=3, action_dim=4, discrete=True)
    legal = torch.ones(50, 2, 4, dtype=torch.bool)
    legal[:, :, 2] = False
    acts = teacher.act(torch.randn(50, 2, 3), legal)
    assert torch.equal(acts.sum(-1), torch.ones(50, 2)) and (acts[..., 2] == 0).all()


def test_flow_loss_falls_on_coordination_data():
    torch.manual_seed(0)
    dm = CoordinationDataModule(n_samples=2000, batch_size=128)
    dm.setup()
    teacher = FlowTeacher(n_agents=2, obs_dim=dm.obs_dim, action_dim=2, lr=1e-3)
    opt = teacher.configure_optimizers()
    batches = iter(dm.train_dataloader())
    losses = []
    for _ in range(150):
        loss = teacher.training_step(next(batches), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20


@pytest.mark.parametrize("prediction", ["velocity", "endpoint"])
def test_teacher_learns_a_deterministic_joint_policy(prediction):
    # actions a = tanh(o W) (one action per state): samples from fresh noise must land on it
    torch.manual_seed(0)
    w = torch.randn(3, 2)
    obs = torch.randn(4096, 2, 3)
    actions = torch.tanh(obs @ w)
    teacher = FlowTeacher(vector_field=lambda o, a, n: JointMLPVectorField(o, a, n, hidden_dims=(128, 128)),
                          prediction=prediction, lr=2e-3, n_agents=2, obs_dim=3, action_dim=2)
    opt = teacher.configure_optimizers()
    for _ in range(600):
        i = torch.randint(0, 4096, (256,))
        loss = teacher.training_step({"obs": obs[i], "actions": actions[i]}, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_obs = torch.randn(512, 2, 3)
    error = (teacher.act(test_obs) - torch.tanh(test_obs @ w)).pow(2).mean().item()
    untrained = FlowTeacher(prediction=prediction, n_agents=2, obs_dim=3, action_dim=2)
    assert error < 0.02 and error < 0.1 * (untrained.act(test_obs) - torch.tanh(test_obs @ w)).pow(2).mean().item()


def test_teacher_rejects_an_unknown_prediction():
    with pytest.raises(ValueError, match="prediction"):
        FlowTeacher(prediction="noise", n_agents=2, obs_dim=3, action_dim=2)


class WrongShapeField(VectorField):
    """A custom field whose output is ``[B, 1, A]`` (broadcasts over agents) or ``[B, A, N]`` (axes swapped)."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, layout: str = "one_agent") -> None:
        super().__init__(obs_dim, action_dim, n_agents)
        self.layout = layout
        self.net = torch.nn.Linear(obs_dim + action_dim, action_dim)

    def forward(self, x_t, t, obs):
        out = self.net(torch.cat([obs, x_t], -1))
        return out.mean(1, keepdim=True) if self.layout == "one_agent" else out.transpose(1, 2)


@pytest.mark.parametrize(("layout", "got"), [("one_agent", "[16, 1, 1]"), ("swapped", "[16, 1, 2]")])
@pytest.mark.parametrize("prediction", ["velocity", "endpoint"])
def test_a_vector_field_of_the_wrong_output_shape_stops_training_and_sampling(layout, got, prediction):
    # with one action dim, both outputs broadcast against the [16, 2, 1] target without a check
    teacher = FlowTeacher(vector_field=lambda o, a, n: WrongShapeField(o, a, n, layout), prediction=prediction,
                          n_agents=2, obs_dim=3, action_dim=1)
    batch = {"obs": torch.randn(16, 2, 3), "actions": torch.rand(16, 2, 1) * 2 - 1}
    message = rf"model.init_args.vector_field WrongShapeField returned shape \{got}, expected \[16, 2, 1\]"
    with pytest.raises(InputError, match=message):
        teacher.training_step(batch, 0)
    with pytest.raises(InputError, match=message):
        teacher.sample(batch["obs"])
