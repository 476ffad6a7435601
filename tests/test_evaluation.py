"""The one evaluation: the seed protocol, batched ``evaluate`` equal to one rollout over all seeds, normalised
scores where a datamodule defines them, the summary, and ``validate`` logging it (per-mode shares included)."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer

from macflow.datamodules import CoordinationDataModule
from macflow.envs import rollout
from macflow.envs.coordination import mode_points
from macflow.evaluation import EVAL_SEED_OFFSET, eval_seeds, evaluate, summarize
from macflow.modules import MACFlowModule


def by_context(obs: torch.Tensor, legal: torch.Tensor | None = None) -> torch.Tensor:
    """A deterministic policy that plays mode ``floor(4 * (s + 1) / 2)`` exactly (every context mode in [0, 3])."""
    s = obs[:, 0, 0]
    mode = ((s + 1) * 2).long().clamp(0, 3)
    return mode_points(s, 2, 4)[torch.arange(len(s)), mode]


class Normalized(CoordinationDataModule):
    def normalized_score(self, returns: torch.Tensor) -> torch.Tensor:
        return 2 * returns - 1


def test_evaluation_episodes_use_the_offset_seeds():
    assert eval_seeds(3) == [EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1, EVAL_SEED_OFFSET + 2]
    dm = CoordinationDataModule(n_samples=10, n_eval_episodes=5, eval_batch_size=2)
    assert [int(s) for batch in dm.val_dataloader() for s in batch] == eval_seeds(5)


def test_batched_evaluate_equals_one_rollout_over_every_seed():
    dm = CoordinationDataModule(n_samples=10, eval_batch_size=3)
    seeds = eval_seeds(7)
    batched = evaluate(dm, by_context, seeds)  # batches of 3, 3, 1
    whole = rollout(dm.make_env(seeds), by_context)
    assert set(batched) == set(whole) and "normalized_score" not in batched
    for k, v in whole.items():
        assert torch.equal(batched[k], v), k
    assert torch.allclose(batched["return"], torch.ones(7, dtype=torch.float64))


def test_evaluate_adds_the_normalized_score_and_summarize_reduces_episodes():
    dm = Normalized(n_samples=10, eval_batch_size=4)
    results = evaluate(dm, lambda obs, legal: torch.zeros(obs.shape[0], 2, 2), eval_seeds(6))
    assert torch.equal(results["normalized_score"], 2 * results["return"] - 1)
    summary = summarize(results)
    assert summary["episodes"] == 6 and summary["coordinated"] == 0.0
    assert summary["return"] == pytest.approx(float(results["return"].mean()))
    assert summary["return_std"] == pytest.approx(float(results["return"].std(unbiased=False)))


class ContextPlayer(MACFlowModule):
    def policy(self, obs, legal=None):
        return by_context(obs)


def test_validate_logs_the_summary_with_per_mode_shares():
    dm = CoordinationDataModule(n_samples=10, n_eval_episodes=400, eval_batch_size=150)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False)
    metrics = trainer.validate(ContextPlayer(n_agents=2, obs_dim=dm.obs_dim, action_dim=2), datamodule=dm)[0]
    results = evaluate(dm, by_context, eval_seeds(400))
    expected = summarize(results)
    assert metrics["eval/episodes"] == 400 and metrics["eval/coordinated"] == pytest.approx(1.0)
    shares = [metrics[f"eval/mode_{k}"] for k in range(4)]
    assert sum(shares) == pytest.approx(1.0) and min(shares) > 0.15  # s ~ U[-1, 1]: each mode about a quarter
    for k in ("return", "return_std", "mode_0", "mode_3"):
        assert metrics[f"eval/{k}"] == pytest.approx(expected[k], abs=1e-6), k


def test_policy_noise_is_seeded_per_batch_and_leaves_the_training_stream_alone():
    """A noisy policy scores the same whenever it is evaluated; its noise for the batch starting at episode k is
    ``torch.manual_seed(k)``'s; and the global generator continues as if no evaluation had run."""
    dm = CoordinationDataModule(n_samples=10, eval_batch_size=4)
    drawn = []

    def noisy(obs: torch.Tensor, legal: torch.Tensor | None = None) -> torch.Tensor:
        z = torch.randn(obs.shape[0], 2, 2)
        drawn.append(z)
        return z.clamp(-1, 1)

    torch.manual_seed(123)
    first = evaluate(dm, noisy, eval_seeds(8))
    after_eval = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_eval)  # the evaluation consumed nothing of the training stream
    torch.manual_seed(7)
    second = evaluate(dm, noisy, eval_seeds(8))
    assert torch.equal(first["return"], second["return"])
    torch.manual_seed(4)
    assert torch.equal(drawn[1], torch.randn(4, 2, 2))  # the second batch starts at episode 4
