"""``OneStepStudent``: decentralised one-step policies distilled from a frozen joint teacher, guided by a mixed Q.

Run: ``python -m macflow fit --config configs/student.yaml`` (after the teacher config has written its checkpoint).
Only fitting reads the teacher: ``validate``, ``load_from_checkpoint``, ``act`` and ``python -m macflow export`` need
the student checkpoint alone.

One training step (paper Eq. 9, with the reference code's per-element means so ``alpha`` is comparable):

* critic: TD on ``(o, a, r, o', done)`` with per-agent critics ``Q_i(o_i, a_i)`` mixed by an IGM mixer, target
  ``r + gamma (1 - done) Q_tot'(o', a')`` with ``a' = mu(o', z')`` and a Polyak target critic
  (:class:`~macflow.modules.mixed_critic.MixedCritic`, shared with MA-TD3+BC); ``done`` is a real termination only,
  so time-limit truncations bootstrap;
* actor: ``alpha * |mu(o, z) - clip(teacher_ODE(o, z))|^2 - Q_tot(o, clip(mu(o, z))) / mean|Q_tot|``, where the Q
  term goes through the critic's *detached* parameters, so the critic only learns from TD.

All terms are summed into one loss and one backward pass (DDP-safe, lightning.md §d); the teacher never changes.
Discrete actions: the student outputs logits, distils by cross-entropy to the teacher's best legal action, and
its Q term is the expected Q under the legal softmax (differentiable, unlike the reference's argmax).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.nn import functional as F

from macflow.checkpoints import (
    RECORD,
    datamodule_fingerprint,
    model_class_path,
    read_checkpoint,
    run_record,
    short_class,
)
from macflow.errors import InputError
from macflow.files import file_sha256
from macflow.modules.base import MACFlowModule, masked_argmax_one_hot, with_lr_schedule
from macflow.modules.critics import AgentCritic, EnsembleCritic
from macflow.modules.mixed_critic import MixedCritic, aggregate_ensemble, remap_legacy_keys
from macflow.modules.mixers import Mixer, VDNMean
from macflow.modules.policies import SharedMLPPolicy, StudentPolicy
from macflow.modules.teacher import FlowTeacher


class OneStepStudent(MACFlowModule):
    """Distilled decentralised policies with a value-decomposed critic.

    Args:
        teacher_ckpt: path of the trained :class:`FlowTeacher` checkpoint, loaded frozen when fitting starts
            (``setup("fit")``); nothing else reads it.
        actor: factory ``(obs_dim, action_dim, n_agents, noise_dim) -> StudentPolicy``, the decentralised actor
            ``self.actor`` (shared weights + agent id).
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
        target_precision: precision of the teacher's Euler loop that makes the distillation targets: ``fp32``
            (the step's own precision) or ``bf16`` (bfloat16 autocast on the batch's device, cheaper on CPUs with
            AMX / AVX-512 BF16 and on GPUs; the targets differ from float32's by bfloat16 rounding).
        compile: compile, once when fitting starts (``configure_model``), the actor, both critics and the teacher's
            fixed-length Euler loop in place with ``torch.compile`` (inductor fuses the element-wise work between the
            matmuls); the same maths as eager, to float tolerance.
        normalize_q_loss: divide the Q term by ``stop_grad(mean |Q_tot|)`` (on by default for continuous actions).
        q_agg: how the critic ensemble is aggregated in the TD target (``mean`` as in the reference, or ``min``).
        actor_q_agg: how it is aggregated in the actor's Q term: ``mean`` (the reference) or ``min`` (pessimistic:
            the lowest member, which is lower wherever the members disagree).
        eval_noise: noise when acting: ``fresh`` per step, ``zero``, or ``fixed`` (one draw reused at every step,
            as the reference code evaluates).
        save_teacher: keep a copy of the teacher's weights inside student checkpoints (larger files); a fit
            still loads the teacher from ``teacher_ckpt``, and loading outside a fit ignores the copy.
        normalize_obs: z-score the observations the actor and the critics read, per agent and feature, with
            statistics of the training data, fitted when training starts and saved in the checkpoint (the teacher
            keeps reading raw observations). For locomotion, whose features' scales differ by two orders of magnitude.
        policy: the former name of ``actor``; passing it raises an error that names ``actor``.
    """

    def __init__(self, teacher_ckpt: str,
                 actor: Callable[[int, int, int, int], StudentPolicy] = SharedMLPPolicy,
                 critic: Callable[[int, int, int], AgentCritic] = EnsembleCritic,
                 mixer: Callable[[int, int], Mixer] = VDNMean,
                 noise: Literal["independent", "shared"] = "independent",
                 alpha: float = 1.0, gamma: float = 0.995, tau: float = 0.005,
                 actor_lr: float = 3e-4, critic_lr: float = 3e-4,
                 lr_schedule: Literal["constant", "cosine"] = "constant", flow_steps: int | None = None,
                 target_precision: Literal["fp32", "bf16"] = "fp32", compile: bool = False,
                 normalize_q_loss: bool = True, q_agg: Literal["mean", "min"] = "mean",
                 actor_q_agg: Literal["mean", "min"] = "mean",
                 eval_noise: Literal["fresh", "zero", "fixed"] = "fresh", save_teacher: bool = False,
                 normalize_obs: bool = False,
                 n_agents: int = 1, obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0,
                 discrete: bool = False,
                 policy: Callable[[int, int, int, int], StudentPolicy] | None = None) -> None:
        if policy is not None:
            raise ValueError(
                "OneStepStudent's argument policy is now actor: rename model.init_args.policy to "
                "model.init_args.actor in the config (a checkpoint saved before the rename: rename the 'policy' "
                "key of its 'hyper_parameters' to 'actor')")
        super().__init__(n_agents, obs_dim, action_dim, state_dim, discrete)
        if target_precision not in ("fp32", "bf16"):
            raise ValueError(f"target_precision must be 'fp32' or 'bf16', got {target_precision!r}")
        self.save_hyperparameters(ignore=["policy"])
        self.noise_dim = action_dim if noise == "independent" else n_agents * action_dim
        self.actor = actor(obs_dim, action_dim, n_agents, self.noise_dim)
        self.q = MixedCritic(critic, mixer, n_agents, obs_dim, action_dim, state_dim)
        self.obs_normalizer = self.obs_normalizer_for(normalize_obs)
        self.teacher: FlowTeacher | None = None  # loaded by setup("fit"), the only stage that reads it
        self.teacher_obs_dim = obs_dim  # the newest features of a window the teacher reads (load_teacher sets it)
        self.teacher_record: dict[str, Any] | None = None  # which teacher, written into the student's checkpoints
        self._compiled_targets: Callable[[Tensor, Tensor], Tensor] | None = None  # set by configure_model

    # ---------------------------------------------------------------------------------- teacher
    def setup(self, stage: str) -> None:
        """Load the teacher for ``fit`` (a resumed fit too), before its checkpoint is restored; ``validate``,
        ``test`` and ``predict`` run without it, and ``load_from_checkpoint`` never calls this."""
        frames = self._obs_history()
        actor_frames = getattr(self.actor, "frames", None)
        if actor_frames is not None and actor_frames != frames:
            raise InputError(f"model.init_args.actor {type(self.actor).__name__} reads windows of {actor_frames} "
                             f"observations but the data gives {frames} (data.init_args.obs_history): set both to "
                             "the same number")
        if stage == "fit":
            self.load_teacher()

    def configure_model(self) -> None:
        """With ``compile``: compile the actor, the critics and the teacher's target loop in place, once (a second
        call, e.g. a resumed fit in the same process, keeps the compiled ones)."""
        if not self.hparams.compile or self._compiled_targets is not None:
            return
        self.actor.compile()
        self.q.online.compile()
        self.q.target.compile()
        self._compiled_targets = torch.compile(self._euler_targets, dynamic=False)

    def load_teacher(self) -> None:
        """Load ``teacher_ckpt`` frozen into ``self.teacher`` (once), checking it is a :class:`FlowTeacher` trained on
        the same dims; a teacher trained on other data (another data fingerprint) gets a one-line warning."""
        if self.teacher is not None:
            return
        path = Path(self.hparams.teacher_ckpt)
        if not path.is_file():
            raise InputError(
                f"model.init_args.teacher_ckpt {path} not found, and fitting a student needs it: train the teacher "
                "first (python -m macflow fit --config configs/teacher.yaml) or set model.init_args.teacher_ckpt to "
                "its final.ckpt")
        checkpoint = read_checkpoint(path, "model.init_args.teacher_ckpt")
        kind = model_class_path(checkpoint) or ("OneStepStudent" if "teacher_ckpt" in checkpoint.get(
            "hyper_parameters", {}) else None)
        if kind is not None and not _is_flow_teacher(kind):
            raise InputError(f"model.init_args.teacher_ckpt {path} is a {short_class(kind)} checkpoint, not a "
                             "FlowTeacher: point it at the teacher run's final.ckpt")
        teacher = FlowTeacher.load_from_checkpoint(path, map_location="cpu")
        mine = {k: self.hparams[k] for k in ("n_agents", "obs_dim", "action_dim", "discrete")}
        theirs = {k: teacher.hparams[k] for k in mine}
        frame_dim = self.obs_dim // self._obs_history()
        newest_frames = theirs["obs_dim"] <= self.obs_dim and theirs["obs_dim"] % frame_dim == 0
        same_agents_and_actions = all(mine[k] == theirs[k] for k in ("n_agents", "action_dim", "discrete"))
        if not same_agents_and_actions or not newest_frames:
            raise InputError(f"model.init_args.teacher_ckpt {path} was trained on data with dims {theirs}, but this "
                             f"data has {mine}: train a teacher on the same dataset (with obs_history, the teacher "
                             "may read fewer frames than the student)")
        self.teacher_obs_dim = theirs["obs_dim"]
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_record = {"path": str(path.resolve()), "sha256": file_sha256(path),
                               "data_fingerprint": run_record(checkpoint).get("data_fingerprint")}
        own = self._data_fingerprint()
        if own is not None and self.teacher_record["data_fingerprint"] not in (None, own):
            rank_zero_warn(f"teacher {path} was trained on other data than this student (data fingerprint "
                           f"{self.teacher_record['data_fingerprint'][:12]} vs {own[:12]}): train the teacher on "
                           "this dataset, or ignore this if the change is intended", category=UserWarning)

    def _obs_history(self) -> int:
        """Observations per agent in the attached datamodule's windows (``obs_history``; 1 without one)."""
        trainer = self._trainer
        return int(getattr(getattr(trainer, "datamodule", None), "obs_history", 1)) if trainer is not None else 1

    def _data_fingerprint(self) -> str | None:
        """Fingerprint of the attached trainer's datamodule (``None`` outside a fit with a datamodule)."""
        trainer = self._trainer
        return datamodule_fingerprint(getattr(trainer, "datamodule", None)) if trainer is not None else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the teacher's weights out unless ``save_teacher`` (they live in ``teacher_ckpt``); record which
        teacher (resolved path, file sha256, data fingerprint) the student was distilled from."""
        if not self.hparams.save_teacher:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith("teacher.")]:
                del state[key]
        if self.teacher_record is not None:
            checkpoint.setdefault(RECORD, {})["teacher"] = self.teacher_record

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make the saved state dict match this module's, so loading stays strict.

        When fitting, the teacher (loaded from ``teacher_ckpt``) fills in ``teacher.*`` keys the checkpoint lacks.
        Otherwise the ``teacher.*`` keys of a ``save_teacher`` checkpoint are dropped rather than used to rebuild the
        teacher: evaluating, acting and exporting never read it, and a fit reloads it from ``teacher_ckpt``.
        Checkpoints saved with ``q_net`` / ``target_q_net`` keys get their ``q.online`` / ``q.target`` names."""
        state = checkpoint["state_dict"]
        remap_legacy_keys(state)
        has_teacher = any(k.startswith("teacher.") for k in state)
        if self.teacher is not None and not has_teacher:
            state.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
        elif self.teacher is None and has_teacher:
            for key in [k for k in state if k.startswith("teacher.")]:
                del state[key]



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
        return self.to_actions(self.actor_output(self.obs_normalizer(obs), z), legal)

    def actor_output(self, obs: Tensor, z: Tensor) -> Tensor:
        """The actor's raw actions (or logits) ``[B, N, A]`` for normalised ``obs``, checked for that shape."""
        expected = torch.Size((obs.shape[0], self.n_agents, self.action_dim))
        return self.checked_output("model.init_args.actor", self.actor, self.actor(obs, z), expected)

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

    @torch.no_grad()
    def td_target(self, batch: dict[str, Tensor]) -> Tensor:
        """``r + gamma (1 - done) Q_tot'(o', mu(o', z'))`` ``[B]`` through the target critic, fresh ``z'``."""
        next_obs = batch["next_obs"]
        z_next, _ = self.draw_noise(next_obs.shape[0], next_obs.device)
        next_actions = self.act(next_obs, batch.get("next_legal"), z_next)
        q_next = self.q.target(self.obs_normalizer(next_obs), next_actions,
                               self.q.global_state(batch, "next_"))  # [K, B]
        q_next = aggregate_ensemble(q_next, self.hparams.q_agg)
        return batch["rewards"] + self.hparams.gamma * (1.0 - batch["dones"]) * q_next

    def critic_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        target = self.td_target(batch)
        q = self.q(self.obs_normalizer(batch["obs"]), batch["actions"], self.q.global_state(batch))  # [K, B]
        loss = (q - target).pow(2).mean()
        return loss, {"train/critic/loss": loss, "train/critic/q_mean": q.mean().detach(),
                      "train/critic/target_mean": target.mean()}

    def actor_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        obs, legal = batch["obs"], batch.get("legal")
        assert self.teacher is not None, "setup('fit') (or load_teacher()) loads the teacher"
        z, x_0 = self.draw_noise(obs.shape[0], obs.device)
        teacher_out = self.distillation_targets(obs, x_0)
        obs = self.obs_normalizer(obs)  # what the actor and the critics read; the teacher above reads raw ones
        out = self.actor_output(obs, z)
        state = self.q.global_state(batch)
        if self.discrete:
            labels = masked_argmax_one_hot(teacher_out, legal).argmax(-1)
            logits = out if legal is None else out.masked_fill(~legal, -1e9)
            distill = F.cross_entropy(logits.reshape(-1, self.action_dim), labels.reshape(-1))
            probs = logits.softmax(-1)
            q_tot = self.q.frozen(obs, probs, state, probs)
        else:
            distill = (out - teacher_out.clamp(-1.0, 1.0)).pow(2).mean()
            q_tot = self.q.frozen(obs, out.clamp(-1.0, 1.0), state)
        q_tot = aggregate_ensemble(q_tot, self.hparams.actor_q_agg)  # [B]
        scale = q_tot.abs().mean().detach().clamp_min(1e-6) if self.hparams.normalize_q_loss else q_tot.new_ones(())
        q_loss = -q_tot.mean() / scale
        return self.hparams.alpha * distill + q_loss, {
            "train/actor/distill_loss": distill, "train/actor/q_loss": q_loss, "train/actor/q_scale": scale}

    @torch.no_grad()
    def distillation_targets(self, obs: Tensor, x_0: Tensor) -> Tensor:
        """The teacher's unclipped Euler sample ``[B, N, A]`` (float32) from joint noise ``x_0`` given raw ``obs``
        (the newest frames it was trained on, when the student reads a longer history), at ``target_precision``,
        through the compiled loop when ``compile`` is on."""
        assert self.teacher is not None, "setup('fit') (or load_teacher()) loads the teacher"
        run = self._compiled_targets or self._euler_targets
        if self.hparams.target_precision == "bf16":
            with torch.autocast(obs.device.type, dtype=torch.bfloat16):
                return run(obs, x_0).float()
        return run(obs, x_0)

    def _euler_targets(self, obs: Tensor, x_0: Tensor) -> Tensor:
        return self.teacher.sample(obs[..., -self.teacher_obs_dim:], x_0, self.hparams.flow_steps)

    def update_targets(self) -> None:
        """Polyak update of the target critic after the optimizer step (identical on every DDP rank)."""
        self.q.update_target(self.hparams.tau)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam([
            {"params": self.actor.parameters(), "lr": self.hparams.actor_lr},
            {"params": self.q.online.parameters(), "lr": self.hparams.critic_lr},
        ])
        return with_lr_schedule(self, optimizer, self.hparams.lr_schedule)


def _is_flow_teacher(class_path: str) -> bool:
    """Whether ``class_path`` names :class:`FlowTeacher` or an importable subclass of it."""
    if short_class(class_path) == "FlowTeacher":
        return True
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, FlowTeacher)
