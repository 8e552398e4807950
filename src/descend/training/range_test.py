"""The learning-rate range test on ``fit``'s engine: the rates, the losses, the stop.

:func:`run_range_test` checks its arguments, prepares the data exactly as
:func:`descend.fit` does (one :class:`~descend.training.spec.FitSpec`, the same
preparation, standardization, weights and objective), gives the optimizer the
exponential schedule as its ``lr``, and runs the updates as one compiled program
(:func:`descend.engine.compiled_range_test`). What a user reads and draws
(``LRFinderResult``, ``ds.lr_find``) is :mod:`descend.plot.lr_finder`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import engine, optim
from descend.data.shuffle import epoch_order
from descend.errors import DescendTypeError, InputError, Integer, Interval, Number, check_all
from descend.optim import pairs
from descend.optim.base import Optimizer
from descend.training.loop import _at_training_point
from descend.training.objective import BatchObjective
from descend.training.prepare import prepare, settle_weights
from descend.training.sources import InMemory
from descend.training.spec import FitSpec

# What each option of the range test accepts (fit's options are checked by FitSpec).
CONSTRAINTS = {
    "start_lr": Number(0.0, strict=True),
    "end_lr": Number(0.0, strict=True),
    "num_iter": Integer(2),
    "smooth_f": Interval(0.0, 1.0),
    "diverge_th": Number(1.0, strict=True),
    "skip_start": Integer(0),
    "skip_end": Integer(0),
}

# fit's options that the range test sets itself: one pass of whole batches, watched by
# nothing but the test's own rule, silently.
_FIXED = {
    "lr": None, "epochs": 1, "drop_last": True, "validation_split": None, "tol": None,
    "patience": None, "min_delta": 0.0, "restore_best": False, "callbacks": (),
    "verbose": 0, "resume": None, "init": None, "devices": None,
}  # fmt: skip


@dataclass(frozen=True)
class SmoothedDivergence:
    r"""The range test's rule after every update: smooth the loss, stop when it diverged.

    The smoothed loss is fastai's bias-corrected exponential moving average, with
    :math:`\beta = 1 - \text{smooth\_f}`:

    .. math:: a_k = \ell_k + \beta\,(a_{k-1} - \ell_k),\quad a_0 = 0,\qquad
       s_k = \frac{a_k}{1 - \beta^k}

    (``smooth_f=0``: :math:`s_k = \ell_k`, as torch-lr-finder). The test goes on while
    :math:`s_k` is finite and :math:`s_k \le \text{diverge\_th} \cdot \min_{j \le k}
    s_j`. Hashable: part of the compiled program's key.
    """

    smooth_f: float
    diverge_th: float

    def init(self, dtype: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        zero = jnp.zeros((), dtype)
        return zero, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, dtype)

    def __call__(self, state, loss):
        average, count, best = state
        count = count + 1
        if self.smooth_f == 0:
            smoothed = loss
        else:
            beta = 1.0 - self.smooth_f
            average = loss + beta * (average - loss)  # torch.lerp(loss, average, beta)
            smoothed = average / (1.0 - beta ** count.astype(loss.dtype))
        best = jnp.where(smoothed < best, smoothed, best)
        going = jnp.isfinite(smoothed) & ~(smoothed > self.diverge_th * best)
        return (average, count, best), smoothed, going


class RangeTest(NamedTuple):
    """The numbers of one range test (host arrays of the updates made, ``n_iter`` long)."""

    lrs: np.ndarray  # the rate of each update, as the optimizer's schedule gave it
    losses: np.ndarray  # each update's mean loss on its batch, before its step
    smoothed: np.ndarray  # the rule's smoothed loss after each update
    n_iter: int  # updates made
    diverged: bool  # the rule stopped the test (smoothed loss too high, or not finite)
    optimizer: Optimizer  # the optimizer run, its lr the schedule
    spec: FitSpec
    batch_size: int  # the rows of each batch (after fit's rule for a batch too large)
    n_samples: int  # training rows


def exponential_rates(start_lr: float, end_lr: float, num_iter: int) -> optim.schedules.exponential:
    r"""The test's schedule: :math:`\eta_k = \text{start\_lr}\,\gamma^k` with
    :math:`\gamma = (\text{end\_lr}/\text{start\_lr})^{1/(\text{num\_iter}-1)}`, so that
    update 0 takes ``start_lr`` and update ``num_iter - 1`` takes ``end_lr``
    (torch-lr-finder's ``ExponentialLR``)."""
    gamma = (end_lr / start_lr) ** (1.0 / (num_iter - 1))
    return optim.schedules.exponential(start_lr, gamma)


def check_test(test: dict[str, Any]) -> dict[str, Any]:
    """The range test's own settings (``start_lr``, ``end_lr``, ``num_iter``,
    ``smooth_f``, ``diverge_th``, ``skip_start``, ``skip_end``), checked against
    :data:`CONSTRAINTS` and ``start_lr < end_lr``; converted."""
    test = check_all(CONSTRAINTS, test)
    if not test["start_lr"] < test["end_lr"]:
        raise InputError(
            f"start_lr must be less than end_lr (the test grows the rate from one to the "
            f"other), got {test['start_lr']!r} and {test['end_lr']!r}"
        )
    return test


def run_range_test(
    model: Any, X: Any, y: Any, *, sample_weight: Any, options: dict[str, Any],
    test: dict[str, Any],
) -> RangeTest:  # fmt: skip
    """The range test of ``model`` on the data, ``options`` being ``fit``'s (those the
    test takes) and ``test`` its own (``start_lr``, ``end_lr``, ``num_iter``,
    ``smooth_f``, ``diverge_th``): see :func:`descend.plot.lr_finder.lr_find`."""
    from descend.data.streams import Stream

    test = check_test(test)
    if isinstance(X, Stream):
        raise InputError(
            "lr_find takes data in memory (arrays, a table, a Dataset), not a stream; "
            "run it on a sample of the stream's rows read into memory"
        )
    if options.get("optimizer") is None:
        options = {**options, "optimizer": "adam"}  # fit's algorithm, without its plateau rule
    data = {"X": X, "y": y, "sample_weight": sample_weight, "validation": None}
    spec = FitSpec.build(model, data, {**options, **_FIXED})
    context = jax.enable_x64(True) if spec.dtype == "float64" else contextlib.nullcontext()
    with context:
        return _run(spec, X, y, sample_weight, test)


def _run(spec: FitSpec, X: Any, y: Any, sample_weight: Any, test: dict[str, Any]) -> RangeTest:
    num_iter = test["num_iter"]
    schedule = exponential_rates(test["start_lr"], test["end_lr"], num_iter)
    spec = replace(spec, optimizer=_scheduled(spec.optimizer, schedule))
    prepared, mean_weight = settle_weights(prepare(spec, X, y, sample_weight, None), None)
    n_train = prepared.n_samples
    batch_size = spec.batch_size_for(n_train)
    config = engine.EpochConfig(
        n_samples=n_train,
        batch_size=batch_size,
        accumulate=spec.accumulate,
        drop_last=True,  # every update a whole batch: every point of the curve alike
        shuffle=spec.shuffle and batch_size < n_train,  # as fit: no need for one batch
        weighted=prepared.weights is not None,
    )
    if config.n_groups == 0:
        raise InputError(
            f"an update takes batch_size x accumulate = {config.group_rows} rows, more than "
            f"the {n_train} training rows; lower accumulate (or batch_size)"
        )
    passes = math.ceil(num_iter / config.n_groups)
    orders = None
    if config.shuffle:  # each pass's row order is fit's for the epoch of the same number
        orders = np.stack([epoch_order(spec.seed, p, n_train) for p in range(passes)])
    state = spec.initial_state(prepared.n_features, prepared.n_outputs)
    state = _at_training_point(spec.optimizer, state)
    params = state.params
    layout = pairs.Layout.of(params) if pairs.has_complex(params) else None
    if layout is not None:
        params = pairs.to_pairs(params)
    objective = BatchObjective(
        spec.model, spec.loss, spec.loss_name, layout, spec.l2_strength(n_train)
    )
    source = InMemory.of(prepared.X, prepared.y, prepared.weights, config, mean_weight)
    watch = SmoothedDivergence(test["smooth_f"], test["diverge_th"])
    program = engine.compiled_range_test(objective, spec.optimizer, config, num_iter, watch)
    outcome = program(params, state.opt_state, source.data, orders, source.mean_weight)
    losses, smoothed, count, stopped = jax.device_get(
        (outcome.losses, outcome.watched, outcome.count, outcome.stopped)
    )
    count = int(count)
    dtype = np.asarray(losses).dtype
    rates = np.asarray(schedule(jnp.arange(num_iter)), dtype=dtype)
    return RangeTest(
        lrs=rates[:count], losses=np.asarray(losses[:count]),
        smoothed=np.asarray(smoothed[:count]), n_iter=count, diverged=bool(stopped),
        optimizer=spec.optimizer, spec=spec, batch_size=batch_size, n_samples=n_train,
    )  # fmt: skip


def _scheduled(optimizer: Optimizer, schedule: Any) -> Optimizer:
    """``optimizer`` with the test's schedule as its learning rate (a wrapper's inner
    optimizer's, as ``fit``'s ``lr=`` with ``resume``)."""
    try:
        return optim.rebuild(optimizer, lr=schedule)
    except (InputError, DescendTypeError) as error:
        raise InputError(
            f"lr_find gives the optimizer the test's schedule as its lr, and cannot give it "
            f"to {optim.brief(optimizer)}: {error}"
        ) from None


def slope_span(smooth_f: float) -> int:
    """Points on each side of a point that its slope is measured across: half the
    smoothed loss's window of about ``1/smooth_f`` updates (10 for 0.05), 1 without
    smoothing."""
    return 1 if smooth_f == 0 else max(1, round(0.5 / smooth_f))


def slopes(lrs: np.ndarray, smoothed: np.ndarray, span: int = 1) -> np.ndarray:
    r"""The slope of the smoothed loss against :math:`\log_{10}` of the rate at every
    point :math:`k`, by central differences across ``span`` points on each side (fewer
    at the ends, one-sided at the first and last point), in float64:

    .. math:: \frac{s_{k+h} - s_{k-h}}{\log_{10}\eta_{k+h} - \log_{10}\eta_{k-h}},
       \qquad h = \text{span}, \text{ indices clipped to the curve}.

    With ``span=1`` this is ``numpy.gradient(smoothed, log10(lrs))`` (for rates evenly
    spaced in the logarithm, as the test's are). Measured across one point, the slope
    of an exponential average is its newest loss's noise (``smooth_f`` times it), which
    swamps the curve's own fall; across half its window, the noise averages out. Empty
    for fewer than 2 points.
    """
    n = len(smoothed)
    if n < 2:
        return np.zeros(0)
    values = np.asarray(smoothed, float)
    logs = np.log10(np.asarray(lrs, float))
    index = np.arange(n)
    low, high = np.maximum(index - span, 0), np.minimum(index + span, n - 1)
    return (values[high] - values[low]) / (logs[high] - logs[low])


def steepest(
    lrs: np.ndarray, smoothed: np.ndarray, skip_start: int, skip_end: int, span: int = 1
) -> int | None:
    """The index where the smoothed loss falls fastest: the least of :func:`slopes`
    (across ``span`` points) over the points left after the first ``skip_start`` and
    the last ``skip_end``; None when fewer than 2 are left."""
    n = len(smoothed)
    if n - skip_start - skip_end < 2:
        return None
    return skip_start + int(np.argmin(slopes(lrs, smoothed, span)[skip_start : n - skip_end]))


__all__ = [
    "CONSTRAINTS", "RangeTest", "SmoothedDivergence", "check_test", "run_range_test",
    "slope_span", "slopes", "steepest",
]  # fmt: skip
