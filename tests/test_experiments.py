"""The experiment runner: a tiny coordination grid end to end, reuse by config hash, records, grid errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS

from macflow.experiments.grid import GridError, load_grid
from macflow.experiments.provenance import config_hash, hashed_config, parse_config
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


def test_grid_runs_end_to_end_writes_records_and_reuses_finished_runs(tmp_path):
    grid = load_grid(tiny_grid(tmp_path))
    runs, records = tmp_path / "runs", tmp_path / "records"
    first = Runner(grid, runs, records, log=lambda _: None)
    made = first.run()
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


def test_config_hash_follows_settings_that_change_results_only(tmp_path):
    base = ["--config", str(CONFIGS / "coordination/teacher.yaml"), f"--trainer.default_root_dir={tmp_path}/a"]

    def digest(*extra: str, root: str = "a") -> str:
        args = [a.replace("/a", f"/{root}") for a in base] + list(extra)
        return config_hash(hashed_config(parse_config(args), f"{tmp_path}/{root}"))

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
])
def test_grid_errors_name_the_file_and_key(tmp_path, change, message):
    path = tiny_grid(tmp_path, **change)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and message in str(err.value)


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


@pytest.mark.parametrize("path", sorted((CONFIGS / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_grids_load(path):
    grid = load_grid(path)
    assert grid.name == path.stem and grid.tables and grid.doc
    for m in grid.methods.values():
        if m.teacher is not None:
            assert grid.training_order().index(m.teacher) < grid.training_order().index(m.name)
