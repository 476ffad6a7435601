"""One-off: convert the results of the table scripts that came before the runner into records (``source:
converted``), so the MPE and MaMuJoCo grids render before they are re-run.

    python -m macflow.experiments convert-legacy

Sources: the per-cell JSON files under ``docs/cells/mamujoco/`` (HalfCheetah), the per-cell lines of the Hopper
sections of ``docs/results_mamujoco.md``, and the aggregate MPE table of ``docs/results_mpe.md`` (the only form its
numbers exist in: recorded as ``summary`` records, mean ± std over 3 seeds). A record the runner has made since is
never overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from macflow.experiments.records import read_json, write_json

MAMUJOCO_EPISODES = 5
"""Evaluation episodes of every legacy MaMuJoCo cell (their tables' commands)."""
MPE_EPISODES = 100


def converted(grid: str, method: str, dataset: str, seed: Any, variant: str | None, metrics: dict[str, float],
              source: str, commit: str, command: str, **extra: Any) -> dict[str, Any]:
    """A converted record: the fields a runner record has where the source knows them, the rest ``None``."""
    short, _, dirty = commit.partition("+")
    return {"grid": grid, "method": method, "dataset": dataset, "seed": seed, "variant": variant,
            "stage": "fit" if variant is None else "eval", "config": None, "config_hash": None,
            "fit_args": None, "validate_args": None, "command": command, "git": {"commit": short, "dirty": bool(dirty)},
            "metrics": metrics, "fit_seconds": None, "eval_seconds": None, "device": None, "started": None,
            "source": "converted", "converted_from": source, **extra}


def save(records: Path, record: dict[str, Any]) -> bool:
    """Write ``record`` unless a runner-made record holds its place; True when written."""
    seed = record["seed"]
    name = (f"seed{seed}" if isinstance(seed, int) else "summary") + (
        "" if record["variant"] is None else f".{record['variant']}") + ".json"
    path = records / record["grid"] / record["method"] / record["dataset"] / name
    old = read_json(path)
    if old is not None and old.get("source") == "runner":
        return False
    write_json(path, record)
    return True


def halfcheetah(cells: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(cells.glob("HalfCheetah/*/seed*.json")):
        c = json.loads(path.read_text())
        for method, variant, key in (("teacher", None, "teacher"), ("teacher", "held", "teacher_held"),
                                     ("student", None, "student"), ("student", "held", "student_held")):
            if key in c:
                metrics = {"eval/return": c[key], "data/return": c["data"], "eval/episodes": float(c["settings"]["episodes"])}
                out.append(converted("mamujoco_halfcheetah", method, c["quality"], c["seed"], variant, metrics,
                                     str(path), c["commit"], c["command"], cell_seconds=c.get("seconds")))
    return out


CELL_LINE = re.compile(r"^- (\S+): (.*)$")
SEED_ITEM = re.compile(r"seed (\d+): ([-\d.]+) / ([-\d.]+) / ([-\d.]+) / ([-\d.]+) \(([-\d.]+), ([\d.]+) min\)")


def hopper(doc: Path) -> list[dict[str, Any]]:
    """Hopper cells from the 'Per cell' lines (behaviour / teacher / teacher held / student) of the two sections."""
    text = doc.read_text()
    out = []
    for section, suffix in (("Hopper table", ""), ("Hopper-omiga table", "-omiga")):
        body = text.split(f"<!-- {section}:start -->", 1)[1].split(f"<!-- {section}:end -->", 1)[0]
        commits = re.search(r"; code ([^.]+)\. Do not edit", body).group(1)
        command = "; ".join(re.findall(r"`(OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py[^`]*)`", body))
        for line in body.splitlines():
            match = CELL_LINE.match(line)
            if not match or "seed" not in match.group(2):
                continue
            quality = match.group(1)
            for item in SEED_ITEM.finditer(match.group(2)):
                seed = int(item.group(1))
                data, teacher, held, student = (float(item.group(k)) for k in (2, 3, 4, 5))
                for method, variant, ret in (("teacher", None, teacher), ("teacher", "held", held),
                                             ("student", None, student)):
                    metrics = {"eval/return": ret, "data/return": data, "eval/episodes": float(MAMUJOCO_EPISODES)}
                    out.append(converted("mamujoco_hopper", method, quality + suffix, seed, variant, metrics,
                                         f"{doc} ({section}, per-cell line, rounded to integers)", commits, command,
                                         cell_seconds=float(item.group(7)) * 60))
    return out


PM = re.compile(r"(-?[\d.]+) ± ([\d.]+)( %)?")


def mpe(doc: Path) -> list[dict[str, Any]]:
    """The MPE table's aggregates (mean ± std over seeds 0 1 2) as summary records."""
    text = doc.read_text()
    command = re.search(r"Made by `([^`]*)`", text).group(1)
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 9 or cells[0] not in ("expert", "medium", "medium-replay", "random"):
            continue
        pairs = []
        for c in cells[1:]:
            m = PM.fullmatch(c)
            scale = 0.01 if m.group(3) else 1.0
            pairs.append({"mean": float(m.group(1)) * scale, "std": float(m.group(2)) * scale, "n": 3})
        data, teacher, student, zero, data_n, teacher_n, student_n, zero_n = pairs
        for method, variant, ret, norm in (("teacher", None, teacher, teacher_n), ("student", None, student, student_n),
                                           ("student", "zero", zero, zero_n)):
            summary = {"eval/return": ret, "eval/normalized_score": norm, "data/return": data,
                       "data/normalized_return": data_n}
            out.append(converted("mpe", method, cells[0], None, variant, {"eval/episodes": float(MPE_EPISODES)},
                                 f"{doc} (aggregate table)", "unknown", command, summary=summary, n_seeds=3,
                                 seeds=[0, 1, 2]))
    return out


def convert(records: Path = Path("docs/records"), docs: Path = Path("docs")) -> int:
    """Write every converted record; returns how many were written."""
    made = halfcheetah(docs / "cells/mamujoco") + hopper(docs / "results_mamujoco.md") + mpe(docs / "results_mpe.md")
    return sum(save(records, r) for r in made)
