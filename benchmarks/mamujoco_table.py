"""Replaced by the experiment runner (docs/experiments.md)."""

raise SystemExit("benchmarks/mamujoco_table.py is replaced by the experiment runner: python -m macflow.experiments run "
                 "configs/experiments/mamujoco_halfcheetah.yaml (or mamujoco_hopper.yaml), then "
                 "python -m macflow.experiments render <same grid>")
