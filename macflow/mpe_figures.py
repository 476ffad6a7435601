"""MPE trajectory figure: a few evaluation episodes drawn as agent paths and landmarks, logged to TensorBoard.

Add to a config's ``trainer.callbacks``::

    - class_path: macflow.mpe_figures.MPETrajectoryFigure
      init_args: {n_episodes: 4}

After every validation run it evaluates the model's policy on the first ``n_episodes`` evaluation seeds
(:func:`macflow.evaluation.evaluate`) in a recording env and logs ``eval/trajectories`` (one panel per episode: each agent's path from a circle to a
square, landmarks as crosses, the episode return in the title). matplotlib is optional and imported lazily; the
figure is skipped with a warning when it is missing or the logger is not TensorBoard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from macflow.envs.base import MultiAgentEnv
from macflow.envs.mpe import MPESpreadEnv
from macflow.evaluation import eval_seeds, evaluate


def trajectory_figure(agents: np.ndarray, landmarks: np.ndarray, returns: np.ndarray | None = None):
    """A matplotlib figure of ``agents [E, T+1, N, 2]`` paths and ``landmarks [E, N, 2]``, one panel per episode."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install 'macflow[viz]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e, _, n, _ = agents.shape
    fig, axes = plt.subplots(1, e, figsize=(3.0 * e, 3.2), squeeze=False)
    colors = plt.cm.tab10(np.arange(n) % 10)
    for k, ax in enumerate(axes[0]):
        for i in range(n):
            path = agents[k, :, i]
            ax.plot(path[:, 0], path[:, 1], "-", color=colors[i], lw=1.5)
            ax.plot(*path[0], "o", color=colors[i], ms=5)
            ax.plot(*path[-1], "s", color=colors[i], ms=6)
        ax.plot(landmarks[k, :, 0], landmarks[k, :, 1], "kx", ms=9, mew=2)
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.6, 1.6)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if returns is not None:
            ax.set_title(f"return {returns[k]:.1f}", fontsize=9)
    fig.tight_layout()
    return fig


class MPETrajectoryFigure(Callback):
    """Log a figure of ``n_episodes`` evaluation trajectories after each validation run (rank 0).

    Args:
        n_episodes: episodes drawn (the first evaluation seeds, so successive figures are comparable).
        save_dir: also save ``trajectories_step<k>.png`` there (optional).
    """

    def __init__(self, n_episodes: int = 4, save_dir: str | None = None) -> None:
        self.n_episodes, self.save_dir = n_episodes, save_dir

    @rank_zero_only
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        envs: list[MPESpreadEnv] = []

        def recording_env(seeds: list[int]) -> MultiAgentEnv:
            envs.append(datamodule.make_env(seeds, record=True))
            return datamodule.with_history(envs[-1])

        seeds = eval_seeds(self.n_episodes)
        results = evaluate(datamodule, pl_module.policy, seeds, len(seeds), pl_module.device, recording_env)
        agents, landmarks = envs[0].trajectories()
        try:
            fig = trajectory_figure(agents, landmarks, results["return"].cpu().numpy())
        except ImportError as err:
            rank_zero_warn(f"MPETrajectoryFigure skipped: {err}")
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure("eval/trajectories", fig, global_step=trainer.global_step, close=False)
        if self.save_dir:
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(self.save_dir) / f"trajectories_step{trainer.global_step}.png", dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
