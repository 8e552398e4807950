"""Optimizer trajectories against their references, run live.

Each case runs ``torch.optim`` (or Optax, for Lion and AdaBelief) and descend side by
side for 200 steps in float64 on three small problems, and asserts the whole
parameter trajectory (and the optimizer state that both keep) agrees to rtol 1e-9.

The torch runs set torch's default dtype to float64: torch keeps its scalar state
(the step count, ASGD's ``eta`` and ``mu``, NAdam's ``mu_product``) in the default
dtype, so under float32 its float64 trajectories carry float32 rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from torch_names import TORCH_CLASSES
from trajectories import torch_float64

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")

N_STEPS = 200
RTOL = 1e-9
ATOL = 1e-12


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    x0: np.ndarray
    jax_fn: Callable[[jax.Array], jax.Array]
    torch_fn: Callable[[Any], Any]


def _quadratic() -> Problem:
    """0.5 x'Ax - b'x with A of condition number 100 in 6 dimensions."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = q @ np.diag(np.logspace(0.0, 2.0, 6)) @ q.T
    b = rng.standard_normal(6)
    a_t, b_t = torch.tensor(a), torch.tensor(b)
    return Problem(
        x0=rng.standard_normal(6),
        jax_fn=lambda x: 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x,
        torch_fn=lambda x: 0.5 * x @ (a_t @ x) - b_t @ x,
    )


def _logistic() -> Problem:
    """Mean logistic loss of a linear model on 50 random samples with 5 features."""
    rng = np.random.default_rng(1)
    features = rng.standard_normal((50, 5))
    labels = (rng.random(50) < 0.5).astype(np.float64)
    x_t, y_t = torch.tensor(features), torch.tensor(labels)

    def jax_fn(w):
        z = jnp.asarray(features) @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(labels) * z)

    def torch_fn(w):
        z = x_t @ w
        return torch.mean(torch.logaddexp(torch.zeros_like(z), z) - y_t * z)

    return Problem(x0=0.5 * rng.standard_normal(5), jax_fn=jax_fn, torch_fn=torch_fn)


def _rosenbrock() -> Problem:
    return Problem(
        x0=np.array([-1.2, 1.0]),
        jax_fn=lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2,
        torch_fn=lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2,
    )


PROBLEMS = {"quadratic": _quadratic(), "logistic": _logistic(), "rosenbrock": _rosenbrock()}
ALL = tuple(PROBLEMS)
SMOOTH = ("quadratic", "logistic")  # for step sizes too large for Rosenbrock's valley


# ------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    hyperparams: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ALL


def _optax_lion(hp):
    b1, b2 = hp["betas"]
    return optax.lion(hp["lr"], b1=b1, b2=b2, weight_decay=hp["weight_decay"])


def _optax_adabelief(hp):
    b1, b2 = hp["betas"]
    return optax.adabelief(
        hp["lr"], b1=b1, b2=b2, eps=hp["eps"], eps_root=hp["eps_root"], nesterov=hp["nesterov"]
    )


OPTAX_FACTORIES = {"lion": _optax_lion, "adabelief": _optax_adabelief}

# Step sizes are chosen so that no run becomes chaotic: Adam-like methods near a
# minimum with a short second-moment memory (beta2 <= 0.9) or a large lr can amplify
# one-ulp differences (torch and XLA round some fused operations differently)
# exponentially, which would test the floating point, not the formulas.
CASES = [
    Case("gd", {"lr": 1e-3}),
    Case("sgd"),
    Case("sgd", {"lr": 1e-3, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    Case("sgd", {"lr": 1e-3, "momentum": 0.8, "nesterov": True, "maximize": True}),
    Case("momentum", {}, SMOOTH),
    Case("momentum", {"lr": 2e-4, "nesterov": True}),
    Case("adagrad"),
    Case(
        "adagrad",
        {
            "lr": 0.05,
            "lr_decay": 0.01,
            "weight_decay": 0.05,
            "initial_accumulator_value": 0.3,
            "eps": 1e-6,
            "maximize": True,
        },
    ),
    Case("rmsprop", {}, SMOOTH),
    Case("rmsprop", {"lr": 1e-3, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    Case("rmsprop", {"lr": 3e-4, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "maximize": True}),
    Case("adadelta"),
    Case("adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
    Case("adam"),
    Case("adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1}),
    Case(
        "adam",
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    ),
    # beta1 < 0.5 takes torch.lerp's other rounding branch
    Case("adam", {"lr": 1e-2, "betas": (0.3, 0.9), "eps": 1e-6, "amsgrad": True}),
    Case("adamw"),
    Case("adamw", {"lr": 1e-2, "weight_decay": 0.2, "amsgrad": True, "maximize": True}),
    Case("adamax"),
    Case("adamax", {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}),
    Case("nadam"),
    Case("nadam", {"lr": 1e-2, "weight_decay": 0.1, "momentum_decay": 0.01}),
    Case(
        "nadam",
        {"lr": 3e-3, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    ),
    Case("radam"),
    Case("radam", {"lr": 1e-2, "betas": (0.9, 0.95), "weight_decay": 0.1}),
    Case(
        "radam",
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    ),
    Case("rprop"),
    Case("rprop", {"lr": 1e-3, "etas": (0.3, 1.5), "step_sizes": (1e-5, 0.5), "maximize": True}),
    Case("asgd", {}, SMOOTH),
    Case(
        "asgd",
        {
            "lr": 1e-3,
            "lambd": 1e-2,
            "alpha": 0.5,
            "t0": 50.0,
            "weight_decay": 0.1,
            "maximize": True,
        },
    ),
    Case("lion"),
    Case("lion", {"lr": 1e-3, "betas": (0.8, 0.95), "weight_decay": 0.0, "maximize": True}),
    Case("adabelief"),
    Case("adabelief", {"lr": 1e-2, "eps": 1e-8, "eps_root": 0.0, "nesterov": True}),
    Case("adabelief", {"lr": 1e-2, "betas": (0.8, 0.995), "maximize": True}),
]


def _case_id(case: Case) -> str:
    settings = "-".join(f"{key}={value}" for key, value in case.hyperparams.items())
    return f"{case.name}[{settings or 'defaults'}]"


PARAMS = [
    pytest.param(case, problem, id=f"{_case_id(case)}-{problem}")
    for case in CASES
    for problem in case.problems
]


# ------------------------------------------------------------------------------ runners


def _objective_sign(hyperparams: dict) -> float:
    # Maximizing a bounded-below problem diverges, so maximize cases ascend -f.
    return -1.0 if hyperparams.get("maximize", False) else 1.0


def run_torch(opt: ds.optim.Optimizer, problem: Problem, sign: float, scheduler=None):
    """Trajectory (steps x dims) and final state of the torch optimizer with the same
    name and hyperparameters (passed through unchanged: the names are torch's)."""
    cls = getattr(torch.optim, TORCH_CLASSES[opt.name])
    with torch_float64():
        x = torch.tensor(problem.x0, requires_grad=True)
        reference = cls([x], **opt.hyperparams, foreach=False)
        schedule = scheduler(reference) if scheduler else None
        trajectory = np.empty((N_STEPS, x.numel()))
        for i in range(N_STEPS):
            reference.zero_grad()
            (sign * problem.torch_fn(x)).backward()
            reference.step()
            if schedule is not None:
                schedule.step()
            trajectory[i] = x.detach().numpy()
        state = {key: np.asarray(value) for key, value in reference.state[x].items()}
    return trajectory, state


@functools.cache
def _gradient(problem_names: tuple[str, ...], sign: float):
    """The jitted gradient of ``sign * sum of the problems``, params a dict by problem."""

    def objective(params):
        return sign * sum(PROBLEMS[name].jax_fn(params[name]) for name in problem_names)

    return jax.jit(jax.grad(objective))


def _iterate(step, init_state, problem_names: tuple[str, ...], sign: float):
    """Run ``step(params, grads, state)`` from the problems' starting points.

    The problems' parameters are the leaves of one dict, so one compilation serves
    them all; every algorithm here updates each leaf on its own, so this is the same
    as running them one by one. Returns the trajectories by problem and the state.
    """
    grad = _gradient(problem_names, sign)
    params = {name: jnp.asarray(PROBLEMS[name].x0) for name in problem_names}
    state = init_state(params)
    trajectory = []
    for _ in range(N_STEPS):
        params, state = step(params, grad(params), state)
        trajectory.append(params)
    stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trajectory)
    return stacked, jax.tree.map(np.asarray, state)


def run_descend(opt: ds.optim.Optimizer, problem_names: tuple[str, ...], sign: float):
    with jax.enable_x64(True):
        return _iterate(jax.jit(opt.step), opt.init, problem_names, sign)


def run_optax(opt: ds.optim.Optimizer, problem_names: tuple[str, ...], sign: float):
    transform = OPTAX_FACTORIES[opt.name](opt.hyperparams)
    # Optax has no maximize: it descends the negated objective instead.
    direction = -sign if opt.hyperparams["maximize"] else sign

    @jax.jit
    def step(params, grads, state):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    with jax.enable_x64(True):
        return _iterate(step, transform.init, problem_names, direction)[0]


_RUNS: dict[tuple[str, str], Any] = {}


def cached_run(runner, case: Case):
    """``runner``'s result for this case, computed once for all the case's problems."""
    key = (runner.__name__, _case_id(case))
    if key not in _RUNS:
        opt = ds.optim.get(case.name, **case.hyperparams)
        _RUNS[key] = runner(opt, case.problems, _objective_sign(opt.hyperparams))
    return _RUNS[key]


def _select(tree, problem_name: str):
    """The part of a dict-by-problem pytree (trajectories or state) for one problem."""
    return jax.tree.map(
        lambda x: x[problem_name] if isinstance(x, dict) else x,
        tree,
        is_leaf=lambda x: isinstance(x, dict),
    )


def _assert_states_match(ours, theirs: dict) -> None:
    """Every state entry torch keeps under the same name agrees (``count`` is ``step``)."""
    for name, value in ours._asdict().items():
        key = "step" if name == "count" else name
        if value is None or key not in theirs:
            continue
        expected = theirs[key]
        actual = value + 0.0 if name == "count" else value
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=name)


# -------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("case", "problem_name"), PARAMS)
def test_trajectory_matches_reference(case: Case, problem_name: str):
    problem = PROBLEMS[problem_name]
    opt = ds.optim.get(case.name, **case.hyperparams)
    sign = _objective_sign(opt.hyperparams)
    ours, our_state = _select(cached_run(run_descend, case), problem_name)
    assert np.all(np.isfinite(ours))
    if case.name in OPTAX_FACTORIES:
        expected = _select(cached_run(run_optax, case), problem_name)
    else:
        expected, their_state = run_torch(opt, problem, sign)
        _assert_states_match(our_state, their_state)
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)
    assert np.abs(ours[-1] - problem.x0).max() > 1e-6  # the run really moved


SCHEDULED = [
    Case("sgd", {"lr": 1e-3, "momentum": 0.9}),
    Case("adagrad", {"lr": 0.05, "lr_decay": 0.01}),
    Case("adam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    Case("nadam", {"lr": 1e-2}),
    Case("asgd", {"lr": 5e-3, "lambd": 1e-2, "t0": 20.0}),
]


@pytest.mark.parametrize("case", SCHEDULED, ids=_case_id)
def test_schedule_matches_torch_lambda_lr(case: Case):
    """``lr=f(count)`` matches torch with a LambdaLR stepped after every update."""
    base = case.hyperparams["lr"]

    def factor(count):
        return 1.0 / (1.0 + 0.05 * count)

    problem = PROBLEMS["quadratic"]
    opt = ds.optim.get(case.name, **{**case.hyperparams, "lr": lambda c: base * factor(c)})
    ours = run_descend(opt, ("quadratic",), 1.0)[0]["quadratic"]
    reference = ds.optim.get(case.name, **case.hyperparams)
    expected, _ = run_torch(
        reference, problem, 1.0, lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor)
    )
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)
