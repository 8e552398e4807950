"""The one shuffling scheme of training: which rows each epoch visits, in which order.

Every source of rows uses it: data in memory (:func:`epoch_order`), several processes
(each its own rows, :func:`epoch_order` with ``process``), and streams (pieces in
:func:`piece_order`, then the rows of each chunk by :func:`chunk_order`; each process
of a multi-process run draws both with its ``process`` too). Orders are
drawn on the host with NumPy from ``(seed, epoch, ...)`` alone, so the same seed gives
the same training, bit for bit, and a resumed run continues the same sequence.

>>> epoch_order(0, 0, 5).tolist() == epoch_order(0, 0, 5).tolist()
True
>>> sorted(epoch_order(7, 3, 5).tolist())
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import numpy as np

_PIECE_STREAM = 1  # the piece order's random stream: apart from the rows' (see piece_order)


def epoch_order(seed: int, epoch: int, n_samples: int, *, process: int | None = None) -> np.ndarray:
    """The permutation of the rows for ``epoch``: depends only on ``seed`` and ``epoch``.

    Drawn on the host with NumPy (a few ms for 10^5 rows, where ``jax.random.permutation``
    sorts on the device for ~20x longer), then passed to the compiled epoch:
    ``numpy.random.default_rng([seed, epoch]).permutation(n_samples)`` as int32. In
    multi-process training each process permutes its own rows, process ``p`` with
    ``default_rng([seed, epoch, p])``.
    """
    entropy = [seed, epoch] if process is None else [seed, epoch, process]
    return np.random.default_rng(entropy).permutation(n_samples).astype(np.int32)


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``'s row permutation: ``seed`` itself for the first chunk."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def chunk_order(
    seed: int, epoch: int, index: int, n_rows: int, *, process: int | None = None
) -> np.ndarray:
    """The order of the rows of chunk ``index`` in ``epoch``: data that fits in one chunk
    is shuffled exactly as in memory (with ``process``, as that process's rows in memory)."""
    return epoch_order(chunk_seed(seed, index), epoch, n_rows, process=process)


def piece_order(seed: int, epoch: int, n_pieces: int, *, process: int | None = None) -> np.ndarray:
    """The order in which a stream reads its pieces (files' row groups, shards) in
    ``epoch``; with ``process``, that process's share of the pieces (apart from the others')."""
    entropy = [seed, epoch, _PIECE_STREAM] + ([] if process is None else [process])
    return np.random.default_rng(entropy).permutation(n_pieces)
