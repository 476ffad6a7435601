"""``python -m macflow.datagen {mpe,mamujoco,smax} ...``: generate behaviour datasets into the datamodules' cache.

* ``mpe --qualities all --episodes 2000 --seed 0``: the scripted simple_spread behaviours and the references of
  the normalised score (``data_cache/mpe/``).
* ``mamujoco --scenario HalfCheetah --agent-conf 2x3 --qualities all --episodes 100``: trains the seeded behaviour
  policies (ARS, CPG) and collects every requested quality (``data_cache/mamujoco/``).
* ``smax --map 3m --qualities all --episodes 2000 --seed 0``: the SMAX behaviours in jaxmarl's simulator
  (``data_cache/smax/``; needs ``pip install 'macflow[smax]'``).

Each dataset is the ``.npz`` + ``.json`` manifest the datamodule reads; existing datasets are kept. This entry
point builds the datamodules (their cache paths and defaults), so it sits above both ``datagen`` and
``datamodules``; nothing imports it.
"""

from __future__ import annotations

import argparse
import json
import sys

from macflow.datagen import GENERATORS, register
from macflow.datagen.mamujoco import QUALITIES
from macflow.datagen.mpe import QUALITIES as MPE_QUALITIES
from macflow.datagen.smax import QUALITIES as SMAX_QUALITIES


def _mpe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--qualities", default="all", help=f"comma-separated from {', '.join(MPE_QUALITIES)}, or 'all'")
    p.add_argument("--episodes", type=int, default=None, help="episodes per quality (default: the datamodule's)")
    p.add_argument("--seed", type=int, default=0, help="data_seed of the generated episodes")
    p.add_argument("--n-agents", type=int, default=3)
    p.add_argument("--physics", default="mpe2", choices=["mpe2", "omar"])
    p.add_argument("--reward", default="mpe2", choices=["mpe2", "omar"])
    p.add_argument("--reference-episodes", type=int, default=200, help="episodes of the normalised-score references")
    p.add_argument("--cache-dir", default="data_cache")


def _mpe_run(args: argparse.Namespace) -> None:
    from macflow.datamodules.mpe import MPEDataModule

    qualities = MPE_QUALITIES if args.qualities == "all" else tuple(args.qualities.split(","))
    for q in qualities:
        dm = MPEDataModule(quality=q, n_agents=args.n_agents, physics=args.physics, reward=args.reward,
                           n_episodes=args.episodes, n_reference_episodes=args.reference_episodes,
                           cache_dir=args.cache_dir, data_seed=args.seed)
        dm.prepare_data()
        m = dm.manifest()
        print(json.dumps({"quality": q, "path": str(dm.dataset_path()), "episodes": m["episodes"],
                          "transitions": m["transitions"], "mean_return": round(m["mean_return"], 2),
                          "normalized_mean_return": round(m["normalized_mean_return"], 3)}), flush=True)


def _mamujoco_args(p: argparse.ArgumentParser) -> None:
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


def _smax_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--map", default="3m", help="a SMAX map: 3m, 2s3z, 5m_vs_6m, smacv2_5_units, ...")
    p.add_argument("--qualities", default="all", help=f"comma-separated from {', '.join(SMAX_QUALITIES)}, or 'all'")
    p.add_argument("--episodes", type=int, default=None, help="episodes per quality (default: the datamodule's)")
    p.add_argument("--seed", type=int, default=0, help="data_seed of the generated episodes")
    p.add_argument("--cache-dir", default="data_cache")


def _smax_run(args: argparse.Namespace) -> None:
    from macflow.datamodules.smax import SMAXDataModule

    qualities = SMAX_QUALITIES if args.qualities == "all" else tuple(args.qualities.split(","))
    for q in qualities:
        dm = SMAXDataModule(map_name=args.map, quality=q, n_episodes=args.episodes, cache_dir=args.cache_dir,
                            data_seed=args.seed)
        dm.prepare_data()
        m = dm.manifest()
        print(json.dumps({"map": args.map, "quality": q, "path": str(dm.dataset_path()), "episodes": m["episodes"],
                          "transitions": m["transitions"], "win_rate": round(m["win_rate"], 3),
                          "mean_return": round(m["mean_return"], 3), "mean_length": round(m["mean_length"], 1),
                          "seconds": m["generation_seconds"]}), flush=True)


register("mpe", _mpe_args, _mpe_run)
register("mamujoco", _mamujoco_args, _mamujoco_run)
register("smax", _smax_args, _smax_run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m macflow.datagen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, (add, _) in GENERATORS.items():
        add(sub.add_parser(name))
    args = parser.parse_args(argv)
    GENERATORS[args.benchmark][1](args)


if __name__ == "__main__":
    main(sys.argv[1:])
