"""``save`` and ``load`` of trained models: one atomic, checksummed file, no pickle.

A saved :class:`~descend.training.FitResult` keeps the model configuration, the
weights, the optimizer (name, hyperparameters and state), the standardization, the
table encoding, the classes, the seed and the epoch count, so that
``fit(..., resume=path)`` continues exactly where training stopped: 5 + 5 epochs give
the weights of 10.

The file is a :mod:`descend.checkpoint` (safetensors) file with two trees, ``params``
and ``opt_state``, so its tensors are named like ``params/w`` or
``opt_state/exp_avg/w``; everything else is in its metadata, with ``"format":
"descend.fit/2"``. Files of descend 0.1.0 (``"descend.fit/1"``, the optimizer state a
flat list of leaves) still load.
"""

from __future__ import annotations

import json
import math
import os
from functools import partial
from typing import Any

import jax
import numpy as np

from descend import checkpoint, distributed, models, optim
from descend.errors import CheckpointError, DescendTypeError
from descend.optim.base import Optimizer
from descend.optim.leaves import LeafTree, decayed_leaves
from descend.training.result import BestEpoch, FitResult, leaf_dtype

FORMAT = "descend.fit/2"
_FLAT_STATE_FORMAT = "descend.fit/1"  # descend 0.1.0: the optimizer state as a list of leaves


def save(path: str | os.PathLike, result: FitResult) -> None:
    """Save a trained model to ``path`` (written atomically: temp file, fsync, rename).

    In a multi-process run (:func:`descend.distributed.initialize`) every process calls
    it with the same path; process 0 writes the file and the others wait until it is
    written, so that all of them can resume from it.

    Examples
    --------
    >>> import os, tempfile, numpy as np, descend as ds
    >>> X = np.arange(8.0).reshape(4, 2); y = X.sum(axis=1)
    >>> result = ds.fit("linear", X, y, batch_size=None, epochs=2, verbose=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> ds.save(path, result)
    >>> ds.load(path).n_epochs
    2
    """
    if not isinstance(result, FitResult):
        raise DescendTypeError(f"save() takes the result of fit(), got {type(result).__name__}")
    metadata = {
        "format": FORMAT,
        "model": result.model.config(),
        "loss": result.loss if isinstance(result.loss, str) else None,
        "optimizer": _optimizer_config(result.optimizer, result.params),
        "history": {key: np.asarray(values).tolist() for key, values in result.history.items()},
        "n_updates": result.n_updates,
        "n_epochs": result.n_epochs,
        "status": result.status,
        "reason": result.reason,
        "classes": None if result.classes is None else np.asarray(result.classes).tolist(),
        "standardizer": None if result.standardizer is None else result.standardizer.to_dict(),
        "target_standardizer": None
        if result.target_standardizer is None
        else result.target_standardizer.to_dict(),
        "l2": result.l2,
        "encoding": None if result.encoding is None else result.encoding.to_dict(),
        "dtype": result.dtype,
        "seed": result.seed,
        "best_epoch": result.best_epoch,
    }
    trees = {"params": result.params, "opt_state": result.opt_state}
    best = result.best
    if best is not None:
        # Early stopping's count, so that a resumed run stops where an uninterrupted one
        # would; its weights only when they are not the saved ones already.
        metadata["best"] = {
            "loss": None if math.isinf(best.loss) else float(best.loss),
            "epoch": best.epoch,
            "waited": best.waited,
            "weights": best.params is not None,
        }
        if best.params is not None:
            trees.update(best_params=best.params, best_opt_state=best.opt_state)
    # In a multi-process run only process 0 writes; every process waits for the file.
    distributed.on_first_process(checkpoint.save_tree, path, trees, metadata)


def load(
    path: str | os.PathLike,
    *,
    model: models.Model | None = None,
    optimizer: Optimizer | str | None = None,
) -> FitResult:
    """Load a model saved by :func:`save`.

    ``model`` is needed for a custom model (its function cannot be stored). ``optimizer``
    is needed only to train on (``fit(..., resume=...)``) when the saved one cannot be
    rebuilt from the file (a learning-rate schedule written as a Python function, an
    Optax transformation, ``chain``, ``sam``): without it the result predicts,
    evaluates, plots and saves again as usual, and its optimizer is an
    :class:`UnrebuiltOptimizer` that refuses to step, saying to pass the optimizer.
    Raises :class:`~descend.errors.CheckpointError` for a missing, truncated, modified
    or foreign file.
    """
    from descend import data

    metadata = checkpoint.load_metadata(path)
    if metadata.get("format") not in (FORMAT, _FLAT_STATE_FORMAT):
        raise CheckpointError(
            f"{str(path)!r} is a descend checkpoint but not a saved model "
            f"(format {metadata.get('format')!r}); it was not written by descend.save"
        )
    model = model if model is not None else _model(metadata["model"], path)
    like = None
    if model.name == "custom":
        # The structure of the user's params, their floating leaves in the saved dtype.
        like = {
            "params": jax.tree.map(partial(_template, dtype=metadata["dtype"]), model.init(0, 1, 1))
        }
    if like is not None and (metadata.get("best") or {}).get("weights"):
        like["best_params"] = like["params"]
    trees = checkpoint.load_tree(path, like=like).trees
    params = trees["params"]
    if isinstance(optimizer, str):  # a name: the algorithm with its defaults
        optimizer = optim.get(optimizer)
    if optimizer is None:
        optimizer = _optimizer(metadata["optimizer"], path, params)
    elif not isinstance(optimizer, Optimizer):
        raise DescendTypeError(
            f"optimizer must be an optimizer or its name, got {type(optimizer).__name__}"
        )

    def state_of(saved: Any) -> Any:
        if isinstance(optimizer, UnrebuiltOptimizer):  # kept as stored, saved back as is
            return saved
        template = optimizer.init(jax.tree.map(np.asarray, params))
        return _fitting(saved, template, metadata["format"], optimizer, path)

    opt_state = state_of(trees["opt_state"])
    best = metadata.get("best")
    if best is not None:
        weights = (None, None)
        if best["weights"]:
            weights = (trees["best_params"], state_of(trees["best_opt_state"]))
        loss = math.inf if best["loss"] is None else best["loss"]
        best = BestEpoch(loss, int(best["epoch"]), int(best["waited"]), *weights)
    standardizer = metadata["standardizer"]
    target_standardizer = metadata.get("target_standardizer")  # older checkpoints: none
    encoding = metadata["encoding"]
    return FitResult(
        model=model,
        params=params,
        opt_state=opt_state,
        optimizer=optimizer,
        loss=metadata["loss"],
        history={key: np.asarray(values) for key, values in metadata["history"].items()},
        n_updates=int(metadata["n_updates"]),
        n_epochs=int(metadata["n_epochs"]),
        status=metadata["status"],
        reason=metadata["reason"],
        classes=None if metadata["classes"] is None else np.asarray(metadata["classes"]),
        standardizer=None if standardizer is None else data.Standardizer.from_dict(standardizer),
        target_standardizer=None
        if target_standardizer is None
        else data.Standardizer.from_dict(target_standardizer),
        l2=float(metadata.get("l2", 0.0)),  # older checkpoints trained without a penalty
        encoding=None if encoding is None else data.Encoding.from_dict(encoding),
        dtype=metadata["dtype"],
        seed=int(metadata["seed"]),
        best_epoch=metadata["best_epoch"],
        best=best,
    )


def _fitting(saved: Any, template: Any, file_format: str, optimizer: Optimizer, path) -> Any:
    """:func:`_optimizer_state`, or the error that the state does not fit the optimizer."""
    state = _optimizer_state(saved, template, file_format)
    if state is None:
        raise CheckpointError(
            f"the optimizer state in {str(path)!r} does not fit {optimizer!r}; load it with "
            "the optimizer it was trained with"
        )
    return state


def _optimizer_state(saved: Any, template: Any, file_format: str) -> Any:
    """The saved state in the structure of ``template`` (a fresh state of the optimizer),
    or None when it does not fit."""
    # Any: mypy cannot resolve jax's PyTreeDef (an alias of a jaxlib extension type).
    structure: Any = jax.tree.structure(template)
    leaves = saved if file_format == _FLAT_STATE_FORMAT else jax.tree.leaves(saved)
    if structure.num_leaves != len(leaves):
        return None
    if file_format == _FLAT_STATE_FORMAT:
        return jax.tree.unflatten(structure, leaves)
    try:
        return _like(saved, template)
    except (KeyError, IndexError, TypeError):
        return None


def _like(saved: Any, template: Any) -> Any:
    """``saved`` as loaded without a template (NamedTuples as dicts of their fields, other
    nodes as lists of their children) rebuilt in the template's structure, following the
    template's keys: the dtypes stay the file's, as training left them."""
    if template is None:
        return None
    node: Any  # mypy cannot resolve jax's PyTreeDef (an alias of a jaxlib extension type)
    children, node = jax.tree_util.tree_flatten_with_path(
        template, is_leaf=lambda child: child is not template
    )
    if node.num_nodes == 1 and node.num_leaves == 1:  # a leaf (an empty node has none)
        return saved
    rebuilt = []
    for index, ((key,), child) in enumerate(children):
        name = getattr(key, "key", getattr(key, "name", None))
        part = saved[name] if isinstance(saved, dict) else saved[index]
        rebuilt.append(_like(part, child))
    return jax.tree.unflatten(node, rebuilt)


def _template(leaf, dtype: str) -> np.ndarray:
    leaf = np.asarray(leaf)
    return np.zeros(leaf.shape, leaf_dtype(leaf.dtype, dtype))


# Optimizers that wrap another (their "optimizer" hyperparameter), rebuilt around it.


class UnrebuiltOptimizer(Optimizer):
    """The optimizer of a checkpoint that cannot rebuild it (see :func:`load`).

    It shows as the saved one (its ``repr``), is saved back as it was stored, and
    raises :class:`~descend.errors.CheckpointError` from ``init`` and ``step``, naming
    the fix: load the file with the optimizer, ``load(path, optimizer=...)``, or
    ``fit(..., resume=path, optimizer=...)``.
    """

    def __repr__(self) -> str:
        return str(self.hyperparams["saved"].get("repr") or self.name)

    @property
    def message(self) -> str:
        """Why it cannot step, and what to do."""
        return str(self.hyperparams["message"])


def _unrebuilt(config: dict[str, Any], path, why: str) -> UnrebuiltOptimizer:
    message = (
        f"the optimizer in {str(path)!r} ({config.get('repr')}) cannot be rebuilt from the "
        f"file{why}, so training cannot continue from it; pass it: "
        "ds.load(path, optimizer=...) or fit(..., resume=path, optimizer=...)"
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(message)

    return UnrebuiltOptimizer(
        str(config.get("name")),
        refuse,
        refuse,
        {"saved": config, "message": message},
        complex_params="members",
    )


def _optimizer_config(optimizer: Optimizer, params: Any) -> dict[str, Any]:
    if isinstance(optimizer, UnrebuiltOptimizer):
        return dict(optimizer.hyperparams["saved"])
    hyperparams = dict(optimizer.hyperparams)
    inner = hyperparams.get("optimizer")
    if optimizer.name in optim.WRAPPERS and isinstance(inner, Optimizer):
        nested = _optimizer_config(inner, params)
        if nested["hyperparams"] is None:  # the wrapped one cannot be rebuilt: nor this
            return {**nested, "repr": repr(optimizer)}
        hyperparams["optimizer"] = {"wrapped": nested}
    for setting in optim.LEAF_SETTINGS:
        mask = hyperparams.get(setting)
        if isinstance(mask, LeafTree):
            # A pytree of booleans is stored as one flag per leaf of the saved params (in
            # jax.tree.leaves order), which load rebuilds in the structure of the params.
            flags = jax.tree.leaves(decayed_leaves(mask, params, name=setting))
            hyperparams[setting] = {"per_leaf": flags}
    if optimizer.name == "from_optax":
        return {
            "name": optimizer.name,
            "hyperparams": None,
            "repr": repr(optimizer),
            "why": "it runs an Optax transformation, whose code a file cannot hold (pass "
            "from_optax of the same transformation)",
        }
    try:
        json.dumps(hyperparams)
    except (TypeError, ValueError):
        config = {"name": optimizer.name, "hyperparams": None, "repr": repr(optimizer)}
        for setting in optim.LEAF_SETTINGS:
            if callable(hyperparams.get(setting)):
                config["why"] = f"its {setting} is a function, which a file cannot hold"
        return config
    return {"name": optimizer.name, "hyperparams": hyperparams, "repr": repr(optimizer)}


def _optimizer(config: dict[str, Any], path, params: Any) -> Optimizer:
    if config.get("hyperparams") is None:
        return _unrebuilt(config, path, f": {config['why']}" if config.get("why") else "")
    hyperparams: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config["hyperparams"].items()
    }
    if config["name"] in optim.WRAPPERS:
        inner = _optimizer(hyperparams.pop("optimizer")["wrapped"], path, params)
        return optim.WRAPPERS[config["name"]](inner, **hyperparams)
    for setting in optim.LEAF_SETTINGS:
        mask = hyperparams.get(setting)
        if isinstance(mask, dict):
            # Any: mypy cannot resolve jax's PyTreeDef (an alias of a jaxlib extension type).
            structure: Any = jax.tree.structure(params)
            if structure.num_leaves != len(mask["per_leaf"]):
                raise CheckpointError(
                    f"the {setting} in {str(path)!r} has {len(mask['per_leaf'])} flags, "
                    f"but the params saved with it have {structure.num_leaves} leaves"
                )
            hyperparams[setting] = jax.tree.unflatten(structure, mask["per_leaf"])
    return optim.get(config["name"], **hyperparams)


def _model(config: dict[str, Any], path) -> models.Model:
    if config.get("name") == "custom":
        raise CheckpointError(
            f"{str(path)!r} holds a custom model, whose function cannot be stored; pass it: "
            "load(path, model=descend.models.custom(apply, params))"
        )
    return models.from_config(config)
