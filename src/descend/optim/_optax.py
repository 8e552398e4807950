"""Descend optimizers as Optax transformations (``Optimizer.as_optax``), and the
learning rate that ``optax.inject_hyperparams`` keeps in an Optax state.

Apart from :mod:`descend.optim.interop` (which builds optimizers) so that
:class:`~descend.optim.base.Optimizer` can use it without an import cycle: nothing here
imports :mod:`descend.optim.base`. Optax itself is imported when first needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from descend._tree import PyTree
from descend.errors import InputError

# The keyword arguments of an Optax ``update`` that descend's ``step`` takes: the loss
# at ``params`` and the loss itself (the names of ``optax.lbfgs`` and its line search).
_STEP_ARGUMENTS = ("value", "value_fn")


def optax_module() -> Any:
    """The ``optax`` package, or an ImportError that says how to install it."""
    try:
        import optax
    except ImportError:
        raise ImportError(
            "Optax interop needs the optax package, which is not installed: "
            "pip install optax (or pip install 'descend[optax]')"
        ) from None
    return optax


def as_optax(optimizer: Any) -> Any:
    r"""``optimizer`` as an ``optax.GradientTransformationExtraArgs``.

    ``init(params)`` is ``optimizer.init``; ``update(grads, state, params, **extra)``
    takes one ``optimizer.step`` and returns :math:`u = \theta_{new} - \theta` with the
    new state, so that ``optax.apply_updates(params, u)`` continues descend's
    trajectory. ``params`` is required (descend's steps are functions of the
    parameters). The extra arguments ``value`` (the loss at ``params``) and
    ``value_fn`` (the loss as a function of the params) are passed on to ``step``: the
    line searches (``lbfgs``, ``gd(lr=None)``) need both, as ``optax.lbfgs`` does;
    others (``grad``, ...) are ignored.

    Rounding: :math:`\theta + (\theta_{new} - \theta)` is :math:`\theta_{new}` exactly
    whenever :math:`\theta_{new}` lies within a factor 2 of :math:`\theta` (the
    subtraction is then exact, Sterbenz's lemma): every step that is small beside the
    parameter it moves. Otherwise (a parameter crossing or leaving 0, a step larger
    than the parameter) it may differ by one rounding of the step, :math:`|\Delta|
    \le \tfrac12 \mathrm{ulp}(\theta_{new} - \theta)`; nothing added to the params can
    avoid it, since ``optax.apply_updates`` rounds the sum. The state is descend's
    (a NamedTuple), so ``optax.tree_utils`` helpers find its fields by name.

    Raises
    ------
    ImportError
        Optax is not installed.
    InputError
        (from ``update``) ``params`` not given, or ``value`` / ``value_fn`` not given to
        an optimizer that needs the objective.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, optax, descend as ds
    >>> tx = ds.optim.adam(lr=0.1).as_optax()
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> grads = jax.grad(lambda p: jnp.sum(p**2))(params)
    >>> updates, state = tx.update(grads, state, params)
    >>> optax.apply_updates(params, updates).tolist()
    [0.8999999761581421, -1.899999976158142]
    """
    optax = optax_module()
    described = repr(optimizer)

    def init(params: PyTree) -> Any:
        return optimizer.init(params)

    def update(updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any):
        if params is None:
            raise InputError(
                f"{described}.as_optax() needs the params: call "
                "update(grads, state, params), as optax.apply_updates will add the "
                "updates to them"
            )
        value, value_fn = (extra.get(name) for name in _STEP_ARGUMENTS)
        if optimizer.needs_value_fn and (value is None or value_fn is None):
            raise InputError(
                f"{described} evaluates the objective (a line search): call "
                "update(grads, state, params, value=f(params), value_fn=f), as for "
                "optax.lbfgs"
            )
        new_params, state = optimizer.step(params, updates, state, value=value, value_fn=value_fn)
        return jax.tree.map(jnp.subtract, new_params, params), state

    return optax.GradientTransformationExtraArgs(init, update)


def injected_lr(state: Any) -> jax.Array | float:
    """The learning rate that ``optax.inject_hyperparams`` keeps in an Optax state
    (the first ``hyperparams["learning_rate"]`` found), or NaN when there is none."""
    found = jax.tree.leaves(state, is_leaf=_injects_lr)
    for node in found:
        if _injects_lr(node):
            return node.hyperparams["learning_rate"]
    return float("nan")


def _injects_lr(node: Any) -> bool:
    hyperparams = getattr(node, "hyperparams", None)
    return isinstance(hyperparams, Mapping) and "learning_rate" in hyperparams
