"""Replaced by the experiment runner (docs/experiments.md)."""

raise SystemExit("benchmarks/coordination.py is replaced by the experiment runner: python -m macflow.experiments run "
                 "configs/experiments/coordination.yaml, then python -m macflow.experiments render <same grid>")
