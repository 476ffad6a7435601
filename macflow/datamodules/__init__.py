"""One LightningDataModule per benchmark, on a shared offline-MARL data contract."""

from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.coordination import CoordinationDataModule
from macflow.datamodules.mamujoco import MaMuJoCoDataModule
from macflow.datamodules.mpe import MPEDataModule
from macflow.datamodules.sampling import RandomBatches
from macflow.datamodules.smax import SMAXDataModule
from macflow.transitions import TransitionData

__all__ = ["OfflineMARLDataModule", "CoordinationDataModule", "MPEDataModule", "MaMuJoCoDataModule",
           "SMAXDataModule", "RandomBatches", "TransitionData"]

MOVED = {"rollout": "macflow.envs", "EnvStep": "macflow.envs", "MultiAgentEnv": "macflow.envs",
         "EVAL_SEED_OFFSET": "macflow.evaluation"}
"""Names this package exported before simulators moved to :mod:`macflow.envs` (see docs/upgrading.md)."""


def __getattr__(name: str):
    if name in MOVED:
        raise ImportError(f"macflow.datamodules.{name} moved: import it from {MOVED[name]}")
    raise AttributeError(f"module 'macflow.datamodules' has no attribute {name!r}")
