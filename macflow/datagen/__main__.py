"""``python -m macflow.datagen mamujoco --scenario HalfCheetah --agent-conf 2x3 --qualities all --episodes 100``.

Trains the seeded behaviour policies (ARS, CPG) and collects every requested quality into the same cache the
datamodule reads (``data_cache/mamujoco/...npz`` + ``.json`` manifest); existing datasets are kept."""

from __future__ import annotations

import argparse
import json
import sys

from macflow.datagen import GENERATORS, register


def _mamujoco_args(p: argparse.ArgumentParser) -> None:
    from macflow.datagen.mamujoco import QUALITIES

    p.add_argument("--scenario", default="HalfCheetah", choices=["HalfCheetah", "Hopper", "Ant"])
    p.add_argument("--agent-conf", default=None, help="2x3 (HalfCheetah), 3x1 (Hopper), 2x4 (Ant)")
    p.add_argument("--qualities", default="all", help=f"comma-separated from {', '.join(QUALITIES)}, or 'all'")
    p.add_argument("--episodes", type=int, default=None, help="episodes per quality (default: the datamodule's)")
    p.add_argument("--seed", type=int, default=0, help="data_seed: behaviour training and collection")
    p.add_argument("--budget", default=None, help="behaviour-training budget: default, hopper or tiny")
    p.add_argument("--obs-layout", default="mamujoco", choices=["mamujoco", "omiga", "omar"])
    p.add_argument("--cache-dir", default="data_cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _mamujoco_run(args: argparse.Namespace) -> None:
    from macflow.datagen.mamujoco import QUALITIES
    from macflow.datamodules.mamujoco import DEFAULT_CONF, MaMuJoCoDataModule

    qualities = QUALITIES if args.qualities == "all" else tuple(args.qualities.split(","))
    for q in qualities:
        dm = MaMuJoCoDataModule(scenario=args.scenario, agent_conf=args.agent_conf or DEFAULT_CONF[args.scenario],
                                quality=q, n_episodes=args.episodes, budget=args.budget, obs_layout=args.obs_layout,
                                cache_dir=args.cache_dir, data_seed=args.seed, progress=not args.quiet)
        dm.prepare_data()
        m = dm.manifest()
        print(json.dumps({"quality": q, "path": str(dm.dataset_path()), "episodes": m["episodes"],
                          "transitions": m["transitions"], "mean_return": round(m["mean_return"], 1),
                          "std_return": round(m["std_return"], 1), "seconds": m["collection_seconds"]}), flush=True)


register("mamujoco", _mamujoco_args, _mamujoco_run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m macflow.datagen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, (add, _) in GENERATORS.items():
        add(sub.add_parser(name))
    args = parser.parse_args(argv)
    GENERATORS[args.benchmark][1](args)


if __name__ == "__main__":
    main(sys.argv[1:])
