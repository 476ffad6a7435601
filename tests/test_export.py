"""``python -m macflow export``: exported per-agent policies act exactly like ``OneStepStudent.act``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import CONFIGS, REPO, coordination_callbacks, quiet_trainer_args, run_cli
from torch import nn

from macflow.export import AgentPolicy, export, load_student
from macflow.modules import EntityAttentionPolicy, OneStepStudent, SharedMLPPolicy, StudentPolicy


def entity_policy(*dims: int) -> EntityAttentionPolicy:
    """An attention student (two entities of two dims in o_i): its attention must export with a dynamic batch."""
    return EntityAttentionPolicy(*dims, entity_groups=[[1, 2, 2]], width=16)


def make_student(tmp_path, noise: str = "shared", discrete: bool = False, policy: str = "mlp"
                 ) -> tuple[OneStepStudent, str]:
    """A randomly initialised student saved as a checkpoint (no teacher needed to export)."""
    torch.manual_seed(0)
    action_dim = 4 if discrete else 2
    policies = {"mlp": SharedMLPPolicy, "entity": entity_policy}
    student = OneStepStudent(teacher_ckpt=str(tmp_path / "no_teacher.ckpt"), policy=policies[policy], noise=noise,
                             n_agents=3, obs_dim=5, action_dim=action_dim, state_dim=0, discrete=discrete)
    path = tmp_path / f"student_{noise}_{discrete}_{policy}.ckpt"
    torch.save({"hyper_parameters": dict(student.hparams), "state_dict": student.state_dict()}, path)
    return student.eval(), str(path)


def inputs(student: OneStepStudent, batch: int = 33, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, student.n_agents, student.obs_dim, generator=gen)
    z, _ = student.draw_noise(batch, obs.device, gen)
    legal = None
    if student.discrete:
        legal = torch.rand(batch, student.n_agents, student.action_dim, generator=gen) > 0.4
        legal[..., 1] = True
    return obs, z, legal


def run_exported(fmt: str, path, obs, z, legal):
    if fmt == "torchscript":
        policy = torch.jit.load(str(path))
        args = (obs, z) if legal is None else (obs, z, legal)
        with torch.no_grad():
            return policy(*args)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"obs": obs.numpy(), "z": z.numpy()}
    if legal is not None:
        feed["legal"] = legal.numpy()
    return torch.from_numpy(session.run(None, feed)[0])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("noise,discrete,policy", [("shared", False, "mlp"), ("independent", False, "mlp"),
                                                   ("independent", True, "mlp"), ("shared", False, "entity")])
def test_exported_agents_give_the_modules_actions(tmp_path, fmt, noise, discrete, policy):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    student, ckpt = make_student(tmp_path, noise, discrete, policy)
    files = export(ckpt, fmt, tmp_path / "out")
    assert [f.name for f in files] == [f"agent_{i}.{'pt' if fmt == 'torchscript' else 'onnx'}" for i in range(3)]
    manifest = json.loads((tmp_path / "out/policy.json").read_text())
    assert manifest["noise_dim"] == student.noise_dim and manifest["inputs"][:2] == ["obs", "z"]
    obs, z, legal = inputs(student)
    expected = student.act(obs, legal, z)
    for i, path in enumerate(files):  # agent i sees only its own observation, noise and legal mask
        got = run_exported(fmt, path, obs[:, i].contiguous(), z[:, i].contiguous(),
                           None if legal is None else legal[:, i].contiguous())
        torch.testing.assert_close(got, expected[:, i], atol=1e-5, rtol=1e-5)
    if discrete:
        assert legal[expected.bool()].all()


class PerAgentWeights(StudentPolicy):
    """A student policy with separate weights per agent (not a SharedMLPPolicy): the generic export path."""

    def __init__(self, obs_dim, action_dim, n_agents, noise_dim):
        super().__init__(obs_dim, action_dim, n_agents, noise_dim)
        self.nets = nn.ModuleList(nn.Linear(obs_dim + noise_dim, action_dim) for _ in range(n_agents))

    def forward(self, obs, z):
        return torch.stack([net(torch.cat([obs[:, i], z[:, i]], -1)) for i, net in enumerate(self.nets)], 1)


def test_agent_policy_slices_any_student_policy_exactly():
    torch.manual_seed(0)
    policy = PerAgentWeights(4, 2, 3, 6)
    obs, z = torch.randn(9, 3, 4), torch.randn(9, 3, 6)
    full = policy(obs, z).clamp(-1, 1)
    for i in range(3):
        agent = AgentPolicy(policy, i, discrete=False)
        torch.testing.assert_close(agent(obs[:, i], z[:, i]), full[:, i])
        traced = torch.jit.trace(agent, (obs[:, i], z[:, i]))
        torch.testing.assert_close(traced(obs[:5, i], z[:5, i]), full[:5, i])


def test_export_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train a student first"):
        load_student(tmp_path / "missing.ckpt")
    torch.save({"hyper_parameters": {"_class_path": "macflow.modules.teacher.FlowTeacher"}, "state_dict": {}},
               tmp_path / "teacher.ckpt")
    with pytest.raises(ValueError, match="not a OneStepStudent checkpoint"):
        load_student(tmp_path / "teacher.ckpt")


@pytest.mark.slow
def test_cli_export_of_a_trained_student_without_its_teacher(coordination_teacher, tmp_path):
    """Real path: a CLI-trained student checkpoint, exported by ``python -m macflow export`` in a fresh process
    after its teacher checkpoint is gone, acts like the module."""
    run_cli(["fit", "--config", str(CONFIGS / "coordination/student.yaml"),
             f"--model.init_args.teacher_ckpt={coordination_teacher}", "--trainer.max_steps=40",
             "--trainer.val_check_interval=100000", *quiet_trainer_args(tmp_path),
             *coordination_callbacks(tmp_path, "student")])
    ckpt = tmp_path / "student.ckpt"
    student = OneStepStudent.load_from_checkpoint(ckpt, map_location="cpu").eval()
    obs, z, _ = inputs(student)
    expected = student.act(obs, None, z)
    teacher_copy = tmp_path / "teacher_backup.ckpt"
    coordination_teacher.rename(teacher_copy)  # export must not need the teacher
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        for fmt in ("torchscript", "onnx"):
            if fmt == "onnx":
                pytest.importorskip("onnx")
            out = subprocess.run([sys.executable, "-m", "macflow", "export", "--ckpt", str(ckpt), "--format", fmt,
                                  "--out", str(tmp_path / fmt)], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr[-2000:]
            assert "exported 2 agent policies" in out.stdout
            suffix = "pt" if fmt == "torchscript" else "onnx"
            for i in range(2):
                got = run_exported(fmt, tmp_path / fmt / f"agent_{i}.{suffix}", obs[:, i].contiguous(),
                                   z[:, i].contiguous(), None)
                torch.testing.assert_close(got, expected[:, i], atol=1e-5, rtol=1e-5)
    finally:
        teacher_copy.rename(coordination_teacher)
