"""Team decision latency of a grid's trained models, side by side in one interleaved run, as one record.

    OMP_NUM_THREADS=1 python -m macflow.experiments latency configs/experiments/baselines.yaml

Times ``model.policy(obs)`` (the call evaluation makes: actions of all N agents) of every row: each method's
``final.ckpt`` of one seed (seed 0 unless the grid's ``latency.seed`` or ``--seed`` says otherwise), found through
its record, and each evaluation variant that changes the model (a ``--model.init_args`` flag, e.g. a teacher's
``flow_steps``), loaded with that change. Latency does not depend on the weights' values, so one seed stands for
all. Inputs are ``torch.randn`` observations (no numpy on the timed path) at every batch size (1 and 1024 unless
``latency.batch_sizes``), on one CPU thread unless ``--threads``. See :func:`measure` for the timing protocol.
The record, ``<records>/<grid>/latency.json``, holds the median ms per decision of each row at each batch size
and where it was measured; ``render`` reads it for ``latency`` columns and the return-vs-latency figure.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from macflow.experiments.checkpoints import load_model, row_record, variant_overrides
from macflow.experiments.grid import Grid, parse_row
from macflow.experiments.provenance import cpu_model, device_info, git_commit
from macflow.experiments.records import read_json, write_json

DEFAULTS = {"seed": 0, "batch_sizes": [1, 1024], "repeats": 9, "min_time": 0.02}
"""Settings of a grid's ``latency`` entry when it does not give them."""
LATENCY_KEYS = {*DEFAULTS, "rows", "datasets"}


def machine(device: str = "cpu") -> str:
    """The device in words: the GPU's name, or the CPU model with the torch version and thread count."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def measure(methods: Mapping[str, Callable[[torch.Tensor], Any]], obs: torch.Tensor | Mapping[str, torch.Tensor],
            repeats: int, min_time: float, device: str = "cpu") -> dict[str, float]:
    """Median seconds per call of each method, interleaved over ``repeats`` rounds.

    Every method is warmed up (two calls) and calibrated to enough calls to last ``min_time`` seconds; then in each
    round every method runs its calls in turn, so drift on a shared machine hits all methods alike. ``obs`` is one
    input for all, or one per method name.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    inputs = {name: obs[name] if isinstance(obs, Mapping) else obs for name in methods}
    calls = {}
    with torch.inference_mode():
        for name, fn in methods.items():  # warm-up and calibration
            for _ in range(2):
                fn(inputs[name])
            sync()
            t0 = time.perf_counter()
            fn(inputs[name])
            sync()
            calls[name] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-7)))
        samples: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(repeats):
            for name, fn in methods.items():
                sync()
                t0 = time.perf_counter()
                for _ in range(calls[name]):
                    fn(inputs[name])
                sync()
                samples[name].append((time.perf_counter() - t0) / calls[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def latency_path(records: Path, grid: str) -> Path:
    """Where a grid's latency record lives."""
    return Path(records) / grid / "latency.json"


def load_latency(records: Path, grid: str) -> dict[str, Any] | None:
    """The grid's latency record, or ``None`` before ``latency`` has run."""
    return read_json(latency_path(records, grid))


def settings(grid: Grid) -> dict[str, Any]:
    """The grid's ``latency`` entry over :data:`DEFAULTS`."""
    spec = dict(grid.latency or {})
    unknown = set(spec) - LATENCY_KEYS
    if unknown:
        raise SystemExit(f"{grid.path}: latency: unknown key(s) {sorted(unknown)}; it has {sorted(LATENCY_KEYS)}")
    return {**DEFAULTS, **spec}


def default_rows(grid: Grid) -> list[str]:
    """Every method, and each of its variants that changes the model (the others decide at the same cost)."""
    rows = []
    for m in grid.methods.values():
        rows.append(m.name)
        rows += [f"{m.name}.{v}" for v, args in m.variants.items() if any(a.startswith("--model.") for a in args)]
    return rows


def measure_grid(grid: Grid, records: Path, seed: int | None = None, batch_sizes: list[int] | None = None,
                 repeats: int | None = None, min_time: float | None = None, threads: int = 1,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every latency row of ``grid`` from its checkpoints, write the latency record and return it."""
    spec = settings(grid)
    seed = spec["seed"] if seed is None else seed
    batch_sizes = list(batch_sizes or spec["batch_sizes"])
    repeats = spec["repeats"] if repeats is None else repeats
    min_time = spec["min_time"] if min_time is None else min_time
    datasets = list(spec.get("datasets") or list(grid.datasets)[:1])
    torch.set_num_threads(threads)
    rows, acts, shapes = [], {}, {}
    for dataset in datasets:
        for row in spec.get("rows") or default_rows(grid):
            method, variant = parse_row(row)
            if dataset not in grid.method_datasets(method):
                continue
            record = row_record(grid, records, method, variant, dataset, seed)
            overrides = variant_overrides(grid, method, variant, dataset)
            model = load_model(record, overrides)
            key = f"{dataset}/{row}"
            acts[key] = model.policy
            shapes[key] = (model.n_agents, model.obs_dim)
            rows.append({"row": row, "method": method, "variant": variant, "dataset": dataset,
                         "label": record.get("label") or row, "run_dir": record["run_dir"],
                         "config_hash": record.get("config_hash"), "class_path": record["config"]["model"]["class_path"],
                         "overrides": overrides, "n_agents": model.n_agents, "obs_dim": model.obs_dim, "ms": {}})
    log(f"[{grid.name}] timing {len(rows)} row(s) of seed {seed} at batch sizes {batch_sizes}, {threads} thread(s)")
    started = time.time()
    for b in batch_sizes:
        gen = torch.Generator().manual_seed(0)
        obs = {k: torch.randn(b, n, o, generator=gen) for k, (n, o) in shapes.items()}
        torch.manual_seed(0)
        seconds = measure(acts, obs, repeats, min_time)
        for r in rows:
            r["ms"][str(b)] = seconds[f"{r['dataset']}/{r['row']}"] * 1e3
        log(f"  batch {b}: " + ", ".join(f"{r['row']} {r['ms'][str(b)]:.3f} ms" for r in rows))
    out = {"grid": grid.name, "seed": seed, "datasets": datasets, "batch_sizes": batch_sizes, "repeats": repeats,
           "min_time": min_time, "unit": "ms per team decision (median over rounds)", "rows": rows,
           "machine": machine("cpu"), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "device": device_info(), "git": git_commit(), "seconds": round(time.time() - started, 2),
           "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": f"python -m macflow.experiments latency {grid.path}"}
    write_json(latency_path(records, grid.name), out)
    return out


def lookup(latency: dict[str, Any] | None, method: str, variant: str | None, dataset: str, batch: int
           ) -> float | None:
    """Milliseconds per decision of one row at ``batch`` in a latency record (``None`` when not measured)."""
    for r in (latency or {}).get("rows", []):
        if (r["method"], r["variant"], r["dataset"]) == (method, variant, dataset):
            return r["ms"].get(str(batch))
    return None
