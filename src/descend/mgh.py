r"""The Moré–Garbow–Hillstrom test problems for unconstrained minimization.

Eighteen problems of J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing
Unconstrained Optimization Software", *ACM Transactions on Mathematical Software* 7(1),
17–41 (1981): each a sum of squares :math:`f(x) = \sum_{i=1}^m f_i(x)^2`, written in
``jax.numpy``, with the paper's standard start :math:`x_0`, its sizes ``n`` and ``m``,
and the minimum value it publishes for those sizes (``minimum``; ``local_minima`` lists
the other values the paper reports as found by solvers). The paper's problem numbers
are kept (``number``).

>>> import descend as ds
>>> [p.name for p in ds.mgh.problems()][:3]
['powell_badly_scaled', 'brown_badly_scaled', 'beale']
>>> wood = ds.mgh.get("wood")
>>> float(wood(wood.start)), wood.minimum
(19192.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from descend.errors import unknown_name


@dataclass(frozen=True, eq=False)
class Problem:
    """One Moré–Garbow–Hillstrom problem.

    Attributes
    ----------
    name:
        Its name, in lower case with underscores (``"helical_valley"``).
    number:
        Its number in the 1981 paper.
    n, m:
        The number of variables and of squared terms.
    residuals:
        The function of a vector ``x`` of shape ``(n,)`` returning the ``m`` terms
        :math:`f_i(x)`, shape ``(m,)`` (``jax.numpy``).
    start:
        The paper's start :math:`x_0`, a tuple of ``n`` floats.
    minimum:
        The minimum value the paper reports for these ``n`` and ``m`` (to the digits it
        gives).
    minimizer:
        A minimizer, when the paper gives one, else ``None``.
    local_minima:
        Other values the paper reports (local minima solvers stop at).
    """

    __test__ = False

    name: str
    number: int
    n: int
    m: int
    residuals: Callable[[jax.Array], jax.Array] = field(repr=False)
    start: tuple[float, ...]
    minimum: float
    minimizer: tuple[float, ...] | None = None
    local_minima: tuple[float, ...] = ()

    def __call__(self, x) -> jax.Array:
        """:math:`f(x) = \\sum_i f_i(x)^2`, a 0-d array; ``x`` of shape ``(n,)``."""
        terms = self.residuals(jnp.asarray(x))
        return jnp.sum(terms**2)

    @property
    def __name__(self) -> str:
        return self.name


# ---------------------------------------------------------------------- the residuals


def _helical_valley(x):
    theta = jnp.arctan(x[1] / x[0]) / (2 * jnp.pi)
    theta = jnp.where(x[0] > 0, theta, theta + 0.5)
    return jnp.stack([10 * (x[2] - 10 * theta), 10 * (jnp.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2]])


def _biggs_exp6(x, m=13):
    t = 0.1 * jnp.arange(1, m + 1)
    y = jnp.exp(-t) - 5 * jnp.exp(-10 * t) + 3 * jnp.exp(-4 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


_GAUSSIAN_Y = np.array(
    [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
     0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009]
)  # fmt: skip


def _gaussian(x):
    t = (8 - jnp.arange(1, 16)) / 2
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2) - jnp.asarray(_GAUSSIAN_Y, x.dtype)


def _powell_badly_scaled(x):
    return jnp.stack([1e4 * x[0] * x[1] - 1, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def _box_3d(x, m=10):
    t = 0.1 * jnp.arange(1, m + 1)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10 * t))


def _variably_dimensioned(x):
    j = jnp.arange(1, x.shape[0] + 1)
    weighted = jnp.sum(j * (x - 1))
    return jnp.concatenate([x - 1, jnp.stack([weighted, weighted**2])])


def _watson(x):
    n = x.shape[0]
    t = jnp.arange(1, 30) / 29
    j = jnp.arange(1, n)  # j - 1 for j = 2..n
    derivative = jnp.sum(j * x[1:] * t[:, None] ** (j - 1), axis=1)
    value = jnp.sum(x * t[:, None] ** jnp.arange(n), axis=1)
    return jnp.concatenate([derivative - value**2 - 1, jnp.stack([x[0], x[1] - x[0] ** 2 - 1])])


def _penalty_1(x):
    return jnp.concatenate([math.sqrt(1e-5) * (x - 1), jnp.stack([jnp.sum(x**2) - 0.25])])


def _penalty_2(x):
    n = x.shape[0]
    a = math.sqrt(1e-5)
    i = jnp.arange(2, n + 1)
    y = jnp.exp(i / 10) + jnp.exp((i - 1) / 10)
    weights = jnp.arange(n, 0, -1)
    return jnp.concatenate(
        [
            jnp.stack([x[0] - 0.2]),
            a * (jnp.exp(x[1:] / 10) + jnp.exp(x[:-1] / 10) - y),
            a * (jnp.exp(x[1:] / 10) - math.exp(-1 / 10)),
            jnp.stack([jnp.sum(weights * x**2) - 1]),
        ]
    )


def _brown_badly_scaled(x):
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2])


def _brown_dennis(x, m=20):
    t = jnp.arange(1, m + 1) / 5
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


def _gulf(x, m=99):
    t = jnp.arange(1, m + 1) / 100
    y = 25 + (-50 * jnp.log(t)) ** (2 / 3)
    return jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t


def _trigonometric(x):
    n = x.shape[0]
    i = jnp.arange(1, n + 1)
    return n - jnp.sum(jnp.cos(x)) + i * (1 - jnp.cos(x)) - jnp.sin(x)


def _extended_rosenbrock(x):
    odd, even = x[0::2], x[1::2]
    return jnp.stack([10 * (even - odd**2), 1 - odd], axis=1).ravel()


def _extended_powell(x):
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return jnp.stack(
        [a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2],
        axis=1,
    ).ravel()


def _beale(x):
    y = jnp.array([1.5, 2.25, 2.625])
    i = jnp.arange(1, 4)
    return y - x[0] * (1 - x[1] ** i)


def _wood(x):
    return jnp.stack(
        [
            10 * (x[1] - x[0] ** 2),
            1 - x[0],
            math.sqrt(90) * (x[3] - x[2] ** 2),
            1 - x[2],
            math.sqrt(10) * (x[1] + x[3] - 2),
            (x[1] - x[3]) / math.sqrt(10),
        ]
    )


def _chebyquad(x):
    n = x.shape[0]
    y = 2 * x - 1  # the Chebyshev polynomials shifted to [0, 1]
    previous, current = jnp.ones_like(x), y
    terms = []
    for i in range(1, n + 1):
        integral = -1 / (i * i - 1) if i % 2 == 0 else 0.0
        terms.append(jnp.mean(current) - integral)
        previous, current = current, 2 * y * current - previous
    return jnp.stack(terms)


def _problem(name, number, residuals, start, minimum, minimizer=None, local=(), m=None):
    start = tuple(float(v) for v in start)
    size = len(start)
    n_terms = m if m is not None else int(jax.eval_shape(residuals, jnp.zeros(size)).shape[0])
    return Problem(name, number, size, n_terms, residuals, start, minimum, minimizer, local)


_PROBLEMS = (
    _problem("powell_badly_scaled", 3, _powell_badly_scaled, (0, 1), 0.0, (1.098e-5, 9.106)),
    _problem("brown_badly_scaled", 4, _brown_badly_scaled, (1, 1), 0.0, (1e6, 2e-6)),
    _problem("beale", 5, _beale, (1, 1), 0.0, (3.0, 0.5)),
    _problem("helical_valley", 7, _helical_valley, (-1, 0, 0), 0.0, (1.0, 0.0, 0.0)),
    _problem("gaussian", 9, _gaussian, (0.4, 1, 0), 1.12793e-8),
    _problem("gulf", 11, _gulf, (5, 2.5, 0.15), 0.0, (50.0, 25.0, 1.5)),
    _problem("box_3d", 12, _box_3d, (0, 10, 20), 0.0, (1.0, 10.0, 1.0)),
    _problem("wood", 14, _wood, (-3, -1, -3, -1), 0.0, (1.0, 1.0, 1.0, 1.0)),
    _problem("brown_dennis", 16, _brown_dennis, (25, 5, -5, -1), 85822.2),
    _problem("biggs_exp6", 18, _biggs_exp6, (1, 2, 1, 1, 1, 1), 0.0, (1, 10, 1, 5, 4, 3),
             (5.65565e-3,)),
    _problem("watson", 20, _watson, (0,) * 6, 2.28767e-3),
    _problem("extended_rosenbrock", 21, _extended_rosenbrock, (-1.2, 1) * 5, 0.0, (1.0,) * 10),
    _problem("extended_powell", 22, _extended_powell, (3, -1, 0, 1) * 3, 0.0, (0.0,) * 12),
    _problem("penalty_1", 23, _penalty_1, range(1, 11), 7.08765e-5),
    _problem("penalty_2", 24, _penalty_2, (0.5,) * 10, 2.93660e-4),
    _problem("variably_dimensioned", 25, _variably_dimensioned, 1 - np.arange(1, 11) / 10, 0.0,
             (1.0,) * 10),
    _problem("trigonometric", 26, _trigonometric, (0.1,) * 10, 0.0, local=(2.79506e-5,)),
    _problem("chebyquad", 35, _chebyquad, np.arange(1, 9) / 9, 3.51687e-3),
)  # fmt: skip
_BY_NAME = {problem.name: problem for problem in _PROBLEMS}


def problems() -> list[Problem]:
    """The eighteen problems, in the paper's order (by ``number``)."""
    return list(_PROBLEMS)


def get(name: str) -> Problem:
    """The problem called ``name``; :class:`~descend.errors.InputError` naming the closest
    otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise unknown_name("MGH problem", name, _BY_NAME) from None
