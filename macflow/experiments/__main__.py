"""``python -m macflow.experiments {run,render,latency,convert-legacy} <grid.yaml>``: see macflow/experiments."""

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
    run.add_argument("--runs", type=Path, default=RUNS, help="root of the run directories (checkpoints)")
    run.add_argument("--records", type=Path, default=RECORDS, help="root of the committed records")
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the tables' setting)")
    draw = sub.add_parser("render", help="rewrite the grid's tables in its doc from the records")
    draw.add_argument("grid", type=Path)
    draw.add_argument("--records", type=Path, default=RECORDS)
    draw.add_argument("--doc", type=Path, help="write here instead of the grid's doc")
    legacy = sub.add_parser("convert-legacy", help="one-off: records from the tables made before the runner")
    legacy.add_argument("--records", type=Path, default=RECORDS)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "convert-legacy":
        from macflow.experiments.legacy import convert

        print(f"wrote {convert(args.records)} converted record(s) under {args.records}")
        return
    try:
        grid = load_grid(args.grid)
    except GridError as err:
        raise SystemExit(str(err)) from None
    if args.command == "run":
        torch.set_num_threads(args.threads)
        runner = Runner(grid, args.runs, args.records, dry_run=args.dry_run)
        unknown = set(args.methods or []) - set(grid.methods)
        if unknown:
            raise SystemExit(f"{grid.path}: no method(s) {sorted(unknown)} (have {sorted(grid.methods)})")
        runner.run(args.methods, args.datasets, args.seeds)
        print(f"[{grid.name}] {runner.fits} fit(s), {runner.evaluations} evaluation(s) run")
    elif args.command == "render":
        from macflow.experiments.render import render

        print(f"[{grid.name}] wrote {render(grid, args.records, args.doc)}")


if __name__ == "__main__":
    main()
