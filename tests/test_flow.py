"""The flow maths against closed-form answers."""

import math

import pytest
import torch

from macflow.modules.flow import (
    endpoint_loss,
    endpoint_velocity,
    euler_sample,
    flow_matching_loss,
    interpolate,
    target_velocity,
)


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


def test_endpoint_parametrisation_is_the_same_flow_as_the_velocity_one():
    # the exact end point of a point mass c is c itself; its velocity is the exact field, and Euler lands on c
    c = torch.randn(1, 3, 2)
    x_1 = c.expand(64, 3, 2)
    exact_endpoint = lambda x, t, o: c.expand_as(x)  # noqa: E731
    t = torch.rand(64) * 0.99
    assert endpoint_loss(exact_endpoint, x_1, None, t=t).item() < 1e-12
    x_t = torch.randn(64, 3, 2)
    assert torch.allclose(endpoint_velocity(exact_endpoint)(x_t, t, None), (c - x_t) / (1 - t)[:, None, None],
                          atol=1e-5)
    # flow_matching_loss of the induced velocity = endpoint loss weighted by 1 / (1 - t)^2
    wrong = lambda x, t, o: c.expand_as(x) + 0.3  # noqa: E731
    x_0 = torch.randn(64, 3, 2)
    weighted = flow_matching_loss(endpoint_velocity(wrong), x_1, None, x_0=x_0, t=t)
    expected = (0.3 ** 2 / (1 - t) ** 2).mean()
    assert torch.allclose(weighted, expected, rtol=1e-4)
    assert torch.allclose(euler_sample(endpoint_velocity(exact_endpoint), None, x_0, steps=5), x_1, atol=1e-5)
