"""Figures (matplotlib is an optional extra: ``pip install macflow[viz]``).

``coordination_samples``: joint actions on the coordination benchmark, one panel per source (data, teacher,
student, factored teacher). Each point is one joint action, plotted as agent 0's angle against agent 1's angle
(context rotation removed): coordinated play sits on the few mode points, incoherent play fills the grid.

``return_vs_latency``: one marker per method (mean return against its decision latency on a log axis, error bars
over seeds), coloured by family, each labelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install 'macflow[viz]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def agent_angles(actions: Tensor, s: Tensor) -> Tensor:
    """Angle (degrees, in [0, 360)) of each agent's 2-D action with the context rotation removed: ``[B, N]``."""
    theta = torch.atan2(actions[..., 1], actions[..., 0]) - s[:, None] * math.pi / 8
    return torch.rad2deg(theta) % 360.0


def coordination_samples(panels: Mapping[str, tuple[Tensor, Tensor, float]], path: str | Path) -> Path:
    """Save a PNG with one scatter panel per ``name -> (actions [B, N, 2], contexts s [B], coordinated fraction)``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharex=True, sharey=True)
    for ax, (name, (actions, s, coordinated)) in zip(axes, panels.items()):
        ang = agent_angles(actions.detach().cpu(), s.cpu())
        ax.scatter(ang[:, 0], ang[:, 1], s=3, alpha=0.35)
        ax.set_title(f"{name}\n{100 * coordinated:.1f}% coordinated", fontsize=10)
        ax.set_xlim(0, 360)
        ax.set_ylim(0, 360)
        ax.set_xticks([45, 135, 225, 315])
        ax.set_yticks([45, 135, 225, 315])
        ax.set_xlabel("agent 0 angle (deg)")
    axes[0].set_ylabel("agent 1 angle (deg)")
    return _save(plt, fig, path, dpi=120)


@dataclass(frozen=True)
class FrontierPoint:
    """One row of a return-vs-latency figure."""

    label: str
    latency_ms: float
    mean: float
    std: float = 0.0
    family: str = ""


def return_vs_latency(points: Sequence[FrontierPoint], path: str | Path, title: str = "",
                      xlabel: str = "decision latency (ms, log scale)", ylabel: str = "mean return") -> Path:
    """Save a PNG scatter of ``points``: log-x latency, y the mean with ``std`` error bars, one colour and marker
    per family (in the legend), every marker labelled."""
    plt = _pyplot()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "o*s^Dvp<>h"
    families = list(dict.fromkeys(p.family or p.label for p in points))
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    for i, family in enumerate(families):
        group = [p for p in points if (p.family or p.label) == family]
        ax.errorbar([p.latency_ms for p in group], [p.mean for p in group], yerr=[p.std for p in group],
                    fmt=markers[i % len(markers)], color=colours[i % len(colours)], markersize=8, capsize=3,
                    markeredgecolor="black", markeredgewidth=0.5, label=family, zorder=3)
    for p in points:
        ax.annotate(p.label, (p.latency_ms, p.mean), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(plt, fig, path, dpi=130)


def _save(plt, fig, path: str | Path, dpi: int) -> Path:
    """Lay out ``fig``, write it as a PNG at ``path`` (folders made as needed), close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
