"""Return vs decision latency of every method on the coordination benchmark: the paper's Figure 1 with our code.

    OMP_NUM_THREADS=1 python benchmarks/frontier.py            # -> docs/results_baselines.md, docs/figures/coordination_frontier.png

Trains, per seed and through the real CLI with the shipped configs (CPU-sized: ``--steps`` gradient steps each,
3000 by default, the teacher and baseline configs' own budget; the shipped students train longer): the joint
teacher and the MAC-Flow student (configs/coordination/), the reference-code ablation
(configs/baselines/reference_*.yaml), Gaussian BC, MA-TD3+BC and the DDPM joint policy at K = 50 and 100
(configs/baselines/). Each is evaluated on the same 2000 fresh contexts (mean reward = the
episode return of this one-step game, optimum 1.0; share of coordinated joint actions), and its decision latency
(whole team, batch 1 and 1024, one CPU thread) is measured in one interleaved run (benchmarks/latency.py's method).
The teacher is evaluated at K = 1, 2, 5 and 10 Euler steps from the same checkpoint.
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
sys.path.insert(0, str(REPO / "benchmarks"))

from latency import machine, measure  # noqa: E402

from macflow.cli import main as cli_main  # noqa: E402
from macflow.datamodules import CoordinationDataModule  # noqa: E402
from macflow.datamodules.coordination import joint_mode  # noqa: E402
from macflow.modules import MATD3BC, DiffusionPolicy, FlowTeacher, GaussianBC, OneStepStudent  # noqa: E402

STYLE = {  # family -> (colour, marker)
    "MAC-Flow student": ("tab:red", "*"), "reference MAC-Flow": ("tab:orange", "*"),
    "joint flow teacher": ("tab:purple", "o"), "per-agent flow teacher (reference)": ("tab:pink", "o"),
    "Gaussian BC": ("tab:blue", "s"), "MA-TD3+BC": ("tab:cyan", "D"), "diffusion (DDPM)": ("tab:green", "^"),
}


def fit(config: str, root: Path, seed: int, steps: int, *extra: str) -> Path:
    sys.argv = ["macflow"]
    cli_main(["fit", "--config", str(REPO / "configs" / config), f"--seed_everything={seed}",
              f"--data.init_args.data_seed={seed}", f"--trainer.max_steps={steps}",
              f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
              "--trainer.enable_model_summary=false", "--trainer.val_check_interval=100000", "--trainer.logger=false",
              "--trainer.callbacks=macflow.callbacks.FinalCheckpoint", f"--trainer.callbacks.path={root}/final.ckpt",
              *extra])
    return root / "final.ckpt"


def coordination_config(stage: str) -> dict:
    """``configs/coordination/<stage>.yaml`` as it is now."""
    import yaml

    return yaml.safe_load((REPO / "configs/coordination" / f"{stage}.yaml").read_text())


def coordination_networks() -> tuple[list[int], dict]:
    """The student's policy widths and the teacher's vector-field settings in configs/coordination/ as they are now,
    so the baselines get the same networks (same actor MLP; the diffusion denoiser = the teacher's field)."""
    student = coordination_config("student")["model"]["init_args"]
    teacher = coordination_config("teacher")["model"]["init_args"]
    return list(student["policy"]["init_args"]["hidden_dims"]), teacher["vector_field"]


def budget_note(steps: int) -> str:
    """How ``steps`` relates to the coordination configs' own ``trainer.max_steps`` (read, not assumed)."""
    teacher, student = (coordination_config(stage)["trainer"]["max_steps"] for stage in ("teacher", "student"))
    if steps != teacher:
        return ""
    if steps == student:
        return " (the budget of the shipped configs)"
    return (f" (the teacher and baseline configs; the shipped students train {student}, so the student here "
            "is short of the table in docs/results_coordination.md)")


def train_all(seed: int, steps: int, out: Path, diffusion_steps: list[int]) -> dict[str, tuple[str, object]]:
    """Label -> (family, act(obs) callable) for every trained method of one seed."""
    root = out / f"seed{seed}"
    hidden, field = coordination_networks()
    same_actor = f"--model.init_args.hidden_dims={hidden}"
    same_field = [f"--model.init_args.denoiser={field['class_path']}",
                  *(f"--model.init_args.denoiser.{k}={v}" for k, v in field.get("init_args", {}).items())]
    methods: dict[str, tuple[str, object]] = {}
    teacher = FlowTeacher.load_from_checkpoint(fit("coordination/teacher.yaml", root / "teacher", seed, steps)).eval()
    student = OneStepStudent.load_from_checkpoint(fit(
        "coordination/student.yaml", root / "student", seed, steps,
        f"--model.init_args.teacher_ckpt={root / 'teacher/final.ckpt'}")).eval()
    ref_teacher = FlowTeacher.load_from_checkpoint(
        fit("baselines/reference_teacher.yaml", root / "ref_teacher", seed, steps)).eval()
    # the reference student = the shipped student config with only the ablated settings changed
    # (what configs/baselines/reference_student.yaml holds; tests/test_baselines.py keeps the two in sync)
    ref_student = OneStepStudent.load_from_checkpoint(fit(
        "coordination/student.yaml", root / "ref_student", seed, steps,
        f"--model.init_args.teacher_ckpt={root / 'ref_teacher/final.ckpt'}", "--model.init_args.noise=independent",
        "--model.init_args.eval_noise=fixed", "--model.init_args.mixer=macflow.modules.VDNMean")).eval()
    gaussian = GaussianBC.load_from_checkpoint(fit("baselines/gaussian_bc.yaml", root / "gaussian_bc", seed, steps,
                                                   same_actor))
    td3bc = MATD3BC.load_from_checkpoint(fit("baselines/td3bc.yaml", root / "td3bc", seed, steps, same_actor))
    methods["MAC-Flow student (shared noise)"] = ("MAC-Flow student", lambda o, m=student: m.act(o))
    methods["reference MAC-Flow student (per-agent teacher, independent noise)"] = (
        "reference MAC-Flow", lambda o, m=ref_student: m.act(o))
    methods["Gaussian BC"] = ("Gaussian BC", lambda o, m=gaussian.eval(): m.act(o))
    methods["MA-TD3+BC"] = ("MA-TD3+BC", lambda o, m=td3bc.eval(): m.act(o))
    for k in (1, 2, 5, 10):
        methods[f"joint teacher, K={k}"] = ("joint flow teacher", lambda o, k=k: teacher.act(o, steps=k))
    methods["per-agent teacher (reference), K=10"] = ("per-agent flow teacher (reference)",
                                                      lambda o: ref_teacher.act(o, steps=10))
    for k in diffusion_steps:
        model = DiffusionPolicy.load_from_checkpoint(fit(
            "baselines/diffusion.yaml", root / f"diffusion{k}", seed, steps,
            f"--model.init_args.diffusion_steps={k}", *same_field)).eval()
        methods[f"diffusion (DDPM), K={k}"] = ("diffusion (DDPM)", lambda o, m=model: m.act(o))
    return methods


def evaluate(act, dm: CoordinationDataModule) -> dict[str, float]:
    ctx = dm.contexts(2000, seed=999)
    torch.manual_seed(0)
    with torch.inference_mode():
        actions = act(ctx["obs"])
    modes = joint_mode(actions, ctx["s"], dm.hparams.n_modes)
    return {"return": float(dm.game.reward(ctx, actions).mean()), "coordinated": float((modes >= 0).float().mean())}


def mean_std(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    m = statistics.mean(values) * scale
    s = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def plot(points: dict[str, tuple[str, float, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    seen = set()
    for label, (family, latency_ms, ret) in points.items():
        colour, marker = STYLE[family]
        ax.scatter(latency_ms, ret, c=colour, marker=marker, s=160 if marker == "*" else 60,
                   label=None if family in seen else family, edgecolors="black", linewidths=0.5, zorder=3)
        seen.add(family)
        short = label.split(", ")[-1] if "K=" in label else ""
        if short:
            ax.annotate(short, (latency_ms, ret), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("decision latency, whole team, batch 1, 1 CPU thread (ms, log scale)")
    ax.set_ylabel("mean return (optimum 1.0)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--diffusion-steps", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "runs/benchmarks/frontier")
    parser.add_argument("--doc", type=Path, default=REPO / "docs/results_baselines.md")
    parser.add_argument("--figure", type=Path, default=REPO / "docs/figures/coordination_frontier.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hidden, field = coordination_networks()
    command = "OMP_NUM_THREADS=1 python benchmarks/frontier.py" + ("" if not sys.argv[1:] else " " + " ".join(sys.argv[1:]))
    start = time.time()
    dm = CoordinationDataModule()
    results: dict[str, list[dict[str, float]]] = {}
    families: dict[str, str] = {}
    latency: dict[int, dict[str, float]] = {}
    for seed in args.seeds:
        methods = train_all(seed, args.steps, args.out, args.diffusion_steps)
        print(f"seed {seed} trained after {time.time() - start:.0f} s", flush=True)
        for label, (family, act) in methods.items():
            families[label] = family
            results.setdefault(label, []).append(evaluate(act, dm))
        if seed == args.seeds[0]:  # latency does not depend on the seed: measured once, all methods interleaved
            acts = {label: act for label, (_, act) in methods.items()}
            for b in (1, 1024):
                latency[b] = measure(acts, torch.randn(b, dm.n_agents, dm.obs_dim), args.repeats, 0.02, "cpu")
            print(f"latency measured after {time.time() - start:.0f} s", flush=True)

    order = sorted(results, key=lambda k: latency[1][k])
    student = "MAC-Flow student (shared noise)"
    lines = ["## Return vs decision latency on the coordination benchmark (all methods, one framework)", "",
             f"Command: `{command}` (from the repository root; {time.time() - start:.0f} s on {machine('cpu')}).", "",
             f"CPU-sized runs: {args.steps} gradient steps per model"
             f"{budget_note(args.steps)}, "
             f"{len(args.seeds)} seed(s) ({', '.join(map(str, args.seeds))}), "
             "same data (`CoordinationDataModule`, 2 agents, 4 coordinated modes) and the same evaluation: 2000 fresh "
             "contexts, return = exact team reward of the one-step game (optimum 1.0), coordinated = joint action "
             "inside a mode. Latency: one decision for the whole team, median of interleaved repeats, one CPU "
             f"thread, trained models. Networks as in configs/coordination/ now: every actor (student, Gaussian BC, "
             f"TD3+BC) is a shared {'x'.join(map(str, hidden))} MLP; the diffusion denoiser is the teacher's "
             f"{field['class_path'].rsplit('.', 1)[-1]} {field.get('init_args', {})}.", "",
             "| method | return | coordinated (%) | latency batch 1 (ms) | latency batch 1024 (ms) | "
             "× student latency (batch 1) |", "|---|---|---|---|---|---|"]
    for label in order:
        rs = results[label]
        lines.append(f"| {label} | {mean_std([r['return'] for r in rs])} | "
                     f"{mean_std([r['coordinated'] for r in rs], 100.0, 1)} | {latency[1][label] * 1e3:.3f} | "
                     f"{latency[1024][label] * 1e3:.2f} | {latency[1][label] / latency[1][student]:.1f} |")
    figure_rel = Path("figures") / args.figure.name
    lines += ["", f"![return vs latency]({figure_rel})", ""]
    body = "\n".join(lines)
    points = {label: (families[label], latency[1][label] * 1e3,
                      statistics.mean(r["return"] for r in results[label])) for label in results}
    plot(points, args.figure, f"Coordination benchmark (N=2, 4 modes): return vs latency, {args.steps} steps, "
         f"{len(args.seeds)} seed(s)")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text("# Baselines: results\n\n" + body)
    print(body)
    print(f"wrote {args.doc} and {args.figure}")


if __name__ == "__main__":
    main()
