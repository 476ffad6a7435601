"""``python -m macflow export``: exported per-agent policies act exactly like ``OneStepStudent.act``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, coordination_callbacks, quiet_trainer_args, run_cli, save_checkpoint
from torch import nn

from macflow.errors import InputError
from macflow.export import AgentPolicy, export, load_student
from macflow.export import main as export_main
from macflow.modules import (
    EntityAttentionPolicy,
    OneStepStudent,
    RecurrentHistoryPolicy,
    SharedMLPPolicy,
    StudentPolicy,
)

HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def entity_policy(*dims: int) -> EntityAttentionPolicy:
    """An attention student (two entities of two dims in o_i): its attention must export with a dynamic batch."""
    return EntityAttentionPolicy(*dims, entity_groups=[[1, 2, 2]], width=16)


def history_policy(*dims: int) -> RecurrentHistoryPolicy:
    """A GRU student over five one-dim frames of o_i: its recurrence must export with a dynamic batch."""
    return RecurrentHistoryPolicy(*dims, frames=5, hidden_size=8, hidden_dims=[16])


def make_student(tmp_path, noise: str = "shared", discrete: bool = False, actor: str = "mlp"
                 ) -> tuple[OneStepStudent, str]:
    """A randomly initialised student saved as a checkpoint (no teacher needed to export)."""
    torch.manual_seed(0)
    action_dim = 4 if discrete else 2
    actors = {"mlp": SharedMLPPolicy, "entity": entity_policy, "history": history_policy}
    student = OneStepStudent(teacher_ckpt=str(tmp_path / "no_teacher.ckpt"), actor=actors[actor], noise=noise,
                             n_agents=3, obs_dim=5, action_dim=action_dim, state_dim=0, discrete=discrete)
    path = tmp_path / f"student_{noise}_{discrete}_{actor}.ckpt"
    save_checkpoint(student, path)
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
@pytest.mark.parametrize("noise,discrete,actor", [("shared", False, "mlp"), ("independent", False, "mlp"),
                                                  ("independent", True, "mlp"), ("shared", False, "entity"),
                                                  ("shared", True, "history")])
def test_exported_agents_give_the_modules_actions(tmp_path, fmt, noise, discrete, actor):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    student, ckpt = make_student(tmp_path, noise, discrete, actor)
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
    """A student actor with separate weights per agent (not a SharedMLPPolicy): the generic export path."""

    def __init__(self, obs_dim, action_dim, n_agents, noise_dim):
        super().__init__(obs_dim, action_dim, n_agents, noise_dim)
        self.nets = nn.ModuleList(nn.Linear(obs_dim + noise_dim, action_dim) for _ in range(n_agents))

    def forward(self, obs, z):
        return torch.stack([net(torch.cat([obs[:, i], z[:, i]], -1)) for i, net in enumerate(self.nets)], 1)


def test_agent_policy_slices_any_student_actor_exactly():
    torch.manual_seed(0)
    actor = PerAgentWeights(4, 2, 3, 6)
    obs, z = torch.randn(9, 3, 4), torch.randn(9, 3, 6)
    full = actor(obs, z).clamp(-1, 1)
    for i in range(3):
        agent = AgentPolicy(actor, i, discrete=False)
        torch.testing.assert_close(agent(obs[:, i], z[:, i]), full[:, i])
        traced = torch.jit.trace(agent, (obs[:, i], z[:, i]))
        torch.testing.assert_close(traced(obs[:5, i], z[:5, i]), full[:5, i])


def test_export_errors_name_the_fix(tmp_path):
    with pytest.raises(InputError, match="missing.ckpt not found: train a student first"):
        load_student(tmp_path / "missing.ckpt")
    torch.save({"hyper_parameters": {"_class_path": "macflow.modules.teacher.FlowTeacher"}, "state_dict": {}},
               tmp_path / "teacher.ckpt")
    with pytest.raises(InputError, match="not a OneStepStudent checkpoint"):
        load_student(tmp_path / "teacher.ckpt")


def _student_args(teacher: Path, root: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / "coordination/student.yaml"), f"--model.init_args.teacher_ckpt={teacher}",
            "--trainer.val_check_interval=100000", *quiet_trainer_args(root), *coordination_callbacks(root, "student"),
            *extra]


@pytest.mark.parametrize("save_teacher", [False, True])
def test_student_checkpoint_validates_loads_exports_and_acts_without_its_teacher(untrained_teacher, tmp_path,
                                                                                 save_teacher):
    """``validate`` (CLI), ``load_from_checkpoint``, ``act`` and ``export`` (both formats) read the student checkpoint
    alone: after its teacher checkpoint is moved away they give what they gave before; only ``fit`` needs it."""
    teacher, root = tmp_path / "teacher.ckpt", tmp_path / "student"
    shutil.copy(untrained_teacher, teacher)
    fitted = run_cli(["fit", *_student_args(teacher, root, "--trainer.max_steps=3",
                                            f"--model.init_args.save_teacher={str(save_teacher).lower()}")]).model
    ckpt = root / "student.ckpt"
    assert any(k.startswith("teacher.") for k in torch.load(ckpt, weights_only=True)["state_dict"]) == save_teacher
    obs, z, _ = inputs(fitted.eval(), batch=16)
    formats = ["torchscript", *(["onnx"] if HAS_ONNX else [])]

    def everything() -> tuple[dict[str, float], torch.Tensor, list[torch.Tensor]]:
        validated = run_cli(["validate", *_student_args(teacher, root, "--data.init_args.n_eval_episodes=200",
                                                        "--data.init_args.eval_batch_size=100"), f"--ckpt_path={ckpt}"])
        metrics = {k: float(v) for k, v in validated.trainer.callback_metrics.items()}
        student = OneStepStudent.load_from_checkpoint(ckpt, map_location="cpu").eval()
        assert student.teacher is None
        exported = []
        for fmt in formats:
            export_main(["--ckpt", str(ckpt), "--format", fmt, "--out", str(tmp_path / fmt)])
            suffix = "pt" if fmt == "torchscript" else "onnx"
            exported += [run_exported(fmt, tmp_path / fmt / f"agent_{i}.{suffix}", obs[:, i].contiguous(),
                                      z[:, i].contiguous(), None) for i in range(2)]
        return metrics, student.act(obs, None, z), exported

    before = everything()
    torch.testing.assert_close(before[1], fitted.act(obs, None, z), rtol=0, atol=0)
    teacher.rename(tmp_path / "moved.ckpt")
    after = everything()
    assert after[0] == before[0] and after[0]["eval/episodes"] == 200 and 0.0 <= after[0]["eval/return"] <= 1.0
    assert torch.equal(after[1], before[1])
    assert len(after[2]) == 2 * len(formats) and all(torch.equal(a, b) for a, b in zip(after[2], before[2]))
    for i, got in enumerate(after[2]):  # the exported agents act like the module
        torch.testing.assert_close(got, after[1][:, i % 2], atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="fitting a student needs it"):  # resuming a fit needs the teacher
        run_cli(["fit", *_student_args(teacher, root, "--trainer.max_steps=4", f"--ckpt_path={root / 'last.ckpt'}")])


def test_a_damaged_student_checkpoint_is_an_input_error(tmp_path):
    path = tmp_path / "final.ckpt"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=f"--ckpt {path} is empty: use another checkpoint of the run"):
        load_student(path)


def test_a_failed_export_leaves_no_folder_and_keeps_an_earlier_export(untrained_teacher, tmp_path, monkeypatch):
    run_cli(["fit", *_student_args(untrained_teacher, tmp_path / "s", "--trainer.max_steps=1")])
    ckpt, out = tmp_path / "s/student.ckpt", tmp_path / "exported"
    import macflow.export as export_module

    def fail(policy, student, path, fmt):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(export_module, "export_agent", fail)
        with pytest.raises(OSError):
            export(ckpt, "torchscript", out)
    assert list(tmp_path.iterdir()) == [tmp_path / "s"]  # no empty, partial or temporary folder
    files = export(ckpt, "torchscript", out)
    (out / "notes.txt").write_text("the user's own file")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["agent_0.pt", "agent_1.pt", "notes.txt", "policy.json"] and files[0].parent == out
    with monkeypatch.context() as m:
        m.setattr(export_module, "export_agent", fail)
        with pytest.raises(OSError):
            export(ckpt, "torchscript", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and sorted(tmp_path.iterdir()) == [out, tmp_path / "s"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it, not mkdtemp's private 0700
    export(ckpt, "torchscript", out)  # a re-export replaces its own files and keeps the user's
    assert {p.name for p in out.iterdir()} == set(before) and (out / "notes.txt").read_text() == "the user's own file"


def test_onnx_without_its_packages_names_the_extra(untrained_teacher, tmp_path, monkeypatch):
    run_cli(["fit", *_student_args(untrained_teacher, tmp_path / "s", "--trainer.max_steps=1")])
    monkeypatch.setitem(sys.modules, "onnx", None)  # what Python does when onnx is not installed
    with pytest.raises(InputError, match=r"--format onnx needs .*pip install 'macflow\[export\]'"):
        export(tmp_path / "s/student.ckpt", "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()
