"""A grid's datasets as records: each (dataset, seed) is prepared through the datamodule a fit builds and its
manifest is recorded, so the generated-dataset tables come from records like every other table.

The record lives at ``<records>/<grid>/data/<dataset>/seed<k>.json`` (method ``data``, the row name tables use) and
holds the resolved ``data`` config, its hash, the manifest, the ``data/*`` numbers of :func:`manifest_metrics`, the
wall time of ``prepare_data()`` (the generation itself when the dataset was not cached), the commit and the machine.
Data without a manifest (the coordination game, public datasets) has no record.
"""

from __future__ import annotations

import time
from numbers import Real
from pathlib import Path
from typing import Any

DATA = "data"
"""The method name of data records (and of the table row that shows them); no grid method may take it."""

MANIFEST_METRICS = {
    "mean_return": "data/return", "std_return": "data/return_std", "normalized_mean_return": "data/normalized_return",
    "win_rate": "data/win_rate", "episodes": "data/episodes", "transitions": "data/transitions",
    "mean_length": "data/mean_length", "collection_seconds": "data/seconds", "generation_seconds": "data/seconds",
    "behaviour_training_seconds": "data/behaviour_training_seconds",
}
"""Manifest key -> the metric it is recorded as (the datagen modules name the generation time differently)."""
TIMING_METRICS = frozenset(metric for key, metric in MANIFEST_METRICS.items() if key.endswith("_seconds"))
"""Metrics that time the generation (the manifest's ``*_seconds``): they differ between two generations of the
same data."""


def same_dataset(record: dict[str, Any], metrics: dict[str, float], manifest: dict[str, Any]) -> bool:
    """Whether a data record describes the dataset of ``manifest``: the same numbers apart from the generation's
    timing, and the same file hashes where both manifests have them."""
    def untimed(m: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in m.items() if k not in TIMING_METRICS}

    hashes = ((record.get("manifest") or {}).get("sha256"), manifest.get("sha256"))
    return untimed(record.get("metrics") or {}) == untimed(metrics) and (None in hashes or hashes[0] == hashes[1])


def manifest_metrics(manifest: dict[str, Any]) -> dict[str, float]:
    """The numbers of a generated dataset's manifest as ``data/*`` metrics, with ``data/mode<k>_return`` for each
    behaviour mode's mean return."""
    out = {MANIFEST_METRICS[k]: float(v) for k, v in manifest.items()
           if k in MANIFEST_METRICS and isinstance(v, Real) and not isinstance(v, bool)}
    for mode, value in (manifest.get("mode_returns") or {}).items():
        out[f"data/mode{mode}_return"] = float(value)
    return out


def read_manifest(datamodule: Any) -> dict[str, Any] | None:
    """The datamodule's manifest, or ``None`` for data without one (or not generated yet)."""
    manifest = getattr(datamodule, "manifest", None)
    if not callable(manifest):
        return None
    try:
        return manifest()
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def prepare(data_config: dict[str, Any]) -> tuple[dict[str, Any] | None, float, bool]:
    """Build the datamodule of a resolved ``data`` config, run ``prepare_data()`` (generating the dataset unless it
    is cached) and return (its manifest or ``None``, the seconds it took, whether it generated)."""
    from lightning.pytorch.cli import instantiate_class

    datamodule = instantiate_class((), data_config)
    if not callable(getattr(datamodule, "manifest", None)):
        return None, 0.0, False
    path = getattr(datamodule, "dataset_path", None)
    cached = callable(path) and Path(path()).is_file()
    started = time.time()
    datamodule.prepare_data()
    return read_manifest(datamodule), round(time.time() - started, 2), not cached
