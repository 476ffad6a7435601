"""``GaussianBC``: per-agent Gaussian behaviour cloning with shared weights, the fast-but-unimodal baseline.

Run: ``python -m macflow fit --config configs/baselines/gaussian_bc.yaml``.

Agent i's policy is ``N(mu(onehot(i), o_i), diag sigma(onehot(i), o_i)^2)`` from one MLP shared by all agents,
trained by maximum likelihood on the logged per-agent actions (continuous), or a softmax over the legal actions
trained by cross-entropy (discrete). Acting costs one MLP forward per agent, like the MAC-Flow student, which is
what the latency benchmark compares against. A unimodal per-agent Gaussian cannot represent multi-modal or
coordinated joint actions: on the coordination benchmark its mean falls between the modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from macflow.modules.base import MACFlowModule, masked_argmax_one_hot
from macflow.modules.layers import mlp, with_agent_ids


class GaussianMLPPolicy(nn.Module):
    """Shared MLP on ``[onehot(i), o_i]`` -> ``(mean [B, N, A], log_std [B, N, A])`` (logits and zeros if discrete)."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, hidden_dims: Sequence[int] = (256, 256, 256),
                 layer_norm: bool = False, log_std_min: float = -5.0, log_std_max: float = 1.0) -> None:
        super().__init__()
        self.obs_dim, self.action_dim, self.n_agents = obs_dim, action_dim, n_agents
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.net = mlp(n_agents + obs_dim, list(hidden_dims), 2 * action_dim, layer_norm=layer_norm)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(with_agent_ids(obs, self.n_agents)).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)


class GaussianBC(MACFlowModule):
    """Per-agent (shared-weight) Gaussian behaviour cloning.

    Args:
        hidden_dims: hidden widths of the shared policy MLP.
        layer_norm: LayerNorm after each hidden activation.
        lr: Adam learning rate.
        eval_mode: ``mean``: act with the clipped mean (the usual BC evaluation); ``sample``: draw from the
            Gaussian (or the legal softmax when discrete) at every step.
        normalize_obs: z-score the observations the policy reads, per agent and feature, with statistics of the
            training data (fitted at fit start, saved in the checkpoint), as the student's option does.
        n_agents, obs_dim, action_dim, state_dim, discrete: data dims, linked from the datamodule.
    """

    def __init__(self, hidden_dims: Sequence[int] = (256, 256, 256), layer_norm: bool = False, lr: float = 3e-4,
                 eval_mode: Literal["mean", "sample"] = "mean", normalize_obs: bool = False, n_agents: int = 1,
                 obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0, discrete: bool = False) -> None:
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        self.save_hyperparameters()
        self.actor = GaussianMLPPolicy(obs_dim, action_dim, n_agents, hidden_dims, layer_norm)
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)

    def nll(self, obs: Tensor, actions: Tensor, legal: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood per agent and action dimension (continuous) or per agent (discrete)."""
        mean, log_std = self.actor(self.obs_normalizer(obs))
        if self.discrete:
            logits = mean if legal is None else mean.masked_fill(~legal, -1e9)
            return F.cross_entropy(logits.reshape(-1, self.action_dim), actions.argmax(-1).reshape(-1))
        z = (actions - mean) * torch.exp(-log_std)
        return (0.5 * z.pow(2) + log_std + 0.5 * math.log(2 * math.pi)).mean()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_batch(batch)
        loss = self.nll(batch["obs"], batch["actions"], batch.get("legal"))
        self.log("train/nll", loss, prog_bar=True)
        return loss

    @torch.no_grad()
    def act(self, obs: Tensor, legal: Tensor | None = None, sample: bool | None = None) -> Tensor:
        """Actions ``[B, N, A]``: the clipped mean (or a clipped sample), or a legal one-hot when discrete."""
        sample = self.hparams.eval_mode == "sample" if sample is None else sample
        mean, log_std = self.actor(self.obs_normalizer(obs))
        if self.discrete:
            if not sample:
                return masked_argmax_one_hot(mean, legal)
            logits = mean if legal is None else mean.masked_fill(~legal, float("-inf"))
            choice = torch.distributions.Categorical(logits=logits).sample()
            return F.one_hot(choice, self.action_dim).to(obs.dtype)
        out = mean + torch.randn_like(mean) * log_std.exp() if sample else mean
        return out.clamp(-1.0, 1.0)

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.act(obs, legal)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.actor.parameters(), lr=self.hparams.lr)
