"""Replaced by the experiment runner (docs/experiments.md)."""

raise SystemExit("benchmarks/mpe_table.py is replaced by the experiment runner: python -m macflow.experiments run "
                 "configs/experiments/mpe.yaml, then python -m macflow.experiments render <same grid>")
