"""Everything that simulates: the batched environment contract, ``rollout``, and one wrapper per benchmark.

``macflow.envs`` itself loads no simulator; ``macflow.envs.mpe`` (mpe2) and ``macflow.envs.mamujoco``
(gymnasium-robotics, MuJoCo) import theirs when an episode is first made.
"""

from macflow.envs.base import EnvStep, MultiAgentEnv, Policy, rollout

__all__ = ["EnvStep", "MultiAgentEnv", "Policy", "rollout"]
