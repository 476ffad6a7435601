"""Records -> the Markdown tables (and figure) a grid declares, between markers render owns in the grid's doc.

A table section is ``<!-- macflow:table <grid>/<id> -->`` ... ``<!-- /macflow:table -->``; everything outside the
markers is kept. A grid's ``tables`` entry names its ``id``, ``title``, optional ``text`` (what the columns mean),
``rows`` (``method`` or ``method.variant``, in order), optional ``datasets`` and ``columns``: ``header`` plus either
``metric`` (a logged key, e.g. ``eval/return``) or ``min_of`` (a glob of keys, reduced per seed by min), with
``digits`` and ``scale``, or ``latency`` (a batch size: ms per team decision from the grid's latency record,
``python -m macflow.experiments latency``), optionally ``relative_to`` a row (the ratio to that row's latency).
``sort_by`` (a column's header) orders each dataset's rows by that column. Cells show mean ± std over seeds (and the
IQM with its bootstrap interval from 3 seeds), or each seed's own number in a row of its own with ``per_seed: true``
(e.g. the datasets tables, rows ``data``: :mod:`macflow.experiments.datasets`). Cells with converted records are marked †; ‡ marks a published
aggregate without per-seed numbers. A grid's ``figures`` are linked at the end of the section of the table they
name (``table``, default the first); render draws the ``return_vs_latency`` ones from the records, the
``figures`` command those drawn from checkpoints (:mod:`macflow.experiments.figures`).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from macflow.experiments.grid import Grid
from macflow.experiments.grid import parse_row as split_row
from macflow.experiments.latency import latency_path, load_latency, lookup
from macflow.experiments.records import load_records
from macflow.experiments.stats import fmt, pooled_iqm, probability_of_improvement, stratified_ci, summary

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
    return (*split_row(row), None)


def table_rows(grid: Grid, spec: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """The table's rows (default: every method, each followed by its variants)."""
    default = [f"{m.name}.{v}" if v else m.name for m in grid.methods.values() for v in (None, *m.variants)]
    return [parse_row(r) for r in spec.get("rows") or default]


def row_label(grid: Grid, method: str, variant: str | None, label: str | None) -> str:
    """A row's name in tables and figures: its own label, else the method's label and the variant."""
    if label:
        return label
    name = grid.methods[method].label if method in grid.methods else method
    return name + (f", {variant}" if variant else "")


def latency_value(latency: dict[str, Any] | None, column: dict[str, Any], method: str, variant: str | None,
                  dataset: str) -> float | None:
    """A ``latency`` column's number: ms per decision, or its ratio to the ``relative_to`` row."""
    ms = lookup(latency, method, variant, dataset, column["latency"])
    if ms is None or "relative_to" not in column:
        return ms
    ref_method, ref_variant, _ = parse_row(column["relative_to"])
    ref = lookup(latency, ref_method, ref_variant, dataset, column["latency"])
    return None if ref is None else ms / ref


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
    return text + (" †" if values and any(r.get("source") == "converted" for r in records) else "")


def short_commit(record: dict[str, Any]) -> str:
    git = record.get("git") or {}
    commit = str(git.get("commit", "unknown"))[:7]
    return commit + ("+dirty" if git.get("dirty") else "")


def group_records(records: list[dict[str, Any]]) -> dict[tuple[str, str | None, str], list[dict[str, Any]]]:
    """(method, variant, dataset) -> its records, by seed."""
    by_key: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault((r["method"], r.get("variant"), r["dataset"]), []).append(r)
    return {k: sorted(v, key=lambda r: str(r.get("seed"))) for k, v in by_key.items()}


def sort_key(got: list[dict[str, Any]], column: dict[str, Any], latency: dict[str, Any] | None,
             key: tuple[str, str | None, str]) -> float:
    """The number a row is sorted by under ``sort_by`` (mean over seeds; rows without one go last)."""
    if "latency" in column:
        number = latency_value(latency, column, *key)
    else:
        values = [v for v in (value(r, column) for r in got) if v is not None]
        number = sum(values) / len(values) if values else None
    return float("inf") if number is None else number


def render_table(grid: Grid, spec: dict[str, Any], records: list[dict[str, Any]],
                 records_root: Path = Path("docs/records"), latency: dict[str, Any] | None = None) -> str:
    """The Markdown of one table: heading, how it was made, the table, the marks' meaning."""
    by_key = group_records(records)
    datasets = list(spec.get("datasets") or grid.datasets)
    rows = table_rows(grid, spec)
    columns = spec["columns"]
    order = next((c for c in columns if c["header"] == spec["sort_by"]), None) if spec.get("sort_by") else None
    if spec.get("sort_by") and order is None:
        raise SystemExit(f"{grid.path}: tables.{spec['id']}.sort_by: no column '{spec['sort_by']}'")
    many = len(datasets) > 1
    used: list[dict[str, Any]] = []
    seed_header = "seed" if spec.get("per_seed") else "seeds"
    lines = ["| " + " | ".join((["data"] if many else []) + ["method", seed_header] + [c["header"] for c in columns])
             + " |", "|" + "---|" * ((2 if not many else 3) + len(columns))]
    for dataset in datasets:
        present = [(m, v, label) for m, v, label in rows if by_key.get((m, v, dataset))]
        if order is not None:
            present.sort(key=lambda r: sort_key(by_key[(r[0], r[1], dataset)], order, latency, (r[0], r[1], dataset)))
        for method, variant, label in present:
            got = by_key[(method, variant, dataset)]
            used += got
            aggregate = [r for r in got if "summary" in r]  # a published aggregate wins over single seeds' records
            groups = [[r] for r in got] if spec.get("per_seed") and not aggregate else [got]
            for group in groups:
                seeds = (str(aggregate[0].get("n_seeds", "–")) if aggregate
                         else " ".join(str(r["seed"]) for r in group))
                cells = [fmt(latency_value(latency, c, method, variant, dataset), c.get("digits", 3))
                         if "latency" in c else cell(group, c) for c in columns]
                lines.append("| " + " | ".join(([dataset] if many else []) + [
                    row_label(grid, method, variant, label), seeds] + cells) + " |")
    note = ("One row per seed." if spec.get("per_seed") else
            "Mean ± std over seeds; with 3 or more seeds also the interquartile mean with a 95 % bootstrap "
            "interval over seeds.")
    head = table_head(grid, spec, used, records_root, note)
    if any("latency" in c for c in columns):
        head += ["", latency_note(grid, latency, records_root)]
    return "\n".join(head + [""] + lines)


def table_head(grid: Grid, spec: dict[str, Any], used: list[dict[str, Any]], records_root: Path, note: str
               ) -> list[str]:
    """A table's heading and how it was made (command, configs, seeds, episodes, commits), its text and ``note``
    (what the cells are), with the meaning of the converted marks when any record is converted."""
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
            + (f"evaluation episodes {', '.join(map(str, episodes))}; " if episodes else "") + "code "
            + (", ".join(commits) or "–") + ". Do not edit by hand.", ""]
    if spec.get("text"):
        head += [spec["text"].strip(), ""]
    head += [note]
    if converted:
        head[-1] += (" † = converted from results made before the runner (" + ", ".join(f"`{c}`" for c in converted)
                     + "), ‡ = the published aggregate only, per-seed numbers not recorded.")
    return head


def render_aggregate(grid: Grid, spec: dict[str, Any], records: list[dict[str, Any]],
                     records_root: Path = Path("docs/records"), latency: dict[str, Any] | None = None) -> str:
    """The Markdown of an ``aggregate`` table: one row per method over the table's datasets, the pooled IQM of
    ``aggregate.metric`` and the probability that the ``reference`` row improves on the row, each with its
    stratified bootstrap interval (:mod:`macflow.experiments.stats`), and where the reference's IQM (over the
    datasets both have) falls against the row's interval, the reading a target such as "at least every baseline"
    or "within the diffusion policy's interval" needs. With ``aggregate.latency`` (a batch size), the row's
    decision latency as a multiple of the reference's. Published aggregates (‡) have no runs and are left out."""
    agg = spec["aggregate"]
    digits, scale = agg.get("digits", 3), agg.get("scale", 1.0)
    by_key = group_records([r for r in records if "summary" not in r])
    datasets = list(spec.get("datasets") or grid.datasets)
    rows = table_rows(grid, spec)

    def score(record: dict[str, Any]) -> float | None:
        """The record's ``metric``, divided by its own ``ratio_to`` metric when the table names one."""
        number = value(record, {"metric": agg["metric"]})
        if number is None or "ratio_to" not in agg:
            return number
        base = value(record, {"metric": agg["ratio_to"]})
        return None if not base else number / base

    def runs(method: str, variant: str | None) -> dict[str, list[float]]:
        """dataset -> the row's per-seed values there (datasets without any are absent)."""
        out = {}
        for d in datasets:
            values = [v for v in (score(r) for r in by_key.get((method, variant, d), [])) if v is not None]
            if values:
                out[d] = values
        return out

    ref_method, ref_variant, _ = parse_row(agg["reference"])
    reference = runs(ref_method, ref_variant)
    ref_label = next((row_label(grid, m, v, label) for m, v, label in rows if (m, v) == (ref_method, ref_variant)),
                     row_label(grid, ref_method, ref_variant, None))  # the row's own label when it is shown
    shown = {(m, v) for m, v, _ in rows}
    used = [r for (m, v, d), got in by_key.items() if d in datasets and (m, v) in shown for r in got]
    headers = ["method", "datasets", "runs", "IQM [95 % CI]", "mean", f"P({ref_label} > row) [95 % CI]",
               f"{ref_label} IQM vs row's CI"]
    if "latency" in agg:
        headers.append(f"latency batch {agg['latency']}, × {ref_label}")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for method, variant, label in rows:
        mine = runs(method, variant)
        if not mine:
            continue
        tasks = list(mine.values())
        row_iqm, (lo, hi) = pooled_iqm(tasks), stratified_ci(pooled_iqm, tasks)
        pooled = [v for t in tasks for v in t]
        shared = [d for d in mine if d in reference]
        if (method, variant) == (ref_method, ref_variant) or not shared:
            improvement = verdict = "–"
        else:
            x, y = [reference[d] for d in shared], [mine[d] for d in shared]
            p_lo, p_hi = stratified_ci(probability_of_improvement, x, y)
            partial = "" if len(shared) == len(datasets) else f" ({len(shared)} datasets)"
            improvement = f"{probability_of_improvement(x, y):.2f} [{p_lo:.2f}, {p_hi:.2f}]" + partial
            # the row's own IQM and interval when the reference has all of its datasets (the same seeded bootstrap)
            shared_iqm = (row_iqm, lo, hi) if len(shared) == len(mine) else (pooled_iqm(y), *stratified_ci(pooled_iqm, y))
            verdict = iqm_verdict(pooled_iqm(x), *shared_iqm) + partial
        cells = [row_label(grid, method, variant, label), f"{len(mine)} of {len(datasets)}", str(len(pooled)),
                 f"{fmt(row_iqm, digits, scale)} [{fmt(lo, digits, scale)}, {fmt(hi, digits, scale)}]",
                 fmt(sum(pooled) / len(pooled), digits, scale), improvement, verdict]
        if "latency" in agg:
            ratio = latency_ratio(latency, (method, variant), agg["reference"], agg["latency"])
            cells.append("–" if ratio is None else f"{ratio:.3g}×")
        lines.append("| " + " | ".join(cells) + " |")
    what = f"`{agg['metric']}`" + (f" / `{agg['ratio_to']}` (of the same run)" if "ratio_to" in agg else "")
    note = (f"Aggregate of {what} over the datasets {', '.join(datasets)}: IQM of every run (seed) of "
            "every dataset pooled; P(reference > row): the mean over the datasets both have of the chance that a "
            "run of the reference beats a run of the row (ties count half; 0.5 = no difference). Intervals: 95 % "
            "stratified bootstrap (runs resampled within each dataset), as rliable computes them. The reference's "
            "IQM over the same datasets is above, inside (≥ or < the row's IQM) or below the row's interval.")
    head = table_head(grid, spec, used, records_root, note)
    if "latency" in agg:
        head += ["", latency_note(grid, latency, records_root)]
    return "\n".join(head + [""] + lines)


def iqm_verdict(reference: float, row: float, lo: float, hi: float) -> str:
    """Where the reference's IQM falls against a row's IQM and its interval [lo, hi]."""
    if reference > hi:
        return "above"
    if reference < lo:
        return "below"
    return "inside, ≥" if reference >= row else "inside, <"


def latency_ratio(latency: dict[str, Any] | None, row: tuple[str, str | None], reference: str,
                  batch: int) -> float | None:
    """A row's ms per decision over the ``reference`` row's (:func:`latency_value`), on the first dataset the
    latency record timed both on."""
    latency = latency or {}
    column = {"latency": batch, "relative_to": reference}
    for dataset in latency.get("datasets") or sorted({r["dataset"] for r in latency.get("rows", [])}):
        ratio = latency_value(latency, column, *row, dataset)
        if ratio is not None:
            return ratio
    return None


def latency_note(grid: Grid, latency: dict[str, Any] | None, records_root: Path) -> str:
    """How the latency columns were measured (or how to measure them)."""
    if latency is None:
        return (f"Latency: not measured yet (`python -m macflow.experiments latency {grid.path}` writes "
                f"`{latency_path(records_root, grid.name)}`).")
    return (f"Latency: ms per decision of the whole team (`policy(obs)`, actions of all agents), median of "
            f"{latency['repeats']} interleaved rounds after warm-up, the seed-{latency['seed']} checkpoints, "
            f"{latency['machine']}; `{latency_path(records_root, grid.name)}` (code {short_commit(latency)}, "
            f"{latency['time']}).")


def figure_block(grid: Grid, spec: dict[str, Any], doc: Path) -> str:
    """The image link of one figure, relative to ``doc`` (or how to draw it, when it is not drawn yet)."""
    path = Path(spec["path"])
    if not path.is_file():
        how = (f"`python -m macflow.experiments latency {grid.path}`, then render" if spec["kind"] == "return_vs_latency"
               else f"`python -m macflow.experiments figures {grid.path}`")
        return f"*Figure `{path}` not drawn yet: {how}.*"
    return f"![{spec.get('alt', spec['id'])}]({os.path.relpath(path, doc.parent)})"


def render(grid: Grid, records_root: Path, doc: Path | None = None) -> Path:
    """Rewrite every table ``grid`` declares in its doc from the records; returns the doc's path."""
    if not grid.tables:
        raise SystemExit(f"{grid.path}: no 'tables' to render")
    doc = Path(doc or grid.doc or f"docs/results_{grid.name}.md")
    records = load_records(records_root, grid.name)
    if not records:
        raise SystemExit(f"no records under {Path(records_root) / grid.name}: run the grid first "
                         f"(python -m macflow.experiments run {grid.path}) or pass --records <root>")
    latency = load_latency(records_root, grid.name)
    if grid.figures:
        from macflow.experiments.figures import draw_from_records

        draw_from_records(grid, records, latency)
    text = doc.read_text() if doc.exists() else f"# {grid.name}\n"
    first = grid.tables[0]["id"]
    for spec in grid.tables:
        start = start_marker(grid.name, spec["id"])
        table = (render_aggregate(grid, spec, records, records_root, latency) if "aggregate" in spec
                 else render_table(grid, spec, records, records_root, latency))
        blocks = [start, table]
        blocks += ["\n" + figure_block(grid, f, doc) for f in grid.figures if f.get("table", first) == spec["id"]]
        text = replace_section(text, start, "\n".join(blocks + [END]))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc
