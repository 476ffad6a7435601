"""One LightningDataModule per benchmark, on a shared offline-MARL data contract."""

from macflow.datamodules.base import OfflineMARLDataModule
from macflow.datamodules.coordination import CoordinationDataModule
from macflow.datamodules.mamujoco import MaMuJoCoDataModule
from macflow.datamodules.mpe import MPEDataModule
from macflow.datamodules.sampling import RandomBatches
from macflow.transitions import TransitionData

__all__ = ["OfflineMARLDataModule", "CoordinationDataModule", "MPEDataModule", "MaMuJoCoDataModule",
           "RandomBatches", "TransitionData"]
