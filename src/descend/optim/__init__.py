"""Gradient-descent algorithms as pure ``init`` / ``step`` pairs.

Every algorithm is a function that takes its hyperparameters and returns an
:class:`Optimizer`. Names, hyperparameter names, defaults and update formulas follow
``torch.optim`` where PyTorch has the algorithm, and otherwise Optax (``optax``,
``optax.contrib``) or the authors' PyTorch package (``schedulefree``, ``prodigyopt``);
:data:`REFERENCES` names the one each equals.

- :mod:`~descend.optim.sgd`: ``gd``, ``sgd``, ``momentum``
- :mod:`~descend.optim.adaptive`: ``adagrad``, ``rmsprop``, ``adadelta``
- :mod:`~descend.optim.adam`: ``adam``, ``adamw``, ``adamax``, ``nadam``
- :mod:`~descend.optim.adam_variants`: ``radam``, ``adabelief``, ``lion``
- :mod:`~descend.optim.contrib_moments`: ``adopt``, ``ademamix``, ``simplified_ademamix``
  (as ``optax.contrib``)
- :mod:`~descend.optim.dual_averaging`: ``madgrad`` (as ``optax.contrib``)
- :mod:`~descend.optim.adam_extended`: ``adan``, ``amsgrad``, ``adamaxw``, ``nadamw``,
  ``yogi`` (as Optax)
- :mod:`~descend.optim.classic`: ``rprop``, ``asgd``
- :mod:`~descend.optim.lbfgs`: ``lbfgs`` (with a strong-Wolfe line search)
- :mod:`~descend.optim.matrix`: ``adafactor``, ``muon``
- :mod:`~descend.optim.averaging`: ``schedule_free_sgd``, ``schedule_free_adamw``
  (evaluated at :func:`eval_point`, not at the params they step)
- :mod:`~descend.optim.sgd_variants`: ``sign_sgd``, ``signum``, ``noisy_sgd`` (as Optax)
- :mod:`~descend.optim.optimistic`: ``optimistic_gradient_descent``, ``optimistic_adam``
  (as Optax)
- :mod:`~descend.optim.orthogonalized`: ``muon_optax`` (Optax's Muon, with Adam for the
  leaves that are not matrices)
- :mod:`~descend.optim.polyak`: ``polyak_sgd`` (Polyak's step, from the loss value)
- :mod:`~descend.optim.momentum_models`: ``momo``, ``momo_adam`` (momentum with a Polyak-type
  step from the loss value)
- :mod:`~descend.optim.probes`: ``sophia``, ``sam`` (steps that evaluate the objective
  again: a Hessian-vector product, an adversarial gradient)
- :mod:`~descend.optim.layerwise`: ``lamb``, ``lars``, ``fromage`` (as Optax: trust
  ratios per leaf)
- :mod:`~descend.optim.low_memory`: ``novograd``, ``sm3`` (as Optax: less state than
  Adam)
- :mod:`~descend.optim.parameter_free`: ``cocob``, ``dog``, ``dowg`` (no learning rate
  to tune, as ``optax.contrib``)
- :mod:`~descend.optim.mechanic`: ``mechanize``, which learns another optimizer's step size
- :mod:`~descend.optim.d_adaptation`: ``dadapt_adamw``, ``prodigy`` (as ``prodigyopt``
  and ``optax.contrib``)
- :mod:`~descend.optim.schedules`: learning-rate schedules usable as ``lr=``, and
  ``reduce_on_plateau``
- :mod:`~descend.optim.transforms`: gradient clipping, weight decay and ``chain``
- :mod:`~descend.optim.groups`: ``partition``, parameter groups with optimizers of their own
- :mod:`~descend.optim.leaves`: the forms of per-leaf settings (masks, group labels)
- :mod:`~descend.optim.injection`: ``inject_hyperparams`` (hyperparameters kept in the
  state, so that one program runs a sweep's configurations) and ``rebuild``
- :mod:`~descend.optim.interop`: ``from_optax`` (any Optax transformation as an
  optimizer) and ``Optimizer.as_optax()`` (any optimizer as an Optax transformation)

Weight-decay masks. Every optimizer with a ``weight_decay`` (:func:`available` lists
``weight_decay_mask`` among its ``leaf_settings``; all but ``mechanize``, ``momo``,
``momo_adam`` and ``dadapt_adamw``, whose decay enters a step size computed from all
the leaves) and the transforms
``add_weight_decay`` and ``decoupled_weight_decay`` take ``weight_decay_mask``, which
chooses the leaves of the params that are decayed (``True``) and those left alone
(``False``); the default ``None`` decays all. It is
Optax's ``mask=`` (``optax.adamw(..., mask=...)``, ``optax.add_decayed_weights(mask=...)``,
``optax.adadelta(weight_decay_mask=...)``); PyTorch gives the other leaves a parameter
group with ``weight_decay=0``. It is one of:

- ``"weights"``: the leaves whose path ends in ``w``, the weights of the models of
  :mod:`descend.models`, whose biases are ``b``: "decay the weights, not the biases";
- a pytree of ``True`` / ``False`` in the structure of the params, or a prefix of it
  (one value for a whole subtree), e.g. ``{"w": True, "b": False}``;
- a function ``mask(params)`` returning such a pytree (Optax's callable form);
- a function of two arguments ``mask(path, leaf) -> bool``, called for each leaf with
  its path as text (``"w"``, ``"0/b"``: keys joined by ``/``, as checkpoints name
  tensors), e.g. ``lambda path, leaf: leaf.ndim >= 2``.

Functions run while the step is traced and must return Python (or NumPy) booleans.
A mask that does not fit the params is refused by ``init``, naming their leaves. The
mask is a hyperparameter: it shows in ``repr``, and optimizers with different masks
never compare equal nor share a compiled program. ``"weights"`` and pytree masks are
stored in checkpoints; a function is not (load such a checkpoint with
``load(path, optimizer=...)``).

LARS's ``trust_ratio_mask`` (the leaves whose step its trust ratio scales) takes the
same forms, and checkpoints store it as they store ``weight_decay_mask``.

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
from descend.optim.adam_extended import adamaxw, adan, amsgrad, nadamw, yogi
from descend.optim.adam_variants import adabelief, lion, radam
from descend.optim.adaptive import adadelta, adagrad, rmsprop
from descend.optim.averaging import schedule_free_adamw, schedule_free_sgd
from descend.optim.base import (
    Optimizer,
    apply_updates,
    eval_point,
    lr_at,
    lr_of,
    train_point,
)
from descend.optim.classic import asgd, rprop
from descend.optim.contrib_moments import ademamix, adopt, simplified_ademamix
from descend.optim.d_adaptation import dadapt_adamw, prodigy
from descend.optim.dual_averaging import madgrad
from descend.optim.groups import partition
from descend.optim.injection import inject_hyperparams, rebuild
from descend.optim.interop import from_optax
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
from descend.optim.probes import normalize, sam, sophia
from descend.optim.schedules import observe, reduce_on_plateau, watch_epochs
from descend.optim.sgd import gd, momentum, sgd
from descend.optim.sgd_variants import noisy_sgd, sign_sgd, signum
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


__all__ = [
    "Optimizer",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "add_weight_decay",
    "ademamix",
    "adopt",
    "amsgrad",
    "apply_updates",
    "asgd",
    "available",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "cocob",
    "dadapt_adamw",
    "decoupled_weight_decay",
    "dog",
    "dowg",
    "eval_point",
    "from_optax",
    "fromage",
    "gd",
    "get",
    "inject_hyperparams",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "lr_at",
    "lr_of",
    "madgrad",
    "mechanize",
    "momentum",
    "momo",
    "momo_adam",
    "muon",
    "muon_optax",
    "nadam",
    "nadamw",
    "names",
    "noisy_sgd",
    "normalize",
    "novograd",
    "observe",
    "optimistic_adam",
    "optimistic_gradient_descent",
    "partition",
    "polyak_sgd",
    "prodigy",
    "radam",
    "rebuild",
    "reduce_on_plateau",
    "register",
    "rmsprop",
    "rprop",
    "sam",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "schedules",
    "sgd",
    "sign_sgd",
    "signum",
    "simplified_ademamix",
    "sm3",
    "sophia",
    "train_point",
    "transforms",
    "watch_epochs",
    "yogi",
]
