"""Hyperparameters kept in the optimizer's state, so that they may vary inside one program.

An :class:`~descend.optim.base.Optimizer` captures its hyperparameters as Python
numbers. :func:`inject_hyperparams` makes an optimizer that keeps some of them in its
state instead (as ``optax.inject_hyperparams`` does) and builds the algorithm from the
state at every step. Its state then carries the values, so ``jax.vmap`` over stacked
states runs every configuration of a sweep at once in one compiled program
(``ds.fit(..., lr=[...])``), each with its own learning rate, momentum or betas, and
each configuration takes exactly the steps of the optimizer built with its values alone.

Under the trace the values are JAX tracers: the hyperparameter checks let them through
(:func:`descend.errors.is_traced`) and the algorithms take their general path (a traced
``momentum`` has a momentum buffer, see :func:`descend.optim.blocks.nonzero`).
:func:`check_configurations` therefore builds every configuration concretely first,
which checks its values, and refuses a sweep whose configurations need states of
different shapes (``sgd`` with ``momentum`` 0 has no buffer) or whose values choose
between code paths rather than enter the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend._tree import PyTree
from descend.errors import InputError
from descend.optim.base import Optimizer, State, _value_key
from descend.optim.registry import hyperparameter, rebuild


class InjectedState(NamedTuple):
    """State of an :func:`inject_hyperparams` optimizer: the algorithm's state
    (``inner``) and the values of the injected hyperparameters (``hyperparams``, name to
    array: a scalar, or shape ``(2,)`` for a pair such as ``betas``)."""

    inner: State
    hyperparams: dict[str, jax.Array]


class InjectedOptimizer(Optimizer):
    """An :func:`inject_hyperparams` optimizer: an :class:`Optimizer` that also says
    which algorithm a state's values build (:meth:`algorithm_at`, which
    :func:`~descend.optim.base.lr_of` reads for the rate)."""

    def algorithm_at(self, state: InjectedState) -> Optimizer:
        """The optimizer built with the values in ``state`` (traceable)."""
        return rebuild(self.hyperparams["optimizer"], **state.hyperparams)


def inject_hyperparams(optimizer: Optimizer, names: Sequence[str]) -> InjectedOptimizer:
    """``optimizer`` with the hyperparameters ``names`` read from its state.

    The result's ``init(params)`` starts the state with ``optimizer``'s own values of
    them; :func:`init_with` starts it with others. Its ``step`` builds the algorithm
    from the values in the state (:func:`rebuild`) and takes that algorithm's step,
    so a state with ``lr`` 0.1 steps exactly as ``rebuild(optimizer, lr=0.1)`` does.
    ``jax.vmap`` over stacked states (each from :func:`init_with`) gives every
    configuration its own values in one program: check them with
    :func:`check_configurations` first.

    Parameters
    ----------
    optimizer:
        An optimizer built by name (:func:`descend.optim.get` or a factory such as
        ``ds.optim.adam``), possibly inside a wrapper such as ``reduce_on_plateau``.
    names:
        Hyperparameters of it (or of the optimizer it wraps) that take numbers or pairs
        of numbers: ``lr``, ``momentum``, ``betas``, ``weight_decay``, ``eps``, ...

    Raises
    ------
    InputError
        A name that is not one of its hyperparameters, or given twice.

    Source: ``optax.inject_hyperparams``, which keeps hyperparameters in the state
    for the same purpose.
    """
    names = tuple(names)
    if len(set(names)) != len(names):
        raise InputError(f"each hyperparameter may be injected once, got {list(names)}")
    # A tuple, not a dict: optimizers compare by the values their functions capture, and
    # two injections of equal optimizers then share compiled programs.
    base = tuple((name, hyperparameter(optimizer, name)) for name in names)

    def init(params: PyTree) -> InjectedState:
        return InjectedState(optimizer.init(params), _as_arrays(dict(base), params))

    def built(state: InjectedState) -> Optimizer:
        return rebuild(optimizer, **state.hyperparams)

    def step(params, grads, state, *, value=None, value_fn=None):
        new_params, inner = built(state).step(
            params, grads, state.inner, value=value, value_fn=value_fn
        )
        return new_params, InjectedState(inner, state.hyperparams)

    eval_params = train_params = None
    if optimizer.eval_params is not None:

        def eval_params(params, state):
            return built(state).eval_params(params, state.inner)  # type: ignore[misc]

        def train_params(params, state):
            return built(state).train_params(params, state.inner)  # type: ignore[misc]

    evaluations = None
    if optimizer.evaluations is not None:

        def evaluations(state):
            # The algorithm built from the state counts: gd's line search counts its
            # trials, gd with a rate (a swept lr) makes none.
            count = built(state).evaluations
            return jnp.zeros((), jnp.int32) if count is None else count(state.inner)

    injected = InjectedOptimizer(
        "inject_hyperparams",
        init,
        step,
        {"optimizer": optimizer, "names": names},
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=evaluations,
        complex_params="members",
        eval_params=eval_params,
        train_params=train_params,
        evaluations_with_gradient=optimizer.evaluations_with_gradient,
    )
    return injected


def init_with(injected: Optimizer, params: PyTree, values: Mapping[str, Any]) -> InjectedState:
    """The state of an :func:`inject_hyperparams` optimizer for one configuration:
    the algorithm built with ``values`` (name to number or pair) started at ``params``,
    and those values. Traceable (``jax.vmap`` it over stacked params and values)."""
    inner = injected.hyperparams["optimizer"]
    names = injected.hyperparams["names"]
    if set(values) != set(names):
        raise InputError(f"values must give exactly {list(names)}, got {sorted(values)}")
    algorithm = rebuild(inner, **values)
    return InjectedState(algorithm.init(params), _as_arrays(values, params))


def _as_arrays(values: Mapping[str, Any], params: PyTree) -> dict[str, jax.Array]:
    """Each value as an array of the params' float dtype (a pair as shape ``(2,)``)."""
    dtype = jnp.result_type(*jax.tree.leaves(params), jnp.float32)
    return {name: _tree.asarray(value, dtype) for name, value in values.items()}


def check_configurations(
    optimizer: Optimizer, configurations: Sequence[Mapping[str, Any]], params: PyTree
) -> list[Optimizer]:
    """Build each configuration of a sweep concretely and check that one program can
    run them all; return the optimizers, one per configuration.

    Each configuration maps hyperparameter names (the same names in all) to values.
    Building it checks the values (an :class:`~descend.errors.InputError` names the
    configuration). Then the state each would start from at ``params`` must have the
    shapes, dtypes and structure of the injected optimizer's traced state, and the
    algorithm must take traced values.

    Raises
    ------
    InputError
        A value the algorithm refuses; values whose states differ (``sgd`` with
        ``momentum=0`` keeps no momentum buffer); a hyperparameter that chooses the
        code path (a flag, or a value compared in Python) rather than entering the
        arithmetic.
    """
    if not configurations:
        raise InputError("a sweep needs at least one configuration")
    names = sorted(configurations[0])
    for values in configurations:
        if sorted(values) != names:
            raise InputError(
                f"every configuration must set the same hyperparameters, got {names} and "
                f"{sorted(values)}"
            )
        for key, value in values.items():
            if not _numeric(value):
                swept = list(dict.fromkeys(repr(own[key]) for own in configurations))
                raise InputError(
                    f"{key}=[{', '.join(swept)}] cannot vary inside one program ({value!r} "
                    "is no number): a sweep varies numbers and pairs of numbers (lr, "
                    "momentum, betas, weight_decay, eps, ...), not flags, names or "
                    "schedules; run each value in a call of its own"
                )
    built = []
    for number, values in enumerate(configurations):
        shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
        try:
            built.append(rebuild(optimizer, **values))
        except InputError as error:
            raise InputError(f"configuration {number} ({shown}): {error}") from None
    injected = inject_hyperparams(optimizer, names)
    try:
        traced = jax.eval_shape(
            lambda p, v: init_with(injected, p, v), params, dict(configurations[0])
        )
        jax.eval_shape(
            lambda p, s: injected.step(p, p, s, value=jnp.zeros(()), value_fn=_value_fn),
            params,
            traced,
        )
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError, TypeError, InputError) as error:  # fmt: skip
        raise InputError(
            f"{optimizer.name}'s {', '.join(names)} cannot vary inside one program (the "
            f"algorithm decides its code path on it: {type(error).__name__}); run each "
            "value in a call of its own instead"
        ) from None
    expected = jax.tree.structure(traced.inner), _shapes(traced.inner)
    for number, (algorithm, values) in enumerate(zip(built, configurations, strict=True)):
        state = jax.eval_shape(algorithm.init, params)
        if (jax.tree.structure(state), _shapes(state)) != expected:
            shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
            raise InputError(
                f"configuration {number} ({shown}) gives {optimizer.name} a state of other "
                "shapes than the sweep's other configurations (a value of 0 can drop a "
                "buffer, as momentum=0 drops sgd's momentum buffer); sweep it in a "
                "separate call"
            )
    return built


def _numeric(value: Any) -> bool:
    """A real number or a pair of them (not a bool, a string or a callable)."""
    if isinstance(value, (tuple, list)):
        return len(value) == 2 and all(_numeric(part) for part in value)
    if isinstance(value, (bool, str)) or callable(value):
        return False
    try:
        return jnp.ndim(value) == 0 and jnp.isrealobj(value)
    except TypeError:
        return False


def _value_fn(params: PyTree) -> jax.Array:
    return jnp.zeros(())


def _shapes(tree: PyTree) -> list[tuple[tuple[int, ...], Any]]:
    return [(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(tree)]


def program_key(optimizer: Optimizer, names: Sequence[str]) -> tuple:
    """What the step of ``inject_hyperparams(optimizer, names)`` computes with, the
    values of ``names`` aside: equal for optimizers that differ only in those values.

    Its step builds the algorithm from the name and the hyperparameters
    (:func:`rebuild`), the injected ones taken from the state, so two such optimizers
    take the same steps from the same state: a compiled sweep keyed by this serves
    sweeps of other values without compiling again.
    """
    hyperparams = dict(optimizer.hyperparams)
    inner = hyperparams.pop("optimizer", None)
    own = tuple(
        sorted((key, _value_key(value, frozenset())) for key, value in hyperparams.items()
               if key not in names)
    )  # fmt: skip
    wrapped = program_key(inner, names) if isinstance(inner, Optimizer) else None
    return (optimizer.name, tuple(sorted(names)), own, wrapped)
