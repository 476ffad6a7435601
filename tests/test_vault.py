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
