"""Records -> the Markdown tables (and figure) a grid declares, between markers render owns in the grid's doc.

A table section is ``<!-- macflow:table <grid>/<id> -->`` ... ``<!-- /macflow:table -->``; everything outside the
markers is kept. A grid's ``tables`` entry names its ``id``, ``title``, optional ``text`` (what the columns mean),
``rows`` (``method`` or ``method.variant``, in order), optional ``datasets`` and ``columns``: ``header`` plus either
``metric`` (a logged key, e.g. ``eval/return``) or ``min_of`` (a glob of keys, reduced per seed by min), with
``digits`` and ``scale``. Cells show mean ± std over seeds (and the IQM with its bootstrap interval from 3 seeds).
Cells with converted records are marked †; ‡ marks a published aggregate without per-seed numbers.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from macflow.experiments.grid import Grid
from macflow.experiments.records import load_records
from macflow.experiments.stats import fmt, summary

END = "<!-- /macflow:table -->"


def start_marker(grid: str, table: str) -> str:
    return f"<!-- macflow:table {grid}/{table} -->"


def replace_section(text: str, start: str, block: str) -> str:
    """``text`` with the section from ``start`` to the next :data:`END` replaced by ``block`` (appended if absent)."""
    if start in text:
        head, rest = text.split(start, 1)
        tail = rest.split(END, 1)[1] if END in rest else ""
        return head + block + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def value(record: dict[str, Any], column: dict[str, Any]) -> float | None:
    """One record's number for ``column`` (``None`` when the record lacks it)."""
    metrics = record.get("metrics", {})
    if "min_of" in column:
        found = [v for k, v in metrics.items() if fnmatch.fnmatch(k, column["min_of"])]
        return min(found) if found else None
    return metrics.get(column["metric"])


def parse_row(row: str | dict[str, Any]) -> tuple[str, str | None, str | None]:
    """``method``, ``method.variant`` or ``{method, variant, label}`` -> (method, variant, label)."""
    if isinstance(row, dict):
        return row["method"], row.get("variant"), row.get("label")
    method, _, variant = row.partition(".")
    return method, variant or None, None


def cell(records: list[dict[str, Any]], column: dict[str, Any]) -> str:
    """Mean ± std (and IQM) of ``column`` over the seeds' records; marked when converted."""
    digits, scale = column.get("digits", 3), column.get("scale", 1.0)
    aggregate = [r for r in records if "summary" in r]
    if aggregate:
        s = aggregate[0]["summary"].get(column.get("metric", column.get("min_of")))
        if s is None:
            return "–"
        return f"{fmt(s['mean'], digits, scale)} ± {fmt(s['std'], digits, scale)} ‡"
    values = [v for v in (value(r, column) for r in records) if v is not None]
    text = summary(values, digits, scale)
    return text + (" †" if any(r.get("source") == "converted" for r in records) else "")


def short_commit(record: dict[str, Any]) -> str:
    git = record.get("git") or {}
    commit = str(git.get("commit", "unknown"))[:7]
    return commit + ("+dirty" if git.get("dirty") else "")


def render_table(grid: Grid, spec: dict[str, Any], records: list[dict[str, Any]],
                 records_root: Path = Path("docs/records")) -> str:
    """The Markdown of one table: heading, how it was made, the table, the marks' meaning."""
    by_key: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault((r["method"], r.get("variant"), r["dataset"]), []).append(r)
    datasets = list(spec.get("datasets") or grid.datasets)
    default = [f"{m.name}.{v}" if v else m.name for m in grid.methods.values() for v in (None, *m.variants)]
    rows = [parse_row(r) for r in spec.get("rows") or default]
    columns = spec["columns"]
    many = len(datasets) > 1
    used: list[dict[str, Any]] = []
    lines = ["| " + " | ".join((["data"] if many else []) + ["method", "seeds"] + [c["header"] for c in columns])
             + " |", "|" + "---|" * ((2 if not many else 3) + len(columns))]
    for dataset in datasets:
        for method, variant, label in rows:
            got = sorted(by_key.get((method, variant, dataset), []), key=lambda r: str(r.get("seed")))
            if not got:
                continue
            used += got
            name = label or (grid.methods[method].label if method in grid.methods else method)
            name += f", {variant}" if variant and not label else ""
            seeds = " ".join(str(r["seed"]) for r in got if "summary" not in r) or str(got[0].get("n_seeds", "–"))
            lines.append("| " + " | ".join(([dataset] if many else []) + [name, seeds]
                                            + [cell(got, c) for c in columns]) + " |")
    command = (f"python -m macflow.experiments run {grid.path} && python -m macflow.experiments render {grid.path}")
    configs = sorted({c for m in grid.methods.values() for c in m.config})
    seeds = sorted({r["seed"] for r in used if isinstance(r.get("seed"), int)})
    episodes = sorted({int(r["metrics"]["eval/episodes"]) for r in used if "eval/episodes" in r.get("metrics", {})})
    commits = sorted({short_commit(r) for r in used if r.get("source") == "runner"})
    converted = sorted({str(Path(c).parent) + "/" if c.endswith(".json") else c
                        for c in (r["converted_from"] for r in used if r.get("source") == "converted")})
    head = [f"## {spec.get('title', spec['id'])}", "",
            f"Made by `{command}` from the records in `{Path(records_root) / grid.name}/`; configs "
            + ", ".join(f"`{c}`" for c in configs) + f"; seeds {' '.join(map(str, seeds)) or '–'}; "
            f"evaluation episodes {', '.join(map(str, episodes)) or 'as recorded'}; code "
            + (", ".join(commits) or "–") + ". Do not edit by hand.", ""]
    if spec.get("text"):
        head += [spec["text"].strip(), ""]
    head += ["Mean ± std over seeds; with 3 or more seeds also the interquartile mean with a 95 % bootstrap interval "
             "over seeds."]
    if converted:
        head[-1] += (" † = converted from results made before the runner (" + ", ".join(f"`{c}`" for c in converted)
                     + "), ‡ = the published aggregate only, per-seed numbers not recorded.")
    return "\n".join(head + [""] + lines)


def render(grid: Grid, records_root: Path, doc: Path | None = None) -> Path:
    """Rewrite every table ``grid`` declares in its doc from the records; returns the doc's path."""
    if not grid.tables:
        raise SystemExit(f"{grid.path}: no 'tables' to render")
    doc = Path(doc or grid.doc or f"docs/results_{grid.name}.md")
    records = load_records(records_root, grid.name)
    if not records:
        raise SystemExit(f"no records under {Path(records_root) / grid.name}; run the grid first")
    text = doc.read_text() if doc.exists() else f"# {grid.name}\n"
    for spec in grid.tables:
        start = start_marker(grid.name, spec["id"])
        text = replace_section(text, start, "\n".join([start, render_table(grid, spec, records, records_root), END]))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc




