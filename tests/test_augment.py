"""D4 augmentation: what it does to a batch, and that simple_spread really is symmetric under it (real mpe2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from macflow.datamodules import MPEDataModule
from macflow.datamodules.augment import D4_MATRICES, d4_augment
from macflow.datamodules.sampling import RandomBatches
from macflow.envs.mpe import SpreadEpisode
from macflow.transitions import TransitionData


def test_d4_matrices_are_the_eight_distinct_symmetries_of_the_square():
    assert len({tuple(m.flatten().tolist()) for m in D4_MATRICES}) == 8
    for m in D4_MATRICES:  # orthogonal and maps the corners of the square onto corners
        torch.testing.assert_close(m @ m.T, torch.eye(2))
    corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    for m in D4_MATRICES:
        assert {tuple(c) for c in (corners @ m.T).tolist()} == {tuple(c) for c in corners.tolist()}


def test_d4_augment_turns_every_vector_of_a_transition_by_one_symmetry():
    gen = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(64, 3, 6), "next_obs": torch.randn(64, 3, 6), "actions": torch.randn(64, 3, 2),
             "rewards": torch.randn(64)}
    out = d4_augment(batch, gen)
    assert out["rewards"] is batch["rewards"]
    used = set()
    for b in range(64):  # find the one matrix that explains the whole transition
        pairs = {k: batch[k][b].reshape(-1, 2) for k in ("obs", "next_obs", "actions")}
        hits = [g for g, m in enumerate(D4_MATRICES)
                if all(torch.allclose(pairs[k] @ m.T, out[k][b].reshape(-1, 2), atol=1e-6) for k in pairs)]
        assert len(hits) == 1
        used |= set(hits)
    assert len(used) == 8  # all symmetries are drawn
    with pytest.raises(ValueError, match="2-D vector"):
        d4_augment({**batch, "obs": torch.randn(4, 3, 5)}, gen)


@pytest.mark.parametrize("physics", ["mpe2", "omar"])
def test_simple_spread_is_invariant_under_the_symmetries(physics):
    """Step a real episode and its mirror image (positions, velocities and forces turned by g): the mirror's
    observations are g applied to the original's, and the rewards are equal."""
    rng = np.random.default_rng(0)
    for g, m in enumerate(D4_MATRICES.double().numpy()):
        a, b = SpreadEpisode(physics=physics), SpreadEpisode(physics=physics)
        a.reset(seed=g)
        b.reset(seed=100 + g)
        for src, dst in zip(a.world.entities, b.world.entities):  # b := g(a)
            dst.state.p_pos, dst.state.p_vel = m @ src.state.p_pos, m @ src.state.p_vel
        for _ in range(5):
            u = rng.uniform(-1, 1, (3, 2))
            obs_a, r_a, _ = a.step(u)
            obs_b, r_b, _ = b.step(u @ m.T)
            turned = (obs_a.reshape(3, -1, 2) @ m.T).reshape(3, -1)
            np.testing.assert_allclose(obs_b, turned, atol=1e-5)
            assert r_b == pytest.approx(r_a, abs=1e-5)


def test_mpe_datamodule_augments_training_batches_only_when_asked(tmp_path):
    data = TransitionData(observations=torch.randn(5, 3, 18), obs_index=torch.arange(4),
                          next_obs_index=torch.arange(1, 5), actions=torch.rand(4, 3, 2) * 2 - 1,
                          rewards=torch.zeros(4), terminals=torch.zeros(4, dtype=torch.bool),
                          episode_ids=torch.zeros(4, dtype=torch.long))
    for augment, changed in (("none", False), ("d4", True)):
        dm = MPEDataModule(augment=augment, cache_dir=str(tmp_path), batch_size=32)
        dm.data = data
        loader = dm.train_dataloader()
        assert isinstance(loader, RandomBatches)
        batch = next(iter(loader))
        plain = next(iter(RandomBatches(data, 32, seed=0)))
        assert (not torch.equal(batch["obs"], plain["obs"])) == changed
        # lengths (speeds, distances) are kept whatever the symmetry
        torch.testing.assert_close(batch["obs"].reshape(32, 3, 9, 2).norm(dim=-1),
                                   plain["obs"].reshape(32, 3, 9, 2).norm(dim=-1))
    with pytest.raises(ValueError, match="augment"):
        MPEDataModule(augment="d8")
