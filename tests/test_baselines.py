"""Same-framework baselines: Gaussian BC, MA-TD3+BC, the DDPM joint policy, and the reference-code ablation configs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import CONFIGS, quiet_trainer_args, run_cli, save_checkpoint

from macflow.datamodules import CoordinationDataModule
from macflow.envs.coordination import joint_mode
from macflow.errors import InputError
from macflow.modules import MATD3BC, DiffusionPolicy, GaussianBC, OneStepStudent, PerAgentVectorField
from macflow.modules.diffusion import DDPMSchedule, ddpm_sample, make_betas
from macflow.modules.mixed_critic import MixedCritic

BASELINES = {"gaussian_bc": GaussianBC, "td3bc": MATD3BC, "diffusion": DiffusionPolicy}


def fit_baseline(name: str, root, steps: int, *extra: str):
    """Train a shipped baseline config through the real CLI for ``steps`` steps; returns the CLI object."""
    cli = run_cli(["--config", str(CONFIGS / f"baselines/{name}.yaml"), f"--trainer.max_steps={steps}",
                   "--trainer.val_check_interval=100000", "--trainer.callbacks=[]", "--trainer.logger=false",
                   "--trainer.enable_checkpointing=false", *quiet_trainer_args(root), *extra], run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli


def coordination_batch(n: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    dm = CoordinationDataModule(data_seed=seed)
    dm.setup()
    return dm.data.gather(torch.randint(dm.data.n_transitions, (n,), generator=torch.Generator().manual_seed(seed)))


# ------------------------------------------------------------------------------------------------ all baselines
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_configs_build_the_right_class_with_linked_dims(name, tmp_path):
    cli = run_cli(["--config", str(CONFIGS / f"baselines/{name}.yaml"), *quiet_trainer_args(tmp_path)],
                  run=False)
    model = cli.model
    assert type(model) is BASELINES[name]
    assert (model.n_agents, model.obs_dim, model.action_dim, model.state_dim) == (2, 3, 2, 5)
    actions = model.policy(torch.randn(7, 2, 3))
    assert actions.shape == (7, 2, 2) and actions.abs().max() <= 1.0


def test_reference_ablation_is_a_config_of_the_shipped_modules(tmp_path):
    teacher = run_cli(["--config", str(CONFIGS / "baselines/reference_teacher.yaml"),
                       *quiet_trainer_args(tmp_path)], run=False).model
    assert isinstance(teacher.vector_field, PerAgentVectorField)
    student = run_cli(["--config", str(CONFIGS / "baselines/reference_student.yaml"),
                       *quiet_trainer_args(tmp_path)], run=False).model
    hp = student.hparams
    assert (hp.noise, hp.eval_noise, type(student.q.online.mixer).__name__) == ("independent", "fixed", "VDNMean")
    assert hp.teacher_ckpt.endswith("reference/teacher/seed0/final.ckpt")  # {seed} filled from seed_everything
    assert student.noise_dim == student.action_dim  # each agent reads only its own z_i


def _without(config: dict, paths: list[str]) -> dict:
    import copy

    config = copy.deepcopy(config)
    for path in paths:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node.pop(last, None)
    return config


@pytest.mark.parametrize("stage,ablated", [
    ("teacher", ["model.init_args.vector_field"]),
    ("student", ["model.init_args.teacher_ckpt", "model.init_args.noise", "model.init_args.eval_noise",
                 "model.init_args.mixer"]),
])
def test_reference_ablation_configs_differ_from_the_model_only_in_what_is_ablated(stage, ablated):
    """If configs/coordination/ changes, the ablation must follow, or the comparison is no longer like for like."""
    yaml = pytest.importorskip("yaml")
    ours = yaml.safe_load((CONFIGS / f"coordination/{stage}.yaml").read_text())
    ref = yaml.safe_load((CONFIGS / f"baselines/reference_{stage}.yaml").read_text())
    ignore = [*ablated, "trainer.default_root_dir", "trainer.callbacks"]
    assert _without(ref, ignore) == _without(ours, ignore), (
        f"configs/baselines/reference_{stage}.yaml has drifted from configs/coordination/{stage}.yaml: copy the "
        f"change over (only {', '.join(ablated)} may differ)")


def test_baseline_actors_are_the_students_network():
    yaml = pytest.importorskip("yaml")
    student = yaml.safe_load((CONFIGS / "coordination/student.yaml").read_text())["model"]["init_args"]
    for name in ("gaussian_bc", "td3bc"):
        hidden = yaml.safe_load((CONFIGS / f"baselines/{name}.yaml").read_text())["model"]["init_args"]["hidden_dims"]
        assert hidden == student["actor"]["init_args"]["hidden_dims"], (
            f"configs/baselines/{name}.yaml: set hidden_dims to the student's actor widths in "
            "configs/coordination/student.yaml so latency and return compare like for like")


BASELINE_DELTAS = [("gaussian_bc", "student", "macflow.modules.GaussianBC"),
                   ("td3bc", "student", "macflow.modules.MATD3BC"),
                   ("diffusion", "teacher", "macflow.modules.DiffusionPolicy"),
                   ("reference_teacher", "teacher", "macflow.modules.FlowTeacher")]
"""Each benchmark's model deltas (configs/<benchmark>/baselines/), the stage whose configs they stack on, the model."""
COUNTERPART_STACKS = {"mpe-expert": ["mpe/{stage}.yaml", "mpe/expert/{stage}.yaml"],
                      "mpe-medium": ["mpe/{stage}.yaml", "mpe/medium/{stage}.yaml"],
                      "mamujoco-halfcheetah": ["mamujoco/halfcheetah_{stage}.yaml"],
                      "mamujoco-hopper": ["mamujoco/hopper_{stage}.yaml"],
                      "smax-medium": ["smax/{stage}.yaml", "smax/medium/{stage}.yaml"]}
DELTA_CASES = [(benchmark, *delta) for benchmark in COUNTERPART_STACKS for delta in BASELINE_DELTAS
               if (CONFIGS / benchmark.split("-")[0] / "baselines" / f"{delta[0]}.yaml").is_file()]


@pytest.mark.parametrize("benchmark,delta,stage,model", DELTA_CASES, ids=[f"{c[0]}-{c[1]}" for c in DELTA_CASES])
def test_baseline_deltas_keep_their_counterparts_data_and_budget_and_only_their_own_options(
        benchmark, delta, stage, model):
    """A model delta on the student's (teacher's) stack: the same data, batch and steps, and no option of the model
    below it left behind by the class switch (a stray alpha or teacher_ckpt would change what is compared)."""
    from macflow.cli import resolve_config

    stack = [CONFIGS / c.format(stage=stage) for c in COUNTERPART_STACKS[benchmark]]
    delta_file = CONFIGS / benchmark.split("-")[0] / "baselines" / f"{delta}.yaml"
    base = resolve_config([a for c in stack for a in ("--config", str(c))], keep_none=True)
    ours = resolve_config([a for c in [*stack, delta_file] for a in ("--config", str(c))], keep_none=True)
    assert ours["model"]["class_path"] == model
    assert ours["data"] == base["data"] and ours["trainer"]["max_steps"] == base["trainer"]["max_steps"]
    yaml = pytest.importorskip("yaml")
    written = yaml.safe_load(delta_file.read_text())["model"]["init_args"]
    if delta == "reference_teacher":  # the teacher with only the reference's network and prediction changed
        kept = {k: v for k, v in ours["model"]["init_args"].items() if k not in written}
        assert kept == {k: v for k, v in base["model"]["init_args"].items() if k not in written}
    else:
        stray = set(ours["model"]["init_args"]) - set(written) - {"n_agents", "obs_dim", "action_dim", "state_dim",
                                                                  "discrete", "denoiser"}
        assert not stray, f"{delta_file}: set {sorted(stray)} of {model} too (the class switch keeps them)"


# ------------------------------------------------------------------------------------------------- Gaussian BC
def test_gaussian_bc_learns_the_per_agent_marginal_and_so_misses_the_joint_modes(tmp_path):
    torch.manual_seed(0)
    batch = coordination_batch()
    model = GaussianBC(hidden_dims=(64, 64), n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    with torch.no_grad():
        before = float(model.nll(batch["obs"], batch["actions"]))
        cli = fit_baseline("gaussian_bc", tmp_path, 300, "--model.init_args.hidden_dims=[64, 64]")
        model = cli.model.eval()
        after = float(model.nll(batch["obs"], batch["actions"]))
    # the best observation-blind Gaussian: per-agent, per-dimension data mean and std
    sd = batch["actions"].std(0)
    blind = float((0.5 + sd.log() + 0.5 * math.log(2 * math.pi)).mean())
    assert after < before - 0.2 and after < blind + 0.05, (before, after, blind)
    # each agent's logged actions are uniform over 4 points around the origin: the ML Gaussian sits near their mean
    # with std near the points' spread (0.8 / sqrt 2), so the mean action is in no coordinated mode
    with torch.no_grad():
        mean, log_std = model.actor(batch["obs"])
    assert (mean.mean((0, 1)) - batch["actions"].mean((0, 1))).abs().max() < 0.15
    assert log_std.exp().mean() > 0.35
    s = batch["obs"][:, 0, 0]
    assert (joint_mode(model.act(batch["obs"]), s, 4) >= 0).float().mean() < 0.1


def test_gaussian_bc_discrete_obeys_legal_masks():
    torch.manual_seed(0)
    model = GaussianBC(hidden_dims=(32,), n_agents=3, obs_dim=4, action_dim=5, discrete=True)
    legal = torch.rand(64, 3, 5) > 0.5
    legal[..., 0] = True
    for sample in (False, True):
        act = model.act(torch.randn(64, 3, 4), legal, sample=sample)
        assert act.shape == (64, 3, 5) and torch.equal(act.sum(-1), torch.ones(64, 3))
        assert legal[act.bool()].all()
    # cross-entropy to a legal label: masking illegal logits can only lower it
    obs, actions = torch.randn(64, 3, 4), torch.nn.functional.one_hot(torch.zeros(64, 3, dtype=torch.long), 5).float()
    assert model.nll(obs, actions, legal) <= model.nll(obs, actions) + 1e-6


# ------------------------------------------------------------------------------------------------- MA-TD3+BC
def test_td3bc_gradients_are_routed_like_the_student():
    """TD reaches only the critic; the Q term and BC reach only the actor; targets never get gradients."""
    torch.manual_seed(0)
    model = MATD3BC(hidden_dims=(32, 32), n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    batch = coordination_batch(64)
    batch["next_obs"] = batch["next_obs"] + 0.1
    model.training_step(batch, 0).backward()
    critic_grad = [p.grad.clone() for p in model.q.online.parameters()]
    actor_grad = [p.grad.clone() for p in model.actor.parameters()]
    assert all(p.grad is None for p in [*model.q.target.parameters(), *model.target_actor.parameters()])
    assert sum(g.abs().sum() for g in actor_grad) > 0
    # the critic's gradient is exactly that of the TD loss alone (no Q-term leak into the critic)
    model.zero_grad()
    torch.manual_seed(0)
    with torch.no_grad():
        na = model.target_actor(batch["next_obs"])
        na = (na + (torch.randn_like(na) * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
        target = batch["rewards"] + 0.995 * (1 - batch["dones"]) * model.q.target(
            batch["next_obs"], na, batch["next_state"]).mean(0)
    (model.q(batch["obs"], batch["actions"], batch["state"]) - target).pow(2).mean().backward()
    for a, b in zip(critic_grad, [p.grad for p in model.q.online.parameters()]):
        torch.testing.assert_close(a, b)


def test_td3bc_shares_the_students_mixed_critic_and_polyak_updates_both_targets():
    torch.manual_seed(0)
    model = MATD3BC(hidden_dims=(32, 32), tau=0.5, n_agents=2, obs_dim=3, action_dim=2, state_dim=0)
    student = OneStepStudent(teacher_ckpt="unused.ckpt", n_agents=2, obs_dim=3, action_dim=2, state_dim=0)
    assert type(model.q) is type(student.q) is MixedCritic
    batch = coordination_batch(8)
    del batch["state"], batch["next_state"]  # no state: the mixer reads all observations, as the student's does
    torch.testing.assert_close(model.q.global_state(batch), batch["obs"].flatten(1))
    with torch.no_grad():
        for p in [*model.q.online.parameters(), *model.actor.parameters()]:
            p.add_(1.0)
    before = [p.clone() for p in [*model.q.target.parameters(), *model.target_actor.parameters()]]
    online = [*model.q.online.parameters(), *model.actor.parameters()]
    model.update_targets()  # what MACFlowModule.optimizer_step runs after each optimizer step
    for b, o, t in zip(before, online, [*model.q.target.parameters(), *model.target_actor.parameters()]):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * o.detach())


def test_td3bc_checkpoint_with_the_old_critic_key_names_loads(tmp_path):
    torch.manual_seed(0)
    model = MATD3BC(hidden_dims=(16,), n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    with torch.no_grad():
        for p in model.q.target.parameters():
            p.mul_(0.5)
    old = {k.replace("q.online.", "q_net.", 1).replace("q.target.", "target_q_net.", 1): v
           for k, v in model.state_dict().items()}
    assert any(k.startswith("target_q_net.") for k in old) and not any(k.startswith("q.") for k in old)
    loaded = MATD3BC.load_from_checkpoint(save_checkpoint(model, tmp_path / "old.ckpt", old), weights_only=False)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_td3bc_rejects_discrete_data_with_the_fix():
    with pytest.raises(ValueError, match="GaussianBC"):
        MATD3BC(n_agents=2, obs_dim=3, action_dim=4, discrete=True)


def test_td3bc_learns_the_reward_and_imitates_the_data(tmp_path):
    torch.manual_seed(0)
    batch = coordination_batch()
    fresh = MATD3BC(hidden_dims=(64, 64), n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    with torch.no_grad():
        bc_before = float((fresh.actor(batch["obs"]) - batch["actions"]).pow(2).mean())
        q_before = float((fresh.q(batch["obs"], batch["actions"], batch["state"]).mean(0) - batch["rewards"])
                         .pow(2).mean())
    cli = fit_baseline("td3bc", tmp_path, 300, "--model.init_args.hidden_dims=[64, 64]",
                       "--model.init_args.critic.hidden_dims=[64, 64]")
    model = cli.model.eval()
    # one-step game (every transition terminal): Q_tot must regress the logged reward
    with torch.no_grad():
        q = model.q(batch["obs"], batch["actions"], batch["state"]).mean(0)
        bc_after = float((model.actor(batch["obs"]) - batch["actions"]).pow(2).mean())
    assert float((q - batch["rewards"]).pow(2).mean()) < 0.02 * q_before, q_before
    assert bc_after < bc_before
    assert any((a - b).abs().max() > 0 for a, b in zip(model.target_actor.parameters(), fresh.target_actor.parameters()))


# ------------------------------------------------------------------------------------------------- diffusion
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("steps", [50, 100, 200])
def test_ddpm_schedule_maths(schedule, steps):
    s = DDPMSchedule(steps, schedule)
    betas = make_betas(steps, schedule)
    assert (betas > 0).all() and (betas < 1).all()
    ab = torch.cumprod(1 - betas, 0)
    torch.testing.assert_close(s.alpha_bar.double(), ab, rtol=1e-6, atol=1e-7)
    assert ab[0] > 0.99 and ab[-1] < 0.01  # starts at the data, ends at (almost) pure noise
    # posterior q(x_{k-1} | x_k, x_0) by Bayes on the two Gaussians, independently of the closed form
    k = torch.arange(1, steps)
    prior_mean_coef, prior_var = ab[k - 1].sqrt(), 1 - ab[k - 1]  # x_{k-1} | x_0
    lik_coef, lik_var = (1 - betas[k]).sqrt(), betas[k]  # x_k | x_{k-1}
    post_var = 1 / (1 / prior_var + lik_coef**2 / lik_var)
    torch.testing.assert_close(s.posterior_variance[k].double(), post_var, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(s.posterior_coef_x0[k].double(), post_var * prior_mean_coef / prior_var,
                               rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(s.posterior_coef_xk[k].double(), post_var * lik_coef / lik_var, rtol=1e-5, atol=1e-8)
    # q_sample has the marginal variance 1 - alpha_bar_k around sqrt(alpha_bar_k) x_0
    x0 = torch.full((20000, 1, 1), 0.5)
    kk = torch.full((20000,), steps // 2)
    xk = s.q_sample(x0, kk, torch.randn_like(x0))
    assert abs(float(xk.mean()) - 0.5 * float(s.sqrt_alpha_bar[steps // 2])) < 0.03
    assert abs(float(xk.var()) - float(1 - s.alpha_bar[steps // 2])) < 0.03


def test_ddpm_sampler_with_the_exact_denoiser_converges_to_a_gaussian_data_distribution():
    """For data N(m, sd^2) the optimal eps is known in closed form. K ancestral steps get the mean right and the
    spread up to DDPM's finite-K under-dispersion, which must vanish as K grows (a wrong posterior would not)."""
    m, sd = torch.tensor([0.3, -0.5]), 0.2
    spread_error = {}
    for steps in (100, 1000):
        torch.manual_seed(0)
        sched = DDPMSchedule(steps, "cosine")

        def exact_eps(x, t, obs):
            ab = sched.alpha_bar[(t * steps).round().long()].view(-1, 1, 1)
            return (x - ab.sqrt() * m) * (1 - ab).sqrt() / (ab * sd**2 + 1 - ab)

        x = ddpm_sample(exact_eps, sched, torch.zeros(20000, 1, 1), torch.randn(20000, 1, 2), clip_x0=None)
        torch.testing.assert_close(x.mean((0, 1)), m, atol=0.01, rtol=0)
        spread_error[steps] = float((x.std((0, 1)) - sd).abs().max())
    assert spread_error[1000] < 0.008 and spread_error[1000] < 0.5 * spread_error[100], spread_error


def test_diffusion_policy_loss_falls_and_it_samples_coordinated_joint_actions(tmp_path):
    torch.manual_seed(0)
    cli = fit_baseline("diffusion", tmp_path, 400, "--model.init_args.diffusion_steps=50")
    model = cli.model.eval()
    dm = cli.datamodule
    batch = coordination_batch(1024, seed=1)
    torch.manual_seed(1)
    fresh = DiffusionPolicy(denoiser=lambda o, a, n: type(model.denoiser)(o, a, n, width=64),
                            diffusion_steps=50, n_agents=2, obs_dim=3, action_dim=2, state_dim=5)
    loss_before = float(fresh.loss(batch["actions"], batch["obs"]))
    assert float(model.loss(batch["actions"], batch["obs"])) < 0.7 * loss_before
    ctx = dm.contexts(500, seed=3)
    coordinated = (joint_mode(model.act(ctx["obs"]), ctx["s"], 4) >= 0).float().mean()
    assert coordinated > 0.3, coordinated  # a factored model is coordinated 1/4 of the time; untrained: ~0
    assert math.isfinite(float(coordinated))


class OneAgentDenoiser(PerAgentVectorField):
    """A custom denoiser that returns one noise estimate for all agents, ``[B, 1, A]``."""

    def forward(self, x_t, t, obs):
        return super().forward(x_t, t, obs).mean(1, keepdim=True)


def test_a_denoiser_of_the_wrong_output_shape_stops_training_and_sampling():
    policy = DiffusionPolicy(denoiser=OneAgentDenoiser, diffusion_steps=5, n_agents=2, obs_dim=3, action_dim=2)
    message = r"model.init_args.denoiser OneAgentDenoiser returned shape \[8, 1, 2\], expected \[8, 2, 2\]"
    with pytest.raises(InputError, match=message):
        policy.loss(torch.rand(8, 2, 2) * 2 - 1, torch.randn(8, 2, 3))
    with pytest.raises(InputError, match=message):
        policy.sample(torch.randn(8, 2, 3))
