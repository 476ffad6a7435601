"""The real SMAC (StarCraft II) through oxwhirl's ``smac`` package: E games side by side, one per episode.

Needs three things that pip alone does not give (none of them is required by macflow's tests or CI)::

    pip install git+https://github.com/oxwhirl/smac.git
    # StarCraft II 4.10 for Linux (the SMAC benchmark version), the password accepts Blizzard's AI and ML licence:
    wget https://blzdistsc2-a.akamaihd.net/Linux/SC2.4.10.zip && unzip -P iagreetotheeula SC2.4.10.zip -d ~
    # the SMAC maps, into the game's Maps folder:
    wget https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip
    unzip SMAC_Maps.zip -d ~/StarCraftII/Maps/
    export SC2PATH=~/StarCraftII              # where the game is (smac's default is ~/StarCraftII)

:func:`sc2_problem` says which of them is missing; :class:`SC2Env` raises it as one line
naming the install step (an ``ImportError``, as for SMAX's missing jaxmarl; the SMAC vault datamodule reports
it as an ``InputError`` before training). Observations, state and the 6 + n_enemies actions (no-op, stop, four
moves, attacks) are SMAC's own, the features the OG-MARL smac_v1 vaults were recorded with. Episode metric
``win_rate``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from macflow.envs.base import EnvStep, MultiAgentEnv

INSTALL = "docs: macflow/envs/sc2.py (module docstring)"
"""Where the install steps are written down."""


def sc2_path() -> Path:
    """The StarCraft II folder smac uses: ``$SC2PATH`` or ``~/StarCraftII``."""
    return Path(os.environ.get("SC2PATH", "~/StarCraftII")).expanduser()


def sc2_problem(map_name: str) -> str | None:
    """What is missing to run SMAC map ``map_name`` here (``None``: nothing), as one line with the install step."""
    if importlib.util.find_spec("smac") is None:
        return ("the smac package is not installed: pip install git+https://github.com/oxwhirl/smac.git, then "
                f"StarCraft II 4.10 and the SMAC maps ({INSTALL})")
    root = sc2_path()
    if not (root / "Versions").is_dir():
        return (f"StarCraft II is not at {root} (no Versions/ folder): unzip SC2.4.10.zip from "
                "https://blzdistsc2-a.akamaihd.net/Linux/SC2.4.10.zip there, or set SC2PATH to the game folder "
                f"({INSTALL})")
    if not (root / "Maps" / "SMAC_Maps" / f"{map_name}.SC2Map").exists():
        return (f"{root / 'Maps' / 'SMAC_Maps' / (map_name + '.SC2Map')} not found: unzip SMAC_Maps.zip from "
                "https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip into "
                f"{root / 'Maps'} ({INSTALL})")
    return None


class SC2Env(MultiAgentEnv):
    """E SMAC episodes, each in its own StarCraft II game (``smac.env.StarCraft2Env(map_name, seed=seed)``).

    Actions are one-hot ``[E, N, 6 + n_enemies]`` and must be legal (``EnvStep.legal``); the team reward is
    smac's (shaped, scaled so a won episode sums to about 20). Starting a game takes seconds: keep E small.
    """

    def __init__(self, seeds: Sequence[int], map_name: str = "3m") -> None:
        problem = sc2_problem(map_name)
        if problem is not None:
            raise ImportError(f"SMAC map {map_name!r} cannot run: {problem}")
        from smac.env import StarCraft2Env

        self.games = [StarCraft2Env(map_name=map_name, seed=int(s)) for s in seeds]
        info = self.games[0].get_env_info()
        self.n_episodes, self.max_steps = len(self.games), int(info["episode_limit"])
        self.n_agents, self.n_actions = int(info["n_agents"]), int(info["n_actions"])
        self.done = np.zeros(self.n_episodes, dtype=bool)
        self.won = np.zeros(self.n_episodes, dtype=bool)
        self.last_obs = np.zeros((self.n_episodes, self.n_agents, int(info["obs_shape"])), dtype=np.float32)
        self.last_legal = np.zeros((self.n_episodes, self.n_agents, self.n_actions), dtype=bool)

    def _observe(self, e: int) -> None:
        game = self.games[e]
        self.last_obs[e] = np.asarray(game.get_obs(), dtype=np.float32)
        self.last_legal[e] = np.asarray(game.get_avail_actions()) != 0

    def _env_step(self, rewards: np.ndarray) -> EnvStep:
        return EnvStep(torch.from_numpy(self.last_obs.copy()), torch.from_numpy(rewards.astype(np.float32)),
                       torch.from_numpy(self.done.copy()), torch.from_numpy(self.last_legal.copy()))

    def reset(self) -> EnvStep:
        self.done[:], self.won[:] = False, False
        for e, game in enumerate(self.games):
            game.reset()
            self._observe(e)
        return self._env_step(np.zeros(self.n_episodes))

    def step(self, actions: Tensor) -> EnvStep:
        idx = actions.argmax(-1).cpu().numpy()
        rewards = np.zeros(self.n_episodes)
        for e, game in enumerate(self.games):
            if self.done[e]:
                continue
            illegal = ~self.last_legal[e, np.arange(self.n_agents), idx[e]]
            if illegal.any():
                i = int(np.flatnonzero(illegal)[0])
                raise ValueError(f"episode {e}, agent {i}: action {int(idx[e, i])} is illegal (legal: "
                                 f"{np.flatnonzero(self.last_legal[e, i]).tolist()}); pick among EnvStep.legal")
            reward, terminated, info = game.step(idx[e].tolist())
            rewards[e] = reward
            self.done[e] = bool(terminated)
            self.won[e] = bool(info.get("battle_won", False))
            if not self.done[e]:
                self._observe(e)
        return self._env_step(rewards)

    def episode_metrics(self) -> dict[str, Tensor]:
        return {"win_rate": torch.from_numpy(self.won.astype(np.float64))}

    def close(self) -> None:
        for game in self.games:
            game.close()
