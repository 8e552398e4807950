"""Gradient-descent algorithms as pure ``init`` / ``step`` pairs.

Every algorithm is a function that takes its hyperparameters and returns an
:class:`Optimizer`. Names, hyperparameter names, defaults and update formulas follow
``torch.optim`` where PyTorch has the algorithm, and Optax where it does not (Lion,
AdaBelief).

- :mod:`~descend.optim.sgd`: ``gd``, ``sgd``, ``momentum``
- :mod:`~descend.optim.adaptive`: ``adagrad``, ``rmsprop``, ``adadelta``
- :mod:`~descend.optim.adam`: ``adam``, ``adamw``, ``adamax``, ``nadam``
- :mod:`~descend.optim.adam_variants`: ``radam``, ``adabelief``, ``lion``
- :mod:`~descend.optim.classic`: ``rprop``, ``asgd``
- :mod:`~descend.optim.lbfgs`: ``lbfgs`` (with a strong-Wolfe line search)
- :mod:`~descend.optim.matrix`: ``adafactor``, ``muon``
- :mod:`~descend.optim.schedules`: learning-rate schedules usable as ``lr=``, and
  ``reduce_on_plateau``
- :mod:`~descend.optim.transforms`: gradient clipping, weight decay and ``chain``

>>> import descend as ds
>>> opt = ds.optim.get("gd", lr=0.1)
>>> opt
gd(lr=0.1, maximize=False)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from descend.errors import DescendTypeError, unknown_name
from descend.optim import schedules, transforms
from descend.optim.adam import adam, adamax, adamw, nadam
from descend.optim.adam_variants import adabelief, lion, radam
from descend.optim.adaptive import adadelta, adagrad, rmsprop
from descend.optim.base import Optimizer, apply_updates, lr_at, lr_of
from descend.optim.classic import asgd, rprop
from descend.optim.lbfgs import lbfgs
from descend.optim.matrix import adafactor, muon
from descend.optim.schedules import observe, reduce_on_plateau, watch_epochs
from descend.optim.sgd import gd, momentum, sgd
from descend.optim.transforms import (
    add_weight_decay,
    chain,
    clip_by_global_norm,
    clip_by_value,
    decoupled_weight_decay,
)

_ALGORITHMS: dict[str, Callable[..., Optimizer]] = {
    "gd": gd,
    "sgd": sgd,
    "momentum": momentum,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adamw,
    "adamax": adamax,
    "nadam": nadam,
    "radam": radam,
    "adabelief": adabelief,
    "lion": lion,
    "rprop": rprop,
    "asgd": asgd,
    "lbfgs": lbfgs,
    "adafactor": adafactor,
    "muon": muon,
}


def register(name: str, factory: Callable[..., Optimizer]) -> None:
    """Make ``factory`` reachable by ``name`` from :func:`get`, the CLI and :func:`available`."""
    _ALGORITHMS[name] = factory


def names() -> list[str]:
    """The names :func:`get` accepts."""
    return sorted(_ALGORITHMS)


def get(name: str | Optimizer, **hyperparams: Any) -> Optimizer:
    """Build the optimizer called ``name`` with the given hyperparameters.

    An :class:`Optimizer` passed as ``name`` is returned as it is (hyperparameters
    must then be empty).
    """
    if isinstance(name, Optimizer):
        if hyperparams:
            settings = ", ".join(f"{key}={value!r}" for key, value in hyperparams.items())
            instead = "build the optimizer with them and pass it alone"
            if name.name in _ALGORITHMS:
                instead = f"call ds.optim.get({name.name!r}, {settings}), or {instead}"
            raise DescendTypeError(
                f"hyperparameters ({settings}) go with an optimizer name, not with the "
                f"optimizer {name!r}: {instead}"
            )
        return name
    try:
        factory = _ALGORITHMS[name]
    except KeyError:
        raise unknown_name("optimizer", name, _ALGORITHMS) from None
    valid = inspect.signature(factory).parameters
    for key in hyperparams:
        if key not in valid:
            raise unknown_name(f"hyperparameter of {name}", key, valid)
    return factory(**hyperparams)


def available() -> list[dict[str, Any]]:
    """Each algorithm with its hyperparameters and their defaults.

    Returns a list of ``{"name": ..., "hyperparams": {name: default}, "summary": ...}``.
    """
    table = []
    for name in names():
        factory = _ALGORITHMS[name]
        params = inspect.signature(factory).parameters
        defaults = {
            key: (None if p.default is inspect.Parameter.empty else p.default)
            for key, p in params.items()
        }
        summary = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        table.append({"name": name, "hyperparams": defaults, "summary": summary})
    return table


__all__ = [
    "Optimizer",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_weight_decay",
    "apply_updates",
    "asgd",
    "available",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "decoupled_weight_decay",
    "gd",
    "get",
    "lbfgs",
    "lion",
    "lr_at",
    "lr_of",
    "momentum",
    "muon",
    "nadam",
    "names",
    "observe",
    "radam",
    "reduce_on_plateau",
    "register",
    "rmsprop",
    "rprop",
    "schedules",
    "sgd",
    "transforms",
    "watch_epochs",
]
