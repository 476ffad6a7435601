"""Is a decentralised MaMuJoCo student short of information? Regression of the teacher from o_i vs from all o_j.

    OMP_NUM_THREADS=1 python benchmarks/mamujoco_info_gap.py --scenario Hopper --qualities medium expert --seeds 0

For each (quality, seed), the table's frozen teacher (``<out>/<scenario>/<quality>/seed<k>/teacher/final.ckpt``, from
benchmarks/mamujoco_table.py in the native ``mamujoco`` layout) labels every logged observation once with
``--flow-steps`` Euler steps (the student's distillation targets in the table). A network like the student's
(``SharedMLPPolicy``, the student config's hidden sizes, zero noise input) is then fitted to those labels by plain
regression (the distillation term alone) on all episodes but the last ``--held-out`` and scored on those: once
from each agent's own observation o_i (what the student sees) and once from all agents' observations (what a
centralised policy would see). The logged actions are fitted the same way. A gap between the two columns is
information the behaviour used that o_i does not hold (in ``mamujoco_v1`` with ``agent_obsk=1`` a Hopper agent sees
its neighbours' joints but not the far one's). Writes the ``info gap`` section of docs/results_mamujoco.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from mamujoco_table import markers, replace_section  # noqa: E402
from regression_probe import fit_by_regression, squared_error  # noqa: E402

from macflow.datamodules import MaMuJoCoDataModule  # noqa: E402
from macflow.modules import FlowTeacher, SharedMLPPolicy  # noqa: E402


def fit_and_score(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, hidden: list[int],
                  steps: int, seed: int) -> torch.Tensor:
    """Held-out squared error per agent ``[N]`` of a shared MLP fitted from ``x [T, N, D]`` to ``y [T, N, A]``."""
    torch.manual_seed(seed)
    n, a = y.shape[1], y.shape[2]
    net = SharedMLPPolicy(x.shape[-1], a, n, n * a, hidden_dims=hidden)
    fit_by_regression(net, x, y, train, steps, n * a, random_noise=False)
    return squared_error(net, x, y, test, n * a, random_noise=False).mean((0, 2))


def probe(args, quality: str, seed: int, hidden: list[int]) -> str:
    ckpt = args.out / args.scenario / quality / f"seed{seed}/teacher/final.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"no teacher at {ckpt}: train it first with python benchmarks/mamujoco_table.py "
                         f"--scenario {args.scenario} --qualities {quality} --seeds {seed}")
    dm = MaMuJoCoDataModule(scenario=args.scenario, quality=quality, data_seed=seed, cache_dir=args.cache,
                            progress=False)
    dm.prepare_data()
    dm.setup()
    teacher = FlowTeacher.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = dm.data
    batch = data.gather(torch.arange(data.n_transitions))
    obs, logged = batch["obs"], batch["actions"]
    n, a = teacher.n_agents, teacher.action_dim
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        labels = torch.cat([teacher.sample(o, torch.randn(len(o), n, a, generator=gen), args.flow_steps).clamp(-1, 1)
                            for o in obs.split(4096)])
    held = data.episode_ids > data.episode_ids.max() - args.held_out
    train, test = torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()
    joint = obs.flatten(1).unsqueeze(1).expand(-1, n, -1)
    t0 = time.time()
    errors = {(target, inputs): fit_and_score(x, y, train, test, hidden, args.steps, seed)
              for target, y in (("teacher", labels), ("logged", logged))
              for inputs, x in (("own", obs), ("all", joint))}
    per_agent = "; ".join(" / ".join(f"{e:.4f}" for e in errors["teacher", inputs].tolist()) for inputs in ("own", "all"))
    row = (f"| {quality} | {seed} | {errors['teacher', 'own'].mean():.4f} | {errors['teacher', 'all'].mean():.4f} | "
           f"{per_agent} | {errors['logged', 'own'].mean():.4f} | {errors['logged', 'all'].mean():.4f} | "
           f"{time.time() - t0:.0f} |")
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="Hopper", choices=["HalfCheetah", "Hopper"])
    p.add_argument("--qualities", nargs="+", default=["medium", "expert", "medium-replay"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=4000, help="regression steps per fit")
    p.add_argument("--flow-steps", type=int, default=5, help="teacher Euler steps of the labels (the table's 5)")
    p.add_argument("--held-out", type=int, default=10, help="last episodes kept out of the fit")
    p.add_argument("--cache", default=str(REPO / "data_cache"))
    p.add_argument("--out", type=Path, default=REPO / "runs/benchmarks/mamujoco")
    p.add_argument("--doc", type=Path, default=REPO / "docs/results_mamujoco.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load((REPO / f"configs/mamujoco/{args.scenario.lower()}_student.yaml").read_text())
    hidden = config["model"]["init_args"]["policy"]["init_args"]["hidden_dims"]
    started = time.time()
    rows = [probe(args, q, s, hidden) for q in args.qualities for s in args.seeds]
    command = (f"OMP_NUM_THREADS=1 python benchmarks/mamujoco_info_gap.py --scenario {args.scenario} --qualities "
               f"{' '.join(args.qualities)} --seeds {' '.join(map(str, args.seeds))}"
               + (f" --steps {args.steps}" if args.steps != 4000 else "")
               + (f" --flow-steps {args.flow_steps}" if args.flow_steps != 5 else "")
               + (f" --held-out {args.held_out}" if args.held_out != 10 else ""))
    lines = [f"## {args.scenario}: what the decentralised student can know (regression probe)", "",
             f"Made by `{command}` ({time.time() - started:.0f} s on a shared 2-core CPU). Do not edit by hand. "
             f"The table's teachers label every logged observation ({args.flow_steps}-step samples, as the student "
             f"distils); a shared MLP {hidden} (the student's) is fitted to the labels by plain regression, "
             f"{args.steps} Adam steps (batch 256, lr 0.001), on all but the last {args.held_out} episodes. Held-out "
             "mean squared error, from the agent's own observation o_i (the student's input) and from all agents' "
             "observations; the same for the logged actions.", "",
             "| data | seed | teacher from o_i | teacher from all o_j | per agent (agent 0 / 1 / ...; from o_i; from all) | "
             "logged from o_i | "
             "logged from all o_j | seconds |", "|---|---|---|---|---|---|---|---|", *rows]
    replace_section(args.doc, *markers(args.scenario, "info gap"), lines)


if __name__ == "__main__":
    main()
