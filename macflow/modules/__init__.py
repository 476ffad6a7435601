"""Networks (vector fields, policies, critics, mixers) and the two LightningModules that train them."""

from macflow.modules.base import MACFlowModule
from macflow.modules.critics import AgentCritic, EnsembleCritic
from macflow.modules.mixers import QMIX, Mixer, VDNMean, VDNSum
from macflow.modules.policies import (
    EntityAttentionPolicy,
    RecurrentHistoryPolicy,
    SharedMLPPolicy,
    StudentPolicy,
)
from macflow.modules.student import OneStepStudent
from macflow.modules.teacher import FlowTeacher
from macflow.modules.vector_fields import (
                                           AgentAttentionVectorField,
                                           AgentMixerVectorField,
                                           JointMLPVectorField,
                                           PerAgentVectorField,
                                           VectorField,
)

__all__ = ["MACFlowModule", "FlowTeacher", "OneStepStudent", "VectorField", "AgentAttentionVectorField",
           "AgentMixerVectorField", "JointMLPVectorField", "PerAgentVectorField", "StudentPolicy", "SharedMLPPolicy",
           "RecurrentHistoryPolicy", "EntityAttentionPolicy", "AgentCritic", "EnsembleCritic", "Mixer", "VDNMean",
           "VDNSum", "QMIX"]

# baselines (issue 5)
from macflow.modules.diffusion import DiffusionPolicy  # noqa: E402
from macflow.modules.gaussian_bc import GaussianBC  # noqa: E402
from macflow.modules.td3bc import MATD3BC  # noqa: E402

__all__ += ["GaussianBC", "MATD3BC", "DiffusionPolicy"]
