"""MPE simple_spread (cooperative navigation) on mpe2: batched evaluation env, generated datasets, public OMAR data.

Environment: ``mpe2.simple_spread_v3.parallel_env(N, continuous_actions=True, max_cycles=25)``. Agents act with
the OMAR convention, a 2-D force ``u in [-1, 1]^2``, mapped onto mpe2's 5-dim action
``[0, max(-u_x, 0), max(u_x, 0), max(-u_y, 0), max(u_y, 0)]``. The team reward of a step is the mean over agents
of the per-agent rewards, so the return is ``sum_t mean_i r_{t,i}``. Episodes end by the time limit (truncation:
they bootstrap). Two options make the env match the public OMAR data (datasets.md §5.3):

* ``physics="omar"``: OpenAI/OMAR integration order (velocity first, then position with the new velocity);
  simple_spread has no ``accel``, so OMAR's double acceleration does not apply.
* ``reward="omar"``: OMAR's modified reward ``sum_l min(1 / min_dist_l, 10) - 5 * collisions_i`` per agent.

Datasets (``quality``) are generated from the simulator in ``prepare_data()`` and cached atomically under
``cache_dir`` with a JSON manifest that names everything needed to regenerate them bit-for-bit:
``random`` (uniform forces), ``medium`` (expert + Gaussian force noise), ``expert`` (scripted, multimodal: a random
near-optimal landmark assignment per episode, stored as the episode's ``mode``) and ``medium-replay`` (noise
annealed from random-like to medium over the episodes, like a learning agent's replay buffer). The normalised
score uses references simulated with the random and expert policies in the same env, stored with the data.
``source="omar"`` / ``"vault"`` read public OMAR npy folders / OG-MARL vaults of the OMAR data instead.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from macflow.datamodules.augment import BatchTransform, d4_augment
from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.env import EnvStep, MultiAgentEnv
from macflow.datamodules.mpe_policies import ExpertPolicy, NoisyExpertPolicy, RandomPolicy
from macflow.datamodules.transitions import TransitionData, _atomic_write

QUALITIES = ("random", "medium", "expert", "medium-replay")
DEFAULT_EPISODES = {"random": 2000, "medium": 2000, "expert": 2000, "medium-replay": 400}
"""Default episodes per quality (50k transitions; the public OMAR sets have 40k episodes, medium-replay 3.9k):
quick to generate on one core; pass ``n_episodes=40000`` for OMAR-sized data."""
MEDIUM_SIGMA = 1.7
"""Force-noise std of the medium policy (≈ 50 % normalised on 300 episodes; each manifest stores its own score)."""
REPLAY_SIGMA_START = 4.0
"""Force-noise std at the start of medium-replay (nearly random play), annealed linearly to ``MEDIUM_SIGMA``."""
FORMAT_VERSION = 1


def obs_dim_for(n_agents: int) -> int:
    """``[vel 2, pos 2, landmark_rel 2N, other_rel 2(N-1), comm 2(N-1)]``."""
    return 4 + 2 * n_agents + 4 * (n_agents - 1)


def to_mpe2_action(u: np.ndarray) -> np.ndarray:
    """OMAR 2-D forces ``[..., 2]`` in [-1, 1] -> mpe2 continuous actions ``[..., 5]`` in [0, 1]."""
    u = np.clip(np.asarray(u, dtype=np.float32), -1.0, 1.0)
    zero = np.zeros(u.shape[:-1] + (1,), dtype=np.float32)
    return np.concatenate([zero, np.maximum(-u[..., :1], 0), np.maximum(u[..., :1], 0),
                           np.maximum(-u[..., 1:], 0), np.maximum(u[..., 1:], 0)], axis=-1)


def _omar_integrate_state(self, p_force) -> None:
    """OpenAI/OMAR ``integrate_state``: damp, add force, clip speed, *then* move with the new velocity."""
    for i, entity in enumerate(self.entities):
        if not entity.movable:
            continue
        entity.state.p_vel = entity.state.p_vel * (1 - self.damping)
        if p_force[i] is not None:
            entity.state.p_vel = entity.state.p_vel + (p_force[i] / entity.mass) * self.dt
        if entity.max_speed is not None:
            speed = np.sqrt(np.square(entity.state.p_vel[0]) + np.square(entity.state.p_vel[1]))
            if speed > entity.max_speed:
                entity.state.p_vel = entity.state.p_vel / speed * entity.max_speed
        entity.state.p_pos = entity.state.p_pos + entity.state.p_vel * self.dt


def omar_rewards(world) -> np.ndarray:
    """OMAR's simple_spread reward per agent ``[N]``: ``sum_l min(1 / min_dist_l, 10) - 5 * collisions_i``."""
    agents = np.stack([a.state.p_pos for a in world.agents])  # [N, 2]
    marks = np.stack([lm.state.p_pos for lm in world.landmarks])  # [L, 2]
    min_dist = np.linalg.norm(marks[:, None] - agents[None], axis=-1).min(1)  # [L]
    cover = np.minimum(1.0 / np.maximum(min_dist, 1e-12), 10.0).sum()
    sizes = np.array([a.size for a in world.agents])
    d = np.linalg.norm(agents[:, None] - agents[None], axis=-1)
    hit = (d < sizes[:, None] + sizes[None]) & ~np.eye(len(agents), dtype=bool)
    return cover - 5.0 * hit.sum(1)


class SpreadEpisode:
    """One mpe2 simple_spread episode through the PettingZoo parallel API, with the OMAR options.

    ``reset(seed) -> obs [N, O]``; ``step(u [N, 2]) -> (obs [N, O], team reward, done)``; ``positions()`` gives
    ``(agents [N, 2], landmarks [N, 2])`` for figures.
    """

    def __init__(self, n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2", reward: str = "mpe2") -> None:
        try:
            from mpe2 import simple_spread_v3
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("MPE needs mpe2: pip install 'macflow[mpe]'") from err
        if physics not in ("mpe2", "omar") or reward not in ("mpe2", "omar"):
            raise ValueError(f"physics and reward must be 'mpe2' or 'omar', got {physics!r}, {reward!r}")
        self.env = simple_spread_v3.parallel_env(N=n_agents, max_cycles=max_cycles, continuous_actions=True)
        self.world = self.env.unwrapped.world
        if physics == "omar":
            self.world.integrate_state = types.MethodType(_omar_integrate_state, self.world)
        self.n_agents, self.reward = n_agents, reward
        self.names = [f"agent_{i}" for i in range(n_agents)]

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(seed))
        return np.stack([obs[a] for a in self.names]).astype(np.float32)

    def step(self, u: np.ndarray) -> tuple[np.ndarray, float, bool]:
        act = to_mpe2_action(u)
        obs, rew, term, trunc, _ = self.env.step({a: act[i] for i, a in enumerate(self.names)})
        if self.reward == "omar":
            team = float(omar_rewards(self.world).mean())
        else:
            team = float(np.mean([rew[a] for a in self.names]))
        done = any(term.values()) or any(trunc.values())
        return np.stack([obs[a] for a in self.names]).astype(np.float32), team, done

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([a.state.p_pos for a in self.world.agents]).copy(),
                np.stack([lm.state.p_pos for lm in self.world.landmarks]).copy())

    def close(self) -> None:
        self.env.close()


class MPESpreadEnv(MultiAgentEnv):
    """E simple_spread episodes stepped together (one policy call per step for all episodes and agents).

    Args:
        seeds: one reset seed per episode.
        record: keep agent and landmark positions of every step (``trajectories()``) for figures.
        n_agents, max_cycles, physics, reward: see :class:`SpreadEpisode`.
    """

    def __init__(self, seeds: Sequence[int], n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2",
                 reward: str = "mpe2", record: bool = False) -> None:
        self.seeds, self.n_episodes, self.max_steps = [int(s) for s in seeds], len(seeds), max_cycles
        self.episodes = [SpreadEpisode(n_agents, max_cycles, physics, reward) for _ in self.seeds]
        self.record = record
        self.done = np.zeros(self.n_episodes, dtype=bool)
        self.obs: np.ndarray | None = None
        self._agents: list[list[np.ndarray]] = []
        self._landmarks: list[np.ndarray] = []

    def _snapshot(self) -> None:
        if self.record:
            pos = [ep.positions() for ep in self.episodes]
            self._agents.append([p[0] for p in pos])
            if not self._landmarks:
                self._landmarks = [p[1] for p in pos]

    def reset(self) -> EnvStep:
        self.obs = np.stack([ep.reset(s) for ep, s in zip(self.episodes, self.seeds)])
        self.done[:] = False
        self._agents, self._landmarks = [], []
        self._snapshot()
        return EnvStep(torch.from_numpy(self.obs), torch.zeros(self.n_episodes),
                       torch.zeros(self.n_episodes, dtype=torch.bool))

    def step(self, actions: Tensor) -> EnvStep:
        if actions.shape[1:] != (self.episodes[0].n_agents, 2):
            raise ValueError(f"MPE actions must be [E, N, 2] forces in [-1, 1], got {list(actions.shape)}")
        u = actions.detach().cpu().numpy()
        rewards = np.zeros(self.n_episodes, dtype=np.float32)
        for e, ep in enumerate(self.episodes):
            if self.done[e]:
                continue
            self.obs[e], rewards[e], self.done[e] = ep.step(u[e])
        self._snapshot()
        return EnvStep(torch.from_numpy(self.obs.copy()), torch.from_numpy(rewards), torch.from_numpy(self.done.copy()))

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """Recorded ``(agents [E, T+1, N, 2], landmarks [E, N, 2])`` (needs ``record=True``)."""
        return np.stack(self._agents, 1), np.stack(self._landmarks)

    def close(self) -> None:
        for ep in self.episodes:
            ep.close()


# ------------------------------------------------------------------------------------------------ generation
def behaviour_policy(quality: str, n_agents: int, n_episodes: int, expert_tol: float, medium_sigma: float):
    """``policy_for(episode) -> policy`` and a JSON description of the behaviour of ``quality``."""
    if quality == "random":
        pol = RandomPolicy(n_agents)
        return (lambda e: pol), {"policy": "uniform random force in [-1,1]^2"}
    if quality == "expert":
        pol = ExpertPolicy(n_agents, tol=expert_tol)
        return (lambda e: pol), {"policy": "scripted PD expert", "kp": pol.kp, "kd": pol.kd,
                                 "assignment": "uniform among assignments within tol of the min total distance",
                                 "tol": expert_tol}
    if quality == "medium":
        pol = NoisyExpertPolicy(n_agents, medium_sigma, tol=expert_tol)
        return (lambda e: pol), {"policy": "scripted PD expert + Gaussian force noise", "sigma": medium_sigma,
                                 "tol": expert_tol}
    if quality == "medium-replay":
        def policy_for(e: int) -> NoisyExpertPolicy:
            frac = e / max(n_episodes - 1, 1)
            return NoisyExpertPolicy(n_agents, REPLAY_SIGMA_START + frac * (medium_sigma - REPLAY_SIGMA_START),
                                     tol=expert_tol)
        return policy_for, {"policy": "scripted PD expert + Gaussian force noise annealed over episodes",
                            "sigma_start": REPLAY_SIGMA_START, "sigma_end": medium_sigma, "tol": expert_tol}
    raise ValueError(f"unknown MPE quality {quality!r}; choose one of {QUALITIES}")


def episode_seed(tag: int, data_seed: int, episode: int) -> tuple[int, np.random.Generator]:
    """Env reset seed and policy RNG of one generated episode (independent streams from one SeedSequence)."""
    ss = np.random.SeedSequence([tag, data_seed, episode])
    env_ss, pol_ss = ss.spawn(2)
    return int(env_ss.generate_state(1)[0]), np.random.default_rng(pol_ss)


def run_episode(sim: SpreadEpisode, policy, seed: int, rng: np.random.Generator) -> dict:
    """One episode: ``obs [L+1, N, O]``, ``actions [L, N, 2]``, ``rewards [L]``, ``terminated``, ``mode`` (the
    assignment picked at the start; -1 for random play) and ``final_mode`` (the one followed at the end)."""
    obs = [sim.reset(seed)]
    policy.reset(obs[0], rng)
    mode = policy.mode  # the assignment the episode picked at random (the expert may re-plan later)
    actions, rewards, done = [], [], False
    while not done:
        u = np.clip(policy(obs[-1], rng), -1.0, 1.0).astype(np.float32)
        o, r, done = sim.step(u)
        obs.append(o)
        actions.append(u)
        rewards.append(r)
    return {"obs": np.stack(obs), "actions": np.stack(actions), "rewards": np.asarray(rewards, np.float32),
            "terminated": False, "mode": mode, "final_mode": policy.mode}


QUALITY_TAGS = {"random": 11, "medium": 12, "expert": 13, "medium-replay": 14, "reference": 99}


def generate(quality: str, n_episodes: int, data_seed: int, n_agents: int = 3, max_cycles: int = 25,
             physics: str = "mpe2", reward: str = "mpe2", expert_tol: float = 0.25,
             medium_sigma: float = MEDIUM_SIGMA) -> tuple[list[dict], dict]:
    """Generate ``n_episodes`` of ``quality`` with the real simulator; returns the episodes and the behaviour."""
    policy_for, behaviour = behaviour_policy(quality, n_agents, n_episodes, expert_tol, medium_sigma)
    sim = SpreadEpisode(n_agents, max_cycles, physics, reward)
    episodes = []
    for e in range(n_episodes):
        seed, rng = episode_seed(QUALITY_TAGS[quality], data_seed, e)
        episodes.append(run_episode(sim, policy_for(e), seed, rng))
    sim.close()
    return episodes, behaviour


def reference_returns(n_episodes: int, n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2",
                      reward: str = "mpe2", expert_tol: float = 0.25) -> dict:
    """Mean returns of the random and the expert policy on the same ``n_episodes`` reference seeds."""
    sim = SpreadEpisode(n_agents, max_cycles, physics, reward)
    out = {"n_episodes": n_episodes}
    for name, pol in (("random", RandomPolicy(n_agents)), ("expert", ExpertPolicy(n_agents, tol=expert_tol))):
        returns = []
        for e in range(n_episodes):
            seed, rng = episode_seed(QUALITY_TAGS["reference"], 0, e)
            returns.append(float(run_episode(sim, pol, seed, rng)["rewards"].sum()))
        out[name] = float(np.mean(returns))
    sim.close()
    return out


# ---------------------------------------------------------------------------------------------- datamodule
class MPEDataModule(OfflineMARLDataModule):
    """MPE simple_spread offline data (generated, or public OMAR data) with mpe2 rollout evaluation.

    Args:
        quality: ``random``, ``medium``, ``expert`` or ``medium-replay`` (generated data).
        n_agents: agents and landmarks (3 in OMAR).
        max_cycles: episode length (25).
        physics: ``mpe2`` (plain mpe2) or ``omar`` (the integration order that recorded the OMAR data).
        reward: ``mpe2`` (native) or ``omar`` (OMAR's modified reward; use it with OMAR data).
        n_episodes: generated episodes; ``null`` = the per-quality default (``DEFAULT_EPISODES``).
        expert_tol: total-distance tolerance defining the expert's near-optimal landmark assignments.
        medium_sigma: force-noise std of the medium policy (end point of medium-replay).
        source: ``generated``, ``omar`` (an OMAR npy ``seed_<k>_data`` folder at ``path``) or ``vault`` (an OG-MARL
            vault quality folder at ``path``, e.g. ``.../omar/mpe/simple_spread.vlt/Expert``).
        path: folder of the public data when ``source`` is ``omar`` or ``vault``.
        vault_rows: which batch rows (OMAR seeds) of the vault to use; ``null`` = all.
        cache_dir: where generated datasets and references are cached (git-ignored ``data_cache/`` by default).
        n_reference_episodes: episodes simulated for the random / expert references of the normalised score.
        data_seed: seed of the generated data and of the batch sampler.
        batch_size, n_eval_episodes, eval_batch_size: see :class:`OfflineMARLDataModule`.
        augment: ``none`` or ``d4``: turn every training transition by a random symmetry of the square
            (:func:`~macflow.datamodules.augment.d4_augment`; simple_spread is invariant under them).
    """

    def __init__(self, quality: Literal["random", "medium", "expert", "medium-replay"] = "expert",
                 n_agents: int = 3, max_cycles: int = 25, physics: Literal["mpe2", "omar"] = "mpe2",
                 reward: Literal["mpe2", "omar"] = "mpe2", n_episodes: int | None = None, expert_tol: float = 0.25,
                 medium_sigma: float = MEDIUM_SIGMA, source: Literal["generated", "omar", "vault"] = "generated",
                 path: str | None = None, vault_rows: list[int] | None = None, cache_dir: str = "data_cache",
                 n_reference_episodes: int = 200, batch_size: int = 256, n_eval_episodes: int = 50,
                 eval_batch_size: int = 50, data_seed: int = 0, augment: Literal["none", "d4"] = "none") -> None:
        super().__init__(batch_size, n_eval_episodes, eval_batch_size, data_seed)
        self.save_hyperparameters()
        if quality not in QUALITIES:
            raise ValueError(f"unknown MPE quality {quality!r}; choose one of {QUALITIES}")
        if source != "generated" and path is None:
            raise ValueError(f"source={source!r} needs data.init_args.path (the downloaded dataset folder)")
        if augment not in ("none", "d4"):
            raise ValueError(f"unknown augment {augment!r}; choose 'none' or 'd4'")
        self.n_agents, self.obs_dim, self.action_dim, self.state_dim = n_agents, obs_dim_for(n_agents), 2, 0
        self.discrete = False
        self.n_episodes = n_episodes or DEFAULT_EPISODES[quality]
        self.references: dict | None = None
        self.episode_modes: np.ndarray | None = None

    # ----------------------------------------------------------------------------------- cache paths
    @property
    def env_tag(self) -> str:
        h = self.hparams
        return f"simple_spread_N{h.n_agents}_T{h.max_cycles}_{h.physics}-physics_{h.reward}-reward"

    def dataset_path(self) -> Path:
        h = self.hparams
        name = f"{self.env_tag}_{h.quality}_ep{self.n_episodes}_seed{h.data_seed}"
        if h.expert_tol != 0.25 or h.medium_sigma != MEDIUM_SIGMA:
            name += f"_tol{h.expert_tol:g}_sigma{h.medium_sigma:g}"
        return Path(h.cache_dir) / "mpe" / f"{name}.npz"

    def references_path(self) -> Path:
        h = self.hparams
        name = f"{self.env_tag}_references_n{h.n_reference_episodes}_tol{h.expert_tol:g}.json"
        return Path(h.cache_dir) / "mpe" / name

    # ------------------------------------------------------------------------------------ lightning
    def prepare_data(self) -> None:
        """Simulate the normalised-score references and (for generated data) the dataset, unless cached."""
        h = self.hparams
        ref_path = self.references_path()
        if not ref_path.exists():
            ref_path.parent.mkdir(parents=True, exist_ok=True)
            refs = reference_returns(h.n_reference_episodes, h.n_agents, h.max_cycles, h.physics, h.reward,
                                     h.expert_tol)
            _atomic_write(ref_path, lambda f: f.write(json.dumps(refs, indent=2).encode()))
        path = self.dataset_path()
        if h.source != "generated" or path.exists():
            return
        episodes, behaviour = generate(h.quality, self.n_episodes, h.data_seed, h.n_agents, h.max_cycles,
                                       h.physics, h.reward, h.expert_tol, h.medium_sigma)
        returns = np.array([ep["rewards"].sum() for ep in episodes])
        refs = json.loads(ref_path.read_text())
        import mpe2

        manifest = {
            "format_version": FORMAT_VERSION, "generator": "macflow.datamodules.mpe.generate",
            "env": {"name": "mpe2.simple_spread_v3", "mpe2_version": getattr(mpe2, "__version__", "unknown"),
                    "n_agents": h.n_agents, "max_cycles": h.max_cycles, "physics": h.physics, "reward": h.reward},
            "quality": h.quality, "behaviour": behaviour, "data_seed": h.data_seed, "episodes": self.n_episodes,
            "transitions": int(sum(len(ep["actions"]) for ep in episodes)),
            "mean_return": float(returns.mean()), "std_return": float(returns.std()),
            "references": refs,
            "normalized_mean_return": float((returns.mean() - refs["random"]) / (refs["expert"] - refs["random"])),
            "regenerate": (f"MPEDataModule(quality={h.quality!r}, n_agents={h.n_agents}, n_episodes={self.n_episodes}"
                           f", physics={h.physics!r}, reward={h.reward!r}, expert_tol={h.expert_tol}, "
                           f"medium_sigma={h.medium_sigma}, data_seed={h.data_seed}).prepare_data()"),
        }
        modes = np.array([ep["mode"] for ep in episodes], dtype=np.int64)
        if h.quality == "expert":
            final = np.array([ep["final_mode"] for ep in episodes])
            manifest["modes"] = {"file": path.with_suffix(".modes.npy").name,
                                 "meaning": "episode -> assignment picked at random at the start, as an index in "
                                            "itertools.permutations(range(N)) (agent i's landmark is perm[i])",
                                 "counts": np.bincount(modes, minlength=1).tolist(),
                                 "replanned_episodes": int((final != modes).sum())}
        # the side file first, the .npz last: a complete .npz means a complete dataset
        _atomic_write(path.with_suffix(".modes.npy"), lambda f: np.save(f, modes))
        TransitionData.from_episodes(episodes).save(path, manifest)

    def build_data(self) -> TransitionData:
        h = self.hparams
        ref_path = self.references_path()
        if not ref_path.exists():
            raise FileNotFoundError(f"{ref_path} not found: call the datamodule's prepare_data() first "
                                    "(Trainer.fit does it)")
        self.references = json.loads(ref_path.read_text())
        if h.source == "omar":
            from macflow.datamodules.omar import read_omar

            return read_omar(h.path, n_agents=h.n_agents, episode_length=h.max_cycles)
        if h.source == "vault":
            from macflow.datamodules.vault import read_vault_transitions

            return read_vault_transitions(h.path, rows=h.vault_rows, terminals_are_timeouts=True,
                                          state_key=None)
        return self.load_cached(self.dataset_path())

    def batch_transform(self) -> BatchTransform | None:
        return d4_augment if self.hparams.augment == "d4" else None

    def manifest(self) -> dict:
        """The generated dataset's manifest (behaviour, seed, episodes, mean return, references)."""
        return TransitionData.load_manifest(self.dataset_path())

    def make_env(self, seeds: list[int], record: bool = False) -> MPESpreadEnv:
        h = self.hparams
        return MPESpreadEnv(seeds, h.n_agents, h.max_cycles, h.physics, h.reward, record=record)

    def normalized_score(self, returns: Tensor) -> Tensor | None:
        if self.references is None:
            if not self.references_path().exists():
                return None
            self.references = json.loads(self.references_path().read_text())
        r, e = self.references["random"], self.references["expert"]
        return (returns - r) / (e - r)
