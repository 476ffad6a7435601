"""SMAX (jaxmarl's JAX StarCraft-like micromanagement) on CPU: the jitted simulator core and E episodes batched.

Environment: ``jaxmarl.environments.smax.HeuristicEnemySMAX(scenario=map_name_to_scenario(map_name))``; the enemy
team is jaxmarl's built-in "closest" heuristic, the allies are the agents. jaxmarl and jax are imported when a
simulator is first made (``pip install 'macflow[smax]'``). Discrete actions per ally: 0-3 move (up, right, down,
left), 4 stop, ``5 + j`` attack enemy j; the legal set comes from ``get_avail_actions`` (a dead ally may only stop).
The team reward is the enemy health lost (normalised so that killing every enemy sums to 1) plus 1 for a win.
Episodes end when a team is dead (termination) or after ``max_steps`` = 100 steps (truncation: bootstraps).

Episode ``seed`` is reset with ``jax.random.PRNGKey(seed)`` split into a reset key and a step key; step t uses
``fold_in(step_key, t)``, so an episode is the same whatever batch it runs in. :class:`SMAXSim` holds the pure
per-episode functions (for :mod:`macflow.datagen.smax`, which scans whole episodes) and their jitted, vmapped
batch forms (for :class:`SMAXEnv`); one is cached per map, so a map compiles once per process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv

MAP_UNITS = {"3m": (3, 3), "8m": (8, 8), "25m": (25, 25), "2s3z": (5, 5), "3s5z": (8, 8), "5m_vs_6m": (5, 6),
             "10m_vs_11m": (10, 11), "27m_vs_30m": (27, 30), "3s5z_vs_3s6z": (8, 9), "3s_vs_5z": (3, 5),
             "6h_vs_8z": (6, 8), "smacv2_5_units": (5, 5), "smacv2_10_units": (10, 10),
             "smacv2_20_units": (20, 20)}
"""``(allies, enemies)`` of jaxmarl 0.2.0's SMAX maps; the ``smacv2_*`` maps draw unit types and start positions
per episode (SMACv2-style)."""
N_MOVE_ACTIONS = 5
"""Four moves and stop; attack actions follow."""
STOP = 4
MOVE_VECTORS = ((0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0))
"""Direction of move actions 0-3 on the map (up, right, down, left)."""
UNIT_FEATURES, OWN_FEATURES, STATE_FEATURES = 13, 10, 12
"""Features per observed unit, of an ally's own unit, and per unit in the world state (6 unit-type bits each)."""


class SMAXDims(NamedTuple):
    n_agents: int
    obs_dim: int
    state_dim: int
    action_dim: int
    n_enemies: int


def dims_for(map_name: str) -> SMAXDims:
    """Dims of a map (no jaxmarl needed for the maps of ``MAP_UNITS``): unit-list observations and world state."""
    if map_name not in MAP_UNITS:
        raise ValueError(f"unknown SMAX map {map_name!r}; choose one of {', '.join(MAP_UNITS)}")
    allies, enemies = MAP_UNITS[map_name]
    return SMAXDims(allies, UNIT_FEATURES * (allies - 1 + enemies) + OWN_FEATURES,
                    STATE_FEATURES * (allies + enemies), N_MOVE_ACTIONS + enemies, enemies)


JAX_CACHE = Path.home() / ".cache" / "macflow" / "jax"
"""JAX's persistent compilation cache, unless ``JAX_COMPILATION_CACHE_DIR`` names another: a map's step compiles
once per machine instead of once per process."""


@contextlib.contextmanager
def _silent_stdout():
    """Send file descriptor 1 to /dev/null (jaxmarl prints on import, past ``sys.stdout``)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        for stream in {sys.stdout, sys.__stdout__} - {None}:
            stream.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def import_jaxmarl():
    """``(jax, jax.numpy, smax module)`` with JAX on CPU, or an ImportError that names the extra to install."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # torch owns any accelerator; JAX would preallocate its memory
    try:
        with _silent_stdout():
            import jax
            import jax.numpy as jnp
            from jaxmarl.environments import smax
    except ImportError as err:
        raise ImportError(f"SMAX needs jaxmarl and jax ({err.name} is missing): pip install 'macflow[smax]'") from err
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ and jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(JAX_CACHE))
    return jax, jnp, smax


class Observation(NamedTuple):
    """What the allies see in one episode (or ``[E, ...]`` batched)."""

    obs: object  # [N, O] float32
    state: object  # [S] float32 world state
    legal: object  # [N, A] bool


class Outcome(NamedTuple):
    """One step's result in one episode (or ``[E]`` batched)."""

    reward: object  # team reward
    done: object  # episode over (terminated or time limit)
    terminated: object  # a team is dead (no bootstrap)
    won: object  # every enemy dead and an ally alive


class SMAXSim:
    """jaxmarl's ``HeuristicEnemySMAX`` on one map as pure per-episode functions plus jitted batch forms.

    Per episode: ``reset(key) -> (env_state, Observation)``; ``step(key, env_state, actions [N] int) ->
    (env_state, Observation, Outcome)``; ``keys(seed) -> (reset_key, step_key)``. Batched (jitted, vmapped over
    E): ``batch_reset(reset_keys [E]) -> (env_state, Observation)``; ``batch_step(step_keys [E], t, env_state,
    actions [E, N], done [E]) -> (env_state, Observation, Outcome)``, which leaves finished episodes as they are
    (reward 0).
    """

    def __init__(self, map_name: str) -> None:
        jax, jnp, smax = import_jaxmarl()
        self.jax, self.jnp, self.map_name = jax, jnp, map_name
        self.dims = dims_for(map_name)
        self.env = smax.HeuristicEnemySMAX(scenario=smax.map_name_to_scenario(map_name))
        self.max_steps = int(self.env.max_steps)
        self.agents = list(self.env.agents)
        got = (self.env.num_allies, self.env.observation_space(self.agents[0]).shape[0],
               int(self.env.state_size), self.env.action_space(self.agents[0]).n)
        if got != self.dims[:4]:
            raise RuntimeError(f"jaxmarl's {map_name} has dims {got}, macflow expects {self.dims[:4]}: a jaxmarl "
                               "version macflow does not know (tested with 0.2.0)")
        self.batch_reset = jax.jit(jax.vmap(self.reset))
        self.batch_step = jax.jit(jax.vmap(self.step_unless_done, in_axes=(0, None, 0, 0, 0)))

    def keys(self, seed):
        """``(reset_key, step_key)`` of the episode with reset seed ``seed``."""
        reset_key, step_key = self.jax.random.split(self.jax.random.PRNGKey(seed))
        return reset_key, step_key

    def observe(self, env_state) -> Observation:
        """The allies' observations, the world state and the legal actions of ``env_state``."""
        jnp = self.jnp
        obs, avail = self.env.get_obs(env_state), self.env.get_avail_actions(env_state)
        return Observation(jnp.stack([obs[a] for a in self.agents]).astype(jnp.float32),
                           self.env.get_world_state(env_state).astype(jnp.float32),
                           jnp.stack([avail[a] for a in self.agents]).astype(bool))

    def reset(self, key):
        _, env_state = self.env.reset(key)
        return env_state, self.observe(env_state)

    def step(self, key, env_state, actions):
        _, env_state, rewards, dones, _ = self.env.step_env(
            key, env_state, {a: actions[i] for i, a in enumerate(self.agents)})
        alive = env_state.state.unit_alive
        allies_dead = ~alive[:self.dims.n_agents].any()
        enemies_dead = ~alive[self.dims.n_agents:].any()
        outcome = Outcome(rewards[self.agents[0]].astype(self.jnp.float32), dones["__all__"],
                          allies_dead | enemies_dead, enemies_dead & ~allies_dead)
        return env_state, self.observe(env_state), outcome

    def step_unless_done(self, step_key, t, env_state, actions, done):
        """:meth:`step` at time ``t``, or nothing when ``done`` (finished episodes stay frozen, reward 0)."""
        jax, jnp = self.jax, self.jnp
        new_state, _, outcome = self.step(jax.random.fold_in(step_key, t), env_state, actions)
        env_state = jax.tree.map(lambda old, new: jnp.where(done, old, new), env_state, new_state)
        outcome = Outcome(jnp.where(done, 0.0, outcome.reward), done | outcome.done,
                          ~done & outcome.terminated, ~done & outcome.won)
        return env_state, self.observe(env_state), outcome


@functools.cache
def smax_sim(map_name: str) -> SMAXSim:
    """The process-wide :class:`SMAXSim` of ``map_name`` (its jitted functions compile once)."""
    return SMAXSim(map_name)


def _torch(x, dtype=None) -> Tensor:
    t = torch.from_numpy(np.array(x))
    return t if dtype is None else t.to(dtype)


class SMAXEnv(MultiAgentEnv):
    """E SMAX episodes stepped together: one jitted, vmapped step for all episodes and agents.

    Actions are one-hot ``[E, N, A]``; an action outside the legal set of an unfinished episode raises (a policy
    must pick among ``EnvStep.legal``). Episode metric ``win_rate``: 1 where the episode was won.

    Args:
        seeds: one reset seed per episode.
        map_name: a SMAX map (``MAP_UNITS``), e.g. ``3m``, ``2s3z``, ``5m_vs_6m``, ``smacv2_5_units``.
    """

    def __init__(self, seeds: Sequence[int], map_name: str = "3m") -> None:
        self.seeds, self.n_episodes = [int(s) for s in seeds], len(seeds)
        self.sim = smax_sim(map_name)
        self.max_steps = self.sim.max_steps
        jax, jnp = self.sim.jax, self.sim.jnp
        reset_keys, self.step_keys = jax.vmap(self.sim.keys)(jnp.asarray(self.seeds, dtype=jnp.uint32))
        self.reset_keys = reset_keys
        self.env_state = None
        self.t = 0
        self.done = jnp.zeros(self.n_episodes, dtype=bool)
        dims = dims_for(map_name)
        self.legal = np.zeros((self.n_episodes, dims.n_agents, dims.action_dim), dtype=bool)
        self.won = np.zeros(self.n_episodes, dtype=bool)

    def _env_step(self, observation: Observation, rewards: Tensor, dones: Tensor) -> EnvStep:
        self.legal = np.array(observation.legal)
        return EnvStep(_torch(observation.obs), rewards, dones, torch.from_numpy(self.legal.copy()))

    def reset(self) -> EnvStep:
        jnp = self.sim.jnp
        self.env_state, observation = self.sim.batch_reset(self.reset_keys)
        self.t = 0
        self.done = jnp.zeros(self.n_episodes, dtype=bool)
        self.won[:] = False
        return self._env_step(observation, torch.zeros(self.n_episodes), torch.zeros(self.n_episodes, dtype=torch.bool))

    def step(self, actions: Tensor) -> EnvStep:
        n, a = self.legal.shape[1:]
        if actions.shape[1:] != (n, a):
            raise ValueError(f"SMAX {self.sim.map_name} actions must be one-hot [E, {n}, {a}], got {list(actions.shape)}")
        choice = actions.detach().cpu().argmax(-1).numpy()
        done = np.array(self.done)
        picked = np.take_along_axis(self.legal, choice[..., None], -1)[..., 0]
        bad = ~picked & ~done[:, None]
        if bad.any():
            e, i = np.argwhere(bad)[0]
            raise ValueError(f"illegal SMAX action {choice[e, i]} for agent {i} of episode {e} at step {self.t} "
                             f"(legal: {np.flatnonzero(self.legal[e, i]).tolist()}); pick among EnvStep.legal")
        jnp = self.sim.jnp
        self.env_state, observation, outcome = self.sim.batch_step(self.step_keys, self.t,
                                                                   self.env_state, jnp.asarray(choice), self.done)
        self.t += 1
        self.done = outcome.done
        self.won |= np.array(outcome.won)
        return self._env_step(observation, _torch(outcome.reward, torch.float32), _torch(outcome.done, torch.bool))

    def episode_metrics(self) -> dict[str, Tensor]:
        return {"win_rate": torch.from_numpy(self.won.astype(np.float64))}
