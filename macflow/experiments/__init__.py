"""Experiment grids: run (method x dataset x seed) cells through the CLI, keep one record per run, render tables.

    python -m macflow.experiments run configs/experiments/coordination.yaml [--seeds 0] [--dry-run]
    python -m macflow.experiments render configs/experiments/coordination.yaml
    python -m macflow.experiments latency configs/experiments/baselines.yaml   # before render, for latency columns
    python -m macflow.experiments figures configs/experiments/coordination.yaml   # figures drawn from checkpoints

Modules: :mod:`grid` (the YAML file), :mod:`runner` (cells -> CLI calls), :mod:`provenance` (config hash, commit,
device), :mod:`records` (the JSON records), :mod:`stats` and :mod:`render` (records -> Markdown), :mod:`latency`
(decision latency of the trained models), :mod:`checkpoints` (a row's trained model) and :mod:`figures`.
"""
