"""``MATD3BC``: multi-agent TD3+BC with per-agent deterministic actors and the student's mixed critic.

Run: ``python -m macflow fit --config configs/baselines/td3bc.yaml``.

The same value machinery as :class:`~macflow.modules.student.OneStepStudent`, the shared
:class:`~macflow.modules.mixed_critic.MixedCritic` (per-agent critic ensemble ``Q_i(o_i, a_i)`` + IGM mixer, Polyak
target, one summed loss and one backward pass, DDP-safe), but the actor is
regularised towards the *logged* actions instead of a teacher's samples (Fujimoto & Gu 2021, per agent):

* critic: TD target ``r + gamma (1 - done) agg_k Q_tot'(o', clip(pi'(o') + clip(eps)))`` with target-policy
  smoothing ``eps ~ N(0, policy_noise^2)`` clipped to ``noise_clip`` and a Polyak target actor;
* actor: ``alpha * mean |pi(o) - a|^2 - Q_tot(o, pi(o)) / mean |Q_tot|``, the Q term through the critic's detached
  weights. (TD3+BC writes ``-lambda Q + MSE`` with ``lambda = 2.5 / mean|Q|``, i.e. ``alpha = 0.4`` here.)

The actor is updated at every step (no TD3 policy delay): one loss, one optimizer, like the student, so the
comparison isolates the regulariser. Continuous actions only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from macflow.modules.base import MACFlowModule
from macflow.modules.critics import AgentCritic, EnsembleCritic
from macflow.modules.layers import mlp, with_agent_ids
from macflow.modules.mixed_critic import MixedCritic, aggregate_ensemble, polyak_update, remap_legacy_keys
from macflow.modules.mixers import Mixer, VDNMean


class DeterministicMLPPolicy(nn.Module):
    """Shared MLP on ``[onehot(i), o_i]`` -> ``tanh`` action ``[B, N, A]`` in (-1, 1)."""

    def __init__(self, obs_dim: int, action_dim: int, n_agents: int, hidden_dims: Sequence[int] = (256, 256, 256),
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.net = mlp(n_agents + obs_dim, list(hidden_dims), action_dim, layer_norm=layer_norm)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(with_agent_ids(obs, self.n_agents)))


class MATD3BC(MACFlowModule):
    """Per-agent TD3+BC actors with a value-decomposed critic.

    Args:
        hidden_dims: hidden widths of the shared actor MLP.
        critic: factory ``(obs_dim, action_dim, n_agents) -> AgentCritic``.
        mixer: factory ``(n_agents, state_dim) -> Mixer`` (state, or all observations when there is none).
        alpha: weight of the behaviour-cloning MSE (the Q term is normalised by ``mean |Q_tot|``).
        gamma, tau: discount and Polyak rate (target actor and target critic, post-step).
        policy_noise, noise_clip: target-policy smoothing.
        actor_lr, critic_lr: Adam learning rates (one Adam, two parameter groups).
        q_agg: critic-ensemble aggregation in the TD target (``mean`` or ``min``).
        normalize_obs: z-score the observations the actor and the critics read, per agent and feature, with
            statistics of the training data (fitted at fit start, saved in the checkpoint), as the student does.
    """

    def __init__(self, hidden_dims: Sequence[int] = (256, 256, 256),
                 critic: Callable[[int, int, int], AgentCritic] = EnsembleCritic,
                 mixer: Callable[[int, int], Mixer] = VDNMean, alpha: float = 0.4, gamma: float = 0.995,
                 tau: float = 0.005, policy_noise: float = 0.2, noise_clip: float = 0.5, actor_lr: float = 3e-4,
                 critic_lr: float = 3e-4, q_agg: Literal["mean", "min"] = "mean", normalize_obs: bool = False,
                 n_agents: int = 1, obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0,
                 discrete: bool = False) -> None:
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        if discrete:
            raise ValueError("MATD3BC is for continuous actions; for discrete data use macflow.modules.GaussianBC "
                             "(softmax BC) or macflow.modules.OneStepStudent")
        self.save_hyperparameters()
        self.actor = DeterministicMLPPolicy(obs_dim, action_dim, n_agents, hidden_dims)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.q = MixedCritic(critic, mixer, n_agents, obs_dim, action_dim, state_dim)
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)

    @torch.no_grad()
    def act(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.actor(self.obs_normalizer(obs))

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.act(obs, legal)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_batch(batch)
        hp = self.hparams
        obs, next_obs = self.obs_normalizer(batch["obs"]), self.obs_normalizer(batch["next_obs"])
        actions = batch["actions"]
        with torch.no_grad():
            next_actions = self.target_actor(next_obs)
            eps = (torch.randn_like(next_actions) * hp.policy_noise).clamp(-hp.noise_clip, hp.noise_clip)
            next_actions = (next_actions + eps).clamp(-1.0, 1.0)
            q_next = self.q.target(next_obs, next_actions, self.q.global_state(batch, "next_"))
            q_next = aggregate_ensemble(q_next, hp.q_agg)
            target = batch["rewards"] + hp.gamma * (1.0 - batch["dones"]) * q_next
        q = self.q(obs, actions, self.q.global_state(batch))
        critic_loss = (q - target).pow(2).mean()

        pi = self.actor(obs)
        q_pi = self.q.frozen(obs, pi, self.q.global_state(batch)).mean(0)
        scale = q_pi.abs().mean().detach().clamp_min(1e-6)
        q_loss = -q_pi.mean() / scale
        bc = (pi - actions).pow(2).mean()
        loss = critic_loss + hp.alpha * bc + q_loss
        self.log_dict({"train/loss": loss, "train/critic/loss": critic_loss, "train/critic/q_mean": q.mean().detach(),
                       "train/actor/bc_loss": bc, "train/actor/q_loss": q_loss})
        return loss

    def update_targets(self) -> None:
        """Polyak updates of the target critic and actor after the optimizer step."""
        self.q.update_target(self.hparams.tau)
        polyak_update(self.target_actor, self.actor, self.hparams.tau)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints saved with ``q_net`` / ``target_q_net`` keys get their ``q.online`` / ``q.target`` names."""
        remap_legacy_keys(checkpoint["state_dict"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([
            {"params": self.actor.parameters(), "lr": self.hparams.actor_lr},
            {"params": self.q.online.parameters(), "lr": self.hparams.critic_lr},
        ])
