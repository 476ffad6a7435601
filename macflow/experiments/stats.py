"""Aggregates over seeds and the one number formatter of every table.

Mean ± std (sample std, 0 with one seed) and, with at least 3 seeds, the interquartile mean with a 95 % percentile
bootstrap interval over seeds (one cell is one task, so the stratified bootstrap of rliable is a plain resampling of
its seeds). scipy.stats does the work: rliable 1.2 imports ``arch``, whose releases at hand fail to import with
pandas 3 (``deprecate_kwarg`` signature), so it cannot be installed next to this environment.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

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
