"""The registry of algorithms by name: :func:`get`, :func:`names`, :func:`register`,
:func:`available`, :func:`rebuild` and the tables they read (:data:`REFERENCES`,
:data:`WRAPPERS`). :mod:`descend.optim` exports all of it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from descend.errors import DescendTypeError, unknown_name
from descend.optim.adam import adam, adamax, adamw, nadam
from descend.optim.adam_extended import adamaxw, adan, amsgrad, nadamw, yogi
from descend.optim.adam_variants import adabelief, lion, radam
from descend.optim.adaptive import adadelta, adagrad, rmsprop
from descend.optim.averaging import schedule_free_adamw, schedule_free_sgd
from descend.optim.base import (
    Optimizer,
)
from descend.optim.classic import asgd, rprop
from descend.optim.contrib_moments import ademamix, adopt, simplified_ademamix
from descend.optim.d_adaptation import dadapt_adamw, prodigy
from descend.optim.dual_averaging import madgrad
from descend.optim.layerwise import fromage, lamb, lars
from descend.optim.lbfgs import lbfgs
from descend.optim.low_memory import novograd, sm3
from descend.optim.matrix import adafactor, muon
from descend.optim.mechanic import mechanize
from descend.optim.momentum_models import momo, momo_adam
from descend.optim.optimistic import optimistic_adam, optimistic_gradient_descent
from descend.optim.orthogonalized import muon_optax
from descend.optim.parameter_free import cocob, dog, dowg
from descend.optim.polyak import polyak_sgd
from descend.optim.probes import sam, sophia
from descend.optim.schedules import reduce_on_plateau
from descend.optim.sgd import gd, momentum, sgd
from descend.optim.sgd_variants import noisy_sgd, sign_sgd, signum

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
    "schedule_free_sgd": schedule_free_sgd,
    "schedule_free_adamw": schedule_free_adamw,
    "muon_optax": muon_optax,
    "sign_sgd": sign_sgd,
    "signum": signum,
    "noisy_sgd": noisy_sgd,
    "optimistic_gradient_descent": optimistic_gradient_descent,
    "optimistic_adam": optimistic_adam,
    "adopt": adopt,
    "ademamix": ademamix,
    "simplified_ademamix": simplified_ademamix,
    "madgrad": madgrad,
    "adan": adan,
    "amsgrad": amsgrad,
    "adamaxw": adamaxw,
    "nadamw": nadamw,
    "yogi": yogi,
    "polyak_sgd": polyak_sgd,
    "momo": momo,
    "momo_adam": momo_adam,
    "sophia": sophia,
    "sam": sam,
    "lamb": lamb,
    "lars": lars,
    "fromage": fromage,
    "novograd": novograd,
    "sm3": sm3,
    "cocob": cocob,
    "dadapt_adamw": dadapt_adamw,
    "dog": dog,
    "dowg": dowg,
    "mechanize": mechanize,
    "prodigy": prodigy,
}


# The implementation each algorithm's trajectory is tested equal to (tests/, run live).
REFERENCES: dict[str, str] = {
    "gd": "torch.optim.SGD (lr given); Armijo backtracking (lr=None)",
    "sgd": "torch.optim.SGD",
    "momentum": "torch.optim.SGD(momentum=0.9)",
    "adagrad": "torch.optim.Adagrad",
    "rmsprop": "torch.optim.RMSprop",
    "adadelta": "torch.optim.Adadelta",
    "adam": "torch.optim.Adam",
    "adamw": "torch.optim.AdamW",
    "adamax": "torch.optim.Adamax",
    "nadam": "torch.optim.NAdam",
    "radam": "torch.optim.RAdam",
    "adabelief": "optax.adabelief",
    "lion": "optax.lion",
    "rprop": "torch.optim.Rprop",
    "asgd": "torch.optim.ASGD",
    "lbfgs": "torch.optim.LBFGS",
    "adafactor": "torch.optim.Adafactor",
    "muon": "torch.optim.Muon",
    "schedule_free_sgd": "schedulefree.SGDScheduleFree",
    "schedule_free_adamw": "schedulefree.AdamWScheduleFree",
    "sign_sgd": "optax.sign_sgd",
    "signum": "optax.signum",
    "noisy_sgd": "optax.noisy_sgd",
    "optimistic_gradient_descent": "optax.optimistic_gradient_descent",
    "optimistic_adam": "optax.optimistic_adam",
    "muon_optax": "optax.contrib.muon",
    "adopt": "optax.contrib.adopt",
    "ademamix": "optax.contrib.ademamix",
    "simplified_ademamix": "optax.contrib.simplified_ademamix",
    "madgrad": "optax.contrib.madgrad",
    "adan": "optax.adan",
    "amsgrad": "optax.amsgrad",
    "adamaxw": "optax.adamaxw",
    "nadamw": "optax.nadamw",
    "yogi": "optax.yogi",
    "polyak_sgd": "optax.polyak_sgd",
    "momo": "optax.contrib.momo",
    "momo_adam": "optax.contrib.momo_adam",
    "sophia": "optax.contrib.sophia (Hutchinson estimator)",
    "sam": "optax.contrib.sam (opaque mode)",
    "cocob": "optax.contrib.cocob",
    "dog": "optax.contrib.dog",
    "dowg": "optax.contrib.dowg",
    "dadapt_adamw": "optax.contrib.dadapt_adamw",
    "prodigy": "prodigyopt.Prodigy (optax.contrib.prodigy: use_bias_correction=True)",
    "mechanize": "optax.contrib.mechanize",
    "lamb": "optax.lamb",
    "lars": "optax.lars",
    "fromage": "optax.fromage",
    "novograd": "optax.novograd",
    "sm3": "optax.sm3",
}


def register(name: str, factory: Callable[..., Optimizer], *, reference: str | None = None) -> None:
    """Make ``factory`` reachable by ``name`` from :func:`get`, the CLI and :func:`available`.

    ``reference``: the implementation it equals, listed by :func:`available` (default
    none).
    """
    _ALGORITHMS[name] = factory
    if reference is not None:
        REFERENCES[name] = reference


def names() -> list[str]:
    """The names :func:`get` accepts."""
    return sorted(_ALGORITHMS)


def get(name: str | Optimizer, **hyperparams: Any) -> Optimizer:
    """Build the optimizer called ``name`` with the given hyperparameters.

    An :class:`Optimizer` passed as ``name`` is returned as it is (hyperparameters
    must then be empty). An algorithm built around another (``sam``, ``mechanize``,
    ``reduce_on_plateau``: an ``optimizer`` parameter) passes the hyperparameters it
    lacks to the one it wraps: ``get("sam", lr=0.1)`` is ``sam(sgd(lr=0.1))``, as
    ``fit(optimizer="sam", lr=0.1)`` and ``--optimizer sam --lr 0.1`` expect.
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
    own = {key: value for key, value in hyperparams.items() if key in valid}
    rest = {key: value for key, value in hyperparams.items() if key not in valid}
    if rest and "optimizer" in valid and "optimizer" not in own:
        built = factory(**own)
        inner = built.hyperparams.get("optimizer")
        if isinstance(inner, Optimizer) and all(_settable(inner, key) for key in rest):
            return factory(**own, optimizer=rebuild(inner, **rest))
    for key in rest:
        raise unknown_name(f"hyperparameter of {name}", key, valid)
    return factory(**hyperparams)


def _settable(optimizer: Optimizer, key: str) -> bool:
    """Whether :func:`rebuild` can set ``key`` on ``optimizer`` (or the one it wraps)."""
    if key in optimizer.hyperparams and key != "optimizer":
        return True
    inner = optimizer.hyperparams.get("optimizer")
    return isinstance(inner, Optimizer) and _settable(inner, key)


# Settings of which leaves a hyperparameter applies to, not hyperparameters of the
# algorithm: listed apart by available(), so that "hyperparams" keeps the names and
# defaults of torch.optim (or Optax).
LEAF_SETTINGS = ("weight_decay_mask", "trust_ratio_mask")


def brief(optimizer: Optimizer) -> str:
    """``optimizer`` as its call with the learning rate and only the hyperparameters that
    differ from the defaults: ``reduce_on_plateau(adam(lr=0.01), factor=0.2, patience=3)``
    (``repr`` gives every one). A kind of optimizer with a ``repr`` of its own (a
    checkpoint's that cannot be rebuilt) is shown by it."""
    if type(optimizer).__repr__ is not Optimizer.__repr__:
        return repr(optimizer)
    factory = _ALGORITHMS.get(optimizer.name) or WRAPPERS.get(optimizer.name)
    defaults = {} if factory is None else inspect.signature(factory).parameters
    parts = []
    for key, value in optimizer.hyperparams.items():
        if isinstance(value, Optimizer):
            parts.append(brief(value) if key == "optimizer" else f"{key}={brief(value)}")
            continue
        default = defaults[key].default if key in defaults else inspect.Parameter.empty
        try:
            same = key != "lr" and bool(value == default)
        except (TypeError, ValueError):  # arrays, pytrees: shown
            same = False
        if not same:
            parts.append(f"{key}={value!r}")
    return f"{optimizer.name}({', '.join(parts)})"


# Optimizers built around another (its ``optimizer`` hyperparameter), by name: what
# rebuilds them around a changed or reloaded inner optimizer.
WRAPPERS: dict[str, Callable[..., Optimizer]] = {
    "reduce_on_plateau": reduce_on_plateau,
    "mechanize": mechanize,
}


# An optimizer's own stopping tolerances (torch's LBFGS has two).
OWN_TOLERANCES = ("tolerance_grad", "tolerance_change")


def left_to_tol(optimizer: Optimizer) -> Optimizer:
    """``optimizer`` with its own stopping tolerances that were left unset (None) set to
    0, so that the loop running it (``minimize``, ``fit``) decides alone when to stop:
    torch's defaults would stop stepping above the loop's ``tol`` (``lbfgs`` stalls at a
    gradient norm near 1e-5 when its slope falls below ``tolerance_change=1e-9``)."""
    unset = {
        key: 0.0
        for key in OWN_TOLERANCES
        if key in optimizer.hyperparams and optimizer.hyperparams[key] is None
    }
    if not unset:
        return optimizer
    return get(optimizer.name, **{**optimizer.hyperparams, **unset})


def available() -> list[dict[str, Any]]:
    """Each algorithm with its hyperparameters and their defaults.

    Returns a list of ``{"name": ..., "reference": ..., "hyperparams": {name: default},
    "leaf_settings": {name: default}, "summary": ...}``; ``reference`` is the
    implementation its trajectory is tested equal to (``"torch.optim.Adam"``,
    ``"optax.lion"``; None for one registered without), ``leaf_settings`` holds
    ``weight_decay_mask`` where the algorithm takes one.
    """
    table = []
    for name in names():
        factory = _ALGORITHMS[name]
        params = inspect.signature(factory).parameters
        defaults = {
            key: (None if p.default is inspect.Parameter.empty else p.default)
            for key, p in params.items()
        }
        leaf_settings = {key: defaults.pop(key) for key in LEAF_SETTINGS if key in defaults}
        summary = (inspect.getdoc(factory) or "").split("\n", 1)[0]
        table.append(
            {
                "name": name,
                "reference": REFERENCES.get(name),
                "hyperparams": defaults,
                "leaf_settings": leaf_settings,
                "summary": summary,
            }
        )
    return table


def rebuild(optimizer: Optimizer, **changes: Any) -> Optimizer:
    """``optimizer`` built again with some hyperparameters changed.

    A wrapper (``reduce_on_plateau``, ``mechanize``: see
    :data:`descend.optim.WRAPPERS`) keeps its own hyperparameters and passes the
    others to the optimizer it wraps, so that ``rebuild(reduce_on_plateau(adam()),
    lr=0.1)`` changes Adam's rate.

    Raises
    ------
    InputError
        A name that is no hyperparameter of the optimizer or of the one it wraps,
        or a value the algorithm refuses.
    DescendTypeError
        An optimizer that is not built by name (``chain``, ``partition``,
        ``from_optax``, an ``Optimizer`` made by hand): it cannot be built again.
    """
    if not changes:
        return optimizer
    hyperparams = dict(optimizer.hyperparams)
    inner = hyperparams.pop("optimizer", None)
    own = {key: value for key, value in changes.items() if key in hyperparams}
    rest = {key: value for key, value in changes.items() if key not in hyperparams}
    if optimizer.name in WRAPPERS and isinstance(inner, Optimizer):
        return WRAPPERS[optimizer.name](rebuild(inner, **rest), **{**hyperparams, **own})
    if optimizer.name not in names():
        raise DescendTypeError(
            f"{optimizer.name} is not built by name, so its hyperparameters cannot be "
            "changed: build each configuration yourself, or use an optimizer from "
            "ds.optim.names()"
        )
    for key in rest:
        raise unknown_name(f"hyperparameter of {optimizer.name}", key, hyperparams)
    return get(optimizer.name, **{**optimizer.hyperparams, **own})


def hyperparameter(optimizer: Optimizer, name: str) -> Any:
    """The value of hyperparameter ``name``, looked for in a wrapped optimizer too."""
    if name in optimizer.hyperparams and name != "optimizer":
        return optimizer.hyperparams[name]
    inner = optimizer.hyperparams.get("optimizer")
    if isinstance(inner, Optimizer):
        return hyperparameter(inner, name)
    raise unknown_name(f"hyperparameter of {optimizer.name}", name, optimizer.hyperparams)
