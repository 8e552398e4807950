"""Where an epoch's rows come from: the chunk-source protocol, and data held in memory.

The epoch loop reads every source the same way (:class:`ChunkSource`): data in memory
is one chunk an epoch (:class:`InMemory`), a stream many
(:class:`descend.training.streams.StreamSource`), data split over devices and processes
one chunk of global arrays (:class:`descend.distributed.ShardedSource`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import numpy as np

from descend.data.arrays import aligned_array
from descend.data.moments import total_squares
from descend.data.shuffle import epoch_order
from descend.engine import EpochConfig


class ChunkSource(Protocol):
    """Rows for the epoch loop, a chunk at a time.

    ``chunks(seed, epoch)`` yields ``(config, data, order)`` for each chunk of the
    epoch, the arguments of :func:`descend.engine.compiled_epoch`'s program (``data``
    a tuple of device arrays: features, targets, and per-sample weights when
    ``config.weighted``). ``mean_weight`` is the program's last argument: the mean
    sample weight of all the training rows (every chunk's, every process's), on the
    device, or None without weights; it is the data's, never a chunk's, because each
    update's loss is its weighted sum divided by its rows times this mean.
    ``n_samples`` counts the rows of an epoch (None while a one-shot iterator has not
    been read), ``total_squares()`` is the weighted total sum of squares of the targets
    per output, for the training R² (None until known).
    """

    config: EpochConfig

    @property
    def n_samples(self) -> float | None: ...

    @property
    def mean_weight(self) -> jax.Array | None: ...

    def chunks(self, seed: int, epoch: int) -> Iterator[tuple[EpochConfig, tuple, Any]]: ...

    def total_squares(self) -> np.ndarray | None: ...


@dataclass
class InMemory:
    """Training data held on the device: every epoch is one chunk, one compiled call."""

    config: EpochConfig
    data: tuple
    y: np.ndarray
    weights: np.ndarray | None
    mean_weight: jax.Array | None = None

    @classmethod
    def of(
        cls, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, config: EpochConfig,
        mean_weight: np.ndarray | None = None,
    ) -> InMemory:  # fmt: skip
        """The rows on the device; ``mean_weight`` the mean of ``weights`` (with them)."""
        # On the device once: every epoch reads these copies.
        data: tuple[jax.Array, ...] = (on_device(X), on_device(y))
        placed: jax.Array | None = None
        if weights is not None:
            data += (on_device(weights),)
            placed = jax.device_put(mean_weight)
        return cls(config, data, y, weights, placed)

    @property
    def n_samples(self) -> int:
        return self.config.n_samples

    def chunks(self, seed: int, epoch: int) -> Iterator[tuple[EpochConfig, tuple, Any]]:
        order = None
        if self.config.shuffle:
            order = epoch_order(seed, epoch, self.config.n_samples)
        yield self.config, self.data, order

    def total_squares(self) -> np.ndarray:
        return total_squares(self.y, self.weights)


def on_device(array: np.ndarray) -> jax.Array:
    """``array`` on the default device; on the CPU without copying it again.

    The CPU client uses host memory in place when it is 64-byte aligned
    (:func:`descend.data.arrays.aligned_array`): measured for 80 MB, about 10 ms for the
    aligned copy instead of 50-90 ms for a transfer. The training data is ours and never
    changed, so sharing it is safe.
    """
    if jax.default_backend() != "cpu":
        return jax.device_put(np.asarray(array))
    return jax.device_put(aligned_array(np.asarray(array)), may_alias=True)
