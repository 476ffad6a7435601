"""The command line: every shipped config stack builds, stacks resolve to the configs the tables were made with,
configs round-trip, run directories stay apart, runs resume, users plug in their own field."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, REPO, coordination_callbacks, quiet_trainer_args, run_cli

from macflow.cli import delta_message, moved_path_message, resolve_config
from macflow.modules import FlowTeacher

MPE_QUALITIES = ("expert", "medium", "medium-replay", "random")
STANDALONE = ["teacher.yaml", "student.yaml", "coordination/teacher.yaml", "coordination/student.yaml",
              *(f"baselines/{name}.yaml" for name in ("gaussian_bc", "td3bc", "diffusion", "reference_teacher",
                                                        "reference_student")),
              *(f"mamujoco/{s}_{stage}.yaml" for s in ("halfcheetah", "hopper") for stage in ("teacher", "student"))]
MPE_STACKS = [(f"mpe/{stage}.yaml", f"mpe/{q}/{stage}.yaml") for q in MPE_QUALITIES for stage in ("teacher", "student")]
SMAX_STACKS = [(f"smax/{stage}.yaml", f"smax/{q}/{stage}.yaml") for q in MPE_QUALITIES for stage in ("teacher", "student", "categorical_bc")]
HISTORY_STACKS = [("smax/student.yaml", "smax/medium/student.yaml", "smax/history_student.yaml"),
                  ("mamujoco/halfcheetah_student.yaml", "mamujoco/history_student.yaml")]
TRAINER_STACKS = [("coordination/teacher.yaml", "trainer/debug.yaml"),
                  ("coordination/teacher.yaml", "trainer/ddp_cpu.yaml")]
BASELINE_STACKS = [  # each benchmark's model deltas on the configs of their MAC-Flow counterpart
    *((f"mpe/{stage}.yaml", f"mpe/medium/{stage}.yaml", f"mpe/baselines/{name}.yaml")
      for name, stage in (("gaussian_bc", "student"), ("td3bc", "student"), ("diffusion", "teacher"),
                          ("reference_teacher", "teacher"))),
    *((f"mamujoco/{scenario}_{stage}.yaml", f"mamujoco/baselines/{name}.yaml")
      for scenario, name, stage in (("halfcheetah", "gaussian_bc", "student"), ("hopper", "td3bc", "student"),
                                    ("halfcheetah", "diffusion", "teacher"), ("hopper", "reference_teacher", "teacher"))),
    *(("smax/teacher.yaml", "smax/medium/teacher.yaml", f"smax/baselines/{name}.yaml")
      for name in ("diffusion", "reference_teacher")),
]
STACKS = ([(name,) for name in STANDALONE] + MPE_STACKS + SMAX_STACKS + HISTORY_STACKS + TRAINER_STACKS
          + BASELINE_STACKS)
"""Every config file a run is made of, as the ``--config`` files of one command."""


def config_args(stack) -> list[str]:
    return [arg for name in stack for arg in ("--config", str(CONFIGS / name))]


def stack_id(stack) -> str:
    return " + ".join(stack)


def test_every_config_file_is_in_a_tested_stack():
    used = {name for stack in STACKS for name in stack} | {"trainer/cpu.yaml", "trainer/gpu.yaml"}
    shipped = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")
               if "experiments" not in p.parts}  # grid files: tests/test_experiments.py
    assert shipped == used, "add a new config file to STACKS in tests/test_cli.py"


@pytest.mark.parametrize("stack", STACKS, ids=stack_id)
def test_every_config_stack_instantiates(stack):
    cli = run_cli(config_args(stack), run=False)
    dm, model = cli.datamodule, cli.model
    for dim in ("n_agents", "obs_dim", "action_dim", "state_dim", "discrete"):
        assert getattr(model.hparams, dim) == getattr(dm, dim), dim  # linked from the data, never repeated
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "RunCheckpoints"]
    assert len(checkpoints) == 1  # the checkpoint group is always there


def test_trainer_configs_stack_on_a_run():
    run = config_args(["coordination/teacher.yaml"])
    assert resolve_config(run)["trainer"]["accelerator"] == "cpu"  # configs/trainer/cpu.yaml, applied by default
    gpu = resolve_config(run + config_args(["trainer/gpu.yaml"]))["trainer"]
    assert (gpu["accelerator"], gpu["devices"], gpu["max_steps"]) == ("gpu", 1, 3000)
    ddp = resolve_config(run + config_args(["trainer/ddp_cpu.yaml"]))["trainer"]
    assert (ddp["accelerator"], ddp["devices"], ddp["strategy"]) == ("cpu", 2, "ddp")
    debug = resolve_config(run + config_args(["trainer/debug.yaml"]))
    assert debug["trainer"]["max_steps"] <= 20 and debug["trainer"]["default_root_dir"] == "runs/debug/{model}"
    assert debug["checkpoint"]["every_n_train_steps"] <= debug["trainer"]["max_steps"]


@pytest.mark.parametrize("stack", STACKS, ids=stack_id)
def test_printed_config_resolves_to_itself(stack, tmp_path: Path):
    resolved = resolve_config(config_args(stack))
    printed = tmp_path / "printed.yaml"
    printed.write_text(yaml.safe_dump(resolved))
    assert resolve_config(["--config", str(printed)]) == resolved


# ------------------------------------------------------------------------------ stacks = the flat configs of before
FLAT = yaml.safe_load((REPO / "tests/fixtures/flat_configs.yaml").read_text())
"""The shipped configs when every file was flat: the tables' runs were made with them."""
MOVED_ROOTS = {"configs/teacher.yaml": "runs/main/teacher", "configs/student.yaml": "runs/main/student"}
"""Run directories that changed: the main job no longer shares the table's expert directories."""
SEED_DIR = "seed{seed}"
"""Every shipped run directory ends in a folder per seed, filled in by the CLI from ``seed_everything``."""


def stack_of(flat_name: str) -> list[str]:
    quality = re.fullmatch(r"configs/mpe/(.+)_(teacher|student)\.yaml", flat_name)
    if quality:
        return [f"mpe/{quality[2]}.yaml", f"mpe/{quality[1]}/{quality[2]}.yaml"]
    return [flat_name.removeprefix("configs/")]


def new_root(flat_name: str) -> str:
    return f"{MOVED_ROOTS.get(flat_name, FLAT[flat_name]['trainer']['default_root_dir'])}/{SEED_DIR}"


def resolved_flat(flat_name: str, tmp_path: Path) -> dict:
    path = tmp_path / Path(flat_name).name
    path.write_text(yaml.safe_dump(FLAT[flat_name]))
    return resolve_config(["--config", str(path)], trainer_defaults=False)  # Lightning's defaults, as then


def final_checkpoint_path(flat_name: str) -> str:
    (final,) = [c for c in FLAT[flat_name]["trainer"]["callbacks"] if c["class_path"].endswith("FinalCheckpoint")]
    return final["init_args"]["path"]


def test_the_fixture_holds_every_flat_config_and_each_maps_to_a_shipped_stack():
    assert len(FLAT) == 21
    for name in FLAT:
        assert all((CONFIGS / part).is_file() for part in stack_of(name)), name


@pytest.mark.parametrize("flat_name", sorted(FLAT))
def test_config_stack_resolves_to_the_flat_config(flat_name: str, tmp_path: Path):
    """Base + delta = the flat file, but for the intended changes: the FinalCheckpoint + ModelCheckpoint callbacks
    are the checkpoint group now (same interval, the directory of its seed), and a student reads its teacher's
    final.ckpt of the same seed."""
    expected = resolved_flat(flat_name, tmp_path)
    trainer = expected["trainer"]
    (saver,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    args = saver["init_args"]
    assert (args["dirpath"], args["save_last"], args["save_top_k"], args["enable_version_counter"]) == (
        trainer["default_root_dir"], True, 0, False)  # what RunCheckpoints does
    expected["checkpoint"] = {"every_n_train_steps": args["every_n_train_steps"]}
    trainer["callbacks"] = [c for c in trainer["callbacks"]
                            if not c["class_path"].endswith(("ModelCheckpoint", "FinalCheckpoint"))]
    if not trainer["callbacks"]:
        del trainer["callbacks"]  # a config without callbacks resolves without the key
    trainer["default_root_dir"] = new_root(flat_name)
    init = expected["model"]["init_args"]
    if "teacher_ckpt" in init:
        teacher = flat_name.replace("student", "teacher")
        assert init["teacher_ckpt"] == final_checkpoint_path(teacher)  # the flat pair, as shipped
        init["teacher_ckpt"] = f"{new_root(teacher)}/final.ckpt"
    assert flatten(resolve_config(config_args(stack_of(flat_name)))) == flatten(expected)


# --------------------------------------------------------------------------- the main job against the table configs
MAIN_JOB = {"teacher.yaml": ("mpe/teacher.yaml", "mpe/expert/teacher.yaml"),
            "student.yaml": ("mpe/student.yaml", "mpe/expert/student.yaml")}


def flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("main", sorted(MAIN_JOB))
def test_main_job_header_states_exactly_how_it_differs_from_the_table_config(main: str):
    text = (CONFIGS / main).read_text()
    stack = MAIN_JOB[main]
    assert " ".join(f"--config configs/{name}" for name in stack) in text  # the header names the table config
    stated = {key: (yaml.safe_load(ours), yaml.safe_load(theirs)) for key, ours, theirs in
              re.findall(r"^#\s+([\w.]+): (.+?) here, (.+?) there$", text, flags=re.MULTILINE)}
    ours, table = flatten(resolve_config(config_args([main]))), flatten(resolve_config(config_args(stack)))
    assert ours.keys() == table.keys()
    actual = {key: (ours[key], table[key]) for key in ours if ours[key] != table[key]}
    assert stated == actual


# ---------------------------------------------------------------------------------------- removed names, run roots
def test_a_removed_config_path_names_the_stack_that_replaces_it(capsys: pytest.CaptureFixture):
    message = moved_path_message(["fit", "--config", "configs/mpe/medium_teacher.yaml"])
    assert "--config configs/mpe/teacher.yaml --config configs/mpe/medium/teacher.yaml" in message
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config=configs/mpe/random_student.yaml"])
    assert "configs/mpe/random/student.yaml" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="medium-replay/teacher.yaml"):
        resolve_config(["-c", str(REPO / "configs/mpe/medium-replay_teacher.yaml")])
    assert moved_path_message(config_args(["coordination/teacher.yaml"])) is None


def test_a_delta_config_alone_names_its_base(capsys: pytest.CaptureFixture):
    delta = str(CONFIGS / "mpe/medium/student.yaml")
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", delta])
    assert f"stack it after that base: --config {CONFIGS / 'mpe/student.yaml'} --config {delta}" in (
        capsys.readouterr().err)
    with pytest.raises(ValueError, match="sets data options but no data.class_path"):
        resolve_config(["--config", str(CONFIGS / "mpe/medium/teacher.yaml")])
    assert delta_message(config_args(["mpe/student.yaml", "mpe/medium/student.yaml"])) is None
    assert delta_message(["--model=macflow.modules.OneStepStudent", "--data", "macflow.datamodules.MPEDataModule",
                          "--config", delta]) is None


def test_a_checkpoint_name_runs_no_longer_write_names_final_ckpt(tmp_path: Path):
    (tmp_path / "final.ckpt").write_bytes(b"")
    message = moved_path_message(["validate", "--ckpt_path", str(tmp_path / "student.ckpt")])
    assert f"--ckpt_path {tmp_path / 'final.ckpt'}" in message
    assert moved_path_message(["validate", f"--ckpt_path={tmp_path / 'final.ckpt'}"]) is None
    (tmp_path / "run/seed3").mkdir(parents=True)
    (tmp_path / "run/seed3/final.ckpt").write_bytes(b"")
    assert moved_path_message(["validate", f"--ckpt_path={tmp_path / 'run/final.ckpt'}"]).endswith(
        f"one folder per seed: --ckpt_path {tmp_path / 'run/seed3/final.ckpt'}")


def test_runs_with_different_roots_keep_their_own_files(tmp_path: Path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for seed, root in enumerate(roots):
        run_cli(["fit", *config_args(["coordination/teacher.yaml"]), f"--seed_everything={seed}",
                 "--trainer.max_steps=6", "--trainer.val_check_interval=100000", "--checkpoint.every_n_train_steps=4",
                 "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                 f"--trainer.default_root_dir={root}"])
    files = [sorted(re.sub(r"tfevents.*", "tfevents", str(p.relative_to(root))) for p in root.rglob("*") if p.is_file())
             for root in roots]
    assert files[0] == files[1] == ["final.ckpt", "last.ckpt", "lightning_logs/version_0/config.yaml",
                                    "lightning_logs/version_0/events.out.tfevents", "lightning_logs/version_0/hparams.yaml"]
    first, second = (torch.load(root / "final.ckpt", weights_only=False) for root in roots)
    assert first["global_step"] == second["global_step"] == 6
    assert torch.load(roots[0] / "last.ckpt", weights_only=False)["global_step"] == 6  # also between two saves
    assert any(not torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"])
    for root in roots:
        saved = yaml.safe_load((root / "lightning_logs/version_0/config.yaml").read_text())
        assert saved["trainer"]["default_root_dir"] == str(root)


def test_print_config_is_complete_and_rerunnable(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "macflow", "fit", "--config", str(CONFIGS / "coordination/teacher.yaml"),
                          "--print_config"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    config = yaml.safe_load(out)
    assert config["model"]["init_args"]["vector_field"]["class_path"].endswith("AgentAttentionVectorField")
    assert "obs_dim" not in config["model"]["init_args"]  # linked, so not repeated
    assert config["checkpoint"] == {"every_n_train_steps": 1000} and config["trainer"]["accelerator"] == "cpu"
    path = tmp_path / "printed.yaml"
    path.write_text(out)
    cli = run_cli(["fit", "--config", str(path), "--trainer.max_steps=2", *quiet_trainer_args(tmp_path),
                   "--trainer.callbacks=null", "--trainer.val_check_interval=100000"])
    assert cli.trainer.global_step == 2 and cli.model.hparams.flow_steps == 10 and cli.datamodule.n_agents == 2


def teacher_fit(root: Path, *extra: str):
    return run_cli(["fit", "--config", str(CONFIGS / "coordination/teacher.yaml"), "--trainer.val_check_interval=100000",
                    "--model.init_args.lr_schedule=constant", *quiet_trainer_args(root),
                    *coordination_callbacks(root, "teacher"), *extra])


def test_resume_from_last_checkpoint_continues_from_the_saved_step(tmp_path: Path):
    first = teacher_fit(tmp_path, "--trainer.max_steps=20")
    assert first.trainer.global_step == 20
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 20
    second = teacher_fit(tmp_path, "--trainer.max_steps=30", f"--ckpt_path={tmp_path / 'last.ckpt'}")
    assert second.trainer.global_step == 30
    # the optimizer state came back too: Adam's step count continues from 20
    state = second.trainer.optimizers[0].state_dict()["state"]
    assert int(next(iter(state.values()))["step"]) == 30


def test_user_vector_field_from_outside_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "my_nets.py").write_text(
        "import torch\n"
        "from macflow.modules import VectorField\n\n"
        "class ResidualField(VectorField):\n"
        "    def __init__(self, obs_dim, action_dim, n_agents, width: int = 32):\n"
        "        super().__init__(obs_dim, action_dim, n_agents)\n"
        "        self.net = torch.nn.Sequential(torch.nn.Linear(n_agents * (obs_dim + action_dim) + 1, width),\n"
        "                                       torch.nn.GELU(), torch.nn.Linear(width, n_agents * action_dim))\n\n"
        "    def forward(self, x_t, t, obs):\n"
        "        h = torch.cat([obs.flatten(1), x_t.flatten(1), t[:, None]], -1)\n"
        "        return x_t + self.net(h).view_as(x_t)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cli = teacher_fit(tmp_path / "run", "--trainer.max_steps=10", "--model.init_args.vector_field=my_nets.ResidualField",
                      "--model.init_args.vector_field.width=16")
    assert type(cli.model.vector_field).__name__ == "ResidualField"
    reloaded = FlowTeacher.load_from_checkpoint(tmp_path / "run/teacher.ckpt")
    assert type(reloaded.vector_field).__name__ == "ResidualField"
    assert reloaded.vector_field.net[0].out_features == 16
    obs, noise = torch.randn(4, 2, 3), torch.randn(4, 2, 2)
    assert torch.allclose(reloaded.sample(obs, noise), cli.model.sample(obs, noise))


def test_a_class_that_is_not_a_vector_field_is_rejected_at_parse_time():
    with pytest.raises(SystemExit):
        run_cli(["--config", str(CONFIGS / "coordination/teacher.yaml"),
                 "--model.init_args.vector_field=torch.nn.Linear"], run=False)


def test_command_line_model_flags_win_over_the_checkpoint_at_validate(tmp_path: Path):
    teacher_fit(tmp_path, "--trainer.max_steps=2", "--model.init_args.flow_steps=4")

    def validate(*flags: str):
        return run_cli(["validate", "--config", str(CONFIGS / "coordination/teacher.yaml"),
                        "--data.init_args.n_eval_episodes=50", "--data.init_args.eval_batch_size=50",
                        *quiet_trainer_args(tmp_path), "--trainer.callbacks=null",
                        f"--ckpt_path={tmp_path / 'last.ckpt'}", *flags]).model.hparams

    assert validate().flow_steps == 4  # the checkpoint's own value, over the config's 10
    typed = validate("--model.init_args.flow_steps=2")
    # a typed flag wins; the rest stays the checkpoint's
    assert typed.flow_steps == 2 and typed.lr_schedule == "constant"
    assert validate("--model.init_args.flow_steps", "3").flow_steps == 3


def test_typed_model_flags_nest_under_a_class_path_like_jsonargparse():
    from macflow.cli import model_init_overrides

    flags = ["--model.init_args.vector_field=my.Field", "--model.init_args.vector_field.width=16",
             "--model.init_args.vector_field.init_args.depth", "2", "--model.init_args.flow_steps=3",
             "--seed_everything=1"]
    field = {"class_path": "my.Field", "init_args": {"width": 16, "depth": 2}}
    assert model_init_overrides(flags) == {"vector_field": field, "flow_steps": 3}
    # init_args left out, as jsonargparse allows; the model class itself is not taken
    shorthand = ["--model.flow_steps=3", "--model.class_path=macflow.modules.FlowTeacher", "--model.lr", "0.5"]
    assert model_init_overrides(shorthand) == {"flow_steps": 3, "lr": 0.5}


def test_input_error_prints_one_line_and_exits_2(tmp_path):
    """An InputError from any subcommand ends ``python -m macflow`` with its message alone and status 2."""
    script = ("from macflow.errors import InputError, exit_on_input_error\n"
              "def bad(): raise InputError('data.path x.npz is truncated: delete it')\n"
              "exit_on_input_error(bad)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "macflow: error: data.path x.npz is truncated: delete it\n"
