"""One JSON record per run (and per evaluation-only variant), written atomically, read back for the tables.

Records live in ``<records>/<grid>/<method>/<dataset>/seed<k>[.<variant>].json`` (``docs/records`` by default,
committed, so a fresh clone re-renders every table); a copy sits in the run directory, where it marks the run as
finished. ``source`` is ``runner`` for records this package made and ``converted`` for results carried over from
before it (with ``converted_from`` naming where).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

RECORD_FIELDS = ("grid", "method", "dataset", "seed", "variant", "stage", "config", "config_hash", "fit_args",
                 "validate_args", "git", "metrics", "fit_seconds", "eval_seconds", "device", "started", "source")
"""Keys every record made by the runner holds (students add ``teacher``)."""


def record_name(seed: int, variant: str | None = None) -> str:
    """``seed<k>.json`` for a run's own evaluation, ``seed<k>.<variant>.json`` for an evaluation-only variant."""
    return f"seed{seed}" + ("" if variant is None else f".{variant}") + ".json"


def record_path(records: Path, grid: str, method: str, dataset: str, seed: int, variant: str | None = None) -> Path:
    """Where the committed record of one (method, dataset, seed[, variant]) lives."""
    return Path(records) / grid / method / dataset / record_name(seed, variant)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def load_records(records: Path, grid: str) -> list[dict[str, Any]]:
    """Every record of ``grid`` under ``records`` (runner-made and converted), in path order."""
    root = Path(records) / grid
    out = []
    for path in sorted(root.glob("*/*/*.json")):
        record = json.loads(path.read_text())
        record["_path"] = str(path)
        out.append(record)
    return out
