"""Test functions for minimization, with their formulas and known minima.

Each entry (``ds.functions.rosenbrock``, ``ds.functions.booth``, ...) is a
:class:`TestFunction`: a function of one vector, written in ``jax.numpy``, that is
called, differentiated and passed to :func:`descend.minimize`, :func:`descend.compare`
and :mod:`descend.plot` as it is (as ``scipy.optimize.rosen`` is passed to SciPy), and
that carries its formula, its global minimizers and minimum value, a suggested start
and a plotting range.

sphere, rosenbrock, styblinski_tang and rastrigin are n-dimensional: they take a vector
of any length (rosenbrock at least 2), their metadata is for 2 variables, and
``with_dim(n)`` gives it for ``n``. The others are functions of 2 variables.

>>> import descend as ds, jax.numpy as jnp
>>> float(ds.functions.rosenbrock(jnp.array([1.0, 1.0])))
0.0
>>> result = ds.minimize(ds.functions.rosenbrock, [-1.2, 1.0])  # as scipy.optimize.rosen
>>> [round(float(v), 6) for v in result.x]
[1.0, 1.0]
>>> f = ds.functions.rosenbrock.with_dim(10)
>>> len(f.start), f.minimizers[0].shape, f.minimum
(10, (10,), 0.0)
>>> ds.functions.names()[:3]
['ackley', 'beale', 'booth']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from descend.errors import DescendTypeError, InputError, check_int, suggest, unknown_name


@dataclass(frozen=True, eq=False)
class TestFunction:
    """A function with known minima, for trying optimizers.

    Called on a vector ``x`` it returns ``fn(x)``, a scalar; it works eagerly and under
    ``jax.jit``, ``jax.grad`` and :func:`descend.gradient`, and can be given wherever
    descend expects an objective.

    Attributes
    ----------
    name, formula:
        Its name and its formula as text.
    fn:
        The function of one vector ``x`` (length ``dim``), written in ``jax.numpy``. For
        the built-in functions it refuses, when traced, a vector of a length it is not
        defined for (:class:`~descend.errors.InputError`); the n-dimensional ones accept
        any length from their minimum up.
    dim:
        Number of variables the metadata below is for.
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
    # For an n-dimensional function: its smallest dimension, and the (cached) builder of
    # its metadata for another dimension. None for a function of a fixed number of variables.
    _min_dim: int | None = field(default=None, repr=False)
    _resize: Callable[[int], TestFunction] | None = field(default=None, repr=False)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """``fn(x)``: the value at ``x``, a vector of ``dim`` numbers (any length >= the
        minimum for an n-dimensional function); a 0-d array."""
        return self.fn(jnp.asarray(x))

    def __repr__(self) -> str:
        return f"TestFunction({self.name!r}, dim={self.dim}, minimum={self.minimum:.10g})"

    def _repr_html_(self) -> str:
        """A table of its formula, minimum, minimizers, start and range (Jupyter's
        display). The minimizers are shown once computed (:attr:`minimizers`, a Newton
        refinement compiled on first use); before, their starting guesses, marked ``≈``."""
        from descend import _html

        if "minimizers" in self.__dict__:
            minimizers = "; ".join(_html.point(m) for m in self.minimizers)
        else:
            minimizers = "; ".join("≈ " + _html.point(g) for g in self._minimizer_guesses)
        rows = [
            ("formula", self.formula),
            ("dim", f"{self.dim} (any from {self._min_dim})" if self._min_dim else str(self.dim)),
            ("minimum", _html.number(self.minimum, 10)),
            ("minimizers", minimizers),
            ("start", _html.point(self.start)),
            ("bounds", ", ".join(f"[{low:g}, {high:g}]" for low, high in self.bounds)),
        ]
        if self.reference:
            rows.append(("reference", self.reference))
        return _html.table(rows, caption=f"ds.functions.{self.name}")

    @property
    def __name__(self) -> str:
        # Read by functools.wraps (descend.gradient) and by code written for plain functions.
        return self.name

    @property
    def n_dimensional(self) -> bool:
        """Whether it is defined for other numbers of variables (see :meth:`with_dim`)."""
        return self._resize is not None

    @cached_property
    def minimizers(self) -> list[np.ndarray]:
        """The global minimizers, each of shape ``(dim,)``, refined to float64 precision by
        Newton's method."""
        return [_newton(self.fn, guess) for guess in self._minimizer_guesses]

    def with_dim(self, dim: int) -> TestFunction:
        """This function of ``dim`` variables: its start, bounds, minimizers and minimum
        for that length (the same ``fn``).

        ``dim`` is an integer at least the function's smallest dimension (1, or 2 for
        rosenbrock). A function of a fixed number of variables accepts only that number
        and returns itself.

        Raises
        ------
        InputError
            ``dim`` is not an integer, is below the smallest dimension, or differs from
            the number of variables of a function that is not n-dimensional.

        Examples
        --------
        >>> import descend as ds
        >>> f = ds.functions.sphere.with_dim(3)
        >>> f.dim, f.start, f.minimum
        (3, (1.5, 1.5, 1.5), 0.0)
        """
        if self._resize is None or self._min_dim is None:
            if check_int("dim", dim, minimum=1) != self.dim:
                raise InputError(
                    f"{self.name} is a function of {self.dim} variables, got dim={dim!r}; "
                    f"only the n-dimensional test functions ({', '.join(_N_DIMENSIONAL)}) take "
                    "another dim"
                )
            return self
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < self._min_dim:
            raise InputError(
                f"{self.name} is defined for dim >= {self._min_dim} (an integer), got dim={dim!r}"
            )
        return self if dim == self.dim else self._resize(int(dim))


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


def _of_vector(name: str, formula: Callable, length: int, *, at_least: bool = False) -> Callable:
    """``formula`` behind a check that its argument is one vector of a length it is
    defined for: exactly ``length``, or at least ``length`` when ``at_least``.

    The check reads the shape, which is static under ``jit`` and ``grad``: a wrong
    length is refused once, when traced, with an :class:`InputError` naming the
    function, instead of a JAX indexing error or a silently wrong value.
    """

    def fn(x):
        x = jnp.asarray(x)
        _check_vector(name, jnp.shape(x), length, at_least)
        # Integers would make the value an integer and JAX refuses to differentiate them.
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            x = x.astype(jnp.result_type(float))
        return formula(x)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The {name} function of one vector (see descend.functions.{name})."
    return fn


def _check_vector(name: str, shape: tuple[int, ...], length: int, at_least: bool) -> None:
    """Raise :class:`InputError` unless ``shape`` is ``(length,)`` (``(n,)``, ``n >= length``)."""
    if len(shape) == 1 and (shape[0] >= length if at_least else shape[0] == length):
        return
    if len(shape) == 1:
        got = f"length {shape[0]}"
    else:
        got = "a scalar" if shape == () else f"an array of shape {shape}"
    if at_least:
        raise InputError(
            f"{name} takes one vector of length >= {length}, got {got}"
            + ("; pass the point as a vector, e.g. [x]" if shape == () else "")
        )
    raise InputError(
        f"{name} is a function of {length} variables: it takes one vector of length {length}, "
        f"got {got}"
    )


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


def _six_hump_camel(x):
    a, b = x[0], x[1]
    return (4 - 2.1 * a**2 + a**4 / 3) * a**2 + a * b + (-4 + 4 * b**2) * b**2


def _goldstein_price(x):
    a, b = x[0], x[1]
    first = 1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a**2 - 14 * b + 6 * a * b + 3 * b**2)
    second = 30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a**2 + 48 * b - 36 * a * b + 27 * b**2)
    return first * second


def _mccormick(x):
    a, b = x[0], x[1]
    return jnp.sin(a + b) + (a - b) ** 2 - 1.5 * a + 2.5 * b + 1


def _ackley(x):
    squares = jnp.sum(x**2)
    # sqrt has no derivative at 0, the minimizer: the double where gives the gradient 0
    # there (a subgradient) instead of NaN, and the value is unchanged.
    positive = squares > 0
    radius = jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)
    return (
        -20 * jnp.exp(-0.2 * radius / jnp.sqrt(x.shape[0]))
        - jnp.exp(jnp.mean(jnp.cos(2 * jnp.pi * x)))
        + jnp.e
        + 20
    )


def _easom(x):
    a, b = x[0], x[1]
    return -jnp.cos(a) * jnp.cos(b) * jnp.exp(-((a - jnp.pi) ** 2 + (b - jnp.pi) ** 2))


def _styblinski_tang(x):
    return 0.5 * jnp.sum(x**4 - 16 * x**2 + 5 * x)


def _rastrigin(x):
    return 10.0 * x.shape[0] + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x))


def _styblinski_tang_coordinate() -> float:
    # The 1-D minimizer is the smallest real root of the derivative 4t^3 - 32t + 5 = 0.
    roots = np.roots([4.0, 0.0, -32.0, 5.0])
    return float(np.min(roots[np.isreal(roots)].real))


# One checked function per n-dimensional family, shared by all its dimensions, so that a
# compiled minimization loop is reused whatever metadata the call resolved.
_SPHERE = _of_vector("sphere", _sphere, 1, at_least=True)
_ROSENBROCK = _of_vector("rosenbrock", _rosenbrock, 2, at_least=True)
_STYBLINSKI_TANG = _of_vector("styblinski_tang", _styblinski_tang, 1, at_least=True)
_RASTRIGIN = _of_vector("rastrigin", _rastrigin, 1, at_least=True)


# The builders below are cached, so each dimension's minimizers are polished once.
@functools.lru_cache(maxsize=32)
def _sphere_of(dim: int) -> TestFunction:
    return TestFunction(
        "sphere",
        "sum_i x_i^2",
        _SPHERE,
        dim,
        0.0,
        (1.5,) * dim,
        ((-2.0, 2.0),) * dim,
        "De Jong (1975)",
        ((0.0,) * dim,),
        1,
        _sphere_of,
    )


@functools.lru_cache(maxsize=32)
def _rosenbrock_of(dim: int) -> TestFunction:
    start = (-1.2, 1.0) if dim == 2 else tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(dim))
    return TestFunction(
        "rosenbrock",
        "sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2",
        _ROSENBROCK,
        dim,
        0.0,
        start,
        ((-2.0, 2.0), (-1.0, 3.0)) + ((-2.0, 2.0),) * (dim - 2),
        "Rosenbrock (1960)",
        ((1.0,) * dim,),
        2,
        _rosenbrock_of,
    )


@functools.lru_cache(maxsize=32)
def _styblinski_tang_of(dim: int) -> TestFunction:
    t = _styblinski_tang_coordinate()
    return TestFunction(
        "styblinski_tang",
        "0.5 sum_i (x_i^4 - 16 x_i^2 + 5 x_i)",
        _STYBLINSKI_TANG,
        dim,
        0.5 * dim * (t**4 - 16 * t**2 + 5 * t),
        (-2.0,) * dim,
        ((-5.0, 5.0),) * dim,
        "Styblinski & Tang (1990)",
        ((t,) * dim,),
        1,
        _styblinski_tang_of,
    )


@functools.lru_cache(maxsize=32)
def _rastrigin_of(dim: int) -> TestFunction:
    return TestFunction(
        "rastrigin",
        "10 n + sum_i (x_i^2 - 10 cos(2 pi x_i))",
        _RASTRIGIN,
        dim,
        0.0,
        (0.4,) * dim,
        ((-5.12, 5.12),) * dim,
        "Rastrigin (1974)",
        ((0.0,) * dim,),
        1,
        _rastrigin_of,
    )


sphere = _sphere_of(2)
"""Sphere, ``sum_i x_i^2``: any length >= 1; minimum 0 at the origin. De Jong (1975)."""

booth = TestFunction(
    "booth",
    "(x + 2y - 7)^2 + (2x + y - 5)^2",
    _of_vector("booth", _booth, 2),
    2,
    0.0,
    (-5.0, 5.0),
    ((-10.0, 10.0), (-10.0, 10.0)),
    "Jamil & Yang (2013)",
    ((1.0, 3.0),),
)
"""Booth's function of 2 variables; minimum 0 at (1, 3). Jamil & Yang (2013)."""

matyas = TestFunction(
    "matyas",
    "0.26 (x^2 + y^2) - 0.48 x y",
    _of_vector("matyas", _matyas, 2),
    2,
    0.0,
    (8.0, -6.0),
    ((-10.0, 10.0), (-10.0, 10.0)),
    "Jamil & Yang (2013)",
    ((0.0, 0.0),),
)
"""Matyas' function of 2 variables, a narrow valley; minimum 0 at (0, 0). Jamil & Yang (2013)."""

beale = TestFunction(
    "beale",
    "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
    _of_vector("beale", _beale, 2),
    2,
    0.0,
    (1.0, 1.0),
    ((-4.5, 4.5), (-4.5, 4.5)),
    "Beale (1958)",
    ((3.0, 0.5),),
)
"""Beale's function of 2 variables; minimum 0 at (3, 0.5). Beale (1958)."""

rosenbrock = _rosenbrock_of(2)
"""Rosenbrock's banana valley, ``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``: any
length >= 2; minimum 0 at (1, ..., 1). Rosenbrock (1960)."""

himmelblau = TestFunction(
    "himmelblau",
    "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
    _of_vector("himmelblau", _himmelblau, 2),
    2,
    0.0,
    (0.0, 0.0),
    ((-5.0, 5.0), (-5.0, 5.0)),
    "Himmelblau (1972)",
    # Approximate locations, refined by Newton's method in ``minimizers``.
    ((3.0, 2.0), (-2.8, 3.1), (-3.8, -3.3), (3.6, -1.8)),
)
"""Himmelblau's function of 2 variables; minimum 0 at four points, (3, 2) one of them.
Himmelblau (1972)."""

three_hump_camel = TestFunction(
    "three_hump_camel",
    "2x^2 - 1.05x^4 + x^6/6 + xy + y^2",
    _of_vector("three_hump_camel", _three_hump_camel, 2),
    2,
    0.0,
    (0.5, -0.5),
    ((-2.0, 2.0), (-2.0, 2.0)),
    "Jamil & Yang (2013)",
    ((0.0, 0.0),),
)
"""The three-hump camel function of 2 variables; minimum 0 at (0, 0). Jamil & Yang (2013)."""

six_hump_camel = TestFunction(
    "six_hump_camel",
    "(4 - 2.1x^2 + x^4/3) x^2 + xy + (-4 + 4y^2) y^2",
    _of_vector("six_hump_camel", _six_hump_camel, 2),
    2,
    -1.031628453489877,
    (0.5, -0.5),
    ((-3.0, 3.0), (-2.0, 2.0)),
    "Dixon & Szegö (1978); Jamil & Yang (2013)",
    ((0.0898, -0.7126), (-0.0898, 0.7126)),
)
"""The six-hump camel function of 2 variables: six local minima, two global ones of value
about -1.0316 at (0.0898, -0.7126) and (-0.0898, 0.7126). Dixon & Szegö (1978)."""

goldstein_price = TestFunction(
    "goldstein_price",
    "[1 + (x+y+1)^2 (19 - 14x + 3x^2 - 14y + 6xy + 3y^2)] "
    "[30 + (2x-3y)^2 (18 - 32x + 12x^2 + 48y - 36xy + 27y^2)]",
    _of_vector("goldstein_price", _goldstein_price, 2),
    2,
    3.0,
    (-0.3, -0.7),
    ((-2.0, 2.0), (-2.0, 2.0)),
    "Goldstein & Price (1971)",
    ((0.0, -1.0),),
)
"""Goldstein and Price's function of 2 variables; minimum 3 at (0, -1), local minima
around it. Goldstein & Price (1971)."""

mccormick = TestFunction(
    "mccormick",
    "sin(x + y) + (x - y)^2 - 1.5x + 2.5y + 1",
    _of_vector("mccormick", _mccormick, 2),
    2,
    -1.913222954981037,
    (0.0, 0.0),
    ((-1.5, 4.0), (-3.0, 4.0)),
    "McCormick (1976); Jamil & Yang (2013)",
    ((-0.5471975511965976, -1.5471975511965976),),
)
"""McCormick's function of 2 variables, a bounded problem: unbounded below along x = y
towards minus infinity, its minimum in the box ``bounds`` = [-1.5, 4] x [-3, 4] is about
-1.9132 at (-0.5472, -1.5472) (``minimize(mccormick, bounds=mccormick.bounds)``).
McCormick (1976)."""

ackley = TestFunction(
    "ackley",
    "-20 exp(-0.2 sqrt((x^2 + y^2)/2)) - exp((cos 2 pi x + cos 2 pi y)/2) + e + 20",
    _of_vector("ackley", _ackley, 2),
    2,
    0.0,
    (0.3, -0.2),
    ((-5.0, 5.0), (-5.0, 5.0)),
    "Ackley (1987)",
    ((0.0, 0.0),),
)
"""Ackley's function of 2 variables: many local minima, the global one 0 at the origin,
where it is not differentiable (a cone; the gradient there is taken as 0). Ackley (1987)."""

easom = TestFunction(
    "easom",
    "-cos(x) cos(y) exp(-((x - pi)^2 + (y - pi)^2))",
    _of_vector("easom", _easom, 2),
    2,
    -1.0,
    (2.5, 3.5),
    ((-1.0, 7.0), (-1.0, 7.0)),
    "Easom (1990)",
    ((float(np.pi), float(np.pi)),),
)
"""Easom's function of 2 variables: flat almost everywhere, minimum -1 at (pi, pi) in a
narrow well. Easom (1990)."""

styblinski_tang = _styblinski_tang_of(2)
"""Styblinski-Tang, ``0.5 sum_i (x_i^4 - 16 x_i^2 + 5 x_i)``: any length n >= 1;
minimum about -39.166 n at (-2.9035, ..., -2.9035). Styblinski & Tang (1990)."""

rastrigin = _rastrigin_of(2)
"""Rastrigin, ``10 n + sum_i (x_i^2 - 10 cos(2 pi x_i))``: any length n >= 1, many local
minima; global minimum 0 at the origin. Rastrigin (1974)."""


_ENTRIES: dict[str, TestFunction] = {
    f.name: f
    for f in (
        sphere,
        booth,
        matyas,
        beale,
        rosenbrock,
        himmelblau,
        three_hump_camel,
        six_hump_camel,
        goldstein_price,
        mccormick,
        ackley,
        easom,
        styblinski_tang,
        rastrigin,
    )
}
_N_DIMENSIONAL = tuple(name for name, f in _ENTRIES.items() if f.n_dimensional)


def names() -> list[str]:
    """The names of the built-in test functions, sorted."""
    return sorted(_ENTRIES)


def get(name: str, dim: int | None = None) -> TestFunction:
    """The test function called ``name``; with ``dim``, its metadata for ``dim`` variables.

    ``get(name)`` is the module attribute of that name (``get("rosenbrock") is
    rosenbrock``); ``get(name, dim)`` is ``get(name).with_dim(dim)``.

    Raises
    ------
    InputError
        ``name`` is not a test function (the message suggests the closest), or ``dim``
        does not suit it (see :meth:`TestFunction.with_dim`).
    DescendTypeError
        ``name`` is not text (e.g. ``get`` itself was passed as an objective).
    """
    if not isinstance(name, str):
        raise DescendTypeError(
            f"get() takes the name of a test function, e.g. get('rosenbrock'), got "
            f"{type(name).__name__}; to minimize a test function pass the function itself, "
            "e.g. ds.minimize(ds.functions.rosenbrock, x0)"
        )
    try:
        function = _ENTRIES[name]
    except KeyError:
        raise unknown_name("test function", name, _ENTRIES) from None
    return function if dim is None else function.with_dim(dim)


def is_known(name: str) -> bool:
    """Whether ``name`` names a built-in test function."""
    return isinstance(name, str) and name in _ENTRIES


def check_objective_text(text: str) -> None:
    """Refuse text to minimize that is a bare word but no test function's name.

    A word alone (``"rosenbrok"``) parses as an expression in one variable of that
    name, which has no minimum and would run off to minus infinity: it is a misspelt
    name (the message suggests the closest) or an expression missing its operator.

    Raises
    ------
    InputError
        ``text`` is a bare word that names no test function.
    """
    word = text.strip()
    if word.isidentifier() and not is_known(word):
        close = suggest(word, _ENTRIES)
        # A near name is the likely fix; otherwise it may be an expression missing its
        # operator.
        operator = "" if close else (
            f"; an expression to minimize needs an operator, e.g. '{word}**2'"
        )  # fmt: skip
        raise InputError(
            f"{word!r} is not a test function{close} (test functions: "
            f"{', '.join(names())}){operator}"
        )
