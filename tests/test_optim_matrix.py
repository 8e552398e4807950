"""Adafactor and Muon against torch.optim.Adafactor and torch.optim.Muon."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.optim._muon import _zeropower_via_newtonschulz

from descend.errors import InputError
from descend.optim.matrix import adafactor, muon
from trajectories import flat, trajectory

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 6))
Y = RNG.normal(size=(20, 4))
START = {
    "W": RNG.normal(size=(6, 4)),
    "b": RNG.normal(size=4),
    "T": RNG.normal(size=(2, 3, 5)),  # factored over its last two axes
    "s": np.array(0.7),
}
T_TARGET = RNG.normal(size=(2, 3, 5))


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def loss(params, lib=jnp):
    """Least squares in (W, b) plus separable terms in T and s; `lib` is jnp or torch."""
    x, y, target = (lib.asarray(a) if lib is jnp else torch.tensor(a) for a in (X, Y, T_TARGET))
    fit = lib.mean((x @ params["W"] + params["b"] - y) ** 2)
    return fit + 0.1 * lib.sum((params["T"] - target) ** 2) + (params["s"] - 2.0) ** 2


def run_ours(opt, params, n_steps, objective=loss):
    return trajectory(opt, objective, params, n_steps)


def run_torch(make, params, n_steps, objective=loss):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make(list(tensors.values()))
    path = []
    for _ in range(n_steps):
        opt.zero_grad()
        objective(tensors, lib=torch).backward()
        opt.step()
        path.append(flat({k: t.detach().numpy() for k, t in tensors.items()}))
    return np.array(path)


# Near the minimizer Adafactor's normalised steps oscillate and amplify last-bit
# differences in the gradient tenfold every few steps, so the runs with larger steps
# are compared before that sets in.
@pytest.mark.parametrize(
    ("hyperparams", "n_steps"),
    [
        ({}, 200),
        ({"weight_decay": 0.1, "d": 1.5}, 200),
        ({"maximize": True}, 200),
        ({"eps": (1e-3, 1e-2)}, 200),
        ({"lr": 0.05, "beta2_decay": -0.5, "weight_decay": 0.1, "d": 1.5}, 50),
    ],
)
def test_adafactor_trajectory_matches_torch(hyperparams, n_steps):
    ours, _ = run_ours(adafactor(**hyperparams), START, n_steps)
    theirs = run_torch(lambda p: torch.optim.Adafactor(p, **hyperparams), START, n_steps)
    relative = np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert relative.max() < 1e-9


def test_adafactor_stores_factored_moments_for_matrices():
    state = adafactor().init({k: jnp.asarray(v) for k, v in START.items()})
    assert state.row_var["W"].shape == (6, 1)
    assert state.col_var["W"].shape == (1, 4)
    assert state.row_var["T"].shape == (2, 3, 1)
    assert state.col_var["T"].shape == (2, 1, 5)
    assert state.variance["W"] is None
    assert state.variance["b"].shape == (4,)
    assert state.row_var["s"] is None


def matrix_loss(params, lib=jnp):
    x, y = (lib.asarray(a) if lib is jnp else torch.tensor(a) for a in (X, Y))
    return lib.mean((x @ params["W"] - y) ** 2)


MUON_CASES = [
    {"lr": 0.02},
    {"lr": 0.02, "nesterov": False, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0},
    {"lr": 0.05, "momentum": 0.5, "ns_steps": 3, "adjust_lr_fn": "original"},
]


@pytest.mark.parametrize(
    ("shape", "hyperparams"), list(zip([(4, 7), (7, 4), (5, 5)], MUON_CASES, strict=True))
)
def test_muon_single_step_matches_torch_to_one_bfloat16_unit(shape, hyperparams):
    rng = np.random.default_rng(sum(shape))
    weights, gradient = rng.normal(size=shape), rng.normal(size=shape)
    opt = muon(**hyperparams)
    ours, _ = opt.step(jnp.asarray(weights), jnp.asarray(gradient), opt.init(jnp.asarray(weights)))

    w = torch.tensor(weights, requires_grad=True)
    w.grad = torch.tensor(gradient)
    torch.optim.Muon([w], **hyperparams).step()
    theirs = w.detach().numpy()
    lr = hyperparams["lr"]
    if hyperparams.get("adjust_lr_fn") == "match_rms_adamw":
        shape_factor = 0.2 * np.sqrt(max(shape))
    else:
        shape_factor = np.sqrt(max(1.0, shape[0] / shape[1]))
    # One bfloat16 unit in the last place at magnitude 1 is 2**-7.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=lr * shape_factor * 2**-7)


@pytest.mark.parametrize("ns_dtype", ["bfloat16", "float32"])
def test_muon_trajectory_matches_torch_to_bfloat16_precision(ns_dtype):
    n_steps, lr = 30, 0.02
    params = {"W": START["W"]}
    ours, _ = run_ours(muon(lr=lr, ns_dtype=ns_dtype), params, n_steps, matrix_loss)
    theirs = run_torch(lambda p: torch.optim.Muon(p, lr=lr), params, n_steps, matrix_loss)
    # Each step moves every entry by about lr. The float64 gradients differ from torch's
    # in the last bits, which flips some bfloat16 roundings of the Newton-Schulz input;
    # the iteration turns that into a few percent of a step, and the differences add up.
    deviation = np.abs(ours - theirs).max(axis=1)
    assert np.all(deviation <= 0.05 * lr * np.arange(1, n_steps + 1))
    assert matrix_loss({"W": jnp.asarray(ours[-1].reshape(6, 4))}) < matrix_loss(
        {"W": jnp.asarray(START["W"])}
    )


def test_muon_bfloat16_newton_schulz_equals_torchs_on_the_same_input():
    gradient = np.random.default_rng(3).normal(size=(6, 9))
    expected = _zeropower_via_newtonschulz(
        torch.tensor(gradient), (3.4445, -4.7750, 2.0315), 5, 1e-7
    ).double()
    opt = muon(lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
    zeros = jnp.zeros((6, 9))
    stepped, _ = opt.step(zeros, jnp.asarray(gradient), opt.init(zeros))
    np.testing.assert_allclose(-np.asarray(stepped), expected.numpy(), rtol=0, atol=2**-7)


def test_muon_refuses_params_that_are_not_matrices_and_names_them():
    params = {"layer": {"w": jnp.zeros((3, 3)), "b": jnp.zeros(3)}, "scale": jnp.zeros(())}
    with pytest.raises(InputError) as error:
        muon().init(params)
    message = str(error.value)
    assert "['layer']['b'] (shape (3,))" in message
    assert "['scale'] (shape ())" in message
    assert "['w']" not in message
    assert "adamw" in message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: adafactor(beta2_decay=0.5), "beta2_decay"),
        (lambda: adafactor(d=0.5), "d "),
        (lambda: adafactor(eps=1e-3), "eps"),
        (lambda: adafactor(weight_decay=-1.0), "weight_decay"),
        (lambda: muon(momentum=1.0), "momentum"),
        (lambda: muon(ns_steps=100), "ns_steps"),
        (lambda: muon(adjust_lr_fn="rms"), "adjust_lr_fn"),
        (lambda: muon(ns_dtype="float16"), "ns_dtype"),
        (lambda: muon(ns_coefficients=(1.0, 2.0)), "ns_coefficients"),
    ],
)
def test_matrix_optimizers_reject_invalid_hyperparameters(make, message):
    with pytest.raises(InputError, match=message):
        make()
