"""``RandomBatches``: an endless iterable of i.i.d. transition batches gathered on the training device.

Faster than any DataLoader for in-memory offline RL (lightning.md §e) and safe under DDP: each rank seeds its own
generator with ``seed + rank``, so ranks draw different batches (Lightning never injects a sampler here).

Resuming is exact: Lightning saves :meth:`RandomBatches.state_dict` in every checkpoint of a fit and hands it back
to :meth:`RandomBatches.load_state_dict` before the resumed fit draws its first batch. Its training fetcher draws
one batch ahead of the step it runs (:data:`LIGHTNING_LOOKAHEAD`), so the saved generator state is the one before
that drawn-ahead batch, which no step has trained on yet; with ``restores_process_rng`` the state also holds the
process-wide generators (:mod:`macflow.random_state`) as of the saved step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from macflow.datamodules.augment import BatchTransform
from macflow.random_state import process_rng_state, set_process_rng_state
from macflow.transitions import TransitionData

LIGHTNING_LOOKAHEAD = 1
"""Batches Lightning's training fetcher (``_PrefetchDataFetcher``) has drawn beyond the step it is running: it
draws batch ``k + 1`` as it hands batch ``k`` to the training step, so a checkpoint saved after step ``k`` must
resume at batch ``k + 1``."""


class RandomBatches:
    """Yields ``data.gather(randint(T, (batch_size,)))`` forever, passed through ``transform`` if one is given (a
    data augmentation drawing from the same generator); resumable through ``state_dict``.

    Args:
        data: the transitions to draw from (on the training device).
        batch_size: transitions per batch.
        seed: seed of this sampler's generator (the datamodule passes ``data_seed + rank``).
        transform: an augmentation applied to every batch, drawing from the sampler's generator.
        lookahead: batches the consumer draws ahead of the one it is using; :meth:`state_dict` resumes at the first
            of them (``0`` for a plain ``for`` loop, :data:`LIGHTNING_LOOKAHEAD` under a Trainer).
        restores_process_rng: save the process-wide random state in :meth:`state_dict` and put it back in
            :meth:`load_state_dict` (the training run's whole random stream; off for a sampler used on its own).
        rank: the DDP rank drawing from this sampler; a state saved by another rank cannot be resumed exactly.
    """

    def __init__(self, data: TransitionData, batch_size: int, seed: int, transform: BatchTransform | None = None,
                 lookahead: int = 0, restores_process_rng: bool = False, rank: int = 0) -> None:
        self.data, self.batch_size, self.seed, self.transform = data, batch_size, seed, transform
        self.lookahead, self.restores_process_rng, self.rank = lookahead, restores_process_rng, rank
        self.generator = torch.Generator(device=data.actions.device).manual_seed(seed)
        self._states_before_draws: deque[Tensor] = deque(maxlen=lookahead)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        n, dev = self.data.n_transitions, self.data.actions.device
        while True:
            if self.lookahead:
                self._states_before_draws.append(self.generator.get_state())
            idx = torch.randint(n, (self.batch_size,), generator=self.generator, device=dev)
            batch = self.data.gather(idx)
            yield batch if self.transform is None else self.transform(batch, self.generator)

    def state_dict(self) -> dict[str, Any]:
        """The generator state before the first batch the consumer has drawn but not used, and, with
        ``restores_process_rng``, the process-wide random state now."""
        pending = self._states_before_draws
        state = {"generator": pending[0] if pending else self.generator.get_state(), "seed": self.seed,
                 "rank": self.rank}
        if self.restores_process_rng:
            state["process_rng"] = process_rng_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next batch drawn is the first one the saved run had not trained on."""
        self.generator.set_state(state["generator"])
        self._states_before_draws.clear()
        saved_rank = state.get("rank", self.rank)
        if saved_rank != self.rank:
            rank_zero_warn(f"RandomBatches: the checkpoint holds rank {saved_rank}'s sampler state; rank {self.rank} "
                           "continues from a stream derived from it, so a resumed multi-device fit is not exact")
            derived = int(torch.randint(2**62, (), generator=self.generator, device=self.generator.device))
            self.generator.manual_seed(derived + self.rank)
        if self.restores_process_rng and "process_rng" in state:
            set_process_rng_state(state["process_rng"])
