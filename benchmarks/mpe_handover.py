"""Where in an MPE episode does the one-step student lose to its teacher? Hand the team over between them mid-episode.

    OMP_NUM_THREADS=1 python benchmarks/mpe_handover.py --seeds 0 1 2

Uses the expert cells of benchmarks/mpe_table.py (runs/benchmarks/mpe/expert/seed<k>/{teacher,student}/final.ckpt).
Each row runs the first k decisions of every episode with one policy and the rest with the other, on the table's
evaluation seeds and with each model's own ``policy`` (what ``validate`` runs). If the student's shortfall came from
its first, landmark-choosing decisions alone, "teacher first k, then student" would close the gap for small k and
"student first k, then teacher" would keep it open. Writes docs/results_mpe_handover.md.
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

from macflow.datamodules import MPEDataModule  # noqa: E402
from macflow.evaluation import eval_seeds, evaluate  # noqa: E402
from macflow.modules import FlowTeacher, OneStepStudent  # noqa: E402

HANDOVERS = [("student", "teacher", 0), ("teacher", "student", 0), ("teacher", "student", 1),
             ("teacher", "student", 3), ("teacher", "student", 8), ("student", "teacher", 3),
             ("student", "teacher", 8)]
"""(first, then, k): ``first`` acts for the first k decisions of an episode, ``then`` for the rest."""


def handover_policy(first, then, k: int):
    """A policy that calls ``first.policy`` for its first ``k`` calls, then ``then.policy`` (one call a decision)."""
    calls = [0]

    def policy(obs, legal=None):
        model = first if calls[0] < k else then
        calls[0] += 1
        return model.policy(obs, legal)

    return policy


def label(first: str, then: str, k: int) -> str:
    return f"{then} only" if k == 0 else f"{first} first {k}, then {then}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--runs", type=Path, default=REPO / "runs/benchmarks/mpe/expert")
    parser.add_argument("--doc", type=Path, default=REPO / "docs/results_mpe_handover.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        paths = {name: args.runs / f"seed{seed}/{name}/final.ckpt" for name in ("teacher", "student")}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise SystemExit(f"missing {', '.join(missing)}: make them with "
                             f"python benchmarks/mpe_table.py --qualities expert --seeds {seed}")
        dm = MPEDataModule(quality="expert", data_seed=seed, cache_dir=str(REPO / "data_cache"))
        dm.prepare_data()
        models = {"teacher": FlowTeacher.load_from_checkpoint(paths["teacher"], map_location="cpu").eval(),
                  "student": OneStepStudent.load_from_checkpoint(paths["student"], map_location="cpu").eval()}
        episode_seeds = eval_seeds(args.episodes)
        for first, then, k in HANDOVERS:
            torch.manual_seed(0)
            results = evaluate(dm, handover_policy(models[first], models[then], k), episode_seeds, len(episode_seeds))
            score = 100 * float(results["normalized_score"].mean())
            scores.setdefault(label(first, then, k), []).append(score)
            print(f"[mpe_handover] seed {seed}: {label(first, then, k)}: {score:.1f} %", flush=True)
    header = ["# MPE expert: handing the team over between teacher and student", "",
              f"Made by `OMP_NUM_THREADS=1 python benchmarks/mpe_handover.py --seeds {' '.join(map(str, args.seeds))}` "
              f"({time.time() - started:.0f} s) from the expert teacher and student checkpoints of "
              "benchmarks/mpe_table.py (the table's configs). Normalised score (%) on the table's "
              f"{args.episodes} evaluation episodes (25 decisions each); mean ± std over data/training seeds, "
              "per seed after it. Do not edit by hand.", "",
              "| who acts | normalised score (%) | per seed |", "|---|---|---|"]
    rows = [f"| {name} | {statistics.mean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.1f} | "
            + " / ".join(f"{x:.1f}" for x in v) + " |" for name, v in scores.items()]
    table = "\n".join(header + rows) + "\n"
    print(table)
    args.doc.write_text(table)


if __name__ == "__main__":
    main()
