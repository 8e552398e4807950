"""Test functions for minimization, with their formulas and known minima.

Each is a :class:`TestFunction`: a JAX function of one vector, its formula, its
global minimizers and minimum value, a suggested start and a plotting range.

>>> import descend as ds
>>> f = ds.functions.get("rosenbrock")
>>> float(f(f.minimizers[0]))
0.0
>>> ds.functions.names()[:3]
['beale', 'booth', 'himmelblau']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from descend.errors import InputError, check_int, unknown_name


@dataclass(frozen=True, eq=False)
class TestFunction:
    """A function with known minima, for trying optimizers.

    Attributes
    ----------
    name, formula:
        Its name and its formula as text.
    fn:
        The function of one vector ``x`` (length ``dim``), written in ``jax.numpy``.
    dim:
        Number of variables.
    minimum:
        The global minimum value.
    start:
        A suggested start (from which gradient descent reaches a global minimizer).
    bounds:
        A plotting range, one ``(low, high)`` per variable.
    reference:
        Where the function comes from.
    """

    __test__ = False  # not a pytest test class despite its name

    name: str
    formula: str
    fn: Callable[[jax.Array], jax.Array] = field(repr=False)
    dim: int
    minimum: float
    start: tuple[float, ...]
    bounds: tuple[tuple[float, float], ...]
    reference: str = ""
    _minimizer_guesses: tuple[tuple[float, ...], ...] = field(default=(), repr=False)

    def __call__(self, x) -> jax.Array:
        return self.fn(jnp.asarray(x))

    @cached_property
    def minimizers(self) -> list[np.ndarray]:
        """The global minimizers, each refined to float64 precision by Newton's method."""
        return [_newton(self.fn, guess) for guess in self._minimizer_guesses]


def _newton(fn: Callable, guess: tuple[float, ...], steps: int = 50) -> np.ndarray:
    """Polish an approximate stationary point with Newton steps on the exact gradient."""
    with jax.enable_x64(True):
        x = jnp.asarray(guess, dtype=jnp.float64)
        grad, hess = jax.jit(jax.grad(fn)), jax.jit(jax.hessian(fn))
        for _ in range(steps):
            g = grad(x)
            if float(jnp.max(jnp.abs(g))) < 1e-15:
                break
            x = x - jnp.linalg.solve(hess(x), g)
        return np.asarray(x)


def _sphere(x):
    return jnp.sum(x**2)


def _booth(x):
    return (x[0] + 2 * x[1] - 7) ** 2 + (2 * x[0] + x[1] - 5) ** 2


def _matyas(x):
    return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def _beale(x):
    a, b = x[0], x[1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _himmelblau(x):
    return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2


def _three_hump_camel(x):
    a, b = x[0], x[1]
    return 2 * a**2 - 1.05 * a**4 + a**6 / 6 + a * b + b**2


def _styblinski_tang(x):
    return 0.5 * jnp.sum(x**4 - 16 * x**2 + 5 * x)


def _rastrigin(x):
    return 10.0 * x.shape[0] + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x))


def _styblinski_tang_coordinate() -> float:
    # The 1-D minimizer is the smallest real root of the derivative 4t^3 - 32t + 5 = 0.
    roots = np.roots([4.0, 0.0, -32.0, 5.0])
    return float(np.min(roots[np.isreal(roots)].real))


def sphere(dim: int = 2) -> TestFunction:
    dim = check_int("dim", dim, minimum=1)
    return TestFunction(
        "sphere",
        "sum_i x_i^2",
        _sphere,
        dim,
        0.0,
        (1.5,) * dim,
        ((-2.0, 2.0),) * dim,
        "De Jong (1975)",
        ((0.0,) * dim,),
    )


def booth() -> TestFunction:
    return TestFunction(
        "booth",
        "(x + 2y - 7)^2 + (2x + y - 5)^2",
        _booth,
        2,
        0.0,
        (-5.0, 5.0),
        ((-10.0, 10.0), (-10.0, 10.0)),
        "Jamil & Yang (2013)",
        ((1.0, 3.0),),
    )


def matyas() -> TestFunction:
    return TestFunction(
        "matyas",
        "0.26 (x^2 + y^2) - 0.48 x y",
        _matyas,
        2,
        0.0,
        (8.0, -6.0),
        ((-10.0, 10.0), (-10.0, 10.0)),
        "Jamil & Yang (2013)",
        ((0.0, 0.0),),
    )


def beale() -> TestFunction:
    return TestFunction(
        "beale",
        "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        _beale,
        2,
        0.0,
        (1.0, 1.0),
        ((-4.5, 4.5), (-4.5, 4.5)),
        "Beale (1958)",
        ((3.0, 0.5),),
    )


def rosenbrock(dim: int = 2) -> TestFunction:
    dim = check_int("dim", dim, minimum=2)
    start = (-1.2, 1.0) if dim == 2 else tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(dim))
    return TestFunction(
        "rosenbrock",
        "sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2",
        _rosenbrock,
        dim,
        0.0,
        start,
        ((-2.0, 2.0), (-1.0, 3.0)) + ((-2.0, 2.0),) * (dim - 2),
        "Rosenbrock (1960)",
        ((1.0,) * dim,),
    )


def himmelblau() -> TestFunction:
    return TestFunction(
        "himmelblau",
        "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        _himmelblau,
        2,
        0.0,
        (0.0, 0.0),
        ((-5.0, 5.0), (-5.0, 5.0)),
        "Himmelblau (1972)",
        # Approximate locations, refined by Newton's method in ``minimizers``.
        ((3.0, 2.0), (-2.8, 3.1), (-3.8, -3.3), (3.6, -1.8)),
    )


def three_hump_camel() -> TestFunction:
    return TestFunction(
        "three_hump_camel",
        "2x^2 - 1.05x^4 + x^6/6 + xy + y^2",
        _three_hump_camel,
        2,
        0.0,
        (0.5, -0.5),
        ((-2.0, 2.0), (-2.0, 2.0)),
        "Jamil & Yang (2013)",
        ((0.0, 0.0),),
    )


def styblinski_tang(dim: int = 2) -> TestFunction:
    dim = check_int("dim", dim, minimum=1)
    t = _styblinski_tang_coordinate()
    minimum = 0.5 * dim * (t**4 - 16 * t**2 + 5 * t)
    return TestFunction(
        "styblinski_tang",
        "0.5 sum_i (x_i^4 - 16 x_i^2 + 5 x_i)",
        _styblinski_tang,
        dim,
        minimum,
        (-2.0,) * dim,
        ((-5.0, 5.0),) * dim,
        "Styblinski & Tang (1990)",
        ((t,) * dim,),
    )


def rastrigin(dim: int = 2) -> TestFunction:
    dim = check_int("dim", dim, minimum=1)
    return TestFunction(
        "rastrigin",
        "10 n + sum_i (x_i^2 - 10 cos(2 pi x_i))",
        _rastrigin,
        dim,
        0.0,
        (0.4,) * dim,
        ((-5.12, 5.12),) * dim,
        "Rastrigin (1974)",
        ((0.0,) * dim,),
    )


_REGISTRY: dict[str, Callable[..., TestFunction]] = {
    "sphere": sphere,
    "booth": booth,
    "matyas": matyas,
    "beale": beale,
    "rosenbrock": rosenbrock,
    "himmelblau": himmelblau,
    "three_hump_camel": three_hump_camel,
    "styblinski_tang": styblinski_tang,
    "rastrigin": rastrigin,
}
_N_DIMENSIONAL = {"sphere", "rosenbrock", "styblinski_tang", "rastrigin"}


def names() -> list[str]:
    """The names of the built-in test functions."""
    return sorted(_REGISTRY)


def get(name: str, dim: int | None = None) -> TestFunction:
    """The test function called ``name`` (``dim`` for the n-dimensional ones)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise unknown_name("test function", name, _REGISTRY) from None
    if dim is None:
        return factory()
    if name not in _N_DIMENSIONAL:
        if dim != 2:
            raise InputError(f"{name} is a function of 2 variables, got dim={dim}")
        return factory()
    return factory(dim)


def is_known(name: str) -> bool:
    """Whether ``name`` names a built-in test function."""
    return name in _REGISTRY
