"""The engine: the one host loop over blocks, its stopping rules and their sentences.

The loop is tested on a scripted block (no JAX), then through its two front ends:
``minimize`` (blocks of iterations: callbacks, Ctrl-C, progress, block sizes that do not
change the result) and ``fit`` (epochs: Ctrl-C, ``init=``). The improvement rule is
checked against PyTorch's ``ReduceLROnPlateau.is_better``.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as ds
from descend import engine, rules
from descend.engine import Status
from descend.engine.iterate import IterateConfig, Iterations
from descend.errors import DescendTypeError, InputError
from descend.training import FitState

# ---------------------------------------------------------------- the loop, scripted


class Scripted:
    """A block whose ``advance`` returns the statuses given, one per call."""

    unit = "step"

    def __init__(self, statuses, *, budget=None, on_advance=None, intact=True):
        self.statuses, self.budget, self.on_advance = list(statuses), budget, on_advance
        self.n, self.is_intact = 0, intact

    def advance(self):
        if self.on_advance is not None:
            self.on_advance(self.n + 1)
        self.n += 1
        return self.statuses.pop(0) if self.statuses else Status.RUNNING

    def done(self):
        return self.n

    def describe(self):
        return f"block {self.n}"

    def spent(self):
        return Status.MAX_ITER if self.budget is not None and self.n >= self.budget else None

    def intact(self):
        return self.is_intact


def test_the_loop_stops_on_the_first_status_a_block_reports():
    block = Scripted([Status.RUNNING, Status.RUNNING, Status.CONVERGED])
    assert engine.run(block) == Status.CONVERGED and block.n == 3


def test_callbacks_see_the_block_that_ended_the_run_but_not_one_that_diverged():
    seen = []
    engine.run(Scripted([Status.RUNNING, Status.CONVERGED]), callbacks=[lambda: seen.append(1)])
    assert len(seen) == 2
    engine.run(Scripted([Status.RUNNING, Status.DIVERGED]), callbacks=[lambda: seen.append(2)])
    assert seen.count(2) == 1


def test_the_budget_ends_the_loop_after_callbacks_ran():
    seen = []
    block = Scripted([], budget=4)
    assert engine.run(block, callbacks=[lambda: seen.append(block.n)]) == Status.MAX_ITER
    assert seen == [1, 2, 3, 4]


@pytest.mark.parametrize("how", ["true", "stop_iteration"])
def test_a_callback_stops_the_loop_after_every_callback_saw_the_block(how):
    first, second = [], []

    def asks(n=None):
        first.append(block.n)
        if block.n == 2:
            if how == "true":
                return True
            raise StopIteration
        return None

    block = Scripted([])
    status = engine.run(block, callbacks=[asks, lambda: second.append(block.n)])
    assert status == Status.CALLBACK and first == second == [1, 2]


def test_a_keyboard_interrupt_in_a_block_returns_the_last_whole_block():
    def fail(n):
        if n == 3:
            raise KeyboardInterrupt

    block = Scripted([], on_advance=fail)
    assert engine.run(block) == Status.INTERRUPTED
    assert block.n == 2  # the third block never completed


def test_a_keyboard_interrupt_is_raised_again_when_the_state_is_not_whole():
    def fail(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.run(Scripted([], on_advance=fail, intact=False))


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler while the test runs: a shell starts a background job
    with SIGINT ignored, and a press sent to an ignored signal would never arrive."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_once_finishes_the_block_in_flight_then_stops():
    def press(n):
        if n == 2:
            os.kill(os.getpid(), signal.SIGINT)

    block = Scripted([], on_advance=press)
    assert engine.run(block) == Status.INTERRUPTED
    assert block.n == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_twice_stops_inside_the_block():
    finished = []

    def press_twice(n):
        if n == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(n)  # never reached: the second press raises

    block = Scripted([], on_advance=press_twice)
    assert engine.run(block) == Status.INTERRUPTED
    assert finished == []


def test_a_programs_own_sigint_handler_is_left_alone():
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:

        def press(n):
            if n == 1:
                os.kill(os.getpid(), signal.SIGINT)

        assert engine.run(Scripted([Status.RUNNING, Status.CONVERGED], on_advance=press)) == (
            Status.CONVERGED
        )
        assert caught == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_agree_makes_one_stop_decision_for_all_processes():
    asked = []

    def agree(stop, interrupted):
        asked.append((stop, interrupted))
        return len(asked) == 3, False  # another process's callback asks at block 3

    block = Scripted([])
    assert engine.run(block, agree=agree) == Status.CALLBACK
    assert asked == [(False, False)] * 3 and block.n == 3


def test_progress_verbose_2_prints_one_line_per_block(capsys):
    progress = engine.Progress(2, unit="step", total=3)
    engine.run(Scripted([], budget=3), progress=progress)
    assert capsys.readouterr().out.splitlines() == [
        "step 1/3: block 1",
        "step 2/3: block 2",
        "step 3/3: block 3",
    ]


def test_progress_is_silent_at_verbose_0(capsys):
    engine.run(Scripted([], budget=30), progress=engine.Progress(0, unit="s", total=30))
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_progress_in_a_log_is_a_line_per_tenth_of_the_budget_and_the_last(capsys):
    """Without a terminal (stderr is captured here) verbose=1 writes plain lines to a log:
    the first block, each block that passes another tenth of the budget, the last."""
    progress = engine.Progress(1, unit="step", total=50)
    assert progress.mode == "log" and not progress.shows  # blocks may run several at once
    engine.run(Scripted([], budget=37), progress=progress)
    captured = capsys.readouterr()
    assert captured.out == ""
    done = [int(line.split()[1].split("/")[0]) for line in captured.err.splitlines()]
    step = 50 // engine.progress.LINE_STEPS
    assert done == [1, *range(step, 37, step), 37]
    assert captured.err.splitlines()[-1] == "step 37/50: block 37"


def test_progress_in_a_log_waits_for_its_delay(capsys, monkeypatch):
    """A run shorter than line_delay leaves the log alone; a longer one is logged every
    LINE_SECONDS even without passing a tenth of the budget."""
    engine.run(Scripted([], budget=5), progress=engine.Progress(1, unit="s", total=5,
                                                                line_delay=60.0))  # fmt: skip
    assert capsys.readouterr().err == ""

    clock = {"now": 0.0}
    monkeypatch.setattr(engine.progress.time, "perf_counter", lambda: clock["now"])

    def tick(n):
        clock["now"] = 4.0 * n  # a block every 4 s

    progress = engine.Progress(1, unit="s", total=10**6, line_delay=5.0)
    engine.run(Scripted([], budget=7, on_advance=tick), progress=progress)
    done = [int(line.split()[1].split("/")[0]) for line in capsys.readouterr().err.splitlines()]
    # from 5 s on: block 2 (8 s), the first block 10 s after it (5: 20 s), and the last
    # (7: 28 s) when the run ends
    assert done == [2, 5, 7]


# ---------------------------------------------------------------- statuses and rules


def test_every_status_has_a_sentence_and_a_label():
    facts = dict(
        grad_norm=1e-7, tol=1e-6, why="reasons", n_bisections=3, left=0.0, right=1.0,
        what="the value became non-finite", where="", kept="kept", advice="", max_iter=5,
        epochs=5, unit="epoch", done=2,
    )  # fmt: skip
    for status in Status:
        assert status.message(**facts)
        assert status.label == status.name.lower()
    with pytest.raises(KeyError, match="grad_norm"):
        Status.CONVERGED.message(tol=1.0)


def test_the_plateau_sentence_names_the_rule_and_the_best_block():
    why = engine.status.plateau(
        "validation loss", rtol=0.0, atol=1e-3, patience=5, unit="epoch", best=0.25, best_at=7,
        restored=True,
    )  # fmt: skip
    assert why == (
        "the validation loss has not improved by more than 0.001 for 5 epochs (best 0.25 at "
        "epoch 7); restored the weights of epoch 7"
    )
    assert engine.status.tolerance(1e-4, 0.0) == "0.0001 relative"
    # No tolerance: any decrease counts, and the sentence does not say "by more than 0".
    why = engine.status.plateau(
        "value", rtol=0.0, atol=0.0, patience=1000, unit="iteration", best=0.5, best_at=12
    )
    assert why == "the value has not improved for 1000 iterations (best 0.5 at iteration 12)"


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(1e-3, 1e3),
    best=st.floats(1e-3, 1e3),
    threshold=st.floats(0.0, 0.5),
    mode=st.sampled_from(["rel", "abs"]),
)
def test_improved_is_torchs_is_better_for_positive_losses(value, best, threshold, mode):
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch.optim.SGD(torch.nn.Linear(1, 1).parameters()), threshold=threshold,
        threshold_mode=mode, patience=10,
    )  # fmt: skip
    scheduler.step(best)  # the first value is always the best so far
    scheduler.step(value)  # a bad epoch unless it improved on best
    tolerances = {"rtol": threshold} if mode == "rel" else {"atol": threshold}
    margin = abs(value - (best * (1 - threshold) if mode == "rel" else best - threshold))
    if margin < 1e-9 * best:  # a tie within rounding: the two formulas may round apart
        return
    assert rules.improved(value, best, **tolerances) == (scheduler.num_bad_epochs == 0)


def test_improved_works_on_jax_values_and_treats_no_best_and_nan_as_said():
    assert bool(jax.jit(lambda v, b: rules.improved(v, b, rtol=0.1))(0.85, 1.0))
    assert rules.improved(5.0, float("inf")) and not rules.improved(float("nan"), 1.0)
    # The relative part is of |best|: a negative loss that grows is no improvement.
    assert not rules.improved(-0.95, -1.0, rtol=0.01)


def test_plateau_counts_blocks_since_the_best_and_keeps_its_state():
    plateau = rules.Plateau(atol=0.1)
    for epoch, loss in enumerate([1.0, 0.95, 0.5, 0.6, 0.45], start=1):
        plateau.update(loss, epoch, keep=f"weights {epoch}")
    assert (plateau.best, plateau.best_at, plateau.kept, plateau.waited) == (
        0.5,
        3,
        "weights 3",
        2,
    )


# ---------------------------------------------------------------- minimize's blocks


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _run(x0, **kwargs):
    with jax.enable_x64(True):
        config = IterateConfig(
            tol=1e-8, max_iter=400, patience=100, ftol=0.0, refine=False, keep_path=True
        )
        iterations = Iterations(rosenbrock, jnp.asarray(x0), ds.optim.gd(), config, **kwargs)
        status = engine.run(iterations)
        return status, iterations.outcome()


def test_block_sizes_do_not_change_the_run():
    """One block, blocks of one iteration and blocks sized by time give the same iterates."""
    x0 = [-1.2, 1.0, 0.5]
    runs = [_run(x0, per_block=400), _run(x0, per_block=1), _run(x0), _run(x0, watched=False)]
    for status, outcome in runs[1:]:
        assert status == runs[0][0]
        np.testing.assert_array_equal(outcome.x, runs[0][1].x)
        np.testing.assert_array_equal(outcome.history_x, runs[0][1].history_x)
        assert outcome.n_fev == runs[0][1].n_fev


@pytest.mark.parametrize("verbose", [0, 2])
def test_a_second_minimize_compiles_nothing_and_leaves_x0_alone(verbose, x64):
    x0 = jnp.array([-1.2, 1.0])
    ds.minimize(rosenbrock, x0, verbose=verbose)
    # The programs of this objective with minimize's default settings (a cache hit).
    config = IterateConfig(1e-6, 10_000, 100, 0.0, False, True)
    programs = engine.iterate._programs(rosenbrock, ds.optim.gd(), config)
    before = engine.iterate._programs.cache_info()
    sizes = [program._cache_size() for program in (programs.first, programs.block)]
    ds.minimize(rosenbrock, x0, verbose=verbose)
    assert engine.iterate._programs.cache_info().misses == before.misses
    assert [program._cache_size() for program in (programs.first, programs.block)] == sizes
    assert not x0.is_deleted() and float(x0[0]) == -1.2  # copied, never donated


def test_an_unwatched_run_longer_than_its_first_block_goes_on_in_blocks(x64):
    """Past UNWATCHED_BLOCK iterations the run continues with the block program, unchanged."""
    f = lambda x: jnp.sum((x - 1.0) ** 2)  # noqa: E731
    config = IterateConfig(0.0, 25_000, 10**6, 0.0, False, False)
    runs = []
    for watched in (False, True):
        iterations = Iterations(f, jnp.zeros(3), ds.optim.gd(lr=1e-5), config, watched=watched)
        runs.append((engine.run(iterations), iterations.outcome()))
    (status, unwatched), (_, watched) = runs
    assert status == Status.MAX_ITER and unwatched.n_iter == 25_000
    np.testing.assert_array_equal(unwatched.x, watched.x)
    np.testing.assert_array_equal(unwatched.history_value, watched.history_value)


def test_a_callback_sees_every_iterate_and_can_stop_the_run():
    full = ds.minimize(rosenbrock, np.array([-1.2, 1.0]), verbose=0)
    seen = []

    def callback(x):
        seen.append(np.array(x))
        return len(seen) == 5

    stopped = ds.minimize(rosenbrock, np.array([-1.2, 1.0]), callback=callback)
    assert stopped.status == "callback" and stopped.n_iter == 5
    assert stopped.reason == "a callback stopped the run after iteration 5"
    np.testing.assert_array_equal(np.stack(seen), full.history["x"][1:6])
    np.testing.assert_array_equal(stopped.x, full.history["x"][5])


def test_a_callback_sees_the_last_iterate_too_as_scipys_does():
    seen = []
    result = ds.minimize(rosenbrock, np.array([-1.2, 1.0]), callback=seen.append)
    assert result.converged and len(seen) == result.n_iter
    np.testing.assert_array_equal(seen[-1], result.x)


def test_an_intermediate_result_callback_gets_scipys_fields_and_may_raise_stopiteration():
    values = []

    def callback(intermediate_result):
        values.append(
            (intermediate_result.n_iter, intermediate_result.fun, intermediate_result.n_fev)
        )
        if intermediate_result.n_iter == 3:
            raise StopIteration

    result = ds.minimize("(x-3)**2 + 10*(y+1)**2", {"x": 0, "y": 0}, optimizer="adam",
                         callback=callback)  # fmt: skip
    assert result.status == "callback" and [n for n, _, _ in values] == [1, 2, 3]
    assert all(n_fev > n for n, _, n_fev in values)
    np.testing.assert_allclose([fun for _, fun, _ in values], result.history["value"][1:4])


def test_a_callback_must_be_callable():
    with pytest.raises(DescendTypeError, match="callback must be a function"):
        ds.minimize(rosenbrock, np.zeros(2), callback=3)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_minimize_returns_the_best_point_so_far():
    def press(x):
        if press.calls == 7:
            os.kill(os.getpid(), signal.SIGINT)
        press.calls += 1

    press.calls = 0
    result = ds.minimize(rosenbrock, np.array([-1.2, 1.0]), optimizer=ds.optim.momentum(lr=1e-3),
                         callback=press)  # fmt: skip
    assert result.status == "interrupted" and not result.converged
    values = result.history["value"]
    best = int(np.argmin(values))
    assert result.fun == values[best]
    np.testing.assert_array_equal(result.x, result.history["x"][best])
    assert f"best point so far (iteration {best}" in result.reason


CHILD = """
import json, sys, numpy as np, jax.numpy as jnp, descend as ds
def f(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
print("started", flush=True)
r = ds.minimize(f, np.full(2000, -1.0), optimizer=ds.optim.gd(lr=1e-6), tol=0.0,
                max_iter=10**8, patience=10**8, verbose=0, keep_path=False)
print(json.dumps({"status": r.status, "n_iter": r.n_iter, "fun": r.fun,
                  "best": float(np.min(r.history["value"]))}), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_ctrl_c_in_a_terminal_stops_a_long_minimize_within_a_block():
    """In a terminal, Ctrl-C stops the run within a fraction of a second, not at its end."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=terminal, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # Ctrl-C at its default, as in a terminal (a shell's background job ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(4.0)  # compiled, and a few blocks in
        pressed = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        waited = time.monotonic() - pressed
    finally:
        child.kill()
        os.close(controller)
        os.close(terminal)
    assert child.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["status"] == "interrupted" and 0 < report["n_iter"] < 10**8
    assert report["fun"] == report["best"]
    assert waited < 10


BAR_CHILD = """
import time, numpy as np, jax.numpy as jnp, descend as ds
def f(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
began = time.perf_counter()
r = ds.minimize(f, np.full(50_000, -1.0), optimizer=ds.optim.gd(lr=1e-7), tol=0.0,
                max_iter=20_000, patience=10**8, keep_path=False)
print(r.status, r.n_iter, time.perf_counter() - began)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_a_long_minimize_shows_a_progress_bar_on_a_terminal():
    controller, terminal = pty.openpty()
    shown = []
    reader = threading.Thread(target=_drain, args=(controller, shown), daemon=True)
    reader.start()
    child = subprocess.run(
        [sys.executable, "-c", BAR_CHILD], stderr=terminal, stdout=subprocess.PIPE,
        text=True, timeout=300, check=True,
    )  # fmt: skip
    os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    status, n_iter, seconds = child.stdout.split()
    assert (status, n_iter) == ("max_iter", "20000")
    assert float(seconds) > 2  # the bar shows from the first second on
    assert "iteration" in b"".join(shown).decode(errors="replace")


def _drain(descriptor: int, into: list) -> None:
    """Read a pseudo-terminal until it closes (a full one would block the writer)."""
    while True:
        try:
            chunk = os.read(descriptor, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.append(chunk)


def test_minimize_shows_its_blocks_at_verbose_2(capsys):
    ds.minimize(rosenbrock, np.array([-1.2, 1.0]), verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("iteration ") for line in lines)
    assert "gradient norm" in lines[-1]


# ---------------------------------------------------------------- fit's epochs


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n)


SMALL = dict(optimizer="sgd", lr=0.05, batch_size=8, verbose=0)


def test_init_continues_a_run_exactly_like_one_run():
    X, y = _data()
    whole = ds.fit("linear", X, y, epochs=6, **SMALL)
    first = ds.fit("linear", X, y, epochs=2, **SMALL)
    continued = ds.fit("linear", X, y, epochs=6, init=first.state, **SMALL)
    np.testing.assert_array_equal(continued.params["w"], whole.params["w"])
    assert continued.n_updates == whole.n_updates and continued.n_epochs == 6
    np.testing.assert_array_equal(continued.history["loss"], whole.history["loss"])


def test_init_as_params_and_state_starts_counting_at_zero():
    X, y = _data()
    first = ds.fit("linear", X, y, epochs=2, **SMALL)
    again = ds.fit("linear", X, y, epochs=2, init=(first.params, first.opt_state), **SMALL)
    assert again.n_epochs == 2 and again.n_updates == first.n_updates
    assert not np.array_equal(again.params["w"], first.params["w"])  # trained further


@pytest.mark.parametrize(
    ("init", "error", "words"),
    [
        ("state", DescendTypeError, "init must be a FitState"),
        (FitState({"w": np.zeros(3), "b": np.zeros(())}, (), n_epochs=4), InputError,
         "epochs=4 leaves none"),
    ],
)  # fmt: skip
def test_bad_init_is_refused_with_the_fix(init, error, words):
    X, y = _data()
    with pytest.raises(error, match=words):
        ds.fit("linear", X, y, epochs=4, init=init, **SMALL)


def test_init_and_resume_together_are_refused():
    X, y = _data()
    first = ds.fit("linear", X, y, epochs=1, **SMALL)
    with pytest.raises(InputError, match="resume= or init="):
        ds.fit("linear", X, y, epochs=2, init=first.state, resume=first, **SMALL)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_fit_stops_after_the_epoch_in_flight():
    X, y = _data()

    def press(epoch, history):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    result = ds.fit("linear", X, y, epochs=10, callbacks=[press], **SMALL)
    whole = ds.fit("linear", X, y, epochs=2, **SMALL)
    assert result.status == "interrupted" and result.n_epochs == 2
    assert result.reason == ("interrupted (Ctrl-C) after epoch 2; the weights are from epoch 2")
    np.testing.assert_array_equal(result.params["w"], whole.params["w"])
