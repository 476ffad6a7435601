"""``DiffusionPolicy``: a DDPM over the *joint* action, the expressive-but-slow reference (DoF/MADiff-style).

Run: ``python -m macflow fit --config configs/baselines/diffusion.yaml``.

A denoiser ``eps(x_k, k/K, obs)`` with the teacher's :class:`~macflow.modules.vector_fields.VectorField` contract
(by default the same agent-attention network, so it is joint across agents) is trained with the DDPM
epsilon-prediction loss (Ho et al. 2020) and samples by K ancestral steps, K = 50 .. 200 typically. Acting
therefore costs K network calls per decision, the cost MAC-Flow's one-step student removes.

Schedule maths (plain torch, :class:`DDPMSchedule`): ``alpha_bar_k = prod_{j<=k} (1 - beta_j)``;
``q(x_k | x_0) = N(sqrt(alpha_bar_k) x_0, (1 - alpha_bar_k) I)``; the posterior ``q(x_{k-1} | x_k, x_0)`` has mean
``c0_k x_0 + ck_k x_k`` with ``c0_k = beta_k sqrt(alpha_bar_{k-1}) / (1 - alpha_bar_k)``,
``ck_k = sqrt(alpha_k) (1 - alpha_bar_{k-1}) / (1 - alpha_bar_k)`` and variance
``beta_k (1 - alpha_bar_{k-1}) / (1 - alpha_bar_k)``. Indices run k = 0 .. K-1 with ``alpha_bar_{-1} = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from macflow.modules.base import MACFlowModule
from macflow.modules.vector_fields import AgentAttentionVectorField, VectorField


def make_betas(steps: int, schedule: Literal["cosine", "linear"] = "cosine") -> Tensor:
    """Noise schedule ``beta_k``, ``k = 0 .. K-1`` (float64).

    ``cosine``: Nichol & Dhariwal (2021), ``alpha_bar(u) = cos^2((u + s) / (1 + s) * pi / 2)`` with s = 0.008 and
    betas clipped to 0.999. ``linear``: Ho et al. (2020) 1e-4 .. 0.02 at K = 1000, rescaled by 1000 / K so any K
    ends near the same ``alpha_bar``.
    """
    if steps < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {steps}")
    if schedule == "cosine":
        s = 0.008
        u = torch.arange(steps + 1, dtype=torch.float64) / steps
        alpha_bar = torch.cos((u + s) / (1 + s) * math.pi / 2).pow(2)
        alpha_bar = alpha_bar / alpha_bar[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    if schedule == "linear":
        scale = 1000.0 / steps
        return torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), steps, dtype=torch.float64)
    raise ValueError(f"unknown noise schedule {schedule!r}: use 'cosine' or 'linear'")


class DDPMSchedule(nn.Module):
    """The DDPM coefficients as float32 buffers (not saved: they follow from ``steps`` and ``schedule``)."""

    def __init__(self, steps: int, schedule: Literal["cosine", "linear"] = "cosine") -> None:
        super().__init__()
        self.steps = steps
        betas = make_betas(steps, schedule)
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        coefs = {
            "betas": betas, "alphas": alphas, "alpha_bar": alpha_bar, "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(), "sqrt_one_minus_alpha_bar": (1 - alpha_bar).sqrt(),
            "posterior_coef_x0": betas * alpha_bar_prev.sqrt() / (1 - alpha_bar),
            "posterior_coef_xk": alphas.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar),
            "posterior_variance": betas * (1 - alpha_bar_prev) / (1 - alpha_bar),
        }
        for name, value in coefs.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def _at(coef: Tensor, k: Tensor, x: Tensor) -> Tensor:
        return coef[k].view(-1, *([1] * (x.dim() - 1)))

    def q_sample(self, x_0: Tensor, k: Tensor, eps: Tensor) -> Tensor:
        """``x_k = sqrt(alpha_bar_k) x_0 + sqrt(1 - alpha_bar_k) eps`` for per-sample steps ``k [B]``."""
        return self._at(self.sqrt_alpha_bar, k, x_0) * x_0 + self._at(self.sqrt_one_minus_alpha_bar, k, x_0) * eps

    def predict_x0(self, x_k: Tensor, k: Tensor, eps: Tensor) -> Tensor:
        return (x_k - self._at(self.sqrt_one_minus_alpha_bar, k, x_k) * eps) / self._at(self.sqrt_alpha_bar, k, x_k)

    def posterior(self, x_0: Tensor, x_k: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of ``q(x_{k-1} | x_k, x_0)``."""
        mean = self._at(self.posterior_coef_x0, k, x_k) * x_0 + self._at(self.posterior_coef_xk, k, x_k) * x_k
        return mean, self._at(self.posterior_variance, k, x_k).expand_as(mean)


EpsFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``eps(x_k [B, N, A], k / K [B], obs [B, N, O]) -> [B, N, A]``."""


def ddpm_sample(eps_fn: EpsFn, schedule: DDPMSchedule, obs: Tensor, x_k: Tensor, clip_x0: float | None = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
    """Ancestral DDPM sampling from ``x_{K-1}`` noise down to ``x_0`` in ``schedule.steps`` network calls.

    ``clip_x0`` clips each predicted ``x_0`` (actions live in [-1, 1]), as Diffusion-QL and DoF do.
    """
    x = x_k
    steps = schedule.steps
    for k in reversed(range(steps)):
        kk = torch.full((x.shape[0],), k, device=x.device, dtype=torch.long)
        x_0 = schedule.predict_x0(x, kk, eps_fn(x, kk.to(x.dtype) / steps, obs))
        if clip_x0 is not None:
            x_0 = x_0.clamp(-clip_x0, clip_x0)
        mean, var = schedule.posterior(x_0, x, kk)
        if k > 0:
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            x = mean + var.sqrt() * noise
        else:
            x = mean
    return x


class DiffusionPolicy(MACFlowModule):
    """Joint DDPM behaviour cloning (epsilon prediction), sampled by K ancestral steps.

    Args:
        denoiser: factory ``(obs_dim, action_dim, n_agents) -> VectorField`` used as ``eps(x_k, k/K, obs)``.
        diffusion_steps: K, the number of noise levels (and of network calls per decision).
        schedule: ``cosine`` or ``linear`` betas (see :func:`make_betas`).
        lr, weight_decay: AdamW settings.
        normalize_obs: z-score the observations the denoiser reads, per agent and feature, with statistics of the
            training data (fitted at fit start, saved in the checkpoint), as the student's option does.
        n_agents, obs_dim, action_dim, state_dim, discrete: data dims, linked from the datamodule.
    """

    def __init__(self, denoiser: Callable[[int, int, int], VectorField] = AgentAttentionVectorField,
                 diffusion_steps: int = 100, schedule: Literal["cosine", "linear"] = "cosine", lr: float = 3e-4,
                 weight_decay: float = 0.0, normalize_obs: bool = False, n_agents: int = 1, obs_dim: int = 1,
                 action_dim: int = 1, state_dim: int = 0, discrete: bool = False) -> None:
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        self.save_hyperparameters()
        self.denoiser = denoiser(obs_dim, action_dim, n_agents)
        self.schedule = DDPMSchedule(diffusion_steps, schedule)
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)

    def loss(self, actions: Tensor, obs: Tensor) -> Tensor:
        k = torch.randint(self.schedule.steps, (actions.shape[0],), device=actions.device)
        eps = torch.randn_like(actions)
        x_k = self.schedule.q_sample(actions, k, eps)
        return (self.noise_estimate(x_k, k.to(actions.dtype) / self.schedule.steps, obs) - eps).pow(2).mean()

    def noise_estimate(self, x_k: Tensor, u: Tensor, obs: Tensor) -> Tensor:
        """The denoiser's ``eps(x_k, u, obs)``, checked to have ``x_k``'s shape ``[B, N, A]``."""
        return self.checked_output("model.init_args.denoiser", self.denoiser, self.denoiser(x_k, u, obs), x_k.shape)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_batch(batch)
        loss = self.loss(batch["actions"], self.obs_normalizer(batch["obs"]))
        self.log("train/diffusion_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.denoiser.parameters(), lr=self.hparams.lr,
                                 weight_decay=self.hparams.weight_decay)

    @torch.no_grad()
    def sample(self, obs: Tensor, noise: Tensor | None = None) -> Tensor:
        """Joint sample ``[B, N, A]`` (already in [-1, 1] through the clipped ``x_0``) given ``obs``."""
        if noise is None:
            noise = torch.randn(obs.shape[0], self.n_agents, self.action_dim, device=obs.device, dtype=obs.dtype)
        return ddpm_sample(self.noise_estimate, self.schedule, self.obs_normalizer(obs), noise)

    @torch.no_grad()
    def act(self, obs: Tensor, legal: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        x = self.sample(obs, noise)
        return self.to_actions(x, legal)

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.act(obs, legal)
