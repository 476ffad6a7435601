"""One LightningDataModule per benchmark, on a shared offline-MARL data contract."""

from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.coordination import CoordinationDataModule
from macflow.datamodules.env import EnvStep, MultiAgentEnv, rollout
from macflow.datamodules.sampling import RandomBatches
from macflow.datamodules.transitions import TransitionData

__all__ = ["OfflineMARLDataModule", "CoordinationDataModule", "EnvStep", "MultiAgentEnv", "rollout",
           "RandomBatches", "TransitionData"]

from macflow.datamodules.mpe import MPEDataModule  # noqa: E402  (issue 3)

__all__ += ["MPEDataModule"]
from macflow.datamodules.mamujoco import MaMuJoCoDataModule  # noqa: E402,F401  (issue 4)
