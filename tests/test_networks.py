"""Network contracts: shapes, who sees whom (joint teacher, decentralised students and critics), IGM mixers."""

import pytest
import torch

from macflow.modules import (
    QMIX,
    AgentAttentionVectorField,
    AgentMixerVectorField,
    EnsembleCritic,
    EntityAttentionPolicy,
    JointMLPVectorField,
    PerAgentVectorField,
    RecurrentHistoryPolicy,
    SharedMLPPolicy,
    VDNMean,
    VDNSum,
)

B, N, OBS, A = 5, 3, 4, 2


@pytest.mark.parametrize("cls", [AgentAttentionVectorField, AgentMixerVectorField, JointMLPVectorField,
                                 PerAgentVectorField])
def test_vector_field_shapes(cls):
    vf = cls(OBS, A, N)
    assert vf(torch.randn(B, N, A), torch.rand(B), torch.randn(B, N, OBS)).shape == (B, N, A)


def _cross_agent_change(vf, change: str) -> float:
    x, t, obs = torch.randn(B, N, A), torch.rand(B), torch.randn(B, N, OBS)
    base = vf(x, t, obs)[:, 0]
    x2, obs2 = x.clone(), obs.clone()
    if change == "action":
        x2[:, 1] += 1.0
    else:
        obs2[:, 2] += 1.0
    return (vf(x2, t, obs2)[:, 0] - base).abs().max().item()


@pytest.mark.parametrize("change", ["action", "observation"])
def test_default_field_is_joint_agent_i_sees_agent_j(change):
    torch.manual_seed(0)
    assert _cross_agent_change(AgentAttentionVectorField(OBS, A, N), change) > 1e-3
    assert _cross_agent_change(JointMLPVectorField(OBS, A, N), change) > 1e-3


@pytest.mark.parametrize("change", ["action", "observation"])
def test_agent_mixer_starts_per_agent_and_learns_to_see_other_agents(change):
    torch.manual_seed(0)
    vf = AgentMixerVectorField(OBS, A, N)
    assert _cross_agent_change(vf, change) == 0.0  # zero-initialised attention: the per-agent field
    # one gradient step on a target where agent 0 must copy agent 1's noisy action opens the attention
    x, t, obs = torch.randn(64, N, A), torch.rand(64), torch.randn(64, N, OBS)
    loss = (vf(x, t, obs)[:, 0] - x[:, 1] - obs[:, 2, :A]).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        for p in vf.parameters():
            p -= 0.1 * p.grad
    assert _cross_agent_change(vf, change) > 1e-3


@pytest.mark.parametrize("change", ["action", "observation"])
def test_per_agent_field_is_blind_to_other_agents(change):
    assert _cross_agent_change(PerAgentVectorField(OBS, A, N), change) == 0.0


def entity_policy(obs_dim: int, action_dim: int, n_agents: int, noise_dim: int) -> EntityAttentionPolicy:
    """Observation dims 1..2 hold two entities of one dim each; dims 0 and 3 are the agent's own."""
    return EntityAttentionPolicy(obs_dim, action_dim, n_agents, noise_dim, entity_groups=[[1, 2, 1]], width=16)


def history_policy(obs_dim: int, action_dim: int, n_agents: int, noise_dim: int) -> RecurrentHistoryPolicy:
    """Observations of two frames of two dims each."""
    return RecurrentHistoryPolicy(obs_dim, action_dim, n_agents, noise_dim, frames=2, hidden_size=8, hidden_dims=[16])


@pytest.mark.parametrize("policy", [SharedMLPPolicy, entity_policy, history_policy])
@pytest.mark.parametrize("noise_dim", [A, N * A])
def test_student_agent_output_depends_only_on_its_own_inputs(noise_dim, policy):
    torch.manual_seed(0)
    pi = policy(OBS, A, N, noise_dim)
    obs, z = torch.randn(B, N, OBS), torch.randn(B, N, noise_dim)
    out = pi(obs, z)
    assert out.shape == (B, N, A)
    obs2, z2 = obs.clone(), z.clone()
    obs2[:, 1:] += 1.0
    z2[:, 1:] += 1.0
    assert torch.equal(pi(obs2, z2)[:, 0], out[:, 0])  # agent 0 is unaffected by others
    obs2[:, 0] += 1.0
    assert not torch.allclose(pi(obs2, z2)[:, 0], out[:, 0])
    # agent ids make shared weights act differently per agent on identical inputs
    same = pi(obs[:, :1].expand(B, N, OBS), z[:, :1].expand(B, N, noise_dim))
    assert not torch.allclose(same[:, 0], same[:, 1])


def test_entity_policy_reads_each_group_as_a_set():
    torch.manual_seed(0)
    pi = entity_policy(OBS, A, N, A)
    obs, z = torch.randn(B, N, OBS), torch.randn(B, N, A)
    swapped = obs[..., [0, 2, 1, 3]]  # the two entities exchanged: the same set
    assert torch.allclose(pi(swapped, z), pi(obs, z), atol=1e-6)
    own_swapped = obs[..., [3, 1, 2, 0]]  # the agent's own dims are an ordered vector, not a set
    assert not torch.allclose(pi(own_swapped, z), pi(obs, z), atol=1e-3)


@pytest.mark.parametrize("groups", [[[3, 2, 1]], [[0, 2, 1], [1, 1, 1]]])
def test_entity_policy_rejects_groups_outside_or_overlapping(groups):
    with pytest.raises(ValueError, match="entity group"):
        EntityAttentionPolicy(OBS, A, N, A, entity_groups=groups)


def test_critic_is_per_agent_ensemble():
    torch.manual_seed(0)
    critic = EnsembleCritic(OBS, A, N, n_critics=2, hidden_dims=(16, 16))
    obs, act = torch.randn(B, N, OBS), torch.randn(B, N, A)
    q = critic(obs, act)
    assert q.shape == (2, B, N)
    assert not torch.allclose(q[0], q[1])  # independent members
    act2 = act.clone()
    act2[:, 1] += 1.0
    q2 = critic(obs, act2)
    assert torch.equal(q2[:, :, 0], q[:, :, 0]) and not torch.allclose(q2[:, :, 1], q[:, :, 1])


def test_vdn_mixers():
    q = torch.randn(2, B, N)
    assert torch.allclose(VDNMean(N, 0)(q, None), q.mean(-1))
    assert torch.allclose(VDNSum(N, 0)(q, None), q.sum(-1))


def test_qmix_is_monotonic_in_every_agent_value_and_uses_the_state():
    torch.manual_seed(0)
    mixer = QMIX(N, 7, embed_dim=8, hypernet_dim=16)
    q = torch.randn(2, B, N, requires_grad=True)
    state = torch.randn(B, 7)
    q_tot = mixer(q, state)
    assert q_tot.shape == (2, B)
    (grad,) = torch.autograd.grad(q_tot.sum(), q)
    assert (grad >= 0).all()  # IGM: raising any Q_i never lowers Q_tot
    assert not torch.allclose(mixer(q, state + 1.0), q_tot)
