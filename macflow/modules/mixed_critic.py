"""``MixedCritic``: the value-decomposed critic shared by the student and MA-TD3+BC.

It holds the online ``Q_tot = mixer(Q_i(o_i, a_i), s)`` (a per-agent critic ensemble mixed by an IGM mixer), its
frozen target copy, the call through detached weights that an actor's Q term uses, and the post-step Polyak update.
Both modules build it right after their actor (critic, then mixer, then the copy, which draws no random numbers),
so a seed gives the same initial weights whichever module builds it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from macflow.modules.critics import AgentCritic
from macflow.modules.mixers import Mixer

LEGACY_PREFIXES = {"q_net.": "q.online.", "target_q_net.": "q.target."}
"""State-dict prefixes of checkpoints whose modules held ``q_net`` / ``target_q_net`` -> those of ``self.q``."""


def aggregate_ensemble(q: Tensor, how: str) -> Tensor:
    """Critic-ensemble values ``[K, B]`` -> ``[B]``: their ``mean`` or their ``min`` (pessimistic)."""
    return q.mean(0) if how == "mean" else q.min(0).values


class MixedQ(nn.Module):
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


class MixedCritic(nn.Module):
    """Online :class:`MixedQ` (``self.online``, called by ``forward``) and its frozen Polyak copy (``self.target``).

    Args:
        critic: factory ``(obs_dim, action_dim, n_agents) -> AgentCritic``.
        mixer: factory ``(n_agents, state_dim) -> Mixer``; it sees the global state, or all observations
            (``n_agents * obs_dim``) when the data has no state.
        n_agents, obs_dim, action_dim, state_dim: the data dims.
    """

    def __init__(self, critic: Callable[[int, int, int], AgentCritic], mixer: Callable[[int, int], Mixer],
                 n_agents: int, obs_dim: int, action_dim: int, state_dim: int) -> None:
        super().__init__()
        self.uses_state = state_dim > 0
        mixer_state_dim = state_dim if self.uses_state else n_agents * obs_dim
        self.online = MixedQ(critic(obs_dim, action_dim, n_agents), mixer(n_agents, mixer_state_dim))
        self.target = copy.deepcopy(self.online).requires_grad_(False)

    def global_state(self, batch: dict[str, Tensor], prefix: str = "") -> Tensor:
        """What the mixer reads from ``batch``: ``<prefix>state``, or the flattened ``<prefix>obs`` without one."""
        if self.uses_state:
            return batch[f"{prefix}state"]
        return batch[f"{prefix}obs"].flatten(1)

    def forward(self, obs: Tensor, actions: Tensor, global_state: Tensor, probs: Tensor | None = None) -> Tensor:
        """Online ``Q_tot [K, B]`` (the TD loss trains it)."""
        return self.online(obs, actions, global_state, probs)

    def frozen(self, obs: Tensor, actions: Tensor, global_state: Tensor, probs: Tensor | None = None) -> Tensor:
        """Online ``Q_tot [K, B]`` through detached weights: an actor's Q term, whose gradient reaches the actions
        (the actor) and never the critic, so the critic learns from TD alone and all terms share one backward."""
        weights = {k: p.detach() for k, p in self.online.named_parameters()}
        kwargs = {} if probs is None else {"probs": probs}
        return torch.func.functional_call(self.online, weights, (obs, actions, global_state), kwargs)

    def update_target(self, tau: float) -> None:
        """Polyak step ``target <- (1 - tau) target + tau online``, after the optimizer step."""
        polyak_update(self.target, self.online, tau)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau online`` over the parameters of two modules of the same layout."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def remap_legacy_keys(state_dict: dict[str, Tensor]) -> None:
    """Rename, in place, the ``q_net.*`` / ``target_q_net.*`` keys of checkpoints saved before :class:`MixedCritic`
    held both networks to their ``q.online.*`` / ``q.target.*`` names, so those checkpoints load strictly."""
    for key in [k for k in state_dict if k.startswith(tuple(LEGACY_PREFIXES))]:
        old = next(p for p in LEGACY_PREFIXES if key.startswith(p))
        state_dict[LEGACY_PREFIXES[old] + key[len(old):]] = state_dict.pop(key)
