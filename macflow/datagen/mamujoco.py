"""MaMuJoCo behaviour data: train the behaviour policies (ARS, CPG gaits) from seeds, then collect each quality.

Qualities (all collected in the real ``mamujoco_v1`` env, one single-agent policy acting on ``env.state()``):

* ``random``: uniform actions.
* ``medium``: the ARS checkpoint whose evaluation return is closest to ``MEDIUM_FRACTION`` of the best one.
* ``expert``: the best ARS checkpoint and, for HalfCheetah, ``n_gaits`` CEM-tuned CPG gaits (round robin over
  episodes; the behaviour index is stored per episode as its ``mode``), so the expert is multimodal.
* ``medium-replay``: episodes from every ARS checkpoint up to the medium one, in training order (a learner's replay).
* ``medium-expert``: the medium and expert episodes together.

Trained behaviours are cached as JSON (small arrays) under ``cache_dir``; everything is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from macflow.datagen.ars import linear_from_checkpoint, train_ars
from macflow.datagen.cpg import cpg_from_result, tune_cpg
from macflow.datagen.policies import RandomPolicy
from macflow.datagen.seeds import episode_seed
from macflow.envs.mamujoco import MaMuJoCoEpisode, get_scenario
from macflow.files import atomic_write
from macflow.transitions import TransitionData

QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")
RESET_SEED_BOUND = 2**31
"""MaMuJoCo reset seeds stay below this (a signed 32-bit int, as the generated datasets have always used)."""
QUALITY_TAGS = {"random": 21, "medium": 22, "expert": 23, "medium-replay": 24}
MEDIUM_FRACTION = 0.5
ARS_VERSION, CPG_VERSION = 1, 2
"""Bumped when the training code changes, so cached behaviours are retrained."""
CPG_NOISE = 0.05
"""Action noise of CPG gaits (state coverage) during tuning and collection."""
FLIP_ANGLE = 1.5
"""HalfCheetah expert episodes whose torso pitch |rooty| exceeds this (rad) flipped over and are re-collected."""
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Budget:
    """How much behaviour training to do (the defaults fit the 30-minute, 2-core budget for all qualities)."""

    ars_iterations: int = 40
    ars_eval_every: int = 2
    ars_eval_episodes: int = 3
    ars_directions: int | None = None  # ARS directions per iteration / top directions kept; None = the paper's
    ars_top: int | None = None
    n_gaits: int = 2  # CPG gaits in the HalfCheetah expert (0 = ARS only)
    cpg_iterations: int = 25
    cpg_population: int = 16
    horizon: int = 1000  # training episode length (collection always uses the env's 1000-step limit)

    def key(self, part: str = "all") -> str:
        """Cache key of the ARS or the CPG part (each keyed by its own fields and code version)."""
        d = self.as_dict()
        if part == "ars":
            d = {k: v for k, v in d.items() if k.startswith("ars") or k == "horizon"} | {"version": ARS_VERSION}
        elif part == "cpg":
            d = {k: v for k, v in d.items() if k.startswith("cpg") or k in ("n_gaits", "horizon")} | \
                {"version": CPG_VERSION}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]

    def as_dict(self) -> dict:
        """Fields as stored in manifests; unset (None) ones are left out, so older keys and manifests stay valid."""
        return {k: v for k, v in asdict(self).items() if v is not None}


BUDGETS = {
    "default": Budget(),
    # Hopper: twice the paper's ARS directions (16, top 8) and no CPG gaits (docs/results_mamujoco.md says why)
    "hopper": Budget(ars_iterations=160, ars_eval_every=5, ars_directions=16, ars_top=8, n_gaits=0),
    "tiny": Budget(ars_iterations=2, ars_eval_every=1, ars_eval_episodes=1, n_gaits=1, cpg_iterations=1,
                   cpg_population=4, horizon=30),
}


def default_budget(scenario: str) -> str:
    return "hopper" if scenario == "Hopper" else "default"


def _cached(path: Path, make) -> dict:
    """The JSON cached at ``path``, or ``make()`` written there; an unreadable cache is made again (one warning)."""
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            warnings.warn(f"{path}: not valid JSON (an interrupted write?); training the behaviour again", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = make()
    atomic_write(path, lambda f: f.write(json.dumps(out).encode()))
    return out


def train_behaviours(scenario: str, agent_conf: str, seed: int, budget: Budget, cache_dir: str | Path,
                     progress: bool = True) -> dict:
    """ARS checkpoints and CPG gaits for ``seed`` (each cached as JSON; trained the first time)."""
    root = Path(cache_dir) / "mamujoco"

    def ars() -> dict:
        start = time.perf_counter()
        overrides = {k: v for k, v in (("n_directions", budget.ars_directions), ("top", budget.ars_top)) if v}
        ckpts = train_ars(scenario, seed, budget.ars_iterations, budget.ars_eval_every, budget.ars_eval_episodes,
                          budget.horizon, progress, **overrides)
        return {"ars": ckpts, "seconds": round(time.perf_counter() - start, 1)}

    def cpg() -> dict:
        start = time.perf_counter()
        gaits = [tune_cpg(scenario, 1000 * seed + g, budget.cpg_iterations, budget.cpg_population,
                          max(2, budget.cpg_population // 4), budget.horizon, progress, noise=CPG_NOISE)
                 for g in range(budget.n_gaits if scenario == "HalfCheetah" else 0)]
        return {"cpg": gaits, "seconds": round(time.perf_counter() - start, 1)}

    a = _cached(root / f"ars_{scenario}_{agent_conf}_seed{seed}_{budget.key('ars')}.json", ars)
    c = _cached(root / f"cpg_{scenario}_{agent_conf}_seed{seed}_{budget.key('cpg')}.json", cpg)
    return {"scenario": scenario, "agent_conf": agent_conf, "seed": seed, "budget": budget.as_dict(),
            "ars": a["ars"], "cpg": c["cpg"], "seconds": round(a["seconds"] + c["seconds"], 1)}


def select(behaviours: dict) -> dict:
    """Indices of the ARS checkpoints used: ``expert`` (best), ``medium``, ``replay`` (0 .. medium)."""
    rets = np.array([c["eval_return"] for c in behaviours["ars"]])
    expert = int(np.argmax(rets))
    target = MEDIUM_FRACTION * rets[expert]
    medium = int(np.argmin(np.abs(rets[: expert + 1] - target)))
    return {"expert": expert, "medium": medium, "replay": list(range(medium + 1))}


def policies_for(quality: str, behaviours: dict, n_episodes: int, action_dim: int):
    """``[(policy, mode)]`` per episode and a JSON description of the behaviour."""
    sel = select(behaviours)
    ars = behaviours["ars"]
    if quality == "random":
        pol = RandomPolicy(action_dim)
        return [(pol, -1)] * n_episodes, pol.describe()
    if quality == "medium":
        pol = linear_from_checkpoint(ars[sel["medium"]])
        return [(pol, 0)] * n_episodes, pol.describe()
    if quality == "expert":
        pols = [linear_from_checkpoint(ars[sel["expert"]])] + [cpg_from_result(g, CPG_NOISE)
                                                                for g in behaviours["cpg"]]
        return ([(pols[e % len(pols)], e % len(pols)) for e in range(n_episodes)],
                {"policy": "round robin over behaviours (mode = index)", "behaviours": [p.describe() for p in pols]})
    if quality == "medium-replay":
        idx = sel["replay"]
        pols = [linear_from_checkpoint(ars[i]) for i in idx]
        per = [(pols[min(e * len(pols) // n_episodes, len(pols) - 1)], e * len(pols) // n_episodes)
               for e in range(n_episodes)]
        return per, {"policy": "ARS checkpoints 0..medium in training order, episodes split evenly",
                     "checkpoints": [{"iteration": ars[i]["iteration"], "eval_return": ars[i]["eval_return"]}
                                     for i in idx]}
    raise ValueError(f"unknown MaMuJoCo quality {quality!r}; choose one of {QUALITIES}")


def run_episode(ep: MaMuJoCoEpisode, policy, seed: int, rng: np.random.Generator) -> dict:
    """One episode; ``max_pitch`` is the largest |torso pitch| seen (HalfCheetah ``qpos[2]``: > ~1.5 = flipped)."""
    obs, state, single = ep.reset(seed)
    os_, ss, acts, rews = [obs], [state], [], []
    t, term, trunc, pitch = 0, False, False, 0.0
    while not (term or trunc):
        a, obs, state, single, r, term, trunc = ep.step_global(policy(single, t, rng))
        pitch = max(pitch, abs(float(ep.single.data.qpos[2])))
        os_.append(obs)
        ss.append(state)
        acts.append(a)
        rews.append(r)
        t += 1
    return {"obs": np.stack(os_), "state": np.stack(ss), "actions": np.stack(acts).astype(np.float32),
            "rewards": np.asarray(rews, np.float32), "terminated": bool(term), "max_pitch": pitch}


def collect(quality: str, behaviours: dict, n_episodes: int, data_seed: int, scenario: str, agent_conf: str,
            obs_layout: str = "mamujoco", max_steps: int = 1000, progress: bool = True) -> tuple[list[dict], dict]:
    spec = get_scenario(scenario, agent_conf)
    per, behaviour = policies_for(quality, behaviours, n_episodes, spec.n_agents * spec.action_dim)
    ep = MaMuJoCoEpisode(scenario, agent_conf, obs_layout, max_steps=max_steps)
    from tqdm.auto import tqdm

    episodes, rejected = [], 0
    filter_flips = quality == "expert" and scenario == "HalfCheetah"
    for e in tqdm(range(n_episodes), desc=f"collect {scenario} {quality}", disable=not progress):
        pol, mode = per[e]
        for attempt in range(20):  # re-collect flipped expert episodes with the next seed of the same stream
            seed, rng = episode_seed(QUALITY_TAGS[quality], data_seed, e + 1_000_000 * attempt, bound=RESET_SEED_BOUND)
            out = run_episode(ep, pol, seed, rng)
            if not (filter_flips and out["max_pitch"] > FLIP_ANGLE):
                break
            rejected += 1
        out["mode"] = mode
        episodes.append(out)
    ep.close()
    if filter_flips:
        behaviour = {**behaviour, "flipped_episodes_recollected": rejected, "flip_angle": FLIP_ANGLE}
    return episodes, behaviour


def generate_dataset(path: str | Path, quality: str, scenario: str, agent_conf: str, n_episodes: int,
                     data_seed: int, budget: str | Budget, cache_dir: str | Path, obs_layout: str = "mamujoco",
                     max_steps: int = 1000, progress: bool = True) -> dict:
    """Collect ``quality`` and save it atomically at ``path`` (``.npz`` + ``.json`` manifest); returns the manifest.

    ``medium-expert`` collects ``n_episodes // 2`` medium and ``n_episodes - n_episodes // 2`` expert episodes
    (with the same seeds as those datasets)."""
    b = BUDGETS[budget] if isinstance(budget, str) else budget
    start = time.perf_counter()
    behaviours = train_behaviours(scenario, agent_conf, data_seed, b, cache_dir, progress)
    parts = [("medium", n_episodes // 2), ("expert", n_episodes - n_episodes // 2)] \
        if quality == "medium-expert" else [(quality, n_episodes)]
    episodes, described = [], {}
    for q, n in parts:
        eps, beh = collect(q, behaviours, n, data_seed, scenario, agent_conf, obs_layout, max_steps, progress)
        episodes += eps
        described[q] = beh
    returns = np.array([e["rewards"].sum() for e in episodes])
    lengths = np.array([len(e["actions"]) for e in episodes])
    modes = np.array([e["mode"] for e in episodes], dtype=np.int64)
    import gymnasium_robotics
    import mujoco

    manifest = {
        "format_version": FORMAT_VERSION, "generator": "macflow.datagen.mamujoco.generate_dataset",
        "env": {"name": "gymnasium_robotics.mamujoco_v1", "scenario": scenario, "agent_conf": agent_conf,
                "obs_layout": obs_layout, "max_steps": max_steps,
                "gymnasium_robotics": gymnasium_robotics.__version__, "mujoco": mujoco.__version__},
        "quality": quality, "data_seed": data_seed, "budget": b.as_dict(), "behaviour": described,
        "ars_curve": [{k: c[k] for k in ("iteration", "env_steps", "eval_return", "seconds")}
                      for c in behaviours["ars"]],
        "cpg": [{k: g[k] for k in ("seed", "return", "seconds")} for g in behaviours["cpg"]],
        "behaviour_training_seconds": behaviours["seconds"],
        "episodes": int(len(episodes)), "transitions": int(lengths.sum()),
        "terminated_episodes": int(sum(e["terminated"] for e in episodes)),
        "mean_return": float(returns.mean()), "std_return": float(returns.std()),
        "mean_length": float(lengths.mean()),
        "mode_returns": {int(m): float(returns[modes == m].mean()) for m in np.unique(modes)},
        "collection_seconds": round(time.perf_counter() - start, 1), "machine": platform.machine(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path.with_suffix(".modes.npy"), lambda f: np.save(f, modes))
    TransitionData.from_episodes(episodes).save(path, manifest, side_files=[path.with_suffix(".modes.npy")])
    return manifest
