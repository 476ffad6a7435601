"""The one evaluation: a policy run in a datamodule's evaluation env over fixed seeds, and its summary.

Evaluation episode ``k`` is reset with seed ``EVAL_SEED_OFFSET + k`` (:func:`eval_seeds`), apart from every seed
used to make data. The policy's own noise (a student's ``z``, a teacher's ``x_0``) comes from torch's global
generator re-seeded for each batch of episodes with the index ``k`` of its first episode, inside a fork of the
generator state: an evaluation gives the same numbers whenever it runs, and it never shifts the random stream of
the training around it. :func:`evaluate` simulates the given seeds in batches and returns one value per episode:
``return``, ``length``, the env's episode metrics (e.g. ``coordinated``) and ``normalized_score`` where the
datamodule defines one. :func:`summarize` reduces them to the logged ``eval/*`` numbers; ``validate``
(``MACFlowModule``) computes the same summary from sums all-reduced over DDP ranks (:func:`episode_sums`,
:func:`summary_from_sums`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from macflow.envs.base import MultiAgentEnv, Policy, rollout

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation episodes use seeds ``EVAL_SEED_OFFSET + k``, apart from any seed used to make data."""


class EvaluationData(Protocol):
    """What :func:`evaluate` needs of a datamodule (every ``OfflineMARLDataModule`` has it)."""

    eval_batch_size: int

    def evaluation_env(self, seeds: list[int]) -> MultiAgentEnv: ...

    def normalized_score(self, returns: Tensor) -> Tensor | None: ...


def eval_seeds(n_episodes: int) -> list[int]:
    """The reset seeds of the first ``n_episodes`` evaluation episodes."""
    return list(range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + n_episodes))


def noise_seed(first_seed: int) -> int:
    """The seed of the policy noise of a batch whose first episode has reset seed ``first_seed``: its index ``k``."""
    return first_seed - EVAL_SEED_OFFSET if first_seed >= EVAL_SEED_OFFSET else first_seed


def evaluate(datamodule: EvaluationData, policy: Policy, seeds: Sequence[int], batch_size: int | None = None,
             device: torch.device | str = "cpu",
             make_env: Callable[[list[int]], MultiAgentEnv] | None = None) -> dict[str, Tensor]:
    """Run ``policy`` for one episode per seed, ``batch_size`` episodes side by side (default: the datamodule's
    ``eval_batch_size``), in ``make_env(seeds)`` (default: ``datamodule.evaluation_env``, its simulator with the
    observation history its models read).

    Returns per-episode float64 values ``{name: [len(seeds)]}`` on ``device``: ``return``, ``length``, the env's
    episode metrics and, where the datamodule defines it, ``normalized_score``.
    """
    seeds = [int(s) for s in seeds]
    batch_size = batch_size or datamodule.eval_batch_size
    make_env = make_env or datamodule.evaluation_env
    parts = []
    for start in range(0, len(seeds), batch_size):
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # manual_seed seeds every device
            torch.manual_seed(noise_seed(seeds[start]))
            results = rollout(make_env(seeds[start:start + batch_size]), policy, device)
        score = datamodule.normalized_score(results["return"])
        if score is not None:
            results["normalized_score"] = score.to(results["return"])
        parts.append(results)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}


def episode_sums(results: dict[str, Tensor]) -> tuple[list[str], Tensor]:
    """Sorted metric names and ``[count, sum(return^2), sum(metric) for each name]``: what ranks all-reduce."""
    keys = sorted(results)
    ret = results["return"]
    sums = torch.stack([torch.tensor(float(ret.numel()), device=ret.device, dtype=torch.float64), ret.pow(2).sum()]
                       + [results[k].sum() for k in keys])
    return keys, sums


def summary_from_sums(keys: list[str], sums: Tensor) -> dict[str, Tensor]:
    """Means of every metric, ``return_std`` (over episodes) and ``episodes`` from :func:`episode_sums` output."""
    count = sums[0]
    means = {k: sums[2 + i] / count for i, k in enumerate(keys)}
    variance = (sums[1] / count - means["return"] ** 2).clamp_min(0.0)
    return {**means, "return_std": variance.sqrt(), "episodes": count}


def summarize(results: dict[str, Tensor]) -> dict[str, float]:
    """``{metric: mean, "return_std": std, "episodes": count}`` of :func:`evaluate`'s per-episode results."""
    return {k: float(v) for k, v in summary_from_sums(*episode_sums(results)).items()}
