"""MaMuJoCo on gymnasium-robotics ``mamujoco_v1``: scenario table, observation builders and the batched env.

Every episode is a real ``mamujoco_v1.parallel_env`` (Gymnasium ``*-v5`` underneath, 1000-step time limit). Agents
act in [-1, 1], mapped linearly onto each agent's action bounds. The team reward is the single-agent reward, which
``mamujoco_v1`` copies to every agent. Observation layouts (``obs_layout``) reproduce the public datasets, so a
policy trained on them is evaluated in its own coordinates (datasets.md §5.2):

* ``mamujoco``: the native ``mamujoco_v1`` observation (``agent_obsk=1``), zero-padded at the end to the largest
  agent (Hopper 3x1: 8, 9, 8 -> 9). The state is ``env.state()`` (= the single-agent observation).
* ``omiga``: OMIGA's input, the same for every agent but the id: ``z(concat(single_agent_obs, onehot(i, N)))`` with a
  per-vector z-score (population std). Ant uses v2's 111-dim observation ``[v5_obs[:27], zeros(84)]`` (contact
  forces were 0 under MuJoCo 2.0). The state is agent 0's vector, like OMIGA's ``s[:, 0]``.
* ``omar``: OMAR's HalfCheetah 2x3 (``agent_obsk=0``, no globals): 6 per agent, ``[qpos, qvel]`` of each of its
  3 joints, joints sorted by name (bfoot, bshin, bthigh / ffoot, fshin, fthigh).
  The state is ``env.state()``.

``legacy_actions`` (default: on for Ant with the ``omiga`` layout) routes actions the legacy MA-MuJoCo way: agent
``a`` drives actuators ``[a*k, (a+1)*k)``, instead of ``mamujoco_v1``'s ``act_ids`` routing (they differ for Ant only).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv

MAX_STEPS = 1000
LAYOUTS = ("mamujoco", "omiga", "omar")


@dataclass(frozen=True)
class Scenario:
    """Static facts of one ``mamujoco_v1`` scenario (checked against the real env by the tests)."""

    name: str
    agent_conf: str
    n_agents: int
    action_dim: int  # per agent (all agents alike in the supported scenarios)
    single_obs_dim: int  # Gymnasium *-v5 observation (= env.state())
    native_obs_dims: tuple[int, ...]  # mamujoco_v1 agent_obsk=1 per-agent observation sizes
    legacy_obs_dim: int  # the v2 single-agent observation used by OMIGA (Ant: 111)

    def obs_dim(self, layout: str) -> int:
        if layout == "mamujoco":
            return max(self.native_obs_dims)
        if layout == "omiga":
            return self.legacy_obs_dim + self.n_agents
        if layout == "omar":
            if (self.name, self.agent_conf) != ("HalfCheetah", "2x3"):
                raise ValueError("obs_layout='omar' exists for HalfCheetah 2x3 only (OMAR's MaMuJoCo task)")
            return 6
        raise ValueError(f"unknown obs_layout {layout!r}; choose one of {LAYOUTS}")

    def state_dim(self, layout: str) -> int:
        return self.obs_dim("omiga") if layout == "omiga" else self.single_obs_dim


SCENARIOS = {
    ("HalfCheetah", "2x3"): Scenario("HalfCheetah", "2x3", 2, 3, 17, (12, 12), 17),
    ("HalfCheetah", "6x1"): Scenario("HalfCheetah", "6x1", 6, 1, 17, (9, 9, 8, 9, 9, 8), 17),  # OMIGA's HalfCheetah
    ("Hopper", "3x1"): Scenario("Hopper", "3x1", 3, 1, 11, (8, 9, 8), 11),
    ("Ant", "2x4"): Scenario("Ant", "2x4", 2, 4, 105, (63, 63), 111),
}


def get_scenario(name: str, agent_conf: str) -> Scenario:
    try:
        return SCENARIOS[(name, agent_conf)]
    except KeyError:
        raise ValueError(f"unsupported MaMuJoCo scenario {name} {agent_conf}; supported: "
                         f"{', '.join(f'{s} {c}' for s, c in SCENARIOS)}") from None


def _mamujoco():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from gymnasium_robotics import mamujoco_v1
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("MaMuJoCo needs gymnasium-robotics (MuJoCo ships in its wheel): "
                          "pip install 'macflow[mamujoco]' (or pip install gymnasium-robotics)") from err
    return mamujoco_v1


def omiga_observation(single_obs: np.ndarray, n_agents: int) -> np.ndarray:
    """OMIGA's per-agent input ``[N, D + N]``: ``z(concat(obs, onehot(i)))``, z-scored per vector (population std)."""
    x = np.concatenate([np.broadcast_to(single_obs, (n_agents, len(single_obs))), np.eye(n_agents)], axis=1)
    mean, std = x.mean(1, keepdims=True), x.std(1, keepdims=True)
    return ((x - mean) / std).astype(np.float32)


def omiga_raw_observation(z: np.ndarray, n_agents: int, agent: int = 0) -> np.ndarray:
    """Invert :func:`omiga_observation` from one agent's vector ``[D + N]`` (N >= 2): the raw observation ``[D]``."""
    d = z.shape[-1] - n_agents
    z1, z0 = z[..., d + agent], z[..., d + (agent + 1) % n_agents]
    std = 1.0 / (z1 - z0)
    mean = -z0 * std
    return z[..., :d] * std[..., None] + mean[..., None] if z.ndim > 1 else z[:d] * std + mean


class MaMuJoCoEpisode:
    """One ``mamujoco_v1`` episode with an observation layout.

    ``reset(seed) -> (obs [N, O], state [S], single_obs [D])``; ``step(actions [N, A] in [-1, 1]) -> (obs, state,
    single_obs, reward, terminated, truncated)``; ``step_global(a [N*A])`` drives the single-agent action vector
    (behaviour policies acting on ``single_obs``).
    """

    def __init__(self, scenario: str = "HalfCheetah", agent_conf: str = "2x3", obs_layout: str = "mamujoco",
                 legacy_actions: bool | None = None, max_steps: int = MAX_STEPS) -> None:
        self.spec = get_scenario(scenario, agent_conf)
        self.layout = obs_layout
        self.obs_dim = self.spec.obs_dim(obs_layout)
        kwargs = dict(agent_obsk=0, global_categories=()) if obs_layout == "omar" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = _mamujoco().parallel_env(scenario, agent_conf, max_episode_steps=max_steps, **kwargs)
        self.names = list(self.env.possible_agents)
        spaces = [self.env.action_space(a) for a in self.names]
        self.low = np.stack([s.low for s in spaces]).astype(np.float64)
        self.high = np.stack([s.high for s in spaces]).astype(np.float64)
        self.legacy = (scenario == "Ant" and obs_layout == "omiga") if legacy_actions is None else legacy_actions
        self.single = self.env.unwrapped.single_agent_env.unwrapped

    def _observe(self, obs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        single = np.asarray(self.env.state(), dtype=np.float64)
        n = self.spec.n_agents
        if self.layout == "omiga":
            legacy = single if self.spec.name != "Ant" else np.concatenate([single[:27], np.zeros(84)])
            o = omiga_observation(legacy, n)
            return o, o[0].copy(), single.astype(np.float32)
        o = np.zeros((n, self.obs_dim), dtype=np.float32)
        for i, a in enumerate(self.names):
            o[i, :len(obs[a])] = obs[a]
        return o, single.astype(np.float32), single.astype(np.float32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs, _ = self.env.reset(seed=int(seed))
        return self._observe(obs)

    def step(self, actions: np.ndarray):
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        if a.shape != self.low.shape:
            raise ValueError(f"{self.spec.name} {self.spec.agent_conf} actions must be [N, A] = {list(self.low.shape)}"
                             f" in [-1, 1], got {list(a.shape)}")
        scaled = self.low + (a + 1.0) * 0.5 * (self.high - self.low)
        if self.legacy:  # agent a drives actuators [a*k, (a+1)*k): route through the global vector
            local = self.env.map_global_action_to_local_actions(scaled.reshape(-1))
        else:
            local = {name: scaled[i] for i, name in enumerate(self.names)}
        obs, rew, term, trunc, _ = self.env.step({k: np.asarray(v, dtype=np.float32) for k, v in local.items()})
        o, s, single = self._observe(obs)
        return o, s, single, float(rew[self.names[0]]), any(term.values()), any(trunc.values())

    def step_global(self, action: np.ndarray):
        """Step with a single-agent action vector in [-1, 1] (mapped to agents by ``mamujoco_v1``'s routing)."""
        actions = self.global_to_local(action)
        return (actions,) + self.step(actions)

    def global_to_local(self, action: np.ndarray) -> np.ndarray:
        """Single-agent action ``[N*A]`` -> agents' actions ``[N, A]`` under this episode's routing."""
        if self.legacy:
            return np.asarray(action, dtype=np.float32).reshape(self.low.shape)
        local = self.env.map_global_action_to_local_actions(np.asarray(action, dtype=np.float32))
        return np.stack([local[a] for a in self.names])

    def close(self) -> None:
        self.env.close()


class MaMuJoCoEnv(MultiAgentEnv):
    """E MaMuJoCo episodes stepped together; one policy call per step for all of them.

    Args:
        seeds: one reset seed per episode.
        scenario, agent_conf, obs_layout, legacy_actions: see :class:`MaMuJoCoEpisode`.
        max_steps: time limit (1000).
    """

    def __init__(self, seeds: Sequence[int], scenario: str = "HalfCheetah", agent_conf: str = "2x3",
                 obs_layout: str = "mamujoco", legacy_actions: bool | None = None, max_steps: int = MAX_STEPS) -> None:
        self.seeds, self.n_episodes, self.max_steps = [int(s) for s in seeds], len(seeds), max_steps
        self.episodes = [MaMuJoCoEpisode(scenario, agent_conf, obs_layout, legacy_actions, max_steps)
                         for _ in self.seeds]
        self.done = np.zeros(self.n_episodes, dtype=bool)
        self.obs: np.ndarray | None = None

    def reset(self) -> EnvStep:
        self.obs = np.stack([ep.reset(s)[0] for ep, s in zip(self.episodes, self.seeds)])
        self.done[:] = False
        return EnvStep(torch.from_numpy(self.obs.copy()), torch.zeros(self.n_episodes),
                       torch.zeros(self.n_episodes, dtype=torch.bool))

    def step(self, actions: Tensor) -> EnvStep:
        a = actions.detach().cpu().numpy()
        rewards = np.zeros(self.n_episodes, dtype=np.float32)
        for e, ep in enumerate(self.episodes):
            if self.done[e]:
                continue
            o, _, _, r, term, trunc = ep.step(a[e])
            self.obs[e], rewards[e], self.done[e] = o, r, term or trunc
        return EnvStep(torch.from_numpy(self.obs.copy()), torch.from_numpy(rewards), torch.from_numpy(self.done.copy()))

    def close(self) -> None:
        for ep in self.episodes:
            ep.close()
