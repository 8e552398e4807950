"""Parameter-free optimizers against their references, run live.

cocob, dog, dowg, mechanize and dadapt_adamw against ``optax.contrib``; prodigy against
``optax.contrib.prodigy`` (``use_bias_correction=True``) and against the authors'
``prodigyopt.Prodigy`` (PyTorch, its own defaults). All of them couple the leaves of the
params (distances from the start, global norms and inner products), so besides the four
problems of :mod:`optax_oracle` each is compared on a dict of two leaves.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, InputError
from optax_oracle import (
    ALL,
    N_STEPS,
    PROBLEMS,
    assert_matches,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
    optax_trajectory,
)

optax = pytest.importorskip("optax")
contrib = optax.contrib


def decaying(count):
    """A schedule both libraries take, to exercise ``lr`` as a function of the step."""
    return 0.5 * 0.99**count


# name -> (ours, Optax's, problems). Each algorithm: defaults, then every option set.
OPTAX_CASES = {
    "cocob": (ds.optim.cocob, contrib.cocob, ALL),
    "cocob-options": (
        lambda: ds.optim.cocob(decaying, alpha=50.0, eps=1e-6, weight_decay=1e-2, maximize=True),
        lambda: contrib.cocob(decaying, alpha=50.0, eps=1e-6, weight_decay=1e-2),
        ALL,
    ),
    "dog": (ds.optim.dog, contrib.dog, ALL),
    "dog-learning-rate": (
        lambda: ds.optim.dog(
            decaying, init_step=("learning_rate", 0.01), eps=1e-6, weight_decay=1e-2, maximize=True
        ),
        lambda: contrib.dog(decaying, ("learning_rate", 0.01), eps=1e-6, weight_decay=1e-2),
        ALL,
    ),
    "dog-distance": (
        lambda: ds.optim.dog(0.5, init_step=("distance", 0.1)),
        lambda: contrib.dog(0.5, ("distance", 0.1)),
        ALL,
    ),
    "dowg": (ds.optim.dowg, contrib.dowg, ALL),
    "dowg-options": (
        lambda: ds.optim.dowg(
            decaying, init_estim_sq_dist=0.01, eps=1e-6, weight_decay=1e-2, maximize=True
        ),
        lambda: contrib.dowg(decaying, 0.01, eps=1e-6, weight_decay=1e-2),
        ALL,
    ),
    "dadapt_adamw": (ds.optim.dadapt_adamw, contrib.dadapt_adamw, ALL),
    "dadapt_adamw-options": (
        lambda: ds.optim.dadapt_adamw(
            decaying, betas=(0.8, 0.99), eps=1e-6, d0=1e-4, weight_decay=1e-2, maximize=True
        ),
        lambda: contrib.dadapt_adamw(decaying, (0.8, 0.99), 1e-6, 1e-4, 1e-2),
        ALL,
    ),
}


@pytest.mark.parametrize("case", sorted(OPTAX_CASES))
def test_matches_optax_contrib(case):
    ours, theirs, problems = OPTAX_CASES[case]
    assert_matches_optax(ours(), theirs(), problems)


# Prodigy's estimate d multiplies every step, and a max of ratios feeds it: late in a run
# a rounding difference is amplified ~1e5-fold. Measured on Optax's own trajectory with
# x0 perturbed by 1e-15 (relative): 2e-10 at step 200 on Rosenbrock (defaults) and 6e-11
# on the logistic problem (options below), while the two orders of operations (ours is
# prodigyopt's, Optax rounds e.g. beta1 m + (1 - beta1)(d g) for m beta1 + d(1 - beta1) g)
# agree to 1e-15 up to step 100 and drift to 4e-11 by step 150. So Optax's trajectory is
# compared over the first 120 steps, before the amplification.
PRODIGY_HORIZON = 120
PRODIGY_OPTAX = {
    "defaults": ({"use_bias_correction": True}, {}),
    "options": (
        {"betas": (0.8, 0.99), "beta3": 0.95, "eps": 1e-6, "d0": 1e-4, "d_coef": 0.5,
         "weight_decay": 1e-2, "safeguard_warmup": True, "use_bias_correction": True,
         "maximize": True},
        {"betas": (0.8, 0.99), "beta3": 0.95, "eps": 1e-6, "estim_lr0": 1e-4,
         "estim_lr_coef": 0.5, "weight_decay": 1e-2, "safeguard_warmup": True},
    ),
}  # fmt: skip


def _optax_reference(transform, n_steps):
    return lambda problem, sign: optax_trajectory(transform, problem, n_steps=n_steps)


@pytest.mark.parametrize("case", sorted(PRODIGY_OPTAX))
def test_prodigy_with_bias_correction_matches_optax(case):
    ours, theirs = PRODIGY_OPTAX[case]
    for lr in (1.0, decaying):
        opt = ds.optim.prodigy(lr, **ours)
        sign = -1.0 if opt.hyperparams["maximize"] else 1.0
        reference = _optax_reference(contrib.prodigy(lr, **theirs), PRODIGY_HORIZON)
        assert_matches(opt, reference, ALL, n_steps=PRODIGY_HORIZON, sign=sign)


# Mechanic is chaotic on these problems: Optax's own trajectory from x0 perturbed by
# 1e-15 (relative) departs by 2e-9 at step 100 and 1e-5 to 5e-3 at step 200 (adam, sgd
# inside), and ours differs from Optax's by the rounding of the wrapped step (recovered
# as new params minus params). Both agree to 1e-14 for the first 50 steps, compared
# here; test_mechanize_amplifies_rounding_in_optax_too measures the growth live.
MECHANIC_HORIZON = 50
MECHANIC_CASES = {
    "defaults": (lambda: ds.optim.mechanize(), lambda: contrib.mechanize(optax.adam(1.0))),
    "sgd": (
        lambda: ds.optim.mechanize(ds.optim.sgd(lr=0.1)),
        lambda: contrib.mechanize(optax.sgd(0.1)),
    ),
    "options": (
        lambda: ds.optim.mechanize(
            ds.optim.lion(lr=0.1), weight_decay=0.1, eps=1e-6, s_init=1e-4, num_betas=3,
            maximize=True,
        ),
        lambda: contrib.mechanize(optax.lion(0.1), 0.1, 1e-6, 1e-4, 3),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MECHANIC_CASES))
def test_mechanize_matches_optax(case):
    ours, theirs = MECHANIC_CASES[case]
    opt = ours()
    sign = -1.0 if opt.hyperparams["maximize"] else 1.0
    reference = _optax_reference(theirs(), MECHANIC_HORIZON)
    assert_matches(opt, reference, ALL, n_steps=MECHANIC_HORIZON, sign=sign)


def test_mechanize_amplifies_rounding_in_optax_too():
    """The reason for MECHANIC_HORIZON: a 1e-15 change grows past the tolerance by 200."""
    problem = PROBLEMS["matrix"]
    nudged = dataclasses.replace(problem, x0=problem.x0 * (1 + 1e-15))
    transform = contrib.mechanize(optax.sgd(0.1))
    here, there = optax_trajectory(transform, problem), optax_trajectory(transform, nudged)
    growth = np.abs(here - there).reshape(N_STEPS, -1).max(axis=1)
    assert growth[MECHANIC_HORIZON - 1] < 1e-13
    assert growth[-1] > 1e-6


# ------------------------------------------------------------- a dict of leaves


def _regression_data():
    rng = np.random.default_rng(5)
    return rng.standard_normal((20, 4)), rng.standard_normal((20, 3)), rng.standard_normal(3)


def _two_leaf_loss(params, sign=1.0):
    a, b, _ = _regression_data()
    residual = jnp.asarray(a) @ params["w"] + params["b"] - jnp.asarray(b)
    return sign * 0.5 * jnp.sum(residual**2) / 20.0


def _two_leaf_start():
    rng = np.random.default_rng(6)
    return {"b": rng.standard_normal(3), "w": rng.standard_normal((4, 3))}


def _tree_path(step, init, n_steps=N_STEPS, sign=1.0):
    """The params (flattened, keys sorted) after each step, float64, under one scan."""
    grad = jax.grad(lambda p: _two_leaf_loss(p, sign))

    def body(carry, _):
        params, state = carry
        params, state = step(params, grad(params), state)
        return (params, state), jnp.concatenate([params["b"], params["w"].ravel()])

    with jax.enable_x64(True):
        start = jax.tree.map(jnp.asarray, _two_leaf_start())
        run = jax.jit(lambda p: jax.lax.scan(body, (p, init(p)), None, length=n_steps)[1])
        return np.asarray(run(start))


def _ours_on_tree(opt, n_steps=N_STEPS):
    sign = -1.0 if opt.hyperparams.get("maximize") else 1.0
    return _tree_path(lambda p, g, s: opt.step(p, g, s), opt.init, n_steps, sign)


def _optax_on_tree(transform, n_steps=N_STEPS):
    def step(params, grads, state):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return _tree_path(step, transform.init, n_steps)


MASK = {"b": False, "w": True}
TREE_CASES = {
    "cocob": (
        lambda: ds.optim.cocob(weight_decay=0.1, weight_decay_mask=MASK, maximize=True),
        lambda: contrib.cocob(weight_decay=0.1, mask=MASK),
        N_STEPS,
    ),
    "dog": (
        lambda: ds.optim.dog(weight_decay=0.1, weight_decay_mask=MASK),
        lambda: contrib.dog(weight_decay=0.1, mask=MASK),
        N_STEPS,
    ),
    "dowg": (
        lambda: ds.optim.dowg(weight_decay=0.1, weight_decay_mask=MASK, maximize=True),
        lambda: contrib.dowg(weight_decay=0.1, mask=MASK),
        N_STEPS,
    ),
    "dadapt_adamw": (
        lambda: ds.optim.dadapt_adamw(weight_decay=0.1),
        lambda: contrib.dadapt_adamw(weight_decay=0.1),
        N_STEPS,
    ),
    "prodigy": (
        lambda: ds.optim.prodigy(weight_decay=0.1, use_bias_correction=True),
        lambda: contrib.prodigy(weight_decay=0.1),
        PRODIGY_HORIZON,
    ),
    "mechanize": (
        lambda: ds.optim.mechanize(ds.optim.sgd(lr=0.1)),
        lambda: contrib.mechanize(optax.sgd(0.1)),
        MECHANIC_HORIZON,
    ),
}


@pytest.mark.parametrize("name", sorted(TREE_CASES))
def test_a_dict_of_leaves_is_one_problem_as_in_optax(name):
    ours, theirs, n_steps = TREE_CASES[name]
    path = _ours_on_tree(ours(), n_steps)
    np.testing.assert_allclose(path, _optax_on_tree(theirs(), n_steps), rtol=1e-9, atol=1e-12)
    assert np.abs(path[-1] - path[0]).max() > 1e-3


# ------------------------------------------------------------ prodigyopt (PyTorch)


def _torch_objectives():
    """The four problems of optax_oracle written in torch, from the same seeds."""
    import torch

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = torch.tensor(q @ np.diag(np.logspace(0.0, 2.0, 6)) @ q.T)
    b = torch.tensor(rng.standard_normal(6))
    rng = np.random.default_rng(1)
    features = torch.tensor(rng.standard_normal((50, 5)))
    labels = torch.tensor((rng.random(50) < 0.5).astype(np.float64))
    rng = np.random.default_rng(2)
    left = torch.tensor(rng.standard_normal((20, 4)) @ np.diag([1.0, 2.0, 5.0, 10.0]))
    right = torch.tensor(rng.standard_normal((20, 3)))

    def logistic(w):
        z = features @ w
        return torch.mean(torch.logaddexp(torch.zeros_like(z), z) - labels * z)

    return {
        "quadratic": lambda x: 0.5 * x @ (a @ x) - b @ x,
        "logistic": logistic,
        "rosenbrock": lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2,
        "matrix": lambda w: 0.5 * torch.sum((left @ w - right) ** 2) / 20.0,
    }


def _prodigyopt_path(objective, starts, n_steps, groups=None, **settings):
    """prodigyopt.Prodigy's params after each step (flattened, in the order given)."""
    import torch
    from prodigyopt import Prodigy

    from trajectories import torch_float64

    with torch_float64():
        params = [torch.tensor(x, requires_grad=True) for x in starts]
        given = params if groups is None else [{**g, "params": [params[g["params"]]]}
                                               for g in groups]  # fmt: skip
        opt = Prodigy(given, **settings)
        path = []
        for _ in range(n_steps):
            opt.zero_grad()
            objective(*params).backward()
            opt.step()
            path.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    return np.array(path)


# Against prodigyopt the gradients differ too (torch's autograd against JAX's), by a
# rounding: the same amplification as against Optax, so the same horizon.
PRODIGYOPT_CASES = {
    "defaults": ({}, {}),
    "options": (
        {"betas": (0.8, 0.99), "beta3": 0.95, "eps": 1e-6, "weight_decay": 1e-2,
         "use_bias_correction": True, "safeguard_warmup": True, "d0": 1e-4, "d_coef": 2.0,
         "growth_rate": 1.05, "slice_p": 2, "maximize": True},
        {"betas": (0.8, 0.99), "beta3": 0.95, "eps": 1e-6, "weight_decay": 1e-2,
         "use_bias_correction": True, "safeguard_warmup": True, "d0": 1e-4, "d_coef": 2.0,
         "growth_rate": 1.05, "slice_p": 2},
    ),
    "coupled-decay-no-momentum": (
        {"betas": (0.0, 0.999), "weight_decay": 0.1, "decouple": False},
        {"betas": (0.0, 0.999), "weight_decay": 0.1, "decouple": False},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PRODIGYOPT_CASES))
def test_prodigy_matches_prodigyopt(case):
    pytest.importorskip("prodigyopt")
    ours, theirs = PRODIGYOPT_CASES[case]
    objectives = _torch_objectives()
    opt = ds.optim.prodigy(**ours)

    def reference(problem, sign):
        path = _prodigyopt_path(objectives[problem.name], [problem.x0], PRODIGY_HORIZON, **theirs)
        return path.reshape(PRODIGY_HORIZON, *problem.x0.shape)

    sign = -1.0 if opt.hyperparams["maximize"] else 1.0
    assert_matches(opt, reference, ALL, n_steps=PRODIGY_HORIZON, sign=sign)


def test_prodigy_on_a_dict_with_a_mask_matches_prodigyopts_parameter_groups():
    """weight_decay_mask is a torch parameter group with weight_decay=0."""
    pytest.importorskip("prodigyopt")
    import torch

    a, b, _ = (torch.tensor(x) for x in _regression_data())

    def objective(bias, w):
        return 0.5 * torch.sum((a @ w + bias - b) ** 2) / 20.0

    start = _two_leaf_start()
    groups = [{"params": 0, "weight_decay": 0.0}, {"params": 1, "weight_decay": 0.1}]
    theirs = _prodigyopt_path(objective, [start["b"], start["w"]], PRODIGY_HORIZON, groups)
    opt = ds.optim.prodigy(weight_decay=0.1, weight_decay_mask=MASK)
    np.testing.assert_allclose(_ours_on_tree(opt, PRODIGY_HORIZON), theirs, rtol=1e-9, atol=1e-12)


def test_prodigy_skips_steps_while_every_gradient_is_zero_as_prodigyopt():
    """Optax's estimate would be 0 / 0 there, and the run NaN."""
    opt = ds.optim.prodigy()
    params = {"x": jnp.array([1.0, -2.0])}
    state = opt.init(params)
    same, state = opt.step(params, {"x": jnp.zeros(2)}, state)
    np.testing.assert_array_equal(same["x"], params["x"])
    assert int(state.count) == 0 and float(state.d) == pytest.approx(1e-6)
    moved, state = opt.step(same, {"x": jnp.array([1.0, 1.0])}, state)
    assert np.all(np.isfinite(moved["x"])) and int(state.count) == 1


# ------------------------------------------------- Optax's own tests, and the engine

# The settings of optax.contrib's _common_test (30 000 steps there too).
MINIMA = {
    "cocob": {},
    "cocob-decay": {"weight_decay": 1e-2},
    "dadapt_adamw": {"lr": 0.1},
    "dog": {"lr": 1.0},
    "dowg": {"lr": 1.0},
    "prodigy": {"lr": 0.1},
    "prodigy-bias-corrected": {"lr": 0.1, "use_bias_correction": True},
}


@pytest.mark.parametrize("case", [*sorted(MINIMA), "mechanize"])
def test_reaches_the_parabola_and_rosenbrock_minima_in_float32(case):
    if case == "mechanize":
        opt = ds.optim.mechanize(ds.optim.sgd(lr=0.1), weight_decay=0.0)
    else:
        opt = ds.optim.get(case.split("-")[0], **MINIMA[case])
    assert_reaches_minima(opt, n_steps=30_000)


NAMES = ["cocob", "dadapt_adamw", "dog", "dowg", "mechanize", "prodigy"]


@pytest.mark.parametrize("name", NAMES)
def test_second_call_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name))


def _bowl(x):
    return jnp.sum((x - jnp.array([1.0, -2.0, 0.5])) ** 2 * jnp.array([1.0, 3.0, 10.0]))


@pytest.mark.parametrize("name", NAMES)
def test_minimize_and_fit_run_and_lower_the_loss(name):
    x0 = jnp.zeros(3)
    result = ds.minimize(_bowl, x0, optimizer=name, max_iter=300)
    assert np.all(np.isfinite(result.x)) and result.fun < _bowl(x0)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 3))
    y = (X @ np.array([1.0, -1.0, 0.5]) > 0).astype(float)
    fitted = ds.fit("logistic", X, y, optimizer=name, epochs=20, batch_size=16, verbose=0, seed=0)
    losses = fitted.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# ----------------------------------------- generic properties (leaves are coupled)

COUPLED = {
    "cocob": {"weight_decay": 0.1},
    "dadapt_adamw": {"weight_decay": 0.1},
    "dog": {"weight_decay": 0.1},
    "dowg": {"weight_decay": 0.1},
    "mechanize": {},
    "prodigy": {"weight_decay": 0.1, "use_bias_correction": True, "slice_p": 2},
}


def _leaves():
    rng = np.random.default_rng(0)
    return {
        "weights": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
        "bias": jnp.asarray(rng.standard_normal(2), jnp.float32),
        "scale": jnp.asarray(rng.standard_normal(()), jnp.float32),
    }


def _grads(params):
    return jax.grad(lambda p: sum(jnp.sum(jnp.sin(x) + x**2) for x in jax.tree.leaves(p)))(params)


def _run(opt, grads=_grads, n_steps=4):
    params = _leaves()
    state = opt.init(params)
    step = jax.jit(opt.step)
    for _ in range(n_steps):
        params, state = step(params, grads(params), state)
    return params, state


@pytest.mark.parametrize("enable_x64", [False, True], ids=["x32", "x64"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_params_and_state_stay_float32(name, enable_x64):
    with jax.enable_x64(enable_x64):
        params, state = _run(ds.optim.get(name, **COUPLED[name]))
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == jnp.float32
    for leaf in jax.tree.leaves(state):
        assert leaf.dtype in (jnp.float32, jnp.int32), (name, leaf.dtype)
    for moved, start in zip(jax.tree.leaves(params), jax.tree.leaves(_leaves()), strict=True):
        assert not np.array_equal(moved, start)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_with_negated_gradient_is_the_minimizing_step(name):
    down, _ = _run(ds.optim.get(name, **COUPLED[name]))
    up, _ = _run(
        ds.optim.get(name, **COUPLED[name], maximize=True),
        grads=lambda p: jax.tree.map(jnp.negative, _grads(p)),
    )
    for a, b in zip(jax.tree.leaves(down), jax.tree.leaves(up), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_mechanize_refuses_a_maximizing_or_missing_optimizer():
    with pytest.raises(InputError, match="maximize=True to mechanize"):
        ds.optim.mechanize(ds.optim.sgd(lr=0.1, maximize=True))
    with pytest.raises(DescendTypeError, match="mechanize wraps an optimizer"):
        ds.optim.mechanize("sgd")


def test_a_mechanized_fit_is_saved_and_rebuilt_around_its_optimizer(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 2))
    opt = ds.optim.mechanize(ds.optim.sgd(lr=0.5), num_betas=4)
    result = ds.fit("linear", X, X[:, 0], optimizer=opt, epochs=2, verbose=0)
    path = tmp_path / "run.ckpt"
    ds.save(path, result)
    loaded = ds.load(path)
    assert loaded.optimizer == opt
    jax.tree.map(np.testing.assert_array_equal, loaded.opt_state, result.opt_state)


INVALID = [
    ("cocob", {"alpha": 0.0}, "alpha"),
    ("cocob", {"eps": -1.0}, "eps"),
    ("dog", {"init_step": ("guess", 1e-6)}, "init_step"),
    ("dog", {"init_step": ("distance", 0.0)}, "init_step"),
    ("dog", {"init_step": 1e-6}, "init_step"),
    ("dowg", {"init_estim_sq_dist": -1.0}, "init_estim_sq_dist"),
    ("dowg", {"eps": 0.0}, "eps"),
    ("dadapt_adamw", {"d0": 0.0}, "d0"),
    ("dadapt_adamw", {"betas": (0.9, 1.0)}, "betas"),
    ("prodigy", {"beta3": 1.0}, "beta3"),
    ("prodigy", {"d_coef": -1.0}, "d_coef"),
    ("prodigy", {"growth_rate": 0.5}, "growth_rate"),
    ("prodigy", {"slice_p": 0}, "slice_p"),
    ("prodigy", {"use_bias_correction": 1}, "use_bias_correction"),
    ("mechanize", {"num_betas": 0}, "num_betas"),
    ("mechanize", {"s_init": math.inf}, "s_init"),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "param"), INVALID, ids=[f"{n}-{p}" for n, _, p in INVALID]
)
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError, match=param):
        ds.optim.get(name, **hyperparams)


# Our names for Optax's (and prodigyopt's d0, d_coef for Optax's estim_lr0, estim_lr_coef).
OPTAX_NAMES = {"lr": "learning_rate", "weight_decay_mask": "mask", "d0": "estim_lr0"}
# Where a default differs on purpose: Optax's None (no decay) is weight_decay=0 here.
OWN_DEFAULTS = {("dog", "weight_decay"), ("dowg", "weight_decay"), ("mechanize", "optimizer")}


@pytest.mark.parametrize("name", ["cocob", "dadapt_adamw", "dog", "dowg", "mechanize"])
def test_defaults_are_optax_contribs(name):
    reference = inspect.signature(getattr(contrib, name)).parameters
    ours = inspect.signature(getattr(ds.optim, name)).parameters
    for key, parameter in ours.items():
        if key == "maximize" or (name, key) in OWN_DEFAULTS:
            continue
        theirs = reference[{"optimizer": "base_optimizer"}.get(key, OPTAX_NAMES.get(key, key))]
        assert parameter.default == theirs.default, (key, parameter.default, theirs.default)


def test_prodigy_defaults_are_prodigyopts():
    prodigyopt = pytest.importorskip("prodigyopt")
    reference = inspect.signature(prodigyopt.Prodigy).parameters
    ours = inspect.signature(ds.optim.prodigy).parameters
    assert set(reference) - set(ours) == {"params", "fsdp_in_use"}
    for key, parameter in ours.items():
        if key not in ("maximize", "weight_decay_mask"):
            assert parameter.default == reference[key].default, key
