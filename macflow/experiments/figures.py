"""A grid's ``figures``: drawn from the records (``render``) or from the seed's checkpoints (``figures`` command).

``return_vs_latency`` (drawn by ``render``): one marker per row of a table (``table``, default the grid's first; or
``rows``), x its latency at batch ``latency`` (default 1) from the latency record, log scale, y the mean of
``metric`` (default ``eval/return``) over seeds with the std as error bars, on ``dataset`` (default the grid's
first), coloured by the methods' ``family``; ``title``, ``xlabel``, ``ylabel`` optional.

``coordination_samples`` (drawn by ``python -m macflow.experiments figures <grid>``): the coordination game's joint
actions, one panel per entry of ``panels``: ``{label, row}`` samples the row's checkpoint of ``seed`` (default 0) on
the first ``episodes`` (default 2000) evaluation episodes (the seeds ``validate`` uses), ``{label, data: true}``
shows as many logged decisions of that run's dataset. matplotlib is the optional extra ``macflow[viz]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from macflow.envs.coordination import joint_mode
from macflow.evaluation import eval_seeds, evaluate
from macflow.experiments.checkpoints import load_model, row_record, variant_overrides
from macflow.experiments.grid import Grid, parse_row
from macflow.experiments.latency import lookup
from macflow.experiments.render import group_records, row_label, table_rows, value
from macflow.experiments.stats import mean_std
from macflow.figures import FrontierPoint, coordination_samples, return_vs_latency


def frontier(grid: Grid, spec: dict[str, Any], records: list[dict[str, Any]], latency: dict[str, Any]) -> Path:
    """Draw one ``return_vs_latency`` figure; rows without a latency or a metric value are left out."""
    table = next((t for t in grid.tables if t["id"] == spec.get("table", grid.tables[0]["id"])), {})
    rows = table_rows(grid, {"rows": spec.get("rows") or table.get("rows")})
    dataset = spec.get("dataset", next(iter(grid.datasets)))
    batch = spec.get("latency", 1)
    column = {"metric": spec.get("metric", "eval/return")}
    by_key = group_records(records)
    points = []
    for method, variant, label in rows:
        ms = lookup(latency, method, variant, dataset, batch)
        values = [v for v in (value(r, column) for r in by_key.get((method, variant, dataset), [])) if v is not None]
        if ms is None or not values:
            continue
        mean, std = mean_std(values)
        family = grid.methods[method].family if method in grid.methods else ""
        points.append(FrontierPoint(row_label(grid, method, variant, label), ms, mean, std, family))
    if not points:
        raise SystemExit(f"{grid.path}: figure '{spec['id']}': no row has both a latency and '{column['metric']}'")
    return return_vs_latency(
        points, spec["path"], spec.get("title", ""),
        spec.get("xlabel", f"decision latency, whole team, batch {batch}, {latency['threads']} CPU thread(s) "
                           "(ms, log scale)"),
        spec.get("ylabel", f"{column['metric']} (mean ± std over seeds)"))


def draw_from_records(grid: Grid, records: list[dict[str, Any]], latency: dict[str, Any] | None) -> list[Path]:
    """Every figure of ``grid`` drawn from the records (``render`` calls this; none before the latency record)."""
    if latency is None:
        return []
    return [frontier(grid, spec, records, latency) for spec in grid.figures if spec["kind"] == "return_vs_latency"]


def build_datamodule(record: dict[str, Any]) -> Any:
    """The record's datamodule (``data.class_path`` with its ``init_args``)."""
    data = record["config"]["data"]
    module, _, name = data["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(data.get("init_args") or {}))


def recording(policy: Callable, seen: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable:
    """``policy`` that also keeps every (observations, actions) it is called with."""
    def act(obs: torch.Tensor, legal: torch.Tensor | None = None) -> torch.Tensor:
        actions = policy(obs, legal)
        seen.append((obs, actions))
        return actions
    return act


def coordination(grid: Grid, spec: dict[str, Any], records: Path, log: Callable[[str], None] = print) -> Path:
    """Draw one ``coordination_samples`` figure from the checkpoints of ``spec``'s seed."""
    seed, episodes = spec.get("seed", 0), spec.get("episodes", 2000)
    dataset = spec.get("dataset", next(iter(grid.datasets)))
    found = {}
    for panel in spec["panels"]:
        if "row" in panel:
            method, variant = parse_row(panel["row"])
            found[panel["row"]] = (row_record(grid, records, method, variant, dataset, seed),
                                   variant_overrides(grid, method, variant, dataset))
    if not found:
        raise SystemExit(f"{grid.path}: figure '{spec['id']}': name at least one panel with a 'row'")
    panels = {}
    for panel in spec["panels"]:
        if panel.get("data"):
            dm = build_datamodule(next(iter(found.values()))[0])
            dm.setup("fit")
            logged = dm.data.gather(torch.arange(episodes))
            s = logged["obs"][:, 0, 0]
            modes = joint_mode(logged["actions"], s, dm.hparams.n_modes)
            panels[panel["label"]] = (logged["actions"], s, float((modes >= 0).float().mean()))
            continue
        record, overrides = found[panel["row"]]
        model, dm = load_model(record, overrides), build_datamodule(record)
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        result = evaluate(dm, recording(model.policy, seen), eval_seeds(episodes), batch_size=episodes)
        obs, actions = seen[0]
        panels[panel["label"]] = (actions, obs[:, 0, 0], float(result["coordinated"].mean()))
        log(f"  {panel['label']}: {panels[panel['label']][2]:.3f} coordinated")
    return coordination_samples(panels, spec["path"])


def draw_from_checkpoints(grid: Grid, records: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Every figure of ``grid`` drawn from checkpoints (the ``figures`` command)."""
    out = []
    for spec in grid.figures:
        if spec["kind"] == "coordination_samples":
            out.append(coordination(grid, spec, records, log))
            log(f"[{grid.name}] wrote {out[-1]}")
    return out
