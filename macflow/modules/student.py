"""``OneStepStudent``: decentralised one-step policies distilled from a frozen joint teacher, guided by a mixed Q.

Run: ``python -m macflow fit --config configs/student.yaml`` (after the teacher config has written its checkpoint).

One training step (paper Eq. 9, with the reference code's per-element means so ``alpha`` is comparable):

* critic: TD on ``(o, a, r, o', done)`` with per-agent critics ``Q_i(o_i, a_i)`` mixed by an IGM mixer, target
  ``r + gamma (1 - done) Q_tot'(o', a')`` with ``a' = mu(o', z')`` and Polyak target networks; ``done`` is a real
  termination only, so time-limit truncations bootstrap;
* actor: ``alpha * |mu(o, z) - clip(teacher_ODE(o, z))|^2 - Q_tot(o, clip(mu(o, z))) / mean|Q_tot|``, where the Q
  term goes through the critic's *detached* parameters, so the critic only learns from TD.

All terms are summed into one loss and one backward pass (DDP-safe, lightning.md §d); the teacher never changes.
Discrete actions: the student outputs logits, distils by cross-entropy to the teacher's best legal action, and
its Q term is the expected Q under the legal softmax (differentiable, unlike the reference's argmax).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from macflow.modules.base import MACFlowModule, masked_argmax_one_hot, with_lr_schedule
from macflow.modules.critics import AgentCritic, EnsembleCritic
from macflow.modules.mixers import Mixer, VDNMean
from macflow.modules.policies import SharedMLPPolicy, StudentPolicy
from macflow.modules.teacher import FlowTeacher


def aggregate_ensemble(q: Tensor, how: str) -> Tensor:
    """Critic-ensemble values ``[K, B]`` -> ``[B]``: their ``mean`` or their ``min`` (pessimistic)."""
    return q.mean(0) if how == "mean" else q.min(0).values


class MixedCritic(nn.Module):
    """Per-agent critic ensemble plus mixer: ``Q_tot [K, B]`` of a joint action (or of a joint policy)."""

    def __init__(self, critic: AgentCritic, mixer: Mixer) -> None:
        super().__init__()
        self.critic, self.mixer = critic, mixer

    def forward(self, obs: Tensor, actions: Tensor, global_state: Tensor, probs: Tensor | None = None) -> Tensor:
        """Mixed value of ``actions [B, N, A]``; with ``probs`` (discrete), of the expected per-agent value
        ``sum_a probs[a] Q_i(o_i, e_a)`` instead, which is differentiable in ``probs``."""
        if probs is None:
            q = self.critic(obs, actions)  # [K, B, N]
        else:
            b, n, a = probs.shape
            eye = torch.eye(a, device=obs.device, dtype=obs.dtype)
            every = eye[:, None, None, :].expand(a, b, n, a).reshape(a * b, n, a)
            q_all = self.critic(obs.repeat(a, 1, 1), every).view(-1, a, b, n)  # [K, A, B, N]
            q = torch.einsum("kabn,bna->kbn", q_all, probs)
        return self.mixer(q, global_state)


class OneStepStudent(MACFlowModule):
    """Distilled decentralised policies with a value-decomposed critic.

    Args:
        teacher_ckpt: path of the trained :class:`FlowTeacher` checkpoint (loaded frozen in ``configure_model``).
        policy: factory ``(obs_dim, action_dim, n_agents, noise_dim) -> StudentPolicy`` (shared weights + id).
        critic: factory ``(obs_dim, action_dim, n_agents) -> AgentCritic`` (per-agent ensemble).
        mixer: factory ``(n_agents, state_dim) -> Mixer``; it sees the global state, or all observations when
            the data has no state.
        noise: ``independent``: agent i reads its own ``z_i`` (the paper); ``shared``: every agent reads the whole
            joint noise, like a shared random seed, so the students can reproduce the teacher's coordinated modes.
        alpha: distillation weight (the reference's default is 1.0 continuous, 3.0 discrete).
        gamma: discount.
        tau: Polyak rate of the target critic (post-step update).
        actor_lr, critic_lr: Adam learning rates (one Adam, two parameter groups).
        lr_schedule: ``constant`` (the reference), or ``cosine``: warm-up then cosine decay to 0 at ``max_steps``.
        flow_steps: teacher Euler steps for distillation targets; ``null`` uses the teacher's own setting.
        normalize_q_loss: divide the Q term by ``stop_grad(mean |Q_tot|)`` (on by default for continuous actions).
        q_agg: how the critic ensemble is aggregated in the TD target (``mean`` as in the reference, or ``min``).
        actor_q_agg: how it is aggregated in the actor's Q term: ``mean`` (the reference) or ``min`` (pessimistic:
            the lowest member, which is lower wherever the members disagree).
        eval_noise: noise when acting: ``fresh`` per step, ``zero``, or ``fixed`` (one draw reused at every step,
            as the reference code evaluates).
        save_teacher: keep the teacher's weights inside student checkpoints (self-contained, larger files).
        normalize_obs: z-score the observations the actor and the critics read, per agent and feature, with
            statistics of the training data, fitted when training starts and saved in the checkpoint (the teacher
            keeps reading raw observations). For locomotion, whose features' scales differ by two orders of magnitude.
    """

    def __init__(self, teacher_ckpt: str,
                 policy: Callable[[int, int, int, int], StudentPolicy] = SharedMLPPolicy,
                 critic: Callable[[int, int, int], AgentCritic] = EnsembleCritic,
                 mixer: Callable[[int, int], Mixer] = VDNMean,
                 noise: Literal["independent", "shared"] = "independent",
                 alpha: float = 1.0, gamma: float = 0.995, tau: float = 0.005,
                 actor_lr: float = 3e-4, critic_lr: float = 3e-4,
                 lr_schedule: Literal["constant", "cosine"] = "constant", flow_steps: int | None = None,
                 normalize_q_loss: bool = True, q_agg: Literal["mean", "min"] = "mean",
                 actor_q_agg: Literal["mean", "min"] = "mean",
                 eval_noise: Literal["fresh", "zero", "fixed"] = "fresh", save_teacher: bool = False,
                 normalize_obs: bool = False,
                 n_agents: int = 1, obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0,
                 discrete: bool = False) -> None:
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        self.save_hyperparameters()
        self.noise_dim = action_dim if noise == "independent" else n_agents * action_dim
        self.actor = policy(obs_dim, action_dim, n_agents, self.noise_dim)
        mixer_state_dim = state_dim if state_dim > 0 else n_agents * obs_dim
        self.q_net = MixedCritic(critic(obs_dim, action_dim, n_agents), mixer(n_agents, mixer_state_dim))
        self.target_q_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)
        self.teacher: FlowTeacher | None = None  # loaded in configure_model (lightning.md §c)

    # ---------------------------------------------------------------------------------- teacher
    def configure_model(self) -> None:
        if self.teacher is not None:
            return
        path = Path(self.hparams.teacher_ckpt)
        if not path.is_file():
            raise FileNotFoundError(
                f"teacher checkpoint {path} not found: train the teacher first "
                "(python -m macflow fit --config configs/teacher.yaml) or set model.init_args.teacher_ckpt")
        teacher = FlowTeacher.load_from_checkpoint(path, map_location="cpu")
        mine = {k: self.hparams[k] for k in ("n_agents", "obs_dim", "action_dim", "discrete")}
        theirs = {k: teacher.hparams[k] for k in mine}
        if mine != theirs:
            raise ValueError(f"teacher {path} was trained on data with dims {theirs}, but this data has {mine}; "
                             "train a teacher on the same dataset")
        self.teacher = teacher.eval().requires_grad_(False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the teacher's weights out unless ``save_teacher`` (they live in ``teacher_ckpt``)."""
        if not self.hparams.save_teacher:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith("teacher.")]:
                del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put back the teacher weights (loaded from ``teacher_ckpt`` by ``configure_model``) so loading is strict."""
        state = checkpoint["state_dict"]
        if self.teacher is not None and not any(k.startswith("teacher.") for k in state):
            state.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})

    # ------------------------------------------------------------------------------------ noise
    def draw_noise(self, batch_size: int, device: torch.device, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, Tensor]:
        """``(z_students [B, N, noise_dim], x_0_teacher [B, N, A])`` from the same joint draw."""
        joint = torch.randn(batch_size, self.n_agents, self.action_dim, device=device, generator=generator)
        return self.student_noise(joint), joint

    def student_noise(self, joint: Tensor) -> Tensor:
        """What each agent reads of the joint noise ``[B, N, A]``: its own slice, or all of it (``shared``)."""
        if self.hparams.noise == "independent":
            return joint
        return joint.reshape(joint.shape[0], 1, -1).expand(-1, self.n_agents, -1)

    def global_state(self, batch: dict[str, Tensor], prefix: str = "") -> Tensor:
        if self.state_dim > 0:
            return batch[f"{prefix}state"]
        return batch[f"{prefix}obs"].flatten(1)

    # ----------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, obs: Tensor, legal: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """Deployment: one student forward for all agents, no teacher. ``z [B, N, noise_dim]`` or by ``eval_noise``."""
        if z is None:
            mode = self.hparams.eval_noise
            gen = None
            if mode == "fixed":
                gen = torch.Generator(device=obs.device).manual_seed(0)
            z, _ = self.draw_noise(obs.shape[0], obs.device, gen)
            if mode == "zero":
                z = torch.zeros_like(z)
        out = self.actor(self.obs_normalizer(obs), z)
        return self.to_actions(out, legal)

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        return self.act(obs, legal)

    # --------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.check_batch(batch)
        critic_loss, critic_logs = self.critic_loss(batch)
        actor_loss, actor_logs = self.actor_loss(batch)
        loss = critic_loss + actor_loss
        self.log_dict({"train/loss": loss, **critic_logs, **actor_logs})
        return loss

    def critic_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        obs, next_obs = batch["obs"], batch["next_obs"]
        with torch.no_grad():
            z_next, _ = self.draw_noise(obs.shape[0], obs.device)
            next_actions = self.act(next_obs, batch.get("next_legal"), z_next)
            q_next = self.target_q_net(self.obs_normalizer(next_obs), next_actions,
                                       self.global_state(batch, "next_"))  # [K, B]
            q_next = aggregate_ensemble(q_next, self.hparams.q_agg)
            target = batch["rewards"] + self.hparams.gamma * (1.0 - batch["dones"]) * q_next
        q = self.q_net(self.obs_normalizer(obs), batch["actions"], self.global_state(batch))  # [K, B]
        loss = (q - target).pow(2).mean()
        return loss, {"train/critic/loss": loss, "train/critic/q_mean": q.mean().detach(),
                      "train/critic/target_mean": target.mean()}

    def actor_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        obs, legal = batch["obs"], batch.get("legal")
        assert self.teacher is not None, "configure_model() loads the teacher"
        z, x_0 = self.draw_noise(obs.shape[0], obs.device)
        with torch.no_grad():
            teacher_out = self.teacher.sample(obs, x_0, self.hparams.flow_steps)
        obs = self.obs_normalizer(obs)  # what the actor and the critics read; the teacher above reads raw ones
        out = self.actor(obs, z)
        frozen = {k: p.detach() for k, p in self.q_net.named_parameters()}
        if self.discrete:
            labels = masked_argmax_one_hot(teacher_out, legal).argmax(-1)
            logits = out if legal is None else out.masked_fill(~legal, -1e9)
            distill = F.cross_entropy(logits.reshape(-1, self.action_dim), labels.reshape(-1))
            probs = logits.softmax(-1)
            q_tot = torch.func.functional_call(self.q_net, frozen, (obs, probs, self.global_state(batch)),
                                               {"probs": probs})
        else:
            distill = (out - teacher_out.clamp(-1.0, 1.0)).pow(2).mean()
            q_tot = torch.func.functional_call(self.q_net, frozen, (obs, out.clamp(-1.0, 1.0),
                                                                    self.global_state(batch)))
        q_tot = aggregate_ensemble(q_tot, self.hparams.actor_q_agg)  # [B]
        scale = q_tot.abs().mean().detach().clamp_min(1e-6) if self.hparams.normalize_q_loss else q_tot.new_ones(())
        q_loss = -q_tot.mean() / scale
        return self.hparams.alpha * distill + q_loss, {
            "train/actor/distill_loss": distill, "train/actor/q_loss": q_loss, "train/actor/q_scale": scale}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Polyak update of the target critic after the optimizer step (identical on every DDP rank)."""
        with torch.no_grad():
            target = list(self.target_q_net.parameters())
            torch._foreach_lerp_(target, list(self.q_net.parameters()), self.hparams.tau)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam([
            {"params": self.actor.parameters(), "lr": self.hparams.actor_lr},
            {"params": self.q_net.parameters(), "lr": self.hparams.critic_lr},
        ])
        return with_lr_schedule(self, optimizer, self.hparams.lr_schedule)
