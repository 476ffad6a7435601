"""Aggregates over seeds and datasets, and the one number formatter of every table.

Per cell (one dataset): mean ± std (sample std, 0 with one seed) and, with at least 3 seeds, the interquartile mean
with a 95 % percentile bootstrap interval over seeds (one cell is one task, so the stratified bootstrap of rliable is
a plain resampling of its seeds). Across datasets (rliable's aggregate metrics, Agarwal et al. 2021): the IQM of
all runs of all tasks pooled, and the probability of improvement P(X > Y), the mean over tasks of the chance that a
run of X beats a run of Y (ties count half); both with a 95 % stratified bootstrap interval (each task's runs
resampled within the task, independently per method). scipy.stats does the per-cell work: rliable 1.2 imports
``arch``, whose releases at hand fail to import with pandas 3 (``deprecate_kwarg`` signature), so it cannot be
installed next to this environment.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

IQM_MIN_SEEDS = 3
"""Fewest seeds for which the IQM and its interval are reported."""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (``scipy.stats.trim_mean`` with 0.25 cut each side)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def iqm_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
           ) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`iqm` over the values (seeded, so tables re-render identically)."""
    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), lambda x, axis: stats.trim_mean(x, 0.25, axis=axis), n_resamples=resamples,
                             confidence_level=confidence, method="percentile", random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


Tasks = Sequence[Sequence[float]]
"""Scores per task (dataset): one sequence of runs (seeds) per task."""


def pooled_iqm(tasks: Tasks) -> float:
    """IQM of every run of every task, pooled (rliable's aggregate IQM)."""
    return iqm(np.concatenate([np.asarray(t, dtype=float) for t in tasks]))


def probability_of_improvement(x: Tasks, y: Tasks) -> float:
    """Mean over tasks of P(a run of X > a run of Y) + ½ P(tie): ``x[k]`` and ``y[k]`` are the same task's runs."""
    if len(x) != len(y) or not len(x):
        raise ValueError(f"probability_of_improvement needs the same non-empty list of tasks, got {len(x)} and "
                         f"{len(y)}")
    per_task = []
    for xs, ys in zip(x, y):
        a, b = np.asarray(xs, dtype=float)[:, None], np.asarray(ys, dtype=float)[None, :]
        per_task.append(float(np.mean(a > b) + 0.5 * np.mean(a == b)))
    return float(np.mean(per_task))


def stratified_ci(statistic: Callable[..., float], *samples: Tasks, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
                  ) -> tuple[float, float]:
    """Percentile interval of ``statistic(*samples)`` under the stratified bootstrap: every task's runs are
    resampled with replacement within the task, each sample (method) on its own (seeded: tables re-render
    identically)."""
    rng = np.random.default_rng(seed)
    arrays = [[np.asarray(t, dtype=float) for t in sample] for sample in samples]
    draws = np.array([statistic(*[[t[rng.integers(0, len(t), len(t))] for t in sample] for sample in arrays])
                      for _ in range(resamples)])
    tail = (1 - confidence) / 2
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))


def fmt(value: float | None, digits: int = 3, scale: float = 1.0) -> str:
    """One number of a table: ``value * scale`` with ``digits`` decimals; '–' when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * scale:.{digits}f}"


def summary(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` over seeds, plus ``IQM x [lo, hi]`` with at least :data:`IQM_MIN_SEEDS` seeds; one seed's
    value alone, since a spread over one seed says nothing."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0], digits, scale)
    mean, std = mean_std(values)
    text = f"{fmt(mean, digits, scale)} ± {fmt(std, digits, scale)}"
    if len(values) >= IQM_MIN_SEEDS:
        lo, hi = iqm_ci(values)
        text += f" (IQM {fmt(iqm(values), digits, scale)} [{fmt(lo, digits, scale)}, {fmt(hi, digits, scale)}])"
    return text
