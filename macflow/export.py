"""``python -m macflow export``: a trained student as per-agent policies that run without Lightning (or Python).

    python -m macflow export --ckpt runs/coordination/student/seed0/final.ckpt --format onnx --out exported/
    python -m macflow export --ckpt runs/coordination/student/seed0/final.ckpt --format torchscript

Writes one file per agent, ``agent_<i>.onnx`` (ONNX opset 17, needs the optional ``onnx`` package; run it with
``onnxruntime``) or ``agent_<i>.pt`` (TorchScript, ``torch.jit.load``), plus ``policy.json`` describing the inputs.
Agent i's policy maps its own observation and noise to its action, exactly :meth:`OneStepStudent.act` for that
agent given the same noise:

* continuous: ``(obs [B, obs_dim], z [B, noise_dim]) -> action [B, action_dim]`` in [-1, 1];
* discrete: ``(obs, z, legal [B, action_dim] bool) -> one-hot action [B, action_dim]`` (best legal logit).

``noise_dim`` is ``action_dim`` for ``noise: independent`` (each agent draws its own ``z_i ~ N(0, I)``) and
``n_agents * action_dim`` for ``noise: shared`` (every agent reads the same joint draw: deploy with a shared
random seed). Zero noise gives the policy's "mean" action. The teacher is not needed: the student checkpoint alone
is loaded, and only its actor (and observation statistics) is exported.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from macflow.checkpoints import read_checkpoint
from macflow.errors import InputError
from macflow.files import current_umask, fsync_dir
from macflow.modules.normalization import ObservationNormalizer
from macflow.modules.policies import SharedMLPPolicy, StudentPolicy
from macflow.modules.student import OneStepStudent


class AgentPolicy(nn.Module):
    """Agent ``agent``'s slice of a student actor: ``(obs_i [B, O], z_i [B, noise_dim]) -> action_i [B, A]``.

    :class:`SharedMLPPolicy` runs its MLP on ``[onehot(i), o_i, z_i]`` directly. Any other :class:`StudentPolicy`
    actor is run on a batch where agent ``agent``'s slot holds the inputs and the others hold zeros; the student
    contract (agent i's output depends only on ``obs[:, i]`` and ``z[:, i]``) makes that exact.
    With ``normalizer`` (a student trained with ``normalize_obs``), agent i's slice of its statistics is applied
    first, so the exported policy reads raw observations.
    """

    def __init__(self, actor: StudentPolicy, agent: int, discrete: bool,
                 normalizer: ObservationNormalizer | None = None) -> None:
        super().__init__()
        if not 0 <= agent < actor.n_agents:
            raise ValueError(f"agent must be in [0, {actor.n_agents}), got {agent}")
        self.actor, self.agent, self.discrete = actor, agent, discrete
        self.n_agents = actor.n_agents
        self.shared_mlp = isinstance(actor, SharedMLPPolicy)
        self.register_buffer("agent_id", torch.nn.functional.one_hot(torch.tensor(agent), actor.n_agents).float())
        self.register_buffer("obs_mean", torch.zeros(actor.obs_dim) if normalizer is None
                             else normalizer.mean[agent].detach().clone())
        self.register_buffer("obs_std", torch.ones(actor.obs_dim) if normalizer is None
                             else normalizer.std[agent].detach().clone())

    def raw(self, obs: Tensor, z: Tensor) -> Tensor:
        """Unclipped actions or logits ``[B, A]``."""
        obs = (obs - self.obs_mean) / self.obs_std
        if self.shared_mlp:
            x = torch.cat([self.agent_id.to(obs.dtype).expand(obs.shape[0], -1), obs, z], dim=-1)
            return self.actor.net(x)
        b = obs.shape[0]
        all_obs = obs.new_zeros(b, self.n_agents, obs.shape[-1])
        all_z = z.new_zeros(b, self.n_agents, z.shape[-1])
        all_obs[:, self.agent] = obs
        all_z[:, self.agent] = z
        return self.actor(all_obs, all_z)[:, self.agent]

    def forward(self, obs: Tensor, z: Tensor, legal: Tensor | None = None) -> Tensor:
        out = self.raw(obs, z)
        if not self.discrete:
            return out.clamp(-1.0, 1.0)
        if legal is not None:
            out = out.masked_fill(~legal, float("-inf"))
        return torch.nn.functional.one_hot(out.argmax(-1), out.shape[-1]).to(obs.dtype)


def load_student(ckpt: str | Path) -> OneStepStudent:
    """The student of a checkpoint (``OneStepStudent.load_from_checkpoint``, which needs no teacher), in eval mode."""
    path = Path(ckpt)
    if not path.is_file():
        raise InputError(f"--ckpt {path} not found: train a student first "
                         "(python -m macflow fit --config configs/coordination/student.yaml)")
    checkpoint = read_checkpoint(path, "--ckpt")
    hparams = checkpoint.get("hyper_parameters", {})
    class_path = hparams.get("_class_path", "macflow.modules.student.OneStepStudent")
    if "teacher_ckpt" not in hparams or not class_path.endswith("OneStepStudent"):
        raise InputError(f"--ckpt {path} is not a OneStepStudent checkpoint (class {class_path}): export works on "
                         "students (python -m macflow fit --config configs/coordination/student.yaml writes one)")
    weights_only = _loads_with_weights_only(path)
    return OneStepStudent.load_from_checkpoint(path, map_location="cpu", weights_only=weights_only).eval()


def _loads_with_weights_only(path: Path) -> bool:
    """Whether ``path`` loads with ``weights_only=True`` (hparams holding classes, a student built in Python, need
    the full unpickler)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return False
    return True


def agent_policies(student: OneStepStudent) -> list[AgentPolicy]:
    normalizer = student.obs_normalizer if isinstance(student.obs_normalizer, ObservationNormalizer) else None
    return [AgentPolicy(student.actor, i, student.discrete, normalizer).eval() for i in range(student.n_agents)]


def example_inputs(student: OneStepStudent, batch: int = 2) -> tuple[Tensor, ...]:
    inputs: tuple[Tensor, ...] = (torch.zeros(batch, student.obs_dim), torch.zeros(batch, student.noise_dim))
    if student.discrete:
        inputs += (torch.ones(batch, student.action_dim, dtype=torch.bool),)
    return inputs


def input_names(student: OneStepStudent) -> list[str]:
    return ["obs", "z", "legal"] if student.discrete else ["obs", "z"]


def export_agent(policy: AgentPolicy, student: OneStepStudent, path: Path, fmt: Literal["onnx", "torchscript"]
                 ) -> None:
    inputs = example_inputs(student)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(policy, inputs), str(path))
            return
        try:
            import onnx  # noqa: F401  (the legacy exporter needs it to write the model)
        except ImportError:
            raise InputError("--format onnx needs the optional export extra (onnx, onnxruntime): "
                             "pip install 'macflow[export]', or use --format torchscript") from None
        names = input_names(student)
        torch.onnx.export(policy, inputs, str(path), input_names=names, output_names=["action"],
                          dynamic_axes={n: {0: "batch"} for n in [*names, "action"]}, opset_version=17, dynamo=False)


def export(ckpt: str | Path, fmt: Literal["onnx", "torchscript"], out: str | Path | None = None) -> list[Path]:
    """Export every agent's policy of the student in ``ckpt``; returns the written policy files."""
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"format must be onnx or torchscript, got {fmt!r}")
    student = load_student(ckpt)
    out = Path(out) if out is not None else Path(ckpt).with_suffix("").parent / f"{Path(ckpt).stem}_{fmt}"
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    names = [f"agent_{policy.agent}{suffix}" for policy in agent_policies(student)]
    manifest = {
        "format": fmt, "checkpoint": str(ckpt), "n_agents": student.n_agents, "obs_dim": student.obs_dim,
        "action_dim": student.action_dim, "noise_dim": student.noise_dim, "noise": student.hparams.noise,
        "discrete": student.discrete, "inputs": input_names(student), "output": "action", "files": names,
        "usage": ("agent i: action_i = policy_i(obs_i, z_i" + (", legal_i)" if student.discrete else ")")
                  + ("; z ~ N(0, I) of size n_agents * action_dim, the SAME draw for every agent (shared seed)"
                     if student.hparams.noise == "shared" else "; z_i ~ N(0, I) of size action_dim, per agent")),
    }

    def write(folder: Path) -> None:
        for policy, name in zip(agent_policies(student), names):
            export_agent(policy, student, folder / name, fmt)
        (folder / "policy.json").write_text(json.dumps(manifest, indent=2) + "\n")

    write_folder_atomically(out, write)
    return [out / name for name in names]


def write_folder_atomically(out: Path, write: Callable[[Path], object]) -> None:
    """Fill a temporary folder beside ``out`` through ``write(folder)`` and fsync its files; then rename it to
    ``out``, or, where ``out`` already exists, move each new file over its old one (``policy.json`` last), leaving
    any other file there alone. A failed export leaves no partial folder or file, and an earlier export whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        write(tmp)
        files = sorted(tmp.iterdir(), key=lambda f: f.name == "policy.json")
        for file in files:
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if out.is_dir():
            for file in files:
                os.replace(file, out / file.name)
            fsync_dir(out)
        else:
            tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; an export folder is as mkdir makes it
            fsync_dir(tmp)
            tmp.rename(out)
        fsync_dir(out.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m macflow export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a OneStepStudent checkpoint (e.g. runs/.../final.ckpt)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    parser.add_argument("--out", default=None, help="output folder (default: <ckpt folder>/<ckpt name>_<format>)")
    args = parser.parse_args(argv)
    files = export(args.ckpt, args.format, args.out)
    print(f"exported {len(files)} agent policies ({args.format}) to {files[0].parent}: "
          + ", ".join(p.name for p in files) + ", policy.json")


if __name__ == "__main__":
    main()
