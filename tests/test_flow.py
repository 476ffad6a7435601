"""The flow maths against closed-form answers."""

import math

import pytest
import torch

from macflow.modules.flow import euler_sample, flow_matching_loss, interpolate, target_velocity


def test_interpolant_endpoints_and_velocity():
    x_0, x_1 = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    assert torch.allclose(interpolate(x_0, x_1, torch.zeros(4)), x_0)
    assert torch.allclose(interpolate(x_0, x_1, torch.ones(4)), x_1)
    t = torch.rand(4)
    eps = 1e-3
    numeric = (interpolate(x_0, x_1, t + eps) - interpolate(x_0, x_1, t)) / eps
    assert torch.allclose(numeric, target_velocity(x_0, x_1), atol=1e-3)


def test_euler_integrates_constant_velocity_exactly():
    c = torch.tensor([0.5, -2.0])
    x_0 = torch.randn(5, 3, 2)
    out = euler_sample(lambda x, t, o: c.expand_as(x), torch.zeros(5, 3, 1), x_0, steps=7)
    assert torch.allclose(out, x_0 + c, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_euler_on_linear_ode_matches_its_closed_form(steps):
    # dx/dt = x: K Euler steps give x_0 (1 + 1/K)^K; the time grid must be k/K (v = 2t x gives prod(1 + 2k/K^2))
    x_0 = torch.randn(2, 2, 1)
    out = euler_sample(lambda x, t, o: x, None, x_0, steps)
    assert torch.allclose(out, x_0 * (1 + 1 / steps) ** steps, atol=1e-5)
    out = euler_sample(lambda x, t, o: 2 * t[:, None, None] * x, None, x_0, steps)
    expected = math.prod(1 + 2 * k / steps**2 for k in range(steps))
    assert torch.allclose(out, x_0 * expected, atol=1e-5)


def test_flow_matching_loss_is_zero_for_the_true_field_of_a_point_mass():
    # data = a single joint action c: the exact conditional field is (c - x_t) / (1 - t)
    c = torch.randn(1, 3, 2)
    x_1 = c.expand(64, 3, 2)
    field = lambda x, t, o: (c - x) / (1 - t)[:, None, None]  # noqa: E731
    t = torch.rand(64) * 0.99
    assert flow_matching_loss(field, x_1, None, t=t).item() < 1e-8
    assert flow_matching_loss(lambda x, t, o: torch.zeros_like(x), x_1, None, t=t).item() > 0.1


def test_euler_rejects_zero_steps():
    with pytest.raises(ValueError, match="flow steps"):
        euler_sample(lambda x, t, o: x, None, torch.zeros(1, 1, 1), 0)
