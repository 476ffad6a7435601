"""MaMuJoCo table: behaviour data, K-step teacher and one-step student returns per dataset quality.

    OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario HalfCheetah --seeds 0 1 2

Per quality and seed: generates (or reuses) the dataset with ``data_seed = seed`` (behaviour policies trained from
that seed), trains the teacher with configs/mamujoco/<scenario>_teacher.yaml and the student with
configs/mamujoco/<scenario>_student.yaml (``seed_everything = seed``, no intermediate evaluation), then evaluates both
with their ``policy`` on the same ``--episodes`` 1000-step evaluation episodes in mamujoco_v1. Runs in-process
through the real CLI, quality by quality (a stopped run leaves whole rows). ``--reuse-teachers`` keeps the teachers
a previous run saved under ``--out`` and trains only the students. ``--obs-layout omiga`` trains and evaluates in
the OMIGA layout (every agent sees the whole state plus its id), with cells and a table section of their own.
``--student-set expert:normalize_obs=false`` overrides one student setting for one quality's cells (recorded);
``--teacher-set expert:prediction=endpoint`` does the same for the teacher.

Each cell's numbers, settings, command and commit are saved as ``<cells>/<table>/<quality>/seed<k>.json``
(``--cells``, default docs/cells/mamujoco: committed with the table, so a fresh clone can re-render or extend it;
checkpoints stay under ``--out``), and the table section of docs/results_mamujoco.md is rewritten after every cell
(the other sections are kept). ``--merge`` also tabulates cells of earlier runs with the same settings (episodes,
steps, student steps and flow steps), so a table can be completed by several runs; the doc names every command that
contributed. ``--merge`` refuses to replace a section that counts more cells than it can find (records missing).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from macflow import evaluation  # noqa: E402
from macflow.cli import main as cli_main  # noqa: E402
from macflow.datamodules import MaMuJoCoDataModule  # noqa: E402
from macflow.modules import FlowTeacher, OneStepStudent  # noqa: E402

QUALITIES = ("medium", "expert", "medium-replay", "medium-expert", "random")


def markers(scenario: str, section: str) -> tuple[str, str]:
    """Start and end comments of one scenario's ``data`` or ``table`` section of the doc."""
    return f"<!-- {scenario} {section}:start -->", f"<!-- {scenario} {section}:end -->"


def table_name(args) -> str:
    """The scenario, plus the observation layout unless native (such cells and tables are kept separate)."""
    layout = args.obs_layout
    return args.scenario if layout == "mamujoco" else f"{args.scenario}-{layout}"


def datamodule(args, quality: str, seed: int) -> MaMuJoCoDataModule:
    return MaMuJoCoDataModule(scenario=args.scenario, quality=quality, data_seed=seed, cache_dir=args.cache,
                              obs_layout=args.obs_layout, progress=False)


def replace_section(doc: Path, start: str, end: str, lines: list[str]) -> None:
    """Replace the ``start``..``end`` section of ``doc`` in place (appended if missing); the rest is kept."""
    old = doc.read_text() if doc.exists() else "# MaMuJoCo results\n"
    block = "\n".join([start, *lines, end])
    if start in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(new)
    print(f"[mamujoco_table] wrote {doc}", flush=True)


def write_data_doc(args) -> None:
    """Datasets section from the manifests (generates missing datasets first: python -m macflow.datagen ...)."""
    lines = [f"## {args.scenario}: generated datasets", "",
             f"Made by `OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario {args.scenario} --data-only "
             f"--seeds {' '.join(map(str, args.seeds))}` from the manifests written by `python -m macflow.datagen "
             f"mamujoco --scenario {args.scenario} --seed <k>` (same as the datamodule's prepare_data()).", "",
             "| seed | quality | episodes | transitions | mean ± std return | mean length | behaviour | "
             "collection s |", "|---|---|---|---|---|---|---|---|"]
    budget_lines = []
    for seed in args.seeds:
        for q in args.qualities:
            dm = MaMuJoCoDataModule(scenario=args.scenario, quality=q, data_seed=seed, cache_dir=args.cache,
                                    progress=False)
            dm.prepare_data()
            m = dm.manifest()
            beh = m["behaviour"]
            desc = "; ".join(
                (b.get("policy", "") + (f" (ARS it {b['ars_iteration']}, eval {b['ars_eval_return']:.0f})"
                                        if "ars_iteration" in b else ""))
                if "behaviours" not in b else
                " + ".join(x["policy"].split(" (")[0] + (f" it {x['ars_iteration']}" if "ars_iteration" in x else
                                                           f" seed {x.get('cem_seed')}") for x in b["behaviours"])
                for b in beh.values())
            modes = ", ".join(f"mode {k}: {v:.0f}" for k, v in m["mode_returns"].items()) if q in ("expert",) else ""
            lines.append(f"| {seed} | {q} | {m['episodes']} | {m['transitions']:,} | {m['mean_return']:.0f} ± "
                         f"{m['std_return']:.0f}" + (f" ({modes})" if modes else "") + f" | {m['mean_length']:.0f} | "
                         f"{desc} | {m['collection_seconds']:.0f} |")
        budget_lines.append(f"- seed {seed}: behaviour training {m['behaviour_training_seconds']:.0f} s; ARS eval "
                            "return by iteration: " + ", ".join(f"{c['iteration']}: {c['eval_return']:.0f}"
                                                                for c in m["ars_curve"])
                            + ("; CPG gaits: " + ", ".join(f"seed {g['seed']}: {g['return']:.0f} ({g['seconds']:.0f} s)"
                                                            for g in m["cpg"]) if m["cpg"] else ""))
    lines += ["", "Behaviour training (cached, shared by all qualities of a seed):", "", *budget_lines,
              "", "collection s = seconds of the whole prepare_data() call for that dataset (the first one of a "
              "seed includes the behaviour training)."]
    replace_section(args.doc, *markers(args.scenario, "data"), lines)


def fit(config: Path, root: Path, seed: int, quality: str, cache: str, *extra: str) -> Path:
    sys.argv = ["macflow"]
    cli_main(["fit", "--config", str(config), f"--seed_everything={seed}", f"--data.init_args.data_seed={seed}",
              f"--data.init_args.quality={quality}", f"--data.init_args.cache_dir={cache}",
              "--data.init_args.progress=false", f"--trainer.default_root_dir={root}",
              "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.val_check_interval=10000000", "--trainer.callbacks=macflow.callbacks.FinalCheckpoint",
              f"--trainer.callbacks.path={root}/final.ckpt", *extra])
    return root / "final.ckpt"


def evaluate(model, dm: MaMuJoCoDataModule, episodes: int, policy=None) -> float:
    torch.manual_seed(0)
    results = evaluation.evaluate(dm, policy or model.policy, evaluation.eval_seeds(episodes), episodes)
    return float(results["return"].mean())


def held_noise_policy(teacher: FlowTeacher, episodes: int):
    """The teacher with one noise draw per episode, held for all its steps (the table's teacher draws fresh noise
    at every step, so on mixed data it can switch between behaviours from one step to the next)."""
    noise = torch.randn(episodes, teacher.n_agents, teacher.action_dim, generator=torch.Generator().manual_seed(0))
    return lambda obs, legal=None: teacher.act(obs, legal, noise=noise)


def held_noise_student(student: OneStepStudent, episodes: int):
    """The student with one joint noise draw per episode, held for all its steps (its ``eval_noise: fixed``)."""
    z, _ = student.draw_noise(episodes, torch.device("cpu"), torch.Generator().manual_seed(0))
    return lambda obs, legal=None: student.act(obs, legal, z=z)


def evaluate_cell(cell: dict, dm: MaMuJoCoDataModule, root: Path, episodes: int) -> None:
    """Fill the cell's ``teacher``, ``teacher_held``, ``student`` and ``student_held`` returns from its saved
    checkpoints."""
    teacher = FlowTeacher.load_from_checkpoint(root / "teacher/final.ckpt", map_location="cpu").eval()
    cell["teacher"] = evaluate(teacher, dm, episodes)
    cell["teacher_held"] = evaluate(teacher, dm, episodes, held_noise_policy(teacher, episodes))
    student = OneStepStudent.load_from_checkpoint(root / "student/final.ckpt", map_location="cpu").eval()
    cell["student"] = evaluate(student, dm, episodes)
    cell["student_held"] = evaluate(student, dm, episodes, held_noise_student(student, episodes))


def fmt(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.0f} ± {std:.0f}"


def overrides_for(items: list[str], quality: str, flag: str) -> dict[str, str]:
    """The ``QUALITY:KEY=VALUE`` items of ``flag`` (``--student-set`` / ``--teacher-set``) that apply to one quality."""
    out = {}
    for item in items:
        q, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not (sep and eq and key) or q not in QUALITIES:
            raise SystemExit(f"{flag} {item!r}: write QUALITY:KEY=VALUE with QUALITY one of {QUALITIES}, "
                             "e.g. expert:normalize_obs=false")
        if q == quality:
            out[key] = value
    return out


def student_overrides(args, quality: str) -> dict[str, str]:
    """The ``--student-set`` overrides of the student's ``model.init_args`` for one quality."""
    return overrides_for(args.student_set, quality, "--student-set")


def teacher_overrides(args, quality: str) -> dict[str, str]:
    """The ``--teacher-set`` overrides of the teacher's ``model.init_args`` for one quality."""
    return overrides_for(args.teacher_set, quality, "--teacher-set")


def settings(args, quality: str) -> dict:
    """What makes two cells comparable (only cells with equal settings share a table)."""
    out = {"episodes": args.episodes, "max_steps": args.max_steps, "student_flow_steps": args.student_flow_steps}
    if args.student_max_steps is not None:  # absent from older cells, whose students trained max_steps
        out["student_max_steps"] = args.student_max_steps
    if args.obs_layout != "mamujoco":  # absent from native-layout cells
        out["obs_layout"] = args.obs_layout
    if overrides := student_overrides(args, quality):  # absent from cells with the config's student as it is
        out["student_overrides"] = overrides
    if overrides := teacher_overrides(args, quality):  # absent from cells with the config's teacher as it is
        out["teacher_overrides"] = overrides
    return out


def command(args, qualities, seeds) -> str:
    return (f"OMP_NUM_THREADS=1 python benchmarks/mamujoco_table.py --scenario {args.scenario} --qualities "
            f"{' '.join(qualities)} --seeds {' '.join(map(str, seeds))} --episodes {args.episodes}"
            + (f" --max-steps {args.max_steps}" if args.max_steps else "")
            + (f" --student-max-steps {args.student_max_steps}" if args.student_max_steps else "")
            + (f" --student-flow-steps {args.student_flow_steps}" if args.student_flow_steps else "")
            + (" --reuse-teachers" if args.reuse_teachers else "")
            + (f" --obs-layout {args.obs_layout}" if args.obs_layout != "mamujoco" else "")
            + "".join(f" --student-set {item}" for item in args.student_set)
            + "".join(f" --teacher-set {item}" for item in args.teacher_set)
            + (" --merge" if args.merge else ""))


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        # docs/ is left out: the table's own doc and cell records change while it runs
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cell_path(args, quality: str, seed: int) -> Path:
    """Where one cell's record lives (under ``--cells``, committed beside the doc)."""
    return args.cells / table_name(args) / quality / f"seed{seed}.json"


def save_cell(args, cell: dict) -> None:
    path = cell_path(args, cell["quality"], cell["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cell, indent=1) + "\n")


def load_cells(args) -> list[dict]:
    """Per-(quality, seed) results saved by earlier cells under ``--cells`` with the same settings."""
    cells = []
    for f in sorted((args.cells / table_name(args)).glob("*/seed*.json")):
        c = json.loads(f.read_text())
        if c.get("settings") == settings(args, c["quality"]):
            cells.append(c)
    return cells


def cells_in_doc(args) -> int:
    """How many cells the doc's current section of this table counts (0 when it has none)."""
    text = args.doc.read_text() if args.doc.exists() else ""
    start, end = markers(table_name(args), "table")
    if start not in text:
        return 0
    found = re.search(r"(\d+) \(quality, seed\) cells", text[text.index(start):text.index(end)])
    return int(found.group(1)) if found else 0


def check_merge(args, cells: list[dict]) -> None:
    """Stop before ``--merge`` or ``--doc-only`` drops rows: the doc's section must not count more cells than were
    found."""
    have = cells_in_doc(args)
    if have > len(cells):
        raise SystemExit(
            f"the doc's {table_name(args)} table counts {have} cells, but only {len(cells)} with these settings are "
            f"under {args.cells / table_name(args)}; rewriting it would drop rows. Re-run the missing cells with the "
            "table's own commands, or run without --merge / --doc-only to start the table afresh")


def steps_text(args) -> str:
    """The gradient-step overrides of the table's command, in words ('' when the configs' own are used)."""
    if args.student_max_steps is None:
        return f", {args.max_steps} gradient steps per stage" if args.max_steps else ""
    teacher = f"{args.max_steps}" if args.max_steps else "the config's"
    return f", {teacher} teacher and {args.student_max_steps} student gradient steps"


def write_doc(args, cells: list[dict]) -> None:
    by_q: dict[str, list[dict]] = {}
    for q in QUALITIES:
        got = sorted((c for c in cells if c["quality"] == q), key=lambda c: c["seed"])
        if got:
            by_q[q] = got
    commands = list(dict.fromkeys(c["command"] for c in cells))
    minutes = sum(c["seconds"] for c in cells) / 60
    models = (f"the student distils {args.student_flow_steps}-step teacher samples"
              if args.student_flow_steps else "the student distils the teacher's own K-step samples")
    for who in ("teacher", "student"):
        overridden = {q: cs[0]["settings"][f"{who}_overrides"] for q, cs in by_q.items()
                      if f"{who}_overrides" in cs[0]["settings"]}
        models += "".join(f"; {q} {who}s with " + ", ".join(f"`{k}: {v}`" for k, v in o.items())
                          + f" (`--{who}-set`)" for q, o in overridden.items())
    layout = args.obs_layout
    title = args.scenario + ("" if layout == "mamujoco" else f", `{layout}` observation layout")
    lines = [f"## {title}: behaviour data, teacher and student returns", "",
             "Made by " + ", then ".join(f"`{c}`" for c in commands)
             + (" (cells of the same settings from several runs, joined by `--merge` or `--doc-only`)"
                if len(commands) > 1 else "")
             + f"; {len(cells)} (quality, seed) cells, {minutes:.0f} min of cell wall time in all on a shared 2-core "
             f"CPU; configs `configs/mamujoco/{args.scenario.lower()}_{{teacher,student}}.yaml`"
             + steps_text(args)
             + f"; {models}; code {', '.join(sorted({c['commit'] for c in cells}))}. Do not edit by hand.",
             "", f"Returns of 1000-step episodes in `mamujoco_v1`; models evaluated on the same {args.episodes} "
             "evaluation seeds; mean ± std over the data/training seeds (std 0 with one seed). Behaviour return = "
             "the dataset's mean episode return. The teacher column draws fresh noise at every step (its `policy`); "
             "'noise held per episode' is the same model with one noise draw per episode kept for all 1000 steps "
             "(a diagnostic: on data mixed from several behaviours, fresh noise can switch behaviour every step; "
             "for the student it is `eval_noise: fixed`). The ratio and the targets use the student column."
             + "".join(f" Evaluations re-run from the saved checkpoints by `{x}` (code {y})." for x, y in dict.fromkeys(
                 (c["reevaluated"]["command"], c["reevaluated"]["commit"]) for c in cells if "reevaluated" in c)),
             "",
             "| data | seeds | episodes | behaviour return | teacher (K = 10) | teacher, noise held per episode | "
             "student (1 step) | student, noise held per episode | student / behaviour |",
             "|---|---|---|---|---|---|---|---|---|"]
    for q, cs in by_q.items():
        data, teacher, student = ([c[k] for c in cs] for k in ("data", "teacher", "student"))
        d = statistics.mean(data)
        ratio = statistics.mean(student) / d if d > 0 else float("nan")  # a ratio means nothing below 0
        held, s_held = (fmt([c[k] for c in cs]) if all(k in c for c in cs) else "–"
                        for k in ("teacher_held", "student_held"))
        lines.append(f"| {q} | {' '.join(str(c['seed']) for c in cs)} | {cs[0]['episodes']} | {fmt(data)} | "
                     f"{fmt(teacher)} | {held} | {fmt(student)} | {s_held} | "
                     f"{'–' if ratio != ratio else f'{ratio:.2f}'} |")
    lines += ["", "Targets: student ≥ behaviour on medium and medium-replay, ≥ 90 % of it on expert (on the means "
              "over seeds).", ""]
    for q, need in (("medium", 1.0), ("medium-replay", 1.0), ("expert", 0.9)):
        if q in by_q:
            s = statistics.mean(c["student"] for c in by_q[q])
            d = statistics.mean(c["data"] for c in by_q[q])
            n = len(by_q[q])
            lines.append(f"- {q}: **{'met' if s >= need * d else 'missed'}** ({s:.0f} vs {need:g} × {d:.0f}, "
                         f"{n} seed(s){'' if n >= 3 else '; fewer than the 3 seeds asked for'}).")
        else:
            lines.append(f"- {q}: not run.")
    lines += ["", "Per cell (behaviour / teacher / teacher with noise held per episode / student / student with "
              "noise held per episode return, student ÷ behaviour, cell wall time incl. training, evaluation and any "
              "data generation):", ""]
    for q, cs in by_q.items():
        lines.append(f"- {q}: " + "; ".join(
            f"seed {c['seed']}: {c['data']:.0f} / {c['teacher']:.0f} / "
            + (f"{c['teacher_held']:.0f}" if "teacher_held" in c else "–")
            + f" / {c['student']:.0f} / "
            + (f"{c['student_held']:.0f}" if "student_held" in c else "–")
            + f" ({c['student'] / c['data']:.2f}, {c['seconds'] / 60:.1f} min)" for c in cs))
    replace_section(args.doc, *markers(table_name(args), "table"), lines)


def run_cell(args, q: str, seed: int) -> dict:
    start = time.time()
    root = args.out / table_name(args) / q / f"seed{seed}"
    layout = [f"--data.init_args.obs_layout={args.obs_layout}"]
    steps = [] if args.max_steps is None else [f"--trainer.max_steps={args.max_steps}"]
    student_steps = steps if args.student_max_steps is None else [f"--trainer.max_steps={args.student_max_steps}"]
    k = [] if args.student_flow_steps is None else [f"--model.init_args.flow_steps={args.student_flow_steps}"]
    name = args.scenario.lower()
    configs = REPO / "configs/mamujoco"
    t_ckpt = root / "teacher/final.ckpt"
    if args.reuse_teachers and t_ckpt.is_file():
        print(f"[mamujoco_table] reusing the teacher {t_ckpt}", flush=True)
    elif args.reuse_teachers:
        raise SystemExit(f"--reuse-teachers: no {t_ckpt}; train that cell's teacher first (run it without the flag)")
    else:
        t_overrides = [f"--model.init_args.{key}={value}" for key, value in teacher_overrides(args, q).items()]
        fit(configs / f"{name}_teacher.yaml", root / "teacher", seed, q, args.cache, *steps, *layout, *t_overrides)
    overrides = [f"--model.init_args.{key}={value}" for key, value in student_overrides(args, q).items()]
    fit(configs / f"{name}_student.yaml", root / "student", seed, q, args.cache, *student_steps, *k, *layout,
        f"--model.init_args.teacher_ckpt={t_ckpt}", *overrides)
    dm = datamodule(args, q, seed)
    m = dm.manifest()
    cell = {"scenario": args.scenario, "quality": q, "seed": seed, "data": m["mean_return"],
            "episodes": m["episodes"], "settings": settings(args, q), "command": command(args, args.qualities, args.seeds),
            "commit": git_commit()}
    evaluate_cell(cell, dm, root, args.episodes)
    cell["seconds"] = round(time.time() - start, 1)
    save_cell(args, cell)
    print(f"[mamujoco_table] {args.scenario} {q} seed {seed}: behaviour={cell['data']:.1f}, "
          f"teacher={cell['teacher']:.1f}, student={cell['student']:.1f} ({cell['seconds']:.0f} s)", flush=True)
    return cell


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="HalfCheetah", choices=["HalfCheetah", "Hopper"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--qualities", nargs="+", default=list(QUALITIES), choices=QUALITIES)
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes per model")
    p.add_argument("--cache", default=str(REPO / "data_cache"))
    p.add_argument("--out", type=Path, default=REPO / "runs/benchmarks/mamujoco", help="checkpoints")
    p.add_argument("--cells", type=Path, default=REPO / "docs/cells/mamujoco",
                   help="the cells' records (committed: the table is rendered from them)")
    p.add_argument("--max-steps", type=int, default=None, help="override the configs' gradient steps")
    p.add_argument("--student-max-steps", type=int, default=None,
                   help="the student's gradient steps (default: --max-steps, else the config's)")
    p.add_argument("--reuse-teachers", action="store_true",
                   help="keep each cell's saved teacher (same --out, teacher settings unchanged); "
                        "train the student only")
    p.add_argument("--student-flow-steps", type=int, default=None,
                   help="teacher Euler steps for the student's distillation targets (default: the teacher's K)")
    p.add_argument("--obs-layout", default="mamujoco", choices=["mamujoco", "omiga"],
                   help="observation layout of data and evaluation (omiga: every agent sees the whole state)")
    p.add_argument("--student-set", nargs="+", default=[], metavar="QUALITY:KEY=VALUE",
                   help="override the student config's model.init_args.KEY for one quality's cells, e.g. "
                        "expert:normalize_obs=false (recorded in the cells' settings and the table)")
    p.add_argument("--teacher-set", nargs="+", default=[], metavar="QUALITY:KEY=VALUE",
                   help="override the teacher config's model.init_args.KEY for one quality's cells, e.g. "
                        "expert:prediction=endpoint (recorded like --student-set)")
    p.add_argument("--merge", action="store_true",
                   help="keep cells with the same settings from earlier runs (under --cells) in the table")
    p.add_argument("--doc", type=Path, default=REPO / "docs/results_mamujoco.md")
    p.add_argument("--data-only", action="store_true", help="only (generate and) tabulate the datasets")
    p.add_argument("--doc-only", action="store_true",
                   help="only rewrite the table section from the saved cells with these settings (refused, as with "
                        "--merge, where the section counts more cells than are saved)")
    p.add_argument("--eval-only", action="store_true",
                   help="re-evaluate the saved checkpoints of finished cells (same settings), then rewrite the table")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.data_only:
        return write_data_doc(args)
    done: dict[tuple[str, int], dict] = {}
    if args.doc_only:
        cells = load_cells(args)
        check_merge(args, cells)
        return write_doc(args, cells)
    if args.eval_only:
        cells = load_cells(args)
        for cell in cells:
            if cell["quality"] in args.qualities and cell["seed"] in args.seeds:
                root = args.out / table_name(args) / cell["quality"] / f"seed{cell['seed']}"
                dm = datamodule(args, cell["quality"], cell["seed"])
                evaluate_cell(cell, dm, root, args.episodes)
                cell["reevaluated"] = {"command": command(args, args.qualities, args.seeds) + " --eval-only",
                                       "commit": git_commit()}
                save_cell(args, cell)
                print(f"[mamujoco_table] re-evaluated {cell['quality']} seed {cell['seed']}: teacher "
                      f"{cell['teacher']:.1f}, held {cell['teacher_held']:.1f}, student {cell['student']:.1f}, held "
                      f"{cell['student_held']:.1f}",
                      flush=True)
        return write_doc(args, cells)
    if args.merge:
        cells = load_cells(args)
        check_merge(args, cells)
        done = {(c["quality"], c["seed"]): c for c in cells}
    for q in args.qualities:  # quality-major: a stopped run leaves whole rows
        for seed in args.seeds:
            done[(q, seed)] = run_cell(args, q, seed)
            write_doc(args, list(done.values()))


if __name__ == "__main__":
    main()
