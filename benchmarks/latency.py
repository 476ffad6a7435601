"""Decision latency: one environment step (actions for all N agents) for every method, in one interleaved run.

    OMP_NUM_THREADS=1 python benchmarks/latency.py                      # CPU, one thread -> docs/speed.md
    python benchmarks/latency.py --device cuda                          # when a GPU is at hand

Networks are the coordination benchmark's, read from configs/coordination/*.yaml when the script runs: the
student, Gaussian BC and TD3+BC actors all get the student's policy MLP widths; the teacher and the diffusion
denoiser are the teacher's agent-attention network. Latency does not depend on the weights, so the models are freshly initialised (no
training needed). The exported student is the TorchScript / ONNX (onnxruntime, one intra-op thread) per-agent
policies of ``python -m macflow export``, run one agent after the other as N decentralised agents would on one core.
With ``--sections paper`` (in the default run on CPU): the student's deployment paths at the paper's shapes (4x512
actor; MPE spread N = 3 and HalfCheetah 2x3 dims), numpy in and numpy out, against ``act`` of the code at
``--baseline`` (default 1d371a1), imported from a ``git archive`` beside this code. With ``--sections smax``: the
discrete methods at the networks of configs/smax/ on SMAX maps of 3, 5 and 10 agents (their observation and action
sizes), with legal-action masks.

Method (``macflow.experiments.latency.measure``, which also times a grid's trained models): every (method, batch
size) is warmed up, then timed in ``--repeats`` rounds; in each round every method runs in turn (interleaved, so
drift on a shared machine hits all methods alike) for enough calls to last ``--min-time`` seconds. The table
gives the median time per decision; the ratios are taken within this one run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from macflow.experiments.latency import machine, measure  # noqa: E402
from macflow.export import agent_policies, export_agent  # noqa: E402
from macflow.modules import (  # noqa: E402
    MATD3BC,
    AgentAttentionVectorField,
    AgentMixerVectorField,
    DiffusionPolicy,
    FlowTeacher,
    GaussianBC,
    OneStepStudent,
    SharedMLPPolicy,
)


def coordination_networks() -> tuple[tuple[int, ...], dict]:
    """Actor widths (the student's policy in configs/coordination/student.yaml, used for every actor) and the
    teacher's AgentAttentionVectorField settings (configs/coordination/teacher.yaml), as the configs are now."""
    import yaml

    student = yaml.safe_load((REPO / "configs/coordination/student.yaml").read_text())["model"]["init_args"]
    teacher = yaml.safe_load((REPO / "configs/coordination/teacher.yaml").read_text())["model"]["init_args"]
    return tuple(student["actor"]["init_args"]["hidden_dims"]), dict(teacher["vector_field"].get("init_args", {}))


HIDDEN, FIELD = coordination_networks()
TEACHER_STEPS = (1, 2, 5, 10)
DIFFUSION_STEPS = (50, 100, 200)


def write_section(path: Path, name: str, body: str, title: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {title}\n"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_methods(n_agents: int, obs_dim: int, action_dim: int, device: str, exported: bool
                  ) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Name -> ``act(obs [B, N, O]) -> actions`` for every method, on ``device``."""
    dims = dict(n_agents=n_agents, obs_dim=obs_dim, action_dim=action_dim, state_dim=0)
    field = lambda o, a, n: AgentAttentionVectorField(o, a, n, **FIELD)  # noqa: E731
    student = OneStepStudent(teacher_ckpt="unused", noise="shared",
                             actor=lambda o, a, n, z: SharedMLPPolicy(o, a, n, z, hidden_dims=HIDDEN), **dims)
    gaussian = GaussianBC(hidden_dims=HIDDEN, **dims)
    td3bc = MATD3BC(hidden_dims=HIDDEN, **dims)
    teacher = FlowTeacher(vector_field=field, **dims)
    diffusion = {k: DiffusionPolicy(denoiser=field, diffusion_steps=k, **dims) for k in DIFFUSION_STEPS}
    for m in (student, gaussian, td3bc, teacher, *diffusion.values()):
        m.to(device).eval()
    methods: dict[str, Callable] = {
        "MAC-Flow student (module act)": lambda obs: student.act(obs),
        "Gaussian BC (mean)": lambda obs: gaussian.act(obs),
        "MA-TD3+BC actor": lambda obs: td3bc.act(obs),
    }
    if exported and device == "cpu":
        methods.update(exported_student(student))
    for k in TEACHER_STEPS:
        methods[f"teacher, K={k} Euler steps"] = lambda obs, k=k: teacher.act(obs, steps=k)
    for k, model in diffusion.items():
        methods[f"diffusion (DDPM), K={k}"] = lambda obs, m=model: m.act(obs)
    return methods


def exported_student(student: OneStepStudent) -> dict[str, Callable]:
    """TorchScript and (if onnxruntime is installed) ONNX per-agent policies, run agent after agent."""
    out: dict[str, Callable] = {}
    folder = Path(tempfile.mkdtemp(prefix="macflow_export_"))
    policies = agent_policies(student)
    scripted = []
    for p in policies:
        export_agent(p, student, folder / f"agent_{p.agent}.pt", "torchscript")
        scripted.append(torch.jit.load(str(folder / f"agent_{p.agent}.pt")))
    n, noise_dim = student.n_agents, student.noise_dim

    def run_scripted(obs: torch.Tensor) -> torch.Tensor:
        z = torch.randn(obs.shape[0], n * student.action_dim).view(obs.shape[0], -1)  # one shared draw
        return torch.stack([f(obs[:, i], z) for i, f in enumerate(scripted)], 1)

    if noise_dim == n * student.action_dim:
        out["student exported, TorchScript"] = run_scripted
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError:
        print("onnx / onnxruntime not installed: skipping the ONNX row (pip install onnx onnxruntime)")
        return out
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    sessions = []
    for p in policies:
        export_agent(p, student, folder / f"agent_{p.agent}.onnx", "onnx")
        sessions.append(ort.InferenceSession(str(folder / f"agent_{p.agent}.onnx"), options,
                                             providers=["CPUExecutionProvider"]))

    def run_onnx(obs: torch.Tensor) -> torch.Tensor:
        o = obs.numpy()
        z = torch.randn(obs.shape[0], n * student.action_dim).numpy()
        return torch.stack([torch.from_numpy(s.run(None, {"obs": o[:, i], "z": z})[0]) for i, s in enumerate(sessions)],
                           1)

    out["student exported, ONNX Runtime"] = run_onnx
    return out


# ------------------------------------------------------------------------------------------- paper-scale shapes
PAPER_TASKS = {"MPE spread N=3": (3, 18, 2), "HalfCheetah 2x3": (2, 12, 3)}  # (n_agents, obs_dim, action_dim)
PAPER_HIDDEN = (512, 512, 512, 512)


def baseline_classes(commit: str) -> tuple[type, type]:
    """``(OneStepStudent, SharedMLPPolicy)`` of the code at ``commit`` (``git archive`` into a temp folder), imported
    beside this code's macflow: its modules are loaded under the ``macflow`` name, kept by the classes, then this
    code's modules are put back."""
    import importlib
    import io
    import subprocess
    import tarfile

    folder = Path(tempfile.mkdtemp(prefix=f"macflow_{commit[:8]}_"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, "macflow"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    ours = {k: v for k, v in sys.modules.items() if k == "macflow" or k.startswith("macflow.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(folder))
    try:
        modules = importlib.import_module("macflow.modules")
        return modules.OneStepStudent, modules.SharedMLPPolicy
    finally:
        sys.path.remove(str(folder))
        for k in [k for k in sys.modules if k == "macflow" or k.startswith("macflow.")]:
            del sys.modules[k]
        sys.modules.update(ours)


def paper_methods(n: int, obs_dim: int, action_dim: int, baseline: tuple[type, type], commit: str,
                  threads: int) -> tuple[dict[str, Callable], float]:
    """Name -> ``decide(obs numpy [B, N, O]) -> actions numpy [B, N, A]`` for every deployment path of one student
    (4x512 actor, ``noise: independent``), and the same student in the baseline code's ``act``; and the largest
    action difference of the int8 path from the baseline's actions."""
    import numpy as np
    import onnxruntime as ort

    from macflow.export import NumpyTeamPolicy

    dims = dict(n_agents=n, obs_dim=obs_dim, action_dim=action_dim, state_dim=0)
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused", noise="independent",
                             actor=lambda o, a, k, z: SharedMLPPolicy(o, a, k, z, hidden_dims=PAPER_HIDDEN),
                             **dims).eval()
    old_cls, old_actor = baseline
    old = old_cls(teacher_ckpt="unused", noise="independent",
                  actor=lambda o, a, k, z: old_actor(o, a, k, z, hidden_dims=PAPER_HIDDEN), **dims).eval()
    old.load_state_dict(student.state_dict())

    def act_of(model: OneStepStudent) -> Callable:
        return lambda obs: model.act(torch.from_numpy(obs)).numpy()

    methods: dict[str, Callable] = {f"`OneStepStudent.act` at {commit} (numpy -> torch -> numpy)": act_of(old),
                                    "`OneStepStudent.act`, this code": act_of(student)}
    folder = Path(tempfile.mkdtemp(prefix="macflow_export_"))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions, scripted = [], []
    for p in agent_policies(student):
        export_agent(p, student, folder / f"agent_{p.agent}.onnx", "onnx")
        export_agent(p, student, folder / f"agent_{p.agent}.pt", "torchscript")
        sessions.append(ort.InferenceSession(str(folder / f"agent_{p.agent}.onnx"), options,
                                             providers=["CPUExecutionProvider"]))
        scripted.append(torch.jit.load(str(folder / f"agent_{p.agent}.pt")))
    rng = np.random.default_rng(0)

    def per_agent_onnx(obs):
        z = rng.standard_normal((obs.shape[0], n, action_dim), dtype=np.float32)
        return np.stack([s.run(None, {"obs": obs[:, i], "z": z[:, i]})[0] for i, s in enumerate(sessions)], 1)

    def per_agent_script(obs):
        z = torch.randn(obs.shape[0], n, action_dim)
        o = torch.from_numpy(obs)
        return torch.stack([f(o[:, i], z[:, i]) for i, f in enumerate(scripted)], 1).numpy()

    methods["per-agent TorchScript, N calls"] = per_agent_script
    methods["per-agent ONNX Runtime, N calls"] = per_agent_onnx
    for backend in ("eager", "onnxruntime", "inductor", "onnxruntime-int8"):
        methods[f"team `NumpyTeamPolicy`, {backend}"] = NumpyTeamPolicy(student, backend, threads=threads)
    check = np.random.default_rng(1).standard_normal((4, n, obs_dim), dtype=np.float32)
    z = np.random.default_rng(2).standard_normal((4, n, action_dim), dtype=np.float32)
    want = old.act(torch.from_numpy(check), z=torch.from_numpy(z)).numpy()
    for backend in ("eager", "onnxruntime", "inductor"):
        got = methods[f"team `NumpyTeamPolicy`, {backend}"](check, z)
        if not np.allclose(got, want, atol=1e-4):
            raise AssertionError(f"team policy ({backend}) differs from the baseline act by "
                                 f"{np.abs(got - want).max():.2e}")
    int8_error = float(np.abs(methods["team `NumpyTeamPolicy`, onnxruntime-int8"](check, z) - want).max())
    if int8_error > 0.05:
        raise AssertionError(f"the int8 team policy differs from the baseline act by {int8_error:.3f}")
    return methods, int8_error


def paper_latency(args: argparse.Namespace, start: float) -> list[str]:
    import numpy as np

    baseline = baseline_classes(args.baseline)
    ref = f"`OneStepStudent.act` at {args.baseline} (numpy -> torch -> numpy)"
    lines = [f"## Decision latency at the paper's shapes (cpu, {args.threads} thread{'s' * (args.threads > 1)})", "",
             f"Command: `{args.command}` (from the repository root). Machine: {machine('cpu')}.", "",
             "One decision of the whole team from numpy observations to numpy actions (noise drawn inside), "
             f"median over {args.repeats} interleaved rounds, in ms. Student actor `SharedMLPPolicy` 4x512, "
             f"`noise: independent`, untrained weights. The baseline row is `act` of the code at `{args.baseline}` "
             "(imported from a `git archive` beside this code, same weights). Team rows: "
             "`macflow.export.NumpyTeamPolicy` (all agents in one call); per-agent rows: the files of "
             "`python -m macflow export`, one call per agent. Every team backend is checked to give the baseline "
             "`act`'s actions for the same noise before timing; the int8 path (weights quantised to int8) is "
             "checked to stay within 0.05 of them and its largest difference is given below its table. Every path, "
             f"the baseline's included, runs on {args.threads} thread(s).", ""]
    for task, (n, o, a) in PAPER_TASKS.items():
        methods, int8_error = paper_methods(n, o, a, baseline, args.baseline, args.threads)
        results = {}
        for b in args.batch_sizes:
            obs = np.random.default_rng(b).standard_normal((b, n, o), dtype=np.float32)
            results[b] = measure(methods, obs, args.repeats, args.min_time)
            print(f"{task} B={b} done ({time.time() - start:.0f} s)", flush=True)
        lines += [f"### {task} (obs {o}, action {a})", ""]
        lines += latency_table(results, "path", "speed-up vs baseline act",
                               lambda r, name: f"{r[ref] / r[name]:.2f}×")
        lines += ["", f"Largest action difference of the int8 path from the baseline's (actions in [-1, 1]): "
                      f"{int8_error:.4f}.", ""]
    return lines + [f"Total time of this section {time.time() - start:.0f} s."]


SMAX_MAPS = {"3m": (3, 75, 8), "5m_vs_6m": (5, 140, 11), "10m_vs_11m": (10, 270, 16)}
"""SMAX map -> (allies, obs per agent, actions per agent): obs = 13 per other unit + 10 own, actions 5 + enemies."""
SMAX_ACTOR = (256, 256)
SMAX_FIELD = {"width": 128, "depth": 2, "heads": 4}
"""The student / categorical BC actor and the teacher / diffusion network of configs/smax/."""


def smax_methods(n: int, obs_dim: int, n_actions: int) -> dict[str, Callable]:
    """Name -> ``decide(obs [B, N, O]) -> one-hot legal actions`` for the discrete methods of configs/smax/."""
    from macflow.export import NumpyTeamPolicy

    dims = dict(n_agents=n, obs_dim=obs_dim, action_dim=n_actions, state_dim=0, discrete=True)
    field = lambda o, a, k: AgentMixerVectorField(o, a, k, **SMAX_FIELD)  # noqa: E731
    torch.manual_seed(0)
    student = OneStepStudent(teacher_ckpt="unused", noise="shared",
                             actor=lambda o, a, k, z: SharedMLPPolicy(o, a, k, z, hidden_dims=SMAX_ACTOR), **dims)
    bc = GaussianBC(hidden_dims=SMAX_ACTOR, **dims)
    teacher = FlowTeacher(vector_field=field, flow_steps=10, **dims)
    diffusion = DiffusionPolicy(denoiser=field, diffusion_steps=100, **dims)
    for m in (student, bc, teacher, diffusion):
        m.eval()
    legal: dict[int, torch.Tensor] = {}

    def mask(obs: torch.Tensor) -> torch.Tensor:
        """Every action legal but the last (an attack on a dead enemy), so the mask is really applied."""
        if obs.shape[0] not in legal:
            legal[obs.shape[0]] = torch.ones(obs.shape[0], n, n_actions, dtype=torch.bool)
            legal[obs.shape[0]][..., -1] = False
        return legal[obs.shape[0]]

    team = NumpyTeamPolicy(student, "onnxruntime")
    return {
        "MAC-Flow student (module act)": lambda obs: student.act(obs, mask(obs)),
        "MAC-Flow student, team onnxruntime (numpy)": lambda obs: team(obs.numpy(), legal=mask(obs).numpy()),
        "categorical BC (module act)": lambda obs: bc.act(obs, mask(obs)),
        "teacher, K=10 Euler steps": lambda obs: teacher.act(obs, mask(obs)),
        "diffusion (DDPM), K=100": lambda obs: diffusion.act(obs, mask(obs)),
    }


def smax_latency(args: argparse.Namespace, start: float) -> list[str]:
    ref, diff = "MAC-Flow student (module act)", "diffusion (DDPM), K=100"
    lines = ["## Decision latency on SMAX maps (cpu)", "",
             f"Command: `{args.command}` (from the repository root). Machine: {machine('cpu')}.", "",
             "One decision of the whole team with legal-action masks (one-hot legal actions out), median over "
             f"{args.repeats} interleaved rounds, in ms. Networks of configs/smax/: student and categorical BC a "
             f"shared {'x'.join(map(str, SMAX_ACTOR))} MLP; teacher (K = 10) and diffusion denoiser (DDPM, K = 100) "
             f"an AgentMixerVectorField {SMAX_FIELD}. Untrained weights (cost does not depend on them); the maps' "
             "observation and action sizes (obs = 13 features per other unit + 10 own; actions = 5 moves and stop + "
             "one attack per enemy).", ""]
    for name, (n, o, a) in SMAX_MAPS.items():
        methods = smax_methods(n, o, a)
        results = {}
        for b in args.batch_sizes:
            results[b] = measure(methods, torch.randn(b, n, o), args.repeats, args.min_time)
            print(f"{name} B={b} done ({time.time() - start:.0f} s)", flush=True)
        lines += [f"### {name}: {n} agents (obs {o}, {a} actions)", ""]
        lines += latency_table(results, "method", "× student", lambda r, m: f"{r[m] / r[ref]:.2f}")
        lines.append("")
        for b in args.batch_sizes:
            ratio = results[b][diff] / results[b][ref]
            lines.append(f"- batch {b}: 100-step diffusion / student = **{ratio:.0f}×** (target ≥ 14.5: "
                         f"{'met' if ratio >= 14.5 else 'missed'}).")
        lines.append("")
    return lines + [f"Total time of this section {time.time() - start:.0f} s."]


def latency_table(results: dict[int, dict[str, float]], first: str, ratio_header: str,
                  ratio: Callable[[dict[str, float], str], str]) -> list[str]:
    """Markdown rows: each method's time per batch size (``results[batch][method]`` in s), then ``ratio`` cells."""
    batches = list(results)
    lines = [f"| {first} | " + " | ".join(f"batch {b} (ms)" for b in batches) + " | "
             + " | ".join(f"{ratio_header}, batch {b}" for b in batches) + " |", "|---" * (1 + 2 * len(batches)) + "|"]
    for name in results[batches[0]]:
        cells = [fmt_time(results[b][name]) for b in batches] + [ratio(results[b], name) for b in batches]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines

def fmt_time(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n-agents", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-export", action="store_true", help="leave out the exported-student rows")
    parser.add_argument("--out", type=Path, default=None,
                        help="write every section here (default: methods and paper to docs/speed.md, smax to "
                             "docs/results_smax.md)")
    parser.add_argument("--sections", nargs="+", default=["methods", "paper"], choices=["methods", "paper", "smax"],
                        help="methods: every method at the coordination networks; paper: the student's deployment "
                             "paths at the paper's 4x512 shapes vs --baseline (cpu only); smax: the discrete "
                             "methods on SMAX maps of 3, 5 and 10 agents (cpu only)")
    parser.add_argument("--baseline", default="1d371a1", help="commit whose act the paper section compares against")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    command = f"OMP_NUM_THREADS={args.threads} python benchmarks/latency.py" + ("" if sys.argv[1:] == [] else " " + " ".join(sys.argv[1:]))
    args.command = command
    start = time.time()
    if "paper" in args.sections and args.device == "cpu":
        body = "\n".join(paper_latency(args, start))
        print(body)
        out = args.out or REPO / "docs/speed.md"
        write_section(out, "latency-paper-cpu" + (f"-{args.threads}t" if args.threads > 1 else ""), body, "Speed")
        print(f"wrote {out}")
    if "smax" in args.sections and args.device == "cpu":
        start = time.time()
        body = "\n".join(smax_latency(args, start))
        print(body)
        out = args.out or REPO / "docs/results_smax.md"
        write_section(out, "latency-smax-cpu", body, "SMAX results")
        print(f"wrote {out}")
    if "methods" not in args.sections:
        return
    start = time.time()
    lines = [f"## Decision latency ({args.device})", "",
             f"Command: `{command}` (from the repository root). Machine: {machine(args.device)}.", "",
             "Time for one decision of the whole team (actions of all N agents), median over "
             f"{args.repeats} interleaved rounds, in ms. Coordination-benchmark networks from configs/coordination/: "
             f"every actor a shared {'x'.join(map(str, HIDDEN))} MLP; the teacher and the diffusion denoiser an "
             f"AgentAttentionVectorField {FIELD}; obs_dim 3, action_dim 2. Untrained weights (cost does not depend "
             "on them).",
             ""]
    for n in args.n_agents:
        methods = build_methods(n, 3, 2, args.device, not args.no_export)
        results = {}
        for b in args.batch_sizes:
            obs = torch.randn(b, n, 3, device=args.device)
            results[b] = measure(methods, obs, args.repeats, args.min_time, args.device)
            print(f"N={n} B={b} done ({time.time() - start:.0f} s)", flush=True)
        header = "| method | " + " | ".join(f"batch {b} (ms)" for b in args.batch_sizes) + " | " + " | ".join(
            f"× student, batch {b}" for b in args.batch_sizes) + " |"
        lines += [f"### N = {n} agents", "", header, "|---" * (1 + 2 * len(args.batch_sizes)) + "|"]
        ref = "MAC-Flow student (module act)"
        for name in methods:
            cells = [fmt_time(results[b][name]) for b in args.batch_sizes]
            cells += [f"{results[b][name] / results[b][ref]:.2f}" for b in args.batch_sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        for b in args.batch_sizes:
            r = results[b]
            gauss = r[ref] / r["Gaussian BC (mean)"]
            diff = r["diffusion (DDPM), K=100"] / r[ref]
            t10 = r["teacher, K=10 Euler steps"] / r[ref]
            lines.append(f"- batch {b}: student / Gaussian BC = **{gauss:.2f}×** (target ≤ 1.2: "
                         f"{'met' if gauss <= 1.2 else 'missed'}); 100-step diffusion / student = **{diff:.0f}×** "
                         f"(target ≥ 50: {'met' if diff >= 50 else 'missed'}); 10-step teacher / student = {t10:.1f}×.")
        lines.append("")
    lines.append(f"Total benchmark time {time.time() - start:.0f} s.")
    body = "\n".join(lines)
    print(body)
    out = args.out or REPO / "docs/speed.md"
    write_section(out, f"latency-{args.device}", body, "Speed")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
