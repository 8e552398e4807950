"""The learning-rate finder: ``ds.lr_find`` and its :class:`LRFinderResult`.

The range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2015/2017;
fastai's ``Learner.lr_find``, the ``torch-lr-finder`` package): train from the model's
initial weights while the learning rate grows exponentially, update by update, record
the loss, and read the curve. It lives with the pictures, as the race does, because a
range test is read from its plot; the numbers come from ``fit``'s engine
(:mod:`descend.training.range_test`).

>>> import numpy as np, descend as ds
>>> X = np.random.default_rng(0).normal(size=(256, 3))
>>> y = X @ np.array([1.0, -2.0, 0.5])
>>> result = ds.lr_find("linear", X, y, optimizer="sgd", num_iter=100)
>>> len(result.lrs) == len(result.losses) == len(result.smoothed) <= 100
True
>>> 1e-7 <= result.suggestion <= 10
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from descend import _html, optim
from descend._json import jsonable
from descend.errors import check_all
from descend.optim.base import Optimizer
from descend.training.range_test import (
    CONSTRAINTS,
    check_test,
    run_range_test,
    slope_span,
    slopes,
    steepest,
)


@dataclass(frozen=True)
class LRFinderResult:
    r"""The outcome of a learning-rate range test (:func:`lr_find`).

    Attributes
    ----------
    lrs:
        The learning rate of each update made, ``(n_iter,)`` in the training dtype:
        :math:`\text{start\_lr}\,(\text{end\_lr}/\text{start\_lr})^{k/(\text{num\_iter}-1)}`
        for update :math:`k = 0, 1, \dots`, as the optimizer's schedule computed it.
    losses:
        Each update's mean loss on its batch, before its step (the loss ``fit``'s
        history averages; without the L2 penalty), ``(n_iter,)``.
    smoothed:
        The bias-corrected exponential moving average of ``losses`` (fastai's), with
        weight ``smooth_f`` on the newest loss, ``(n_iter,)``.
    suggestion, suggestion_index:
        The rate where the smoothed loss falls fastest, and its index in ``lrs``
        (counting from 0: update ``suggestion_index + 1``, as ``reason`` counts them),
        by :meth:`suggest`'s rule with ``skip_start`` and ``skip_end``; None when too
        few points were recorded.
    n_iter:
        Updates recorded (``num_iter``, or fewer when the test stopped early).
    status, reason:
        ``"completed"`` (every update ran) or ``"diverged"`` (the smoothed loss went
        above ``diverge_th`` times its least value, or a loss was not finite), and a
        sentence saying what happened and what was suggested.
    model, optimizer, loss:
        What was trained: the optimizer with the test's schedule as its ``lr``.
    start_lr, end_lr, num_iter, smooth_f, diverge_th, skip_start, skip_end:
        The test's settings.
    batch_size, n_samples:
        Rows per batch and training rows.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None
    suggestion_index: int | None
    n_iter: int
    status: str
    reason: str
    model: Any  # a descend.models.Model
    optimizer: Optimizer
    loss: str | Callable[..., Any]
    start_lr: float
    end_lr: float
    num_iter: int
    smooth_f: float
    diverge_th: float
    skip_start: int
    skip_end: int
    batch_size: int
    n_samples: int

    def suggest(self, skip_start: int | None = None, skip_end: int | None = None) -> float | None:
        r"""The rate where the smoothed loss falls fastest: the steepest negative slope.

        The slope at point :math:`k` is taken against :math:`\log_{10}` of the rate, by
        central differences across :math:`h` points on each side,
        :math:`(s_{k+h} - s_{k-h}) / (\log_{10}\eta_{k+h} - \log_{10}\eta_{k-h})`
        (fewer at the ends), :math:`h` being half the smoothing's window,
        ``round(0.5 / smooth_f)`` (10 for the default 0.05; 1 without smoothing, which
        is ``numpy.gradient(smoothed, log10(lrs))``: see
        :func:`descend.training.range_test.slopes`). Its least value is looked for over
        the points left after the first ``skip_start`` and the last ``skip_end``. This
        is the "steepest" rule of fastai (``steep``, since replaced by ``valley`` as its
        default) and torch-lr-finder (``suggest_lr``, whose margins 10 and 5 are the
        defaults), both of which take the slope across one point: on an exponential
        average, that slope is mostly the newest loss's noise, and on a curve of a few
        hundred points it picks a wiggle near the start. None when fewer than 2 points
        are left. Defaults: this result's settings.
        """
        skip = check_all(
            CONSTRAINTS,
            {
                "skip_start": self.skip_start if skip_start is None else skip_start,
                "skip_end": self.skip_end if skip_end is None else skip_end,
            },
        )
        index = steepest(
            self.lrs, self.smoothed, skip["skip_start"], skip["skip_end"],
            slope_span(self.smooth_f),
        )  # fmt: skip
        return None if index is None else float(self.lrs[index])

    def plot(self, *, ax: Any = None) -> Any:
        """The loss against the rate (:func:`descend.plot.lr_find`); the Figure."""
        from descend import plot

        return plot.lr_find(self, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``descend lr-find --json`` prints)."""
        return {
            "model": repr(self.model),
            "optimizer": optim.brief(self.optimizer),
            "suggestion": jsonable(self.suggestion),
            "suggestion_index": self.suggestion_index,
            "n_iter": self.n_iter,
            "num_iter": self.num_iter,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "smooth_f": self.smooth_f,
            "diverge_th": self.diverge_th,
            "batch_size": self.batch_size,
            "status": self.status,
            "reason": self.reason,
            "lrs": jsonable(self.lrs),
            "losses": jsonable(self.losses),
            "smoothed": jsonable(self.smoothed),
        }

    def __repr__(self) -> str:
        suggestion = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        return (
            f"LRFinderResult(suggestion={suggestion}, updates={self.n_iter} of "
            f"{self.num_iter}, lr {self.start_lr:g} to {self.end_lr:g}, "
            f"status={self.status!r})"
        )

    def _repr_html_(self) -> str:
        """A table of the key numbers and the losses per update (Jupyter's display)."""
        suggestion = "none" if self.suggestion is None else _html.number(self.suggestion, 3)
        rows = [
            ("suggestion", suggestion),
            ("updates", f"{self.n_iter} of {self.num_iter}"),
            ("rates", f"{self.start_lr:g} to {self.end_lr:g}, exponentially"),
            ("status", self.status),
            ("reason", self.reason),
            ("model", repr(self.model)),
            ("optimizer", optim.brief(self.optimizer)),
            ("batch_size", str(self.batch_size)),
        ]
        curve = _html.curves(
            {"loss": self.losses, "smoothed": self.smoothed},
            title="loss per update (the rate grows exponentially)",
        )
        return _html.block(_html.table(rows, caption="LRFinderResult"), curve)


def lr_find(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    loss: str | Callable[..., Any] | None = None,
    optimizer: Optimizer | str | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 300,
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
    skip_start: int = 10,
    skip_end: int = 5,
    batch_size: int | None = 32,
    method: str | None = None,
    accumulate: int = 1,
    shuffle: bool = True,
    seed: int | None = None,
    sample_weight: Any = None,
    standardize: bool = True,
    l2: float | str | None = None,
    dtype: str | None = None,
    target: str | None = None,
    features: Any = None,
    nan_policy: str = "raise",
) -> LRFinderResult:
    r"""The learning-rate range test: the loss as the rate grows, and a rate to start from.

    From the model's initial weights, ``num_iter`` updates of ``fit``'s (the same
    model, loss, optimizer, batches, standardization, L2 penalty and data inputs), the
    learning rate of update :math:`k` being

    .. math:: \eta_k = \text{start\_lr} \left(\frac{\text{end\_lr}}{\text{start\_lr}}
       \right)^{k / (\text{num\_iter} - 1)},

    given to the optimizer as its ``lr`` schedule. Each update's mean loss on its batch
    (before its step) is recorded, and smoothed as fastai does (a bias-corrected
    exponential moving average with :math:`\beta = 1 - \text{smooth\_f}`):
    :math:`a_k = \ell_k + \beta (a_{k-1} - \ell_k)`, :math:`a_{-1} = 0`,
    :math:`s_k = a_k / (1 - \beta^{k+1})`. The test stops early, after the update where
    :math:`s_k > \text{diverge\_th} \cdot \min_{j \le k} s_j` or a loss is not finite
    (that update's loss is kept, unless it is not finite). The suggestion is the rate
    where the smoothed loss falls fastest: the steepest negative slope of the smoothed
    loss against :math:`\log_{10}` of the rate, measured across half the smoothing's
    window (:meth:`LRFinderResult.suggest` says how), past the first ``skip_start``
    and before the last ``skip_end`` points. A rate somewhat below it (often by 3-10x) is
    the usual choice for ``fit``; the point where the loss is least is already too high.

    The whole test is one compiled program (:func:`descend.engine.compiled_range_test`):
    the updates are ``fit``'s own, and after a divergence the remaining ones are
    skipped. Nothing given is changed: the weights trained are a copy, started as
    ``fit`` starts them (the model's ``init`` with ``seed``, or a custom model's params).

    Parameters
    ----------
    model, X, y, loss, batch_size, method, accumulate, shuffle, seed, sample_weight, \
standardize, l2, dtype, target, features, nan_policy:
        As :func:`descend.fit` takes them (arrays, a CSV / Parquet path with ``target``,
        a DataFrame or a :class:`~descend.data.Dataset`; not a stream). Every update
        takes a whole batch of ``batch_size`` rows (``accumulate`` batches): the short
        last batch of each pass over the rows is dropped (as fastai's training loader
        drops it), so that every point of the curve is the loss of as many rows. Pass
        ``p`` over the rows visits them in the order of ``fit``'s epoch ``p``: the
        batches are ``fit(..., drop_last=True)``'s.
    optimizer:
        An optimizer with a learning rate, built by name (any of
        :func:`descend.optim.names` with an ``lr``; not ``chain``, ``partition`` nor
        ``from_optax``, which cannot be built again), or its name; its ``lr`` is
        replaced by the schedule (:func:`descend.optim.rebuild`; a
        ``reduce_on_plateau`` wrapper keeps its rule, which sees no epoch here and so
        never cuts the rate). Default ``"adam"``: ``fit``'s default algorithm.
    start_lr, end_lr:
        The first and last rate, ``0 < start_lr < end_lr``. Default ``1e-7`` and ``10``
        (fastai's and torch-lr-finder's).
    num_iter:
        Updates, >= 2. Default 300 (fastai and torch-lr-finder run 100: here an update
        costs microseconds, and 300 updates over the default 8 decades give 37 points a
        decade, so that the smoothing lags less of a decade).
    smooth_f:
        The weight of the newest loss in the smoothed loss, in ``[0, 1)``; 0 for no
        smoothing (torch-lr-finder's name and default, 0.05; fastai's
        :math:`\beta = 0.98` is ``smooth_f=0.02``).
    diverge_th:
        Stop when the smoothed loss exceeds ``diverge_th`` times its least value, > 1.
        Default 5 (torch-lr-finder's; fastai stops at 4). For a loss that is positive
        (a loss that can be negative, such as ``poisson_nll`` with ``log_input``, makes
        the rule meaningless: pass a large ``diverge_th``).
    skip_start, skip_end:
        Points left out at the start and end of the curve when looking for the
        suggestion, >= 0. Default 10 and 5 (torch-lr-finder's).

    Returns
    -------
    LRFinderResult
        ``lrs``, ``losses``, ``smoothed``, ``suggestion``, ``status``, ``reason``;
        ``plot()`` draws it (:func:`descend.plot.lr_find`).

    Raises
    ------
    InputError, DataError
        An option out of its range (``start_lr`` not below ``end_lr``, ``num_iter``
        below 2, ...: the message names it, its range and the value), an optimizer
        without a learning rate, an update larger than the data, a stream, data that
        cannot be used (as ``fit`` says).
    DescendTypeError
        A model, loss or optimizer that is none.
    """
    test: dict[str, Any] = {
        "start_lr": start_lr, "end_lr": end_lr, "num_iter": num_iter, "smooth_f": smooth_f,
        "diverge_th": diverge_th, "skip_start": skip_start, "skip_end": skip_end,
    }  # fmt: skip
    options = {
        "loss": loss, "optimizer": optimizer, "batch_size": batch_size, "method": method,
        "accumulate": accumulate, "shuffle": shuffle, "seed": seed,
        "standardize": standardize, "l2": l2, "dtype": dtype, "target": target,
        "features": features, "nan_policy": nan_policy,
    }  # fmt: skip
    test = check_test(test)
    run = run_range_test(model, X, y, sample_weight=sample_weight, options=options, test=test)
    lrs, losses, smoothed = run.lrs, run.losses, run.smoothed
    non_finite = len(losses) > 0 and not (np.isfinite(losses[-1]) and np.isfinite(smoothed[-1]))
    if non_finite:  # the update that stopped the test: not a point of the curve
        lrs, losses, smoothed = lrs[:-1], losses[:-1], smoothed[:-1]
    span = slope_span(test["smooth_f"])
    index = steepest(lrs, smoothed, test["skip_start"], test["skip_end"], span)
    suggestion = None if index is None else float(lrs[index])
    reason = _reason(run, test, index, non_finite, smoothed)
    return LRFinderResult(
        lrs=lrs, losses=losses, smoothed=smoothed, suggestion=suggestion,
        suggestion_index=index, n_iter=len(losses),
        status="diverged" if run.diverged else "completed", reason=reason,
        model=run.spec.model, optimizer=run.optimizer, loss=run.spec.loss_name or run.spec.loss,
        batch_size=run.batch_size, n_samples=run.n_samples, **test,
    )  # fmt: skip


def _reason(run: Any, test: dict[str, Any], index: int | None, non_finite: bool,
            smoothed: np.ndarray) -> str:  # fmt: skip
    """What the test did and what it suggests, in one sentence."""
    num_iter = test["num_iter"]
    if not run.diverged:
        rates = f"{test['start_lr']:g} to {test['end_lr']:g}"
        what = f"ran all {num_iter} updates, the rate from {rates}"
    elif non_finite:
        what = (
            f"stopped at update {run.n_iter} of {num_iter} (lr {float(run.lrs[-1]):.3g}): the "
            "loss became non-finite"
        )
    else:
        what = (
            f"stopped at update {run.n_iter} of {num_iter} (lr {float(run.lrs[-1]):.3g}): the "
            f"smoothed loss {float(smoothed[-1]):.4g} exceeded diverge_th={test['diverge_th']:g} "
            f"times its least, {float(np.min(smoothed)):.4g}"
        )
    if index is None:
        skipped = test["skip_start"] + test["skip_end"]
        kept = len(smoothed) - skipped
        # More points come from more updates, or (when the loss blew up) from a rate
        # that grows more slowly: a lower start_lr spreads the same decades over them.
        fix = (
            "lower start_lr, or raise num_iter, so that more updates run before the loss grows"
            if run.diverged
            else f"raise num_iter to at least {skipped + 2}"
        )
        return (
            f"{what}; too few points for a suggestion ({max(kept, 0)} after skipping the "
            f"first {test['skip_start']} and last {test['skip_end']}): {fix}"
        )
    rate = float(run.lrs[index])
    slope = slopes(run.lrs[: len(smoothed)], smoothed, slope_span(test["smooth_f"]))[index]
    if not slope < 0 or not math.isfinite(slope):
        return (
            f"{what}; the smoothed loss never fell (least rise at lr {rate:.3g}): lower "
            "start_lr, or check the model and data"
        )
    return (
        f"{what}; the smoothed loss fell fastest at lr {rate:.3g} (update {index + 1}, "
        f"suggestion_index {index} counting from 0)"
    )


__all__ = ["LRFinderResult", "lr_find"]
