"""Experiment grids: run (method x dataset x seed) cells through the CLI, keep one record per run, render tables.

    python -m macflow.experiments run configs/experiments/coordination.yaml [--seeds 0] [--dry-run]
    python -m macflow.experiments render configs/experiments/coordination.yaml

Modules: :mod:`grid` (the YAML file), :mod:`runner` (cells -> CLI calls), :mod:`provenance` (config hash, commit,
device), :mod:`records` (the JSON records), :mod:`stats` and :mod:`render` (records -> Markdown).
"""
