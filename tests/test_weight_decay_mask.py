"""``weight_decay_mask`` and ``partition`` against torch parameter groups and Optax's ``mask``.

Every optimizer with a weight decay runs beside ``torch.optim`` given two parameter
groups, the weights with the weight decay and the biases with ``weight_decay=0``
(Optax with ``mask=`` for Lion, and where Optax has the algorithm), for 100 steps in
float64; the trajectories agree to rtol 1e-9.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import descend as ds
from descend.errors import CheckpointError, DescendTypeError, InputError
from descend.optim.groups import partition
from descend.optim.transforms import add_weight_decay, chain, decoupled_weight_decay
from torch_names import TORCH_CLASSES
from trajectories import flat, torch_float64, trajectory

optax = pytest.importorskip("optax")

N_STEPS = 100
RTOL = 1e-9
ATOL = 1e-12

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5))
Y = (RNG.random((40, 3)) < 0.9).astype(np.float64)  # biases far from 0, as in the fault
START = {"w": 0.5 * RNG.normal(size=(5, 3)), "b": 0.5 * RNG.normal(size=3)}
DECAY_W = {"w": True, "b": False}


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def loss(params, lib=jnp):
    """Mean logistic loss of three independent outputs: weights ``w`` and biases ``b``."""
    if lib is jnp:
        z = jnp.asarray(X) @ params["w"] + params["b"]
        return jnp.mean(jnp.logaddexp(0.0, z) - jnp.asarray(Y) * z)
    z = torch.tensor(X) @ params["w"] + params["b"]
    return torch.mean(torch.logaddexp(torch.zeros_like(z), z) - torch.tensor(Y) * z)


def run_ours(opt, n_steps=N_STEPS, objective=loss, start=START):
    return trajectory(opt, objective, start, n_steps)[0]


def run_torch(make, groups, n_steps=N_STEPS, sign=1.0, objective=loss, start=START):
    """``make(param_groups)`` stepped ``n_steps`` times; ``groups`` maps each leaf name to
    its group's settings (``{}`` for the optimizer's own)."""
    with torch_float64():
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
        optimizer = make([{"params": [tensors[k]], **groups[k]} for k in sorted(tensors)])
        path = []
        for _ in range(n_steps):
            optimizer.zero_grad()
            (sign * objective(tensors, lib=torch)).backward()
            optimizer.step()
            path.append(flat({k: t.detach().numpy() for k, t in tensors.items()}))
    return np.array(path)


def run_optax(transform, n_steps=N_STEPS, sign=1.0):
    grad = jax.jit(jax.grad(lambda p: sign * loss(p)))
    params = {k: jnp.asarray(v) for k, v in START.items()}
    state = transform.init(params)

    @jax.jit
    def step(params, state):
        updates, state = transform.update(grad(params), state, params)
        return optax.apply_updates(params, updates), state

    path = []
    for _ in range(n_steps):
        params, state = step(params, state)
        path.append(flat(params))
    return np.array(path)


def torch_hyperparams(opt: ds.optim.Optimizer) -> dict:
    return {k: v for k, v in opt.hyperparams.items() if k != "weight_decay_mask"}


NO_DECAY_FOR_B = {"w": {}, "b": {"weight_decay": 0.0}}

# Each optimizer with a weight decay, with settings that keep the runs far from chaos
# (see test_optim_reference.py: coupled NAdam at lr=1e-2 amplifies one-ulp differences
# here, with or without a mask); the mask decays w and leaves b alone.
MASKED = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.3, "maximize": True}),
    ("momentum", {"lr": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1, "weight_decay": 0.1, "lr_decay": 0.01}),
    ("rmsprop", {"lr": 1e-2, "weight_decay": 0.1, "centered": True, "momentum": 0.5}),
    ("adadelta", {"lr": 1.0, "weight_decay": 0.1}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.1}),
    ("adam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.5}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.2, "amsgrad": True, "maximize": True}),
    ("adamax", {"lr": 1e-2, "weight_decay": 0.1}),
    ("nadam", {"lr": 3e-3, "weight_decay": 0.1}),
    ("nadam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam", {"lr": 1e-2, "weight_decay": 0.1}),
    ("radam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("asgd", {"lr": 0.05, "weight_decay": 0.1, "t0": 20.0, "lambd": 1e-3}),
    ("adafactor", {"lr": 1e-2, "weight_decay": 0.1}),
]


def _id(case) -> str:
    name, hyperparams = case
    return name + "[" + ",".join(f"{k}={v}" for k, v in hyperparams.items()) + "]"


@pytest.mark.parametrize("case", MASKED, ids=[_id(case) for case in MASKED])
def test_masked_trajectory_matches_torch_with_a_no_decay_group(case):
    name, hyperparams = case
    opt = ds.optim.get(name, **hyperparams, weight_decay_mask=DECAY_W)
    sign = -1.0 if hyperparams.get("maximize") else 1.0  # maximize ascends -loss
    ours = run_ours(opt, objective=lambda p: sign * loss(p))
    cls = getattr(torch.optim, TORCH_CLASSES.get(name, "Adafactor"))
    options = {"foreach": False, **torch_hyperparams(opt)}
    theirs = run_torch(lambda groups: cls(groups, **options), NO_DECAY_FOR_B, sign=sign)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    # The mask matters: decaying every leaf gives another trajectory.
    unmasked = run_ours(ds.optim.get(name, **hyperparams), objective=lambda p: sign * loss(p))
    assert np.abs(unmasked - ours).max() > 1e-6


def test_muon_mask_leaves_the_other_matrix_undecayed():
    """Muon's leaves are independent: the masked run is a decayed run of one matrix
    beside an undecayed run of the other, and agrees with torch's two groups."""
    start = {"u": START["w"], "v": RNG.normal(size=(5, 3))}

    def two_matrices(params, lib=jnp):
        z = (lib.asarray(X) if lib is jnp else torch.tensor(X)) @ (params["u"] + params["v"])
        return lib.mean(z**2) + lib.sum(params["u"] * params["v"])

    settings = {"lr": 0.02, "weight_decay": 0.5, "ns_dtype": "float32"}
    masked = ds.optim.muon(**settings, weight_decay_mask={"u": True, "v": False})
    ours = run_ours(masked, 30, two_matrices, start)
    decayed_only = ds.optim.partition(
        {"u": ds.optim.muon(**settings), "v": ds.optim.muon(**{**settings, "weight_decay": 0.0})},
        {"u": "u", "v": "v"},
    )
    np.testing.assert_array_equal(ours, run_ours(decayed_only, 30, two_matrices, start))
    theirs = run_torch(
        lambda groups: torch.optim.Muon(groups, lr=0.02, weight_decay=0.5),
        {"u": {}, "v": {"weight_decay": 0.0}},
        30,
        objective=two_matrices,
        start=start,
    )
    # Torch runs Newton-Schulz in bfloat16: agreement to bfloat16 precision of a step
    # (as in test_optim_matrix.py), while the decay alone moves u by lr * wd * |u| ~ 1e-2.
    deviation = np.abs(ours - theirs).max(axis=1)
    assert np.all(deviation <= 0.05 * 0.02 * np.arange(1, 31))
    assert (
        masked.hyperparams["weight_decay_mask"]
        == ds.optim.muon(weight_decay_mask={"v": False, "u": True}).hyperparams["weight_decay_mask"]
    )


# ------------------------------------------------------------------------ against Optax


def _optax_case(name):
    mask_tree = DECAY_W

    def mask_fn(params):
        return jax.tree.map(lambda leaf: leaf.ndim == 2, params)

    if name == "adamw":
        ours = ds.optim.adamw(lr=1e-2, weight_decay=0.5, weight_decay_mask=DECAY_W)
        return ours, [optax.adamw(1e-2, weight_decay=0.5, mask=m) for m in (mask_tree, mask_fn)]
    if name == "lion":
        ours = ds.optim.lion(lr=1e-3, weight_decay=0.5, weight_decay_mask=DECAY_W)
        return ours, [optax.lion(1e-3, weight_decay=0.5, mask=m) for m in (mask_tree, mask_fn)]
    if name == "adadelta":
        ours = ds.optim.adadelta(lr=1.0, weight_decay=0.1, weight_decay_mask=DECAY_W)
        return ours, [
            optax.adadelta(1.0, weight_decay=0.1, weight_decay_mask=m) for m in (mask_tree, mask_fn)
        ]
    if name == "add_weight_decay":
        ours = chain(add_weight_decay(0.1, DECAY_W), ds.optim.sgd(lr=0.05, momentum=0.9))
        return ours, [
            optax.chain(optax.add_decayed_weights(0.1, m), optax.sgd(0.05, momentum=0.9))
            for m in (mask_tree, mask_fn)
        ]
    assert name == "decoupled_weight_decay"
    ours = chain(decoupled_weight_decay(0.3, 0.05, DECAY_W), ds.optim.sgd(lr=0.05))
    return ours, [
        optax.chain(optax.add_decayed_weights(0.3, m), optax.sgd(0.05))
        for m in (mask_tree, mask_fn)
    ]


@pytest.mark.parametrize(
    "name", ["adamw", "lion", "adadelta", "add_weight_decay", "decoupled_weight_decay"]
)
def test_masked_trajectory_matches_optax_mask_as_a_tree_and_as_a_function(name):
    ours, references = _optax_case(name)
    path = run_ours(ours)
    for reference in references:
        np.testing.assert_allclose(path, run_optax(reference), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------- transforms


def test_add_weight_decay_with_a_mask_matches_torch_sgd_groups():
    ours = run_ours(chain(add_weight_decay(0.3, "weights"), ds.optim.sgd(lr=0.05, momentum=0.9)))
    theirs = run_torch(
        lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=0.3),
        NO_DECAY_FOR_B,
    )
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_decoupled_weight_decay_with_a_mask_before_adam_is_torch_adamw_with_groups():
    lr, weight_decay = 0.01, 0.5
    ours = run_ours(chain(decoupled_weight_decay(weight_decay, lr, "weights"), ds.optim.adam(lr)))
    theirs = run_torch(
        lambda groups: torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay),
        NO_DECAY_FOR_B,
    )
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_transforms_with_a_mask_compare_by_it():
    assert add_weight_decay(0.1, {"w": True, "b": False}) == add_weight_decay(
        0.1, {"b": False, "w": True}
    )
    assert add_weight_decay(0.1, DECAY_W) != add_weight_decay(0.1)
    assert decoupled_weight_decay(0.1, 0.01, "weights") != decoupled_weight_decay(0.1, 0.01)
    with pytest.raises(InputError, match="weight_decay_mask"):
        add_weight_decay(0.1, {"w": 1, "b": 0})


# ------------------------------------------------------------------- the forms of a mask


def _path_is_w(path, leaf):
    return path == "w"


MASK_FORMS = {
    "pytree": {"w": True, "b": False},
    "numpy booleans": {"w": np.True_, "b": np.False_},
    "function of params": lambda params: jax.tree.map(lambda leaf: leaf.ndim == 2, params),
    "function of path and leaf": _path_is_w,
    "shorthand": "weights",
}


@pytest.mark.parametrize("form", list(MASK_FORMS))
def test_every_form_of_a_mask_gives_the_same_trajectory(form):
    reference = run_ours(ds.optim.adamw(lr=1e-2, weight_decay=0.5, weight_decay_mask=DECAY_W))
    opt = ds.optim.adamw(lr=1e-2, weight_decay=0.5, weight_decay_mask=MASK_FORMS[form])
    np.testing.assert_array_equal(run_ours(opt), reference)


def test_a_prefix_of_the_params_structure_masks_whole_subtrees():
    layers = [{"w": RNG.normal(size=(3, 2)), "b": RNG.normal(size=2)} for _ in range(2)]
    params = [{k: jnp.asarray(v) for k, v in layer.items()} for layer in layers]
    grads = jax.tree.map(jnp.zeros_like, params)
    prefix = ds.optim.sgd(lr=0.1, weight_decay=0.5, weight_decay_mask=[True, False])
    full = ds.optim.sgd(
        lr=0.1,
        weight_decay=0.5,
        weight_decay_mask=[{"w": True, "b": True}, {"w": False, "b": False}],
    )
    by_prefix, _ = prefix.step(params, grads, prefix.init(params))
    by_leaf, _ = full.step(params, grads, full.init(params))
    for a, b in zip(jax.tree.leaves(by_prefix), jax.tree.leaves(by_leaf), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(by_prefix[0]["w"], 0.95 * params[0]["w"], rtol=1e-15)
    np.testing.assert_array_equal(by_prefix[1]["w"], params[1]["w"])
    # the path of a leaf inside a list: "0/w"
    by_path = ds.optim.sgd(
        lr=0.1, weight_decay=0.5, weight_decay_mask=lambda path, leaf: path.startswith("0/")
    )
    stepped, _ = by_path.step(params, grads, by_path.init(params))
    for a, b in zip(jax.tree.leaves(stepped), jax.tree.leaves(by_leaf), strict=True):
        np.testing.assert_array_equal(a, b)


# Their reference has no mask and their weight decay is not a per-leaf term alone: it
# enters a step size computed from all the leaves together (Mechanic's learned scale,
# MoMo's Polyak-type step, D-Adaptation's distance estimate), so a mask would define a
# new algorithm with nothing to test it against.
NO_MASK = {"mechanize", "momo", "momo_adam", "dadapt_adamw"}


def test_every_optimizer_with_a_weight_decay_takes_a_mask():
    listed = {row["name"]: row for row in ds.optim.available()}
    with_decay = {name for name, row in listed.items() if "weight_decay" in row["hyperparams"]}
    assert {"sgd", "adamw", "lion", "adafactor", "lamb", "schedule_free_adamw"} <= with_decay
    assert with_decay >= NO_MASK
    for name, row in listed.items():
        takes_mask = "weight_decay_mask" in row["leaf_settings"]
        assert takes_mask == (name in with_decay - NO_MASK), name
    for transform in (add_weight_decay, decoupled_weight_decay):
        assert "weight_decay_mask" in inspect.signature(transform).parameters
    assert listed["adamw"]["leaf_settings"] == {"weight_decay_mask": None}
    assert "weight_decay_mask" not in listed["adamw"]["hyperparams"]
    assert listed["rprop"]["leaf_settings"] == {}


def test_the_mask_is_a_hyperparameter_shown_only_when_given():
    assert "weight_decay_mask" not in ds.optim.adamw().hyperparams
    assert repr(ds.optim.adamw(weight_decay_mask="weights")).endswith(
        "weight_decay_mask='weights')"
    )
    assert "weight_decay_mask={'b': False, 'w': True}" in repr(
        ds.optim.sgd(weight_decay_mask=DECAY_W)
    )
    assert ds.optim.get("adamw", weight_decay_mask="weights") == ds.optim.adamw(
        weight_decay_mask="weights"
    )


# ----------------------------------------------------------------------------- refusals


PARAMS = {"w": jnp.zeros((5, 3)), "b": jnp.zeros(3)}


def test_a_mask_of_the_wrong_structure_is_refused_by_init_naming_the_leaves():
    for mask in ({"w": True}, {"w": True, "bias": False}, [True, False]):
        opt = ds.optim.adamw(weight_decay_mask=mask)
        with pytest.raises(InputError) as error:
            opt.init(PARAMS)
        message = str(error.value)
        assert "does not have the structure of the params" in message
        assert "'b', 'w'" in message
        assert "prefix" in message
    with pytest.raises(InputError, match="structure of the params"):
        add_weight_decay(0.1, {"w": True}).init(PARAMS)
    with pytest.raises(InputError, match="structure of the params"):
        ds.optim.adamw(weight_decay_mask=lambda params: {"w": True}).init(PARAMS)


def test_a_mask_of_the_wrong_structure_is_refused_by_fit():
    X_fit = RNG.normal(size=(20, 2))
    opt = ds.optim.adamw(weight_decay_mask={"weights": True, "bias": False})
    with pytest.raises(InputError, match=r"leaves 'b', 'w'"):
        ds.fit("linear", X_fit, X_fit[:, 0], optimizer=opt, batch_size=None, verbose=0)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ("biases", r"'weights' \(the leaves named 'w'\), got 'biases'"),
        ({"w": 1.0, "b": 0.0}, "must be True or False"),
        ({"w": jnp.array(True), "b": False}, "must be True or False"),
    ],
)
def test_a_mask_that_is_not_one_is_refused_when_built(mask, message):
    with pytest.raises(InputError, match=message):
        ds.optim.adamw(weight_decay_mask=mask)


def test_masks_that_cannot_be_applied_are_refused_with_what_to_do():
    with pytest.raises(InputError, match="no leaf of these params is: 'bias', 'kernel'"):
        ds.optim.adamw(weight_decay_mask="weights").init({"kernel": 1.0, "bias": 1.0})
    with pytest.raises(InputError, match="must return True or False for each leaf"):
        ds.optim.adamw(weight_decay_mask=lambda path, leaf: path).init(PARAMS)
    # A one-argument function is called with the params, as in Optax.
    with pytest.raises(InputError, match="function of two arguments, \\(path, leaf\\)"):
        ds.optim.adamw(weight_decay_mask=lambda path: path.endswith("w")).init(PARAMS)


# -------------------------------------------------------------- equality and compilation


def test_masks_compare_by_value_and_different_masks_never_compare_equal():
    assert ds.optim.adamw(weight_decay_mask={"w": True, "b": False}) == ds.optim.adamw(
        weight_decay_mask={"b": False, "w": True}
    )
    assert hash(ds.optim.adamw(weight_decay_mask=DECAY_W)) == hash(
        ds.optim.adamw(weight_decay_mask=dict(DECAY_W))
    )
    distinct = [
        ds.optim.adamw(),
        ds.optim.adamw(weight_decay_mask=DECAY_W),
        ds.optim.adamw(weight_decay_mask={"w": False, "b": True}),
        ds.optim.adamw(weight_decay_mask="weights"),
        ds.optim.adamw(weight_decay_mask=False),
        ds.optim.adamw(weight_decay_mask=_path_is_w),
    ]
    for i, a in enumerate(distinct):
        for b in distinct[i + 1 :]:
            assert a != b, (a, b)


def _only(name):
    return lambda path, leaf: path == name


@pytest.mark.parametrize("run", ["minimize", "fit"])
def test_optimizers_differing_only_in_their_mask_each_run_their_own_program(run):
    """Masks given as the same function capturing different names, as pytrees and as
    booleans: each run is the closed form of its own mask, never another's program."""
    curvature = {"w": np.array([1.0, 3.0]), "b": np.array(2.0)}
    x0 = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}
    lr, weight_decay, steps = 0.1, 0.5, 5
    masks = [
        (_only("w"), {"w": 1.0, "b": 0.0}),
        (_only("b"), {"w": 0.0, "b": 1.0}),
        ({"w": True, "b": True}, {"w": 1.0, "b": 1.0}),
        ({"w": False, "b": True}, {"w": 0.0, "b": 1.0}),
        (False, {"w": 0.0, "b": 0.0}),
    ]

    def f(x):
        return sum(0.5 * jnp.sum(jnp.asarray(curvature[k]) * x[k] ** 2) for k in x)

    # the same quadratic as a model's loss, one full batch per epoch
    model = ds.models.custom(
        lambda p, X: jnp.zeros(X.shape[0]) + f(p), {k: jnp.asarray(v) for k, v in x0.items()}
    )
    for mask, decayed in masks:
        opt = ds.optim.sgd(lr=lr, weight_decay=weight_decay, weight_decay_mask=mask)
        expected = {
            k: (1 - lr * (curvature[k] + weight_decay * decayed[k])) ** steps * x0[k] for k in x0
        }
        if run == "minimize":
            got = ds.minimize(f, x0, optimizer=opt, tol=1e-14, max_iter=steps).x
        else:
            got = ds.fit(
                model,
                np.zeros((4, 1)),
                np.zeros(4),
                loss=lambda prediction, target: prediction,
                optimizer=opt,
                batch_size=None,
                epochs=steps,
                dtype="float64",
                verbose=0,
            ).params
        for k in x0:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-12, err_msg=repr(mask))


# ------------------------------------------------------------------- the case of the fault


def test_fit_logistic_adamw_without_decay_of_the_bias_matches_torch_no_decay_group():
    """Noise features, 90 % positive labels: decaying the bias pulls it (and the mean
    prediction) towards 0.5; with the mask it reaches torch's AdamW with a no-decay group."""
    rng = np.random.default_rng(0)
    n, epochs, batch, lr, weight_decay = 1000, 60, 100, 0.05, 0.5
    features = rng.normal(size=(n, 5))
    labels = (rng.random(n) < 0.9).astype(np.float64)
    common = dict(batch_size=batch, epochs=epochs, seed=0, dtype="float64", verbose=0)
    common.update(standardize=False, patience=None, l2=0.0)  # torch's problem, as it is
    decayed = ds.fit(
        "logistic",
        features,
        labels,
        optimizer=ds.optim.adamw(lr=lr, weight_decay=weight_decay),
        **common,
    )
    masked = ds.fit(
        "logistic",
        features,
        labels,
        optimizer=ds.optim.adamw(lr=lr, weight_decay=weight_decay, weight_decay_mask="weights"),
        **common,
    )

    with torch_float64():
        w = torch.zeros(5, requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        reference = torch.optim.AdamW(
            [{"params": [w]}, {"params": [b], "weight_decay": 0.0}],
            lr=lr,
            weight_decay=weight_decay,
            foreach=False,
        )
        x_t, y_t = torch.tensor(features), torch.tensor(labels)
        for epoch in range(epochs):
            order = torch.tensor(ds.data.shuffle.epoch_order(0, epoch, n).astype(np.int64))
            for start in range(0, n, batch):
                rows = order[start : start + batch]
                reference.zero_grad()
                logits = x_t[rows] @ w + b
                torch.nn.functional.binary_cross_entropy_with_logits(logits, y_t[rows]).backward()
                reference.step()
        torch_bias = float(b.detach())
        torch_mean = float(torch.sigmoid(x_t @ w + b).mean().detach())

    mean_prediction = float(np.mean(masked.predict_proba(features)[:, 1]))
    np.testing.assert_allclose(float(masked.params["b"]), torch_bias, rtol=1e-9)
    np.testing.assert_allclose(mean_prediction, torch_mean, rtol=1e-9)
    assert torch_bias > 2.3 and abs(mean_prediction - labels.mean()) < 0.01
    # Without the mask the bias is decayed and the model under-predicts the positives.
    assert float(decayed.params["b"]) < 1.6
    assert float(np.mean(decayed.predict_proba(features)[:, 1])) < 0.83


# --------------------------------------------------------------------------- checkpoints


def _fit_data():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 3))
    return features, (features @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=60) > 0).astype(float)


@pytest.mark.parametrize(
    ("model", "mask"),
    [
        ("logistic", "weights"),
        ("logistic", {"w": True, "b": False}),
        (ds.models.mlp(hidden=(4,), task="binary"), [{"w": True, "b": False}, True]),
        (ds.models.mlp(hidden=(4,), task="binary"), [False, True]),
    ],
    ids=["shorthand", "pytree", "mlp-prefix", "mlp-layers"],
)
def test_a_shorthand_or_pytree_mask_is_stored_and_a_resumed_run_continues(tmp_path, model, mask):
    features, labels = _fit_data()
    opt = ds.optim.adamw(lr=0.05, weight_decay=0.5, weight_decay_mask=mask)
    common = dict(optimizer=opt, batch_size=16, dtype="float64", seed=1, verbose=0)
    whole = ds.fit(model, features, labels, epochs=6, **common)
    half = ds.fit(model, features, labels, epochs=3, **common)
    ds.save(tmp_path / "half.ckpt", half)
    loaded = ds.load(tmp_path / "half.ckpt")
    loaded_mask = loaded.optimizer.hyperparams["weight_decay_mask"]
    expected_flags = jax.tree.leaves(ds.optim.leaves.decayed_leaves(opt.hyperparams[
        "weight_decay_mask"], half.params))  # fmt: skip
    assert jax.tree.leaves(ds.optim.leaves.decayed_leaves(loaded_mask, half.params)) == (
        expected_flags
    )
    if mask == "weights":
        assert loaded.optimizer == opt
    # resumed without naming the optimizer: the file's, mask included
    resumed = ds.fit(
        model,
        features,
        labels,
        epochs=6,
        batch_size=16,
        dtype="float64",
        verbose=0,
        resume=tmp_path / "half.ckpt",
    )
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_mask_function_cannot_be_stored_and_load_says_to_pass_the_optimizer(tmp_path):
    features, labels = _fit_data()
    opt = ds.optim.adamw(lr=0.05, weight_decay_mask=lambda path, leaf: path == "w")
    result = ds.fit("logistic", features, labels, optimizer=opt, epochs=2, verbose=0)
    ds.save(tmp_path / "model.ckpt", result)
    with pytest.raises(CheckpointError) as error:
        ds.fit("logistic", features, labels, epochs=4, resume=ds.load(tmp_path / "model.ckpt"))
    message = str(error.value)
    assert "weight_decay_mask is a function, which a file cannot hold" in message
    assert "load(path, optimizer=...)" in message
    loaded = ds.load(tmp_path / "model.ckpt", optimizer=opt)
    np.testing.assert_array_equal(loaded.params["w"], result.params["w"])
    resumed = ds.fit(
        "logistic",
        features,
        labels,
        optimizer=opt,
        epochs=3,
        verbose=0,
        resume=tmp_path / "model.ckpt",
    )
    assert resumed.n_epochs == 3


# --------------------------------------------------------------------- parameter groups


def test_partition_matches_torch_sgd_with_two_param_groups():
    opt = partition(
        {
            "weights": ds.optim.sgd(lr=0.05, momentum=0.9, weight_decay=0.1),
            "biases": ds.optim.sgd(lr=0.2, nesterov=True, momentum=0.5),
        },
        {"w": "weights", "b": "biases"},
    )
    theirs = run_torch(
        lambda groups: torch.optim.SGD(groups, foreach=False),
        {
            "w": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
            "b": {"lr": 0.2, "momentum": 0.5, "nesterov": True},
        },
    )
    np.testing.assert_allclose(run_ours(opt), theirs, rtol=RTOL, atol=ATOL)


def test_partition_matches_torch_adamw_with_two_param_groups():
    opt = partition(
        {
            "decay": ds.optim.adamw(lr=1e-2, weight_decay=0.5),
            "rest": ds.optim.adamw(lr=3e-2, betas=(0.8, 0.99), weight_decay=0.0),
        },
        lambda path, leaf: "decay" if leaf.ndim == 2 else "rest",
    )
    theirs = run_torch(
        lambda groups: torch.optim.AdamW(groups, foreach=False),
        {
            "w": {"lr": 1e-2, "weight_decay": 0.5},
            "b": {"lr": 3e-2, "betas": (0.8, 0.99), "weight_decay": 0.0},
        },
    )
    np.testing.assert_allclose(run_ours(opt), theirs, rtol=RTOL, atol=ATOL)


def test_partition_trains_a_model_and_compares_by_its_parts():
    features, labels = _fit_data()
    groups = {"w": ds.optim.adamw(lr=0.05, weight_decay=0.5), "b": ds.optim.sgd(lr=0.1)}
    opt = partition(groups, lambda params: {"w": "w", "b": "b"})
    result = ds.fit("logistic", features, labels, optimizer=opt, epochs=3, verbose=0)
    assert result.opt_state.groups["w"].exp_avg["b"] is None
    assert result.opt_state.groups["w"].exp_avg["w"].shape == (3,)
    assert partition(groups, {"w": "w", "b": "b"}) == partition(dict(groups), {"b": "b", "w": "w"})
    assert partition(groups, {"w": "w", "b": "b"}) != partition(groups, {"w": "b", "b": "w"})


def test_partition_refuses_what_it_cannot_do():
    with pytest.raises(InputError, match="line search"):
        partition({"a": ds.optim.lbfgs(), "b": ds.optim.sgd()}, {"w": "a", "b": "b"})
    with pytest.raises(InputError, match="one of the labels 'a', 'b', got 'c'"):
        partition({"a": ds.optim.sgd(), "b": ds.optim.sgd()}, {"w": "a", "b": "c"})
    with pytest.raises(DescendTypeError, match="dict from label to optimizer"):
        partition([ds.optim.sgd()], {"w": "a"})
    opt = partition({"a": ds.optim.sgd(), "b": ds.optim.sgd()}, {"w": "a"})
    with pytest.raises(InputError, match="structure of the params"):
        opt.init(PARAMS)


# ---------------------------------------------------------------------- several devices

SEVERAL_DEVICES = """
import json
import jax, numpy as np
import descend as ds

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 4))
y = (rng.random(96) < 0.9).astype(float)
opt = ds.optim.adamw(lr=0.05, weight_decay=0.5, weight_decay_mask="weights")
runs = {
    where: ds.fit("logistic", X, y, optimizer=opt, batch_size=32, epochs=4, seed=0,
                  dtype="float64", verbose=0, devices=devices)
    for where, devices in (("one", None), ("all", "all"))
}
print(json.dumps({"devices": len(jax.devices()),
                  **{k: [*r.params["w"].tolist(), float(r.params["b"])] for k, r in runs.items()}}))
"""


def test_a_masked_optimizer_trains_alike_on_one_device_and_on_two(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DESCEND_") and key != "XLA_FLAGS"
    }
    env.update(
        PYTHONPATH=str(Path(ds.__file__).resolve().parents[1]),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [sys.executable, "-c", SEVERAL_DEVICES], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["devices"] == 2
    np.testing.assert_allclose(report["all"], report["one"], rtol=1e-10, atol=1e-12)


def test_partition_passes_the_objectives_value_to_a_group_that_watches_it():
    """A reduce_on_plateau group sees the loss: its leaves follow the wrapped
    optimizer's steps shrunk on the plateau, as when it steps them alone."""
    watching = ds.optim.reduce_on_plateau(ds.optim.sgd(lr=0.1), patience=1, factor=0.5)
    opt = partition({"w": watching, "b": ds.optim.sgd(lr=0.1)}, {"w": "w", "b": "b"})
    params = {"w": jnp.ones(2), "b": jnp.ones(())}
    alone_params, alone_state = {"w": params["w"]}, watching.init({"w": params["w"]})
    state = opt.init(params)
    for value in (1.0, 1.0, 1.0, 1.0):  # a plateau: the scale halves
        grads = jax.tree.map(jnp.ones_like, params)
        params, state = opt.step(params, grads, state, value=jnp.asarray(value))
        alone_params, alone_state = watching.step(
            alone_params, {"w": grads["w"]}, alone_state, value=jnp.asarray(value)
        )
    np.testing.assert_array_equal(params["w"], alone_params["w"])
    assert float(state.groups["w"].scale) < 1.0
    np.testing.assert_allclose(params["b"], 1.0 - 4 * 0.1, rtol=1e-12)


def test_a_pytree_trust_ratio_mask_is_stored_and_a_resumed_run_continues(tmp_path):
    """Every per-leaf setting is stored as the weight-decay mask is (LARS has two)."""
    features, labels = _fit_data()
    opt = ds.optim.lars(
        lr=0.05,
        weight_decay=0.1,
        weight_decay_mask={"w": True, "b": False},
        trust_ratio_mask={"w": False, "b": True},
    )
    common = dict(optimizer=opt, batch_size=16, dtype="float64", seed=1, verbose=0)
    whole = ds.fit("logistic", features, labels, epochs=6, **common)
    half = ds.fit("logistic", features, labels, epochs=3, **common)
    ds.save(tmp_path / "half.ckpt", half)
    loaded = ds.load(tmp_path / "half.ckpt").optimizer.hyperparams
    for setting in ("weight_decay_mask", "trust_ratio_mask"):
        assert loaded[setting] == opt.hyperparams[setting], setting
    resumed = ds.fit(
        "logistic", features, labels, epochs=6, batch_size=16, dtype="float64", verbose=0,
        resume=tmp_path / "half.ckpt",
    )  # fmt: skip
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)
