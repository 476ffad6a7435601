"""``python -m macflow.experiments {run,status,render,latency,figures} <grid.yaml>``: see
macflow/experiments."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from macflow.experiments.grid import GridError, load_grid
from macflow.experiments.runner import RECORDS, RUNS, Runner


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m macflow.experiments", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate every cell of a grid (finished runs are reused)")
    run.add_argument("grid", type=Path, help="configs/experiments/<name>.yaml")
    run.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: the grid's)")
    run.add_argument("--datasets", nargs="+", help="only these datasets")
    run.add_argument("--methods", nargs="+", help="only these methods (their teachers are run too)")
    run.add_argument("--dry-run", action="store_true", help="print each cell's run directory and fit command")
    run.add_argument("--data-only", action="store_true",
                     help="only prepare the datasets and write their data records (no training)")
    run.add_argument("--runs", type=Path, default=RUNS, help="root of the run directories (checkpoints)")
    run.add_argument("--records", type=Path, default=RECORDS, help="root of the committed records")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the tables' setting)")
    stat = sub.add_parser("status", help="say for every cell whether its record was made with today's config")
    stat.add_argument("grid", type=Path)
    stat.add_argument("--seeds", type=int, nargs="+")
    stat.add_argument("--datasets", nargs="+")
    stat.add_argument("--methods", nargs="+")
    stat.add_argument("--runs", type=Path, default=RUNS)
    stat.add_argument("--records", type=Path, default=RECORDS)
    draw = sub.add_parser("render", help="rewrite the grid's tables in its doc from the records")
    draw.add_argument("grid", type=Path)
    draw.add_argument("--records", type=Path, default=RECORDS)
    draw.add_argument("--doc", type=Path, help="write here instead of the grid's doc")
    lat = sub.add_parser("latency", help="time every method's decision from its checkpoint -> <records>/<grid>/"
                         "latency.json")
    lat.add_argument("grid", type=Path)
    lat.add_argument("--records", type=Path, default=RECORDS)
    lat.add_argument("--seed", type=int, help="whose checkpoints (default: the grid's latency.seed, else 0)")
    lat.add_argument("--batch-sizes", type=int, nargs="+", help="default: the grid's latency.batch_sizes, else 1 1024")
    lat.add_argument("--repeats", type=int, help="interleaved rounds (default 9)")
    lat.add_argument("--min-time", type=float, help="seconds per timed block (default 0.02)")
    lat.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    figs = sub.add_parser("figures", help="draw the grid's figures that need checkpoints (coordination_samples)")
    figs.add_argument("grid", type=Path)
    figs.add_argument("--records", type=Path, default=RECORDS)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        command(args)
    except GridError as err:  # a mistake in the grid file: its message names the file and key, no traceback
        raise SystemExit(str(err)) from None


def command(args: argparse.Namespace) -> None:
    grid = load_grid(args.grid)
    if args.command == "run":
        torch.set_num_threads(args.threads)
        runner = Runner(grid, args.runs, args.records, dry_run=args.dry_run)
        unknown = set(args.methods or []) - set(grid.methods)
        if unknown:
            raise SystemExit(f"{grid.path}: no method(s) {sorted(unknown)} (have {sorted(grid.methods)})")
        runner.run(args.methods, args.datasets, args.seeds, args.data_only)
        print(f"[{grid.name}] {runner.fits} fit(s), {runner.evaluations} evaluation(s) run")
    elif args.command == "status":
        from macflow.experiments.status import default_runner, grid_status

        grid_status(default_runner(grid, args.runs, args.records), args.methods, args.datasets, args.seeds)
    elif args.command == "render":
        from macflow.experiments.render import render

        print(f"[{grid.name}] wrote {render(grid, args.records, args.doc)}")
    elif args.command == "latency":
        from macflow.experiments.latency import latency_path, measure_grid

        measure_grid(grid, args.records, args.seed, args.batch_sizes, args.repeats, args.min_time, args.threads)
        print(f"[{grid.name}] wrote {latency_path(args.records, grid.name)}")
    elif args.command == "figures":
        from macflow.experiments.figures import draw_from_checkpoints

        if not draw_from_checkpoints(grid, args.records):
            print(f"[{grid.name}] no figure drawn from checkpoints (render draws the others)")

if __name__ == "__main__":
    main()
