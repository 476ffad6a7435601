"""``FlowTeacher``: flow-matching behaviour cloning of the *joint* action distribution p(a^1..a^N | o^1..o^N).

Run: ``python -m macflow fit --config configs/teacher.yaml``.

Trains a pluggable :class:`~macflow.modules.vector_fields.VectorField` on ``x_t = (1 - t) x_0 + t a`` with target
``a - x_0`` (paper Eq. 6) and samples by ``flow_steps`` Euler steps from Gaussian noise. Continuous actions live in
[-1, 1] and samples are clipped to it; discrete actions are one-hot and a sample's label is its best legal entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from macflow.modules.base import MACFlowModule, with_lr_schedule
from macflow.modules.flow import endpoint_loss, endpoint_velocity, euler_sample, flow_matching_loss
from macflow.modules.vector_fields import AgentAttentionVectorField, VectorField


class FlowTeacher(MACFlowModule):
    """Joint flow-matching teacher.

    Args:
        vector_field: factory ``(obs_dim, action_dim, n_agents) -> VectorField``; in a config, a ``class_path`` and
            the remaining ``init_args``.
        flow_steps: Euler steps K used by :meth:`sample` (and by the student's distillation target).
        prediction: what the network outputs. ``velocity`` (the paper): ``v(x_t, t, o)`` trained on ``a - x_0``.
            ``endpoint``: the clean joint action ``x̂_1``, trained on ``a``, with ``v = (x̂_1 - x_t) / (1 - t)``;
            the same flow with the loss weighted by ``(1 - t)^2``, far more accurate where the data's action is
            nearly deterministic given the observations (MPE expert data: docs/results_mpe.md).
        lr: Adam learning rate.
        weight_decay: AdamW weight decay.
        lr_schedule: ``constant``, or ``cosine``: 5 % linear warm-up then cosine decay to 0 at ``max_steps``.
        compile: compile the vector field in place (``torch.compile``) for training; off on CPU.
        normalize_obs: z-score the observations the vector field reads, per agent and feature, with statistics of
            the training data, fitted when training starts and saved in the checkpoint; :meth:`sample` and
            :meth:`act` still take raw observations.
        eval_noise: the noise :meth:`act` starts from when given none: ``fresh`` per call, or ``fixed``: the same
            draw (a generator seeded 0) at every call, so each episode of one evaluation batch keeps one noise for
            all its steps (as the student's ``eval_noise: fixed``).
        n_agents, obs_dim, action_dim, state_dim, discrete: data dims, linked from the datamodule.
    """

    def __init__(self, vector_field: Callable[[int, int, int], VectorField] = AgentAttentionVectorField,
                 flow_steps: int = 10, prediction: Literal["velocity", "endpoint"] = "velocity",
                 lr: float = 3e-4, weight_decay: float = 0.0,
                 lr_schedule: Literal["constant", "cosine"] = "constant", compile: bool = False,
                 normalize_obs: bool = False, eval_noise: Literal["fresh", "fixed"] = "fresh",
                 n_agents: int = 1, obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0,
                 discrete: bool = False) -> None:
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        self.save_hyperparameters()
        self.vector_field = vector_field(obs_dim, action_dim, n_agents)
        if not isinstance(self.vector_field, torch.nn.Module):
            raise TypeError(f"vector_field must build an nn.Module, got {type(self.vector_field).__name__}")
        if prediction not in ("velocity", "endpoint"):
            raise ValueError(f"prediction must be 'velocity' or 'endpoint', got {prediction!r}")
        if eval_noise not in ("fresh", "fixed"):
            raise ValueError(f"eval_noise must be 'fresh' or 'fixed', got {eval_noise!r}")
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)

    def field(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """The network's output ``[B, N, A]`` (velocity or end point), checked to have ``x_t``'s shape."""
        return self.checked_output("model.init_args.vector_field", self.vector_field,
                                   self.vector_field(x_t, t, obs), x_t.shape)

    def velocity(self, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """The flow's velocity ``[B, N, A]`` at ``x_t`` (whatever the network predicts)."""
        if self.hparams.prediction == "endpoint":
            return endpoint_velocity(self.field)(x_t, t, obs)
        return self.field(x_t, t, obs)

    def configure_model(self) -> None:
        if self.hparams.compile:
            self.vector_field.compile()

    # ---------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_batch(batch)
        loss_fn = endpoint_loss if self.hparams.prediction == "endpoint" else flow_matching_loss
        loss = loss_fn(self.field, batch["actions"], self.obs_normalizer(batch["obs"]))
        self.log("train/flow_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.vector_field.parameters(), lr=self.hparams.lr,
                                      weight_decay=self.hparams.weight_decay)
        return with_lr_schedule(self, optimizer, self.hparams.lr_schedule)

    # ---------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, obs: Tensor, noise: Tensor | None = None, steps: int | None = None) -> Tensor:
        """Joint Euler sample ``[B, N, A]`` (unclipped) from ``noise`` (default: fresh ``N(0, I)``) given ``obs``."""
        if noise is None:
            noise = torch.randn(obs.shape[0], self.n_agents, self.action_dim, device=obs.device, dtype=obs.dtype)
        return euler_sample(self.velocity, self.obs_normalizer(obs), noise, steps or self.hparams.flow_steps)

    @torch.no_grad()
    def act(self, obs: Tensor, legal: Tensor | None = None, noise: Tensor | None = None,
            steps: int | None = None) -> Tensor:
        """Joint actions: the sample clipped to [-1, 1], or its best legal one-hot action when discrete; without
        ``noise``, from fresh noise or, with ``eval_noise: fixed``, from the seeded draw of every call."""
        if noise is None and self.hparams.eval_noise == "fixed":
            gen = torch.Generator(device=obs.device).manual_seed(0)
            noise = torch.randn(obs.shape[0], self.n_agents, self.action_dim, device=obs.device, dtype=obs.dtype,
                                generator=gen)
        x = self.sample(obs, noise, steps)
        return self.to_actions(x, legal)

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.act(obs, legal)
