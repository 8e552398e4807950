"""ADOPT, AdEMAMix, simplified AdEMAMix and MADGRAD against ``optax.contrib``, run live.

Each case runs descend's optimizer and Optax's beside it for 200 steps in float64 on
the four problems of ``optax_oracle`` and asserts the whole trajectory agrees to rtol
1e-9: with the defaults, and with settings that change every hyperparameter and
exercise every flag (``maximize=True`` too; Optax, which has no ``maximize``, descends
the objective that ours ascends negated). The schedules Optax accepts beyond the
learning rate (ADOPT's clip value, AdEMAMix's ``alpha`` and ``beta3``) are given as
descend schedules, the same objects to both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError, InputError
from descend.optim import schedules
from optax_oracle import (
    ALL,
    assert_matches_optax,
    assert_reaches_minima,
    assert_second_call_compiles_nothing,
)
from trajectories import flat, trajectory

optax = pytest.importorskip("optax")
contrib = optax.contrib

NAMES = ["adopt", "ademamix", "simplified_ademamix", "madgrad"]

# Schedules for the hyperparameters that Optax lets vary with the step count.
LR = schedules.cosine_annealing(0.02, T_max=200, eta_min=0.002)
CLIP = schedules.linear_warmup(3.0, warmup_steps=50, start_factor=0.1)
ALPHA = schedules.linear_warmup(4.0, warmup_steps=100, start_factor=0.05)
BETA3 = schedules.linear_warmup(0.999, warmup_steps=100, start_factor=0.9)


def _cases():
    """(id, ours, Optax's, problems). Each flag takes both values across the cases."""
    return [
        # ------------------------------------------------------------------ ADOPT
        ("adopt-defaults", ds.optim.adopt(), contrib.adopt(1e-3), ALL),
        (
            "adopt-nesterov-clip-schedule-maximize",
            ds.optim.adopt(
                lr=0.01,
                betas=(0.8, 0.99),
                eps=1e-5,
                nesterov=True,
                clip_value_fn=CLIP,
                maximize=True,
            ),
            contrib.adopt(0.01, b1=0.8, b2=0.99, eps=1e-5, nesterov=True, clip_value_fn=CLIP),
            ALL,
        ),
        (
            "adopt-no-clipping-lr-schedule",
            # eps is a floor of sqrt(v): 0.5 is reached on every problem (1e-5 never is)
            ds.optim.adopt(lr=LR, betas=(0.9, 0.999), eps=0.5, use_clipping=False),
            contrib.adopt(LR, b1=0.9, b2=0.999, eps=0.5, use_clipping=False),
            ALL,
        ),
        (
            "adopt-no-clipping-nesterov",
            ds.optim.adopt(lr=0.005, use_clipping=False, nesterov=True),
            contrib.adopt(0.005, use_clipping=False, nesterov=True),
            ALL,
        ),
        # --------------------------------------------------------------- AdEMAMix
        ("ademamix-defaults", ds.optim.ademamix(), contrib.ademamix(1e-3), ALL),
        (
            "ademamix-schedules-decay-maximize",
            ds.optim.ademamix(
                lr=LR,
                betas=(0.8, 0.99, BETA3),
                alpha=ALPHA,
                eps=1e-6,
                eps_root=1e-10,
                weight_decay=0.1,
                maximize=True,
            ),
            contrib.ademamix(
                LR,
                b1=0.8,
                b2=0.99,
                b3=BETA3,
                alpha=ALPHA,
                eps=1e-6,
                eps_root=1e-10,
                weight_decay=0.1,
            ),
            ALL,
        ),
        (
            "ademamix-numbers",
            ds.optim.ademamix(lr=0.005, betas=(0.95, 0.9, 0.99), alpha=2.0, weight_decay=0.01),
            contrib.ademamix(0.005, b1=0.95, b2=0.9, b3=0.99, alpha=2.0, weight_decay=0.01),
            ALL,
        ),
        # ---------------------------------------------------- simplified AdEMAMix
        (
            "simplified_ademamix-defaults",
            ds.optim.simplified_ademamix(),
            contrib.simplified_ademamix(1e-4),
            ALL,
        ),
        (
            "simplified_ademamix-schedule-decay-maximize",
            ds.optim.simplified_ademamix(
                lr=1e-3,
                betas=(0.9, 0.99),
                alpha=ALPHA,
                eps=1e-6,
                eps_root=1e-10,
                weight_decay=0.1,
                maximize=True,
            ),
            contrib.simplified_ademamix(
                1e-3, b1=0.9, b2=0.99, alpha=ALPHA, eps=1e-6, eps_root=1e-10, weight_decay=0.1
            ),
            ALL,
        ),
        (
            "simplified_ademamix-lr-schedule-alpha",
            ds.optim.simplified_ademamix(lr=LR, betas=(0.5, 0.9), alpha=3.0),
            contrib.simplified_ademamix(LR, b1=0.5, b2=0.9, alpha=3.0),
            ALL,
        ),
        # ----------------------------------------------------------------- MADGRAD
        ("madgrad-defaults", ds.optim.madgrad(), contrib.madgrad(1e-2), ALL),
        (
            "madgrad-schedule-decay-maximize",
            ds.optim.madgrad(lr=LR, momentum=0.5, weight_decay=0.05, eps=1e-8, maximize=True),
            contrib.madgrad(LR, momentum=0.5, weight_decay=0.05, eps=1e-8),
            ALL,
        ),
        (
            # lr=0.05 without momentum leaves Rosenbrock's valley (x -> 1e5 by step 100)
            "madgrad-no-momentum",
            ds.optim.madgrad(lr=0.01, momentum=0.0),
            contrib.madgrad(0.01, momentum=0.0),
            ALL,
        ),
    ]


CASES = _cases()


@pytest.mark.parametrize(("ours", "theirs", "problems"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_trajectory_matches_optax_contrib(ours, theirs, problems):
    assert_matches_optax(ours, theirs, problems)


# --------------------------------------------------------- weight-decay masks (dict params)

RNG = np.random.default_rng(3)
X = RNG.normal(size=(30, 4))
Y = (RNG.random((30, 2)) < 0.8).astype(np.float64)
START = {"w": 0.5 * RNG.normal(size=(4, 2)), "b": 0.5 * RNG.normal(size=2)}


def _logistic(params):
    z = jnp.asarray(X) @ params["w"] + params["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(Y) * z)


def _optax_path(transform, n_steps=100):
    params = {k: jnp.asarray(v) for k, v in START.items()}
    state = transform.init(params)

    @jax.jit
    def step(params, state):
        updates, state = transform.update(jax.grad(_logistic)(params), state, params)
        return optax.apply_updates(params, updates), state

    path = []
    for _ in range(n_steps):
        params, state = step(params, state)
        path.append(flat(params))
    return np.array(path)


def _mask_fn(params):
    return jax.tree.map(lambda leaf: leaf.ndim == 2, params)


MASKED = {
    "ademamix": (
        ds.optim.ademamix(lr=0.01, weight_decay=0.5, weight_decay_mask={"w": True, "b": False}),
        lambda mask: contrib.ademamix(0.01, weight_decay=0.5, mask=mask),
    ),
    "simplified_ademamix": (
        ds.optim.simplified_ademamix(lr=1e-3, weight_decay=0.5, weight_decay_mask="weights"),
        lambda mask: contrib.simplified_ademamix(1e-3, weight_decay=0.5, mask=mask),
    ),
    # Optax's madgrad has no mask: madgrad is add_decayed_weights then scale_by_madgrad.
    "madgrad": (
        ds.optim.madgrad(lr=0.01, weight_decay=0.5, weight_decay_mask=_mask_fn),
        lambda mask: optax.chain(
            optax.add_decayed_weights(0.5, mask), contrib.scale_by_madgrad(0.01)
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_masked_trajectory_matches_optax_mask_as_a_tree_and_as_a_function(name):
    ours, reference = MASKED[name]
    with jax.enable_x64(True):
        path, _ = trajectory(ours, _logistic, START, 100)
        unmasked, _ = trajectory(
            ds.optim.get(name, **{**ours.hyperparams, "weight_decay_mask": None}),
            _logistic, START, 100,
        )  # fmt: skip
        for mask in ({"w": True, "b": False}, _mask_fn):
            np.testing.assert_allclose(path, _optax_path(reference(mask)), rtol=1e-9, atol=1e-12)
    assert not np.allclose(path, unmasked)  # the mask changed the run


# ------------------------------------------------------------ Optax's own tests, and ours

# The learning rates of Optax's contrib tests (_common_test.py), which run 30 000 steps.
MINIMA_LR = {"adopt": 1e-2, "ademamix": 1e-3, "simplified_ademamix": 1e-3, "madgrad": 1e-2}


@pytest.mark.parametrize("name", NAMES)
def test_reaches_the_parabola_and_rosenbrock_minima_in_float32(name):
    assert_reaches_minima(ds.optim.get(name, lr=MINIMA_LR[name]), n_steps=30_000)


@pytest.mark.parametrize("name", NAMES)
def test_second_minimize_with_an_equal_optimizer_compiles_nothing(name):
    assert_second_call_compiles_nothing(lambda: ds.optim.get(name, lr=0.01))


@pytest.mark.parametrize("name", NAMES)
def test_minimize_and_fit_run_and_lower_the_loss(name):
    def f(x):
        return jnp.sum((x - jnp.array([1.0, -2.0])) ** 2)

    x0 = jnp.array([3.0, 3.0])
    result = ds.minimize(f, x0, optimizer=ds.optim.get(name, lr=0.05), max_iter=300)
    assert np.all(np.isfinite(result.x))
    assert float(f(result.x)) < 0.5 * float(f(x0))

    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 3))
    labels = (features @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float64)
    fitted = ds.fit("logistic", features, labels, optimizer=ds.optim.get(name, lr=0.05),
                    epochs=20, batch_size=16, verbose=0)  # fmt: skip
    losses = np.asarray(fitted.history["loss"])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_minimize_accepts_each_by_name():
    for name in NAMES:
        result = ds.minimize(lambda x: jnp.sum(x**2), jnp.array([1.0, -1.0]), optimizer=name,
                             max_iter=50)  # fmt: skip
        assert np.all(np.isfinite(result.x))


# ------------------------------------------------------------- names, defaults, errors

OPTAX_NAMES = {  # our hyperparameter -> Optax's, where they differ
    "adopt": {},
    "ademamix": {},
    "simplified_ademamix": {"weight_decay_mask": "mask"},
    "madgrad": {},
}


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameter_defaults_match_optax(name):
    import inspect

    reference = inspect.signature(getattr(contrib, name)).parameters
    (row,) = [row for row in ds.optim.available() if row["name"] == name]
    ours = dict(row["hyperparams"])
    betas = ours.pop("betas", ())
    assert betas == tuple(reference[f"b{i + 1}"].default for i in range(len(betas)))
    ours.pop("lr")  # Optax's learning_rate has no default
    ours.pop("maximize")  # not in Optax
    if name == "adopt":
        assert ours.pop("clip_value_fn") is None  # Optax's lambda x: x**0.25
    for key, default in ours.items():
        assert default == reference[key].default, (key, default, reference[key].default)
    if "mask" in reference:
        assert row["leaf_settings"] == {"weight_decay_mask": None}


INVALID = [
    ("adopt", {"betas": (0.9, 1.0)}, "betas"),
    ("adopt", {"eps": -1e-6}, "eps"),
    ("adopt", {"use_clipping": 1}, "use_clipping"),
    ("adopt", {"nesterov": "yes"}, "nesterov"),
    ("ademamix", {"betas": (0.9, 0.999)}, "betas"),
    ("ademamix", {"betas": (0.9, 0.999, 1.0)}, "betas"),
    ("ademamix", {"betas": (0.9, 0.999, "0.9")}, "betas"),
    ("ademamix", {"betas": (0.9, -0.1, 0.99)}, "betas"),
    ("ademamix", {"alpha": -1.0}, "alpha"),
    ("ademamix", {"eps_root": -1.0}, "eps_root"),
    ("ademamix", {"weight_decay_mask": "biases"}, "weight_decay_mask"),
    ("simplified_ademamix", {"alpha": -0.5}, "alpha"),
    ("simplified_ademamix", {"betas": (1.5, 0.95)}, "betas"),
    ("simplified_ademamix", {"weight_decay": -0.1}, "weight_decay"),
    ("madgrad", {"momentum": 1.0}, "momentum"),
    ("madgrad", {"eps": -1e-6}, "eps"),
    ("madgrad", {"lr": 0.0}, "lr"),
    ("madgrad", {"maximize": None}, "maximize"),
]


@pytest.mark.parametrize(("name", "hyperparams", "param"), INVALID,
                         ids=[f"{n}-{p}-{i}" for i, (n, _, p) in enumerate(INVALID)])  # fmt: skip
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError) as excinfo:
        ds.optim.get(name, **hyperparams)
    message = str(excinfo.value)
    assert param in message
    assert repr(hyperparams[param]) in message


def test_schedules_where_optax_takes_them_and_type_errors_elsewhere():
    with pytest.raises(DescendTypeError, match="clip_value_fn"):
        ds.optim.adopt(clip_value_fn=0.5)
    with pytest.raises(DescendTypeError, match="alpha"):
        ds.optim.ademamix(alpha=True)
    opt = ds.optim.ademamix(betas=(0.9, 0.999, BETA3), alpha=ALPHA)
    assert opt.hyperparams["betas"][2] is BETA3 and opt.hyperparams["alpha"] is ALPHA
    assert opt == ds.optim.ademamix(betas=(0.9, 0.999, BETA3), alpha=ALPHA)


def test_minimize_runs_past_adopts_first_step_which_leaves_x_in_place():
    result = ds.minimize(lambda x: jnp.sum(x**2), jnp.array([1.0, -1.0]),
                         optimizer=ds.optim.adopt(lr=0.1), max_iter=30)  # fmt: skip
    assert result.n_iter == 30, result.reason


def test_adopt_first_step_only_fills_the_second_moment():
    opt = ds.optim.adopt(lr=0.1, use_clipping=False)
    x = jnp.array([1.0, -2.0])
    moved, state = opt.step(x, jnp.array([0.5, 3.0]), opt.init(x))
    np.testing.assert_array_equal(moved, x)
    np.testing.assert_allclose(state.exp_avg_sq, [0.25, 9.0])
