"""Coordination benchmark table and figure: joint vs factored teachers, shared vs independent student noise.

    OMP_NUM_THREADS=1 python benchmarks/coordination.py --seeds 0 1 2

Trains, per seed, the three shipped vector fields with configs/coordination/teacher.yaml, then students from the
default (agent-attention) teacher with configs/coordination/student.yaml in both noise modes, and evaluates each
on the same 2000 fresh contexts: the fraction of joint actions inside a coordinated mode, the smallest share of
any single mode, and the exact mean reward (optimum 1.0). Writes docs/results_coordination.md and
docs/figures/coordination.png (seed of the first run). Runs in-process through the real CLI. The section on the
student target (NOTES) is fixed text from one-seed probes, appended as is; it is not recomputed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from macflow.cli import main as cli_main  # noqa: E402
from macflow.datamodules import CoordinationDataModule  # noqa: E402
from macflow.datamodules.coordination import joint_mode  # noqa: E402
from macflow.figures import coordination_samples  # noqa: E402
from macflow.modules import FlowTeacher, OneStepStudent  # noqa: E402

FIELDS = {
    "agent-attention (default)": ["--model.init_args.vector_field=macflow.modules.AgentAttentionVectorField"],
    "joint MLP": ["--model.init_args.vector_field=macflow.modules.JointMLPVectorField",
                  "--model.init_args.vector_field.hidden_dims=[256, 256, 256]"],
    "per-agent (reference)": ["--model.init_args.vector_field=macflow.modules.PerAgentVectorField",
                              "--model.init_args.vector_field.hidden_dims=[256, 256, 256]"],
}
NOISE = ("shared", "independent")


def fit(config: str, root: Path, seed: int, *extra: str) -> Path:
    sys.argv = ["macflow"]
    cli_main(["fit", "--config", str(REPO / "configs/coordination" / config), f"--seed_everything={seed}",
              f"--data.init_args.data_seed={seed}", f"--trainer.default_root_dir={root}",
              "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.val_check_interval=100000", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
              f"--trainer.callbacks.path={root}/final.ckpt", *extra])
    return root / "final.ckpt"


NOTES = """\
### Student reward target (≥ 0.95 of the optimum)

The logged data itself scores 0.925 (its actions carry 0.05 noise around the mode points), so imitation alone
cannot reach 0.95: the student must be more coordinated than its teacher *and* sharper than the data. With 6000
steps (the config before this table) it was not: its misses were blurred actions between two modes (seed 0: in
about 80 % of them each agent was over 0.2 from every mode point; median distance 0.3), because the one-step map
must jump at mode boundaries in noise space, and the per-agent critic, trained only on coordinated data, is flat
between modes (probed along the line between two mode points), so the Q term cannot push those actions back.
Training longer under the same cosine learning-rate decay (warm-up, then decay to 0 at the last step) sharpens
the jumps: the config now trains 15000 steps. The independent-noise student moved with it (before: 0.2 %
coordinated, reward 0.024): it now lands in a mode about as often as the factored per-agent teacher, still without
the coupling. The teachers above are the previous run's checkpoints (`--reuse-teachers`, teacher config
unchanged); their rows are the previous table's, to the digit.

One-seed probes (seed 0, the seed-0 teacher of the table, the 6000-step student config with one change, scored like
the table; the first six rows are scratch runs made for this change, the others earlier probes):

| change | coordinated (%) | reward |
|---|---|---|
| none (6000 steps) | 92.9 | 0.916 |
| 15000 steps (the config now) | 97.7 | 0.979 |
| batches of 1024 instead of 256 | 93.8 | 0.927 |
| noise scaled by 4 before the actor's first layer | 93.3 | 0.921 |
| noise scaled by 16 | 92.4 | 0.912 |
| noise also read through 64 random Fourier features (std 2) | 93.3 | 0.921 |
| `flow_steps: 20` (teacher Euler steps of the distillation targets) | 93.6 | 0.908 |
| `actor_q_agg: min` (ensemble minimum in the actor's Q term) | 93.0 | 0.917 |
| CQL-style critic penalty, weight 0.3 (random actions down, logged up; trial patch, not kept) | 64.9 | 0.520 |
| same, weight 0.01 | 89.9 | 0.836 |
| `flow_steps: 50` and `alpha: 1` | 91.8 | 0.864 |
| a teacher trained on batches of 1024 instead of 256 (teacher itself 96.9 %, 0.954) | 92.8 | 0.914 |

The seed-0 teacher sampled with K Euler steps (coordinated %, reward): K=5 86.3, 0.861; K=10 (default) 96.2,
0.950; K=20 98.0, 0.949; K=50 98.2, 0.930; K=100 98.5, 0.925. More steps keep more joint actions coordinated
but reproduce the data's noise, so the reward tends to the data's 0.925. The 15000-step student ends sharper than
its teacher (seed 0: reward 0.979 at 97.7 % coordinated, the teacher 0.950 at 96.2 %); whether the Q term or the
regression does that was not measured. The CQL penalty does carve valleys between the modes,
but it also breaks the per-agent critic's fit on the data (weight 0.01: its values at the mode points spread
from -0.8 to 2.6), so the agents snap to different modes. Earlier attempts (settings not all recorded; whether the 3k-10k step
runs used the cosine decay is not known): alpha 1/3/5/10 (alpha 0.1 collapses to 0.32), a 256-wide actor, 3k-10k
steps, LayerNorm in the actor, no private observations, actor lr 2e-3 with cosine decay (kept).
"""


def evaluate(policy, dm: CoordinationDataModule) -> dict[str, float]:
    ctx = dm.contexts(2000, seed=999)
    torch.manual_seed(0)
    actions = policy(ctx["obs"])
    modes = joint_mode(actions, ctx["s"], dm.hparams.n_modes)
    share = torch.bincount(modes[modes >= 0], minlength=dm.hparams.n_modes).float() / len(modes)
    return {"coordinated": float((modes >= 0).float().mean()), "min_mode": float(share.min()),
            "reward": float(dm.game.reward(ctx, actions).mean()), "actions": actions, "s": ctx["s"]}


def fmt(values: list[float], pct: bool = False) -> str:
    scale = 100.0 if pct else 1.0
    mean = statistics.mean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}" if pct else f"{mean:.3f} ± {std:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "runs/benchmarks/coordination")
    parser.add_argument("--reuse-teachers", action="store_true",
                        help="train only the students, from the teacher final.ckpt files an earlier run left under "
                             "--out (for a change that touches only the student config)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[dict]] = {}
    figure_panels = {}
    start = time.time()
    for seed in args.seeds:
        dm = CoordinationDataModule(data_seed=seed)
        dm.setup()
        if seed == args.seeds[0]:
            data = dm.data.gather(torch.arange(2000))
            ctx_s = data["obs"][:, 0, 0]
            data_modes = joint_mode(data["actions"], ctx_s, dm.hparams.n_modes)
            figure_panels["logged data"] = (data["actions"], ctx_s, float((data_modes >= 0).float().mean()))
        teachers = {}
        for name, extra in FIELDS.items():
            root = args.out / f"seed{seed}/teacher_{name.split()[0]}"
            if not args.reuse_teachers:
                ckpt = fit("teacher.yaml", root, seed, *extra)
            elif not (ckpt := root / "final.ckpt").is_file():
                raise SystemExit(f"--reuse-teachers: no {ckpt}; train that seed's teachers first")
            teachers[name] = FlowTeacher.load_from_checkpoint(ckpt)
            result = evaluate(lambda o, t=teachers[name]: t.act(o), dm)
            rows.setdefault(f"teacher, {name}", []).append(result)
        for noise in NOISE:
            ckpt = fit("student.yaml", args.out / f"seed{seed}/student_{noise}", seed,
                       f"--model.init_args.teacher_ckpt={args.out / f'seed{seed}/teacher_agent-attention/final.ckpt'}",
                       f"--model.init_args.noise={noise}")
            student = OneStepStudent.load_from_checkpoint(ckpt)
            rows.setdefault(f"student, {noise} noise", []).append(evaluate(lambda o, s=student: s.act(o), dm))
        if seed == args.seeds[0]:
            for label, key in (("joint teacher (attention)", "teacher, agent-attention (default)"),
                               ("student (shared noise)", "student, shared noise"),
                               ("factored teacher (per-agent)", "teacher, per-agent (reference)")):
                r = rows[key][-1]
                figure_panels[label] = (r["actions"], r["s"], r["coordinated"])
        print(f"seed {seed} done after {time.time() - start:.0f} s", flush=True)

    figure = coordination_samples(figure_panels, REPO / "docs/figures/coordination.png")
    lines = [
        "## Coordination benchmark",
        "",
        "Made by `OMP_NUM_THREADS=1 python benchmarks/coordination.py --seeds " + " ".join(map(str, args.seeds))
        + (" --reuse-teachers`" if args.reuse_teachers else "`"),
        "with configs/coordination/teacher.yaml and configs/coordination/student.yaml (CPU-sized networks),",
        f"{len(args.seeds)} seeds (data, initialisation and sampling), mean ± std over seeds; 2000 fresh contexts each.",
        "Coordinated: the joint action lies within 0.2 of one mode's points for every agent. Min mode: the share of",
        "samples in the least visited of the 4 modes (25 % when all are kept equally). Reward: exact, optimum 1.0.",
        "",
        "| policy | coordinated (%) | min mode (%) | reward |",
        "|---|---|---|---|",
    ]
    for name, results in rows.items():
        lines.append(f"| {name} | {fmt([r['coordinated'] for r in results], True)} | "
                     f"{fmt([r['min_mode'] for r in results], True)} | {fmt([r['reward'] for r in results])} |")
    lines += ["", f"![joint-action samples]({figure.relative_to(REPO / 'docs')})", "",
              f"Total time: {time.time() - start:.0f} s.", "", NOTES]
    out = REPO / "docs/results_coordination.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
