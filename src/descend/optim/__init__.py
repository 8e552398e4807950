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
from descend.optim.injection import inject_hyperparams
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
from descend.optim.registry import (
    LEAF_SETTINGS,
    OWN_TOLERANCES,
    REFERENCES,
    WRAPPERS,
    available,
    brief,
    get,
    left_to_tol,
    names,
    rebuild,
    register,
)
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

__all__ = [
    "LEAF_SETTINGS",
    "OWN_TOLERANCES",
    "REFERENCES",
    "WRAPPERS",
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
    "brief",
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
    "left_to_tol",
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
