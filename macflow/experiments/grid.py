"""Load and check a grid file (``configs/experiments/<name>.yaml``): which methods, datasets and seeds to run.

A grid names ``methods`` (each a stack of ``--config`` files plus CLI flags; a student names the ``teacher``
method it distils), ``datasets`` (CLI flags shared by every method on that dataset) and ``seeds``. Every string
may use ``{dataset}``, which becomes the dataset's name. ``tables`` and ``figures`` are what ``render`` writes
(:mod:`macflow.experiments.render`, :mod:`macflow.experiments.figures`), ``latency`` how the ``latency`` command
times the trained models (:mod:`macflow.experiments.latency`). A grid may ``extend`` another: it runs the other's
cells on its own seeds (a validation grid), see :func:`load_grid`. Errors name the file and the key at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from macflow.experiments.datasets import DATA

GRID_KEYS = {"name", "doc", "seeds", "methods", "datasets", "fit_args", "validate_args", "tables", "figures",
             "latency", "extends"}
INHERITED_KEYS = ("doc", "seeds", "datasets", "methods", "fit_args", "validate_args")
"""What a grid takes from the grid it ``extends`` unless it sets the key itself: how the cells run, never what
is rendered (``name``, ``tables``, ``figures`` and ``latency`` belong to each file)."""
FIGURE_KINDS = ("return_vs_latency", "coordination_samples")
"""What a ``figures`` entry may draw (see :mod:`macflow.experiments.figures`)."""
METHOD_KEYS = {"config", "args", "teacher", "variants", "dataset_args", "validate_args", "label", "family",
               "datasets"}
TABLE_KEYS = {"id", "title", "text", "rows", "datasets", "columns", "sort_by", "per_seed", "aggregate"}
AGGREGATE_KEYS = {"metric", "reference", "ratio_to", "digits", "scale", "latency"}
"""An ``aggregate`` table's settings: the metric pooled over datasets and the row whose improvement it tests."""
COLUMN_KEYS = {"header", "metric", "min_of", "latency", "relative_to", "digits", "scale"}
COLUMN_SOURCES = ("metric", "min_of", "latency")
"""A column shows exactly one of these (see :mod:`macflow.experiments.render`)."""


class GridError(ValueError):
    """A grid file that cannot be run, with the file and key in the message."""


@dataclass(frozen=True)
class Method:
    """One trained model per (dataset, seed), plus evaluation-only ``variants`` of the same checkpoint."""

    name: str
    config: tuple[str, ...]
    args: tuple[str, ...] = ()
    teacher: str | None = None
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dataset_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    validate_args: tuple[str, ...] = ()
    datasets: tuple[str, ...] | None = None
    label: str = ""
    family: str = ""


@dataclass(frozen=True)
class Grid:
    """A parsed grid file; ``path`` is where it was read from."""

    name: str
    path: Path
    seeds: tuple[int, ...]
    methods: dict[str, Method]
    datasets: dict[str, tuple[str, ...]]
    fit_args: tuple[str, ...] = ()
    validate_args: tuple[str, ...] = ()
    doc: str | None = None
    tables: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def method_datasets(self, method: str) -> list[str]:
        """The datasets ``method`` runs on: its own ``datasets`` list, else all of the grid's."""
        chosen = self.methods[method].datasets
        return list(self.datasets) if chosen is None else list(chosen)

    def training_order(self, methods: list[str] | None = None) -> list[str]:
        """``methods`` (default all) with every teacher before its students, teachers of chosen students added."""
        wanted = list(self.methods) if methods is None else list(methods)
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            teacher = self.methods[name].teacher
            if teacher is not None:
                visit(teacher)
            order.append(name)

        for name in wanted:
            visit(name)
        return order


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float, bool)) for v in value):
        raise GridError(f"{where}: expected a list of CLI strings, got {value!r}")
    return tuple(str(v) for v in value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def load_grid(path: str | Path) -> Grid:
    """Read and check ``path``; raises :class:`GridError` naming the file and key for anything it cannot run.

    A file with ``extends: <grid>`` takes that grid's :data:`INHERITED_KEYS` where it does not set them, and may
    list a subset of its methods (``methods: [teacher, student]``); see :func:`_read_extended`.
    """
    path = Path(path)
    raw = _read_extended(path, ())
    for key in ("name", "methods", "datasets", "seeds"):
        if key not in raw:
            raise GridError(f"{path}: missing key '{key}'")
    name = raw["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise GridError(f"{path}: 'name' must be a non-empty string without '/', got {name!r}")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise GridError(f"{path}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    datasets = {str(k): _strings(v, f"{path}: datasets.{k}")
                for k, v in _mapping(raw["datasets"], f"{path}: datasets").items()}
    if not datasets:
        raise GridError(f"{path}: 'datasets' is empty; name at least one (its value: CLI flags, or [])")
    methods: dict[str, Method] = {}
    for mname, spec in _mapping(raw["methods"], f"{path}: methods").items():
        where = f"{path}: methods.{mname}"
        if mname == DATA:
            raise GridError(f"{where}: '{DATA}' names the datasets' own records (table rows '{DATA}'); rename the "
                            "method")
        spec = _mapping(spec, where)
        unknown = set(spec) - METHOD_KEYS
        if unknown:
            raise GridError(f"{where}: unknown key(s) {sorted(unknown)}; a method has {sorted(METHOD_KEYS)}")
        config = _strings(spec.get("config"), f"{where}.config")
        if not config:
            raise GridError(f"{where}.config: name at least one config file")
        variants = {str(k): _strings(v, f"{where}.variants.{k}")
                    for k, v in _mapping(spec.get("variants"), f"{where}.variants").items()}
        dataset_args = {str(k): _strings(v, f"{where}.dataset_args.{k}")
                        for k, v in _mapping(spec.get("dataset_args"), f"{where}.dataset_args").items()}
        for d in dataset_args:
            if d not in datasets:
                raise GridError(f"{where}.dataset_args.{d}: no dataset '{d}' in this grid ({sorted(datasets)})")
        chosen = spec.get("datasets")
        if chosen is not None:
            chosen = _strings(chosen, f"{where}.datasets")
            for d in chosen:
                if d not in datasets:
                    raise GridError(f"{where}.datasets: no dataset '{d}' in this grid ({sorted(datasets)})")
        methods[str(mname)] = Method(
            name=str(mname), config=config, args=_strings(spec.get("args"), f"{where}.args"),
            teacher=spec.get("teacher"), variants=variants, dataset_args=dataset_args,
            validate_args=_strings(spec.get("validate_args"), f"{where}.validate_args"), datasets=chosen,
            label=str(spec.get("label", mname)), family=str(spec.get("family", "")))
    if not methods:
        raise GridError(f"{path}: 'methods' is empty")
    for m in methods.values():
        if m.teacher is not None and m.teacher not in methods:
            raise GridError(f"{path}: methods.{m.name}.teacher: no method '{m.teacher}' in this grid")
        if m.teacher is not None:
            missing = set(Grid.method_datasets(_stub(methods, datasets), m.name)) - set(
                Grid.method_datasets(_stub(methods, datasets), m.teacher))
            if missing:
                raise GridError(f"{path}: methods.{m.name} runs on {sorted(missing)}, where its teacher "
                                f"'{m.teacher}' does not")
    _check_cycles(path, methods)
    grid = Grid(name=name, path=path, seeds=tuple(seeds), methods=methods, datasets=datasets,
                fit_args=_strings(raw.get("fit_args"), f"{path}: fit_args"),
                validate_args=_strings(raw.get("validate_args"), f"{path}: validate_args"),
                doc=raw.get("doc"), tables=_tables(path, raw.get("tables"), methods, datasets),
                figures=_figures(path, raw.get("figures"), [t.get("id") for t in raw.get("tables") or []]),
                latency=raw.get("latency"), raw=raw)
    for m in methods.values():
        for c in m.config:
            for d in grid.method_datasets(m.name):
                if not Path(expand(c, d)).is_file():
                    raise GridError(f"{path}: methods.{m.name}.config: no file {expand(c, d)} (dataset {d}); "
                                    "paths are relative to the repository root")
    return grid


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GridError(f"{path}: no such grid file (grids live in configs/experiments/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GridError(f"{path}: not valid YAML: {err}") from err
    raw = _mapping(raw, str(path))
    unknown = set(raw) - GRID_KEYS
    if unknown:
        raise GridError(f"{path}: unknown key(s) {sorted(unknown)}; a grid has {sorted(GRID_KEYS)}")
    return raw


def _read_extended(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """``path``'s keys over the :data:`INHERITED_KEYS` of the grid it ``extends`` (a path from the repository root).

    ``methods`` given as a list keeps only those methods of the base grid, unchanged; given as a mapping it
    replaces the base's methods. The base's datasets and seeds are kept unless this file sets its own.
    """
    raw = _read(path)
    base_path = raw.pop("extends", None)
    if base_path is None:
        if isinstance(raw.get("methods"), list):
            raise GridError(f"{path}: methods: a list of method names needs 'extends: <grid>' to take them from")
        return raw
    if not isinstance(base_path, str):
        raise GridError(f"{path}: extends: expected the path of a grid file, got {base_path!r}")
    if path.resolve() in seen:
        raise GridError(f"{path}: extends: grids extend each other in a cycle")
    base = _read_extended(Path(base_path), seen + (path.resolve(),))
    merged = {k: base[k] for k in INHERITED_KEYS if k in base}
    merged.update(raw)
    if isinstance(raw.get("methods"), list):
        base_methods = _mapping(base.get("methods"), f"{base_path}: methods")
        for name in raw["methods"]:
            if name not in base_methods:
                raise GridError(f"{path}: methods: no method '{name}' in {base_path} ({sorted(base_methods)})")
        merged["methods"] = {name: base_methods[name] for name in raw["methods"]}
    return merged


def parse_row(row: str) -> tuple[str, str | None]:
    """``method`` or ``method.variant`` -> (method, variant)."""
    method, _, variant = row.partition(".")
    return method, variant or None


def _spec_list(path: Path, value: Any, key: str) -> list[Any]:
    """The list under ``key`` (``tables``, ``figures``), empty when absent."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise GridError(f"{path}: {key}: expected a list of {key}, got {type(value).__name__}")
    return value


def _tables(path: Path, value: Any, methods: dict[str, Method], datasets: dict[str, tuple[str, ...]]
            ) -> list[dict[str, Any]]:
    value = _spec_list(path, value, "tables")
    for i, spec in enumerate(value):
        where = f"{path}: tables[{i}]"
        spec = _mapping(spec, where)
        unknown = set(spec) - TABLE_KEYS
        if unknown:
            raise GridError(f"{where}: unknown key(s) {sorted(unknown)}; a table has {sorted(TABLE_KEYS)}")
        for key in ("id", "aggregate" if "aggregate" in spec else "columns"):
            if key not in spec:
                raise GridError(f"{where}: missing key '{key}'")
        if "aggregate" in spec:
            _check_aggregate(where, spec, methods)
        for j, column in enumerate(spec.get("columns") or []):
            at = f"{where}.columns[{j}]"
            column = _mapping(column, at)
            unknown = set(column) - COLUMN_KEYS
            if unknown:
                raise GridError(f"{at}: unknown key(s) {sorted(unknown)}; a column has {sorted(COLUMN_KEYS)}")
            if "header" not in column or sum(k in column for k in COLUMN_SOURCES) != 1:
                raise GridError(f"{at}: a column needs a 'header' and exactly one of {list(COLUMN_SOURCES)}")
        for row in spec.get("rows") or []:
            method, variant = (row.get("method"), row.get("variant")) if isinstance(row, dict) else parse_row(str(row))
            if method == DATA and not variant:
                continue
            if method not in methods:
                raise GridError(f"{where}.rows: no method '{method}' in this grid ({sorted(methods)})")
            if variant and variant not in methods[method].variants:
                raise GridError(f"{where}.rows: method '{method}' has no variant '{variant}' "
                                f"(have {sorted(methods[method].variants)})")
        for d in spec.get("datasets") or []:
            if d not in datasets:
                raise GridError(f"{where}.datasets: no dataset '{d}' in this grid ({sorted(datasets)})")
    return value


def _check_aggregate(where: str, spec: dict[str, Any], methods: dict[str, Method]) -> None:
    agg = _mapping(spec["aggregate"], f"{where}.aggregate")
    unknown = set(agg) - AGGREGATE_KEYS
    if unknown:
        raise GridError(f"{where}.aggregate: unknown key(s) {sorted(unknown)}; it has {sorted(AGGREGATE_KEYS)}")
    for key in ("metric", "reference"):
        if key not in agg:
            raise GridError(f"{where}.aggregate: missing key '{key}'")
    if "columns" in spec:
        raise GridError(f"{where}: an aggregate table makes its own columns; remove 'columns'")
    if "latency" in agg and (not isinstance(agg["latency"], int) or agg["latency"] < 1):
        raise GridError(f"{where}.aggregate.latency: a batch size (a positive integer), got {agg['latency']!r}")
    method, variant = parse_row(str(agg["reference"]))
    if method not in methods or (variant and variant not in methods[method].variants):
        raise GridError(f"{where}.aggregate.reference: no row '{agg['reference']}' in this grid "
                        f"(methods {sorted(methods)})")


def _figures(path: Path, value: Any, tables: list[str]) -> list[dict[str, Any]]:
    value = _spec_list(path, value, "figures")
    for i, spec in enumerate(value):
        where = f"{path}: figures[{i}]"
        spec = _mapping(spec, where)
        for key in ("id", "kind", "path"):
            if key not in spec:
                raise GridError(f"{where}: missing key '{key}'")
        if spec["kind"] not in FIGURE_KINDS:
            raise GridError(f"{where}.kind: '{spec['kind']}' is not one of {list(FIGURE_KINDS)}")
        if "table" in spec and spec["table"] not in tables:
            raise GridError(f"{where}.table: no table '{spec['table']}' in this grid ({tables})")
    return value


def _stub(methods: dict[str, Method], datasets: dict[str, tuple[str, ...]]) -> Grid:
    return Grid(name="", path=Path(), seeds=(0,), methods=methods, datasets=datasets)


def _check_cycles(path: Path, methods: dict[str, Method]) -> None:
    for start in methods:
        seen, name = [], start
        while name is not None:
            if name in seen:
                raise GridError(f"{path}: methods.{start}: teacher chain loops ({' -> '.join(seen + [name])})")
            seen.append(name)
            name = methods[name].teacher


def expand(text: str, dataset: str) -> str:
    """``text`` with ``{dataset}`` replaced by the dataset's name."""
    return text.replace("{dataset}", dataset)
