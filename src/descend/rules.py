"""The two tests of progress that every loop shares: improvement and finiteness.

``minimize`` (no further decrease), ``fit`` (early stopping) and the optimizer wrapper
``reduce_on_plateau`` all ask "did the watched value improve on the best so far?", and
they ask it with :func:`improved`. Every loop treats a non-finite value, gradient or
point as divergence, tested by :func:`is_finite`. Both work on Python floats, NumPy and
JAX values alike (traced ones included), so the host loop and the compiled loops use
the same rule.

>>> improved(0.95, 1.0, rtol=0.1), improved(0.85, 1.0, rtol=0.1)
(False, True)
>>> improved(0.5, float("inf"))  # anything finite improves on no value at all
True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from descend import _tree
from descend._tree import PyTree


def improved(value: Any, best: Any, *, rtol: float = 0.0, atol: float = 0.0) -> Any:
    r"""Whether ``value`` improves on ``best`` by more than the tolerances.

    .. math:: \text{value} < \text{best} - (\text{rtol}\,|\text{best}| + \text{atol})

    The relative part is taken of :math:`|\text{best}|`, so that a negative loss that
    grows is never counted as an improvement (``torch.optim.lr_scheduler``'s ``"rel"``
    mode and ``optax.contrib.reduce_on_plateau`` use :math:`(1-\text{rtol})\,\text{best}`,
    which differs from this only for negative values). With ``best = inf`` (nothing
    recorded yet) any finite ``value`` improves; a NaN ``value`` never does.

    Parameters
    ----------
    value, best:
        Scalars: Python or NumPy numbers, or JAX arrays (also inside ``jit``).
    rtol, atol:
        Relative and absolute tolerances, each >= 0 (not checked here: the front doors
        validate them).

    Returns
    -------
    bool, or a boolean JAX scalar for JAX inputs.
    """
    if not rtol and not atol:  # the plain test (no work spent on zero tolerances)
        return value < best
    threshold = best - (rtol * abs(best) + atol)
    # inf - inf is NaN: before the first value, "better than nothing" is value < inf.
    return (value < threshold) | ((best == float("inf")) & (value < best))


def is_finite(value: Any, *trees: PyTree) -> jnp.ndarray:
    """The divergence test: ``value`` and every element of ``trees`` are finite."""
    return jnp.isfinite(value) & _tree.all_finite(trees)


class Plateau:
    """Early stopping's count, on the host: the best value, where, and blocks since.

    ``update(value, at, keep)`` records the value of block ``at`` (and ``keep``, e.g. the
    weights, when it is the new best by :func:`improved`); :attr:`waited` counts the
    blocks since the best improved.

    >>> plateau = Plateau(atol=0.1)
    >>> for epoch, loss in enumerate([1.0, 0.5, 0.45, 0.44], start=1):
    ...     plateau.update(loss, epoch)
    >>> plateau.best, plateau.best_at, plateau.waited
    (0.5, 2, 2)
    """

    def __init__(self, *, rtol: float = 0.0, atol: float = 0.0):
        self.rtol, self.atol = rtol, atol
        self.best_at: int | None
        self.kept: Any
        self.best, self.best_at, self.kept, self.waited = float("inf"), None, None, 0

    def update(self, value: float, at: int, keep: Any = None) -> None:
        if improved(value, self.best, rtol=self.rtol, atol=self.atol):
            self.best, self.best_at, self.kept, self.waited = value, at, keep, 0
        else:
            self.waited += 1


GROWTH = 1e6  # how far above its start a value may go before the run counts as diverging


def grew_without_bound(value: Any, start: Any, *, factor: float = GROWTH) -> Any:
    r"""The divergence test for values that stay finite: far above where the run began.

    .. math:: \text{value} > \text{start} + \text{factor} \cdot \max(|\text{start}|, 1)

    With the default factor a loss that began at 10 must pass ten million. A descent
    that goes up that far is not descending: its steps are too large (or the features
    unscaled). Works on Python, NumPy and JAX values, traced ones included.

    >>> grew_without_bound(2e7, 10.0), grew_without_bound(50.0, 10.0)
    (True, False)
    """
    scale = jnp.maximum(abs(start), 1.0) if isinstance(start, jax.Array) else max(abs(start), 1.0)
    return value > start + factor * scale
