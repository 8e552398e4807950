"""``save`` and ``load`` of trained models: one atomic, checksummed file, no pickle.

A saved :class:`~descend.fit_result.FitResult` keeps the model configuration, the
weights, the optimizer (name, hyperparameters and state), the standardization, the
table encoding, the classes, the seed and the epoch count, so that
``fit(..., resume=path)`` continues exactly where training stopped: 5 + 5 epochs give
the weights of 10.
"""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

import jax
import numpy as np

from descend import checkpoint, distributed, models, optim
from descend.errors import CheckpointError, DescendTypeError
from descend.optim.base import Optimizer
from descend.training.result import FitResult

FORMAT = "descend.fit/1"


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
        "optimizer": _optimizer_config(result.optimizer),
        "history": {key: np.asarray(values).tolist() for key, values in result.history.items()},
        "n_updates": result.n_updates,
        "n_epochs": result.n_epochs,
        "status": result.status,
        "reason": result.reason,
        "classes": None if result.classes is None else np.asarray(result.classes).tolist(),
        "standardizer": None if result.standardizer is None else result.standardizer.to_dict(),
        "encoding": None if result.encoding is None else result.encoding.to_dict(),
        "dtype": result.dtype,
        "seed": result.seed,
        "best_epoch": result.best_epoch,
    }
    trees = {"params": result.params, "opt_state": jax.tree.leaves(result.opt_state)}
    # In a multi-process run only process 0 writes; every process waits for the file.
    distributed.on_first_process(checkpoint.save_tree, path, trees, metadata)


def load(
    path: str | os.PathLike,
    *,
    model: models.Model | None = None,
    optimizer: Optimizer | None = None,
) -> FitResult:
    """Load a model saved by :func:`save`.

    ``model`` is needed for a custom model (its function cannot be stored); ``optimizer``
    when the saved one cannot be rebuilt (e.g. a learning-rate schedule written as a
    Python function). Raises :class:`~descend.errors.CheckpointError` for a missing,
    truncated, modified or foreign file.
    """
    from descend import data

    metadata = checkpoint.load_metadata(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a descend checkpoint but not a saved model "
            f"(format {metadata.get('format')!r}); it was not written by descend.save"
        )
    model = model if model is not None else _model(metadata["model"], path)
    optimizer = optimizer if optimizer is not None else _optimizer(metadata["optimizer"], path)
    like = None
    if model.name == "custom":
        # The structure of the user's params, their floating leaves in the saved dtype.
        like = {
            "params": jax.tree.map(partial(_template, dtype=metadata["dtype"]), model.init(0, 1, 1))
        }
    trees = checkpoint.load_tree(path, like=like).trees
    params = trees["params"]
    template = optimizer.init(jax.tree.map(np.asarray, params))
    structure = jax.tree.structure(template)
    leaves = trees["opt_state"]
    if structure.num_leaves != len(leaves):
        raise CheckpointError(
            f"the optimizer state in {str(path)!r} does not fit {optimizer!r}; load it with "
            "the optimizer it was trained with"
        )
    standardizer = metadata["standardizer"]
    encoding = metadata["encoding"]
    return FitResult(
        model=model,
        params=params,
        opt_state=jax.tree.unflatten(structure, leaves),
        optimizer=optimizer,
        loss=metadata["loss"],
        history={key: np.asarray(values) for key, values in metadata["history"].items()},
        n_updates=int(metadata["n_updates"]),
        n_epochs=int(metadata["n_epochs"]),
        status=metadata["status"],
        reason=metadata["reason"],
        classes=None if metadata["classes"] is None else np.asarray(metadata["classes"]),
        standardizer=None if standardizer is None else data.Standardizer.from_dict(standardizer),
        encoding=None if encoding is None else data.Encoding.from_dict(encoding),
        dtype=metadata["dtype"],
        seed=int(metadata["seed"]),
        best_epoch=metadata["best_epoch"],
    )


def _template(leaf, dtype: str) -> np.ndarray:
    leaf = np.asarray(leaf)
    return np.zeros(leaf.shape, dtype if np.issubdtype(leaf.dtype, np.floating) else leaf.dtype)


def _optimizer_config(optimizer: Optimizer) -> dict[str, Any] | None:
    hyperparams = dict(optimizer.hyperparams)
    try:
        json.dumps(hyperparams)
    except (TypeError, ValueError):
        return {"name": optimizer.name, "hyperparams": None, "repr": repr(optimizer)}
    return {"name": optimizer.name, "hyperparams": hyperparams, "repr": repr(optimizer)}


def _optimizer(config: dict[str, Any], path) -> Optimizer:
    if config.get("hyperparams") is None:
        raise CheckpointError(
            f"the optimizer in {str(path)!r} ({config.get('repr')}) cannot be rebuilt from the "
            "file; pass it: load(path, optimizer=...)"
        )
    hyperparams = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in config["hyperparams"].items()
    }
    return optim.get(config["name"], **hyperparams)


def _model(config: dict[str, Any], path) -> models.Model:
    if config.get("name") == "custom":
        raise CheckpointError(
            f"{str(path)!r} holds a custom model, whose function cannot be stored; pass it: "
            "load(path, model=descend.models.custom(apply, params))"
        )
    return models.from_config(config)
