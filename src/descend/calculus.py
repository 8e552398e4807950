"""Derivatives and gradients, exact, from JAX's automatic differentiation.

>>> import descend as ds
>>> float(ds.derivative(lambda x: 5 * x**2)(1.0))
10.0
>>> [float(g) for g in ds.gradient(lambda x, z, m: 2*x**2 + 6*z**2 + 7*m**3)(1.0, 1.0, 1.0)]
[4.0, 12.0, 21.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from descend._tree import PyTree
from descend.errors import DescendError, DescendTypeError, FunctionError, InputError


def as_point(x: Any) -> PyTree:
    """A point as the front doors take it: a list or tuple of numbers is one array.

    As in SciPy, ``[0.0, 0.0]`` is a vector (not a pytree of two scalars): a list or a
    tuple (not a NamedTuple) whose leaves are all numbers, nested lists included,
    becomes a NumPy array (of floats, or of complex numbers if one is complex).
    Anything else (arrays, dicts, sequences holding arrays) keeps its structure.
    """
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        leaves = jax.tree.leaves(x)
        numbers = (int, float, complex, np.number, np.bool_)
        if leaves and all(isinstance(leaf, numbers) for leaf in leaves):
            try:
                array = np.asarray(x)
            except ValueError:  # ragged: a pytree after all
                return x
            return array if array.dtype.kind == "c" else array.astype(float)
    return x


def as_float_tree(tree: PyTree) -> PyTree:
    """Integers and bools become floats (JAX differentiates floats only); floats are kept.

    A list or tuple of numbers becomes one array first (:func:`as_point`).
    """

    def to_float(leaf):
        array = jnp.asarray(leaf)
        if jnp.issubdtype(array.dtype, jnp.inexact):
            return array
        return array.astype(jnp.result_type(float))

    return jax.tree.map(to_float, as_point(tree))


def call_user(f: Callable[..., Any], *args: Any, what: str = "the function") -> Any:
    """``f(*args)`` for a function the user wrote; what it raises is reported as its own.

    Called at trace time (inside ``jax.jit`` / ``jax.grad``): an exception from inside
    ``f`` becomes a :class:`FunctionError` that says which function raised what, and on
    which arguments, instead of surfacing from deep inside JAX. descend's own errors
    pass unchanged.
    """
    try:
        return f(*args)
    except DescendError:
        raise
    except Exception as error:
        raise FunctionError(
            f"{what} raised {type(error).__name__}: {_first_line(error)} when called with "
            f"{_described(args)}{_traced_hint(error)}"
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "(no message)"


def _described(args: tuple) -> str:
    def one(arg):
        leaves = jax.tree.leaves(arg)
        if len(leaves) == 1 and leaves[0] is arg:
            shape, dtype = jnp.shape(arg), jnp.result_type(arg)
            return f"an array of shape {shape} and dtype {dtype}" if shape else f"a {dtype} scalar"
        shapes = jax.tree.map(lambda leaf: tuple(jnp.shape(leaf)), arg)
        return f"a {type(arg).__name__} of arrays {shapes}"

    return ", ".join(one(arg) for arg in args) or "no arguments"


def _traced_hint(error: BaseException) -> str:
    if isinstance(error, jax.errors.JAXTypeError) or "Tracer" in type(error).__name__:
        return (
            "; it is called with traced JAX arrays inside jax.jit: use jax.numpy "
            "(jnp.where instead of if on values, no float() or numpy of them)"
        )
    return ""


def check_scalar_output(value: Any, *, what: str = "the function") -> None:
    """Raise :class:`FunctionError` unless ``value`` is a single real number.

    Called at trace time, so the check costs nothing per evaluation.
    """
    if not isinstance(value, _NUMBER_TYPES):
        raise FunctionError(
            f"{what} must return a single real scalar, got {_kind_of(value)}{_hint_for(value)}"
        )
    shape = jnp.shape(value)
    dtype = jnp.result_type(value)
    if shape != ():
        hint = " (sum or average it, e.g. jnp.sum(...))" if len(shape) else ""
        raise FunctionError(f"{what} must return a single real scalar, got shape {shape}{hint}")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise FunctionError(
            f"{what} must return a real scalar, got a complex value of dtype {dtype}; "
            "minimize a real quantity such as jnp.abs(z)**2"
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise FunctionError(
            f"{what} must return a floating-point scalar, got dtype {dtype}; "
            "differentiable functions are made of float operations"
        )


# What a function may return: arrays (traced ones are jax.Array) and Python numbers.
# Anything else (a function, a list, None) is refused before JAX tries to read its
# dtype and fails with a message that does not name the cause.
_NUMBER_TYPES = (jax.Array, np.ndarray, np.generic, int, float, complex)


def _kind_of(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)):
        count = len(value)
        return f"a {type(value).__name__} of {count} item{'' if count == 1 else 's'}"
    return f"{'a function' if callable(value) else 'an object'} of type {type(value).__name__}"


def _hint_for(value: Any) -> str:
    if value is None:
        return " (is a return statement missing?)"
    if isinstance(value, (list, tuple)):
        return " (return one number, e.g. jnp.sum(...) of them)"
    if callable(value):
        return (
            "; it makes functions rather than computing a value (a factory): pass the "
            "function it makes, e.g. make() rather than make"
        )
    return ""


def scalar_function(f: Callable[..., Any], *, what: str = "the function") -> Callable[..., Any]:
    """Wrap ``f`` so that its output is checked to be a real scalar when traced."""

    @functools.wraps(f)
    def checked(*args, **kwargs):
        value = call_user(functools.partial(f, **kwargs), *args, what=what)
        check_scalar_output(value, what=what)
        return value

    return checked


def _argnums_for(args: tuple, argnums: int | tuple[int, ...] | None) -> int | tuple[int, ...]:
    if not args:
        raise InputError("call the gradient with the point(s) to evaluate it at, e.g. g(1.0)")
    if argnums is None:
        return 0 if len(args) == 1 else tuple(range(len(args)))
    return argnums


def value_and_grad(
    f: Callable[..., Any], argnums: int | tuple[int, ...] | None = None
) -> Callable[..., tuple[jax.Array, PyTree]]:
    """Return a function giving ``(f(*args), gradient of f)`` in one pass.

    Parameters
    ----------
    f:
        A function of one or more arguments (floats, arrays or pytrees) returning a
        real scalar, written with arithmetic and ``jax.numpy``.
    argnums:
        Which positional arguments to differentiate with respect to. By default all of
        them: with one argument the gradient has that argument's structure; with
        several it is a tuple, one entry per argument.

    Examples
    --------
    >>> import descend as ds
    >>> value, grad = ds.value_and_grad(lambda x: x**3)(2.0)
    >>> float(value), float(grad)
    (8.0, 12.0)
    """
    checked = scalar_function(f)

    def evaluate(*args, **kwargs):
        args = tuple(as_float_tree(a) for a in args)
        return jax.value_and_grad(checked, argnums=_argnums_for(args, argnums))(*args, **kwargs)

    return evaluate


def gradient(
    f: Callable[..., Any], argnums: int | tuple[int, ...] | None = None
) -> Callable[..., PyTree]:
    r"""Return the gradient :math:`\nabla f` as a function.

    For ``f(x, z, m)`` the gradient at a point is the tuple of partial derivatives
    :math:`(\partial f/\partial x, \partial f/\partial z, \partial f/\partial m)`; for a
    function of one vector it is a vector; for a function of a dict of arrays it is a
    dict of the same shape. See :func:`value_and_grad` for ``argnums``.

    Examples
    --------
    >>> import descend as ds
    >>> g = ds.gradient(lambda x, z, m: 2*x**2 + 6*z**2 + 7*m**3)
    >>> tuple(float(v) for v in g(1.0, 1.0, 1.0))
    (4.0, 12.0, 21.0)
    >>> import jax.numpy as jnp
    >>> ds.gradient(lambda v: jnp.sum(v**2))(jnp.array([1.0, 2.0])).tolist()
    [2.0, 4.0]
    """
    with_value = value_and_grad(f, argnums)

    def grad_only(*args, **kwargs):
        return with_value(*args, **kwargs)[1]

    return grad_only


def derivative(f: Callable[[Any], Any], order: int = 1) -> Callable[[Any], jax.Array]:
    r"""Return the derivative :math:`f'` (or the ``order``-th one) of a function of one variable.

    Examples
    --------
    >>> import descend as ds
    >>> float(ds.derivative(lambda x: 5 * x**2)(1.0))
    10.0
    >>> float(ds.derivative(lambda x: 5 * x**2, order=2)(1.0))
    10.0
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(f"order must be an integer >= 1, got {order!r}")
    result = scalar_function(f)
    for _ in range(order):
        result = jax.grad(result)

    def evaluate(x):
        x = as_float_tree(x)
        if jnp.shape(x) != ():
            raise InputError(
                f"derivative() is for functions of one number, got an argument of shape "
                f"{jnp.shape(x)}; use gradient() for functions of vectors"
            )
        return result(x)

    return evaluate


def hessian(f: Callable[[Any], Any]) -> Callable[[Any], PyTree]:
    """Return the Hessian (matrix of second derivatives) of a function of one argument.

    Raises
    ------
    DescendTypeError
        ``x`` holds complex numbers: the Hessian of a real function of complex inputs
        is not a complex matrix (differentiate with respect to the real and imaginary
        parts, e.g. ``hessian(lambda v: f(v[..., 0] + 1j * v[..., 1]))``).

    Examples
    --------
    >>> import descend as ds, jax.numpy as jnp
    >>> ds.hessian(lambda v: v[0]**2 * v[1])(jnp.array([1.0, 2.0])).tolist()
    [[4.0, 2.0], [2.0, 0.0]]
    """
    checked = scalar_function(f)

    def evaluate(x):
        x = as_float_tree(x)
        if any(jnp.iscomplexobj(leaf) for leaf in jax.tree.leaves(x)):
            raise DescendTypeError(
                "hessian takes real inputs: the Hessian of a real function of complex "
                "numbers is that of their real and imaginary parts; differentiate "
                "lambda v: f(v[..., 0] + 1j * v[..., 1]) at the stacked parts instead"
            )
        return jax.hessian(checked)(x)

    return evaluate


# ------------------------------------------------------------- functions JAX cannot trace


def is_tracer_error(error: BaseException | None) -> bool:
    """Whether ``error`` is JAX refusing to turn a traced array into a concrete value
    (``np.asarray``, ``float()``, ``if`` on a traced array): the function is not JAX code."""
    kinds = (
        jax.errors.TracerArrayConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )
    return isinstance(error, kinds)


# Relative steps of the finite differences, as SciPy's approx_derivative chooses them for
# float64: eps**(1/2) forward, eps**(1/3) central.
_RELATIVE_STEP = {
    "2-point": np.finfo(np.float64).eps ** 0.5,
    "3-point": np.finfo(np.float64).eps ** (1 / 3),
}


def finite_difference(
    fun: Callable[[np.ndarray], float],
    x: np.ndarray,
    value: float,
    method: str = "2-point",
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    r"""The gradient of ``fun`` at ``x`` by finite differences, on the host (NumPy).

    The steps are SciPy's (``scipy.optimize.approx_fprime`` / ``_numdiff``):
    :math:`h_i = r\, \mathrm{sign}(x_i) \max(1, |x_i|)` with :math:`r = \epsilon^{1/2}`
    for ``"2-point"`` (forward, :math:`(f(x + h_i e_i) - f(x)) / h_i`) and
    :math:`\epsilon^{1/3}` for ``"3-point"`` (central, :math:`(f(x + h_i e_i) - f(x -
    h_i e_i)) / 2h_i`), :math:`\epsilon` the float64 machine epsilon and
    :math:`\mathrm{sign}(0) = 1`; each divisor is the step as the floating-point
    numbers represent it. Inside ``lower <= x <= upper``, a forward step that would
    leave the box is taken backward, and a central one that does not fit becomes the
    one-sided three-point formula :math:`(-3 f(x) + 4 f(x + h) - f(x + 2h)) / 2h` toward
    the far side (a step shortened when neither side has room), as SciPy does.

    Parameters
    ----------
    fun:
        The function of a float64 vector of shape ``(n,)``, returning a real number.
    x:
        ``(n,)`` float64, the point; ``value`` is ``fun(x)``.
    method:
        ``"2-point"`` (n evaluations) or ``"3-point"`` (2n evaluations).
    lower, upper:
        ``(n,)`` bounds, or ``None`` for none.

    Returns
    -------
    ``(n,)`` float64 array.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    sign = np.where(x >= 0, 1.0, -1.0)
    h = _RELATIVE_STEP[method] * sign * np.maximum(1.0, np.abs(x))
    room_low, room_high = x - lower, upper - x
    grad = np.empty(n)
    for i in range(n):
        if method == "2-point":
            step = h[i]
            if not lower[i] <= x[i] + step <= upper[i]:
                if abs(step) <= max(room_low[i], room_high[i]):
                    step = -step
                else:
                    step = room_high[i] if room_high[i] >= room_low[i] else -room_low[i]
            moved = x.copy()
            moved[i] = x[i] + step
            grad[i] = (fun(moved) - value) / (moved[i] - x[i])
            continue
        step = abs(h[i])
        if room_low[i] >= step and room_high[i] >= step:
            below, above = x.copy(), x.copy()
            below[i], above[i] = x[i] - step, x[i] + step
            grad[i] = (fun(above) - fun(below)) / (above[i] - below[i])
            continue
        # One-sided toward the side with more room, two steps of at most half of it.
        toward = 1.0 if room_high[i] >= room_low[i] else -1.0
        room = room_high[i] if toward > 0 else room_low[i]
        step = toward * min(step, 0.5 * room)
        near = min(room_high[i], room_low[i])
        if abs(step) <= near:  # both sides fit after all with a shorter step: central
            below, above = x.copy(), x.copy()
            below[i], above[i] = x[i] - near, x[i] + near
            grad[i] = (fun(above) - fun(below)) / (above[i] - below[i])
            continue
        one, two = x.copy(), x.copy()
        one[i], two[i] = x[i] + step, x[i] + 2 * step
        grad[i] = (-3.0 * value + 4.0 * fun(one) - fun(two)) / (two[i] - x[i])
    return grad


# What a function run on the host raised in compiled code: (exception, point), in order.
# The callback returns NaN instead (an exception cannot cross XLA), so the run stops as
# diverged; minimize clears this before a run and raises the first one after it.
HOST_ERRORS: list[tuple[BaseException, Any]] = []


class HostObjective:
    """A function JAX cannot trace, made callable (and differentiable) in compiled code.

    ``f`` runs on the host with NumPy arrays, called from the compiled loop through
    ``jax.pure_callback``; its gradient comes from ``jac`` (SciPy's argument): a
    function of ``x`` returning the gradient, ``True`` when ``f`` returns ``(value,
    gradient)``, or ``"2-point"`` / ``"3-point"`` (:func:`finite_difference`). A
    ``jax.custom_vjp`` gives JAX the gradient, so the engine runs it like any objective:
    a value-only evaluation (a line-search trial) calls ``f`` alone. Under ``jax.vmap``
    (many starts) the starts are evaluated one after the other.

    Equal (and hashing alike) for the same ``f``, ``jac`` and box, so repeated runs share
    their compiled programs.
    """

    def __init__(self, fun: Callable, jac: Callable | Literal[True] | str, box: Any = None):
        self.fun, self.jac, self.box = fun, jac, box

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostObjective) and (self.fun, self.jac, self.box) == (
            other.fun,
            other.jac,
            other.box,
        )

    def __hash__(self) -> int:
        return hash((HostObjective, self.fun, self.jac, self.box))

    def with_box(self, box: Any) -> HostObjective:
        """The same function, its finite differences kept inside ``box``."""
        return HostObjective(self.fun, self.jac, box)

    # -- on the host

    def _point(self, flat: np.ndarray, like: tuple) -> Any:
        treedef, shapes = like
        leaves, at = [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=int))
            leaves.append(np.array(flat[at : at + size]).reshape(shape))
            at += size
        return jax.tree.unflatten(treedef, leaves)

    def _value(self, flat: np.ndarray, like: tuple) -> float:
        out = self.fun(self._point(flat, like))
        if self.jac is True:
            out = out[0]
        return float(np.asarray(out))

    def _value_and_grad(self, flat: np.ndarray, like: tuple) -> tuple[float, np.ndarray]:
        if self.jac is True:
            value, grad = self.fun(self._point(flat, like))
        elif callable(self.jac):
            value, grad = self.fun(self._point(flat, like)), self.jac(self._point(flat, like))
        else:
            value = self._value(flat, like)
            lower = upper = None
            if self.box is not None:
                lower, upper = np.asarray(self.box.lower), np.asarray(self.box.upper)
            grad = finite_difference(
                lambda point: self._value(point, like), flat, value, self.jac, lower, upper
            )
        flat_grad = np.concatenate(
            [np.ravel(np.asarray(leaf, dtype=float)) for leaf in jax.tree.leaves(grad)]
        )
        return float(np.asarray(value)), flat_grad

    def checked(self, x0: PyTree) -> HostObjective:
        """``self``, after checking once on the host that ``f`` and ``jac`` answer at ``x0``."""
        leaves = [np.asarray(leaf, dtype=float) for leaf in jax.tree.leaves(x0)]
        like = (jax.tree.structure(x0), tuple(leaf.shape for leaf in leaves))
        flat = np.concatenate([leaf.ravel() for leaf in leaves])
        try:
            out = self.fun(self._point(flat, like))
        except Exception as error:
            raise FunctionError(
                f"f raised {type(error).__name__} at x0: {_first_line(error)}"
            ) from error
        if self.jac is True:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise FunctionError(
                    "jac=True means f returns (value, gradient), as in SciPy; f returned "
                    f"{type(out).__name__}"
                )
            out = out[0]
        if np.shape(out) != () or not np.isrealobj(out):
            raise FunctionError(
                f"f must return a single real number, got {type(out).__name__} of shape "
                f"{np.shape(out)}"
            )
        if self.jac is True or callable(self.jac):
            try:
                _, grad = self._value_and_grad(flat, like)
            except Exception as error:
                raise FunctionError(
                    f"the gradient (jac) raised {type(error).__name__} at x0: {_first_line(error)}"
                ) from error
            if grad.size != flat.size:
                raise FunctionError(
                    f"the gradient (jac) must have one number per variable ({flat.size}), "
                    f"got {grad.size}"
                )
        return self

    # -- in compiled code

    def __call__(self, x: PyTree) -> jax.Array:
        flat, _ = ravel_pytree(x)
        like = (jax.tree.structure(x), tuple(np.shape(leaf) for leaf in jax.tree.leaves(x)))
        dtype = flat.dtype
        # A callback may run in a thread of XLA's where float64 is off (minimize turns it on
        # for its own thread only), and JAX would cut its float64 arguments and results to
        # float32 there: float64 numbers travel as pairs of uint32, bitcast at both ends.
        wide = dtype == jnp.float64
        carried = jnp.uint32 if wide else dtype

        def shape_of(shape):
            return jax.ShapeDtypeStruct((*shape, 2) if wide else shape, carried)

        def to_host(array):
            return jax.lax.bitcast_convert_type(array, jnp.uint32) if wide else array

        def from_device(point):
            point = np.asarray(point)
            return point.view(np.float64).reshape(point.shape[:-1]) if wide else point

        def send(array):
            array = np.asarray(array, np.float64 if wide else dtype)
            return (array.reshape(*array.shape, 1).view(np.uint32) if wide else array).copy()

        def receive(array):
            return jax.lax.bitcast_convert_type(array, jnp.float64) if wide else array

        def value_on_host(point):
            point = np.asarray(from_device(point), dtype=np.float64)
            try:
                return send(self._value(point, like))
            except Exception as error:  # reported by the caller after the run
                HOST_ERRORS.append((error, self._point(point, like)))
                return send(np.nan)

        def both_on_host(point):
            point = np.asarray(from_device(point), dtype=np.float64)
            try:
                value, grad = self._value_and_grad(point, like)
            except Exception as error:
                HOST_ERRORS.append((error, self._point(point, like)))
                value, grad = np.nan, np.full(point.shape, np.nan)
            return send(value), send(grad)

        @jax.custom_vjp
        def value(point):
            return receive(
                jax.pure_callback(
                    value_on_host, shape_of(()), to_host(point), vmap_method="sequential"
                )
            )

        def forward(point):
            v, g = jax.pure_callback(
                both_on_host, (shape_of(()), shape_of(flat.shape)), to_host(point),
                vmap_method="sequential",
            )  # fmt: skip
            return receive(v), receive(g)

        def backward(grad, cotangent):
            return (cotangent * grad,)

        value.defvjp(forward, backward)
        return value(flat)
