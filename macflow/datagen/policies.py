"""Behaviour policies as code: each acts on the single-agent observation (``env.state()``) and returns the
single-agent action in [-1, 1]; ``MaMuJoCoEpisode.step_global`` routes it to the agents. Parameters are small
numpy arrays produced by seeded training (ARS, CEM), so the policies are reproducible from code and a seed."""

from __future__ import annotations

import numpy as np

DT = 0.05
"""Control period of HalfCheetah-v5 / Hopper-v5 / Ant-v5 (frame_skip 5 x 0.01 s)."""


class RandomPolicy:
    """Uniform actions in [-1, 1]."""

    kind = "random"

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, self.action_dim)

    def describe(self) -> dict:
        return {"policy": "uniform random in [-1, 1]"}


class LinearPolicy:
    """ARS V2 policy ``a = clip(W (s - mu) / sigma)``, optionally with Gaussian action noise ``noise``."""

    kind = "linear"

    def __init__(self, W: np.ndarray, mu: np.ndarray, sigma: np.ndarray, noise: float = 0.0, **info) -> None:
        self.W, self.mu, self.sigma, self.noise = np.asarray(W), np.asarray(mu), np.asarray(sigma), noise
        self.info = info

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        a = self.W @ ((obs - self.mu) / self.sigma)
        if self.noise:
            a = a + self.noise * rng.standard_normal(a.shape)
        return np.clip(a, -1.0, 1.0)

    def describe(self) -> dict:
        return {"policy": "ARS V2-t linear policy", "noise": self.noise, **self.info}


class CPGPolicy:
    """Open-loop central-pattern-generator gait ``a_j(t) = clip(A_j sin(2 pi f t dt + phi_j) + b_j)`` (+ noise).

    ``params = [A (J), phi (J), b (J), f]``: 19 numbers for HalfCheetah's 6 joints."""

    kind = "cpg"

    def __init__(self, params: np.ndarray, noise: float = 0.0, **info) -> None:
        self.params, self.noise, self.info = np.asarray(params, dtype=np.float64), noise, info
        j = (len(self.params) - 1) // 3
        self.amp, self.phase, self.bias, self.freq = (self.params[:j], self.params[j:2 * j],
                                                      self.params[2 * j:3 * j], self.params[-1])

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        a = self.amp * np.sin(2 * np.pi * self.freq * t * DT + self.phase) + self.bias
        if self.noise:
            a = a + self.noise * rng.standard_normal(a.shape)
        return np.clip(a, -1.0, 1.0)

    def describe(self) -> dict:
        return {"policy": "open-loop CPG gait (CEM-tuned)", "noise": self.noise, "freq_hz": float(self.freq),
                **self.info}
