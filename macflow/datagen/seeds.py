"""Per-episode seeds of generated data: every episode of every quality gets its own independent streams."""

from __future__ import annotations

import numpy as np


def episode_seed(tag: int, data_seed: int, episode: int, bound: int = 2**32) -> tuple[int, np.random.Generator]:
    """The simulator's reset seed (below ``bound``) and the behaviour policy's RNG of one generated episode: two
    independent streams spawned from ``SeedSequence([tag, data_seed, episode])``, ``tag`` naming the quality."""
    env_ss, policy_ss = np.random.SeedSequence([tag, data_seed, episode]).spawn(2)
    return int(env_ss.generate_state(1)[0]) % bound, np.random.default_rng(policy_ss)
