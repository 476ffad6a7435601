"""Augmented Random Search V2-t (Mania et al. 2018) on the single-agent Gymnasium ``*-v5`` env under MaMuJoCo.

Linear policy on running-normalised observations, ``n_directions`` antithetic perturbations per iteration, update
from the ``top`` best directions scaled by the std of their returns. Every ``eval_every`` iterations the mean policy
is evaluated on ``eval_episodes`` fixed seeds and kept as a checkpoint; checkpoints at increasing return give the
medium and expert behaviour. Deterministic for a seed (sequential, seeded env resets and directions).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from macflow.datagen.policies import LinearPolicy

ARS_SETTINGS = {
    # ARS paper settings (data_generation.md §2.2); shift = alive bonus removed from the training reward
    "HalfCheetah": dict(n_directions=32, top=4, step_size=0.02, noise=0.03, shift=0.0),
    "Hopper": dict(n_directions=8, top=4, step_size=0.01, noise=0.025, shift=1.0),
    "Ant": dict(n_directions=60, top=20, step_size=0.015, noise=0.025, shift=1.0),
}


def make_single_env(scenario: str, horizon: int):
    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(f"{scenario}-v5", max_episode_steps=horizon)


class _RunningStat:
    def __init__(self, d: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(d), np.zeros(d)

    def push_batch(self, x: np.ndarray) -> None:
        for row in x:
            self.n += 1
            delta = row - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (row - self.mean)

    @property
    def std(self) -> np.ndarray:
        var = self.m2 / max(self.n - 1, 1) if self.n > 1 else np.ones_like(self.mean)
        return np.sqrt(np.maximum(var, 1e-8))


def _episode(env, W, mu, sigma, seed, shift=0.0, record=None):
    obs, _ = env.reset(seed=int(seed))
    total, steps, done = 0.0, 0, False
    while not done:
        if record is not None:
            record.append(obs)
        a = np.clip(W @ ((obs - mu) / sigma), -1.0, 1.0)
        obs, r, term, trunc, _ = env.step(a)
        total += r - shift
        steps += 1
        done = term or trunc
    return total, steps


def train_ars(scenario: str, seed: int = 0, iterations: int = 40, eval_every: int = 5, eval_episodes: int = 3,
              horizon: int = 1000, progress: bool = True, **overrides) -> list[dict]:
    """Train ARS; returns checkpoints ``{iteration, env_steps, eval_return, W, mu, sigma, seconds}`` (JSON-able)."""
    cfg = {**ARS_SETTINGS[scenario], **overrides}
    env = make_single_env(scenario, horizon)
    d, k = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng([seed, 1234])
    W = np.zeros((k, d))
    stat = _RunningStat(d)
    mu, sigma = np.zeros(d), np.ones(d)
    steps, start, checkpoints = 0, time.perf_counter(), []
    eval_seeds = [10_000 + seed * 100 + i for i in range(eval_episodes)]

    def checkpoint(it: int) -> None:
        ret = float(np.mean([_episode(env, W, mu, sigma, s)[0] for s in eval_seeds]))
        checkpoints.append({"iteration": it, "env_steps": steps, "eval_return": ret, "W": W.tolist(),
                            "mu": mu.tolist(), "sigma": sigma.tolist(),
                            "seconds": round(time.perf_counter() - start, 1)})

    from tqdm.auto import tqdm

    bar = tqdm(range(1, iterations + 1), desc=f"ARS {scenario} seed {seed}", disable=not progress)
    checkpoint(0)
    for it in bar:
        deltas = rng.standard_normal((cfg["n_directions"], k, d))
        ep_seeds = rng.integers(0, 2**31 - 1, size=cfg["n_directions"])
        rewards = np.zeros((cfg["n_directions"], 2))
        states: list = []
        for j, delta in enumerate(deltas):
            for side, sign in enumerate((1.0, -1.0)):
                rec: list = []
                rewards[j, side], n = _episode(env, W + sign * cfg["noise"] * delta, mu, sigma, ep_seeds[j],
                                               cfg["shift"], rec)
                steps += n
                states.extend(rec)
        order = np.argsort(-rewards.max(1))[: cfg["top"]]
        r_std = rewards[order].std() or 1.0
        W = W + cfg["step_size"] / (cfg["top"] * r_std) * np.einsum(
            "j,jkd->kd", rewards[order, 0] - rewards[order, 1], deltas[order])
        stat.push_batch(np.asarray(states))
        mu, sigma = stat.mean.copy(), stat.std.copy()
        if it % eval_every == 0 or it == iterations:
            checkpoint(it)
            bar.set_postfix(eval_return=f"{checkpoints[-1]['eval_return']:.0f}", steps=steps)
    env.close()
    return checkpoints


def linear_from_checkpoint(ckpt: dict, noise: float = 0.0) -> LinearPolicy:
    return LinearPolicy(np.array(ckpt["W"]), np.array(ckpt["mu"]), np.array(ckpt["sigma"]), noise=noise,
                        ars_iteration=ckpt["iteration"], ars_eval_return=ckpt["eval_return"])
