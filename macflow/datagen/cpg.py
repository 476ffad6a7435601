"""CEM tuning of open-loop CPG gaits (data_generation.md §2.3): distinct seeds give distinct gaits of similar return,
a genuinely multimodal expert. Deterministic for a seed."""

from __future__ import annotations

import time

import numpy as np

from macflow.datagen.ars import make_single_env
from macflow.datagen.policies import CPGPolicy


def _score(env, params: np.ndarray, seed: int, noise: float, rng: np.random.Generator) -> float:
    pol = CPGPolicy(params, noise=noise)
    env.reset(seed=int(seed))
    total, t, done = 0.0, 0, False
    while not done:
        _, r, term, trunc, _ = env.step(pol(None, t, rng))
        total += r
        t += 1
        done = term or trunc
    return total


def tune_cpg(scenario: str = "HalfCheetah", seed: int = 0, iterations: int = 30, population: int = 32,
             elites: int = 8, horizon: int = 1000, progress: bool = True, rollouts: int = 2,
             noise: float = 0.05) -> dict:
    """CEM over ``[A (J), phi (J), b (J), f]``; returns ``{params, return, iterations, seconds, seed}``.

    Each candidate scores the mean return of ``rollouts`` episodes from fresh initial states with the collection's
    action noise, so the gait is robust where it is used (a gait tuned on one noise-free start often flips)."""
    env = make_single_env(scenario, horizon)
    j = env.action_space.shape[0]
    rng = np.random.default_rng([seed, 4321])
    mean = np.concatenate([np.full(j, 0.5), rng.uniform(0, 2 * np.pi, j), np.zeros(j), [3.0]])
    std = np.concatenate([np.full(j, 0.3), np.full(j, 1.5), np.full(j, 0.3), [1.0]])
    start = time.perf_counter()
    best = (-np.inf, mean)
    from tqdm.auto import tqdm

    bar = tqdm(range(iterations), desc=f"CPG {scenario} seed {seed}", disable=not progress)
    for _ in bar:
        pop = mean + std * rng.standard_normal((population, len(mean)))
        pop[:, -1] = np.clip(pop[:, -1], 0.5, 8.0)
        starts = rng.integers(0, 2**31 - 1, size=rollouts)
        scores = np.array([np.mean([_score(env, p, st, noise, rng) for st in starts]) for p in pop])
        elite = pop[np.argsort(-scores)[:elites]]
        mean, std = elite.mean(0), elite.std(0) + 0.02
        if scores.max() > best[0]:
            best = (float(scores.max()), pop[np.argmax(scores)].copy())
        bar.set_postfix(best=f"{best[0]:.0f}")
    env.close()
    return {"params": best[1].tolist(), "return": best[0], "iterations": iterations, "population": population,
            "seconds": round(time.perf_counter() - start, 1), "seed": seed}


def cpg_from_result(result: dict, noise: float = 0.05) -> CPGPolicy:
    return CPGPolicy(np.array(result["params"]), noise=noise, cem_seed=result["seed"], cem_return=result["return"])
