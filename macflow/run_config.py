"""A run's resolved config without the settings that do not change its results: what the experiment runner hashes
and what a checkpoint records, so a fresh ``fit`` can tell whether a run directory holds the same run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

IGNORED_KEYS = (
    "trainer.enable_progress_bar",  # display only
    "trainer.enable_model_summary",
    "trainer.default_root_dir",  # the run directory itself (derived from the hash)
    "trainer.logger",  # where logs go, not what is trained
    "data.init_args.cache_dir",  # where generated data is cached (its content is fixed by the data args)
    "data.init_args.progress",
    "ckpt_path",
    "config",
)
"""Resolved-config keys (dotted) that do not change a run's results; the config hash leaves them out."""

DEFAULTS_LEFT_OUT = {"data.init_args.bad_transitions": "error", "data.init_args.obs_history": 1}
"""Options added after runs were recorded, left out of the hash at the value those runs had, so their run
directories and records keep their hash; any other value is hashed."""

MODEL_DEFAULTS_LEFT_OUT = {
    cls: {"normalize_obs": False}
    for cls in ("macflow.modules.GaussianBC", "macflow.modules.MATD3BC", "macflow.modules.DiffusionPolicy")
}
"""The same per model class (``model.class_path`` -> ``{init_arg: default}``), for options a class gained after its
runs were recorded while other classes had them already (and hash them)."""

RUN_DIR = "<run_dir>"
"""Stands for the run directory in the hashed config (callback paths derive from it)."""


def _pop(config: dict[str, Any], dotted: str, only_if: Any = None) -> None:
    """Remove the dotted key from ``config`` (only when its value is ``only_if``, if that is given)."""
    *parents, leaf = dotted.split(".")
    node: Any = config
    for name in parents:
        node = node.get(name) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict) and leaf in node and (only_if is None or node[leaf] == only_if):
        del node[leaf]


def hashed_config(config: dict[str, Any], run_dir: str | Path, replace: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """``config`` without :data:`IGNORED_KEYS` (nor :data:`DEFAULTS_LEFT_OUT` and :data:`MODEL_DEFAULTS_LEFT_OUT` at
    their defaults), the run directory written as :data:`RUN_DIR`, and every string in ``replace`` (e.g. a teacher
    checkpoint path -> its run's hash) swapped for its stand-in."""
    config = json.loads(json.dumps(config))
    for dotted in IGNORED_KEYS:
        _pop(config, dotted)
    for dotted, default in DEFAULTS_LEFT_OUT.items():
        _pop(config, dotted, only_if=default)
    model = config.get("model")
    if isinstance(model, dict):
        for name, default in MODEL_DEFAULTS_LEFT_OUT.get(model.get("class_path"), {}).items():
            _pop(config, f"model.init_args.{name}", only_if=default)
    swaps = dict(replace or {})
    root = str(run_dir)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            if value in swaps:
                return swaps[value]
            if value == root or value.startswith(root + os.sep):
                return RUN_DIR + value[len(root):]
        return value

    return walk(config)
