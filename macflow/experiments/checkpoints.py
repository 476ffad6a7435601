"""A grid row's trained model, found through its record: ``run_dir/final.ckpt`` loaded as its evaluation builds it.

A row is ``method`` or ``method.variant``. A variant's ``--model.init_args.KEY=VALUE`` flags (e.g. a teacher's
``flow_steps``) are applied as hyperparameter overrides when loading, as ``validate`` builds the model from its
config before loading the weights; its other flags (data, trainer) do not change the model.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import LightningModule

from macflow.experiments.grid import Grid, expand
from macflow.experiments.records import read_json, record_path

MODEL_FLAG = "--model.init_args."


def model_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``{KEY: value}`` of the ``--model.init_args.KEY=VALUE`` flags in ``args`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith(MODEL_FLAG):
            continue
        key, eq, value = arg[len(MODEL_FLAG):].partition("=")
        if not eq or "." in key:
            raise ValueError(f"{arg}: only flat --model.init_args.KEY=VALUE flags can be applied to a checkpoint")
        out[key] = yaml.safe_load(value)
    return out


def variant_overrides(grid: Grid, method: str, variant: str | None, dataset: str) -> dict[str, Any]:
    """The hyperparameters ``variant`` of ``method`` changes on the loaded checkpoint (empty for its own run)."""
    if variant is None:
        return {}
    variants = grid.methods[method].variants
    if variant not in variants:
        raise SystemExit(f"{grid.path}: method '{method}' has no variant '{variant}' (have {sorted(variants)})")
    return model_overrides([expand(a, dataset) for a in variants[variant]])


def row_record(grid: Grid, records: Path, method: str, variant: str | None, dataset: str, seed: int
               ) -> dict[str, Any]:
    """The runner's record of the row's (dataset, seed) run; it names the run directory with ``final.ckpt``."""
    if method not in grid.methods:
        raise SystemExit(f"{grid.path}: no method '{method}' (have {sorted(grid.methods)})")
    path = record_path(records, grid.name, method, dataset, seed, variant)
    record = read_json(path)
    how = f"run it: python -m macflow.experiments run {grid.path} --seeds {seed} --methods {method}"
    if record is None:
        raise SystemExit(f"no record {path}; {how}")
    if record.get("source") != "runner" or not record.get("run_dir"):
        raise SystemExit(f"{path} is a converted record without a checkpoint; {how}")
    ckpt = Path(record["run_dir"]) / "final.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{path} names {ckpt}, which is not here (run directories are not committed); {how}")
    return record


def load_model(record: dict[str, Any], overrides: dict[str, Any] | None = None) -> LightningModule:
    """The record's ``final.ckpt`` as its ``model.class_path``, on the CPU, in eval mode, with ``overrides``."""
    module, _, name = record["config"]["model"]["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    model = cls.load_from_checkpoint(Path(record["run_dir"]) / "final.ckpt", map_location="cpu",
                                     **(overrides or {}))
    return model.eval()
