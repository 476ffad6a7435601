"""OG-MARL vault reader (tensorstore, no JAX) on small vaults written in the exact published layout."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from macflow.datamodules import MPEDataModule
from macflow.datamodules.vault import (
    TIME_BOUND,
    VaultReader,
    read_vault_transitions,
    structure_shape,
    write_vault,
)
from macflow.errors import InputError
from macflow.transitions import TransitionData

B, T, N = 2, 60, 3


def _omar_like(rng: np.random.Generator) -> dict:
    """An OMAR simple_spread-shaped vault: B rows, 25-step episodes ending with terminals (the time limit)."""
    terminals = np.zeros((B, T, N), bool)
    terminals[:, 24::25] = True
    return {"observations": rng.normal(size=(B, T, N, 18)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (B, T, N, 2)).astype(np.float32),
            "rewards": rng.normal(size=(B, T, N)).astype(np.float32),
            "terminals": terminals, "truncations": np.zeros((B, T, N), bool),
            "infos": {"state": rng.normal(size=(B, T, 54)).astype(np.float32)}}


@pytest.mark.parametrize("version", [1.2, 1.0])
def test_vault_round_trip_in_published_layout(tmp_path, version):
    exp = _omar_like(np.random.default_rng(0))
    vault = write_vault(tmp_path / "simple_spread.vlt" / "Expert", exp, version=version)
    assert sorted(p.name for p in vault.iterdir()) == ["d", "manifest.ocdbt", "metadata.json"]
    assert (vault / "manifest.ocdbt").read_bytes()[:2] == b"\x0c\xdb"  # OCDBT, not a plain zarr folder
    meta = json.loads((vault / "metadata.json").read_text())
    assert meta["structure_shape"]["infos"]["state"] == str((B, T, 54))
    assert structure_shape(meta)["actions"] == (B, T, N, 2)
    reader = VaultReader(vault)
    assert (reader.n_rows, reader.length) == (B, T)
    assert reader.array("observations").shape[1] == TIME_BOUND
    assert set(reader.leaves) == {"observations", "actions", "rewards", "terminals", "truncations", "infos.state"}
    for leaf in ("observations", "actions", "rewards", "terminals"):
        np.testing.assert_array_equal(reader.read(leaf), exp[leaf])
    np.testing.assert_array_equal(reader.read("infos.state", 10, 20, rows=[1]), exp["infos"]["state"][1:, 10:20])


def test_vault_to_transitions_never_pairs_across_episodes_or_rows(tmp_path):
    exp = _omar_like(np.random.default_rng(1))
    vault = write_vault(tmp_path / "Expert", exp)
    data = read_vault_transitions(vault, terminals_are_timeouts=True)
    # per row: episodes [0,25), [25,50) lose their last row (no next obs stored), the unfinished [50,60) too
    assert data.n_transitions == B * (24 + 24 + 9)
    assert not data.terminals.any() and data.state_dim == 54
    obs = torch.from_numpy(exp["observations"].reshape(B * T, N, 18))
    src, dst = data.obs_index, data.next_obs_index
    torch.testing.assert_close(data.observations[dst], obs[src + 1])
    assert not torch.isin(src % T, torch.tensor([24, 49, 59])).any()  # no pair crosses an episode or a row end
    torch.testing.assert_close(data.rewards, torch.from_numpy(exp["rewards"].reshape(B * T, N).mean(1))[src])
    as_terminal = read_vault_transitions(vault, rows=[0])  # real terminations: the last row is kept, no bootstrap
    assert as_terminal.n_transitions == 25 + 25 + 9 and int(as_terminal.terminals.sum()) == 2


def test_discrete_vault_with_int_actions_and_legals(tmp_path):
    rng = np.random.default_rng(2)
    legals = np.ones((1, 30, 2, 4), np.float32)
    legals[..., 3] = 0.0
    exp = {"observations": rng.normal(size=(1, 30, 2, 5)).astype(np.float32),
           "actions": rng.integers(0, 3, (1, 30, 2)).astype(np.int32),
           "rewards": np.ones((1, 30, 2), np.float32), "terminals": np.zeros((1, 30, 2), np.float32),
           "truncations": np.zeros((1, 30, 2), bool), "infos": {"legals": legals,
                                                                 "state": rng.normal(size=(1, 30, 7)).astype(
                                                                     np.float32)}}
    exp["terminals"][0, 9] = 1.0  # float terminals, as in og_marl SMAC
    data = read_vault_transitions(write_vault(tmp_path / "Good", exp))
    assert data.action_dim == 4 and data.legal is not None and not data.legal[..., 3].any()
    assert torch.equal(data.actions.argmax(-1), torch.from_numpy(exp["actions"][0].astype(np.int64))[data.obs_index])
    assert int(data.terminals.sum()) == 1


def test_vault_errors_name_the_fix(tmp_path):
    write_vault(tmp_path / "simple_spread.vlt" / "Expert", _omar_like(np.random.default_rng(3)))
    with pytest.raises(FileNotFoundError, match="Expert"):
        VaultReader(tmp_path / "simple_spread.vlt")  # the .vlt folder instead of a quality folder
    with pytest.raises(ValueError, match="rows"):
        read_vault_transitions(tmp_path / "simple_spread.vlt" / "Expert", rows=[5])
    with pytest.raises(KeyError, match="observations"):
        VaultReader(tmp_path / "simple_spread.vlt" / "Expert").array("obs")


def test_mpe_datamodule_reads_an_omar_vault(tmp_path):
    vault = write_vault(tmp_path / "simple_spread.vlt" / "Expert", _omar_like(np.random.default_rng(4)))
    dm = MPEDataModule(source="vault", path=str(vault), vault_rows=[1], physics="omar", reward="omar",
                       cache_dir=str(tmp_path / "cache"), n_reference_episodes=5)
    dm.prepare_data()
    dm.setup()
    assert dm.data.n_transitions == 24 + 24 + 9 and dm.data.state_dim == 0


def test_vault_actions_out_of_bounds_error_or_clip(tmp_path):
    exp = _omar_like(np.random.default_rng(5))
    exp["actions"][0, 3, 1, 0] = 4.99
    vault = write_vault(tmp_path / "Expert", exp)
    with pytest.raises(InputError, match=r"vault .*Expert: 1 of 114 transitions have actions outside \[-1, 1\] "
                                         r"\(max \|a\| = 4\.99\).*bad_transitions=clip"):
        read_vault_transitions(vault, terminals_are_timeouts=True)
    with pytest.warns(UserWarning, match="dropped 0 and clipped 1 of 114"):
        data = read_vault_transitions(vault, terminals_are_timeouts=True, bad_transitions="clip")
    assert float(data.actions.abs().max()) == 1.0


def test_vault_nan_rewards_are_caught_through_the_datamodule(tmp_path):
    exp = _omar_like(np.random.default_rng(6))
    exp["rewards"][1, 30, 2] = np.nan
    vault = write_vault(tmp_path / "simple_spread.vlt" / "Expert", exp)
    kw = dict(source="vault", path=str(vault), physics="omar", reward="omar", cache_dir=str(tmp_path / "cache"),
              n_reference_episodes=5)
    dm = MPEDataModule(**kw)
    dm.prepare_data()
    with pytest.raises(InputError, match=r"Expert: 1 of 114 transitions have NaN or inf values \(in rewards: 1\)"):
        dm.setup()
    dm = MPEDataModule(**kw, bad_transitions="drop")
    with pytest.warns(UserWarning, match="dropped 1 and clipped 0 of 114"):
        dm.setup()
    assert dm.data.n_transitions == 113 and torch.isfinite(dm.data.rewards).all()


@pytest.mark.parametrize("damage", ["metadata", "manifest", "chunk", "missing_chunk"])
def test_damaged_vault_files_give_one_line_naming_the_vault(tmp_path, damage):
    vault = write_vault(tmp_path / "Expert", _omar_like(np.random.default_rng(7)))
    chunks = sorted((vault / "d").iterdir(), key=lambda p: p.stat().st_size)
    if damage == "metadata":
        (vault / "metadata.json").write_text((vault / "metadata.json").read_text()[:40])
    elif damage == "manifest":
        (vault / "manifest.ocdbt").write_bytes((vault / "manifest.ocdbt").read_bytes()[:20])
    elif damage == "chunk":
        for chunk in chunks:
            chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    else:
        chunks[-1].unlink()
    with pytest.raises(InputError, match="download it again") as err:
        read_vault_transitions(vault)
    message = str(err.value)
    assert str(vault) in message and "\n" not in message and len(message) < 300


def test_missing_tensorstore_names_the_extra(tmp_path, monkeypatch):
    vault = write_vault(tmp_path / "Expert", _omar_like(np.random.default_rng(8)))
    monkeypatch.setitem(sys.modules, "tensorstore", None)  # as if tensorstore were not installed
    with pytest.raises(ImportError, match=r"pip install 'macflow\[vault\]'"):
        read_vault_transitions(vault)


def test_data_dims_that_differ_from_the_datamodule_name_the_vault(tmp_path):
    exp = _omar_like(np.random.default_rng(9))
    exp["observations"] = exp["observations"][..., :17]  # not simple_spread with 3 agents (18 features)
    vault = write_vault(tmp_path / "Expert", exp)
    dm = MPEDataModule(source="vault", path=str(vault), physics="omar", reward="omar",
                       cache_dir=str(tmp_path / "cache"), n_reference_episodes=5)
    dm.prepare_data()
    with pytest.raises(InputError, match=rf"^{vault}: the data has dims .*'obs_dim': 17.* but MPEDataModule "
                                         r"declared .*'obs_dim': 18"):
        dm.setup()


# ------------------------------------------------------------------ SMAC vaults (OG-MARL smac_v1 / smac_v2)
def _smac_like(rng: np.random.Generator, n_rows: int = 1, t: int = 40, n: int = 3, obs: int = 30, state: int = 48,
               actions: int = 9) -> dict:
    """An og_marl smac_v1/3m-shaped vault: int32 actions [B,T,N], float32 0/1 legals and terminals, the team reward
    replicated per agent, episodes of 7 steps (the last one unfinished), attack actions of dead agents illegal."""
    legals = (rng.random((n_rows, t, n, actions)) < 0.6).astype(np.float32)
    legals[..., 1] = 1.0  # stop is always legal
    logits = np.where(legals > 0, rng.random(legals.shape), -1.0)
    terminals = np.zeros((n_rows, t, n), np.float32)
    terminals[:, 6::7] = 1.0
    return {"observations": rng.normal(size=(n_rows, t, n, obs)).astype(np.float32),
            "actions": logits.argmax(-1).astype(np.int32),
            "rewards": np.repeat(rng.normal(size=(n_rows, t, 1)), n, -1).astype(np.float32),
            "terminals": terminals, "truncations": np.zeros((n_rows, t, n), np.float32),
            "infos": {"legals": legals, "state": rng.normal(size=(n_rows, t, state)).astype(np.float32)}}


def test_streamed_vault_equals_the_in_memory_stream_builder(tmp_path, monkeypatch):
    import macflow.datamodules.vault as vault_module

    exp = _smac_like(np.random.default_rng(10), n_rows=2)
    vault = write_vault(tmp_path / "3m.vlt" / "Good", exp)
    monkeypatch.setattr(vault_module, "READ_ROWS", 3)  # many small chunks per row
    streamed = read_vault_transitions(vault)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    terminals = exp["terminals"].all(-1)
    truncations = np.zeros_like(terminals)
    truncations[:, -1] = ~terminals[:, -1]
    expected = TransitionData.from_stream(flat(exp["observations"]), np.eye(9, dtype=np.float32)[flat(exp["actions"])],
                                          flat(exp["rewards"]), flat(terminals), flat(truncations),
                                          state=flat(exp["infos"]["state"]), legal=flat(exp["infos"]["legals"]))
    for name, value in expected.tensors().items():
        torch.testing.assert_close(getattr(streamed, name), value, msg=name)


def test_smac_vault_datamodule_one_hot_legal_state_and_episode_ends(tmp_path):
    from macflow.datamodules.smax import SMACVaultDataModule

    exp = _smac_like(np.random.default_rng(11))
    vault = write_vault(tmp_path / "smac_v1" / "3m.vlt" / "Good", exp)
    dm = SMACVaultDataModule(path=str(vault))
    assert (dm.n_agents, dm.obs_dim, dm.action_dim, dm.state_dim, dm.discrete) == (3, 30, 9, 48, True)
    assert dm.map_name == "3m"
    dm.setup()
    data = dm.data
    # 5 whole 7-step episodes (terminal last rows kept, no bootstrap), the unfinished 5-step tail loses its last row
    assert data.n_transitions == 5 * 7 + 4 and int(data.terminals.sum()) == 5
    assert int(data.episode_ids.max()) == 5
    assert torch.equal(data.actions.sum(-1), torch.ones(data.n_transitions, 3))
    idx = data.actions.argmax(-1)
    assert torch.equal(idx, torch.from_numpy(exp["actions"][0].astype(np.int64))[data.obs_index])
    assert data.legal[data.obs_index].gather(-1, idx[..., None]).all()  # every logged action is legal
    torch.testing.assert_close(data.states, torch.from_numpy(exp["infos"]["state"][0]))
    batch = data.gather(torch.arange(data.n_transitions))
    assert batch["next_legal"].shape == (data.n_transitions, 3, 9) and batch["next_state"].shape[-1] == 48


def test_smac_vault_without_a_matching_simulator_says_so_before_training(tmp_path):
    from lightning.pytorch import Trainer

    from macflow.datamodules.smax import SMACVaultDataModule

    vault = write_vault(tmp_path / "3m.vlt" / "Good", _smac_like(np.random.default_rng(12)))
    dm = SMACVaultDataModule(path=str(vault))
    problem = dm.simulator_problem()
    assert "obs 30" in problem and "'3m' has 3, 75, 72, 8" in problem and "limit_val_batches=0" in problem
    dm.trainer = Trainer(logger=False, enable_checkpointing=False, limit_val_batches=1)
    with pytest.raises(InputError, match=rf"^{vault}: the vault has 3 agents, obs 30, .*no simulator here") as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="no simulator here"):
        dm.make_env([0])
    dm.trainer = Trainer(logger=False, enable_checkpointing=False, limit_val_batches=0)
    dm.setup("fit")  # training without evaluation reads the vault
    assert dm.data.n_transitions > 0
    unknown = SMACVaultDataModule(path=str(write_vault(tmp_path / "terran_5_vs_5.vlt" / "Replay",
                                                       _smac_like(np.random.default_rng(13), n=5, obs=82,
                                                                  state=120, actions=11))))
    assert "SMAX has no map 'terran_5_vs_5'" in unknown.simulator_problem()


def test_smac_vault_with_smax_dims_evaluates_in_smax(tmp_path):
    from macflow.datamodules.smax import SMACVaultDataModule
    from macflow.envs.smax import dims_for

    d = dims_for("3m")
    exp = _smac_like(np.random.default_rng(14), obs=d.obs_dim, state=d.state_dim, actions=d.action_dim)
    dm = SMACVaultDataModule(path=str(write_vault(tmp_path / "3m.vlt" / "Medium", exp)))
    assert dm.simulator_problem() is None


def test_smac_vault_bad_paths_and_dims_give_one_line(tmp_path):
    from macflow.datamodules.smax import SMACVaultDataModule

    write_vault(tmp_path / "3m.vlt" / "Good", _smac_like(np.random.default_rng(15)))
    with pytest.raises(FileNotFoundError, match=r"3m\.vlt/metadata\.json not found.*pass one quality folder"):
        SMACVaultDataModule(path=str(tmp_path / "3m.vlt"))
    with pytest.raises(FileNotFoundError, match="quality folder"):
        SMACVaultDataModule(path=str(tmp_path / "nowhere"))
    mpe = write_vault(tmp_path / "simple_spread.vlt" / "Expert", _omar_like(np.random.default_rng(16)))
    with pytest.raises(InputError, match=rf"^{mpe}: not a SMAC vault .*MPEDataModule"):
        SMACVaultDataModule(path=str(mpe))
    exp = _smac_like(np.random.default_rng(17))
    exp["actions"][0, 3, 1] = 12  # past the 9 actions of the legal mask
    bad = write_vault(tmp_path / "bad.vlt" / "Good", exp)
    with pytest.raises(InputError, match=rf"^{bad}: actions hold indices 0..12 but there are 9 actions"):
        read_vault_transitions(bad)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.json").write_text("{\"version\": 1.2")
    with pytest.raises(InputError, match="metadata.json: not a valid vault metadata file"):
        SMACVaultDataModule(path=str(tmp_path / "broken"))


@pytest.mark.skipif(__import__("importlib").util.find_spec("smac") is not None, reason="smac is installed")
def test_sc2_without_smac_says_what_to_install(tmp_path):
    from macflow.datamodules.smax import SMACVaultDataModule
    from macflow.envs.sc2 import SC2Env

    with pytest.raises(ImportError, match=r"^SMAC map '3m' cannot run: the smac package is not installed: pip "
                                         r"install git\+https://github.com/oxwhirl/smac.git, then StarCraft II 4.10"):
        SC2Env([0], "3m")
    vault = write_vault(tmp_path / "3m.vlt" / "Good", _smac_like(np.random.default_rng(18)))
    dm = SMACVaultDataModule(path=str(vault), simulator="sc2")
    with pytest.raises(InputError, match=r"StarCraft II cannot evaluate it: the smac package is not installed"):
        dm.setup("validate")


def test_sc2_problem_names_the_missing_game_and_maps(tmp_path, monkeypatch):
    import importlib.util

    from macflow.envs import sc2

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "smac" else
                        real_find_spec(name, *a))  # the package present, the game not
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))
    assert "StarCraft II is not at" in sc2.sc2_problem("3m") and "SC2.4.10.zip" in sc2.sc2_problem("3m")
    (tmp_path / "StarCraftII" / "Versions").mkdir(parents=True)
    assert "3m.SC2Map not found: unzip SMAC_Maps.zip" in sc2.sc2_problem("3m")
    (tmp_path / "StarCraftII" / "Maps" / "SMAC_Maps").mkdir(parents=True)
    (tmp_path / "StarCraftII" / "Maps" / "SMAC_Maps" / "3m.SC2Map").write_bytes(b"")
    assert sc2.sc2_problem("3m") is None
