"""The optimizer interface: a pure ``init`` / ``step`` pair over any pytree.

An optimizer is a value, not an object with hidden state::

    opt = descend.optim.gd(lr=0.1)
    state = opt.init(params)
    params, state = opt.step(params, grads, state)

``step`` also accepts two keyword arguments that the engine always passes and most
algorithms ignore: ``value`` (the objective at ``params``) and ``value_fn`` (the
objective as a function of params, for line searches). Both functions are pure and
trace under ``jax.jit``; the state is a pytree, so it jits, saves and shards like params.

Called outside a trace (a Python loop over ``opt.step``), ``step`` runs as one
compiled program, compiled at the first call and kept per optimizer and ``value_fn``
(:func:`compiled_step`): a step of L-BFGS on three parameters takes 0.1 ms instead
of the 0.7 s of running its line search operation by operation. Inside a trace
(``jax.jit``, ``grad``, ``vmap``, the engine's loops) it is the plain function.

Complex parameters are stepped as pairs of reals, as ``torch.optim`` steps them (see
:mod:`descend.optim.pairs`): every ``Optimizer`` wraps the ``init`` and ``step`` it is
built with, which then see only real arrays.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import jax
import jax.numpy as jnp

from descend._tree import PyTree
from descend.errors import DescendTypeError, InputError, check_positive, is_traced, warn
from descend.optim import pairs

State = Any


class StepFn(Protocol):
    def __call__(
        self,
        params: PyTree,
        grads: PyTree,
        state: State,
        *,
        value: jax.Array | None = None,
        value_fn: Callable[[PyTree], jax.Array] | None = None,
    ) -> tuple[PyTree, State]: ...


@dataclass(frozen=True, eq=False)
class Optimizer:
    r"""A gradient-descent algorithm as two pure functions.

    Attributes
    ----------
    name:
        The algorithm's name (``"gd"``, ``"adam"``, ...).
    init:
        ``init(params) -> state``.
    step:
        ``step(params, grads, state, *, value=None, value_fn=None) -> (params, state)``.
    hyperparams:
        The hyperparameters it was built with, for display, saving and comparison.
    needs_value_fn:
        True when ``step`` must be given ``value`` and ``value_fn`` (line searches).
    evaluations:
        Optional ``evaluations(state) -> int``: how many objective evaluations the
        algorithm made inside its steps (line-search trials, SAM's adversarial
        gradients), for result reporting (``minimize``'s ``n_fev``).
    eval_params:
        Optional ``eval_params(params, state) -> params``: the point to evaluate,
        predict with and save, when it is not the point the steps hold. The training
        loop holds the point where the gradient is taken (schedule-free's :math:`y`);
        the evaluation point (its average :math:`x`, ``optimizer.eval()`` in the
        ``schedulefree`` package) is computed from it and the state. ``None``: the
        params themselves. Use :func:`eval_point`, which applies it or not.
    train_params:
        ``train_params(eval_params, state) -> params``, the inverse of ``eval_params``
        (``optimizer.train()``): the training point from a saved evaluation point and
        the state, to continue training. Given exactly when ``eval_params`` is. Use
        :func:`train_point`.
    evaluations_with_gradient:
        True when each of those evaluations also computed the gradient (L-BFGS's
        strong-Wolfe trials, SAM's adversarial points, Sophia's Hessian-vector
        products), so that ``minimize`` counts them in ``n_jev`` too; False (default)
        for evaluations of the value alone (backtracking searches).
    complex_params:
        ``"pairs"`` (default): a complex leaf :math:`x + iy` is stepped as the real
        pair :math:`(x, y)` with the gradient :math:`(\partial f/\partial x,
        \partial f/\partial y)`, as ``torch.optim`` steps it (``view_as_real``); the
        gradient passed to ``step`` is JAX's (the conjugate of torch's ``.grad``) and
        the state of a complex leaf is that of its pairs. ``"refuse"``: ``init`` and
        ``step`` raise :class:`~descend.errors.DescendTypeError` naming the complex
        leaves, for algorithms without a pairs form (Adafactor, Muon). Either way
        ``init`` and ``step`` are wrapped once, when the optimizer is built (see
        :mod:`descend.optim.pairs`); with real params they call the functions given.
        Integer and boolean leaves are refused either way
        (:class:`~descend.errors.DescendTypeError` naming them), as ``torch`` refuses
        them as parameters. ``"members"``: left to the optimizers this one hands the
        params to, unwrapped (:func:`~descend.optim.partition`, whose groups may
        differ).

    Two optimizers are equal (and hash alike) when their name, hyperparameters,
    ``needs_value_fn`` and functions agree, functions comparing by their code and
    the values they capture. Equal optimizers share compiled loops, so
    ``adam(lr=0.1)`` built twice compiles once, while optimizers whose functions
    capture different values never share one.

    ``step`` is given as a plain function and kept as an :class:`EagerStep`: the same
    function under a trace, a compiled program when called eagerly.
    """

    name: str
    init: Callable[[PyTree], State]
    step: StepFn
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    needs_value_fn: bool = False
    evaluations: Callable[[State], jax.Array] | None = None
    complex_params: str = "pairs"
    eval_params: Callable[[PyTree, State], PyTree] | None = None
    train_params: Callable[[PyTree, State], PyTree] | None = None
    evaluations_with_gradient: bool = False

    def __post_init__(self) -> None:
        if (self.eval_params is None) != (self.train_params is None):
            raise InputError(
                "an optimizer with eval_params needs train_params (its inverse), and the "
                "other way round: give both or neither"
            )
        init, step = self.init, self.step
        if isinstance(step, EagerStep):  # another optimizer's step, e.g. from replace()
            step = step.function
        init = init.__dict__.get(_UNCOPIED, init)  # another optimizer's init: its own
        if self.complex_params == "pairs":
            init, step = pairs.as_real_pairs(init, step, name=self._described())
        elif self.complex_params == "refuse":
            init, step = pairs.refusing_complex(init, step, name=self._described())
        elif self.complex_params != "members":
            raise InputError(
                "complex_params must be 'pairs', 'refuse' or 'members', got "
                f"{self.complex_params!r}"
            )
        object.__setattr__(self, "init", distinct_buffers(init))
        object.__setattr__(self, "step", EagerStep(step, self))
        if (
            self.eval_params is not None
            and self.train_params is not None  # set together (checked above)
            and self.complex_params == "pairs"
        ):
            object.__setattr__(self, "eval_params", pairs.point_as_real_pairs(self.eval_params))
            object.__setattr__(self, "train_params", pairs.point_as_real_pairs(self.train_params))

    def _described(self) -> str:
        """The name, with the optimizer it wraps (chain, reduce_on_plateau) if any."""
        inner = self.hyperparams.get("optimizer")
        if isinstance(inner, Optimizer):
            return f"{inner._described()} (the optimizer inside {self.name})"
        return self.name

    def _key(self, visiting: frozenset[int] = frozenset()) -> tuple:
        # Compiled loops are cached on the optimizer, so two optimizers may compare
        # equal only when they compute the same thing: same functions (code, and the
        # values they captured) and same hyperparameters. Two optimizers built by the
        # same factory with equal arguments then share one compiled program.
        visiting = visiting | {id(self)}
        return (
            self.name,
            _value_key(self.init, visiting),
            # __post_init__ wrapped step in an EagerStep, which keeps the function.
            _value_key(self.step.function, visiting),  # type: ignore[attr-defined]
            tuple(sorted((key, _value_key(v, visiting)) for key, v in self.hyperparams.items())),
            self.needs_value_fn,
            _value_key(self.evaluations, visiting),
            _value_key(self.eval_params, visiting),
            _value_key(self.train_params, visiting),
            self.evaluations_with_gradient,
        )

    @functools.cached_property
    def _identity(self) -> tuple[tuple, int]:
        # Computed once: compiled loops look the optimizer up at every call and epoch.
        key = self._key()
        return key, hash(key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optimizer):
            return NotImplemented
        return self is other or self._identity[0] == other._identity[0]

    def __hash__(self) -> int:
        return self._identity[1]

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hyperparams.items())
        return f"{self.name}({args})"

    def as_optax(self) -> Any:
        """This optimizer as an ``optax.GradientTransformationExtraArgs``, for a training
        loop written for Optax (see :func:`descend.optim.interop.as_optax`)."""
        from descend.optim._optax import as_optax

        return as_optax(self)


class _Identity:
    """Compares equal only to a wrapper of the same object (kept alive by the wrapper)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def distinct_buffers(init: Callable[[PyTree], State]) -> Callable[[PyTree], State]:
    """``init`` whose state holds no array of the params nor the same array twice.

    Many states start from the params (Prodigy's and DoG's starting point, gd's last
    point) or from one zero scalar used for two fields. Sharing is harmless until a user
    donates the params and the state to a jitted step (``donate_argnums``), which XLA
    refuses for a buffer passed twice. Shared arrays are copied once, at ``init``; a
    state built under a trace is left as it is.
    """

    def fresh_state(params: PyTree) -> State:
        state = init(params)
        seen = {id(leaf) for leaf in jax.tree.leaves(params)}

        def own(leaf: Any) -> Any:
            if not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer):
                return leaf
            if id(leaf) in seen:
                # jnp.copy is dispatched asynchronously; a copy through the host or
                # jax.device_put(leaf, may_alias=False) waits for the params to be ready
                # (0.5-0.9 ms a call of minimize, measured).
                return jnp.copy(leaf)
            seen.add(id(leaf))
            return leaf

        return jax.tree.map(own, state)

    fresh_state.__dict__[_UNCOPIED] = init
    return fresh_state


# Where distinct_buffers keeps the init it wraps: an optimizer built from another's init
# wraps that one again, so that both are wrapped alike and compare equal.
_UNCOPIED = "_init_without_copies"


def _value_key(value: Any, visiting: frozenset[int]) -> Hashable:
    """A hashable stand-in for ``value`` that is equal only for values that act alike.

    Functions compare by code, captured values and defaults (recursively), hashable
    values by type and value, anything else (arrays, lists, ...) by identity. A
    function or optimizer met again inside itself stands for itself by identity,
    which ends the recursion.
    """
    if id(value) in visiting:
        return _Identity(value)
    if isinstance(value, Optimizer):
        return value._key(visiting)
    if isinstance(value, EagerStep):
        return _value_key(value.function, visiting)
    if inspect.ismethod(value):
        # A bound method acts on its instance: the instance is part of what it computes.
        return (
            "method",
            _value_key(value.__func__, visiting),
            _value_key(value.__self__, visiting),
        )
    if inspect.isfunction(value):
        return _function_key(value, visiting | {id(value)})
    if isinstance(value, tuple):
        return (type(value), tuple(_value_key(item, visiting) for item in value))
    try:
        hash(value)
    except TypeError:
        return _Identity(value)
    # The type keeps 1, 1.0 and True apart: they trace to different dtypes.
    return (type(value), value)


_UNBOUND = object()


def _function_key(function: Callable, visiting: frozenset[int]) -> tuple:
    cells = function.__closure__ or ()
    captured = []
    for cell in cells:
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet bound (a function defined after its user)
            contents = _UNBOUND
        captured.append(_value_key(contents, visiting))
    kwdefaults = sorted((function.__kwdefaults__ or {}).items())
    return (
        function.__code__,
        tuple(captured),
        _value_key(function.__defaults__ or (), visiting),
        tuple((name, _value_key(default, visiting)) for name, default in kwdefaults),
    )


# ------------------------------------------------------------ steps called eagerly

# After this many programs compiled for one optimizer's step, each for a value_fn not
# seen before, a warning says why eager steps are slow (a new value_fn at every call).
MANY_PROGRAMS = 8

# Errors that mean a step cannot be traced (Python control flow on values): such a
# step keeps running operation by operation, as it always did.
_UNTRACEABLE = (
    jax.errors.ConcretizationTypeError,  # bool(tracer), float(tracer)
    jax.errors.TracerArrayConversionError,  # np.asarray(tracer)
    jax.errors.TracerIntegerConversionError,  # range(tracer), list[tracer]
    jax.errors.NonConcreteBooleanIndexError,  # x[x > 0]
)


class EagerStep:
    """An optimizer's ``step`` as callers see it.

    Under a trace (any argument a JAX tracer) it calls ``function`` itself, so the
    engine's compiled loops and a user's ``jax.jit`` see the step inline. Called
    eagerly it runs :func:`compiled_step` for its optimizer and ``value_fn``: one
    compilation, then one dispatch per step instead of one per operation (L-BFGS's line
    search is a ``lax.while_loop`` whose body would otherwise compile at every call).

    ``value_fn`` is a static argument keyed on the function object, as ``jax.jit``
    keys functions: pass the same function at every step. A new function at every call
    (a lambda capturing new data) compiles at every call, and after
    :data:`MANY_PROGRAMS` of them a :class:`~descend.errors.DescendWarning` says so. A
    ``value_fn`` that cannot be hashed, or a step that cannot be traced, runs as the
    plain function.
    """

    def __init__(self, function: StepFn, optimizer: Optimizer):
        functools.update_wrapper(self, function)
        self.function = function
        self._optimizer = optimizer
        self._programs = 0
        self._traceable = True

    def __call__(self, params, grads, state, *, value=None, value_fn=None):
        if not self._traceable or _traced((params, grads, state, value)) or not _hashable(value_fn):
            return self.function(params, grads, state, value=value, value_fn=value_fn)
        misses = compiled_step.cache_info().misses
        program = compiled_step(self._optimizer, value_fn)
        if compiled_step.cache_info().misses > misses:
            self._compiled_one()
        try:
            return program(params, grads, state, value)
        except _UNTRACEABLE:
            self._traceable = False
            return self.function(params, grads, state, value=value, value_fn=value_fn)

    def _compiled_one(self) -> None:
        self._programs += 1
        if self._programs == MANY_PROGRAMS:
            warn(
                f"{self._optimizer.name}.step has compiled {MANY_PROGRAMS} programs, one for "
                "each new value_fn: pass the same value_fn function at every step (not a "
                "new lambda per step), or call step inside your own jax.jit"
            )

    def __repr__(self) -> str:
        return f"<step of {self._optimizer!r}>"


@functools.lru_cache(maxsize=32)
def compiled_step(optimizer: Optimizer, value_fn: Callable | None) -> Callable:
    """``optimizer.step`` with this ``value_fn``, jitted: ``program(params, grads, state, value)``.

    Cached per (equal) optimizer and ``value_fn`` object, like the engine's loops.
    """
    function = optimizer.step.function  # type: ignore[attr-defined]  # an EagerStep's

    def step(params, grads, state, value):
        return function(params, grads, state, value=value, value_fn=value_fn)

    return jax.jit(step)


def _traced(tree: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


Schedule = Callable[[jax.Array], jax.Array]
LearningRate = float | Schedule


@overload
def check_lr(lr: float, *, name: str = "lr") -> float: ...
@overload
def check_lr(lr: Any, *, name: str = "lr") -> LearningRate: ...
def check_lr(lr: Any, *, name: str = "lr") -> LearningRate:
    """Validate a learning rate: a finite number > 0, or a schedule ``f(count) -> lr``."""
    if callable(lr):
        return lr
    if isinstance(lr, bool):
        raise DescendTypeError(f"{name} must be a number or a schedule, got {lr!r}")
    return check_positive(name, lr)


def lr_at(lr: LearningRate, count: jax.Array) -> jax.Array:
    """The learning rate for update number ``count`` (0-based)."""
    return lr(count) if callable(lr) else jnp.asarray(lr)


def lr_of(optimizer: Optimizer, state: State, count: Any) -> jax.Array | float:
    """The effective learning rate of ``optimizer``'s next step, wrappers included.

    An optimizer with ``lr`` gives it (a schedule evaluated at ``count``, the 0-based
    number of steps taken). A wrapper (:func:`~descend.optim.chain`,
    :func:`~descend.optim.reduce_on_plateau`, anything whose hyperparameters hold the
    wrapped ``optimizer`` and whose state holds its state as ``inner`` or
    ``optimizer``) gives the wrapped one's rate, times its ``scale`` where its state
    has one; a :func:`~descend.optim.partition` the rate its groups share (NaN when
    they differ; it is then called outside ``jit``); an Optax transformation
    (:func:`~descend.optim.from_optax`) the ``learning_rate`` that
    ``optax.inject_hyperparams`` keeps in its state. NaN for an optimizer without a
    learning rate.

    >>> from descend import optim
    >>> opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(lr=0.1))
    >>> float(lr_of(opt, opt.init(0.0), 0))
    0.1
    """
    lr = optimizer.hyperparams.get("lr")
    if lr is not None:
        if callable(lr):
            return lr_at(lr, jnp.asarray(count))
        return lr if is_traced(lr) else float(lr)
    groups = optimizer.hyperparams.get("optimizers")
    if groups and hasattr(state, "groups"):  # a partition: the rate its groups share
        rates = {float(lr_of(member, state.groups[label], count)) for label, member in groups}
        return rates.pop() if len(rates) == 1 else float("nan")
    if optimizer.name == "from_optax":  # optax.inject_hyperparams keeps it in the state
        from descend.optim._optax import injected_lr

        return injected_lr(state)
    inner = optimizer.hyperparams.get("optimizer")
    algorithm_at = getattr(optimizer, "algorithm_at", None)
    if algorithm_at is not None:  # inject_hyperparams: the rate of the values in the state
        return lr_of(algorithm_at(state), state.inner, count)
    inner_state = getattr(state, "inner", getattr(state, "optimizer", None))
    if not isinstance(inner, Optimizer) or inner_state is None:
        return float("nan")
    rate = lr_of(inner, inner_state, count)
    scale = getattr(state, "scale", None)
    return rate if scale is None else rate * scale


def eval_point(optimizer: Optimizer, params: PyTree, state: State) -> PyTree:
    """The point to evaluate, predict with and save: ``optimizer.eval_params(params,
    state)``, or ``params`` for an optimizer whose steps hold that point already.

    What ``optimizer.eval()`` gives in the ``schedulefree`` package and
    ``optax.contrib.schedule_free_eval_params`` in Optax. Traceable; ``minimize``,
    ``fit``, checkpoints and the scikit-learn estimators report this point.

    >>> from descend import optim
    >>> opt = optim.schedule_free_sgd(lr=0.25)
    >>> params, state = 1.0, opt.init(1.0)
    >>> for _ in range(2):  # on f(x) = x ** 2: the steps hold y, the average is x
    ...     params, state = opt.step(params, 2 * params, state)
    >>> round(float(params), 6), round(float(eval_point(opt, params, state)), 6)
    (0.3625, 0.375)
    """
    return params if optimizer.eval_params is None else optimizer.eval_params(params, state)


def train_point(optimizer: Optimizer, params: PyTree, state: State) -> PyTree:
    """The inverse of :func:`eval_point`: the point the steps hold, from the evaluation
    point ``params`` and the state (``optimizer.train()`` in ``schedulefree``).

    Equal to the training point up to rounding (one or two units in the last place):
    what continuing a run from saved weights starts from.
    """
    return params if optimizer.train_params is None else optimizer.train_params(params, state)


def apply_updates(params: PyTree, updates: PyTree) -> PyTree:
    """``params + updates`` leaf by leaf, keeping each leaf's dtype."""
    return jax.tree.map(lambda p, u: (p + u).astype(jnp.result_type(p)), params, updates)


def maximizes(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` (or one it wraps or chains) ascends: ``maximize=True``."""
    members = list(optimizer.hyperparams.values())
    while members:
        member = members.pop()
        if isinstance(member, (list, tuple)):  # chain's parts, partition's (label, optimizer)
            members.extend(member)
        elif isinstance(member, Optimizer) and maximizes(member):
            return True
    return optimizer.hyperparams.get("maximize") is True
