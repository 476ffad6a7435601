"""MaMuJoCo table: behaviour data, K-step teacher and one-step student returns per dataset quality.

    OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario HalfCheetah --seeds 0 1 2

Per quality and seed: generates (or reuses) the dataset with ``data_seed = seed`` (behaviour policies trained from
that seed), trains the teacher with configs/mamujoco/<scenario>_teacher.yaml and the student with
configs/mamujoco/<scenario>_student.yaml (``seed_everything = seed``, no intermediate evaluation), then evaluates both
with their ``policy`` on the same ``--episodes`` 1000-step evaluation episodes in mamujoco_v1. Writes the table
section of docs/results_mamujoco.md (the memory section is kept). Runs in-process through the real CLI.
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
from macflow.datamodules import MaMuJoCoDataModule, rollout  # noqa: E402
from macflow.datamodules.base import EVAL_SEED_OFFSET  # noqa: E402
from macflow.modules import FlowTeacher, OneStepStudent  # noqa: E402

QUALITIES = ("medium", "expert", "medium-replay", "medium-expert", "random")
START, END = "<!-- table:start -->", "<!-- table:end -->"
DATA_START, DATA_END = "<!-- data:start -->", "<!-- data:end -->"


def replace_section(doc: Path, start: str, end: str, lines: list[str]) -> None:
    old = doc.read_text() if doc.exists() else "# MaMuJoCo results\n"
    if start in old:
        old = old[:old.index(start)] + old[old.index(end) + len(end) + 1:]
    doc.write_text(old.rstrip("\n") + "\n\n" + "\n".join([start, *lines, end]) + "\n")
    print(f"[mamujoco_table] wrote {doc}", flush=True)


def write_data_doc(args) -> None:
    """Datasets section from the manifests (generates missing datasets first: python -m macflow.datagen ...)."""
    lines = [f"## {args.scenario}: generated datasets", "",
             f"Made by `OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario {args.scenario} --data-only "
             f"--seeds {' '.join(map(str, args.seeds))}` from the manifests written by `python -m macflow.datagen "
             f"mamujoco --scenario {args.scenario} --seed <k>` (same as the datamodule's prepare_data()).", "",
             "| seed | quality | episodes | transitions | mean ± std return | mean length | behaviour | "
             "collection s |", "|---|---|---|---|---|---|---|---|"]
    budget_lines = []
    for seed in args.seeds:
        for q in args.qualities:
            dm = MaMuJoCoDataModule(scenario=args.scenario, quality=q, data_seed=seed, cache_dir=args.cache,
                                    progress=False)
            dm.prepare_data()
            m = dm.manifest()
            beh = m["behaviour"]
            desc = "; ".join(
                (b.get("policy", "") + (f" (ARS it {b['ars_iteration']}, eval {b['ars_eval_return']:.0f})"
                                        if "ars_iteration" in b else ""))
                if "behaviours" not in b else
                " + ".join(x["policy"].split(" (")[0] + (f" it {x['ars_iteration']}" if "ars_iteration" in x else
                                                           f" seed {x.get('cem_seed')}") for x in b["behaviours"])
                for b in beh.values())
            modes = ", ".join(f"mode {k}: {v:.0f}" for k, v in m["mode_returns"].items()) if q in ("expert",) else ""
            lines.append(f"| {seed} | {q} | {m['episodes']} | {m['transitions']:,} | {m['mean_return']:.0f} ± "
                         f"{m['std_return']:.0f}" + (f" ({modes})" if modes else "") + f" | {m['mean_length']:.0f} | "
                         f"{desc} | {m['collection_seconds']:.0f} |")
        budget_lines.append(f"- seed {seed}: behaviour training {m['behaviour_training_seconds']:.0f} s; ARS eval "
                            "return by iteration: " + ", ".join(f"{c['iteration']}: {c['eval_return']:.0f}"
                                                                for c in m["ars_curve"])
                            + ("; CPG gaits: " + ", ".join(f"seed {g['seed']}: {g['return']:.0f} ({g['seconds']:.0f} s)"
                                                            for g in m["cpg"]) if m["cpg"] else ""))
    lines += ["", "Behaviour training (cached, shared by all qualities of a seed):", "", *budget_lines,
              "", "collection s = seconds of the whole prepare_data() call for that dataset (the first one of a "
              "seed includes the behaviour training)."]
    replace_section(args.doc, DATA_START, DATA_END, lines)


def fit(config: Path, root: Path, seed: int, quality: str, cache: str, *extra: str) -> Path:
    sys.argv = ["macflow"]
    cli_main(["fit", "--config", str(config), f"--seed_everything={seed}", f"--data.init_args.data_seed={seed}",
              f"--data.init_args.quality={quality}", f"--data.init_args.cache_dir={cache}",
              "--data.init_args.progress=false", f"--trainer.default_root_dir={root}",
              "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.val_check_interval=10000000", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
              f"--trainer.callbacks.path={root}/final.ckpt", *extra])
    return root / "final.ckpt"


def evaluate(model, dm: MaMuJoCoDataModule, episodes: int) -> float:
    torch.manual_seed(0)
    seeds = list(range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + episodes))
    return float(rollout(dm.make_env(seeds), model.policy)["return"].mean())


def fmt(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.0f} ± {std:.0f}"


def write_doc(args, rows: dict, seconds: float) -> None:
    cmd = (f"OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario {args.scenario} --qualities "
           f"{' '.join(rows)} --seeds {' '.join(map(str, args.seeds))} --episodes {args.episodes}"
           + (f" --max-steps {args.max_steps}" if args.max_steps else ""))
    lines = [START, f"## {args.scenario}: behaviour data, teacher and student returns", "",
             f"Made by `{cmd}` ({seconds / 60:.0f} min on a shared 2-core CPU; configs "
             f"`configs/mamujoco/{args.scenario.lower()}_{{teacher,student}}.yaml`"
             + (f", {args.max_steps} gradient steps per stage" if args.max_steps else "") + "). Do not edit by hand.",
             "", f"Returns of 1000-step episodes in `mamujoco_v1`; models evaluated on the same {args.episodes} "
             "evaluation seeds; mean ± std over the data/training seeds (std 0 with one seed).", "",
             "| data | episodes | behaviour return | teacher (K = 10) | student (1 step) | student / behaviour |",
             "|---|---|---|---|---|---|"]
    for q, c in rows.items():
        d = statistics.mean(c["data"])
        ratio = statistics.mean(c["student"]) / d if d else float("nan")
        lines.append(f"| {q} | {int(c['episodes'][0])} | {fmt(c['data'])} | {fmt(c['teacher'])} | "
                     f"{fmt(c['student'])} | {ratio:.2f} |")
    lines += ["", "Targets: student ≥ behaviour on medium and medium-replay, ≥ 90 % of it on expert.", ""]
    for q, need in (("medium", 1.0), ("medium-replay", 1.0), ("expert", 0.9)):
        if q in rows:
            s, d = statistics.mean(rows[q]["student"]), statistics.mean(rows[q]["data"])
            lines.append(f"- {q}: **{'met' if s >= need * d else 'missed'}** ({s:.0f} vs {need:g} × {d:.0f}, "
                         f"{len(rows[q]['student'])} seed(s)).")
    replace_section(args.doc, START, END, lines[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="HalfCheetah", choices=["HalfCheetah", "Hopper"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--qualities", nargs="+", default=list(QUALITIES))
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes per model")
    p.add_argument("--cache", default=str(REPO / "data_cache"))
    p.add_argument("--out", type=Path, default=REPO / "runs/benchmarks/mamujoco")
    p.add_argument("--max-steps", type=int, default=None, help="override the configs' gradient steps")
    p.add_argument("--doc", type=Path, default=REPO / "docs/results_mamujoco.md")
    p.add_argument("--data-only", action="store_true", help="only (generate and) tabulate the datasets")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.data_only:
        return write_data_doc(args)
    start, rows = time.time(), {}
    configs = REPO / "configs/mamujoco"
    for q in args.qualities:
        cols: dict[str, list[float]] = {k: [] for k in ("data", "episodes", "teacher", "student")}
        for seed in args.seeds:
            root = args.out / args.scenario / q / f"seed{seed}"
            steps = [] if args.max_steps is None else [f"--trainer.max_steps={args.max_steps}"]
            name = args.scenario.lower()
            t_ckpt = fit(configs / f"{name}_teacher.yaml", root / "teacher", seed, q, args.cache, *steps)
            s_ckpt = fit(configs / f"{name}_student.yaml", root / "student", seed, q, args.cache, *steps,
                         f"--model.init_args.teacher_ckpt={t_ckpt}")
            dm = MaMuJoCoDataModule(scenario=args.scenario, quality=q, data_seed=seed, cache_dir=args.cache,
                                    progress=False)
            m = dm.manifest()
            cols["data"].append(m["mean_return"])
            cols["episodes"].append(m["episodes"])
            for key, cls, ckpt in (("teacher", FlowTeacher, t_ckpt), ("student", OneStepStudent, s_ckpt)):
                cols[key].append(evaluate(cls.load_from_checkpoint(ckpt, map_location="cpu").eval(), dm,
                                          args.episodes))
            print(f"[mamujoco_table] {args.scenario} {q} seed {seed}: "
                  + ", ".join(f"{k}={v[-1]:.1f}" for k, v in cols.items()) + f" ({time.time() - start:.0f} s)",
                  flush=True)
        rows[q] = cols
        write_doc(args, rows, time.time() - start)


if __name__ == "__main__":
    main()
