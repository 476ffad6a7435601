"""``status``: for every cell of a grid, whether its record was made with the config ``run`` would use today.

A cell is ``current`` (its record's config hash is the planned one: ``run`` reuses it and ``render`` shows what the
grid says), ``differs`` (the record was made with another config: the keys that differ are listed, e.g. an option
added since, and ``run`` would train a new run beside it), ``aggregate`` (a published aggregate converted from
before the runner, no per-seed record) or ``missing``. ``checkpoint`` says whether this machine holds the planned
run's ``final.ckpt`` (a fresh checkout holds none: ``run`` retrains such cells even when their record is current).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from macflow.experiments.grid import Grid
from macflow.experiments.records import read_json, record_path
from macflow.experiments.runner import Runner

MISSING = object()
SHOWN = 80
"""Characters of a value a difference line shows."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def config_differences(recorded: Any, planned: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two configs differ, each marked ``(new)`` (only planned), ``(gone)`` (only recorded) or
    with both values."""
    if isinstance(recorded, dict) and isinstance(planned, dict):
        out: list[str] = []
        for key in sorted(set(recorded) | set(planned), key=str):
            here = f"{prefix}.{key}" if prefix else str(key)
            old, new = recorded.get(key, MISSING), planned.get(key, MISSING)
            if old is MISSING:
                out.append(f"{here} (new: {_short(new)})")
            elif new is MISSING:
                out.append(f"{here} (gone: {_short(old)})")
            else:
                out += config_differences(old, new, here)
        return out
    return [] if recorded == planned else [f"{prefix}: {_short(recorded)} -> {_short(planned)}"]


def cell_status(runner: Runner, method: str, dataset: str, seed: int) -> dict[str, Any]:
    """The status of one (method, dataset, seed) cell: ``state``, ``differences`` and ``checkpoint``."""
    planned = runner.plan(method, dataset, seed)
    record = read_json(record_path(runner.records, runner.grid.name, method, dataset, seed))
    out = {"method": method, "dataset": dataset, "seed": seed, "checkpoint": planned.ckpt.is_file(),
           "differences": []}
    if record is None:
        summary = runner.records / runner.grid.name / method / dataset / "summary.json"
        out["state"] = "aggregate" if summary.is_file() else "missing"
    elif record.get("config_hash") == planned.config_hash:
        out["state"] = "current"
    else:
        out["state"] = "differs"
        out["differences"] = config_differences(record.get("config", {}), planned.config)
    return out


def grid_status(runner: Runner, methods: list[str] | None = None, datasets: list[str] | None = None,
                seeds: list[int] | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every chosen cell's :func:`cell_status`, logged one line each, then the counts per state."""
    grid = runner.grid
    cells = []
    for method in grid.training_order(methods):
        for dataset in datasets or grid.method_datasets(method):
            if dataset not in grid.method_datasets(method):
                continue
            for seed in seeds or grid.seeds:
                cell = cell_status(runner, method, dataset, seed)
                cells.append(cell)
                where = "checkpoint here" if cell["checkpoint"] else "no checkpoint here"
                log(f"[{grid.name}] {method} / {dataset} / seed {seed}: {cell['state']} ({where})")
                for line in cell["differences"]:
                    log(f"    {line}")
    counts = Counter(c["state"] for c in cells)
    log(f"[{grid.name}] " + ", ".join(f"{counts[s]} {s}" for s in ("current", "differs", "aggregate", "missing")))
    return cells


def default_runner(grid: Grid, runs: Path, records: Path) -> Runner:
    """A planning-only runner (nothing is trained or written)."""
    return Runner(grid, runs, records, dry_run=True, log=lambda _: None)
