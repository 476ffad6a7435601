"""Training throughput: gradient steps/s of the teacher and the student, eager vs torch.compile, and vs N agents.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py          # -> docs/speed.md (section "throughput-cpu")

* Default networks (the modules' defaults: agent-attention teacher width 128 depth 2; student 3x256 MLP and a 2x3x256
  critic ensemble, K = 10 teacher Euler steps for distillation targets) at batch 256 on the coordination benchmark,
  through a real ``Trainer.fit`` (Lightning overhead included); eager, and with ``torch.compile`` of the networks
  (teacher: its ``compile`` flag; student: the actor and the critic compiled in place). Compile time is reported
  separately (first steps) from the steady-state rate.
* Steps/s vs N agents (3 .. 40) for both stages, to show how cost grows with the team.
* Scaling: the agent-attention teacher trained with 40 agents on the coordination benchmark (``--scale-steps``
  steps, coordination-config network), with its flow loss and the share of coordinated joint samples.

Each rate is measured over ``--steps`` steps after ``--warmup`` steps, one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from latency import machine, write_section  # noqa: E402

from macflow.datamodules import CoordinationDataModule  # noqa: E402
from macflow.envs.coordination import joint_mode, mode_points  # noqa: E402
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
    parser.add_argument("--sections", nargs="+", default=["stages", "agents", "scale"],
                        choices=["stages", "agents", "scale"])
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
    lines += ["", f"Total benchmark time {time.time() - start:.0f} s."]
    body = "\n".join(lines)
    print(body)
    write_section(args.out, "throughput-cpu", body, "Speed")
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


if __name__ == "__main__":
    main()
