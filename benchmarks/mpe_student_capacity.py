"""How well can a decentralised student network imitate the MPE expert teacher on episodes it never saw?

    OMP_NUM_THREADS=1 python benchmarks/mpe_student_capacity.py --seed 0

The seed-0 expert teacher (runs/benchmarks/mpe/expert/seed<k>/teacher/final.ckpt, from benchmarks/mpe_table.py)
labels every logged observation of its dataset once (the spread of its actions over noise draws is printed). Each
student network is then fitted by plain regression (the distillation term alone, no critic) on all episodes
but the last 200 and scored on those 200: mean squared error per episode step.
The first steps are where the team's landmark assignment is decided, and where a flat MLP on the egocentric
observation falls short of the teacher. The last row fits the expert config's student on the same data turned by
random symmetries of the square (``d4_augment``: each input and its teacher label turned alike), the augmentation
``MPEDataModule(augment="d4")`` applies in training. Prints a markdown table and writes it to
docs/results_mpe_capacity.md.

    OMP_NUM_THREADS=1 python benchmarks/mpe_student_capacity.py --seed 0 --inputs

asks instead whether the student lacks information: the expert config's student is fitted from o_i and from o_i
plus what it does not hold, the other agents' velocities (privileged) or one frame of memory (their previous
relative positions, and the agent's own previous velocity and position). Writes docs/results_mpe_inputs.md.
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

from regression_probe import fit_by_regression, squared_error  # noqa: E402

from macflow.datamodules import MPEDataModule  # noqa: E402
from macflow.datamodules.augment import d4_augment  # noqa: E402
from macflow.modules import EntityAttentionPolicy, FlowTeacher, SharedMLPPolicy  # noqa: E402

STEP_BINS = ((0, 3), (3, 8), (8, 15), (15, 25))
HELD_OUT_EPISODES = 200
EXPERT_POLICY = yaml.safe_load((REPO / "configs/mpe/student.yaml").read_text())["model"]["init_args"]["policy"]
EXPERT_NAME = "EntityAttentionPolicy width {width}, depth {depth} (the expert config)".format(
    **EXPERT_POLICY["init_args"])
STUDENTS = {  # name -> (factory(obs_dim, action_dim, n_agents, noise_dim), gradient steps, augmentation)
    "MLP 256x3 (the previous expert student)": (lambda *d: SharedMLPPolicy(*d, hidden_dims=[256] * 3), 3000, None),
    "MLP 256x4": (lambda *d: SharedMLPPolicy(*d, hidden_dims=[256] * 4), 3000, None),
    EXPERT_NAME: (lambda *d: EntityAttentionPolicy(*d, **EXPERT_POLICY["init_args"]), 3000, None),
    EXPERT_NAME + ", D4-augmented data": (lambda *d: EntityAttentionPolicy(*d, **EXPERT_POLICY["init_args"]), 3000,
                                          d4_augment),
}


def step_in_episode(episode_ids: torch.Tensor) -> torch.Tensor:
    """0 for each episode's first transition, counting up (transitions are stored episode by episode)."""
    index = torch.arange(len(episode_ids))
    first = torch.ones_like(episode_ids, dtype=torch.bool)
    first[1:] = episode_ids[1:] != episode_ids[:-1]
    start = torch.cummax(torch.where(first, index, torch.zeros_like(index)), dim=0).values
    return index - start


def input_variants(obs: torch.Tensor, steps: torch.Tensor, n: int) -> dict[str, tuple[torch.Tensor, list]]:
    """Inputs ``[T, N, D]`` and their entity groups: o_i with each other agent's token widened from 2 to 4 dims
    (zero-padded, so all variants share one network shape), the 2 extra dims then filled with that agent's velocity
    or its previous relative position; the last variant also appends the agent's own previous velocity and
    position. At an episode's first step the previous frame is the current one."""
    start = 4 + 2 * n  # o_i = [vel 2, pos 2, landmark_rel 2N, other_rel 2(N-1), comm 2(N-1)]
    others = [[j for j in range(n) if j != i] for i in range(n)]
    prev = obs.clone()
    later = steps[1:] > 0
    prev[1:][later] = obs[:-1][later]

    def widened(extra: torch.Tensor) -> torch.Tensor:  # extra [T, N, N-1, 2]
        rel = obs[..., start:start + 2 * (n - 1)].unflatten(-1, (n - 1, 2))
        return torch.cat([obs[..., :start], torch.cat([rel, extra], -1).flatten(-2), obs[..., start + 2 * (n - 1):]],
                         -1)

    groups = [[4, n, 2], [start, n - 1, 4]]
    velocity = torch.stack([obs[:, others[i], 0:2] for i in range(n)], 1)
    memory = widened(prev[..., start:start + 2 * (n - 1)].unflatten(-1, (n - 1, 2)))
    return {
        "o_i (others' tokens zero-padded)": (widened(torch.zeros_like(velocity)), groups),
        "+ others' velocities (privileged: not in o_i)": (widened(velocity), groups),
        "+ others' previous relative positions (one frame of memory)": (memory, groups),
        "+ also the agent's own previous velocity and position": (torch.cat([memory, prev[..., :4]], -1), groups),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--inputs", action="store_true",
                        help="fit the expert student from o_i plus information it lacks, not the student networks")
    parser.add_argument("--doc", type=Path, default=None,
                        help="default: docs/results_mpe_capacity.md (docs/results_mpe_inputs.md with --inputs)")
    args = parser.parse_args()
    args.doc = args.doc or REPO / ("docs/results_mpe_inputs.md" if args.inputs else "docs/results_mpe_capacity.md")
    torch.set_num_threads(1)
    started = time.time()
    dm = MPEDataModule(quality="expert", data_seed=args.seed, cache_dir=str(REPO / "data_cache"))
    dm.prepare_data()
    dm.setup()
    ckpt = REPO / f"runs/benchmarks/mpe/expert/seed{args.seed}/teacher/final.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"no teacher at {ckpt}: train it first with "
                         f"python benchmarks/mpe_table.py --qualities expert --seeds {args.seed}")
    teacher = FlowTeacher.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = dm.data
    obs = data.gather(torch.arange(data.n_transitions))["obs"]
    n, a = teacher.n_agents, teacher.action_dim
    gen = torch.Generator().manual_seed(args.seed)

    @torch.no_grad()
    def teacher_actions() -> torch.Tensor:  # one fresh noise draw per call
        return torch.cat([teacher.sample(o, torch.randn(len(o), n, a, generator=gen)).clamp(-1, 1)
                          for o in obs.split(4096)])

    target, target_again = teacher_actions(), teacher_actions()
    spread = (target - target_again).pow(2).mean().item() / 2
    steps = step_in_episode(data.episode_ids)
    held_out = data.episode_ids > data.episode_ids.max() - HELD_OUT_EPISODES
    train_idx, test_idx = torch.nonzero(~held_out).flatten(), torch.nonzero(held_out).flatten()
    noise_dim = n * a  # shared noise, as the expert student reads it
    if args.inputs:
        expert = {k: v for k, v in EXPERT_POLICY["init_args"].items() if k != "entity_groups"}
        fits = {name: (x, lambda d, *rest, g=groups: EntityAttentionPolicy(d, *rest, entity_groups=g, **expert), 3000,
                       None) for name, (x, groups) in input_variants(obs, steps, n).items()}
    else:
        fits = {name: (obs, *spec) for name, spec in STUDENTS.items()}
    rows = []
    for name, (inputs, factory, n_steps, augment) in fits.items():
        torch.manual_seed(args.seed)
        net = factory(inputs.shape[-1], a, n, noise_dim)
        t0 = time.time()
        fit_by_regression(net, inputs, target, train_idx, n_steps, noise_dim, random_noise=True, batch=args.batch,
                          lr=args.lr, augment=augment, augment_seed=args.seed)
        err = squared_error(net, inputs, target, test_idx, noise_dim, random_noise=True).mean((1, 2))
        at = steps[test_idx]
        bins = [err[(at >= lo) & (at < hi)].mean().item() for lo, hi in STEP_BINS]
        rows.append(f"| {name} | {n_steps} | " + " | ".join(f"{b:.4f}" for b in bins)
                    + f" | {err.mean().item():.4f} | {time.time() - t0:.0f} |")
        print(rows[-1], flush=True)
    title = "information probe: o_i and what it lacks" if args.inputs else "student capacity probe"
    header = [f"# MPE {title} (expert, seed {args.seed})", "",
              f"Made by `OMP_NUM_THREADS=1 python benchmarks/mpe_student_capacity.py --seed {args.seed}"
              f"{' --inputs' if args.inputs else ''}` "
              f"({time.time() - started:.0f} s). Regression of the frozen teacher's actions (the distillation term "
              f"alone, batch {args.batch}, Adam lr {args.lr}) on all but the last {HELD_OUT_EPISODES} episodes; "
              "mean squared error on those held-out episodes by step in the episode. The teacher's own spread over "
              f"noise draws on the data: {spread:.5f} (half the mean squared difference of two draws).", "",
              f"| {'input of the expert config student' if args.inputs else 'student network'} | steps | MSE steps 0-2 "
              "| 3-7 | 8-14 | 15-24 | all | seconds |",
              "|---|---|---|---|---|---|---|---|"]
    table = "\n".join(header + rows) + "\n"
    print(table)
    args.doc.write_text(table)


if __name__ == "__main__":
    main()
