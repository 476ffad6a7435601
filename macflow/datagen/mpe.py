"""MPE simple_spread behaviour data: scripted behaviour policies run in the real simulator, seeded per episode.

Qualities: ``random`` (uniform forces), ``medium`` (expert + Gaussian force noise), ``expert`` (scripted,
multimodal: a random near-optimal landmark assignment per episode, stored as the episode's ``mode``) and
``medium-replay`` (noise annealed from random-like to medium over the episodes, like a learning agent's replay
buffer). :func:`generate_dataset` writes a dataset with a JSON manifest that names everything needed to regenerate
it bit-for-bit; :func:`reference_returns` simulates the random and expert references of the normalised score.
``MPEDataModule.prepare_data()`` and ``python -m macflow.datagen mpe`` call them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from macflow.datagen.mpe_policies import ExpertPolicy, NoisyExpertPolicy, RandomPolicy
from macflow.datagen.seeds import episode_seed
from macflow.envs.mpe import SpreadEpisode
from macflow.files import atomic_write
from macflow.transitions import TransitionData

QUALITIES = ("random", "medium", "expert", "medium-replay")
MEDIUM_SIGMA = 1.7
"""Force-noise std of the medium policy (set so that medium data scores about half way between random and expert; each manifest stores its own score)."""
REPLAY_SIGMA_START = 4.0
"""Force-noise std at the start of medium-replay (nearly random play), annealed linearly to ``MEDIUM_SIGMA``."""
FORMAT_VERSION = 1


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


def generate_dataset(path: str | Path, quality: str, n_episodes: int, data_seed: int, references: dict,
                     n_agents: int = 3, max_cycles: int = 25, physics: str = "mpe2", reward: str = "mpe2",
                     expert_tol: float = 0.25, medium_sigma: float = MEDIUM_SIGMA) -> dict:
    """Generate ``quality`` and save it atomically at ``path`` (``.npz`` + ``.json`` manifest + ``.modes.npy``);
    ``references`` (from :func:`reference_returns`) go into the manifest. Returns the manifest."""
    import mpe2

    path = Path(path)
    episodes, behaviour = generate(quality, n_episodes, data_seed, n_agents, max_cycles, physics, reward,
                                   expert_tol, medium_sigma)
    returns = np.array([ep["rewards"].sum() for ep in episodes])
    refs = references
    manifest = {
        "format_version": FORMAT_VERSION, "generator": "macflow.datagen.mpe.generate",
        "env": {"name": "mpe2.simple_spread_v3", "mpe2_version": getattr(mpe2, "__version__", "unknown"),
                "n_agents": n_agents, "max_cycles": max_cycles, "physics": physics, "reward": reward},
        "quality": quality, "behaviour": behaviour, "data_seed": data_seed, "episodes": n_episodes,
        "transitions": int(sum(len(ep["actions"]) for ep in episodes)),
        "mean_return": float(returns.mean()), "std_return": float(returns.std()),
        "references": refs,
        "normalized_mean_return": float((returns.mean() - refs["random"]) / (refs["expert"] - refs["random"])),
        "regenerate": (f"MPEDataModule(quality={quality!r}, n_agents={n_agents}, n_episodes={n_episodes}"
                       f", physics={physics!r}, reward={reward!r}, expert_tol={expert_tol}, "
                       f"medium_sigma={medium_sigma}, data_seed={data_seed}).prepare_data()"),
    }
    modes = np.array([ep["mode"] for ep in episodes], dtype=np.int64)
    if quality == "expert":
        final = np.array([ep["final_mode"] for ep in episodes])
        manifest["modes"] = {"file": path.with_suffix(".modes.npy").name,
                             "meaning": "episode -> assignment picked at random at the start, as an index in "
                                        "itertools.permutations(range(N)) (agent i's landmark is perm[i])",
                             "counts": np.bincount(modes, minlength=1).tolist(),
                             "replanned_episodes": int((final != modes).sum())}
    # the side file, then the .npz, then the manifest with their checksums: a matching manifest means complete
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path.with_suffix(".modes.npy"), lambda f: np.save(f, modes))
    TransitionData.from_episodes(episodes).save(path, manifest, side_files=[path.with_suffix(".modes.npy")])
    return manifest
