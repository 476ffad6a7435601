"""Flow-matching maths in plain PyTorch: the interpolant, its target velocity and the Euler sampler.

Notation follows the paper: ``x_0`` is noise, ``x_1`` the data action, ``x_t = (1 - t) x_0 + t x_1`` and the
conditional target velocity is ``x_1 - x_0``. Nothing here knows about Lightning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``velocity(x_t [B, N, A], t [B], obs [B, N, O]) -> [B, N, A]``."""


def interpolate(x_0: Tensor, x_1: Tensor, t: Tensor) -> Tensor:
    """Linear (rectified-flow / OT) path ``x_t = (1 - t) x_0 + t x_1``; ``t`` has shape ``[B]``."""
    t = t.view(-1, *([1] * (x_0.dim() - 1)))
    return (1.0 - t) * x_0 + t * x_1


def target_velocity(x_0: Tensor, x_1: Tensor) -> Tensor:
    """The conditional velocity of the linear path, ``x_1 - x_0``."""
    return x_1 - x_0


def sample_path(x_1: Tensor, x_0: Tensor | None = None, t: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(x_0, t, x_t)`` for training: noise ``x_0 ~ N(0, I)`` and ``t ~ U[0, 1)`` (one per sample) unless given."""
    if x_0 is None:
        x_0 = torch.randn_like(x_1)
    if t is None:
        t = torch.rand(x_1.shape[0], device=x_1.device, dtype=x_1.dtype)
    return x_0, t, interpolate(x_0, x_1, t)


def flow_matching_loss(velocity: VelocityFn, x_1: Tensor, obs: Tensor, x_0: Tensor | None = None,
                       t: Tensor | None = None) -> Tensor:
    """Conditional flow-matching loss (paper Eq. 6): per-element mean of ``|v(x_t, t, o) - (x_1 - x_0)|^2``.

    One ``t`` per sample (shared by all agents of that joint action), so the field learns the joint path.
    """
    x_0, t, x_t = sample_path(x_1, x_0, t)
    return (velocity(x_t, t, obs) - target_velocity(x_0, x_1)).pow(2).mean()


def euler_sample(velocity: VelocityFn, obs: Tensor, x_0: Tensor, steps: int) -> Tensor:
    """Integrate ``dx/dt = v(x, t, obs)`` from ``x_0`` at t=0 to t=1 with ``steps`` Euler steps (grid ``k/K``).

    Returns the unclipped end point; callers clip or arg-max as their action space needs.
    """
    if steps < 1:
        raise ValueError(f"flow steps must be >= 1, got {steps}")
    x = x_0
    dt = 1.0 / steps
    for k in range(steps):
        t = torch.full((x.shape[0],), k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, t, obs)
    return x


def endpoint_loss(endpoint: VelocityFn, x_1: Tensor, obs: Tensor, x_0: Tensor | None = None,
                  t: Tensor | None = None) -> Tensor:
    """Flow matching with the network predicting the end point: mean of ``|x̂_1(x_t, t, o) - x_1|^2``.

    With ``v = (x̂_1 - x_t) / (1 - t)`` (:func:`endpoint_velocity`) this is Eq. 6 weighted by ``(1 - t)^2``: the
    same flow, but the network's job at every ``t`` is a regression onto the action, which it learns as accurately
    as plain behaviour cloning where the data's action is (nearly) deterministic.
    """
    _, t, x_t = sample_path(x_1, x_0, t)
    return (endpoint(x_t, t, obs) - x_1).pow(2).mean()


def endpoint_velocity(endpoint: VelocityFn, min_remaining: float = 1e-3) -> VelocityFn:
    """The velocity ``(x̂_1 - x_t) / (1 - t)`` of an end-point network (the Euler grid keeps ``1 - t >= 1/K``)."""
    def velocity(x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        remaining = (1.0 - t).clamp_min(min_remaining).view(-1, *([1] * (x_t.dim() - 1)))
        return (endpoint(x_t, t, obs) - x_t) / remaining
    return velocity
