"""The engine: the one loop every front end runs, and its compiled blocks.

- :mod:`~descend.engine.loop`: :func:`run`, the host loop over compiled blocks
  (progress, callbacks, Ctrl-C, agreement between processes, the budget).
- :mod:`~descend.engine.status`: :class:`Status`, each stop with its sentence.
- :mod:`~descend.engine.iterate`: ``minimize``'s block (k iterations, rules on the device),
  also over many starts at once (``BatchedIterations``, ``jax.vmap``).
- :mod:`~descend.engine.epoch`: ``fit``'s block (one epoch of updates, or several short
  ones).
- :mod:`~descend.engine.range_test`: the learning-rate range test's block (``num_iter``
  updates of ``fit``'s, watched by a stopping rule, in one program).
- :mod:`~descend.engine.progress`: the progress display.

The tests of progress shared with the optimizers (improvement, finiteness) are in
:mod:`descend.rules`.
"""

from __future__ import annotations

from descend.engine import status
from descend.engine.epoch import (
    BATCH_AXIS,
    SCAN_UNROLL,
    EpochConfig,
    EpochOutcome,
    ShardedOrder,
    StretchOutcome,
    compiled_epoch,
    compiled_stretch,
    compiled_sweep_epoch,
)
from descend.engine.iterate import (
    FAILURES,
    BatchedIterations,
    IterateCarry,
    IterateConfig,
    Iterations,
    Keyed,
)
from descend.engine.loop import Block, run
from descend.engine.progress import Progress
from descend.engine.range_test import RangeOutcome, compiled_range_test
from descend.engine.status import Status

__all__ = [
    "BATCH_AXIS",
    "FAILURES",
    "SCAN_UNROLL",
    "BatchedIterations",
    "Block",
    "EpochConfig",
    "EpochOutcome",
    "IterateCarry",
    "IterateConfig",
    "Iterations",
    "Keyed",
    "Progress",
    "RangeOutcome",
    "ShardedOrder",
    "Status",
    "StretchOutcome",
    "compiled_epoch",
    "compiled_range_test",
    "compiled_stretch",
    "compiled_sweep_epoch",
    "run",
    "status",
]
