"""``fit``'s side of the engine's block loop: one epoch per block.

:class:`Epochs` runs an epoch's compiled program on each chunk of the source
(:func:`descend.engine.compiled_epoch`), fetches the epoch's sums once, records the
history, and applies the rules that need them: the gradient tolerance, early
stopping, divergence (a diverged chunk is replayed with every update checked, to keep
the last finite weights). The loop itself, with progress, callbacks and Ctrl-C, is
:func:`descend.engine.run`.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from descend import callbacks as callback_objects
from descend import engine, errors, metrics, optim, rules
from descend._json import shortest
from descend._tree import PyTree
from descend.engine import Status, status
from descend.optim import pairs
from descend.optim.schedules import PlateauState
from descend.training.objective import BatchObjective, evaluate
from descend.training.prepare import Prepared
from descend.training.result import BestEpoch, FitResult, FitState
from descend.training.saving import save
from descend.training.sources import ChunkSource, InMemory, on_device
from descend.training.spec import FitSpec

# How many epochs of data in memory may be dispatched before the host reads the first
# of them. On the CPU one hides the host's work between epochs (reading the numbers,
# drawing the next row order: 3-5 ms an epoch of 200,000 rows); a device on the far
# side of a bus answers a read after a round trip (about 6 ms on a GPU), which short
# epochs (a full-batch step of 1-2 ms) hide only a few deep.
RUN_AHEAD = 4

# Several epochs in one program (Epochs._stretch): at most this many updates, and at most
# this many row indices in their stacked orders. Data in memory on one device, when no
# rule, display or callback needs the host between epochs.
STRETCH_UPDATES = 1024
STRETCH_ORDER_ROWS = 1 << 24


class _Dispatched(NamedTuple):
    """An epoch whose programs are dispatched (JAX runs them asynchronously), unread."""

    params: PyTree  # the weights after it (device arrays, maybe not yet computed)
    opt_state: PyTree  # the optimizer state after it, its plateau rules fed
    fetch: tuple  # what the host reads: see Epochs._ended
    config: engine.EpochConfig
    order: Any  # its row order (None without shuffling), to replay it
    epoch: int  # its number (1-based)
    n_updates: int  # updates of the run after it
    at: float  # when it was dispatched (time.perf_counter)


class Epochs:
    """The epochs of one ``fit``, as a :class:`~descend.engine.loop.Block`."""

    unit = "epoch"

    def __init__(
        self,
        spec: FitSpec,
        prepared: Prepared,
        source: ChunkSource,
        state: FitState,
        objective: BatchObjective,
        *,
        watched: bool = True,
    ):
        self.spec, self.prepared, self.source, self.objective = spec, prepared, source, objective
        params, opt_state = state.params, state.opt_state
        if spec.placement is not None:  # the same weights and state on every device
            params, opt_state = spec.placement.replicate((params, opt_state))
        self.params, self.opt_state = params, opt_state
        self.epoch, self.n_updates = state.n_epochs, state.n_updates
        self.history = {key: list(values) for key, values in state.history.items()}
        # The held-out rows on the device: features, targets and weights (when weighted).
        self.scored: tuple[jax.Array, ...] | None = None
        if prepared.X_val is not None:
            assert prepared.y_val is not None  # validation rows come with their targets
            self.scored = (on_device(prepared.X_val), on_device(prepared.y_val))
            if prepared.weights_val is not None:
                self.scored += (on_device(prepared.weights_val),)
        self.metric = metrics.task_metric(spec.model.task)
        self.total_squares = source.total_squares() if self.metric == "r2" else None
        self.plateau = rules.Plateau(atol=spec.min_delta)
        if state.best is not None:  # a continued run: early stopping's count goes on
            best = state.best
            kept = (params, opt_state)
            if best.params is not None:
                kept = (best.params, best.opt_state)
                if spec.placement is not None:
                    kept = spec.placement.replicate(kept)
            self.plateau.best, self.plateau.best_at = best.loss, best.epoch
            self.plateau.waited, self.plateau.kept = best.waited, kept
        # A run saved when early stopping had already ended it stops again at once, as
        # the uninterrupted run did (unless a larger patience lets it go on).
        self.stopped = spec.patience is not None and self.plateau.waited >= spec.patience
        if self.stopped:
            waited = self.plateau.waited
            errors.warn(
                f"the run being continued had already stopped early (no improvement for "
                f"{waited} epochs since epoch {self.plateau.best_at}), so no epoch is "
                f"trained; to train on, pass a larger patience, e.g. patience={waited + 10}"
            )
        self.text: str | None = None
        self.diverged_at: tuple[int, int] | None = None  # (epoch, update) of a divergence
        self.grew_at: int | None = None  # the epoch whose loss grew without bound
        self.observes = _has_plateau_rule(opt_state)
        # Epochs dispatched and not yet read (data in memory on one device only: a
        # stream's chunks come from the host, and processes must agree on every program).
        self.ahead: collections.deque[_Dispatched] | None = None
        if isinstance(source, InMemory) and spec.placement is None:
            self.ahead = collections.deque()
        self.read_at = -math.inf  # when the host last read an epoch's numbers
        self.stretch = self._stretch_length(watched)
        self.single_until = 0  # epochs before this one run one to a program (see _stretch)

    # ------------------------------------------------------------ the Block protocol

    def advance(self) -> Status:
        if self.stopped:
            self.stopped = False
            if self.spec.restore_best and self.plateau.kept is not None:
                self.params, self.opt_state = self.plateau.kept
            return Status.EARLY_STOPPING
        self.text = None
        if self.stretch > 1 and self.epoch >= self.single_until:
            stop = self._stretch()
            if stop is not None:
                return stop
        return self.settle(*self._epoch())

    def settle(self, params, opt_state, made: int, fetched, began: float) -> Status:
        """The host's side of an epoch whose programs ran: its record and the rules.

        ``params`` and ``opt_state`` are the weights and state after it (the last finite
        ones when ``fetched`` is None: the epoch diverged after ``made`` updates), and
        ``fetched`` its numbers (see :meth:`_ended`). Returns ``RUNNING`` or the status
        that stops the run. A sweep (:mod:`descend.training.sweep`) settles each of its
        configurations' epochs here, so that they stop as each would alone.
        """
        if fetched is None:
            self.params, self.opt_state = params, opt_state
            self.n_updates += made
            self.diverged_at = (self.epoch + 1, self.n_updates + 1)
            return Status.DIVERGED
        self.read_at = time.perf_counter()
        record = self._record(fetched, self.read_at - began)
        self.params, self.opt_state = params, opt_state
        self.n_updates += made
        self.epoch += 1
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        self.history.setdefault("epoch", []).append(self.epoch)
        spec = self.spec
        first = self.epoch == spec.first_epoch + 1  # its time holds the compilation too
        self.text = _describe(record, self.source.n_samples, first)
        if self.prepared.stream is not None and self.epoch == spec.first_epoch + 1:
            spec.warn_past_horizon(made)  # a stream's updates per epoch are known now
        watched = record.get("val_loss", record["loss"])
        if self.observes and spec.placement is not None:
            # The plateau rules watch the same loss as early stopping: here the mean of
            # the processes' scores (on one device it was fed to them on the device).
            self.opt_state = _observe(self.opt_state, watched)
            self.history["lr"][-1] = _rate(
                optim.lr_of(spec.optimizer, self.opt_state, self.n_updates)
            )
        self.plateau.update(watched, self.epoch, (self.params, self.opt_state))
        if rules.grew_without_bound(record["loss"], self.history["loss"][0]):
            self.grew_at = self.epoch  # finite but exploding
            return Status.DIVERGED
        if spec.tol is not None and record["grad_norm"] <= spec.tol:
            return Status.CONVERGED
        if spec.patience is not None and self.plateau.waited >= spec.patience:
            if spec.restore_best and self.plateau.kept is not None:
                self.params, self.opt_state = self.plateau.kept
            return Status.EARLY_STOPPING
        return Status.RUNNING

    def done(self) -> int:
        return self.epoch

    def describe(self) -> str | None:
        return self.text

    def spent(self) -> Status | None:
        return Status.MAX_EPOCHS if self.epoch >= self.spec.epochs else None

    def intact(self) -> bool:
        return True  # the state is replaced only once an epoch completed

    def callback(self, user_callback: Any) -> Callable[[], Any]:
        """A ``callback(epoch, history)``, or an object's ``on_epoch_end(epoch, logs)``
        (:mod:`descend.callbacks`), as the engine calls it (no arguments)."""
        if callback_objects.has_hooks(user_callback):
            hook = getattr(user_callback, "on_epoch_end", None)
            if not callable(hook):
                return lambda: None
            return lambda: hook(self.epoch, self.logs())
        return lambda: user_callback(self.epoch, _as_arrays(self.history))

    def logs(self) -> dict[str, float]:
        """The last epoch's numbers by the history's names (Keras's ``logs``)."""
        return {key: values[-1] for key, values in self.history.items() if key != "epoch"}

    # ------------------------------------------------------------ an epoch

    def _epoch(self):
        """One epoch: ``(params, opt_state, updates made, fetched, began)``.

        ``fetched`` holds the epoch's loss, weight and metric sums, last gradient norm,
        next learning rate and validation score, or is None when the epoch diverged (then
        the weights are the last finite ones); ``began`` is when the device began it (as
        far as the host knows: when it was dispatched, or when the epoch before it was
        read, whichever came later). Data in memory on one device is read with the next
        epochs already dispatched (:meth:`_run_ahead`); streams and data split over
        devices chunk by chunk (:meth:`_chunked_epoch`).
        """
        if self.ahead is None:
            return self._chunked_epoch()
        return self._run_ahead()

    def _run_ahead(self):
        """The next epoch, with the following ones dispatched before it is read.

        JAX runs programs asynchronously: the epochs queued in :attr:`ahead` run on the
        device while the host reads this one's numbers, records them and draws the next
        row order, so the device does not wait for the host between epochs. An epoch is
        queued only where no rule the host applies can have stopped the run before it
        (:meth:`_may_run_ahead`); one queued past a stop that could not be foreseen (the
        gradient tolerance, divergence, a callback) is dropped unread.
        """
        queue = self.ahead
        assert queue is not None  # _epoch runs ahead only where self.ahead is set
        if not queue:
            queue.append(self._dispatch(self.params, self.opt_state, self.epoch, self.n_updates))
        while self._may_run_ahead(len(queue)):
            last = queue[-1]
            queue.append(self._dispatch(last.params, last.opt_state, last.epoch, last.n_updates))
        head = queue.popleft()
        began = max(head.at, self.read_at)
        finite, *fetched = jax.device_get(head.fetch)  # waits for this epoch alone
        if not finite:
            queue.clear()
            source = self.source
            assert isinstance(source, InMemory)  # self.ahead is set for data in memory only
            params, opt_state, n_finite = self._replay(
                self.params, self.opt_state, head.config, source.data, head.order
            )
            return params, opt_state, n_finite, None, began
        return head.params, head.opt_state, head.config.n_updates, fetched, began

    def _may_run_ahead(self, queued: int) -> bool:
        """Whether the epoch after the ``queued`` unread ones may be dispatched now.

        Not past the budget, at most :data:`RUN_AHEAD` epochs ahead, and not where
        early stopping could end the run first: its count of epochs without improvement
        grows by at most one an epoch.
        """
        spec = self.spec
        if queued >= RUN_AHEAD or self.epoch + queued >= spec.epochs:
            return False
        if self.stretch > 1 and self.epoch + queued >= self.single_until:
            return False  # the epochs after these run as a stretch
        return spec.patience is None or self.plateau.waited + queued < spec.patience

    def _dispatch(self, params, opt_state, epoch: int, n_updates: int) -> _Dispatched:
        """Epoch ``epoch + 1`` of data in memory from ``params`` and ``opt_state``, queued."""
        # Its clock starts before the call, which compiles the programs on a first epoch
        # (the first record says its time holds the compilation).
        at = time.perf_counter()
        ((config, data, order),) = self.source.chunks(self.spec.seed, epoch)
        program = engine.compiled_epoch(self.objective, self.spec.optimizer, config)
        outcome = program(params, opt_state, data, order, self.source.mean_weight)
        n_updates += config.n_updates
        opt_state, fetch = self._ended(
            outcome, (outcome.loss_sum, outcome.weight_sum, outcome.metric_sums), n_updates
        )
        return _Dispatched(
            outcome.params, opt_state, fetch, config, order, epoch + 1, n_updates, at
        )

    def _ended(self, outcome, totals, n_updates: int):
        """What follows an epoch on the device, dispatched: ``(opt_state, fetch)``.

        The validation score, the plateau rules fed the watched loss (on the device, so
        that the next epoch need not wait for the host; with data split over processes
        the host feeds them the processes' mean score after the fetch), and the next
        learning rate; ``fetch`` is what the host reads: whether the epoch stayed finite,
        its sums, last gradient norm, next learning rate and score.
        """
        spec, placement = self.spec, self.spec.placement
        score: tuple[jax.Array, ...] = ()
        opt_state = outcome.opt_state
        if placement is None and (self.scored or self.observes):
            opt_state, score = _after_epoch(
                self.objective, spec.optimizer, self.observes, outcome.params, opt_state,
                totals, self.scored,
            )  # fmt: skip
        elif self.scored and placement is not None:  # as _after_epoch scores, per process
            weights = _eval_point(spec.optimizer, outcome.params, outcome.opt_state)
            score = evaluate(self.objective, placement.local(weights), *self.scored)
        # On the host, as a stretch's epochs have it: a constant rate stays a float, and a
        # schedule is evaluated as it is everywhere else.
        next_lr = optim.lr_of(spec.optimizer, opt_state, n_updates)
        return opt_state, (outcome.finite, *totals, outcome.grad_norm, next_lr, *score)

    def _chunked_epoch(self):
        """One epoch over the source's chunks, the host waiting once per chunk."""
        began, spec = time.perf_counter(), self.spec
        params, opt_state = self.params, self.opt_state
        totals, made = None, 0
        for last, (config, data, order) in _with_last(self.source.chunks(spec.seed, self.epoch)):
            program = engine.compiled_epoch(self.objective, spec.optimizer, config)
            outcome = program(params, opt_state, data, order, self.source.mean_weight)
            sums = (outcome.loss_sum, outcome.weight_sum, outcome.metric_sums)
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
            state = outcome.opt_state
            if last:
                done = self.n_updates + made + config.n_updates
                state, fetch = self._ended(outcome, totals, done)
                finite, *fetched = jax.device_get(fetch)
            else:
                finite = bool(outcome.finite)
            if not finite:
                params, opt_state, n_finite = self._replay(params, opt_state, config, data, order)
                return params, opt_state, made + n_finite, None, began
            params, opt_state = outcome.params, state
            made += config.n_updates
        return params, opt_state, made, fetched, began

    def _stretch_length(self, watched: bool) -> int:
        """Epochs one program runs: more than 1 only where that changes no number.

        Data in memory on one device, whose epochs nothing on the host needs to see one
        at a time: no progress display, callback, early stopping, gradient tolerance,
        validation score, plateau rule or rate kept in the state (either may change within
        a stretch, whose history would show its last value only). As
        many epochs as make :data:`STRETCH_UPDATES` updates (a full-batch epoch is one),
        within the budget.
        """
        spec = self.spec
        if (
            self.ahead is None or watched or spec.callbacks or spec.patience is not None
            or spec.tol is not None or self.scored or _has_plateau_state(self.opt_state)
            or _rate_in_state(spec.optimizer, self.opt_state)
        ):  # fmt: skip
            return 1
        config = self.source.config
        rows = config.n_samples if config.shuffle else 1
        left = spec.epochs - self.epoch
        length = min(STRETCH_UPDATES // config.n_updates, STRETCH_ORDER_ROWS // rows, left)
        return max(length, 1)

    def _stretch(self) -> Status | None:
        """The next epochs (up to :attr:`stretch`) in one program, and their records.

        The history is the one epoch-by-epoch training records: each epoch's sums, last
        gradient norm and next rate come back stacked (the time is the stretch's, shared
        out). Where a rule stops the run inside the stretch (divergence, a loss grown
        without bound), its epochs run again one at a time (:attr:`single_until`), so
        that the rule sees the epoch it stops at as it would have; returns None then.
        Early stopping's record of the best epoch keeps that epoch's weights: the program
        keeps those of the epoch that last improved by early stopping's test made in the
        loss's dtype; should the host's test (in float64) pick another, the stretch runs
        again one epoch at a time.
        """
        spec, source = self.spec, self.source
        assert isinstance(source, InMemory)  # a stretch runs for data in memory only
        config = source.config
        count = min(self.stretch, spec.epochs - self.epoch)
        began = time.perf_counter()
        orders = None
        if config.shuffle:
            orders = np.zeros((self.stretch, config.n_samples), np.int32)
            for index in range(count):
                ((_, _, orders[index]),) = source.chunks(spec.seed, self.epoch + index)
        program = engine.compiled_stretch(
            self.objective, spec.optimizer, config, self.stretch, spec.min_delta
        )

        outcome = program(
            self.params, self.opt_state, source.data, orders, source.mean_weight, count,
            self.plateau.best,
        )  # fmt: skip
        finite, *numbers = jax.device_get(
            (outcome.finite, outcome.loss_sum, outcome.weight_sum, outcome.metric_sums,
             outcome.grad_norm)
        )  # fmt: skip
        seconds = (time.perf_counter() - began) / count
        records: list[dict[str, float]] = []
        for index in range(count):
            if not finite[index]:
                break
            done = self.n_updates + (index + 1) * config.n_updates
            next_lr = optim.lr_of(spec.optimizer, outcome.opt_state, done)
            record = self._record((*(part[index] for part in numbers), next_lr), seconds)
            losses = self.history.get("loss") or [r["loss"] for r in records] or [record["loss"]]
            if rules.grew_without_bound(record["loss"], losses[0]):
                break
            records.append(record)
        if len(records) < count:  # a rule stops the run inside: one epoch at a time
            self.single_until = self.epoch + count
            return None
        plateau = copy.copy(self.plateau)
        for index, record in enumerate(records):
            plateau.update(record["loss"], self.epoch + index + 1)
        if plateau.best_at != self.plateau.best_at:  # the best epoch's weights, for the record
            if plateau.best_at == self.epoch + count:
                plateau.kept = (outcome.params, outcome.opt_state)
            elif plateau.best_at == self.epoch + 1 + int(outcome.best_index):
                plateau.kept = (outcome.best_params, outcome.best_opt_state)
            else:  # the program's test, in the loss's dtype, disagreed: one at a time
                self.single_until = self.epoch + count
                return None
        self.plateau = plateau
        self.params, self.opt_state = outcome.params, outcome.opt_state
        self.n_updates += count * config.n_updates
        for record in records:
            self.epoch += 1
            for key, value in record.items():
                self.history.setdefault(key, []).append(value)
            self.history.setdefault("epoch", []).append(self.epoch)
        first = self.epoch == spec.first_epoch + count  # its time holds the compilation
        self.text = _describe(records[-1], source.n_samples, first)
        return Status.RUNNING

    def _replay(self, params, opt_state, config, data, order):
        """Run a diverged chunk again with every update checked: the last finite weights.

        The fast epoch program has no per-update guard; the checked one (compiled only
        when needed) keeps the weights and state from before the first non-finite update.
        """
        checked = dataclasses.replace(config, checked=True)
        program = engine.compiled_epoch(self.objective, self.spec.optimizer, checked)
        outcome = program(params, opt_state, data, order, self.source.mean_weight)
        return outcome.params, outcome.opt_state, int(outcome.n_finite)

    def _record(self, fetched, seconds: float) -> dict[str, float]:
        if self.total_squares is None and self.metric == "r2":  # a one-shot stream: known now
            self.total_squares = self.source.total_squares()
        loss_sum, weight_sum, metric_sums, grad_norm, next_lr, *score = fetched
        record = {"loss": float(loss_sum / weight_sum)}
        record[self.metric] = metrics.running(
            self.metric, metric_sums, weight_sum, self.total_squares
        )
        if self.scored:
            placement = self.spec.placement
            if placement is not None:  # every process scores its own rows
                held_out = self.prepared.weights_val
                assert self.prepared.X_val is not None  # self.scored holds it
                weight = len(self.prepared.X_val) if held_out is None else held_out.sum()
                score = placement.mean_scores(score, weight)
            record["val_loss"], record["val_" + self.metric] = map(float, score)
        record["grad_norm"] = float(grad_norm)
        record["lr"] = _rate(next_lr)
        record["time"] = seconds
        return record

    # ------------------------------------------------------------ the result

    def reason(self, stop: Status) -> str:
        """The sentence of ``stop``, with this run's numbers."""
        spec = self.spec
        if stop == Status.MAX_EPOCHS:
            done = stop.message(epochs=status.count(spec.epochs, "epoch"))
            if spec.patience is None or self.plateau.best_at is None:
                return done
            # Early stopping was on and did not end the run: it may not have converged.
            best_at, kept = self.plateau.best_at, ""
            if best_at == self.epoch:
                how = f"was still improving at the last epoch ({best_at})"
            else:  # within patience: the weights stay the last epoch's (as Keras's)
                since = status.count(self.epoch - best_at, "epoch")
                how = f"was best at epoch {best_at}, {since} before the end"
                how += f" (patience={spec.patience})"
                kept = " and the weights are the last epoch's"
            return (
                f"{done}, all of them: the {self.watched} {how}, so early stopping did not "
                f"end the run{kept}; more epochs may lower it, e.g. epochs={2 * spec.epochs}"
            )
        if stop == Status.CONVERGED:
            return stop.message(grad_norm=self.history["grad_norm"][-1], tol=spec.tol)
        if stop == Status.EARLY_STOPPING:
            assert spec.patience is not None  # only patience stops a run early
            why = status.plateau(
                self.watched, rtol=0.0, atol=spec.min_delta, patience=spec.patience, unit="epoch",
                best=self.plateau.best, best_at=self.plateau.best_at, restored=spec.restore_best,
            )  # fmt: skip
            losses = self.history["loss"]
            if len(losses) > 1 and losses[-1] > 2 * losses[0]:  # it stopped on a rising loss
                why += (
                    f"; the training loss rose from {losses[0]:.6g} (epoch 1) to "
                    f"{losses[-1]:.6g} (epoch {self.epoch}): the steps are too large"
                    + self.smaller_steps()
                )
            return stop.message(why=why)
        if stop == Status.DIVERGED and self.grew_at is not None:
            losses = self.history["loss"]
            advice = self.smaller_steps()
            return stop.message(
                what=f"the loss grew from {losses[0]:.6g} (epoch 1) to {losses[-1]:.6g} "
                f"(epoch {self.grew_at}), more than {rules.GROWTH:g} times its scale (the "
                "steps are too large)",
                where="",
                kept="kept the last weights",
                advice=advice,
            )
        if stop == Status.DIVERGED:
            assert self.diverged_at is not None  # set where a non-finite epoch stops the run
            epoch, update = self.diverged_at
            return stop.message(
                what="the loss or weights became non-finite",
                where=f" in epoch {epoch}, at update {update} of the run",
                kept="kept the last finite weights",
                advice=status.smaller_lr(spec.optimizer.hyperparams.get("lr")),
            )
        if stop == Status.INTERRUPTED:
            kept = f"the weights are from epoch {self.epoch}"
            return stop.message(unit="epoch", done=self.epoch, kept=kept)
        return stop.message(unit="epoch", done=self.epoch)

    @property
    def watched(self) -> str:
        """The loss early stopping watches, in words."""
        return "validation loss" if self.scored else "training loss"

    def smaller_steps(self) -> str:
        """The advice for steps that are too large: a smaller rate, or standardize."""
        advice = status.smaller_lr(self.spec.optimizer.hyperparams.get("lr"))
        return advice if self.spec.standardize else advice + ", or standardize=True"

    def best(self) -> BestEpoch | None:
        """Early stopping's record, its weights kept only where they are not the current."""
        plateau = self.plateau
        if plateau.best_at is None:
            return None
        kept_params, kept_state = plateau.kept
        if kept_params is self.params:
            return BestEpoch(plateau.best, plateau.best_at, plateau.waited)
        kept_params = _eval_point(self.spec.optimizer, kept_params, kept_state)
        kept_params, kept_state = jax.device_get((kept_params, kept_state))
        return BestEpoch(plateau.best, plateau.best_at, plateau.waited, kept_params, kept_state)

    def result(self, stop: Status) -> FitResult:
        prepared, spec = self.prepared, self.spec
        restored = stop == Status.EARLY_STOPPING and spec.restore_best
        return FitResult(
            model=spec.model,
            params=jax.device_get(_eval_point(spec.optimizer, self.params, self.opt_state)),
            opt_state=jax.device_get(self.opt_state),
            best=self.best(),
            optimizer=spec.optimizer,
            loss=spec.loss_name or spec.loss,
            history=_as_arrays(self.history),
            n_updates=self.n_updates,
            n_epochs=len(self.history.get("epoch", [])),
            status=stop.label,
            reason=self.reason(stop),
            classes=prepared.classes,
            standardizer=prepared.standardizer,
            target_standardizer=prepared.target_standardizer,
            l2=self.objective.l2,
            encoding=prepared.encoding,
            dtype=spec.dtype,
            seed=spec.seed,
            best_epoch=self.plateau.best_at if restored else None,
        )


def train(spec: FitSpec, prepared: Prepared, source: ChunkSource) -> FitResult:
    """Run the epochs of ``spec`` on ``source`` in the engine's loop; the trained result.

    Complex params (of a custom model) are trained as the pairs of their real and
    imaginary parts, as the optimizers step them (:mod:`descend.optim.pairs`): the
    epochs see real numbers only (the gradient norm is that of the parts), and the
    result holds complex params again. The optimizer state is the same either way.
    """
    state = spec.initial_state(prepared.n_features, prepared.n_outputs)
    if prepared.stream is None:  # one chunk an epoch: its updates are known before the run
        spec.warn_past_horizon(source.config.n_updates)
    layout = pairs.Layout.of(state.params) if pairs.has_complex(state.params) else None
    if layout is not None:
        state = dataclasses.replace(
            state, params=pairs.to_pairs(state.params), best=_best_as(pairs.to_pairs, state.best)
        )
    # Outside the epochs the weights are the evaluation point (schedule-free's x: the
    # result's, a checkpoint's, FitState's); the epochs step the training point.
    state = _at_training_point(spec.optimizer, state)
    n_train = prepared.n_samples * (1 if spec.placement is None else spec.placement.n_processes)
    # l2="auto" is 1/n whatever the sample weights: the objective sum(s l) / sum(s) + l2
    # stays the same when every weight is scaled (equal weights weigh nothing).
    counted = prepared.stream is None or prepared.stream.stream.n_samples is not None
    l2 = spec.l2_strength(n_train if counted else None)  # a one-shot iterator: not yet
    objective = BatchObjective(spec.model, spec.loss, spec.loss_name, layout, l2)
    placement = spec.placement
    progress = engine.Progress(
        spec.verbose, unit="epoch", total=spec.epochs, start=spec.first_epoch
    )
    epochs = Epochs(spec, prepared, source, state, objective, watched=progress.shows)

    def agree(stop: bool, interrupted: bool) -> tuple[bool, bool]:
        # One process asking to stop (a callback, Ctrl-C) stops them all, at the same epoch.
        assert placement is not None  # passed to the loop only with a placement
        table = placement.agree([float(stop), float(interrupted)])
        return bool(table[:, 0].max() > 0), bool(table[:, 1].max() > 0)

    def finished(stop: Status) -> FitResult:
        result = epochs.result(stop)
        if layout is None:
            return result

        def joined(params):
            return pairs.from_pairs_on_host(layout.like(), params)

        return dataclasses.replace(
            result, params=joined(result.params), best=_best_as(joined, result.best)
        )

    def saving(checkpoint: callback_objects.Checkpoint) -> Callable[[], None]:
        def save_now() -> None:  # the run as it stands, which resume= continues
            if checkpoint.due(epochs.epoch):
                running = finished(Status.RUNNING)
                reason = f"still training: saved after epoch {epochs.epoch}"
                save(checkpoint.path, dataclasses.replace(running, reason=reason))

        return save_now

    hooked = [c for c in spec.callbacks if callback_objects.has_hooks(c)]
    _call_hooks(hooked, "on_train_begin", {})
    stop = engine.run(
        epochs,
        callbacks=[
            saving(c) if isinstance(c, callback_objects.Checkpoint) else epochs.callback(c)
            for c in spec.callbacks
        ],
        progress=progress,
        agree=None if placement is None else agree,
    )
    result = finished(stop)
    for checkpoint in hooked:
        if isinstance(checkpoint, callback_objects.Checkpoint):
            save(checkpoint.path, result)  # the file descend.save(path, result) writes
    _call_hooks(hooked, "on_train_end", epochs.logs())
    return result


def _call_hooks(objects: list, hook: str, logs: dict[str, float]) -> None:
    """``hook(logs)`` of each callback object that has it (their return values unused)."""
    for callback in objects:
        method = getattr(callback, hook, None)
        if callable(method):
            method(dict(logs))


def _at_training_point(optimizer: optim.Optimizer, state: FitState) -> FitState:
    """``state`` with its weights (and early stopping's) moved from the evaluation point
    to the training point (:func:`~descend.optim.train_point`): equal up to rounding to
    the training point the run that saved them held."""
    if optimizer.train_params is None:
        return state
    best = state.best
    if best is not None and best.params is not None:
        best = dataclasses.replace(
            best, params=_train_point(optimizer, best.params, best.opt_state)
        )
    params = _train_point(optimizer, state.params, state.opt_state)
    return dataclasses.replace(state, params=params, best=best)


_eval_program = jax.jit(optim.eval_point, static_argnums=0)
_train_program = jax.jit(optim.train_point, static_argnums=0)


def _eval_point(optimizer: optim.Optimizer, params: PyTree, opt_state: PyTree) -> PyTree:
    """The evaluation point of the weights (for the result, validation and early
    stopping's record): one compiled program per optimizer and shapes; the weights
    themselves, with nothing compiled, for an optimizer evaluated where it steps."""
    if optimizer.eval_params is None:
        return params
    return _eval_program(optimizer, params, opt_state)


def _train_point(optimizer: optim.Optimizer, params: PyTree, opt_state: PyTree) -> PyTree:
    """The inverse of :func:`_eval_point` (only called for an optimizer with one)."""
    return _train_program(optimizer, params, opt_state)


def _best_as(convert: Callable[[PyTree], PyTree], best: BestEpoch | None) -> BestEpoch | None:
    """``best`` with ``convert`` applied to the weights it keeps, if it keeps any."""
    if best is None or best.params is None:
        return best
    return dataclasses.replace(best, params=convert(best.params))


_observe = jax.jit(optim.observe)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _after_epoch(
    objective: BatchObjective, optimizer: optim.Optimizer, observes: bool, params: PyTree,
    opt_state: PyTree, totals: tuple, scored: tuple | None,
) -> tuple[PyTree, tuple[jax.Array, ...]]:  # fmt: skip
    """What follows an epoch on one device, as one program instead of two or three small
    ones (each compiled on a first call costs 0.1 s): the validation score at the
    evaluation point (schedule-free's x, as the result's), and the plateau rules fed the
    watched loss when ``observes``. Returns ``(opt_state, score)``."""
    score: tuple[jax.Array, ...] = ()
    if scored:
        score = evaluate(objective, optim.eval_point(optimizer, params, opt_state), *scored)
    if observes:
        opt_state = optim.observe(opt_state, score[0] if score else totals[0] / totals[1])
    return opt_state, score


def _has_plateau_rule(opt_state) -> bool:
    """Whether a plateau rule in ``opt_state`` waits for the epochs' losses."""
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda node: isinstance(node, PlateauState))
    return any(isinstance(node, PlateauState) and node.rule.by_epoch for node in nodes)


def _has_plateau_state(opt_state) -> bool:
    """Whether ``opt_state`` holds a plateau rule (watching steps or epochs)."""
    nodes = jax.tree.leaves(opt_state, is_leaf=lambda node: isinstance(node, PlateauState))
    return any(isinstance(node, PlateauState) for node in nodes)


def _rate_in_state(optimizer, opt_state) -> bool:
    """Whether the learning rate lives in ``opt_state`` (``optax.inject_hyperparams``'s,
    see :func:`~descend.optim.from_optax`): a stretch would show only its last value."""
    return optimizer.name == "from_optax" and not np.isnan(optim.lr_of(optimizer, opt_state, 0))


def _rate(value: Any) -> float:
    """A learning rate for the history, as a Python float.

    A rate computed on the device in a narrower float (a schedule's value, or a rate a
    plateau rule scales, in float32) is written as the shortest decimal that is that
    number, as NumPy prints it: the user's 0.01 reads 0.01, not 0.009999999776. It is
    the same float32 value, read back exactly.
    """
    if isinstance(value, float):
        return value
    value = np.asarray(value)[()]
    return shortest(float(value), value.dtype)


def _with_last(iterable):
    """``(is_last, item)`` for each item (looking one item ahead)."""
    iterator = iter(iterable)
    previous = next(iterator)
    for item in iterator:
        yield False, previous
        previous = item
    yield True, previous


def _as_arrays(history: dict[str, list]) -> dict[str, np.ndarray]:
    return {key: np.asarray(values) for key, values in history.items()}


def _describe(record: dict[str, float], n_samples: float | None, first: bool = False) -> str:
    """``loss 0.2301, val_loss 0.2411, val_accuracy 0.9412, 1.2e+06 samples/s``; for a
    run's first epoch, whose time holds the compilation of its program, ``compiling``
    instead of a rate that would not be the training's."""
    parts = [
        f"{key} {value:.4g}"
        for key, value in record.items()
        if key not in ("time", "lr", "grad_norm")
    ]
    if first:
        return ", ".join(parts) + f", {record.get('time', math.nan):.2g} s with compiling"
    rate = (n_samples or 0) / record["time"] if record.get("time") else math.nan
    return ", ".join(parts) + f", {rate:.3g} samples/s"


__all__ = ["Epochs", "train"]
