"""Run a grid's (method x dataset x seed) cells through the CLI a user runs, reusing finished runs.

First, per (dataset, seed), the dataset is prepared through the datamodule a fit builds and its manifest becomes a
data record (:mod:`macflow.experiments.datasets`). Then, per cell: ``fit`` (skipped when the run directory of the same resolved config already holds ``final.ckpt``), then
``validate --ckpt_path <run dir>/final.ckpt`` once per evaluation (the method's own, plus each evaluation-only
variant), each writing one record. A student method's cell runs after its teacher's cell of the same dataset and
seed and gets that run's ``final.ckpt`` as ``--model.init_args.teacher_ckpt``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from macflow.cli import resolve_config
from macflow.experiments.datasets import DATA, manifest_metrics, prepare, read_manifest, same_dataset
from macflow.experiments.grid import Grid, GridError, expand
from macflow.experiments.provenance import config_hash, device_info, git_commit, hashed_config
from macflow.experiments.records import read_json, record_path, write_json

RUNS = Path("runs/experiments")
"""Default root of the run directories (checkpoints; not committed)."""
RECORDS = Path("docs/records")
"""Default root of the committed records."""


def seed_args(seed: int) -> list[str]:
    """One seed for initialisation, sampling and the data (its generation and batch order)."""
    return [f"--seed_everything={seed}", f"--data.init_args.data_seed={seed}"]


def run_dir_args(run_dir: Path) -> list[str]:
    """The CLI arguments that put a run in ``run_dir``: the checkpoint group writes ``run_dir/final.ckpt`` when fit
    completes and a resumable ``run_dir/last.ckpt``; logs and the saved config go there too."""
    return [f"--trainer.default_root_dir={run_dir}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]


def run_cli(args: list[str]) -> Any:
    """``python -m macflow <args>`` in this process; returns the LightningCLI object."""
    from macflow.cli import main

    old = sys.argv
    sys.argv = ["macflow"]
    try:
        return main(args)
    finally:
        sys.argv = old


@dataclass(frozen=True)
class Planned:
    """A cell's resolved run: its config hash, run directory and the CLI arguments of ``fit`` and ``validate``."""

    method: str
    dataset: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    run_dir: Path
    fit_args: list[str]
    teacher: dict[str, Any] | None

    @property
    def ckpt(self) -> Path:
        return self.run_dir / "final.ckpt"


class Runner:
    """Runs a :class:`Grid`'s cells; ``fits`` and ``evaluations`` count the CLI calls actually made."""

    def __init__(self, grid: Grid, runs: Path = RUNS, records: Path = RECORDS, dry_run: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.grid, self.runs, self.records, self.dry_run, self.log = grid, Path(runs), Path(records), dry_run, log
        self.planned: dict[tuple[str, str, int], Planned] = {}
        self.fits = 0
        self.evaluations = 0

    # ------------------------------------------------------------------------------------------- planning
    def base_args(self, method: str, dataset: str, seed: int) -> list[str]:
        """Configs and flags of one cell, shared by its ``fit`` and ``validate`` (no run directory yet)."""
        m = self.grid.methods[method]
        args = [a for c in m.config for a in ("--config", expand(c, dataset))]
        args += [expand(a, dataset) for a in (*self.grid.datasets[dataset], *m.args, *m.dataset_args.get(dataset, ()))]
        args += seed_args(seed)
        args += [expand(a, dataset) for a in self.grid.fit_args]
        return args

    def plan(self, method: str, dataset: str, seed: int) -> Planned:
        """Resolve one cell (its teacher's cell must be planned first): config, hash and run directory."""
        key = (method, dataset, seed)
        if key in self.planned:
            return self.planned[key]
        m = self.grid.methods[method]
        args = self.base_args(method, dataset, seed)
        swaps, teacher = {}, None
        if m.teacher is not None:
            t = self.plan(m.teacher, dataset, seed)
            args.append(f"--model.init_args.teacher_ckpt={t.ckpt}")
            swaps[str(t.ckpt)] = f"<run of {m.teacher}: {t.config_hash}>"
            teacher = {"method": m.teacher, "config_hash": t.config_hash, "run_dir": str(t.run_dir)}
        cell_root = self.runs / self.grid.name / method / dataset
        pending = cell_root / f"seed{seed}-pending"
        resolved = resolve_config([*args, *run_dir_args(pending)], keep_none=True)
        if m.teacher is None and "teacher_ckpt" in (resolved.get("model", {}).get("init_args") or {}):
            raise GridError(f"{self.grid.path}: methods.{method}: its model distils a teacher (teacher_ckpt); name "
                            "the grid method that trains it, e.g. 'teacher: teacher', so the student reads that "
                            "run's final.ckpt")
        config = hashed_config(resolved, pending, swaps)
        digest = config_hash(config)
        run_dir = cell_root / f"seed{seed}-{digest[:12]}"
        planned = Planned(method, dataset, seed, config, digest, run_dir, [*args, *run_dir_args(run_dir)], teacher)
        self.planned[key] = planned
        return planned

    def evaluations_of(self, method: str, dataset: str) -> dict[str | None, list[str]]:
        """Variant name (``None``: the method's own evaluation) -> its extra ``validate`` flags."""
        m = self.grid.methods[method]
        own = [expand(a, dataset) for a in (*self.grid.validate_args, *m.validate_args)]
        out: dict[str | None, list[str]] = {None: own}
        for name, extra in m.variants.items():
            out[name] = own + [expand(a, dataset) for a in extra]
        return out

    # -------------------------------------------------------------------------------------------- running
    def run(self, methods: list[str] | None = None, datasets: list[str] | None = None,
            seeds: list[int] | None = None, data_only: bool = False) -> list[dict[str, Any]]:
        """Record the chosen datasets, then run the chosen cells (teachers of chosen students included) unless
        ``data_only``; returns the records written or reused. Every cell is planned (its config parsed) before the
        first fit, so a mistake in any cell stops the run before training starts."""
        cells, data = [], []
        for seed in seeds or self.grid.seeds:
            for dataset in datasets or list(self.grid.datasets):
                if dataset not in self.grid.datasets:
                    raise SystemExit(f"{self.grid.path}: no dataset '{dataset}' (have {sorted(self.grid.datasets)})")
                data.append((dataset, seed))
                for method in self.grid.training_order(methods):
                    if dataset in self.grid.method_datasets(method) and not data_only:
                        self.plan(method, dataset, seed)
                        cells.append((method, dataset, seed))
        records = [r for r in (self.record_data(*d) for d in data) if r is not None]
        return records + [record for cell in cells for record in self.run_cell(*cell)]

    def record_data(self, dataset: str, seed: int) -> dict[str, Any] | None:
        """The data record of (dataset, seed): its dataset prepared (generated unless cached) through the datamodule
        of the first method that trains on it; a committed record with the same config and data (numbers and file
        hashes, the generation time aside) is kept as it is. ``None`` for data without a manifest."""
        method = next(m for m in self.grid.training_order() if dataset in self.grid.method_datasets(m))
        resolved = resolve_config(self.base_args(method, dataset, seed), keep_none=True)
        config = hashed_config({"data": resolved["data"]}, self.runs)
        digest = config_hash(config)
        path = record_path(self.records, self.grid.name, DATA, dataset, seed)
        if self.dry_run:
            self.log(f"[{self.grid.name}] data / {dataset} / seed {seed}: prepared through {method}'s datamodule")
            return None
        started = time.time()
        manifest, seconds, generated = prepare(resolved["data"])
        if manifest is None:
            return None
        metrics = manifest_metrics(manifest)
        committed = read_json(path)
        if committed and committed.get("config_hash") == digest and same_dataset(committed, metrics, manifest):
            self.log(f"[{self.grid.name}] data / {dataset} / seed {seed}: as recorded")
            return committed
        record = {
            "grid": self.grid.name, "method": DATA, "dataset": dataset, "seed": seed, "variant": None,
            "stage": "data", "label": "behaviour data", "config": config, "config_hash": digest,
            "git": git_commit(), "metrics": metrics, "manifest": manifest, "generated": generated,
            "prepare_seconds": seconds, "device": device_info(), "started": _now(started), "source": "runner",
        }
        write_json(path, record)
        self.log(f"[{self.grid.name}] data / {dataset} / seed {seed} ({'generated' if generated else 'cached'}): "
                 + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
        return record

    def run_cell(self, method: str, dataset: str, seed: int) -> list[dict[str, Any]]:
        """Fit (unless finished) and evaluate one cell; one record per evaluation."""
        p = self.plan(method, dataset, seed)
        finished = p.ckpt.is_file()
        self.log(f"[{self.grid.name}] {method} / {dataset} / seed {seed}: {p.run_dir} "
                 f"({'finished, reused' if finished else 'to train'})")
        if self.dry_run:
            self.log("  python -m macflow fit " + " ".join(p.fit_args))
            return []
        fit_info = read_json(p.run_dir / "fit.json") or {}
        if not finished:
            started = time.time()
            run_cli(["fit", *p.fit_args])
            self.fits += 1
            if not p.ckpt.is_file():
                raise RuntimeError(f"fit finished without writing {p.ckpt}; is the FinalCheckpoint callback set?")
            fit_info = {"fit_seconds": round(time.time() - started, 2), "fit_started": _now(started)}
            for stale in p.run_dir.glob("record*.json"):  # evaluations of a model this fit replaced
                stale.unlink()
            write_json(p.run_dir / "fit.json", fit_info)
        records = []
        for variant, extra in self.evaluations_of(method, dataset).items():
            records.append(self.evaluate(p, variant, extra, fit_info))
        return records

    def evaluate(self, p: Planned, variant: str | None, extra: list[str], fit_info: dict[str, Any]
                 ) -> dict[str, Any]:
        """The record of one evaluation of ``p``'s checkpoint: reused from the run directory when it was made with
        the same flags, else made by ``validate``."""
        local = p.run_dir / ("record.json" if variant is None else f"record.{variant}.json")
        validate_args = [*p.fit_args, *extra, f"--ckpt_path={p.ckpt}"]
        record = read_json(local)
        if record is None or record.get("validate_args") != validate_args:
            started = time.time()
            cli = run_cli(["validate", *validate_args])
            self.evaluations += 1
            metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("eval/")}
            metrics.update(data_metrics(cli.datamodule))
            record = {
                "grid": self.grid.name, "method": p.method, "dataset": p.dataset, "seed": p.seed, "variant": variant,
                "stage": "fit" if variant is None else "eval",
                "label": self.grid.methods[p.method].label + ("" if variant is None else f", {variant}"),
                "config": p.config, "config_hash": p.config_hash, "run_dir": str(p.run_dir),
                "fit_args": ["fit", *p.fit_args], "validate_args": validate_args, "teacher": p.teacher,
                "git": git_commit(), "metrics": metrics, "fit_seconds": fit_info.get("fit_seconds"),
                "eval_seconds": round(time.time() - started, 2), "device": device_info(),
                "started": fit_info.get("fit_started", _now(started)), "eval_started": _now(started),
                "source": "runner",
            }
            write_json(local, record)
        write_json(record_path(self.records, self.grid.name, p.method, p.dataset, p.seed, variant), record)
        self.log(f"  {record['label']}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(record["metrics"].items())))
        return record


def data_metrics(datamodule: Any) -> dict[str, float]:
    """The ``data/*`` numbers of the dataset a run trained on (e.g. ``data/return``, its own mean episode return),
    from the manifest of a generated dataset; empty for data without one."""
    manifest = read_manifest(datamodule)
    return {} if manifest is None else manifest_metrics(manifest)


def _now(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
