"""The command line: every shipped config builds, configs round-trip, runs resume, users plug in their own field."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, REPO, coordination_callbacks, quiet_trainer_args, run_cli

from macflow.modules import FlowTeacher

ALL_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if "experiments" not in p.parts)  # grids: test_experiments


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_instantiates(config: Path):
    cli = run_cli(["--config", str(config)], run=False)
    dm, model = cli.datamodule, cli.model
    for dim in ("n_agents", "obs_dim", "action_dim", "state_dim", "discrete"):
        assert getattr(model.hparams, dim) == getattr(dm, dim), dim  # linked from the data, never repeated


def test_print_config_is_complete_and_rerunnable(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "macflow", "fit", "--config", str(CONFIGS / "coordination/teacher.yaml"),
                          "--print_config"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    config = yaml.safe_load(out)
    assert config["model"]["init_args"]["vector_field"]["class_path"].endswith("AgentAttentionVectorField")
    assert "obs_dim" not in config["model"]["init_args"]  # linked, so not repeated
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
