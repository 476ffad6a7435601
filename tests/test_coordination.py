"""The coordination benchmark itself: XOR-like marginals, exact rewards and mode detection, the figure."""

import pytest
import torch

from macflow.datamodules import CoordinationDataModule
from macflow.envs import rollout
from macflow.envs.coordination import joint_mode, mode_points


@pytest.fixture(scope="module")
def dm() -> CoordinationDataModule:
    module = CoordinationDataModule(n_samples=8000)
    module.setup()
    return module


def test_dims_are_known_before_setup():
    module = CoordinationDataModule(n_agents=5, private_dim=3, discrete=True, n_modes=6)
    assert (module.n_agents, module.obs_dim, module.action_dim, module.state_dim, module.discrete) == (5, 4, 6, 16, True)
    assert module.data is None


def test_logged_play_is_coordinated_and_each_agent_alone_looks_uniform(dm):
    batch = dm.data.gather(torch.arange(dm.data.n_transitions))
    s = batch["obs"][:, 0, 0]
    modes = joint_mode(batch["actions"], s, 4)
    assert (modes >= 0).float().mean() > 0.99
    shares = torch.bincount(modes[modes >= 0], minlength=4).float() / len(modes)
    assert (shares - 0.25).abs().max() < 0.03
    # agent 0's own point is equally spread over 4 places, and tells nothing about the mode on its own:
    # the pair (agent 0 point, agent 1 point) is always one of 4 combinations out of 16
    points = mode_points(s, 2, 4)  # [B, M, N, 2]
    own = (batch["actions"][:, None] - points).norm(dim=-1).argmin(1)  # which mode's point each agent is at
    pairs = torch.unique(torch.stack([(own[:, 0] + 0) % 4, (own[:, 1] + 1) % 4], 1), dim=0)
    assert len(torch.unique(own[:, 0])) == 4 and len(pairs) == 4


def test_reward_is_one_at_mode_points_and_low_for_incoherent_pairs(dm):
    ctx = dm.contexts(200, seed=3)
    points = mode_points(ctx["s"], 2, 4)
    coherent = points[:, 1]  # every agent at mode 1
    incoherent = torch.stack([points[:, 0, 0], points[:, 2, 1]], 1)  # agents in different modes
    assert torch.allclose(dm.game.reward(ctx, coherent), torch.ones(200))
    assert dm.game.reward(ctx, incoherent).max() < 1e-3
    assert (joint_mode(coherent, ctx["s"], 4) == 1).all() and (joint_mode(incoherent, ctx["s"], 4) == -1).all()


def test_rollout_scores_the_exact_reward_and_seeds_are_reproducible(dm):
    env = dm.make_env(list(range(10)))
    best = lambda obs, legal: mode_points(obs[:, 0, 0], 2, 4)[:, 2]  # noqa: E731
    results = rollout(env, best)
    assert torch.allclose(results["return"], torch.ones(10, dtype=torch.float64))
    assert results["coordinated"].sum() == 10 and (results["length"] == 1).all()
    assert torch.equal(dm.make_env([4]).reset().obs[0], env.reset().obs[4])


@pytest.mark.parametrize("discrete", [False, True])
def test_episode_metrics_mark_the_mode_each_joint_action_is_in(discrete):
    module = CoordinationDataModule(discrete=discrete, n_samples=10)
    env = module.make_env(list(range(40)))
    ctx = env.ctx
    if discrete:  # every agent plays the first legal action of its context
        first_legal = ctx["legal"][:, 0].float().argmax(-1)
        actions = torch.nn.functional.one_hot(first_legal, 4).float()[:, None].expand(-1, 2, -1)
        expected = first_legal
    else:  # episode e plays mode e % 4, except every fifth episode, whose agents pick different modes
        expected = torch.arange(40) % 4
        points = mode_points(ctx["s"], 2, 4)
        actions = points[torch.arange(40), expected]
        mixed = torch.arange(40) % 5 == 0
        actions[mixed, 1] = points[torch.arange(40), (expected + 1) % 4, 1][mixed]  # agent 1 in the next mode
        expected = torch.where(mixed, -1, expected)
    metrics = rollout(env, lambda obs, legal: actions)
    assert set(metrics) == {"return", "length", "coordinated", "mode_0", "mode_1", "mode_2", "mode_3"}
    for k in range(4):
        assert torch.equal(metrics[f"mode_{k}"], (expected == k).double()), k
    assert torch.equal(metrics["coordinated"], (expected >= 0).double())


def test_discrete_variant_masks_one_action_and_rewards_agreement():
    module = CoordinationDataModule(discrete=True, n_samples=500)
    module.setup()
    batch = module.data.gather(torch.arange(500))
    assert (batch["legal"].sum(-1) == 3).all()
    chosen = batch["actions"].argmax(-1)
    assert (chosen[:, 0] == chosen[:, 1]).all()
    assert batch["legal"].gather(-1, chosen[..., None]).all()
    assert torch.equal(batch["rewards"], torch.ones(500))


def test_samples_figure_is_written(tmp_path, dm):
    pytest.importorskip("matplotlib")
    from macflow.figures import agent_angles, coordination_samples

    ctx = dm.contexts(100, seed=1)
    points = mode_points(ctx["s"], 2, 4)[:, 0]
    assert torch.allclose(agent_angles(points, ctx["s"]), torch.tensor([45.0, 135.0]).expand(100, 2), atol=1e-3)
    path = coordination_samples({"a": (points, ctx["s"], 1.0), "b": (points, ctx["s"], 0.5)}, tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
