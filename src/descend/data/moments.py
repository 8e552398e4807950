"""Column statistics gathered in pieces: the one running-moments helper.

Streams gather their statistics chunk by chunk, several processes each gather their
own rows' and then merge them, and the training R² needs the targets' total sum of
squares: all of them are :class:`Moments`, merged as in Chan, Golub & LeVeque (1979).

>>> import numpy as np
>>> x = np.arange(10.0).reshape(-1, 1)
>>> merged = Moments.of(x[:3]).merge(Moments.of(x[3:]))
>>> float(merged.mean[0]), float(merged.m2[0]) == float(((x - x.mean()) ** 2).sum())
(4.5, True)
"""

from __future__ import annotations

import numpy as np

from descend.data.arrays import Standardizer

_BLOCK_ROWS = 4096  # rows turned into float64 at a time: bounded memory for large chunks


class Moments:
    r"""Running weight, mean, weighted sum of squared deviations, min and max per column.

    ``n`` is the total weight (the number of rows without weights), ``mean`` the
    weighted mean, ``m2`` :math:`\sum_i w_i (x_i - \bar x)^2` (for targets: the total sum
    of squares of R²), ``low`` / ``high`` the extremes. Two sets merge with
    :math:`d = \bar x_b - \bar x_a`:
    :math:`\bar x = \bar x_a + d\, n_b / n` and :math:`M_2 = M_{2,a} + M_{2,b} + d^2 n_a n_b / n`.
    Everything is float64.
    """

    def __init__(self) -> None:
        # Empty (0 columns) until the first rows arrive: merge then takes the other's.
        self.n: float = 0
        empty = np.zeros(0)
        self.mean, self.m2, self.low, self.high = empty, empty, empty, empty

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """The moments of the rows of ``values`` (2-D), weighted by ``weights`` if given."""
        moments = cls()
        moments.add(values, weights)
        return moments

    def add(self, values: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """Merge the rows of ``values`` (in float64, a few thousand rows at a time)."""
        for start in range(0, len(values), _BLOCK_ROWS):
            rows = slice(start, start + _BLOCK_ROWS)
            self.merge(_block(values[rows], None if weights is None else weights[rows]))
        return self

    def merge(self, other: Moments) -> Moments:
        """Add ``other``'s rows to these (in place); returns self."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean, other.m2
            self.low, self.high = other.low, other.high
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        self.low, self.high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        self.n = n
        return self

    def to_array(self) -> np.ndarray:
        """``[n, mean..., m2..., low..., high...]``: one row to send to other processes."""
        return np.concatenate([[self.n], self.mean, self.m2, self.low, self.high])

    @classmethod
    def from_array(cls, row: np.ndarray) -> Moments:
        """The inverse of :meth:`to_array`."""
        moments = cls()
        moments.n = row[0]
        moments.mean, moments.m2, moments.low, moments.high = np.split(np.asarray(row[1:]), 4)
        return moments

    def standardizer(self) -> Standardizer:
        """As :meth:`Standardizer.fit`: population std, 1 for a constant column."""
        scale = np.sqrt(self.m2 / self.n)
        return Standardizer(self.mean, np.where(self.low == self.high, 1.0, scale))


def _block(values: np.ndarray, weights: np.ndarray | None) -> Moments:
    values = np.asarray(values).astype(np.float64)
    block = Moments()
    if weights is None:
        block.n = len(values)
        block.mean = values.mean(axis=0)
        block.m2 = ((values - block.mean) ** 2).sum(axis=0)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        block.n = weights.sum()
        block.mean = weights @ values / block.n
        block.m2 = weights @ (values - block.mean) ** 2
    block.low, block.high = values.min(axis=0), values.max(axis=0)
    return block


def total_squares(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted total sum of squares of targets ``y`` per output (the denominator of R²)."""
    y = np.asarray(y)
    return Moments.of(y.reshape(len(y), -1), weights).m2
