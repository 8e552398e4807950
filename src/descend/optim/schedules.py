"""Learning-rate schedules, usable wherever an optimizer takes ``lr=``.

A schedule is a frozen (hashable) dataclass called with ``count``, the 0-based number
of optimizer steps taken so far, and returns the learning rate for the next step::

    opt = descend.optim.sgd(lr=schedules.cosine_annealing(0.1, T_max=1000))

``count`` may be a traced integer, so schedules run inside compiled loops; equal
schedules hash equal, so a compiled loop is reused rather than rebuilt.

Counting: ``torch.optim.lr_scheduler`` schedulers count calls of ``scheduler.step()``,
which users often make once per epoch. Here the count is optimizer steps (one per
batch in ``fit``, one per iteration in ``minimize``); ``schedule(k)`` equals the
learning rate a torch scheduler gives after ``k`` calls of ``scheduler.step()``. To
change the rate once per epoch, scale the step counts (``step_size``,
``milestones``, ``T_max``...) by the number of batches per epoch.

:func:`reduce_on_plateau` reads the loss, not the count, so it wraps an optimizer
rather than being passed as ``lr``.

Horizons: a schedule laid out for a number of steps (``one_cycle``'s ``total_steps``,
``cosine_annealing``'s ``T_max``, and ``linear_warmup`` around either) has a
``horizon``, the most steps a run can take on its course; past it ``one_cycle`` holds
its minimum and ``cosine_annealing`` climbs back. A schedule runs inside compiled loops,
where it cannot raise, so the loops that know their length in advance (``fit``: epochs
times updates per epoch; ``minimize``: ``max_iter``) ask :func:`past_horizon` before
running and warn. The other schedules have ``horizon = None``: their rate after the
last milestone is the one they were given. A schedule of your own takes part by having
a ``horizon`` and a ``past(n_steps)`` method like these.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from descend import _tree, rules
from descend.errors import DescendTypeError, InputError, check_in_range, check_int, check_positive
from descend.optim._common import inner_points, lr_or_schedule, nonnegative_number, store_checked
from descend.optim.base import LearningRate, Optimizer, lr_at
from descend.optim.blocks import zero_count


def _steps(count: Any) -> jax.Array:
    """The step count as a float array of the default float dtype."""
    return jnp.asarray(count).astype(jnp.result_type(float))


_count = functools.partial(check_int, minimum=0)
_unit = functools.partial(check_in_range, low=0.0, high=1.0, closed_high=True)


def _share(name: str, value: Any) -> float:
    """A number in ``(0, 1]``: a fraction of the learning rate that is never zero."""
    number = _unit(name, value)
    if number == 0.0:
        raise InputError(f"{name} must be in (0, 1], got 0.0")
    return number


def _milestones(name: str, value: Any) -> tuple[int, ...]:
    try:
        return tuple(sorted(_count(name, m) for m in value))
    except TypeError:
        raise InputError(f"{name} must be a sequence of integers >= 0, got {value!r}") from None


# Schedules are classes (frozen, so hashable) named in lower case like the functions
# they stand for, as optax's schedules and torch's optimizers are used: step(0.1, 30).


@dataclass(frozen=True)
class constant:
    r"""A constant learning rate, optionally scaled by ``factor`` for the first steps.

    .. math:: \eta(k) = \eta \cdot (\text{factor if } k < \text{total\_iters} \text{ else } 1)

    With the defaults this is just :math:`\eta`. With ``factor`` and ``total_iters`` it
    is ``torch.optim.lr_scheduler.ConstantLR`` (whose defaults are ``factor=1/3``,
    ``total_iters=5``); ``optax.constant_schedule`` is the default case.

    Parameters
    ----------
    lr:
        The learning rate :math:`\eta > 0`.
    factor:
        Multiplier in ``(0, 1]`` for the first ``total_iters`` steps. Default 1.
    total_iters:
        Number of steps the factor applies to (>= 0). Default 0.

    Examples
    --------
    >>> from descend.optim.schedules import constant
    >>> [round(float(constant(0.1, factor=0.5, total_iters=2)(k)), 6) for k in range(3)]
    [0.05, 0.05, 0.1]
    """

    lr: float
    factor: float = 1.0
    total_iters: int = 0

    def __post_init__(self):
        store_checked(self, lr=check_positive, factor=_share, total_iters=_count)

    def __call__(self, count: ArrayLike) -> jax.Array:
        k = _steps(count)
        return self.lr * jnp.where(k < self.total_iters, self.factor, 1.0)


@dataclass(frozen=True)
class step:
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    .. math:: \eta(k) = \eta\, \gamma^{\lfloor k / \text{step\_size} \rfloor}

    Matches ``torch.optim.lr_scheduler.StepLR`` (closed form; torch multiplies
    step by step, which agrees to rounding). Optax: ``exponential_decay`` with
    ``staircase=True``.

    Parameters
    ----------
    lr:
        Initial learning rate :math:`\eta > 0`.
    step_size:
        Steps between decays (>= 1).
    gamma:
        Decay factor :math:`\gamma > 0`. Default 0.1.

    Examples
    --------
    >>> from descend.optim.schedules import step
    >>> [round(float(step(1.0, step_size=2, gamma=0.5)(k)), 3) for k in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        store_checked(self, lr=check_positive, step_size=check_int, gamma=check_positive)

    def __call__(self, count: ArrayLike) -> jax.Array:
        k = _steps(count)
        return self.lr * self.gamma ** jnp.floor(k / self.step_size)


@dataclass(frozen=True)
class multistep:
    r"""Multiply the learning rate by ``gamma`` at each milestone.

    .. math:: \eta(k) = \eta\, \gamma^{\#\{m \in \text{milestones} : m \le k\}}

    Matches ``torch.optim.lr_scheduler.MultiStepLR`` (a milestone listed twice decays
    twice, as there). Optax: ``piecewise_constant_schedule``.

    Parameters
    ----------
    lr:
        Initial learning rate :math:`\eta > 0`.
    milestones:
        Step counts (integers >= 0) at which to decay; stored sorted as a tuple.
    gamma:
        Decay factor :math:`\gamma > 0`. Default 0.1.

    Examples
    --------
    >>> from descend.optim.schedules import multistep
    >>> [round(float(multistep(1.0, [1, 3], gamma=0.5)(k)), 3) for k in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """

    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self):
        store_checked(self, lr=check_positive, milestones=_milestones, gamma=check_positive)

    def __call__(self, count: ArrayLike) -> jax.Array | float:
        k = _steps(count)
        passed = sum((k >= m).astype(k.dtype) for m in self.milestones) if self.milestones else 0.0
        return self.lr * self.gamma**passed


@dataclass(frozen=True)
class exponential:
    r"""Multiply the learning rate by ``gamma`` every step.

    .. math:: \eta(k) = \eta\, \gamma^{k}

    Matches ``torch.optim.lr_scheduler.ExponentialLR``; Optax: ``exponential_decay``
    with ``transition_steps=1``.

    Parameters
    ----------
    lr:
        Initial learning rate :math:`\eta > 0`.
    gamma:
        Decay factor :math:`\gamma > 0`.

    Examples
    --------
    >>> from descend.optim.schedules import exponential
    >>> round(float(exponential(1.0, gamma=0.5)(3)), 3)
    0.125
    """

    lr: float
    gamma: float

    def __post_init__(self):
        store_checked(self, lr=check_positive, gamma=check_positive)

    def __call__(self, count: ArrayLike) -> jax.Array:
        return self.lr * self.gamma ** _steps(count)


@dataclass(frozen=True)
class cosine_annealing:
    r"""Cosine annealing from ``lr`` to ``eta_min`` over ``T_max`` steps.

    .. math::

        \eta(k) = \eta_{\min} + \tfrac12 (\eta - \eta_{\min})
        \left(1 + \cos\frac{\pi k}{T_{\max}}\right)

    Matches ``torch.optim.lr_scheduler.CosineAnnealingLR``, including what happens
    after ``T_max`` steps: the formula continues, so the rate climbs back to ``lr``
    at :math:`2T_{\max}` (torch's recursive form agrees to rounding). To hold
    ``eta_min`` instead, as ``optax.cosine_decay_schedule`` does, stop at ``T_max``
    steps. No warm restarts (torch's ``CosineAnnealingWarmRestarts``). Its ``horizon``
    is ``T_max + 1`` steps (the last at ``eta_min``): ``fit`` and ``minimize`` warn
    when a run can make more.

    Parameters
    ----------
    lr:
        Initial learning rate :math:`\eta > 0`.
    T_max:
        Half-period in steps (>= 1).
    eta_min:
        Minimum learning rate (>= 0). Default 0.

    Examples
    --------
    >>> from descend.optim.schedules import cosine_annealing
    >>> [round(float(cosine_annealing(1.0, T_max=2)(k)), 3) for k in range(3)]
    [1.0, 0.5, 0.0]
    """

    lr: float
    T_max: int
    eta_min: float = 0.0

    def __post_init__(self):
        store_checked(self, lr=check_positive, T_max=check_int, eta_min=nonnegative_number)

    def __call__(self, count: ArrayLike) -> jax.Array:
        k = _steps(count)
        return self.eta_min + (self.lr - self.eta_min) * (1 + jnp.cos(math.pi * k / self.T_max)) / 2

    @property
    def horizon(self) -> int:
        """The steps of the descent: counts 0 to ``T_max``, the last at ``eta_min``."""
        return self.T_max + 1

    def past(self, n_steps: int, warmup: int = 0) -> str:
        """What a run of ``n_steps`` steps past the horizon meets, and the setting to change."""
        return (
            f"cosine_annealing(T_max={self.T_max}) reaches eta_min={self.eta_min:g} at step "
            f"{warmup + self.T_max + 1}{_after_warmup(warmup)} and then climbs back towards "
            f"lr={self.lr:g}, as torch's CosineAnnealingLR does; set T_max={n_steps}"
        )


@dataclass(frozen=True)
class linear_warmup:
    r"""Ramp linearly up to another schedule (or a constant rate), then follow it.

    With :math:`W` = ``warmup_steps``, :math:`s` = ``start_factor`` and the wrapped
    schedule :math:`\eta(\cdot)`:

    .. math::

        \text{chained=False:}\quad \eta_w(k) =
        \begin{cases} \eta(0)\,\big(s + (1-s)\,k/W\big) & k < W \\
                      \eta(k - W) & k \ge W \end{cases} \\
        \text{chained=True:}\quad \eta_w(k) = \eta(k)\,\big(s + (1-s)\min(k, W)/W\big)

    ``chained=False`` (default) is ``SequentialLR([LinearLR(start_factor=s,
    total_iters=W), scheduler], milestones=[W])``: the wrapped schedule starts
    after the warm-up (like ``optax.join_schedules`` with
    ``optax.linear_schedule``). ``chained=True`` is ``ChainedScheduler([LinearLR(...),
    scheduler])``: the wrapped schedule runs from step 0 and the ramp multiplies it
    (torch's chaining is multiplicative for multiplicative schedulers; for
    ``cosine_annealing`` with ``eta_min > 0`` torch's recursion differs from a product).
    The ``horizon`` is the wrapped schedule's (after the warm-up when not chained), or
    None when it has none.

    Parameters
    ----------
    schedule:
        The schedule to warm up to, or a constant learning rate > 0.
    warmup_steps:
        :math:`W \ge 1`.
    start_factor:
        :math:`s \in (0, 1]`, the fraction of the rate at step 0. Default ``1/3`` as
        torch's ``LinearLR``.
    chained:
        See above. Default False.

    Examples
    --------
    >>> from descend.optim.schedules import linear_warmup
    >>> [round(float(linear_warmup(1.0, warmup_steps=4, start_factor=0.5)(k)), 3)
    ...  for k in range(6)]
    [0.5, 0.625, 0.75, 0.875, 1.0, 1.0]
    """

    schedule: LearningRate
    warmup_steps: int
    start_factor: float = 1.0 / 3.0
    chained: bool = False

    def __post_init__(self):
        store_checked(self, schedule=lr_or_schedule, warmup_steps=check_int, start_factor=_share)
        if not isinstance(self.chained, bool):
            raise DescendTypeError(f"chained must be True or False, got {self.chained!r}")

    def __call__(self, count: ArrayLike) -> jax.Array:
        k = _steps(count)
        ramp = self.start_factor + (1 - self.start_factor) * jnp.minimum(k, self.warmup_steps) / (
            self.warmup_steps
        )
        if self.chained:
            return lr_at(self.schedule, jnp.asarray(count)) * ramp
        after = lr_at(self.schedule, jnp.maximum(jnp.asarray(count) - self.warmup_steps, 0))
        return jnp.where(k < self.warmup_steps, lr_at(self.schedule, jnp.asarray(0)) * ramp, after)

    @property
    def horizon(self) -> int | None:
        """The wrapped schedule's horizon, counted from step 0 of the warm-up."""
        inner = getattr(self.schedule, "horizon", None)
        return None if inner is None else inner + self._delay

    def past(self, n_steps: int, warmup: int = 0) -> str:
        """The wrapped schedule's :meth:`past`, its steps counted after the warm-up."""
        # Called when horizon is not None: the wrapped schedule has a horizon and past.
        return self.schedule.past(n_steps - self._delay, warmup + self._delay)  # type: ignore[union-attr]

    @property
    def _delay(self) -> int:
        """Steps before the wrapped schedule starts: the warm-up, unless chained."""
        return 0 if self.chained else self.warmup_steps


@dataclass(frozen=True)
class one_cycle:
    r"""The 1cycle policy: warm up to ``max_lr``, then anneal far below the start.

    With :math:`\eta_0 = \eta_{\max}/` ``div_factor``, :math:`\eta_{\min} = \eta_0/`
    ``final_div_factor``, :math:`T` = ``total_steps`` and :math:`p` = ``pct_start``,
    the rate is annealed (``"cos"``: :math:`e + (s-e)(1+\cos\pi u)/2`; ``"linear"``:
    :math:`s + (e-s)u`, for :math:`u` from 0 to 1) through the phases

    - two phases: :math:`\eta_0 \to \eta_{\max}` over steps :math:`[0, pT-1]`, then
      :math:`\eta_{\max} \to \eta_{\min}` over :math:`[pT-1, T-1]`;
    - ``three_phase``: :math:`\eta_0 \to \eta_{\max}` over :math:`[0, pT-1]`,
      :math:`\eta_{\max} \to \eta_0` over :math:`[pT-1, 2pT-2]`, then
      :math:`\eta_0 \to \eta_{\min}` over :math:`[2pT-2, T-1]`.

    Matches ``torch.optim.lr_scheduler.OneCycleLR`` (learning rate only; momentum
    cycling is not done) for counts ``0`` to ``T - 1``. Torch raises after ``T``
    scheduler steps; here counts past ``T - 1`` keep the final rate :math:`\eta_{\min}`
    (a compiled loop cannot raise), and ``fit`` and ``minimize`` warn before a run that
    can make more than ``horizon`` = ``T`` steps.
    Optax: ``cosine_onecycle_schedule`` / ``linear_onecycle_schedule`` (two phases).

    Parameters
    ----------
    max_lr:
        Peak learning rate > 0.
    total_steps:
        Length of the cycle in steps (>= 1).
    pct_start:
        Fraction :math:`p \in [0, 1]` of the cycle spent increasing. Default 0.3.
    anneal_strategy:
        ``"cos"`` (default) or ``"linear"``.
    div_factor:
        :math:`\eta_{\max}/\eta_0` (> 0). Default 25.
    final_div_factor:
        :math:`\eta_0/\eta_{\min}` (> 0). Default 1e4.
    three_phase:
        Use the three-phase variant. Default False.

    Examples
    --------
    >>> from descend.optim.schedules import one_cycle
    >>> s = one_cycle(1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear")
    >>> [round(float(s(k)), 3) for k in (0, 2, 4)]
    [0.04, 0.52, 1.0]
    """

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self):
        store_checked(self, max_lr=check_positive, total_steps=check_int, pct_start=_unit)
        if self.anneal_strategy not in ("cos", "linear"):
            raise InputError(
                f"anneal_strategy must be 'cos' or 'linear', got {self.anneal_strategy!r}"
            )
        store_checked(self, div_factor=check_positive, final_div_factor=check_positive)

    def _phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_lr, end_lr)`` of each phase, as torch lays them out."""
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        warm_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            return [
                (warm_end, initial, self.max_lr),
                (float(2 * self.pct_start * self.total_steps) - 2, self.max_lr, initial),
                (last, initial, minimum),
            ]
        return [(warm_end, initial, self.max_lr), (last, self.max_lr, minimum)]

    def __call__(self, count: ArrayLike) -> jax.Array:
        k = jnp.minimum(_steps(count), self.total_steps - 1)
        phases = self._phases()
        rate = None
        start_step = 0.0
        # Walk the phases from the last: each earlier phase overrides where it applies.
        bounds = []
        for end_step, start_lr, end_lr in phases:
            bounds.append((start_step, end_step, start_lr, end_lr))
            start_step = end_step
        for index in range(len(bounds) - 1, -1, -1):
            start_step, end_step, start_lr, end_lr = bounds[index]
            span = end_step - start_step
            pct = (k - start_step) / span if span != 0 else jnp.zeros_like(k)
            if self.anneal_strategy == "cos":
                value = end_lr + (start_lr - end_lr) / 2.0 * (jnp.cos(math.pi * pct) + 1)
            else:
                value = (end_lr - start_lr) * pct + start_lr
            rate = value if rate is None else jnp.where(k <= end_step, value, rate)
        assert rate is not None  # two or three phases
        return rate

    @property
    def horizon(self) -> int:
        """The steps of the cycle: counts 0 to ``total_steps - 1``."""
        return self.total_steps

    def past(self, n_steps: int, warmup: int = 0) -> str:
        """What a run of ``n_steps`` steps past the horizon meets, and the setting to change."""
        minimum = self.max_lr / self.div_factor / self.final_div_factor
        return (
            f"one_cycle(total_steps={self.total_steps}) ends at step "
            f"{warmup + self.total_steps}{_after_warmup(warmup)}, after which the learning "
            f"rate stays at its minimum {minimum:.3g}; set total_steps={n_steps}"
        )


@dataclass(frozen=True)
class inverse_scaling:
    r"""Inverse-power decay, scikit-learn's ``learning_rate="invscaling"``.

    .. math:: \eta(k) = \frac{\eta_0}{(k + 1)^{\text{power\_t}}}

    scikit-learn writes :math:`\eta = \eta_0 / t^{\text{power\_t}}` with its counter
    :math:`t` starting at 1 for the first update (``SGDRegressor``,
    ``SGDClassifier``), so :math:`t = k + 1` with this module's 0-based step count:
    the first step uses :math:`\eta_0`. (scikit-learn's ``MLPRegressor`` applies the
    same formula per epoch.) Optax: ``polynomial_schedule`` has no such form; torch
    has no equivalent.

    Parameters
    ----------
    eta0:
        Initial learning rate > 0.
    power_t:
        Exponent >= 0. Default 0.5 (as scikit-learn; its SGD estimators default to
        0.25 for regression).

    Examples
    --------
    >>> from descend.optim.schedules import inverse_scaling
    >>> [float(inverse_scaling(1.0, power_t=0.5)(k)) for k in (0, 3)]
    [1.0, 0.5]
    """

    eta0: float
    power_t: float = 0.5

    def __post_init__(self):
        store_checked(self, eta0=check_positive, power_t=nonnegative_number)

    def __call__(self, count: ArrayLike) -> jax.Array:
        return self.eta0 / (_steps(count) + 1) ** self.power_t


@dataclass(frozen=True)
class PlateauRule:
    """The settings of one :func:`reduce_on_plateau`, carried in its state as static data.

    A pytree node without leaves: it travels with the state (so that :func:`observe`
    can apply the rule wherever the state sits, inside a chain or any wrapper) without
    adding arrays to checkpoints. ``by_epoch`` is False when the rule watches the
    ``value`` of each step, True once a loop with epochs took the watching over
    (:func:`watch_epochs`).
    """

    factor: float
    patience: int
    rtol: float
    atol: float
    cooldown: int
    accumulation_size: int
    min_scale: float
    by_epoch: bool = False


jax.tree_util.register_pytree_node(PlateauRule, lambda rule: ((), rule), lambda rule, _: rule)


def past_horizon(optimizer: Optimizer, n_steps: int) -> str | None:
    """How a run of ``n_steps`` steps goes past a schedule of ``optimizer``, or None.

    Looks at every schedule among the optimizer's hyperparameters (and those of the
    optimizers it wraps: ``chain``, ``reduce_on_plateau``). The sentence says where
    the schedule ends, what the rate does after it, and the setting that covers the run
    (``"one_cycle(total_steps=100) ends at step 100, after which the learning rate
    stays at its minimum 4e-07; set total_steps=500"``).

    >>> from descend.optim.sgd import sgd
    >>> opt = sgd(lr=one_cycle(0.1, total_steps=100))
    >>> past_horizon(opt, 100) is None
    True
    >>> past_horizon(opt, 500)
    'one_cycle(total_steps=100) ends at step 100, after which the learning rate stays at its minimum 4e-07; set total_steps=500'
    """  # noqa: E501
    for schedule in _schedules(optimizer):
        horizon = getattr(schedule, "horizon", None)
        if horizon is not None and n_steps > horizon and callable(getattr(schedule, "past", None)):
            return schedule.past(n_steps)
    return None


def _schedules(optimizer: Optimizer):
    for value in optimizer.hyperparams.values():
        if isinstance(value, Optimizer):
            yield from _schedules(value)
        elif callable(value):
            yield value


def _after_warmup(warmup: int) -> str:
    return f" ({warmup} warm-up steps included)" if warmup else ""


class PlateauState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # optimizer steps taken (shadows tuple.count, as in Optax)
    scale: jax.Array  # the factor applied to the wrapped optimizer's steps
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    accumulated: jax.Array  # values averaged since the last check
    avg_value: jax.Array
    inner: Any  # the wrapped optimizer's state
    rule: PlateauRule  # static: no arrays


def _watch(state: PlateauState, value: Any) -> PlateauState:
    """Add ``value`` to the running average; at ``accumulation_size`` values, check it."""
    rule = state.rule
    accumulated = state.accumulated + 1
    average = (
        state.accumulated * state.avg_value + jnp.asarray(value, state.avg_value.dtype)
    ) / accumulated
    watched = state._replace(accumulated=accumulated, avg_value=average)
    return jax.lax.cond(accumulated == rule.accumulation_size, _check, lambda s: s, watched)


def _check(state: PlateauState) -> PlateauState:
    """One plateau check of the average: improvement, bad count, reduction, cooldown."""
    rule = state.rule
    improved = rules.improved(state.avg_value, state.best_value, rtol=rule.rtol, atol=rule.atol)
    best = jnp.where(improved, state.avg_value, state.best_value)
    bad = jnp.where(improved, 0, state.plateau_count + 1)
    cooling = state.cooldown_count > 0
    reduce = ~cooling & (bad == rule.patience)
    reduced = jnp.where(reduce, state.scale * rule.factor, state.scale)
    return state._replace(
        best_value=best,
        plateau_count=jnp.where(cooling | reduce, 0, bad),
        scale=jnp.where(cooling, state.scale, jnp.maximum(reduced, rule.min_scale)).astype(
            state.scale.dtype
        ),
        cooldown_count=jnp.where(
            cooling, state.cooldown_count - 1, jnp.where(reduce, rule.cooldown, 0)
        ).astype(jnp.int32),
        accumulated=jnp.zeros((), jnp.int32),
        avg_value=jnp.zeros_like(state.avg_value),
    )


def _is_plateau(node: Any) -> bool:
    return isinstance(node, PlateauState)


def watch_epochs(opt_state: Any) -> Any:
    """``opt_state`` with every :func:`reduce_on_plateau` in it watching epochs, not steps.

    Its steps then only apply the current scale; :func:`observe` feeds it one value per
    epoch. :func:`descend.fit` does this before its first epoch, and feeds each epoch's
    validation loss (the training loss without validation data), as Keras's
    ``ReduceLROnPlateau`` and a ``torch.optim.lr_scheduler.ReduceLROnPlateau`` stepped
    once per epoch do. States without a plateau rule are returned unchanged.
    """
    return jax.tree.map(
        lambda node: (
            node._replace(rule=dataclasses.replace(node.rule, by_epoch=True))
            if _is_plateau(node)
            else node
        ),
        opt_state,
        is_leaf=_is_plateau,
    )


def observe(opt_state: Any, value: ArrayLike) -> Any:
    """Feed one epoch's loss to every epoch-watching plateau rule in ``opt_state``.

    ``value``: a real scalar (the epoch's validation or training loss). Pure and
    traceable; rules that watch steps (the default, see :func:`watch_epochs`) and other
    states are left unchanged.
    """
    return jax.tree.map(
        lambda node: _watch(node, value) if _is_plateau(node) and node.rule.by_epoch else node,
        opt_state,
        is_leaf=_is_plateau,
    )


def reduce_on_plateau(
    optimizer: Optimizer,
    *,
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> Optimizer:
    r"""Shrink an optimizer's steps when the loss stops improving (Optax's reduce_on_plateau).

    The loss passed to ``step`` as ``value`` is averaged over ``accumulation_size``
    steps. After each full average :math:`\bar v`, with the best average so far
    :math:`v^*`, it counts as an improvement when
    :math:`\bar v < v^* - (\text{rtol}\,|v^*| + \text{atol})` (the improvement rule of
    every loop, :func:`descend.rules.improved`); after ``patience``
    averages without one, the scale is multiplied by ``factor`` (not below
    ``min_scale``) and ``cooldown`` averages are ignored. Each step of the wrapped
    optimizer is then multiplied by the current scale:

    .. math:: x_{t+1} = x_t + \text{scale}_t\,(\mathrm{step}(x_t) - x_t)

    The scale is updated with the loss of the current step before it is applied, as
    in Optax. For optimizers whose step is proportional to the learning rate (SGD,
    Adam, ...), this is the same as multiplying the learning rate by the scale.

    Differences from ``torch.optim.lr_scheduler.ReduceLROnPlateau``: that scheduler
    is stepped by hand (usually once per epoch, with a validation metric), measures
    improvement with one threshold in ``"rel"`` or ``"abs"`` mode, reduces when the
    bad count *exceeds* ``patience`` and has ``min_lr`` and ``eps``; this wrapper
    follows Optax (``rtol`` and ``atol`` together, reduction when the count *reaches*
    ``patience``, averaging of per-step losses). Differences from
    ``optax.contrib.reduce_on_plateau``: Optax's test is
    :math:`\bar v < (1 - \text{rtol})\, v^* - \text{atol}`, the same as the one here for
    a positive best value; for a negative one Optax (and torch's ``"rel"`` mode) would
    count a growing loss as an improvement, which this rule never does.

    What it watches depends on the loop. ``minimize`` and a loop written by hand pass
    the loss of each step as ``value`` (Optax's convention). :func:`descend.fit`
    watches epochs instead, as Keras's ``ReduceLROnPlateau`` and a torch scheduler
    stepped once per epoch do: each epoch's validation loss (the training loss without
    validation data) is one value, and ``patience``, ``cooldown`` and
    ``accumulation_size`` count epochs (see :func:`watch_epochs` and :func:`observe`
    to do the same by hand). Per-batch losses are noisy and many per epoch, so a
    per-step rule in mini-batch training reduces the rate within the first epochs.

    Parameters
    ----------
    optimizer:
        The optimizer whose steps are scaled.
    factor:
        Reduction factor in ``(0, 1)``. Default 0.1.
    patience:
        Averages without improvement before reducing (>= 0). Default 10. With torch's
        ``ReduceLROnPlateau``, ``patience=p`` reduces where this rule's ``p + 1`` does.
    rtol, atol:
        Relative (in ``[0, 1]``) and absolute (>= 0) improvement tolerances, not both
        zero. Defaults 1e-4 and 0.
    cooldown:
        Averages to wait after a reduction (>= 0). Default 0.
    accumulation_size:
        Number of step losses averaged before each check (>= 1). Default 1.
    min_scale:
        Lowest scale (>= 0). Default 0.

    Examples
    --------
    >>> from descend.optim.sgd import sgd
    >>> from descend.optim.schedules import reduce_on_plateau
    >>> opt = reduce_on_plateau(sgd(lr=0.1), factor=0.5, patience=1)
    >>> x, state = 1.0, opt.init(1.0)
    >>> for loss in [1.0, 1.0, 1.0]:
    ...     x, state = opt.step(x, 1.0, state, value=loss)
    >>> float(state.scale)
    0.25
    """
    if not isinstance(optimizer, Optimizer):
        raise DescendTypeError(
            f"reduce_on_plateau wraps an optimizer (for example sgd(lr=0.1)), got {optimizer!r}"
        )
    factor = check_in_range("factor", factor, 0.0, 1.0)
    if factor == 0.0:
        raise InputError("factor must be in (0, 1), got 0.0")
    patience = check_int("patience", patience, minimum=0)
    rtol = check_in_range("rtol", rtol, 0.0, 1.0, closed_high=True)
    atol = check_positive("atol", atol, allow_zero=True)
    if rtol == 0.0 and atol == 0.0:
        raise InputError("at least one of rtol and atol must be > 0, got rtol=0.0 and atol=0.0")
    cooldown = check_int("cooldown", cooldown, minimum=0)
    accumulation_size = check_int("accumulation_size", accumulation_size)
    min_scale = check_positive("min_scale", min_scale, allow_zero=True)

    rule = PlateauRule(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale)

    def init(params):
        dtype = jnp.result_type(*jax.tree.leaves(params), float)

        return PlateauState(
            count=zero_count(),
            scale=_tree.full((), 1, dtype),
            best_value=_tree.full((), math.inf, dtype),
            plateau_count=zero_count(),
            cooldown_count=zero_count(),
            accumulated=zero_count(),
            avg_value=_tree.full((), 0, dtype),
            inner=optimizer.init(params),
            rule=rule,
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        watched = state
        if not state.rule.by_epoch:
            if value is None:
                raise InputError(
                    "reduce_on_plateau watches the loss: call step(..., value=loss), or "
                    "watch_epochs(state) and observe(state, loss) once per epoch; the "
                    "minimize and fit loops do this for you"
                )
            watched = _watch(state, value)
        stepped, inner = optimizer.step(params, grads, state.inner, value=value, value_fn=value_fn)
        scale = watched.scale
        # An unreduced scale keeps the wrapped optimizer's result bit for bit.
        new_params = jax.tree.map(
            lambda p, q: jnp.where(scale == 1, q, p + scale * (q - p)).astype(jnp.result_type(p)),
            params,
            stepped,
        )
        return new_params, watched._replace(count=state.count + 1, inner=inner)

    hyperparams = {
        "optimizer": optimizer,
        "factor": factor,
        "patience": patience,
        "rtol": rtol,
        "atol": atol,
        "cooldown": cooldown,
        "accumulation_size": accumulation_size,
        "min_scale": min_scale,
    }
    inner_evaluations = optimizer.evaluations
    return Optimizer(
        "reduce_on_plateau",
        init,
        step,
        hyperparams,
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=None
        if inner_evaluations is None
        else (lambda state: inner_evaluations(state.inner)),
        complex_params=optimizer.complex_params,
        **inner_points(optimizer, lambda state: state.inner),
        evaluations_with_gradient=optimizer.evaluations_with_gradient,
    )
