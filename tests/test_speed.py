"""The speed options compute what the plain code computes: compiled / bf16 student losses, and every team
deployment path (``TeamPolicy``, ``NumpyTeamPolicy`` backends, ``export --team``) gives ``OneStepStudent.act``."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from conftest import save_checkpoint

from macflow.export import NumpyTeamPolicy, TeamPolicy, export
from macflow.modules import EnsembleCritic, FlowTeacher, OneStepStudent, PerAgentVectorField, SharedMLPPolicy

HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
DIMS = dict(n_agents=3, obs_dim=5, action_dim=2, state_dim=4)


def student_with_teacher(discrete: bool = False, **options) -> OneStepStudent:
    """A small student (seed 0 weights) with a small untrained teacher attached, as ``setup('fit')`` would."""
    dims = {**DIMS, "action_dim": 4 if discrete else 2, "discrete": discrete}
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused", noise="shared",
                             actor=lambda o, a, n, z: SharedMLPPolicy(o, a, n, z, hidden_dims=(32, 32)),
                             critic=lambda o, a, n: EnsembleCritic(o, a, n, hidden_dims=(32, 32)), **options, **dims)
    teacher = FlowTeacher(vector_field=lambda o, a, n: PerAgentVectorField(o, a, n, hidden_dims=(32, 32)), **dims)
    student.teacher = teacher.eval().requires_grad_(False)
    return student


def batch_for(student: OneStepStudent, size: int = 64) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    n, o, a, s = student.n_agents, student.obs_dim, student.action_dim, student.state_dim
    actions = torch.rand(size, n, a, generator=gen) * 2 - 1
    if student.discrete:
        actions = torch.nn.functional.one_hot(actions.argmax(-1), a).float()
    return {"obs": torch.randn(size, n, o, generator=gen), "next_obs": torch.randn(size, n, o, generator=gen),
            "actions": actions, "rewards": torch.randn(size, generator=gen),
            "dones": (torch.rand(size, generator=gen) < 0.2).float(),
            "state": torch.randn(size, s, generator=gen), "next_state": torch.randn(size, s, generator=gen)}


def losses(student: OneStepStudent, batch: dict[str, torch.Tensor], autocast: bool = False
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss and its parameter gradients, from noise seeded 7 (the same draws for every student)."""
    student.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = student.critic_loss(batch)[0] + student.actor_loss(batch)[0]
    loss.backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("discrete", [False, True])
def test_the_compiled_student_loss_equals_the_plain_one(discrete):
    plain = student_with_teacher(discrete)
    fast = student_with_teacher(discrete, compile=True)
    fast.configure_model()
    fast.configure_model()  # a second call keeps the compiled networks
    assert fast._compiled_targets is not None
    fast.load_state_dict(plain.state_dict())
    batch = batch_for(plain)
    (loss, grads), (fast_loss, fast_grads) = losses(plain, batch), losses(fast, batch)
    torch.testing.assert_close(fast_loss, loss, atol=1e-5, rtol=1e-5)
    assert fast_grads.keys() == grads.keys() and grads
    for k in grads:
        torch.testing.assert_close(fast_grads[k], grads[k], atol=1e-4, rtol=1e-4, msg=k)
    assert not any(k.startswith("teacher.") for k in grads)
    assert set(fast.state_dict()) == set(plain.state_dict())  # in-place compile keeps the checkpoint keys


def test_bf16_targets_and_bf16_autocast_stay_close_to_float32():
    plain = student_with_teacher()
    bf16 = student_with_teacher(target_precision="bf16")
    batch = batch_for(plain)
    x_0 = torch.randn(64, 3, 2, generator=torch.Generator().manual_seed(5))
    exact = plain.distillation_targets(batch["obs"], x_0)
    rounded = bf16.distillation_targets(batch["obs"], x_0)
    assert rounded.dtype == torch.float32 and not torch.equal(rounded, exact)
    torch.testing.assert_close(rounded, exact, atol=5e-2, rtol=5e-2)
    loss, grads = losses(plain, batch)
    mixed_loss, mixed_grads = losses(plain, batch, autocast=True)  # what bf16-mixed precision runs (CPU or GPU)
    assert mixed_loss.dtype == torch.float32
    torch.testing.assert_close(mixed_loss, loss, atol=5e-2, rtol=5e-2)
    for k in grads:
        assert mixed_grads[k].dtype == torch.float32
        assert torch.isfinite(mixed_grads[k]).all()
        cos = torch.nn.functional.cosine_similarity(mixed_grads[k].flatten(), grads[k].flatten(), dim=0)
        assert cos > 0.98, k


def test_target_precision_is_checked():
    with pytest.raises(ValueError, match="target_precision"):
        OneStepStudent(teacher_ckpt="unused", target_precision="fp16", **DIMS)


def deployed(noise: str = "shared", discrete: bool = False, normalize: bool = False,
             eval_noise: str = "fresh") -> OneStepStudent:
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused", noise=noise, discrete=discrete, normalize_obs=normalize,
                             eval_noise=eval_noise, **{**DIMS, "action_dim": 4 if discrete else 2, "state_dim": 0})
    if normalize:
        student.obs_normalizer.fit(torch.randn(500, 3, 5) * 3 + 1)
    return student.eval()


BACKENDS = ["eager", "inductor", pytest.param("onnxruntime", marks=pytest.mark.skipif(not HAS_ONNX,
                                                                                    reason="onnx not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("noise,discrete,normalize", [("shared", False, True), ("independent", False, False),
                                                      ("independent", True, False)])
def test_every_team_path_gives_the_modules_actions(backend, noise, discrete, normalize):
    student = deployed(noise, discrete, normalize)
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(9, 3, 5, generator=gen)
    z, _ = student.draw_noise(9, obs.device, gen)
    legal = None
    if discrete:
        legal = torch.rand(9, 3, 4, generator=gen) > 0.4
        legal[..., 0] = True
    expected = student.act(obs, legal, z)
    with torch.no_grad():
        torch.testing.assert_close(TeamPolicy(student)(obs, z, legal), expected, atol=1e-6, rtol=1e-6)
    policy = NumpyTeamPolicy(student, backend)
    np_legal = None if legal is None else legal.numpy()
    got = policy(obs.numpy(), z.numpy(), np_legal)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=1e-5)
    one = policy(obs[0].numpy(), z[0].numpy(), None if legal is None else np_legal[0])  # batch 1: [N, O] in
    np.testing.assert_allclose(one, expected[0].numpy(), atol=1e-5, rtol=1e-5)
    drawn = policy(obs[0].numpy())  # noise drawn inside
    assert drawn.shape == (3, student.action_dim) and drawn.dtype == np.float32


def test_numpy_team_noise_follows_eval_noise():
    obs = np.random.default_rng(0).standard_normal((3, 5), dtype=np.float32)
    zero = deployed(eval_noise="zero")
    expected = zero.act(torch.from_numpy(obs)[None])[0].numpy()
    np.testing.assert_allclose(NumpyTeamPolicy(zero, "eager")(obs), expected, atol=1e-6)
    fixed = NumpyTeamPolicy(deployed(eval_noise="fixed"), "eager")
    np.testing.assert_array_equal(fixed(obs), fixed(obs))
    fresh = NumpyTeamPolicy(deployed(), "eager")
    z = fresh.noise(2)
    assert z.shape == (2, 3, 6) and np.array_equal(z[:, 0], z[:, 2])  # shared: every agent reads the joint draw
    assert not np.array_equal(fresh(obs), fresh(obs))
    with pytest.raises(ValueError, match="backend"):
        NumpyTeamPolicy(zero, "tvm")


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(
    not HAS_ONNX, reason="onnx not installed"))])
def test_exported_team_file_gives_the_modules_actions(tmp_path, fmt):
    student = deployed(normalize=True)
    ckpt = tmp_path / "student.ckpt"
    save_checkpoint(student, ckpt)
    files = export(ckpt, fmt, tmp_path / "out", team=True)
    suffix = "pt" if fmt == "torchscript" else "onnx"
    assert [f.name for f in files] == [f"agent_{i}.{suffix}" for i in range(3)] + [f"team.{suffix}"]
    assert json.loads((tmp_path / "out/policy.json").read_text())["team"] == f"team.{suffix}"
    obs = torch.randn(7, 3, 5)
    z, _ = student.draw_noise(7, obs.device)
    expected = student.act(obs, z=z)
    if fmt == "torchscript":
        with torch.no_grad():
            got = torch.jit.load(str(files[-1]))(obs, z)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(files[-1]), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"obs": obs.numpy(), "z": z.numpy()})[0])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_compile_and_bf16_targets_fit_through_the_cli_and_save_plain_checkpoints(untrained_teacher, tmp_path):
    from conftest import run_cli
    from test_student import student_args

    cli = run_cli(student_args(untrained_teacher, tmp_path, "--trainer.max_steps=2", "--model.init_args.compile=true",
                               "--model.init_args.target_precision=bf16"), run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 2 and cli.model._compiled_targets is not None
    final = next(tmp_path.rglob("final.ckpt"))
    loaded = OneStepStudent.load_from_checkpoint(final, map_location="cpu")  # in-place compile keeps the keys
    assert loaded.hparams.compile and loaded.hparams.target_precision == "bf16"
    obs = torch.randn(4, loaded.n_agents, loaded.obs_dim)
    assert loaded.act(obs).shape == (4, loaded.n_agents, loaded.action_dim)


@pytest.mark.skipif(not HAS_ONNX, reason="onnx not installed")
def test_int8_team_policy_stays_near_the_modules_actions():
    student = deployed("independent", False, True)
    gen = torch.Generator().manual_seed(3)
    obs = torch.randn(64, 3, 5, generator=gen)
    z, _ = student.draw_noise(64, obs.device, gen)
    expected = student.act(obs, None, z).numpy()
    got = NumpyTeamPolicy(student, "onnxruntime-int8")(obs.numpy(), z.numpy())
    error = np.abs(got - expected)
    assert error.max() < 0.05, error.max()  # int8 rounding, not a different network
    assert error.max() > 0  # the weights really are quantised
    assert np.abs(expected).mean() > 10 * error.mean()
