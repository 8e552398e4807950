"""Optax interop, both ways: a descend optimizer as an Optax transformation, and an
Optax transformation as a descend optimizer.

- ``opt.as_optax()`` (:func:`as_optax`) drops any descend optimizer into a training
  loop written for Optax (Flax's, Equinox's or your own): ``tx.update(grads, state,
  params)`` returns ``updates = new_params - params``, which ``optax.apply_updates``
  adds back.
- :func:`from_optax` runs any Optax transformation (an alias, your own
  ``optax.chain(...)``, one built with ``optax.inject_hyperparams``) in
  :func:`descend.minimize`, :func:`descend.fit`, :func:`descend.compare`, checkpoints
  and resume.

Optax is an optional dependency (``pip install optax``): it is imported by these
functions when first called, never by ``import descend``.
"""

from __future__ import annotations

from typing import Any

from descend.errors import DescendTypeError
from descend.optim._optax import as_optax, optax_module
from descend.optim.base import Optimizer


def from_optax(tx: Any, *, label: str | None = None) -> Optimizer:
    r"""An Optax transformation as a descend :class:`~descend.optim.Optimizer`.

    ``step(params, grads, state, value=, value_fn=)`` is one step of the plain Optax
    loop::

        updates, state = tx.update(grads, state, params, value=value, grad=grads,
                                   value_fn=value_fn)
        params = optax.apply_updates(params, updates)

    (the extra arguments given when descend's loop has them, as ``minimize`` and
    ``fit`` always do, and only to a ``GradientTransformationExtraArgs``: a plain
    ``GradientTransformation`` gets none), so trajectories are those of the Optax loop,
    bit for bit. ``optax.lbfgs`` and ``optax.polyak_sgd`` get the loss they need.

    The state is Optax's own (its NamedTuples), and is saved and restored by
    :func:`descend.save`, ``fit(..., resume=)`` and :mod:`descend.checkpoint` like any
    other; a file cannot hold the transformation's code, so load it back with the same
    one: ``load(path, optimizer=from_optax(tx))``, ``fit(..., optimizer=from_optax(tx),
    resume=path)``. With ``optax.inject_hyperparams`` the learning rate in
    ``state.hyperparams["learning_rate"]`` is the one ``fit`` reports (its history's
    ``lr``), and may be changed between runs by assigning to it, as in an Optax loop.

    Complex parameters go to Optax as they are (Optax's conventions, not descend's
    pairs). Two optimizers from the same ``tx``, or from transformations built alike
    (same functions, same captured values), are equal and share compiled programs.

    Parameters
    ----------
    tx:
        An ``optax.GradientTransformation`` (or ``GradientTransformationExtraArgs``),
        e.g. ``optax.adam(1e-3)``, ``optax.chain(optax.clip(1.0), optax.sgd(0.1))``.
    label:
        A name to show in ``repr``, :func:`descend.compare` tables and saved files
        (default none: ``from_optax()``).

    Raises
    ------
    ImportError
        Optax is not installed.
    DescendTypeError
        ``tx`` is not a transformation (e.g. the function ``optax.adam`` itself, not
        called), or ``label`` is not a string.

    Examples
    --------
    >>> import optax, descend as ds
    >>> opt = ds.optim.from_optax(optax.adam(0.1), label="optax.adam")
    >>> opt
    from_optax(label='optax.adam')
    >>> result = ds.minimize(lambda x: (x - 3.0) ** 2, 0.0, optimizer=opt, verbose=0)
    >>> round(float(result.x), 4)
    3.0
    """
    optax = optax_module()
    _check_transformation(tx, optax)
    if label is not None and not isinstance(label, str):
        raise DescendTypeError(f"label must be a string, got {label!r}")
    takes_extra = isinstance(tx, optax.GradientTransformationExtraArgs)
    apply_updates = optax.apply_updates

    def step(params, grads, state, *, value=None, value_fn=None):
        extra = {}
        if takes_extra and value_fn is not None:
            extra = {"value": value, "grad": grads, "value_fn": value_fn}
        updates, state = tx.update(grads, state, params, **extra)
        return apply_updates(params, updates), state

    return Optimizer(
        "from_optax",
        tx.init,
        step,
        {} if label is None else {"label": label},
        complex_params="members",
    )


def _check_transformation(tx: Any, optax: Any) -> None:
    if isinstance(tx, optax.GradientTransformation | optax.GradientTransformationExtraArgs):
        return
    if callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None)):
        return  # duck-typed: any (init, update) pair, as Optax itself accepts
    hint = ""
    if callable(tx):
        name = getattr(tx, "__name__", repr(tx))
        hint = f"; call it first, e.g. from_optax({name}(learning_rate=1e-3))"
    raise DescendTypeError(
        f"from_optax takes an Optax transformation such as optax.adam(1e-3), got {tx!r}{hint}"
    )


def is_from_optax(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` was made by :func:`from_optax` (its code is not saved)."""
    return optimizer.name == "from_optax"


__all__ = ["as_optax", "from_optax"]
