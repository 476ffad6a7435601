"""SMAX behaviour data: JAX behaviour policies run in jaxmarl's simulator, whole episodes scanned and vmapped.

Qualities: ``random`` (uniform over the legal actions), ``medium`` (jaxmarl's ally heuristic,
``create_heuristic_policy(env, team=0)``), ``expert`` (focus fire on privileged state: each ally shoots the enemy
with the fewest hit points it can reach, else moves toward the weakest living enemy; ties follow a priority order
of the enemies drawn per episode, so equally healthy targets give several joint modes: the order is stored as the
episode's ``mode``) and ``medium-replay`` (each agent plays a random legal action with probability epsilon, else
the ally heuristic; epsilon falls linearly from 1 to 0 over the episodes, like a learning agent's replay buffer).
A dead ally stops (its only legal action); any other action outside the legal set is replaced by stop and counted
in the manifest. Episode ``e`` of ``(quality, data_seed)`` has its own reset seed, so a dataset is the same
whatever the number of episodes around it; episodes run in chunks of a fixed size, so every chunk is the same
compiled program. :func:`generate_dataset` writes the ``.npz`` + JSON manifest + ``.modes.npy`` that
``SMAXDataModule`` reads.
"""

from __future__ import annotations

import itertools
import math
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from macflow.envs.smax import MOVE_VECTORS, N_MOVE_ACTIONS, STOP, SMAXSim, dims_for, smax_sim
from macflow.transitions import TransitionData, atomic_write

QUALITIES = ("random", "medium", "expert", "medium-replay")
QUALITY_TAGS = {"random": 21, "medium": 22, "expert": 23, "medium-replay": 24}
CHUNK = 256
"""Episodes simulated side by side in one call (the last chunk is padded, so every call has the same shapes)."""
FORMAT_VERSION = 1
BEHAVIOURS = {
    "random": {"policy": "uniform over the legal actions"},
    "medium": {"policy": "jaxmarl ally heuristic create_heuristic_policy(env, team=0, attack_mode='closest')",
               "illegal_actions": "dead allies stop; other illegal actions are replaced by stop"},
    "expert": {"policy": "focus fire on privileged state: shoot the lowest-health reachable enemy, else move toward "
                         "the lowest-health living enemy (health in hit points)",
               "tie_break": "a priority order of the enemies drawn per episode (the episode's mode)"},
    "medium-replay": {"policy": "per agent and step: a random legal action with probability epsilon, else the "
                                "jaxmarl ally heuristic", "epsilon": "1 - e / (episodes - 1) for episode e",
                      "illegal_actions": "dead allies stop; other illegal actions are replaced by stop"},
}


def episode_seed(tag: int, data_seed: int, episode: int) -> int:
    """Reset seed (uint32) of one generated episode; its policy key is derived from it."""
    return int(np.random.SeedSequence([tag, data_seed, episode]).generate_state(1)[0])


def permutation_index(perm: np.ndarray) -> int:
    """Index of ``perm`` in ``itertools.permutations(range(len(perm)))`` (lexicographic rank)."""
    perm, n, index = list(perm), len(perm), 0
    for i, p in enumerate(perm):
        index += sum(q < p for q in perm[i + 1:]) * math.factorial(n - 1 - i)
    return index


def _behaviour(sim: SMAXSim, quality: str):
    """``(init(key) -> policy state, act(key, policy state, env_state, observation, epsilon) -> (actions [N],
    policy state))``, JAX functions of one episode."""
    jax, jnp = sim.jax, sim.jnp
    from jaxmarl.environments.smax.heuristic_enemy import (
        create_heuristic_policy,
        get_heuristic_policy_initial_state,
    )

    n, n_enemies = sim.dims.n_agents, sim.dims.n_enemies
    moves = jnp.asarray(MOVE_VECTORS)

    def random_legal(key, legal):
        return jax.random.categorical(key, jnp.where(legal, 0.0, -jnp.inf), axis=-1)

    heuristic = create_heuristic_policy(sim.env._env, 0, shoot=True, attack_mode="closest")

    def heuristic_init(key):
        state = get_heuristic_policy_initial_state()
        return jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * n), state)

    def heuristic_act(key, pstate, observation):
        return jax.vmap(heuristic)(jax.random.split(key, n), pstate, observation.obs)

    if quality == "random":
        return (lambda key: jnp.zeros(())), (lambda key, p, s, o, eps: (random_legal(key, o.legal), p))
    if quality == "medium":
        return heuristic_init, lambda key, p, s, o, eps: heuristic_act(key, p, o)
    if quality == "medium-replay":
        def act(key, pstate, env_state, observation, eps):
            k_explore, k_random, k_heuristic = jax.random.split(key, 3)
            greedy, pstate = heuristic_act(k_heuristic, pstate, observation)
            explore = jax.random.uniform(k_explore, (n,)) < eps
            return jnp.where(explore, random_legal(k_random, observation.legal), greedy), pstate
        return heuristic_init, act
    if quality == "expert":
        def init(key):
            return jax.random.permutation(key, n_enemies)  # priority order: perm[0] first

        def act(key, perm, env_state, observation, eps):
            s = env_state.state
            rank = jnp.zeros(n_enemies).at[perm].set(jnp.arange(n_enemies))
            score = s.unit_health[n:] + 1e-3 * rank  # [n_enemies] hit points, lower = shoot first
            alive = s.unit_alive[n:]
            shootable = observation.legal[:, N_MOVE_ACTIONS:]  # [N, n_enemies]
            attack = N_MOVE_ACTIONS + jnp.argmin(jnp.where(shootable, score, jnp.inf), -1)
            target = jnp.argmin(jnp.where(alive, score, jnp.inf))
            heading = s.unit_positions[n + target] - s.unit_positions[:n]  # [N, 2]
            move = jnp.argmax(heading @ moves.T, -1)
            act = jnp.where(shootable.any(-1), attack, jnp.where(alive.any(), move, STOP))
            return jnp.where(s.unit_alive[:n], act, STOP), perm
        return init, act
    raise ValueError(f"unknown SMAX quality {quality!r}; choose one of {QUALITIES}")


def _episode_fn(sim: SMAXSim, quality: str):
    """A jitted, vmapped ``(seeds [B] uint32, epsilon [B]) -> records`` that scans whole episodes."""
    jax, jnp = sim.jax, sim.jnp
    init, act = _behaviour(sim, quality)

    def episode(seed, eps):
        reset_key, step_key = sim.keys(seed)
        init_key, policy_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1))
        env_state, observation = sim.reset(reset_key)
        pstate = init(init_key)

        def body(carry, t):
            env_state, observation, pstate, done = carry
            actions, pstate = act(jax.random.fold_in(policy_key, t), pstate, env_state, observation, eps)
            actions = jnp.where(env_state.state.unit_alive[:sim.dims.n_agents], actions, STOP)  # the dead only stop
            legal = jnp.take_along_axis(observation.legal, actions[:, None], -1)[:, 0]
            actions = jnp.where(legal, actions, STOP)
            new_state, new_observation, outcome = sim.step_unless_done(step_key, t, env_state, actions, done)
            record = {"obs": observation.obs, "state": observation.state, "legal": observation.legal,
                      "actions": actions, "reward": outcome.reward, "terminated": outcome.terminated,
                      "won": outcome.won, "active": ~done, "replaced": (~legal & ~done).sum()}
            return (new_state, new_observation, pstate, outcome.done), record

        carry = (env_state, observation, pstate, jnp.asarray(False))
        (_, last, _, _), records = jax.lax.scan(body, carry, jnp.arange(sim.max_steps))
        records["last_obs"], records["last_state"], records["last_legal"] = last.obs, last.state, last.legal
        records["mode_perm"] = pstate if quality == "expert" else jnp.zeros(sim.dims.n_enemies, jnp.int32) - 1
        return records

    return jax.jit(jax.vmap(episode))


_EPISODE_FNS: dict[tuple[str, str], object] = {}


def _padded(x: np.ndarray) -> np.ndarray:
    """``x`` padded to ``CHUNK`` rows with copies of its first row."""
    return np.concatenate([x, np.repeat(x[:1], CHUNK - len(x))])


def generate(map_name: str, quality: str, n_episodes: int, data_seed: int) -> tuple[list[dict], dict]:
    """Generate ``n_episodes`` of ``quality`` on ``map_name``; returns the episodes and a generation summary.

    Each episode holds ``obs [L+1, N, O]``, ``state [L+1, S]``, ``legal [L+1, N, A]`` (final observation included),
    ``actions [L, N, A]`` one-hot, ``rewards [L]``, ``terminated``, ``won``, ``mode`` (the expert's priority order
    as an index in ``itertools.permutations(range(n_enemies))``; -1 otherwise) and ``replaced`` (illegal actions of
    living allies replaced by stop).
    """
    if quality not in QUALITIES:
        raise ValueError(f"unknown SMAX quality {quality!r}; choose one of {QUALITIES}")
    sim = smax_sim(map_name)
    if (map_name, quality) not in _EPISODE_FNS:
        _EPISODE_FNS[map_name, quality] = _episode_fn(sim, quality)
    fn = _EPISODE_FNS[map_name, quality]
    seeds = np.array([episode_seed(QUALITY_TAGS[quality], data_seed, e) for e in range(n_episodes)], dtype=np.uint32)
    eps = (1.0 - np.arange(n_episodes) / max(n_episodes - 1, 1)).astype(np.float32)
    a = sim.dims.action_dim
    episodes, started = [], time.perf_counter()
    for start in range(0, n_episodes, CHUNK):
        b = min(CHUNK, n_episodes - start)
        rec = {k: np.asarray(v) for k, v in fn(_padded(seeds[start:start + b]), _padded(eps[start:start + b])).items()}
        for i in range(b):
            length = int(rec["active"][i].sum())
            whole = {k: np.concatenate([rec[k][i], rec[f"last_{k}"][i][None]])[:length + 1]
                     for k in ("obs", "state", "legal")}
            perm = rec["mode_perm"][i]
            episodes.append({
                **whole, "actions": np.eye(a, dtype=np.float32)[rec["actions"][i, :length]],
                "rewards": rec["reward"][i, :length].astype(np.float32),
                "terminated": bool(rec["terminated"][i, length - 1]), "won": bool(rec["won"][i].any()),
                "mode": permutation_index(perm) if perm[0] >= 0 else -1, "replaced": int(rec["replaced"][i].sum()),
            })
    seconds = time.perf_counter() - started
    steps = sum(len(ep["actions"]) for ep in episodes)
    return episodes, {"seconds": seconds, "env_steps": steps}


def generate_dataset(path: str | Path, map_name: str, quality: str, n_episodes: int, data_seed: int) -> dict:
    """Generate ``quality`` and save it atomically at ``path`` (``.npz`` + ``.json`` manifest + ``.modes.npy``).
    Returns the manifest."""
    path = Path(path)
    episodes, summary = generate(map_name, quality, n_episodes, data_seed)
    returns = np.array([ep["rewards"].sum() for ep in episodes])
    won = np.array([ep["won"] for ep in episodes])
    lengths = np.array([len(ep["actions"]) for ep in episodes])
    sim = smax_sim(map_name)
    manifest = {
        "format_version": FORMAT_VERSION, "generator": "macflow.datagen.smax.generate",
        "env": {"name": "jaxmarl.HeuristicEnemySMAX", "map": map_name, "jaxmarl_version": version("jaxmarl"),
                "jax_version": version("jax"), "enemy": "jaxmarl heuristic, attack_mode='closest'",
                "max_steps": sim.max_steps, **sim.dims._asdict()},
        "quality": quality, "behaviour": BEHAVIOURS[quality], "data_seed": data_seed, "episodes": n_episodes,
        "transitions": int(lengths.sum()), "mean_return": float(returns.mean()), "std_return": float(returns.std()),
        "win_rate": float(won.mean()), "mean_length": float(lengths.mean()),
        "terminated_episodes": int(sum(ep["terminated"] for ep in episodes)),
        "replaced_illegal_actions": int(sum(ep["replaced"] for ep in episodes)),
        "generation_seconds": round(summary["seconds"], 2),
        "regenerate": (f"SMAXDataModule(map_name={map_name!r}, quality={quality!r}, n_episodes={n_episodes}, "
                       f"data_seed={data_seed}).prepare_data()"),
    }
    modes = np.array([ep["mode"] for ep in episodes], dtype=np.int64)
    if quality == "expert":
        manifest["modes"] = {"file": path.with_suffix(".modes.npy").name,
                             "meaning": "episode -> the enemies' priority order, as an index in "
                                        "itertools.permutations(range(n_enemies)) (perm[0] is shot first on ties)",
                             "counts": np.bincount(modes, minlength=math.factorial(sim.dims.n_enemies)).tolist()
                             if sim.dims.n_enemies <= 6 else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path.with_suffix(".modes.npy"), lambda f: np.save(f, modes))  # the .npz last: complete = complete
    TransitionData.from_episodes(episodes).save(path, manifest)
    return manifest


def mode_permutation(map_name: str, mode: int) -> tuple[int, ...]:
    """The enemies' priority order of an expert episode's ``mode``."""
    return next(itertools.islice(itertools.permutations(range(dims_for(map_name).n_enemies)), mode, None))
