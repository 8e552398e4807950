"""Sign, noisy and optimistic SGD, and Optax's Muon, against Optax, run live.

Each of ``sign_sgd``, ``signum``, ``noisy_sgd``, ``optimistic_gradient_descent``,
``optimistic_adam`` and ``muon_optax`` follows its Optax alias for 200 float64 steps
on the four problems of ``optax_oracle`` (rtol 1e-9; measured: at most 5.3e-16 apart),
with default and non-default hyperparameters. ``noisy_sgd`` draws the noise Optax
draws from the same seed, so the comparison is with the same noise.
"""

from __future__ import annotations

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, InputError
from optax_oracle import (
    ALL,
    PROBLEMS,
    SMOOTH,
    assert_matches,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
    optax_trajectory,
)

optax = pytest.importorskip("optax")

NAMES = (
    "sign_sgd",
    "signum",
    "noisy_sgd",
    "optimistic_gradient_descent",
    "optimistic_adam",
    "muon_optax",
)


def _optimistic_adam(*args, **kwargs):
    # optax.optimistic_adam warns that it is deprecated for optimistic_adam_v2 (same
    # algorithm, another interface); it is still the alias the name refers to.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return optax.optimistic_adam(*args, **kwargs)


def _schedule():
    return optax.linear_schedule(0.01, 0.001, 150)


# Every hyperparameter of muon_optax off its default, but adaptive (and maximize).
MUON_SETTINGS = dict(
    ns_coefficients="dion",
    momentum=0.9,
    eps=1e-7,
    weight_decay=0.1,
    nesterov=False,
    consistent_rms=0.2,
    adam_lr=0.005,
    adam_betas=(0.8, 0.99),
    adam_eps_root=1e-12,
    adam_weight_decay=0.01,
)
OPTAX_MUON_SETTINGS = dict(
    ns_coeffs="dion",
    beta=0.9,
    eps=1e-7,
    weight_decay=0.1,
    nesterov=False,
    consistent_rms=0.2,
    adam_learning_rate=0.005,
    adam_b1=0.8,
    adam_b2=0.99,
    adam_eps_root=1e-12,
    adam_weight_decay=0.01,
)


# (ours, Optax's, problems). Every hyperparameter and flag appears off its default in
# at least one case, maximize=True included (ours ascends -f where Optax descends f).
CASES = {
    "sign_sgd": lambda: (ds.optim.sign_sgd(), optax.sign_sgd(1e-3), ALL),
    "sign_sgd-schedule-maximize": lambda: (
        ds.optim.sign_sgd(lr=_schedule(), maximize=True),
        optax.sign_sgd(_schedule()),
        ALL,
    ),
    "signum": lambda: (ds.optim.signum(), optax.signum(1e-3), ALL),
    "signum-momentum-maximize": lambda: (
        ds.optim.signum(lr=0.01, momentum=0.5, maximize=True),
        optax.signum(0.01, beta=0.5),
        ALL,
    ),
    "noisy_sgd": lambda: (ds.optim.noisy_sgd(), optax.noisy_sgd(1e-3, key=0), ALL),
    "noisy_sgd-all-set": lambda: (
        ds.optim.noisy_sgd(lr=_schedule(), eta=0.1, gamma=0.3, seed=7, maximize=True),
        optax.noisy_sgd(_schedule(), eta=0.1, gamma=0.3, key=7),
        SMOOTH,  # lr up to 0.01 with noise of variance 0.1 leaves Rosenbrock's valley
    ),
    "optimistic_gradient_descent": lambda: (
        ds.optim.optimistic_gradient_descent(),
        optax.optimistic_gradient_descent(1e-3),
        ALL,
    ),
    "optimistic_gradient_descent-all-set": lambda: (
        ds.optim.optimistic_gradient_descent(lr=_schedule(), alpha=0.7, beta=0.1, maximize=True),
        optax.optimistic_gradient_descent(_schedule(), alpha=0.7, beta=0.1),
        SMOOTH,  # lr 0.01 diverges on Rosenbrock (curvature ~1000 at the start)
    ),
    "optimistic_adam": lambda: (ds.optim.optimistic_adam(), _optimistic_adam(1e-3), ALL),
    "optimistic_adam-all-set": lambda: (
        ds.optim.optimistic_adam(
            lr=2e-3,
            optimism=0.5,
            betas=(0.8, 0.99),
            eps=1e-6,
            eps_root=1e-10,
            nesterov=False,
            maximize=True,
        ),
        _optimistic_adam(2e-3, 0.5, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-10, nesterov=False),
        ALL,
    ),
    # Optax's Muon steps the vectors of the first three problems with its AdamW.
    "muon_optax": lambda: (ds.optim.muon_optax(), optax.contrib.muon(0.02), ALL),
    "muon_optax-all-set": lambda: (
        ds.optim.muon_optax(lr=_schedule(), **MUON_SETTINGS, maximize=True),
        optax.contrib.muon(_schedule(), **OPTAX_MUON_SETTINGS),
        ALL,
    ),
    # adaptive=True apart, without maximize: see test_muon_optax_adaptive_and_maximize.
    "muon_optax-adaptive": lambda: (
        ds.optim.muon_optax(lr=_schedule(), **MUON_SETTINGS, adaptive=True),
        optax.contrib.muon(_schedule(), **OPTAX_MUON_SETTINGS, adaptive=True),
        ("matrix",),
    ),
    "muon_optax-triple-ns_steps-mask": lambda: (
        ds.optim.muon_optax(
            ns_coefficients=(3.0, -3.2, 1.2), ns_steps=3, weight_decay=0.1, weight_decay_mask=False
        ),
        optax.contrib.muon(
            0.02, ns_coeffs=(3.0, -3.2, 1.2), ns_steps=3, weight_decay=0.1, weight_decay_mask=False
        ),
        ("matrix",),
    ),
}
for _preconditioning in ("spectral", "aol", "schatten"):
    CASES[f"muon_optax-{_preconditioning}"] = lambda p=_preconditioning: (
        ds.optim.muon_optax(preconditioning=p, weight_decay=0.05),
        optax.contrib.muon(0.02, preconditioning=p, weight_decay=0.05),
        ("matrix",),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_optax(case):
    # Measured: the largest relative deviation of any case is 5.3e-16 (most agree to
    # the last bit). Ours runs the loops of Optax's Newton-Schulz, because with
    # adaptive=True one ulp at the first step (XLA fusing the last product of an
    # unrolled loop with what follows, where Optax's scan keeps it apart) grew to
    # 4e-3 over the 200 steps of "muon_optax-adaptive".
    ours, theirs, problems = CASES[case]()
    assert_matches_optax(ours, theirs, problems)


def test_muon_optax_adaptive_and_maximize_matches_optax_before_rounding_is_amplified():
    """adaptive=True amplifies rounding chaotically; with maximize the gradient of -f
    differs from Optax's of f in the last bit from the second step (XLA places the
    negation differently), and the relative deviation grows 2e-15 (step 2), 1e-9
    (step 20), 0.1 (step 40), at the default lr. So this combination is compared over
    its first 12 steps; each of the two alone is compared over 200 steps above."""
    n_steps = 12
    ours = ds.optim.muon_optax(adaptive=True, maximize=True)
    theirs = optax_trajectory(
        optax.contrib.muon(0.02, adaptive=True), PROBLEMS["matrix"], n_steps=n_steps
    )
    assert_matches(ours, lambda p, s: theirs, ("matrix",), n_steps=n_steps, sign=-1.0)


# Optax's alias_test, with its learning rates. Like Optax's, the sign methods are not
# asked to find Rosenbrock's minimum: a constant step of lr along signs cannot settle
# in its curved valley without a decaying schedule.
MINIMA_SETTINGS = {
    "sign_sgd": ({"lr": 0.1}, ("parabola",)),
    "signum": ({"lr": 0.01}, ("parabola",)),
    "noisy_sgd": ({"lr": 1e-3, "eta": 1e-4, "seed": 0}, ("parabola", "rosenbrock")),
    "optimistic_gradient_descent": (
        {"lr": 2e-3, "alpha": 0.7, "beta": 0.1},
        ("parabola", "rosenbrock"),
    ),
    "optimistic_adam": ({"lr": 2e-3}, ("parabola", "rosenbrock")),
    "muon_optax": ({"lr": 1e-2}, ("parabola", "rosenbrock")),  # optax.contrib's tests
}


@pytest.mark.parametrize("name", NAMES)
def test_reaches_the_minima_in_float32(name):
    settings, problems = MINIMA_SETTINGS[name]
    assert_reaches_minima(ds.optim.get(name, **settings), problems)


@pytest.mark.parametrize("name", NAMES)
def test_second_call_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name))


def test_muon_optax_matches_optax_on_a_pytree_of_matrices_vectors_and_a_mask():
    """Matrices and other leaves in one tree, each decayed or not by a mask tree."""
    rng = np.random.default_rng(3)
    x0 = {
        "w": rng.standard_normal((4, 3)),
        "v": rng.standard_normal((3, 5)),
        "b": rng.standard_normal(3),
        "c": rng.standard_normal((2, 2, 2)),
    }
    mask = {"w": False, "v": True, "b": True, "c": True}

    def loss(p):
        h = jnp.tanh(jnp.ones(4) @ p["w"] + p["b"]) @ p["v"]
        return jnp.sum(h**2) + jnp.sum(p["c"] ** 4) + jnp.sum((p["w"] - 0.5) ** 2)

    ours_opt = ds.optim.muon_optax(weight_decay=0.1, adam_weight_decay=0.01, weight_decay_mask=mask)
    theirs_opt = optax.contrib.muon(
        0.02, weight_decay=0.1, adam_weight_decay=0.01, weight_decay_mask=mask
    )

    def run(step, init):
        def body(carry, _):
            params, state = carry
            params, state = step(params, jax.grad(loss)(params), state)
            return (params, state), params

        return jax.lax.scan(body, (x0, init(x0)), None, length=100)[1]

    def theirs_step(params, grads, state):
        updates, state = theirs_opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    with jax.enable_x64(True):
        ours = jax.jit(lambda: run(ours_opt.step, ours_opt.init))()
        theirs = jax.jit(lambda: run(theirs_step, theirs_opt.init))()
    for key in x0:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-9, atol=1e-12, err_msg=key)
    decayed_free = ds.optim.muon_optax(weight_decay=0.1, adam_weight_decay=0.01)
    with jax.enable_x64(True):
        unmasked = jax.jit(lambda: run(decayed_free.step, decayed_free.init))()
    assert not np.allclose(unmasked["w"], ours["w"])  # the mask changed something


def test_noisy_sgd_draws_the_same_noise_for_the_same_seed_and_other_noise_for_another():
    x = jnp.zeros(5)

    def first_step(seed):
        opt = ds.optim.noisy_sgd(lr=1.0, eta=1.0, seed=seed)
        return np.asarray(opt.step(x, jnp.zeros(5), opt.init(x))[0])

    np.testing.assert_array_equal(first_step(3), first_step(3))
    assert not np.allclose(first_step(3), first_step(4))
    assert np.std(first_step(3)) > 0.1  # noise of variance 1, not zero


def test_noisy_sgd_resumed_from_a_checkpoint_draws_the_noise_of_the_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 3))
    y = (X @ [1.0, -2.0, 0.5] > 0).astype(float)
    common = dict(
        optimizer=ds.optim.noisy_sgd(lr=0.1, eta=0.5, seed=11),
        batch_size=16,
        seed=2,
        dtype="float64",
        verbose=0,
    )
    four = ds.fit("logistic", X, y, epochs=4, **common)
    two = ds.fit("logistic", X, y, epochs=2, **common)
    path = tmp_path / "two.ckpt"
    ds.save(path, two)
    resumed = ds.fit("logistic", X, y, epochs=4, resume=path, **common)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(four.params), strict=True):
        np.testing.assert_array_equal(a, b)
    noiseless = ds.fit("logistic", X, y, epochs=4, **{**common, "optimizer": ds.optim.sgd(lr=0.1)})
    assert not np.allclose(noiseless.params["w"], four.params["w"])


# ----------------------------------------------------------------- through the front doors


def _quartic(x):
    return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)


@pytest.mark.parametrize("name", NAMES)
def test_minimize_runs_and_descends(name):
    x0 = jnp.array([[2.0, -1.0], [0.5, 3.0]])
    result = ds.minimize(_quartic, x0, optimizer=name, max_iter=300)
    assert np.all(np.isfinite(np.asarray(result.x)))
    assert float(result.fun) < float(_quartic(x0))


@pytest.mark.parametrize("name", NAMES)
def test_fit_runs_and_the_loss_goes_down(name):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 3))
    y = (X @ [1.0, -2.0, 0.5] + 0.3 * rng.standard_normal(60) > 0).astype(float)
    result = ds.fit("logistic", X, y, optimizer=name, lr=0.01, epochs=30, batch_size=20, verbose=0)
    losses = np.asarray(result.history["loss"])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------------- the interface


OPTAX_REFERENCES = {
    "sign_sgd": ("sign_sgd", {}),
    "signum": ("signum", {"momentum": "beta"}),
    "noisy_sgd": ("noisy_sgd", {}),
    "optimistic_gradient_descent": ("optimistic_gradient_descent", {}),
    "optimistic_adam": ("optimistic_adam", {}),
    "muon_optax": (
        "contrib.muon",
        {
            "ns_coefficients": "ns_coeffs",
            "momentum": "beta",
            "adam_lr": "adam_learning_rate",
        },
    ),
}


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_optaxs(name):
    path, renamed = OPTAX_REFERENCES[name]
    reference = optax
    for part in path.split("."):
        reference = getattr(reference, part)
    theirs = inspect.signature(reference).parameters
    ours = dict(inspect.signature(getattr(ds.optim, name)).parameters)
    for key in ("lr", "maximize", "seed"):  # lr: no Optax default; seed: Optax's key
        ours.pop(key, None)
    for key, parameter in ours.items():
        if key.endswith("betas"):
            prefix = key[: -len("betas")]
            expected = (theirs[f"{prefix}b1"].default, theirs[f"{prefix}b2"].default)
        else:
            expected = theirs[renamed.get(key, key)].default
        assert parameter.default == expected, (key, parameter.default, expected)


BAD = [
    ("sign_sgd", {"lr": 0.0}, "lr"),
    ("sign_sgd", {"maximize": "yes"}, "maximize"),
    ("signum", {"momentum": 1.0}, "momentum"),
    ("noisy_sgd", {"eta": -1.0}, "eta"),
    ("noisy_sgd", {"gamma": float("nan")}, "gamma"),
    ("noisy_sgd", {"seed": -1}, "seed"),
    ("noisy_sgd", {"seed": 1.5}, "seed"),
    ("optimistic_gradient_descent", {"alpha": -0.1}, "alpha"),
    ("optimistic_gradient_descent", {"beta": -1.0}, "beta"),
    ("optimistic_adam", {"optimism": -1.0}, "optimism"),
    ("optimistic_adam", {"betas": (0.9, 1.0)}, "betas"),
    ("optimistic_adam", {"eps_root": -1.0}, "eps_root"),
    ("optimistic_adam", {"nesterov": 1}, "nesterov"),
    ("muon_optax", {"ns_coefficients": "polar"}, "ns_coefficients"),
    ("muon_optax", {"ns_coefficients": (1.0, 2.0)}, "ns_coefficients"),
    ("muon_optax", {"ns_coefficients": "dion", "ns_steps": 4}, "ns_coefficients"),
    ("muon_optax", {"ns_steps": 0}, "ns_steps"),
    ("muon_optax", {"momentum": -0.1}, "momentum"),
    ("muon_optax", {"preconditioning": "polar"}, "preconditioning"),
    ("muon_optax", {"consistent_rms": 0.0}, "consistent_rms"),
    ("muon_optax", {"adam_lr": -1.0}, "adam_lr"),
    ("muon_optax", {"adam_betas": (1.5, 0.9)}, "adam_betas"),
    ("muon_optax", {"adam_weight_decay": -1.0}, "adam_weight_decay"),
    ("muon_optax", {"weight_decay_mask": "biases"}, "weight_decay_mask"),
]


@pytest.mark.parametrize(("name", "settings", "parameter"), BAD)
def test_invalid_hyperparameters_are_refused_naming_them(name, settings, parameter):
    with pytest.raises(InputError, match=parameter):
        ds.optim.get(name, **settings)


def test_muon_optax_refuses_complex_params():
    opt = ds.optim.muon_optax()
    with pytest.raises(DescendTypeError, match="complex"):
        opt.init(jnp.ones((3, 3), jnp.complex64))
