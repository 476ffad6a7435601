"""The experiment runner: a tiny coordination grid end to end, reuse by config hash, records, grid errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS

from macflow.cli import resolve_config
from macflow.experiments.grid import GridError, load_grid
from macflow.experiments.provenance import config_hash, hashed_config
from macflow.experiments.records import RECORD_FIELDS
from macflow.experiments.runner import Runner


def tiny_grid(tmp_path: Path, **changes) -> Path:
    """A teacher (with a K = 1 evaluation variant) and its student on a small coordination dataset, 20 steps."""
    grid = {
        "name": "tiny", "seeds": [0],
        "fit_args": ["--trainer.max_steps=20", "--trainer.val_check_interval=100000", "--trainer.logger=false"],
        "validate_args": ["--data.init_args.n_eval_episodes=50", "--data.init_args.eval_batch_size=50"],
        "datasets": {"coord": ["--data.init_args.n_samples=512"]},
        "methods": {
            "teacher": {"config": str(CONFIGS / "coordination/teacher.yaml"),
                        "variants": {"k1": ["--model.init_args.flow_steps=1"]}},
            "student": {"config": str(CONFIGS / "coordination/student.yaml"), "teacher": "teacher"},
        },
    }
    grid.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """The tiny grid run once: its folder, runs and records roots, the first runner and its records."""
    tmp_path = tmp_path_factory.mktemp("tiny")
    runs, records = tmp_path / "runs", tmp_path / "records"
    runner = Runner(load_grid(tiny_grid(tmp_path)), runs, records, log=lambda _: None)
    made = runner.run()
    return {"tmp": tmp_path, "runs": runs, "records": records, "runner": runner, "made": made}


def test_grid_runs_end_to_end_writes_records_and_reuses_finished_runs(tiny_run):
    tmp_path, runs, records, first, made = (tiny_run[k] for k in ("tmp", "runs", "records", "runner", "made"))
    assert (first.fits, first.evaluations) == (2, 3)
    assert [(r["method"], r["variant"]) for r in made] == [("teacher", None), ("teacher", "k1"), ("student", None)]
    for r in made:
        assert set(RECORD_FIELDS) <= set(r) and r["source"] == "runner"
        assert r["metrics"]["eval/episodes"] == 50.0 and isinstance(r["metrics"]["eval/return"], float)
        assert r["fit_args"][0] == "fit" and "--seed_everything=0" in r["fit_args"]
        assert "--data.init_args.data_seed=0" in r["fit_args"]
        assert r["fit_seconds"] > 0 and r["eval_seconds"] > 0 and r["device"]["threads"] >= 1
        assert len(r["git"]["commit"]) == 40 and isinstance(r["git"]["dirty"], bool)
    teacher, k1, student = made
    # the variant evaluates the same checkpoint with other flags, and changes what is measured
    assert k1["run_dir"] == teacher["run_dir"] and k1["stage"] == "eval"
    assert "--model.init_args.flow_steps=1" in k1["validate_args"]
    assert k1["metrics"] != teacher["metrics"]
    # the student names its teacher's run, and was trained from that run's checkpoint
    assert student["teacher"] == {"method": "teacher", "config_hash": teacher["config_hash"],
                                  "run_dir": teacher["run_dir"]}
    assert f"--model.init_args.teacher_ckpt={teacher['run_dir']}/final.ckpt" in student["fit_args"]
    assert Path(teacher["run_dir"]).name == f"seed0-{teacher['config_hash'][:12]}"
    committed = records / "tiny/teacher/coord/seed0.k1.json"
    assert json.loads(committed.read_text())["metrics"] == k1["metrics"]

    ckpt = Path(teacher["run_dir"]) / "final.ckpt"
    mtime = ckpt.stat().st_mtime_ns
    second = Runner(load_grid(tiny_grid(tmp_path)), runs, records, log=lambda _: None)
    again = second.run()
    assert (second.fits, second.evaluations) == (0, 0)
    assert ckpt.stat().st_mtime_ns == mtime
    assert [r["metrics"] for r in again] == [r["metrics"] for r in made]

    # a new evaluation flag re-evaluates the same checkpoint and trains nothing
    grid = tiny_grid(tmp_path, validate_args=["--data.init_args.n_eval_episodes=20",
                                              "--data.init_args.eval_batch_size=20"])
    third = Runner(load_grid(grid), runs, records, log=lambda _: None)
    assert [r["metrics"]["eval/episodes"] for r in third.run()] == [20.0] * 3
    assert (third.fits, third.evaluations) == (0, 3)


def test_status_tells_current_differing_and_missing_cells_and_the_keys_that_differ(tiny_run, tmp_path):
    from macflow.experiments.status import default_runner, grid_status

    runs, records = tiny_run["runs"], tiny_run["records"]
    lines: list[str] = []
    cells = grid_status(default_runner(load_grid(tiny_grid(tmp_path)), runs, records), log=lines.append)
    assert [(c["method"], c["state"], c["checkpoint"]) for c in cells] == [("teacher", "current", True),
                                                                          ("student", "current", True)]
    methods = {"teacher": {"config": str(CONFIGS / "coordination/teacher.yaml"), "args": ["--model.init_args.lr=0.5"]},
               "student": {"config": str(CONFIGS / "coordination/student.yaml"), "teacher": "teacher"}}
    changed = load_grid(tiny_grid(tmp_path, seeds=[0, 1], methods=methods))
    cells = grid_status(default_runner(changed, runs, records), log=lines.append)
    assert [(c["method"], c["seed"], c["state"], c["checkpoint"]) for c in cells] == [
        ("teacher", 0, "differs", False), ("teacher", 1, "missing", False),
        ("student", 0, "differs", False), ("student", 1, "missing", False)]
    assert [d for d in cells[0]["differences"] if d.startswith("model.init_args.lr:")] == cells[0]["differences"]
    assert cells[0]["differences"][0].endswith("-> 0.5")
    assert cells[2]["differences"] == [d for d in cells[2]["differences"] if "teacher_ckpt" in d]  # its teacher
    assert lines[-1] == "[tiny] 0 current, 2 differs, 0 aggregate, 2 missing"


def test_latency_times_every_method_and_model_variant_from_the_seed_checkpoints(tiny_run):
    from macflow.experiments.latency import latency_path, lookup, measure_grid

    grid = load_grid(tiny_grid(tiny_run["tmp"]))
    out = measure_grid(grid, tiny_run["records"], batch_sizes=[1, 64], repeats=3, min_time=0.002,
                       log=lambda _: None)
    assert json.loads(latency_path(tiny_run["records"], "tiny").read_text()) == json.loads(json.dumps(out))
    rows = {r["row"]: r for r in out["rows"]}
    assert {row: r["overrides"] for row, r in rows.items()} == {"teacher": {}, "teacher.k1": {"flow_steps": 1},
                                                              "student": {}}
    assert out["seed"] == 0 and out["threads"] == 1 and len(out["git"]["commit"]) == 40 and out["time"]
    assert out["machine"] and out["torch"] and out["batch_sizes"] == [1, 64]
    made = {r["method"] + (f".{r['variant']}" if r["variant"] else ""): r for r in tiny_run["made"]}
    assert {row: r["run_dir"] for row, r in rows.items()} == {row: r["run_dir"] for row, r in made.items()}
    ms = {row: lookup(out, *row_key, "coord", 1) for row, row_key in
          (("teacher", ("teacher", None)), ("k1", ("teacher", "k1")), ("student", ("student", None)))}
    assert all(v > 0 for v in ms.values()) and lookup(out, "teacher", None, "coord", 64) > 0
    assert ms["teacher"] > 2 * ms["k1"]  # ten Euler steps of the same network against one


def test_coordination_samples_figure_is_drawn_from_the_seed_checkpoints(tiny_run):
    from macflow.experiments.figures import draw_from_checkpoints

    figure = tiny_run["tmp"] / "figures/samples.png"
    grid = load_grid(tiny_grid(tiny_run["tmp"], figures=[{
        "id": "samples", "kind": "coordination_samples", "path": str(figure), "episodes": 50,
        "panels": [{"label": "data", "data": True}, {"label": "teacher", "row": "teacher"},
                   {"label": "student", "row": "student"}]}]))
    lines: list[str] = []
    assert draw_from_checkpoints(grid, tiny_run["records"], log=lines.append) == [figure]
    png = figure.read_bytes()
    assert png[:4] == b"\x89PNG" and int.from_bytes(png[16:20], "big") == round(3 * 3.2 * 120)  # three panels
    assert [line.split(":")[0] for line in lines[:2]] == ["  teacher", "  student"]


def test_an_interrupted_fit_is_retrained_and_re_evaluated_not_reused(tiny_run):
    """A fit killed mid-run leaves ``last.ckpt`` but no ``final.ckpt``: the next run trains it again, and the
    run directory's record of the model it replaces is not reused."""
    student = tiny_run["made"][2]
    run_dir = Path(student["run_dir"])
    grid = tiny_grid(tiny_run["tmp"], validate_args=["--data.init_args.n_eval_episodes=20",
                                                     "--data.init_args.eval_batch_size=20"])
    # every record evaluated with these flags first, whichever test of this module ran before
    Runner(load_grid(grid), tiny_run["runs"], tiny_run["records"], log=lambda _: None).run()
    (run_dir / "final.ckpt").unlink()
    assert (run_dir / "last.ckpt").is_file() and (run_dir / "record.json").is_file()
    runner = Runner(load_grid(grid), tiny_run["runs"], tiny_run["records"], log=lambda _: None)
    again = runner.run(methods=["student"])
    assert (runner.fits, runner.evaluations) == (1, 1)  # the teacher's finished run and records are reused
    assert (run_dir / "final.ckpt").is_file() and again[-1]["method"] == "student"


def test_records_are_written_whole_or_not_at_all(tmp_path):
    from macflow.experiments.records import read_json, write_json

    path = tmp_path / "seed0.json"
    write_json(path, {"metrics": {"eval/return": 1.0}})
    with pytest.raises(TypeError):
        write_json(path, {"metrics": {("not", "a", "string"): 2.0}})  # fails half-way through the dump
    assert read_json(path) == {"metrics": {"eval/return": 1.0}} and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_student_method_without_a_teacher_is_a_grid_error(tmp_path):
    path = tiny_grid(tmp_path, methods={"student": {"config": str(CONFIGS / "coordination/student.yaml")}})
    runner = Runner(load_grid(path), tmp_path / "runs", tmp_path / "records", dry_run=True, log=lambda _: None)
    with pytest.raises(GridError, match=r"methods\.student: its model distils a teacher .*'teacher: teacher'"):
        runner.run()


def test_config_hash_follows_settings_that_change_results_only(tmp_path):
    base = ["--config", str(CONFIGS / "coordination/teacher.yaml"), f"--trainer.default_root_dir={tmp_path}/a"]

    def digest(*extra: str, root: str = "a") -> str:
        args = [a.replace("/a", f"/{root}") for a in base] + list(extra)
        return config_hash(hashed_config(resolve_config(args, keep_none=True), f"{tmp_path}/{root}"))

    reference = digest()
    assert digest("--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false") == reference
    assert digest(root="b") == reference  # the run directory itself is not part of the config
    assert digest("--model.init_args.lr=0.001") != reference
    assert digest("--seed_everything=1") != reference


def test_student_hash_changes_with_its_teacher_config(tmp_path):
    plain = Runner(load_grid(tiny_grid(tmp_path)), tmp_path / "runs", tmp_path / "records", dry_run=True,
                   log=lambda _: None)
    changed_grid = yaml.safe_load(tiny_grid(tmp_path).read_text())
    changed_grid["methods"]["teacher"]["args"] = ["--model.init_args.lr=0.001"]
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed_grid))
    changed = Runner(load_grid(tmp_path / "changed.yaml"), tmp_path / "runs", tmp_path / "records", dry_run=True,
                     log=lambda _: None)
    assert plain.plan("student", "coord", 0).config_hash != changed.plan("student", "coord", 0).config_hash
    assert plain.run() == [] and not (tmp_path / "runs").exists()  # a dry run writes nothing


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key(s) ['colour']"),
    ({"seeds": []}, "'seeds' must be a non-empty list"),
    ({"methods": {"student": {"config": str(CONFIGS / "coordination/student.yaml"), "teacher": "nope"}}},
     "methods.student.teacher: no method 'nope'"),
    ({"methods": {"t": {"config": "configs/none.yaml"}}}, "methods.t.config: no file configs/none.yaml"),
    ({"tables": [{"id": "t", "columns": [{"header": "r", "metirc": "eval/return"}]}]},
     "tables[0].columns[0]: unknown key(s) ['metirc']"),
    ({"tables": [{"id": "t", "columns": [{"header": "r"}]}]}, "a column needs a 'header' and exactly one of"),
    ({"tables": [{"id": "t", "rows": ["teacher.k2"], "columns": []}]}, "method 'teacher' has no variant 'k2'"),
    ({"tables": [{"id": "t", "rows": [{"method": "techer"}], "columns": []}]}, "tables[0].rows: no method 'techer'"),
])
def test_grid_errors_name_the_file_and_key(tmp_path, change, message):
    path = tiny_grid(tmp_path, **change)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_an_extending_grid_runs_the_base_cells_it_lists_on_its_own_seeds(tmp_path):
    base = load_grid(tiny_grid(tmp_path, tables=[{"id": "t", "rows": ["student"], "columns": []}]))
    (tmp_path / "val.yaml").write_text(yaml.safe_dump({
        "name": "val", "extends": str(base.path), "seeds": [100], "methods": ["teacher"],
        "tables": [{"id": "v", "rows": ["teacher.k1"], "columns": []}]}))
    val = load_grid(tmp_path / "val.yaml")
    assert val.seeds == (100,) and list(val.methods) == ["teacher"] and [t["id"] for t in val.tables] == ["v"]
    assert val.methods["teacher"] == base.methods["teacher"] and val.datasets == base.datasets
    assert val.fit_args == base.fit_args and val.validate_args == base.validate_args

    def runner(grid):
        return Runner(grid, tmp_path / "runs", tmp_path / "records", dry_run=True, log=lambda _: None)

    assert runner(val).plan("teacher", "coord", 100).config_hash != runner(base).plan("teacher", "coord", 0).config_hash
    (tmp_path / "same.yaml").write_text(yaml.safe_dump({"name": "same", "extends": str(base.path), "seeds": [0]}))
    assert runner(load_grid(tmp_path / "same.yaml")).plan("teacher", "coord", 0).config_hash == \
        runner(base).plan("teacher", "coord", 0).config_hash


@pytest.mark.parametrize("val, message", [
    ({"methods": ["techer"]}, "methods: no method 'techer' in"),
    ({"methods": ["student"]}, "methods.student.teacher: no method 'teacher'"),
    ({"extends": "configs/experiments/nope.yaml"}, "configs/experiments/nope.yaml: no such grid file"),
    ({"extends": None, "methods": ["teacher"]}, "a list of method names needs 'extends: <grid>'"),
    ({"extends": "SELF"}, "extends: grids extend each other in a cycle"),
])
def test_extending_grid_errors_name_the_file_and_key(tmp_path, val, message):
    spec = {"name": "val", "extends": str(tiny_grid(tmp_path)), "seeds": [100], **val}
    if spec["extends"] == "SELF":
        spec["extends"] = str(tmp_path / "val.yaml")
    if spec["extends"] is None:
        del spec["extends"]
        spec.update(datasets={"coord": []})
    (tmp_path / "val.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(GridError, match=re.escape(message)):
        load_grid(tmp_path / "val.yaml")


def test_render_writes_marked_tables_from_records_and_keeps_the_rest(tmp_path):
    from macflow.experiments.records import record_path, write_json
    from macflow.experiments.render import END, render
    from macflow.experiments.stats import iqm, mean_std

    path = tiny_grid(tmp_path, doc=str(tmp_path / "doc.md"), tables=[{
        "id": "main", "title": "Tiny", "rows": ["teacher", "teacher.k1"],
        "columns": [{"header": "reward", "metric": "eval/return", "digits": 2},
                    {"header": "min mode (%)", "min_of": "eval/mode_*", "scale": 100, "digits": 1}]}])
    grid = load_grid(path)
    records = tmp_path / "records"
    returns = [0.5, 0.7, 0.9]
    for seed, ret in enumerate(returns):
        for variant in (None, "k1"):
            write_json(record_path(records, "tiny", "teacher", "coord", seed, variant), {
                "method": "teacher", "dataset": "coord", "seed": seed, "variant": variant, "source": "runner",
                "git": {"commit": "a" * 40, "dirty": False},
                "metrics": {"eval/return": ret, "eval/episodes": 50.0, "eval/mode_0": 0.2 + seed / 100,
                            "eval/mode_1": 0.1}})
    (tmp_path / "doc.md").write_text("# Title\n\nkept above\n")
    render(grid, records)
    text = (tmp_path / "doc.md").read_text()
    assert text.startswith("# Title\n\nkept above\n") and text.count("<!-- macflow:table tiny/main -->") == 1
    mean, std = mean_std(returns)
    assert f"| teacher | 0 1 2 | {mean:.2f} ± {std:.2f} (IQM {iqm(returns):.2f} [" in text
    assert "| teacher, k1 | 0 1 2 |" in text and "| 10.0 ± 0.0 (IQM 10.0 [10.0, 10.0]) |" in text  # min over modes
    assert "seeds 0 1 2; evaluation episodes 50; code aaaaaaa." in text
    (tmp_path / "doc.md").write_text(text + "\nkept below\n")
    render(grid, records)
    again = (tmp_path / "doc.md").read_text()
    assert again == text + "\nkept below\n" and again.count(END) == 1  # re-rendering replaces its own section only


def test_render_puts_latency_columns_and_the_frontier_figure_from_records(tmp_path):
    from macflow.experiments.latency import latency_path
    from macflow.experiments.records import record_path, write_json
    from macflow.experiments.render import render

    figure = tmp_path / "docs/figures/frontier.png"
    doc = tmp_path / "docs/doc.md"
    grid = load_grid(tiny_grid(tmp_path, doc=str(doc), tables=[{
        "id": "main", "rows": ["teacher", "teacher.k1", "student"], "sort_by": "latency batch 1 (ms)",
        "columns": [{"header": "reward", "metric": "eval/return", "digits": 2},
                    {"header": "latency batch 1 (ms)", "latency": 1, "digits": 3},
                    {"header": "latency batch 8 (ms)", "latency": 8, "digits": 2},
                    {"header": "× student", "latency": 1, "relative_to": "student", "digits": 1}]}],
        figures=[{"id": "frontier", "kind": "return_vs_latency", "path": str(figure), "alt": "return vs latency"}]))
    records = tmp_path / "records"
    rows = {("teacher", None): (0.9, 4.0), ("teacher", "k1"): (0.1, 0.5), ("student", None): (0.8, 0.125)}
    for (method, variant), (ret, _) in rows.items():
        for seed in (0, 1):
            write_json(record_path(records, "tiny", method, "coord", seed, variant), {
                "method": method, "dataset": "coord", "seed": seed, "variant": variant, "source": "runner",
                "git": {"commit": "a" * 40, "dirty": False}, "metrics": {"eval/return": ret + seed / 10}})
    doc.parent.mkdir(parents=True)
    doc.write_text("# Title\n")
    render(grid, records)  # before the latency record: the columns say so, the figure is not drawn
    text = doc.read_text()
    assert "| teacher, k1 | 0 1 | 0.15 ± 0.07 | – | – | – |" in text and "Latency: not measured yet" in text
    assert "not drawn yet" in text and not figure.exists()
    write_json(latency_path(records, "tiny"), {
        "seed": 0, "repeats": 3, "machine": "cpu X, 1 thread(s)", "threads": 1, "time": "now",
        "git": {"commit": "b" * 40, "dirty": False},
        "rows": [{"method": m, "variant": v, "dataset": "coord", "ms": {"1": ms, "8": 8 * ms}}
                 for (m, v), (_, ms) in rows.items()]})
    render(grid, records)
    text = doc.read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "seeds" not in line]
    assert table == ["| student | 0 1 | 0.85 ± 0.07 | 0.125 | 1.00 | 1.0 |",  # sorted by the batch-1 latency
                     "| teacher, k1 | 0 1 | 0.15 ± 0.07 | 0.500 | 4.00 | 4.0 |",
                     "| teacher | 0 1 | 0.95 ± 0.07 | 4.000 | 32.00 | 32.0 |"]
    assert "seed-0 checkpoints, cpu X, 1 thread(s)" in text and "(code bbbbbbb, now)" in text
    assert "![return vs latency](figures/frontier.png)\n<!-- /macflow:table -->" in text  # inside the section
    assert figure.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("method", ["gaussian_bc", "td3bc", "diffusion_K100"])
def test_the_baselines_new_option_at_its_default_keeps_their_committed_hashes(method):
    """normalize_obs is newer than the baselines' records: at its default their hash is the recorded one (the
    student and teacher, which always had it, keep hashing it); set, it is a different run."""
    from conftest import REPO

    record = json.loads((REPO / f"docs/records/baselines/{method}/game/seed0.json").read_text())
    grid = load_grid(REPO / "configs/experiments/baselines.yaml")
    assert Runner(grid, dry_run=True).plan(method, "game", 0).config_hash == record["config_hash"]
    from dataclasses import replace

    m = grid.methods[method]
    grid.methods[method] = replace(m, args=(*m.args, "--model.init_args.normalize_obs=true"))
    assert Runner(grid, dry_run=True).plan(method, "game", 0).config_hash != record["config_hash"]


def test_probability_of_improvement_and_pooled_iqm_match_their_definitions():
    from macflow.experiments.stats import pooled_iqm, probability_of_improvement, stratified_ci

    x, y = [[1.0, 2.0, 3.0], [5.0, 6.0, 7.0]], [[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]]
    # task 1: every run of x wins; task 2: 5 loses, 6 ties (half), 7 wins -> (1 + 0.5) / 2
    assert probability_of_improvement(x, y) == 0.75 and probability_of_improvement(y, x) == 0.25
    assert pooled_iqm(x) == 4.0  # the middle half of 1 2 3 5 6 7
    lo, hi = stratified_ci(probability_of_improvement, x, y)
    assert lo <= 0.75 <= hi and hi == 1.0  # task 1 always wins; task 2 resampled from {5, 6, 7} can win all
    assert stratified_ci(pooled_iqm, [[2.0, 2.0], [2.0]]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="same non-empty list of tasks"):
        probability_of_improvement(x, y[:1])


def test_aggregate_table_pools_datasets_and_tests_the_reference_against_each_row(tmp_path):
    from macflow.experiments.latency import latency_path
    from macflow.experiments.records import record_path, write_json
    from macflow.experiments.render import render

    doc = tmp_path / "doc.md"
    datasets = {"a": [], "b": []}
    grid = load_grid(tiny_grid(tmp_path, doc=str(doc), datasets=datasets, tables=[{
        "id": "agg", "rows": ["student", "teacher", "teacher.k1"],
        "aggregate": {"metric": "eval/return", "reference": "student", "digits": 2, "latency": 1}}]))
    records = tmp_path / "records"
    scores = {("student", None, "a"): [0.9, 0.8, 0.7], ("student", None, "b"): [0.5, 0.6, 0.4],
              ("teacher", None, "a"): [0.1, 0.2, 0.3],  # the teacher lacks dataset b
              ("teacher", "k1", "a"): [0.95, 0.9, 0.85], ("teacher", "k1", "b"): [0.65, 0.6, 0.7]}
    for (method, variant, dataset), values in scores.items():
        for seed, v in enumerate(values):
            write_json(record_path(records, "tiny", method, dataset, seed, variant), {
                "method": method, "dataset": dataset, "seed": seed, "variant": variant, "source": "runner",
                "git": {"commit": "a" * 40, "dirty": False}, "metrics": {"eval/return": v}})
    write_json(latency_path(records, "tiny"), {
        "seed": 0, "repeats": 3, "machine": "cpu X", "threads": 1, "time": "now", "datasets": ["a"],
        "git": {"commit": "b" * 40, "dirty": False},
        "rows": [{"method": "student", "variant": None, "dataset": "a", "ms": {"1": 0.1}},
                 {"method": "teacher", "variant": None, "dataset": "a", "ms": {"1": 5.0}}]})
    render(grid, records)
    lines = [line for line in doc.read_text().splitlines() if line.startswith("| ")]
    assert lines[0] == ("| method | datasets | runs | IQM [95 % CI] | mean | P(student > row) [95 % CI] | "
                        "student IQM vs row's CI | latency batch 1, × student |")
    assert lines[1].startswith("| student | 2 of 2 | 6 | 0.65 [") and lines[1].endswith("| 0.65 | – | – | 1× |")
    # the student's IQM over dataset a alone (0.80) against the teacher's interval there, 50 times its latency
    assert lines[2] == ("| teacher | 1 of 2 | 3 | 0.20 [0.10, 0.30] | 0.20 | 1.00 [1.00, 1.00] (1 datasets) | "
                        "above (1 datasets) | 50× |")
    # a row mostly above the reference: its interval lies above the reference's IQM; no latency timed for it
    assert lines[3].endswith("| 0.78 [0.74, 0.81] | 0.78 | 0.11 [0.00, 0.33] | below | – |")
    ratio = load_grid(tiny_grid(tmp_path, doc=str(doc), datasets=datasets, tables=[{
        "id": "agg", "rows": ["teacher"],
        "aggregate": {"metric": "eval/return", "ratio_to": "eval/return", "reference": "student", "digits": 2}}]))
    render(ratio, records)  # every run divided by itself: 1.0 each, the reference's IQM inside the interval
    assert "| teacher | 1 of 2 | 3 | 1.00 [1.00, 1.00] | 1.00 | 0.50 [0.50, 0.50] (1 datasets) | inside, ≥ (1 datasets) |" \
        in doc.read_text()
    bad = tiny_grid(tmp_path, tables=[{"id": "agg", "aggregate": {"metric": "eval/return", "reference": "nope"}}])
    with pytest.raises(GridError, match=r"aggregate.reference: no row 'nope'"):
        load_grid(bad)
    bad = tiny_grid(tmp_path, tables=[{"id": "agg", "aggregate": {"metric": "eval/return", "reference": "student",
                                                                 "latency": "1"}}])
    with pytest.raises(GridError, match=r"aggregate.latency: a batch size"):
        load_grid(bad)


@pytest.mark.parametrize("path", sorted((CONFIGS / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_grids_load(path):
    grid = load_grid(path)
    assert grid.name == path.stem and grid.tables and grid.doc
    for m in grid.methods.values():
        if m.teacher is not None:
            assert grid.training_order().index(m.teacher) < grid.training_order().index(m.name)


def test_one_seed_shows_its_value_without_a_spread():
    from macflow.experiments.stats import summary

    assert summary([0.5]) == "0.500"
    assert summary([0.5, 0.7]).startswith("0.600 ± ")


def test_data_records_come_from_the_manifest_and_render_one_row_per_seed(tmp_path):
    from macflow.experiments.render import render

    cache = tmp_path / "cache"
    path = tiny_grid(
        tmp_path, name="tinympe", seeds=[0, 1], doc=str(tmp_path / "doc.md"),
        datasets={"expert": ["--data.init_args.quality=expert", "--data.init_args.n_episodes=8",
                             "--data.init_args.n_reference_episodes=4", f"--data.init_args.cache_dir={cache}"]},
        methods={"teacher": {"config": str(CONFIGS / "mpe/teacher.yaml")}},
        tables=[{"id": "datasets", "rows": [{"method": "data", "label": "behaviour data"}], "per_seed": True,
                 "columns": [{"header": "episodes", "metric": "data/episodes", "digits": 0},
                             {"header": "mean return", "metric": "data/return", "digits": 2}]}])
    grid, records = load_grid(path), tmp_path / "records"
    runner = Runner(grid, tmp_path / "runs", records, log=lambda _: None)
    made = runner.run(data_only=True)
    assert (runner.fits, runner.evaluations) == (0, 0)
    assert [(r["method"], r["dataset"], r["seed"], r["generated"]) for r in made] == [
        ("data", "expert", 0, True), ("data", "expert", 1, True)]
    for r in made:
        manifest = json.loads(next(cache.rglob(f"*expert_ep8_seed{r['seed']}.json")).read_text())
        assert r["metrics"]["data/return"] == manifest["mean_return"] and r["metrics"]["data/episodes"] == 8.0
        assert r["manifest"]["data_seed"] == r["seed"] and r["config"]["data"]["init_args"]["n_episodes"] == 8
    assert made[0]["metrics"]["data/return"] != made[1]["metrics"]["data/return"]  # each seed its own data
    committed = records / "tinympe/data/expert/seed0.json"
    mtime = committed.stat().st_mtime_ns
    again = Runner(grid, tmp_path / "runs", records, log=lambda _: None).run(data_only=True)
    assert [r["generated"] for r in again] == [True, True]  # the committed records, kept as they were
    assert committed.stat().st_mtime_ns == mtime
    slower = json.loads(committed.read_text())  # an earlier generation of the same data that took longer
    slower["metrics"]["data/seconds"] = slower["metrics"].get("data/seconds", 0.0) + 7.0
    committed.write_text(json.dumps(slower))
    mtime = committed.stat().st_mtime_ns
    shutil.rmtree(cache)
    Runner(grid, tmp_path / "runs", records, log=lambda _: None).run(data_only=True)
    regenerated = json.loads(next(cache.rglob("*expert_ep8_seed0.json")).read_text())
    assert regenerated["sha256"] == made[0]["manifest"]["sha256"] and committed.stat().st_mtime_ns == mtime

    render(grid, records)
    text = (tmp_path / "doc.md").read_text()
    for r in made:
        assert f"| behaviour data | {r['seed']} | 8 | {r['metrics']['data/return']:.2f} |" in text
    assert "One row per seed." in text and "evaluation episodes" not in text


def test_a_method_named_data_is_a_grid_error(tmp_path):
    path = tiny_grid(tmp_path, methods={"data": {"config": str(CONFIGS / "coordination/teacher.yaml")}})
    with pytest.raises(GridError, match="methods.data: 'data' names the datasets' own records"):
        load_grid(path)


@pytest.mark.slow
def test_every_method_of_the_shipped_mpe_grid_trains_evaluates_is_timed_and_rendered(tmp_path):
    """The MPE grid as shipped (baselines included: each a model delta on its counterpart's configs), at a few
    steps on a small medium dataset: every method fits and evaluates on the real simulator, the latency command
    times each, and the methods, aggregate and frontier outputs are made from those records."""
    from macflow.experiments.latency import measure_grid
    from macflow.experiments.render import render

    grid = yaml.safe_load((CONFIGS / "experiments/mpe.yaml").read_text())
    grid["fit_args"] += ["--trainer.max_steps=5", "--trainer.logger=false", "--data.init_args.n_episodes=40",
                         f"--data.init_args.cache_dir={tmp_path / 'cache'}"]
    grid["validate_args"] = ["--data.init_args.n_eval_episodes=2", "--data.init_args.eval_batch_size=2"]
    grid.update(seeds=[0], datasets={"medium": []}, doc=str(tmp_path / "doc.md"))
    for name in ("teacher_bf16", "student_bf16"):
        del grid["methods"][name]
    grid["tables"] = [t for t in grid["tables"] if t["id"] in ("methods", "aggregate")]
    grid["figures"][0]["path"] = str(tmp_path / "frontier.png")
    path = tmp_path / "mpe.yaml"
    path.write_text(yaml.safe_dump(grid))
    loaded = load_grid(path)
    records = tmp_path / "records"
    made = Runner(loaded, tmp_path / "runs", records, log=lambda _: None).run()
    evaluated = {(r["method"], r["variant"]) for r in made if r["method"] != "data"}
    assert evaluated == {(m, None) for m in loaded.methods} | {("student", "zero")}
    assert all(r["metrics"]["eval/episodes"] == 2.0 for r in made if r["method"] != "data")
    measure_grid(loaded, records, seed=0, batch_sizes=[1], repeats=1, min_time=0.0, threads=1)
    render(loaded, records)
    text = (tmp_path / "doc.md").read_text()
    for label in ("Gaussian BC", "MA-TD3+BC", "diffusion (DDPM, K = 100)", "reference MAC-Flow"):
        assert text.count(f"| {label}") == 2, label  # a row in the methods table and one in the aggregate
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"
