"""``MACFlowModule``: what the teacher, the student and baselines share.

* One constructor signature for the data dims (``n_agents``, ``obs_dim``, ``action_dim``, ``state_dim``,
  ``discrete``), which LightningCLI links from the datamodule, so no config repeats them.
* Optional observation normalisation (``normalize_obs`` of the teacher and the student): :meth:`obs_normalizer_for`
  builds it and ``on_fit_start`` fits it once on the datamodule's data.
* Evaluation as ``validation_step`` over episode seeds: each rank runs :func:`macflow.evaluation.evaluate` on its
  shard of episodes with :meth:`policy`; ``on_validation_epoch_end`` all-reduces sums so the logged ``eval/*``
  values are global means over every episode of every rank.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from macflow.errors import InputError
from macflow.evaluation import episode_sums, evaluate, summary_from_sums
from macflow.modules.normalization import ObservationNormalizer


def masked_argmax_one_hot(scores: Tensor, legal: Tensor | None) -> Tensor:
    """One-hot of the best legal action: ``scores [..., A]`` (+ bool ``legal [..., A]``) -> ``[..., A]``."""
    if legal is not None:
        scores = scores.masked_fill(~legal, float("-inf"))
    return torch.nn.functional.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)


class CosineSchedule(torch.optim.lr_scheduler.OneCycleLR):
    """``OneCycleLR`` with cosine annealing whose saved state resumes only under the same ``trainer.max_steps``.

    The schedule's length is fixed when it is built; a checkpoint of another length would either stop the resumed
    fit with a raw scheduler error past its end or silently keep the old length, so loading one stops the fit."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("total_steps")
        if saved is not None and saved != self.total_steps:
            raise InputError(
                f"trainer.max_steps={self.total_steps} differs from the checkpoint's, {saved}: its lr_schedule: cosine "
                f"decays to 0 at step {saved}; resume with --trainer.max_steps={saved}, or start a new fit to train "
                "for another length")
        super().load_state_dict(state_dict)


def with_lr_schedule(module: LightningModule, optimizer: torch.optim.Optimizer, schedule: str) -> Any:
    """``configure_optimizers`` output for ``schedule``: ``constant``, or ``cosine`` (5 % linear warm-up, then
    cosine decay to 0 at ``trainer.max_steps``; sharper samples for the same budget)."""
    if schedule == "constant":
        return optimizer
    total = module.trainer.estimated_stepping_batches
    if not 0 < total < float("inf"):
        raise ValueError("lr_schedule: cosine needs a finite trainer.max_steps")
    if total < 40:  # OneCycleLR needs >= 2 warm-up steps (5 %); smoke runs this short keep the constant rate
        return optimizer
    max_lr = [group["lr"] for group in optimizer.param_groups]
    scheduler = CosineSchedule(optimizer, max_lr=max_lr, total_steps=int(total), pct_start=0.05, anneal_strategy="cos")
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class MACFlowModule(LightningModule):
    """Base LightningModule: the shared dims plus rollout evaluation."""

    def __init__(self, n_agents: int = 1, obs_dim: int = 1, action_dim: int = 1, state_dim: int = 0,
                 discrete: bool = False) -> None:
        super().__init__()
        self.n_agents, self.obs_dim, self.action_dim = n_agents, obs_dim, action_dim
        self.state_dim, self.discrete = state_dim, discrete
        self._eval_results: list[dict[str, Tensor]] = []

    def obs_normalizer_for(self, enabled: bool) -> torch.nn.Module:
        """An :class:`ObservationNormalizer` for ``normalize_obs: true``; else the identity, which adds no
        state-dict keys, so checkpoints from before the option still load strictly."""
        return ObservationNormalizer(self.n_agents, self.obs_dim) if enabled else torch.nn.Identity()

    def on_fit_start(self) -> None:
        """Fit the observation statistics on the datamodule's data, once: a resumed run keeps its saved ones."""
        normalizer = getattr(self, "obs_normalizer", None)
        if isinstance(normalizer, ObservationNormalizer) and not normalizer.fitted:
            data = getattr(self.trainer.datamodule, "data", None)
            if data is None:
                raise ValueError("normalize_obs: true needs a datamodule whose setup() loads .data (TransitionData), "
                                 "like every macflow datamodule; or set normalize_obs: false")
            normalizer.fit(data.observations)

    def policy(self, obs: Tensor, legal: Tensor | None = None) -> Tensor:
        """Actions ``[E, N, A]`` (in [-1, 1], or one-hot when discrete) for evaluation rollouts."""
        raise NotImplementedError

    def to_actions(self, raw: Tensor, legal: Tensor | None = None) -> Tensor:
        """Raw network output -> env actions: clipped to [-1, 1], or the best legal one-hot action when discrete."""
        return masked_argmax_one_hot(raw, legal) if self.discrete else raw.clamp(-1.0, 1.0)

    def check_batch(self, batch: dict[str, Tensor]) -> None:
        """Fail early, with the fix, when a batch does not match the dims the model was built with."""
        obs, act = batch["obs"], batch["actions"]
        if obs.shape[1:] != (self.n_agents, self.obs_dim) or act.shape[1:] != (self.n_agents, self.action_dim):
            raise ValueError(
                f"batch obs {list(obs.shape)} / actions {list(act.shape)} do not match the model's dims "
                f"(n_agents={self.n_agents}, obs_dim={self.obs_dim}, action_dim={self.action_dim}); train on the "
                "datamodule the model was built for (the CLI links its dims)")

    def checked_output(self, option: str, network: torch.nn.Module, out: Tensor, expected: torch.Size) -> Tensor:
        """``out`` if it has the ``expected`` shape ``[B, N, A]``, else an :class:`InputError` naming the config
        ``option``, the network's class and both shapes: a ``[B, 1, A]`` output would broadcast in the loss."""
        if out.shape != expected:
            raise InputError(
                f"{option} {type(network).__name__} returned shape {list(out.shape)}, expected {list(expected)} "
                f"([batch, n_agents={self.n_agents}, action_dim={self.action_dim}]); fix its forward to return one "
                "value per agent and action dimension")
        return out

    # ---------------------------------------------------------------------------------- training
    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then :meth:`update_targets`: a checkpoint saved after a step (checkpoint callbacks
        run in ``on_train_batch_end``, before the module's own hook) holds the targets of that step."""
        super().optimizer_step(*args, **kwargs)
        self.update_targets()

    def update_targets(self) -> None:
        """Post-step updates of target networks (Polyak averages); none by default."""

    # ------------------------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._eval_results = []

    def validation_step(self, seeds: Tensor, batch_idx: int) -> None:
        self._eval_results.append(evaluate(self.trainer.datamodule, self.policy, seeds.tolist(), len(seeds),
                                           self.device))

    def on_validation_epoch_end(self) -> None:
        if not self._eval_results:
            return
        values = {k: torch.cat([r[k] for r in self._eval_results]) for k in self._eval_results[0]}
        keys, local = episode_sums(values)
        total = self.all_gather(local)  # global sums over ranks
        total = total.sum(0) if total.dim() > 1 else total
        summary = summary_from_sums(keys, total)
        for k in keys:
            self.log(f"eval/{k}", summary[k].float(), prog_bar=k in ("return", "normalized_score"), rank_zero_only=False)
        self.log("eval/return_std", summary["return_std"].float())
        self.log("eval/episodes", summary["episodes"].float())
        self._eval_results = []
