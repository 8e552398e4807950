"""``fit`` over a grid of hyperparameters: every configuration trained at once.

``fit(..., lr=[1e-3, 1e-2])``, ``seed=[...]``, ``l2=[...]`` and ``param_grid={"momentum":
[0.5, 0.9]}`` combine as scikit-learn's ``ParameterGrid`` does. Every configuration
trains in one compiled program per epoch (:func:`descend.engine.compiled_sweep_epoch`):
the weights and optimizer states stacked, the optimizer's swept hyperparameters kept in
its state (:func:`descend.optim.inject_hyperparams`), the data and the shuffled order
shared (one order per configuration for a sweep of seeds). On the host each
configuration is an :class:`~descend.training.loop.Epochs` of its own, which records its
history and applies fit's rules to it (:meth:`Epochs.settle`): a configuration that
diverges or stops early is frozen, and reported with its own reason, while the others
go on. Each equals the same ``fit`` run alone, to float rounding.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend import _tree, engine, optim
from descend.data.shuffle import epoch_order
from descend.engine import Status
from descend.errors import InputError, check_all
from descend.optim import injection, pairs
from descend.optim.base import Optimizer
from descend.sweeps import Sweep, grid, grid_lists, label, no_values
from descend.training.loop import Epochs, _at_training_point
from descend.training.objective import BatchObjective, evaluate
from descend.training.prepare import epoch_config, prepare, settle_weights
from descend.training.result import FitResult
from descend.training.sources import InMemory
from descend.training.spec import CONSTRAINTS, FitSpec

# fit's own arguments that take a list of values (the optimizer's go in param_grid).
SWEPT_BY_FIT = ("lr", "seed", "l2")

# What one sweep program cannot do, and what to do instead (see fit_sweep).
REFUSED = {
    "resume": "a sweep starts every configuration afresh; continue each run alone",
    "init": "a sweep starts every configuration afresh; continue each run alone",
    "devices": "a sweep runs on one device; train the configurations one by one on devices",
    "callbacks": (
        "callbacks follow one run, and a sweep runs many; each configuration's history "
        "is in its result (sweep[i].history)"
    ),
}


def configurations_of(options: dict[str, Any], param_grid: Any) -> list[dict[str, Any]] | None:
    """The configurations of a sweep (None for a single run): the lists given as ``lr``,
    ``seed`` and ``l2`` and the entries of ``param_grid``, combined as
    ``sklearn.model_selection.ParameterGrid`` does (names sorted, the last varying
    fastest)."""
    lists: dict[str, list[Any]] = {}
    for name in SWEPT_BY_FIT:
        if isinstance(options[name], (list, tuple, np.ndarray)):
            lists[name] = list(options[name])
    for name, values in lists.items():
        if not values:
            raise no_values(name, options["optimizer"])
    if param_grid is not None:
        for name, values in grid_lists(param_grid, options["optimizer"]).items():
            if name in lists or (name in SWEPT_BY_FIT and options[name] is not None):
                raise InputError(
                    f"{name} is given twice: as {name}= and in param_grid; give it once"
                )
            if name in options and name not in SWEPT_BY_FIT:
                raise InputError(
                    f"param_grid cannot vary {name}: it changes the program or the data, not "
                    "a number inside one program; run a separate fit for each value"
                )
            lists[name] = values
    return grid(lists) if lists else None


def fit_sweep(
    model: Any, data: dict[str, Any], options: dict[str, Any], configurations: list[dict]
) -> Sweep[FitResult]:
    """Train every configuration at once; see :func:`descend.fit` (lists and
    ``param_grid``) and this module's docstring."""
    from descend.data.streams import Stream

    for name, why in REFUSED.items():
        given = options[name]
        if given is not None and given != () and given != []:
            raise InputError(f"{name}= cannot be used in a sweep: {why}")
    if isinstance(data["X"], Stream):
        raise InputError(
            "a sweep trains on data in memory; load the rows (or a sample of them) as arrays, "
            "or fit the stream once per configuration"
        )
    first = configurations[0]
    if "seed" in first and options["validation_split"]:
        raise InputError(
            "validation_split holds out rows chosen by the seed, so a sweep of seeds would "
            "train each on other rows; pass validation=(X_val, y_val), or hold none out "
            "(validation_split=0)"
        )
    fit_names = [name for name in first if name in ("seed", "l2")]
    for configuration in configurations:
        check_all({name: CONSTRAINTS[name] for name in fit_names},
                  {name: configuration[name] for name in fit_names})  # fmt: skip
    base = dict(options, **{name: first[name] for name in fit_names})
    if "lr" in first:  # each configuration's rate replaces the optimizer's
        base["lr"] = None if isinstance(options["optimizer"], Optimizer) else first["lr"]
    spec = FitSpec.build(model, data, base)
    if spec.placement is not None:
        raise InputError(
            "a sweep runs in one process on one device; train the configurations one by "
            "one across processes, or sweep in a single process"
        )
    context = jax.enable_x64(True) if spec.dtype == "float64" else contextlib.nullcontext()
    with context:
        return _sweep(spec, configurations, **data)


def _sweep(spec: FitSpec, configurations: list[dict], *, X, y, sample_weight, validation):
    prepared = prepare(spec, X, y, sample_weight, validation)
    prepared, mean_weight = settle_weights(prepared, None)
    config = epoch_config(spec, prepared, None, None)
    source = InMemory.of(prepared.X, prepared.y, prepared.weights, config, mean_weight)
    spec.warn_past_horizon(config.n_updates)
    names = [name for name in configurations[0] if name not in ("seed", "l2")]
    start = spec.initial_state(prepared.n_features, prepared.n_outputs)
    if pairs.has_complex(start.params):
        raise InputError("a sweep cannot train complex params yet; fit each configuration alone")
    values = [{name: c[name] for name in names} for c in configurations]
    built = [spec.optimizer] * len(configurations)
    if names:
        built = injection.check_configurations(spec.optimizer, values, start.params)
    specs = [
        replace(
            spec,
            optimizer=optimizer,
            seed=spec.seed if c.get("seed") is None else c["seed"],
            l2=c.get("l2", spec.l2),
        )
        for optimizer, c in zip(built, configurations, strict=True)
    ]
    strengths = [member.l2_strength(prepared.n_samples) for member in specs]
    objective = BatchObjective(spec.model, spec.loss, spec.loss_name, None, strengths[0])
    injected = optim.inject_hyperparams(_at_defaults(spec.optimizer, names), names)
    members, states = [], []
    for member_spec, optimizer in zip(specs, built, strict=True):
        state = _at_training_point(optimizer, member_spec.initial_state(
            prepared.n_features, prepared.n_outputs))  # fmt: skip
        held = replace(objective, l2=member_spec.l2_strength(prepared.n_samples))
        members.append(Epochs(member_spec, prepared, source, state, held, watched=False))
        states.append((state.params, state.opt_state))
    params, inner = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    # Each configuration's values, as init_with keeps them (the params' float dtype).
    dtype = jnp.result_type(*jax.tree.leaves(params), jnp.float32)
    hyperparams = {name: jnp.asarray([own[name] for own in values], dtype) for name in names}
    stacked = (params, injection.InjectedState(inner, hyperparams))
    swept_l2 = "l2" in configurations[0]
    block = SweptEpochs(
        members, injected, replace(objective, l2=0.0) if swept_l2 else objective, source,
        stacked, strengths if swept_l2 else None, "seed" in configurations[0], configurations,
    )  # fmt: skip
    progress = engine.Progress(spec.verbose, unit="epoch", total=spec.epochs, start=0)
    stop = engine.run(block, progress=progress)
    return Sweep(tuple(block.results(stop)), tuple(configurations))


def _at_defaults(optimizer: Optimizer, names: Sequence[str]) -> Optimizer:
    """``optimizer`` with the swept hyperparameters at their defaults: the injected
    optimizer (a key of the compiled program) is then the same for every sweep of the
    same names, whatever their values. ``optimizer`` itself where it has no defaults."""
    defaults = {}
    for name in names:
        holder = optimizer
        while name not in holder.hyperparams or name == "optimizer":
            holder = holder.hyperparams["optimizer"]
        try:
            defaults[name] = injection.hyperparameter(optim.get(holder.name), name)
        except (InputError, TypeError):
            return optimizer
    return optim.rebuild(optimizer, **defaults)


class _Held:
    """The weights (or state) a configuration holds after ``epoch``, still stacked on the
    device with the others': resolved once the sweep ends (see SweptEpochs.results)."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int):
        self.epoch = epoch


class SweptEpochs:
    """The epochs of every configuration, as one :class:`~descend.engine.loop.Block`."""

    unit = "epoch"

    def __init__(
        self, members: list[Epochs], injected: Optimizer, objective: BatchObjective,
        source: InMemory, stacked: tuple, strengths: list[float] | None, own_orders: bool,
        configurations: Sequence[dict[str, Any]],
    ):  # fmt: skip
        self.members, self.injected, self.objective, self.source = (
            members, injected, objective, source,
        )  # fmt: skip
        self.params, self.opt_state = stacked
        self.best_params, self.best_state = stacked  # early stopping's kept weights
        self.active = np.ones(len(members), bool)
        self.stops: list[Status | None] = [None] * len(members)
        self.epoch, self.n_updates = 0, 0
        dtype = jnp.result_type(*jax.tree.leaves(self.params))
        self.strengths = None if strengths is None else jnp.asarray(strengths, dtype)
        self.own_orders, self.configurations = own_orders, configurations
        self.scored = members[0].scored or ()
        self.observes = members[0].observes
        self.text: str | None = None
        for member in members:
            member.params, member.opt_state = _Held(0), _Held(0)

    # ------------------------------------------------------------ the Block protocol

    def advance(self) -> Status:
        spec, config = self.members[0].spec, self.source.config
        began = time.perf_counter()
        order: Any = None
        if config.shuffle and self.own_orders:
            order = np.stack([
                epoch_order(member.spec.seed, self.epoch, config.n_samples)
                for member in self.members
            ])  # fmt: skip
        elif config.shuffle:
            order = epoch_order(spec.seed, self.epoch, config.n_samples)
        program = engine.compiled_sweep_epoch(
            self.objective, self.injected, config, shared_order=not self.own_orders,
            swept_l2=self.strengths is not None,
        )  # fmt: skip
        outcome = program(
            self.params, self.opt_state, self.source.data, order, self.source.mean_weight,
            self.strengths,
        )  # fmt: skip
        self.n_updates += config.n_updates
        ended = _ended_program(self.objective, self.injected, self.observes)
        params, opt_state, fetch = ended(
            outcome, self.params, self.opt_state, jnp.array(self.active), self.scored,
            self.n_updates,
        )  # fmt: skip
        finite, *numbers = jax.device_get(fetch)
        self.epoch += 1
        improved = np.zeros(len(self.members), bool)
        last = Status.RUNNING
        for index in np.flatnonzero(self.active):
            member = self.members[index]
            if finite[index]:
                held = _Held(self.epoch)
                fetched = [part[index] for part in numbers]
                status = member.settle(held, _Held(self.epoch), config.n_updates, fetched, began)
                improved[index] = member.plateau.best_at == self.epoch
            else:  # its last finite weights, by the checked replay alone would make
                status = member.settle(*self._replay(int(index), order), None, began)
            if status != Status.RUNNING:
                self.stops[index], self.active[index], last = status, False, status
        self.params, self.opt_state = params, opt_state
        if improved.any():
            self.best_params, self.best_state = _choose(
                jnp.asarray(improved), (params, opt_state), (self.best_params, self.best_state)
            )
        running = int(self.active.sum())
        self.text = f"{running} of {len(self.members)} configurations training{self._best()}"
        return Status.RUNNING if running else last

    def _best(self) -> str:
        """``, best val_loss 0.09 (lr=0.1)``: the score the sweep ranks by (``Sweep``'s
        default), of the weights each configuration would hold were the sweep to end now
        (a configuration stopped early: its restored epoch's), the best so far."""
        key = "val_loss" if self.scored else "loss"
        scores = []
        for index, (member, stop) in enumerate(zip(self.members, self.stops, strict=True)):
            if stop == Status.DIVERGED or not member.history.get(key):
                continue
            row = -1
            restored = stop == Status.EARLY_STOPPING and member.spec.restore_best
            if restored and member.plateau.best_at in member.history["epoch"]:
                row = member.history["epoch"].index(member.plateau.best_at)
            if np.isfinite(score := float(member.history[key][row])):
                scores.append((score, index))
        if not scores:
            return ""
        score, index = min(scores)
        return f", best {key} {score:.4g} ({label(self.configurations[index])})"

    def done(self) -> int:
        return self.epoch

    def describe(self) -> str | None:
        return self.text

    def spent(self) -> Status | None:
        return Status.MAX_EPOCHS if self.epoch >= self.members[0].spec.epochs else None

    def intact(self) -> bool:
        return True

    # ------------------------------------------------------------ divergence, the results

    def _replay(self, index: int, order: Any) -> tuple[Any, Any, int]:
        """Configuration ``index``'s diverged epoch again, alone and checked (as ``fit``
        replays it): its last finite weights and state, and the updates made."""
        member = self.members[index]
        params = jax.tree.map(lambda leaf: leaf[index], self.params)
        state = jax.tree.map(lambda leaf: leaf[index], self.opt_state.inner)
        if order is not None and self.own_orders:
            order = order[index]
        return member._replay(params, state, self.source.config, self.source.data, order)

    def results(self, stop: Status) -> list[FitResult]:
        """One :class:`FitResult` per configuration: each stopped by its own rule, or by
        ``stop`` (the budget, Ctrl-C) where it was still training."""
        current, best = jax.device_get(
            ((self.params, self.opt_state.inner), (self.best_params, self.best_state.inner))
        )
        results = []
        for index, member in enumerate(self.members):
            status = self.stops[index] or stop
            resolved: dict[int, Any] = {}

            def resolve(value, part, index=index, member=member, resolved=resolved):
                if not isinstance(value, _Held):
                    return value
                if id(value) not in resolved:
                    source = current if value.epoch == member.epoch else best
                    resolved[id(value)] = jax.tree.map(lambda leaf: leaf[index], source[part])
                return resolved[id(value)]

            member.params = resolve(member.params, 0)
            member.opt_state = resolve(member.opt_state, 1)
            if member.plateau.kept is not None:
                kept_params, kept_state = member.plateau.kept
                member.plateau.kept = (resolve(kept_params, 0), resolve(kept_state, 1))
            if status == Status.RUNNING:  # ended by the whole sweep's last stop
                status = Status.MAX_EPOCHS
            results.append(member.result(status))
        return results


@functools.lru_cache(maxsize=16)
def _ended_program(objective: BatchObjective, injected: Optimizer, observes: bool):
    """What follows a sweep's epoch, per configuration as ``Epochs._ended`` does alone:
    the validation score, the plateau rules fed, the next rate; and the weights and
    state of a configuration that stopped (or whose epoch was not finite) kept as they
    were before it."""

    def one(outcome, old_params, old_state, active, scored, n_updates):
        score: tuple = ()
        if scored:
            score = evaluate(objective, optim.eval_point(injected, outcome.params,
                                                         outcome.opt_state), *scored)  # fmt: skip
        state = outcome.opt_state
        if observes:
            state = optim.observe(
                state, score[0] if score else outcome.loss_sum / outcome.weight_sum
            )
        next_lr = jnp.asarray(optim.lr_of(injected, state, n_updates), outcome.loss_sum.dtype)
        keep = active & outcome.finite
        params = _tree.where(keep, outcome.params, old_params)
        state = _tree.where(keep, state, old_state)
        fetch = (outcome.finite, outcome.loss_sum, outcome.weight_sum, outcome.metric_sums,
                 outcome.grad_norm, next_lr, *score)  # fmt: skip
        return params, state, fetch

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None, None)))


@jax.jit
def _choose(mask: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``mask`` (one entry per configuration), else ``old``."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


__all__ = ["SWEPT_BY_FIT", "SweptEpochs", "configurations_of", "fit_sweep"]
