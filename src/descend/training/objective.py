"""The loss of a model on a batch, as the compiled epoch needs it, and validation scores."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from descend import metrics, models
from descend._tree import PyTree
from descend.calculus import call_user
from descend.errors import InputError
from descend.optim import pairs
from descend.optim.leaves import decayed_leaves


@dataclass(frozen=True)
class BatchObjective:
    r"""The loss of one batch: ``(params, X, y[, w]) -> (loss sum, (weight sum, metric sums))``.

    The loss sum is :math:`\sum_i w_i \ell_i` (the weight sum the number of rows when
    there are no sample weights); the metric sums are what the running training metric
    needs: correct predictions for classifiers, squared residuals per output for
    regression. Hashable by value (model and loss), so compiled epochs are reused.

    With ``complex_layout`` (the layout of a custom model's complex params) the params
    given are their real pairs (:mod:`descend.optim.pairs`): the epochs run on real
    numbers, and the model sees its complex params.
    """

    model: models.Model
    loss: Callable[..., jax.Array]
    loss_name: str | None
    complex_layout: pairs.Layout | None = None
    l2: float = 0.0

    @property
    def penalty(self) -> Callable[[PyTree], jax.Array | float] | None:
        r"""The L2 penalty :math:`\tfrac{\lambda}{2} \sum \lVert w \rVert^2` over the
        weights (leaves named ``w``; not the biases) that each update adds to its mean
        loss, as a function of the params; None when ``l2`` is 0."""
        return None if self.l2 == 0 else self._penalty

    def _penalty(self, params: PyTree) -> jax.Array | float:  # 0.0 without weights
        return l2_penalty(params, self.l2)

    def penalized(self, l2: jax.Array) -> Penalized:
        """This objective with the L2 strength ``l2``, which may be traced: a sweep's
        program gives each configuration its own (where ``l2`` is 0 the penalty adds
        exactly 0 to the loss and the gradient, as none does)."""
        return Penalized(self, l2)

    def outputs(self, params: PyTree, X: jax.Array) -> jax.Array:
        """The model's raw outputs, which must be real (the loss compares them to targets)."""
        if self.complex_layout is not None:
            params = self.complex_layout.from_pairs(params)
        if self.model.name == "custom":  # the user's function: its errors are named as such
            outputs = call_user(self.model.apply, params, X, what="the custom model's apply")
        else:
            outputs = self.model.apply(params, X)
        if jnp.iscomplexobj(outputs):
            raise InputError(
                f"the model returns complex outputs (dtype {jnp.result_type(outputs)}); fit "
                "compares real predictions with real targets: return real numbers from "
                "apply, e.g. jnp.abs(z), or z.real and z.imag as two outputs"
            )
        return outputs

    def per_sample(self, params: PyTree, X: jax.Array, y: jax.Array) -> jax.Array:
        """One loss per row of ``X``, shape ``(n,)``."""
        return self._per_sample(self.outputs(params, X), y)

    def _per_sample(self, predictions, y) -> jax.Array:
        if self.loss_name is None:
            values = call_user(self.loss, predictions, y, what="the loss function")
            if jnp.ndim(values) == 0:
                raise InputError(
                    "a custom loss must return one value per sample (shape (n,)), got a "
                    "scalar; return the per-sample losses without averaging them"
                )
        else:
            values = self.loss(predictions, y, reduction="none")
        # One number per sample: the mean over outputs (as torch's "mean" over all
        # elements), except KL divergence, summed over classes (torch's "batchmean").
        trailing = tuple(range(1, jnp.ndim(values)))
        if self.loss_name == "kl_div":
            return jnp.sum(values, axis=trailing)
        return jnp.mean(values, axis=trailing) if trailing else values

    def __call__(
        self, params: PyTree, X: jax.Array, y: jax.Array, w: jax.Array | None = None
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        return self.sums(self.outputs(params, X), y, w)

    def sums(
        self, predictions: jax.Array, y: jax.Array, w: jax.Array | None = None
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """``(loss sum, (weight sum, metric sums))`` of the model's outputs on a batch."""
        values = self._per_sample(predictions, y)
        if w is None:
            loss, weight = jnp.sum(values), jnp.asarray(values.shape[0], values.dtype)
        else:
            loss, weight = jnp.sum(w * values), jnp.sum(w)
        return loss, (weight, self._metric_sums(predictions, y, w, values.dtype))

    def _metric_sums(self, predictions, y, w, dtype) -> jax.Array:
        if self.model.task == "regression":
            residual = (jnp.reshape(y, predictions.shape) - predictions) ** 2
            if w is not None:
                residual = residual * jnp.reshape(w, (-1,) + (1,) * (residual.ndim - 1))
            return jnp.sum(residual, axis=0).astype(dtype)
        labels = models.predict_from_outputs(self.model, predictions)
        correct = (labels == y.astype(labels.dtype)).astype(dtype)
        return jnp.sum(correct if w is None else w * correct)


def l2_penalty(params: PyTree, l2: jax.Array | float) -> jax.Array | float:
    r""":math:`\tfrac{\lambda}{2} \sum \lVert w \rVert^2` over the leaves named ``w``
    (not the biases); 0.0 without such leaves."""
    chosen = decayed_leaves("weights", params)
    squares = [
        jnp.sum(jnp.square(leaf))
        for leaf, on in zip(jax.tree.leaves(params), jax.tree.leaves(chosen), strict=True)
        if on
    ]
    return 0.5 * l2 * sum(squares)


class Penalized:
    """A :class:`BatchObjective` with an L2 strength that may be a traced value (see
    :meth:`BatchObjective.penalized`); made inside a trace, never a cache key."""

    def __init__(self, objective: BatchObjective, l2: jax.Array):
        self.objective, self.l2 = objective, l2
        self.outputs, self.sums = objective.outputs, objective.sums

    def __call__(self, params: PyTree, *batch: jax.Array):
        return self.objective(params, *batch)

    def penalty(self, params: PyTree) -> jax.Array | float:
        return l2_penalty(params, self.l2)


@functools.partial(jax.jit, static_argnums=0)
def _evaluate(objective: BatchObjective, params, X, y, w=None):
    values = objective.per_sample(params, X, y)
    outputs = objective.outputs(params, X)
    loss = jnp.mean(values) if w is None else jnp.sum(w * values) / jnp.sum(w)
    if objective.model.task == "regression":
        metric = metrics.r2(y, outputs, xp=jnp, sample_weight=w)
    else:
        labels = models.predict_from_outputs(objective.model, outputs)
        metric = metrics.accuracy(y, labels, xp=jnp, sample_weight=w)
    return loss, metric


def evaluate(
    objective: BatchObjective, params: PyTree, X: ArrayLike, y: ArrayLike,
    w: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    r"""Mean loss and the task metric (R² or accuracy) of ``params`` on ``(X, y)``.

    With per-sample weights ``w`` (shape ``(n,)``), the weighted mean loss
    :math:`\sum_i w_i \ell_i / \sum_i w_i` and the weighted metric (as scikit-learn's
    ``r2_score`` and ``accuracy_score`` weigh it). Returns device scalars without
    waiting for them, so that the caller fetches them together with the epoch's other
    results.
    """
    w = None if w is None else jnp.asarray(w)
    return tuple(_evaluate(objective, params, jnp.asarray(X), jnp.asarray(y), w))
