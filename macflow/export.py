"""``python -m macflow export``: a trained student as per-agent policies that run without Lightning (or Python).

    python -m macflow export --ckpt runs/coordination/student/seed0/final.ckpt --format onnx --out exported/
    python -m macflow export --ckpt runs/coordination/student/seed0/final.ckpt --format torchscript

With ``--team`` it also writes ``team.onnx`` / ``team.pt``, the whole team in one call
(:class:`TeamPolicy`, ``(obs [B, N, O], z [B, N, noise_dim]) -> [B, N, A]``) for simulation and evaluation;
:class:`NumpyTeamPolicy` runs it from numpy to numpy with its noise drawn, the fast batch-1 path.

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
import io
import json
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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


class TeamPolicy(nn.Module):
    """The whole team's decision in one call: ``(obs [B, N, O], z [B, N, noise_dim]) -> actions [B, N, A]``.

    Exactly :meth:`OneStepStudent.act` given the same noise (observation statistics applied, actions clipped, or
    the best legal one-hot action when discrete), as a plain module without Lightning, for simulation and
    evaluation, where one process decides for every agent. ``legal [B, N, A]`` (bool) is read when discrete.
    """

    def __init__(self, student: OneStepStudent) -> None:
        super().__init__()
        self.actor, self.discrete = student.actor, student.discrete
        normalizer = student.obs_normalizer if isinstance(student.obs_normalizer, ObservationNormalizer) else None
        shape = (student.n_agents, student.obs_dim)
        self.register_buffer("obs_mean", torch.zeros(shape) if normalizer is None else normalizer.mean.detach().clone())
        self.register_buffer("obs_std", torch.ones(shape) if normalizer is None else normalizer.std.detach().clone())

    def forward(self, obs: Tensor, z: Tensor, legal: Tensor | None = None) -> Tensor:
        out = self.actor((obs - self.obs_mean) / self.obs_std, z)
        if not self.discrete:
            return out.clamp(-1.0, 1.0)
        if legal is not None:
            out = out.masked_fill(~legal, float("-inf"))
        return torch.nn.functional.one_hot(out.argmax(-1), out.shape[-1]).to(obs.dtype)


Backend = Literal["onnxruntime", "onnxruntime-int8", "inductor", "eager"]


class NumpyTeamPolicy:
    """A batch-1 (or batched) team decision from numpy to numpy: ``policy(obs [N, O] or [B, N, O]) -> actions``.

    The noise follows the student's ``eval_noise`` (``fresh``: a new draw from ``seed``'s numpy generator at every
    call; ``zero``; ``fixed``: one draw reused at every call) and its ``noise`` mode (``shared``: every agent reads
    the whole joint draw), unless ``z`` is given (``[N, noise_dim]`` or ``[B, N, noise_dim]``). Backends:

    * ``onnxruntime``: the :class:`TeamPolicy` exported to ONNX and run by one session of ``threads`` threads;
    * ``onnxruntime-int8``: the same graph with its matrix weights quantised to int8 per output channel and its
      activations to uint8 at each call (onnxruntime's dynamic quantisation): the weights take a quarter of the
      memory and stay in cache, so a small-batch decision is several times faster, at the price of actions that
      differ from the module's by quantisation error (measured in docs/speed.md);
    * ``inductor``: ``torch.compile`` with inductor freezing (weights folded into the compiled code), one graph per
      batch size;
    * ``eager``: the :class:`TeamPolicy` under ``torch.inference_mode``.

    Args:
        student: the trained student (only its actor and observation statistics are used).
        backend: how the network runs.
        threads: intra-op threads of the onnxruntime session.
        seed: seed of the numpy generator that draws fresh noise.
    """

    def __init__(self, student: OneStepStudent, backend: Backend = "onnxruntime", threads: int = 1,
                 seed: int = 0) -> None:
        import numpy as np

        self.n_agents, self.action_dim, self.noise_dim = student.n_agents, student.action_dim, student.noise_dim
        self.shared = student.hparams.noise == "shared"
        self.eval_noise, self.discrete, self.backend = student.hparams.eval_noise, student.discrete, backend
        self.rng = np.random.default_rng(seed)
        self._fixed: dict[int, Any] = {}
        team = TeamPolicy(student).eval().requires_grad_(False)
        if backend in ("onnxruntime", "onnxruntime-int8"):
            self._run = self._onnx_runner(team, student, threads, quantize=backend == "onnxruntime-int8")
        elif backend == "inductor":
            self._run = self._inductor_runner(team)
        elif backend == "eager":
            self._run = self._eager_runner(team)
        else:
            raise ValueError(f"backend must be onnxruntime, onnxruntime-int8, inductor or eager, got {backend!r}")

    def __call__(self, obs: Any, z: Any = None, legal: Any = None) -> Any:
        import numpy as np

        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 2
        if single:
            obs = obs[None]
            z = None if z is None else np.asarray(z, dtype=np.float32)[None]
            legal = None if legal is None else np.asarray(legal, dtype=bool)[None]
        if z is None:
            z = self.noise(obs.shape[0])
        out = self._run(np.ascontiguousarray(obs), np.ascontiguousarray(z, dtype=np.float32), legal)
        return out[0] if single else out

    def noise(self, batch: int) -> Any:
        """Noise ``[B, N, noise_dim]`` for one call, as the student's ``eval_noise`` and ``noise`` say."""
        import numpy as np

        if self.eval_noise == "zero":
            return np.zeros((batch, self.n_agents, self.noise_dim), np.float32)
        if self.eval_noise == "fixed":
            if batch not in self._fixed:
                self._fixed[batch] = self._draw(np.random.default_rng(0), batch)
            return self._fixed[batch]
        return self._draw(self.rng, batch)

    def _draw(self, rng: Any, batch: int) -> Any:
        import numpy as np

        joint = rng.standard_normal((batch, self.n_agents, self.action_dim), dtype=np.float32)
        if not self.shared:
            return joint
        return np.broadcast_to(joint.reshape(batch, 1, -1), (batch, self.n_agents, self.noise_dim))

    def _eager_runner(self, team: TeamPolicy) -> Callable[..., Any]:
        def run(obs: Any, z: Any, legal: Any) -> Any:
            with torch.inference_mode():
                legal_t = None if legal is None else torch.from_numpy(legal)
                return team(torch.from_numpy(obs), torch.from_numpy(z), legal_t).numpy()
        return run

    def _inductor_runner(self, team: TeamPolicy) -> Callable[..., Any]:
        import torch._inductor.config as inductor_config

        compiled = torch.compile(team, dynamic=False)

        def run(obs: Any, z: Any, legal: Any) -> Any:
            with torch.inference_mode(), inductor_config.patch(freezing=True):
                legal_t = None if legal is None else torch.from_numpy(legal)
                return compiled(torch.from_numpy(obs), torch.from_numpy(z), legal_t).numpy()
        return run

    def _onnx_runner(self, team: TeamPolicy, student: OneStepStudent, threads: int, quantize: bool
                     ) -> Callable[..., Any]:
        try:
            import onnx  # noqa: F401  (the legacy exporter needs it to write the model)
            import onnxruntime as ort
        except ImportError:
            raise InputError("backend onnxruntime needs the optional export extra (onnx, onnxruntime): "
                             "pip install 'macflow[export]', or use backend inductor or eager") from None
        buffer = io.BytesIO()
        export_team(team, student, buffer, "onnx")
        model = quantized_int8(buffer.getvalue()) if quantize else buffer.getvalue()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = input_names(student)

        def run(obs: Any, z: Any, legal: Any) -> Any:
            feed = {"obs": obs, "z": z}
            if "legal" in names:
                import numpy as np
                feed["legal"] = np.ones((*obs.shape[:2], self.action_dim), bool) if legal is None else legal
            return session.run(None, feed)[0]
        return run


def quantized_int8(model: bytes) -> bytes:
    """``model`` (ONNX bytes) with int8 weights per output channel and uint8 activations quantised at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(model)
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process applies to conv nets
        try:
            quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(level)
        return target.read_bytes()


def team_example_inputs(student: OneStepStudent, batch: int = 2) -> tuple[Tensor, ...]:
    n = student.n_agents
    inputs: tuple[Tensor, ...] = (torch.zeros(batch, n, student.obs_dim), torch.zeros(batch, n, student.noise_dim))
    if student.discrete:
        inputs += (torch.ones(batch, n, student.action_dim, dtype=torch.bool),)
    return inputs


def export_team(team: TeamPolicy, student: OneStepStudent, path: Path | io.BytesIO,
                fmt: Literal["onnx", "torchscript"]) -> None:
    """Write ``team`` as one ONNX (opset 17, dynamic batch) or TorchScript file (or into a bytes buffer)."""
    inputs = team_example_inputs(student)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(team, inputs), path if isinstance(path, io.BytesIO) else str(path))
            return
        names = input_names(student)
        torch.onnx.export(team, inputs, path if isinstance(path, io.BytesIO) else str(path), input_names=names,
                          output_names=["action"], dynamic_axes={n: {0: "batch"} for n in [*names, "action"]},
                          opset_version=17, dynamo=False)

def export(ckpt: str | Path, fmt: Literal["onnx", "torchscript"], out: str | Path | None = None,
           team: bool = False) -> list[Path]:
    """Export every agent's policy of the student in ``ckpt`` (and with ``team`` the :class:`TeamPolicy` as
    ``team.onnx`` / ``team.pt``); returns the written policy files, the team file last."""
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
        **({"team": f"team{suffix}"} if team else {}),
        "usage": ("agent i: action_i = policy_i(obs_i, z_i" + (", legal_i)" if student.discrete else ")")
                  + ("; z ~ N(0, I) of size n_agents * action_dim, the SAME draw for every agent (shared seed)"
                     if student.hparams.noise == "shared" else "; z_i ~ N(0, I) of size action_dim, per agent")),
    }

    def write(folder: Path) -> None:
        for policy, name in zip(agent_policies(student), names):
            export_agent(policy, student, folder / name, fmt)
        if team:
            export_team(TeamPolicy(student).eval(), student, folder / f"team{suffix}", fmt)
        (folder / "policy.json").write_text(json.dumps(manifest, indent=2) + "\n")

    write_folder_atomically(out, write)
    return [out / name for name in names] + ([out / f"team{suffix}"] if team else [])


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
    parser.add_argument("--team", action="store_true",
                        help="also write team.onnx / team.pt: all agents in one call, (obs [B, N, O], z [B, N, Z])")
    args = parser.parse_args(argv)
    files = export(args.ckpt, args.format, args.out, args.team)
    print(f"exported {len(files)} agent policies ({args.format}) to {files[0].parent}: "
          + ", ".join(p.name for p in files) + ", policy.json")


if __name__ == "__main__":
    main()
