"""Training throughput: gradient steps/s of the teacher and the student, eager vs torch.compile, and vs N agents.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py          # -> docs/speed.md (section "throughput-cpu")

* Default networks (the modules' defaults: agent-attention teacher width 128 depth 2; student 3x256 MLP and a 2x3x256
  critic ensemble, K = 10 teacher Euler steps for distillation targets) at batch 256 on the coordination benchmark,
  through a real ``Trainer.fit`` (Lightning overhead included); eager, and with ``torch.compile`` of the networks
  (teacher: its ``compile`` flag; student: the actor and the critic compiled in place). Compile time is reported
  separately (first steps) from the steady-state rate.
* Steps/s vs N agents (3 .. 40) for both stages, to show how cost grows with the team.
* Paper scale (``--sections paper``): the official default shapes (4x512 networks, 2 critics, 10 flow steps, batch
  640; MPE spread N = 3 and HalfCheetah 2x3 dims), teacher and student steps timed by hand (training_step, backward,
  optimizer step, Polyak update; no Lightning loop) for the code of ``--baseline`` (default 1d371a1, unpacked by
  ``git archive`` into a temp folder) and the code as it is, each in its own worker process, in interleaved rounds;
  variants: eager / compiled, float32 / bf16 teacher targets / whole step under bf16 autocast (``bf16-mixed``); plus
  the per-part breakdown of the student step.
* Scaling: the agent-attention teacher trained with 40 agents on the coordination benchmark (``--scale-steps``
  steps, coordination-config network), with its flow loss and the share of coordinated joint samples.

Each rate is measured over ``--steps`` steps after ``--warmup`` steps, one thread.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer

REPO = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--worker") + 1]) if "--worker" in sys.argv else REPO  # whose macflow to time
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(REPO / "benchmarks"))

from latency import write_section  # noqa: E402

from macflow.datamodules import CoordinationDataModule  # noqa: E402
from macflow.envs.coordination import joint_mode, mode_points  # noqa: E402
from macflow.experiments.latency import machine  # noqa: E402
from macflow.modules import AgentAttentionVectorField, FlowTeacher, OneStepStudent  # noqa: E402
from macflow.modules.flow import flow_matching_loss  # noqa: E402


class StepTimer(Callback):
    """Wall-clock time of the first ``warmup`` steps and of the steps after them."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t_warm, self.t_end, self.steps = warmup, 0.0, 0.0, 0.0, 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == self.warmup:
            self.t_warm = time.perf_counter()
        self.t_end = time.perf_counter()
        self.steps = batch_idx + 1

    @property
    def rate(self) -> float:
        return (self.steps - self.warmup) / (self.t_end - self.t_warm)

    @property
    def warmup_seconds(self) -> float:
        return self.t_warm - self.t0


def quiet_trainer(max_steps: int, callbacks: list) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, max_steps=max_steps, limit_val_batches=0, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, callbacks=callbacks)


def data(n_agents: int, batch_size: int = 256) -> CoordinationDataModule:
    return CoordinationDataModule(n_agents=n_agents, batch_size=batch_size, n_samples=20_000)


def teacher_model(dm: CoordinationDataModule, compile: bool = False, **field) -> FlowTeacher:
    return FlowTeacher(vector_field=lambda o, a, n: AgentAttentionVectorField(o, a, n, **field), compile=compile,
                       n_agents=dm.n_agents, obs_dim=dm.obs_dim, action_dim=dm.action_dim, state_dim=dm.state_dim)


def student_model(dm: CoordinationDataModule, compile: bool = False) -> OneStepStudent:
    student = OneStepStudent(teacher_ckpt="unused (set below)", noise="shared", n_agents=dm.n_agents,
                             obs_dim=dm.obs_dim, action_dim=dm.action_dim, state_dim=dm.state_dim)
    teacher = teacher_model(dm).eval().requires_grad_(False)  # the default teacher (K = 10), untrained: same cost
    student.teacher = teacher  # load_teacher() keeps a teacher that is already there
    if compile:
        student.actor.compile()
        student.q.online.compile()
        teacher.vector_field.compile()
    return student


def rate(model, dm: CoordinationDataModule, warmup: int, steps: int) -> StepTimer:
    timer = StepTimer(warmup)
    quiet_trainer(warmup + steps, [timer]).fit(model, dm)
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 5, 10, 20, 40])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--scale-agents", type=int, default=40)
    parser.add_argument("--scale-steps", type=int, default=1500)
    parser.add_argument("--sections", nargs="+", default=["stages", "agents", "scale", "paper"],
                        choices=["stages", "agents", "scale", "paper"])
    parser.add_argument("--baseline", default="1d371a1", help="commit the paper-scale rows compare against")
    parser.add_argument("--paper-rounds", type=int, default=3)
    parser.add_argument("--paper-steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--paper-warmup", type=int, default=3, help="steps before timing (compilation included)")
    parser.add_argument("--out", type=Path, default=REPO / "docs/speed.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    command = "OMP_NUM_THREADS=1 python benchmarks/throughput.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:]))
    start = time.time()
    lines = ["## Training throughput (cpu)", "", f"Command: `{command}`. Machine: {machine('cpu')}.", "",
             f"Gradient steps per second through `Trainer.fit`, measured over {args.steps} steps after {args.warmup} "
             "warm-up steps; batch 256; coordination benchmark (N = 2 unless stated). Default networks: "
             "agent-attention teacher (width 128, depth 2); student 3x256 actor + 2x3x256 critic ensemble with "
             "10-step teacher targets.", ""]
    if "stages" in args.sections:
        lines += ["| stage | eager (steps/s) | torch.compile (steps/s) | compile warm-up (s) |", "|---|---|---|---|"]
    dm = data(2)
    for stage in ("teacher", "student") if "stages" in args.sections else ():
        build = (lambda c: teacher_model(dm, c)) if stage == "teacher" else (lambda c: student_model(dm, c))
        eager = rate(build(False), dm, args.warmup, args.steps)
        compiled_cell, warm_cell = "not run (--no-compile)", ""
        if not args.no_compile:
            try:
                compiled = rate(build(True), dm, args.warmup, args.steps)
                compiled_cell, warm_cell = f"{compiled.rate:.1f}", f"{compiled.warmup_seconds:.0f}"
            except Exception as err:  # noqa: BLE001 - report, do not hide, why compile failed here
                compiled_cell = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
        lines.append(f"| {stage} | {eager.rate:.1f} | {compiled_cell} | {warm_cell} |")
        print(lines[-1], f"({time.time() - start:.0f} s)", flush=True)

    if "agents" in args.sections:
        lines += ["", "### Steps/s vs number of agents (eager)", "",
                  "| N agents | teacher (steps/s) | student (steps/s) | teacher ms/step | student ms/step |",
                  "|---|---|---|---|---|"]
    for n in args.agents if "agents" in args.sections else ():
        dm = data(n)
        t = rate(teacher_model(dm), dm, args.warmup, max(args.steps // 2, 20))
        s = rate(student_model(dm), dm, args.warmup, max(args.steps // 2, 20))
        lines.append(f"| {n} | {t.rate:.1f} | {s.rate:.1f} | {1e3 / t.rate:.1f} | {1e3 / s.rate:.1f} |")
        print(lines[-1], f"({time.time() - start:.0f} s)", flush=True)

    if "scale" in args.sections:
        lines += scaling(args, start)
    if set(args.sections) - {"paper"}:
        lines += ["", f"Total benchmark time {time.time() - start:.0f} s."]
        body = "\n".join(lines)
        print(body)
        write_section(args.out, "throughput-cpu", body, "Speed")
        print(f"wrote {args.out}")
    if "paper" in args.sections:
        start = time.time()
        body = "\n".join(["## Training speed at the paper's shapes (cpu)", "", f"Command: `{command}`. Machine: "
                          f"{machine('cpu')}.", *paper_scale(args, start), "",
                          f"Total time of this section {time.time() - start:.0f} s."])
        print(body)
        write_section(args.out, "throughput-paper-cpu", body, "Speed")
        print(f"wrote {args.out}")


def scaling(args: argparse.Namespace, start: float) -> list[str]:
    n = args.scale_agents
    dm = data(n)
    dm.setup()
    torch.manual_seed(0)
    model = FlowTeacher(vector_field=lambda o, a, k: AgentAttentionVectorField(o, a, k, width=64, depth=2, heads=4),
                        lr=2e-3, lr_schedule="cosine", n_agents=n, obs_dim=dm.obs_dim, action_dim=dm.action_dim,
                        state_dim=dm.state_dim)
    batch = dm.data.gather(torch.arange(2048))
    with torch.no_grad():
        loss_before = float(torch.stack([flow_matching_loss(model.vector_field, batch["actions"], batch["obs"])
                                         for _ in range(5)]).mean())
    timer = StepTimer(args.warmup)
    quiet_trainer(args.scale_steps, [timer]).fit(model, dm)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        loss_after = float(torch.stack([flow_matching_loss(model.vector_field, batch["actions"], batch["obs"])
                                        for _ in range(5)]).mean())
        ctx = dm.contexts(1000, seed=7)
        acts = model.act(ctx["obs"])
        modes = joint_mode(acts, ctx["s"], 4)
        reward = float(dm.game.reward(ctx, acts).mean())
        # per-agent view: which mode's point each agent is nearest to, and how many agents agree with the majority
        dist = (acts[:, None] - mode_points(ctx["s"], n, 4)).norm(dim=-1)  # [B, M, N]
        nearest = dist.argmin(1)  # [B, N]
        majority = nearest.mode(1).values
        agree = float((nearest == majority[:, None]).float().mean())
        close = float((dist.gather(1, majority[:, None, None].expand(-1, 1, n)).squeeze(1) < 0.2).float().mean())
        factored = float(torch.stack([torch.randint(4, (n,)).bincount(minlength=4).max() for _ in range(2000)])
                         .float().mean()) / n
    share = torch.bincount(modes[modes >= 0], minlength=4).float() / len(modes)
    return ["", f"### Scaling: the agent-attention teacher with {n} agents", "",
              f"`FlowTeacher` (AgentAttentionVectorField width 64, depth 2, the coordination config's network; lr 2e-3 "
              f"cosine) trained {args.scale_steps} steps at batch 256 on `CoordinationDataModule(n_agents={n})` "
              f"(4 modes; a joint action counts as coordinated only when all {n} agents are within 0.2 of their point "
              f"of the same mode; a factored model would be coordinated 4^(1-{n}) of the time).", "",
              "| agents | steps/s | flow loss before → after | agents agreeing with their sample's majority mode "
              f"(independent agents: {factored:.0%}) | agents within 0.2 of that mode's point | all {n} coordinated | "
              "smallest mode share | mean reward (optimum 1) |", "|---|---|---|---|---|---|---|---|",
              f"| {n} | {timer.rate:.1f} | {loss_before:.3f} → {loss_after:.3f} | {agree:.1%} | {close:.1%} | "
              f"{float((modes >= 0).float().mean()):.1%} | {float(share.min()):.1%} | {reward:.3f} |"]


# ------------------------------------------------------------------------------------------- paper-scale shapes
PAPER_TASKS = {"MPE spread N=3": dict(n_agents=3, obs_dim=18, action_dim=2, state_dim=0),
               "HalfCheetah 2x3": dict(n_agents=2, obs_dim=12, action_dim=3, state_dim=17)}
PAPER_HIDDEN, PAPER_BATCH = (512, 512, 512, 512), 640
VARIANTS = {  # name -> (student options of the new code, step precision); the baseline code runs the first two
    "fp32 eager": ({}, "fp32"),
    "bf16-mixed eager": ({}, "bf16-mixed"),
    "fp32 compiled": ({"compile": True}, "fp32"),
    "fp32, bf16 targets": ({"target_precision": "bf16"}, "fp32"),
    "fp32 compiled, bf16 targets": ({"compile": True, "target_precision": "bf16"}, "fp32"),
    "bf16-mixed compiled": ({"compile": True}, "bf16-mixed"),
}
BASELINE_VARIANTS = ("fp32 eager", "bf16-mixed eager")


def paper_batch(dims: dict, batch_size: int = PAPER_BATCH) -> dict[str, torch.Tensor]:
    b, n, o, a, s = batch_size, dims["n_agents"], dims["obs_dim"], dims["action_dim"], dims["state_dim"]
    batch = {"obs": torch.randn(b, n, o), "next_obs": torch.randn(b, n, o), "actions": torch.rand(b, n, a) * 2 - 1,
             "rewards": torch.randn(b), "dones": (torch.rand(b) < 0.05).float()}
    if s:
        batch["state"], batch["next_state"] = torch.randn(b, s), torch.randn(b, s)
    return batch


class PaperCase:
    """One (task, variant) of one code version: teacher and student at the paper's shapes, and their step functions."""

    def __init__(self, task: str, variant: str) -> None:
        from macflow.modules import EnsembleCritic, PerAgentVectorField, SharedMLPPolicy

        options, self.precision = VARIANTS[variant]
        dims = PAPER_TASKS[task]
        torch.manual_seed(0)
        field = lambda o, a, n: PerAgentVectorField(o, a, n, hidden_dims=PAPER_HIDDEN)  # noqa: E731
        self.teacher = FlowTeacher(vector_field=field, flow_steps=10, compile=bool(options.get("compile")), **dims)
        self.student = OneStepStudent(
            teacher_ckpt="unused", noise="independent", flow_steps=10,
            actor=lambda o, a, n, z: SharedMLPPolicy(o, a, n, z, hidden_dims=PAPER_HIDDEN),
            critic=lambda o, a, n: EnsembleCritic(o, a, n, n_critics=2, hidden_dims=PAPER_HIDDEN), **options, **dims)
        frozen = FlowTeacher(vector_field=field, flow_steps=10, **dims).eval().requires_grad_(False)
        self.student.teacher = frozen
        for model in (self.teacher, self.student):
            if hasattr(model, "configure_model"):
                model.configure_model()
        self.optimizers = {"teacher": self.teacher.configure_optimizers(),
                           "student": self.student.configure_optimizers()}
        self.batch = paper_batch(dims)

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16-mixed")

    def step(self, stage: str) -> None:
        model, optimizer = getattr(self, stage), self.optimizers[stage]
        with self.autocast():
            loss = model.training_step(self.batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.update_targets()

    def parts(self) -> dict[str, Callable[[], object]]:
        """The student step cut into its parts (the new code's methods), each a callable to time."""
        student, batch = self.student, self.batch
        obs = batch["obs"]
        _, x_0 = student.draw_noise(obs.shape[0], obs.device)
        targets = student.distillation_targets(obs, x_0)

        def critic_update() -> None:
            with self.autocast():
                loss = student.critic_loss(batch)[0]
            loss.backward()

        def actor_update() -> None:
            student.distillation_targets = lambda o, x: targets  # the teacher's part is timed on its own
            try:
                with self.autocast():
                    loss = student.actor_loss(batch)[0]
                loss.backward()
            finally:
                del student.distillation_targets

        def teacher_targets() -> None:
            with self.autocast():
                student.distillation_targets(obs, x_0)

        def td_target() -> None:
            with self.autocast():
                student.td_target(batch)
        return {"teacher targets": teacher_targets, "TD target": td_target, "critic update": critic_update,
                "actor update": actor_update}


def worker() -> None:
    """``--worker CODE_DIR``: build and time :class:`PaperCase`s of the macflow in CODE_DIR, on request (JSON lines)."""
    import json
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    # one process holds every variant's compiled networks (a fit holds one): room for all their graphs
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.accumulated_recompile_limit = 4096
    cases: dict[str, PaperCase] = {}
    for line in sys.stdin:
        req = json.loads(line)
        try:
            reply = serve(cases, req)
        except Exception as err:  # noqa: BLE001 - the parent reports the failed variant and goes on
            reply = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"}
        print(json.dumps(reply), flush=True)


def serve(cases: dict, req: dict) -> dict:
    """One worker request: build a case (and warm it up), time its steps or its parts, or drop it."""
    key = f"{req['task']}|{req['variant']}"
    t0 = time.perf_counter()
    if req["cmd"] == "build":
        case = cases[key] = PaperCase(req["task"], req["variant"])
        for _ in range(req["warmup"]):
            case.step("teacher")
            case.step("student")
        reply = {"seconds": time.perf_counter() - t0}
    elif req["cmd"] == "time":
        case = cases[key]
        reply = {}
        for stage in ("teacher", "student"):
            t0 = time.perf_counter()
            for _ in range(req["steps"]):
                case.step(stage)
            reply[stage] = (time.perf_counter() - t0) / req["steps"]
    elif req["cmd"] == "parts":
        reply = {}
        for name, fn in cases[key].parts().items():
            fn()
            t0 = time.perf_counter()
            for _ in range(req["steps"]):
                fn()
            reply[name] = (time.perf_counter() - t0) / req["steps"]
        cases[key].student.zero_grad(set_to_none=True)
    else:  # drop
        cases.pop(key, None)
        reply = {}
    return reply


class Worker:
    """A ``--worker`` subprocess for one code folder."""

    def __init__(self, code: Path) -> None:
        import os
        import subprocess

        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(code)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)

    def ask(self, **request) -> dict:
        import json

        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker died on {request}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def baseline_code(commit: str) -> Path:
    """The repository at ``commit``, unpacked (``git archive``) into a temp folder."""
    import subprocess
    import tarfile

    folder = Path(tempfile.mkdtemp(prefix=f"macflow_{commit[:8]}_"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def paper_scale(args: argparse.Namespace, start: float) -> list[str]:
    from statistics import median

    base_dir = baseline_code(args.baseline)
    workers = {"baseline": Worker(base_dir), "new": Worker(REPO)}
    rows = [(code, v) for code in ("baseline", "new") for v in (BASELINE_VARIANTS if code == "baseline" else VARIANTS)]
    lines = ["",
             f"Official default shapes: teacher `PerAgentVectorField` 4x512, student `SharedMLPPolicy` 4x512 and "
             f"`EnsembleCritic` 2x4x512, 10 Euler steps for the distillation targets, batch {PAPER_BATCH}, "
             "`noise: independent`, Adam. One step = `training_step` (under `torch.autocast(bfloat16)` for "
             "bf16-mixed, as Lightning's `bf16-mixed` precision does), backward, optimizer step, Polyak update, "
             "timed by hand (no Lightning loop), one thread per process. Baseline = the code at "
             f"`{args.baseline}` (git archive in a temp folder), in its own worker process; median over "
             f"{args.paper_rounds} interleaved rounds of {args.paper_steps} steps each. Speed-up = baseline fp32 "
             "eager (teacher + student) time / this row's.", ""]
    parts_lines: list[str] = []
    try:
        for task in PAPER_TASKS:
            failed: dict[tuple[str, str], str] = {}
            for code, v in rows:
                w = workers[code].ask(cmd="build", task=task, variant=v, warmup=args.paper_warmup)
                if "error" in w:
                    failed[(code, v)] = w["error"]
                print(f"{task} {code} {v}: built + warm-up {w.get('seconds', 0):.0f} s {w.get('error', '')} "
                      f"({time.time() - start:.0f} s)", flush=True)
            rows_ok = [r for r in rows if r not in failed]
            times: dict[tuple[str, str], dict[str, list[float]]] = {r: {"teacher": [], "student": []} for r in rows_ok}
            for _ in range(args.paper_rounds):
                for code, v in rows_ok:
                    out = workers[code].ask(cmd="time", task=task, variant=v, steps=args.paper_steps)
                    for stage in ("teacher", "student"):
                        times[(code, v)][stage].append(out[stage])
            med = {r: {s: median(x) for s, x in t.items()} for r, t in times.items()}
            ref = med[("baseline", "fp32 eager")]
            ref_total = ref["teacher"] + ref["student"]
            lines += [f"### {task} (obs {PAPER_TASKS[task]['obs_dim']}, action {PAPER_TASKS[task]['action_dim']})",
                      "", "| code | variant | teacher ms/step | student ms/step | teacher + student ms | speed-up |",
                      "|---|---|---|---|---|---|"]
            for code, v in rows_ok:
                m = med[(code, v)]
                label = args.baseline if code == "baseline" else "this code"
                lines.append(f"| {label} | {v} | {1e3 * m['teacher']:.0f} | {1e3 * m['student']:.0f} | "
                             f"{1e3 * (m['teacher'] + m['student']):.0f} | "
                             f"**{ref_total / (m['teacher'] + m['student']):.2f}×** |")
                print(lines[-1], flush=True)
            lines += [f"- {args.baseline if code == 'baseline' else 'this code'}, {v}: failed ({err})"
                      for (code, v), err in failed.items()]
            lines.append("")
            parts_lines += [f"#### {task}", "", "| variant | " + " | ".join(PARTS) + " | sum | ", "|---" * (len(PARTS) + 2)
                            + "|"]
            for v in [v for c, v in rows_ok if c == "new"]:
                p = {k: [] for k in PARTS}
                for _ in range(args.paper_rounds):
                    out = workers["new"].ask(cmd="parts", task=task, variant=v, steps=max(1, args.paper_steps // 2))
                    for k in PARTS:
                        p[k].append(out[k])
                pm = {k: median(x) for k, x in p.items()}
                parts_lines.append(f"| {v} | " + " | ".join(f"{1e3 * pm[k]:.0f}" for k in PARTS)
                                   + f" | {1e3 * sum(pm.values()):.0f} |")
                print(parts_lines[-1], flush=True)
            parts_lines.append("")
            for code, v in rows:
                workers[code].ask(cmd="drop", task=task, variant=v)
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(base_dir, ignore_errors=True)
    return lines + ["### Student step by part (this code, ms)", "",
                    "Each part timed on its own, same batch: teacher targets = the 10-step Euler loop "
                    "(`distillation_targets`); TD target = next actions + target critic (`td_target`); critic "
                    "update = TD loss forward + backward; actor update = actor forward, distillation and Q term "
                    "through the detached critic, backward (targets given). The optimizer step and Polyak update are "
                    "the rest of a step.", ""] + parts_lines


PARTS = ("teacher targets", "TD target", "critic update", "actor update")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
