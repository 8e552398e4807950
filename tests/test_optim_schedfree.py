"""Schedule-free SGD and AdamW against the ``schedulefree`` package and Optax, run live.

The package (PyTorch) is the reference: each case runs it and descend side by side for
200 steps in float64 on the four problems of ``optax_oracle`` (torch versions of the
objectives below) and compares the training point :math:`y` (the params) after every
step, the evaluation point :math:`x` (the package's ``eval()`` formula on a copy of
the params, after every step, and ``optimizer.eval()`` itself at the end) and the
state :math:`z`, to rtol 1e-9. Optax's ``optax.contrib.schedule_free_*`` is compared
on the same problems, and where it differs (warmup) the difference is pinned down.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from optax_oracle import (
    ALL,
    ATOL,
    N_STEPS,
    PROBLEMS,
    RTOL,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
)
from trajectories import torch_float64

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")
schedulefree = pytest.importorskip("schedulefree")

# ------------------------------------------------------ the problems, written for torch


def _torch_objectives() -> dict[str, Callable]:
    """The objectives of ``optax_oracle.PROBLEMS`` in torch, from the same seeds."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = torch.tensor(q @ np.diag(np.logspace(0.0, 2.0, 6)) @ q.T)
    b = torch.tensor(rng.standard_normal(6))
    rng = np.random.default_rng(1)
    features = torch.tensor(rng.standard_normal((50, 5)))
    labels = torch.tensor((rng.random(50) < 0.5).astype(np.float64))
    rng = np.random.default_rng(2)
    a_m = torch.tensor(rng.standard_normal((20, 4)) @ np.diag([1.0, 2.0, 5.0, 10.0]))
    b_m = torch.tensor(rng.standard_normal((20, 3)))

    def logistic(w):
        z = features @ w
        return torch.mean(torch.logaddexp(torch.zeros(()), z) - labels * z)

    return {
        "quadratic": lambda x: 0.5 * x @ (a @ x) - b @ x,
        "logistic": logistic,
        "rosenbrock": lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2,
        "matrix": lambda w: 0.5 * torch.sum((a_m @ w - b_m) ** 2) / 20.0,
    }


TORCH_FN = _torch_objectives()

TORCH_CLASS = {
    "schedule_free_sgd": "SGDScheduleFree",
    "schedule_free_adamw": "AdamWScheduleFree",
}


def _beta(settings: dict) -> float:
    return settings["momentum"] if "momentum" in settings else settings["betas"][0]


def torch_run(name: str, settings: dict, problem: str, *, sign: float = 1.0, n_steps=N_STEPS):
    """The package's ``(y path, x path, final x by eval(), final z)``, float64.

    ``x`` after each step is the package's ``eval()`` formula (``p.lerp_(z, 1 - 1/beta)``)
    applied to a copy, so that the run itself never goes through ``eval()`` and
    ``train()``, which round; at the end ``optimizer.eval()`` itself gives ``x``.
    """
    fn = TORCH_FN[problem]
    with torch_float64():
        x = torch.tensor(PROBLEMS[problem].x0, requires_grad=True)
        opt = getattr(schedulefree, TORCH_CLASS[name])([x], **settings)
        opt.train()
        beta = _beta(opt.param_groups[0])
        ys, xs = [], []
        for _ in range(n_steps):
            opt.zero_grad()
            (sign * fn(x)).backward()
            opt.step()
            ys.append(x.detach().clone().numpy())
            z = opt.state[x]["z"]
            xs.append(x.detach().clone().lerp_(z, 1 - 1 / beta).numpy())
        z = opt.state[x]["z"].detach().clone().numpy()
        opt.eval()
        final_x = x.detach().clone().numpy()
    return np.array(ys), np.array(xs), final_x, z


def descend_run(opt, problem: str, *, sign: float = 1.0, n_steps=N_STEPS):
    """descend's ``(y path, x path, final z)``, float64, in one ``lax.scan``."""
    objective = PROBLEMS[problem].fn

    def body(carry, _):
        y, state = carry
        grads = jax.grad(lambda p: sign * objective(p))(y)
        y, state = opt.step(y, grads, state)
        return (y, state), (y, ds.optim.eval_point(opt, y, state))

    with jax.enable_x64(True):
        y0 = jnp.asarray(PROBLEMS[problem].x0)
        run = jax.jit(lambda y: jax.lax.scan(body, (y, opt.init(y)), None, length=n_steps))
        (_, state), (ys, xs) = run(y0)
        return np.asarray(ys), np.asarray(xs), np.asarray(state.z)


def assert_matches_package(name: str, settings: dict, problems=ALL, *, maximize=False):
    ours_settings = {**settings, "maximize": True} if maximize else settings
    opt = ds.optim.get(name, **ours_settings)
    sign = -1.0 if maximize else 1.0  # ours ascends -f, the package descends f
    for problem in problems:
        ys, xs, zs = descend_run(opt, problem, sign=sign)
        t_ys, t_xs, t_final_x, t_z = torch_run(name, settings, problem)
        assert np.all(np.isfinite(ys)), problem
        for ours, theirs, what in ((ys, t_ys, "y"), (xs, t_xs, "x"), (zs, t_z, "z")):
            np.testing.assert_allclose(
                ours, theirs, rtol=RTOL, atol=ATOL, err_msg=f"{problem}: {what}"
            )
        np.testing.assert_allclose(xs[-1], t_final_x, rtol=RTOL, atol=ATOL, err_msg=problem)
        assert np.abs(xs[-1] - PROBLEMS[problem].x0).max() > 1e-6, problem


# The package's defaults (lr=1.0 for SGD) take steps too long for the quadratic, the
# Rosenbrock valley and the matrix problem (curvature up to 100): only the logistic
# regression (curvature below 1) converges with them; the non-default settings run all four.
SGD_DEFAULT_PROBLEMS = ("logistic",)
SGD_SETTINGS = {
    "lr": 2e-3,
    "momentum": 0.8,
    "weight_decay": 0.01,
    "warmup_steps": 20,
    "r": 1.0,
    "weight_lr_power": 1.5,
}
ADAMW_SETTINGS = {
    "lr": 0.01,
    "betas": (0.95, 0.99),
    "eps": 1e-6,
    "weight_decay": 0.05,
    "warmup_steps": 20,
    "r": 0.5,
    "weight_lr_power": 3.0,
}


def test_schedule_free_sgd_matches_package_with_defaults():
    assert_matches_package("schedule_free_sgd", {}, SGD_DEFAULT_PROBLEMS)


def test_schedule_free_sgd_matches_package_with_every_setting():
    assert_matches_package("schedule_free_sgd", SGD_SETTINGS)
    assert_matches_package("schedule_free_sgd", SGD_SETTINGS, maximize=True)


def test_schedule_free_adamw_matches_package_with_defaults():
    assert_matches_package("schedule_free_adamw", {})


def test_schedule_free_adamw_matches_package_with_every_setting():
    assert_matches_package("schedule_free_adamw", ADAMW_SETTINGS)
    assert_matches_package("schedule_free_adamw", ADAMW_SETTINGS, maximize=True)


# ------------------------------------------------------------------------------ Optax


def test_schedule_free_sgd_matches_optax_without_warmup():
    assert_matches_optax(
        ds.optim.schedule_free_sgd(), optax.contrib.schedule_free_sgd(), SGD_DEFAULT_PROBLEMS
    )
    settings = {"lr": 2e-3, "momentum": 0.8, "weight_decay": 0.01, "weight_lr_power": 1.5}
    reference = optax.contrib.schedule_free_sgd(
        2e-3, b1=0.8, weight_decay=0.01, weight_lr_power=1.5
    )
    assert_matches_optax(ds.optim.schedule_free_sgd(**settings), reference)
    assert_matches_optax(ds.optim.schedule_free_sgd(**settings, maximize=True), reference)


def test_schedule_free_adamw_matches_optax_without_warmup():
    assert_matches_optax(ds.optim.schedule_free_adamw(), optax.contrib.schedule_free_adamw())
    settings = {"lr": 0.01, "betas": (0.95, 0.99), "eps": 1e-6, "weight_decay": 0.05}
    reference = optax.contrib.schedule_free_adamw(
        0.01, b1=0.95, b2=0.99, eps=1e-6, weight_decay=0.05, weight_lr_power=3.0
    )
    assert_matches_optax(
        ds.optim.schedule_free_adamw(**settings, weight_lr_power=3.0, maximize=True), reference
    )


def _warmup(peak: float, warmup_steps: int, *, shift: int = 0):
    """Optax's ``warmup_constant_schedule(0, peak, warmup_steps)`` at ``count + shift``,
    in float64 (Optax's computes in float32 even with x64 on: a relative 1e-8 in the
    rate, which the trajectories would show; so is an int32 count over an int)."""
    return lambda count: peak * jnp.minimum((count + shift) / jnp.float64(warmup_steps), 1.0)


def test_warmup_differs_from_optax_only_by_the_base_steps_schedule():
    """Optax's ``schedule_free_*`` reads the warmup schedule at ``count`` in its base
    step (SGD, Adam) and at ``count + 1`` in its averaging weights; the package (and
    descend) at ``count + 1`` in both. Optax's own ``schedule_free`` wrapper with the
    base step's schedule shifted by one is descend, step for step; the alias is not."""
    peak, warmup = 2e-3, 20
    ours = ds.optim.schedule_free_sgd(peak, warmup_steps=warmup, weight_decay=0.01)
    shifted = optax.contrib.schedule_free(
        optax.chain(optax.add_decayed_weights(0.01), optax.sgd(_warmup(peak, warmup, shift=1))),
        learning_rate=_warmup(peak, warmup),
    )
    assert_matches_optax(ours, shifted)
    alias = optax.contrib.schedule_free_sgd(peak, warmup_steps=warmup, weight_decay=0.01)
    with pytest.raises(AssertionError):
        assert_matches_optax(ours, alias, ("quadratic",))

    ours = ds.optim.schedule_free_adamw(0.01, warmup_steps=warmup, weight_decay=0.05)
    shifted = optax.contrib.schedule_free(
        optax.chain(
            optax.scale_by_rms(decay=0.999, eps=1e-8, eps_in_sqrt=False, bias_correction=True),
            optax.add_decayed_weights(0.05),
            optax.scale_by_learning_rate(_warmup(0.01, warmup, shift=1)),
        ),
        learning_rate=_warmup(0.01, warmup),
    )
    assert_matches_optax(ours, shifted)


def test_eval_point_equals_optax_eval_params():
    """``eval_point`` is ``optax.contrib.schedule_free_eval_params`` (to rounding)."""
    problem = PROBLEMS["matrix"]
    reference = optax.contrib.schedule_free_adamw(0.01)
    ours = ds.optim.schedule_free_adamw(0.01)
    with jax.enable_x64(True):
        y, state = jnp.asarray(problem.x0), ours.init(jnp.asarray(problem.x0))
        y_ref, state_ref = y, reference.init(y)
        for _ in range(30):
            y, state = ours.step(y, jax.grad(problem.fn)(y), state)
            updates, state_ref = reference.update(jax.grad(problem.fn)(y_ref), state_ref, y_ref)
            y_ref = optax.apply_updates(y_ref, updates)
        x_ref = optax.contrib.schedule_free_eval_params(state_ref, y_ref)
        np.testing.assert_allclose(ds.optim.eval_point(ours, y, state), x_ref, rtol=RTOL)
        back = ds.optim.train_point(ours, ds.optim.eval_point(ours, y, state), state)
        np.testing.assert_allclose(back, y, rtol=1e-14)


# ------------------------------------------------------------- Optax's alias test, jit


@pytest.mark.parametrize("name", ["schedule_free_sgd", "schedule_free_adamw"])
def test_reaches_the_minima_in_float32(name):
    # Optax's contrib test of these two: learning_rate=1e-2, warmup_steps=5000, 30,000
    # steps, the evaluation point compared with the minimizer.
    opt = ds.optim.get(name, lr=1e-2, warmup_steps=5000)
    assert_reaches_minima(_evaluated(opt), n_steps=30_000)


def _evaluated(opt):
    """``opt`` whose params are its evaluation point (for Optax's alias test, which
    reads the params): steps taken from the training point kept in the state."""

    def init(params):
        return (params, opt.init(params))

    def step(params, grads_at_x, state, *, value=None, value_fn=None):
        y, inner = state
        grads = jax.grad(value_fn)(y)
        y, inner = opt.step(y, grads, inner)
        return ds.optim.eval_point(opt, y, inner), (y, inner)

    return ds.optim.Optimizer(opt.name + "_at_x", init, step, needs_value_fn=True)


@pytest.mark.parametrize("name", ["schedule_free_sgd", "schedule_free_adamw"])
def test_second_call_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name, lr=1e-2))


@pytest.mark.parametrize(
    "bad",
    [
        {"momentum": 0.0},
        {"momentum": 1.0},
        {"lr": -1.0},
        {"warmup_steps": -1},
        {"r": -1.0},
        {"weight_lr_power": -2.0},
        {"weight_decay": -0.1},
    ],
)
def test_schedule_free_sgd_refuses_bad_hyperparameters(bad):
    with pytest.raises(ds.errors.InputError, match=next(iter(bad))):
        ds.optim.schedule_free_sgd(**bad)


def test_schedule_free_adamw_refuses_a_zero_beta1():
    with pytest.raises(ds.errors.InputError, match=r"betas\[0\]"):
        ds.optim.schedule_free_adamw(betas=(0.0, 0.999))


# --------------------------------------------------------------- the two front doors


@pytest.mark.parametrize("name", ["schedule_free_sgd", "schedule_free_adamw"])
def test_minimize_and_fit_run_and_lower_the_loss(name):
    result = ds.minimize("rosenbrock", optimizer=ds.optim.get(name, lr=1e-3), max_iter=2000)
    assert np.all(np.isfinite(result.x)) and result.fun < 24.2  # f(x0) = 24.2
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)
    fitted = ds.fit("logistic", X, y, optimizer=name, lr=0.05, epochs=10, verbose=0)
    losses = fitted.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.all(np.isfinite(fitted.params["w"]))
