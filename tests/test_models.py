"""Models: shapes, outputs against NumPy / torch / scikit-learn, value semantics, errors."""

from __future__ import annotations

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import torch
from jax.test_util import check_grads
from sklearn.linear_model import LogisticRegression

from descend import models
from descend.errors import DescendTypeError, InputError

N = 6


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _random_like(params, seed=0):
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(rng.normal(size=leaf.shape), leaf.dtype) for leaf in leaves]
    )


@pytest.mark.parametrize(
    ("model", "n_features", "n_outputs", "param_shapes", "output_shape"),
    [
        (models.linear(), 3, 1, [(), (3,)], (N,)),
        (models.linear(), 3, 2, [(2,), (3, 2)], (N, 2)),
        (models.logistic(), 3, 1, [(), (3,)], (N,)),
        (models.softmax(), 3, 4, [(4,), (3, 4)], (N, 4)),
        (models.polynomial(5), 1, 1, [(), (5,)], (N,)),
        (models.mlp(hidden=(8, 4)), 3, 1, [(8,), (3, 8), (4,), (8, 4), (1,), (4, 1)], (N,)),
        (models.mlp(hidden=(8,)), 3, 2, [(8,), (3, 8), (2,), (8, 2)], (N, 2)),
        (models.mlp(hidden=(8,), task="binary"), 3, 1, [(8,), (3, 8), (1,), (8, 1)], (N,)),
        (models.mlp(hidden=(8,), task="multiclass"), 3, 5, [(8,), (3, 8), (5,), (8, 5)], (N, 5)),
        (models.mlp(hidden=()), 3, 1, [(1,), (3, 1)], (N,)),
    ],
    ids=repr,
)
def test_init_and_apply_shapes(model, n_features, n_outputs, param_shapes, output_shape):
    params = model.init(jax.random.key(0), n_features, n_outputs)
    assert [leaf.shape for leaf in jax.tree.leaves(params)] == param_shapes
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    X = np.ones((N, n_features))
    assert model.apply(params, X).shape == output_shape


@pytest.mark.parametrize(
    "model", [models.linear(), models.logistic(), models.softmax(), models.polynomial(2)], ids=repr
)
def test_convex_models_start_at_zero(model):
    params = model.init(None, 1, 3 if model.task == "multiclass" else 1)
    assert all(not np.any(leaf) for leaf in jax.tree.leaves(params))


def test_init_dtype_float64(x64):
    params = models.mlp(hidden=(4,)).init(0, 2, dtype=jnp.float64)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype("float64")}
    assert models.linear().init(0, 2, dtype="float64")["w"].dtype == jnp.float64


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_linear_apply_equals_x_at_w_plus_b(x64, n_outputs):
    model = models.linear()
    params = _random_like(model.init(None, 4, n_outputs, dtype=jnp.float64))
    X = np.random.default_rng(1).normal(size=(N, 4))
    expected = X @ np.asarray(params["w"]) + np.asarray(params["b"])
    np.testing.assert_allclose(np.asarray(model.apply(params, X)), expected, rtol=1e-13)


@pytest.mark.parametrize("column", [False, True])
def test_polynomial_apply_equals_numpy_polyval(x64, column):
    model = models.polynomial(4)
    params = _random_like(model.init(None, 1, dtype=jnp.float64))
    x = np.random.default_rng(2).normal(size=N)
    coefficients = np.concatenate([[params["b"]], np.asarray(params["w"])])
    expected = np.polynomial.polynomial.polyval(x, coefficients)
    outputs = model.apply(params, x[:, None] if column else x)
    np.testing.assert_allclose(np.asarray(outputs), expected, rtol=1e-12)


TORCH_ACTIVATIONS = {
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
}


@pytest.mark.parametrize(("task", "n_outputs"), [("regression", 1), ("multiclass", 3)])
@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_mlp_matches_torch_sequential_with_same_weights(x64, activation, task, n_outputs):
    torch.manual_seed(0)
    sizes = (4, 8, 5, n_outputs)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(fan_in, fan_out).double(), TORCH_ACTIVATIONS[activation]()]
    network = torch.nn.Sequential(*layers[:-1])
    params = [
        {"w": jnp.asarray(layer.weight.detach().numpy().T), "b": jnp.asarray(layer.bias.detach())}
        for layer in network
        if isinstance(layer, torch.nn.Linear)
    ]
    X = np.random.default_rng(3).normal(size=(N, 4))
    expected = network(torch.from_numpy(X)).detach().numpy()
    model = models.mlp(hidden=(8, 5), activation=activation, task=task)
    outputs = model.apply(params, X)
    np.testing.assert_allclose(
        np.asarray(outputs), expected[:, 0] if n_outputs == 1 else expected, rtol=1e-12
    )


@pytest.mark.parametrize(
    ("activation", "hidden_limit"), [("relu", (6 / 3) ** 0.5), ("tanh", (6 / 203) ** 0.5)]
)
def test_mlp_init_is_uniform_he_or_glorot_with_zero_biases(activation, hidden_limit):
    params = models.mlp(hidden=(200,), activation=activation).init(jax.random.key(1), 3)
    hidden_w = np.asarray(params[0]["w"])
    assert np.abs(hidden_w).max() <= hidden_limit
    assert np.abs(hidden_w).max() > 0.95 * hidden_limit
    assert np.abs(np.asarray(params[1]["w"])).max() <= (6 / 201) ** 0.5
    assert all(not np.any(layer["b"]) for layer in params)


def test_mlp_init_is_deterministic_in_key_and_accepts_int_seeds():
    model = models.mlp(hidden=(4,))
    seeded = model.init(7, 3)
    keyed = model.init(jax.random.key(7), 3)
    other = model.init(8, 3)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), seeded, keyed))
    assert not np.array_equal(seeded[0]["w"], other[0]["w"])


def test_mlp_gradient_matches_finite_differences(x64):
    model = models.mlp(hidden=(5,), activation="tanh", task="multiclass")
    params = model.init(0, 3, 2, dtype=jnp.float64)
    X = np.random.default_rng(4).normal(size=(N, 3))
    check_grads(lambda p: jnp.sum(model.apply(p, X) ** 2), (params,), order=1, modes=("rev",))


def test_custom_model_wraps_apply_and_returns_its_params_from_init():
    def apply(params, X):
        return jnp.sin(X @ params["w"])

    params = {"w": np.array([1.0, -2.0])}
    model = models.custom(apply, params, task="binary")
    initial = model.init(jax.random.key(3), 99, 1)
    np.testing.assert_array_equal(initial["w"], params["w"])
    assert model.init(None, 1) is initial
    assert model.default_loss == "bce_with_logits"
    X = np.random.default_rng(5).normal(size=(N, 2))
    np.testing.assert_allclose(
        np.asarray(model.apply(initial, X)), np.sin(X @ params["w"]), rtol=1e-6
    )
    assert model == models.custom(apply, params, task="binary")
    assert model != models.custom(apply, dict(params), task="binary")
    assert model != models.custom(apply, params, task="regression")


def test_models_are_equal_and_hashable_by_value():
    assert models.linear() == models.linear()
    assert hash(models.mlp(hidden=(8,))) == hash(models.mlp(hidden=[8]))
    assert models.mlp(hidden=(8,)) != models.mlp(hidden=(16,))
    assert models.polynomial(2) != models.polynomial(3)
    assert models.linear() != models.logistic()
    assert len({models.softmax(), models.softmax(), models.get("softmax")}) == 1


def test_jit_with_static_model_compiles_once_for_equal_models():
    traces = []

    def forward(model, params, X):
        traces.append(model)
        return model.apply(params, X)

    jitted = jax.jit(forward, static_argnums=0)
    params = models.linear().init(None, 2)
    X = jnp.ones((N, 2))
    jitted(models.linear(), params, X)
    jitted(models.linear(), params, X)
    assert len(traces) == 1
    jitted(models.get("linear"), params, X)
    assert len(traces) == 1


@pytest.mark.parametrize(
    "model",
    [
        models.linear(),
        models.logistic(),
        models.softmax(),
        models.polynomial(3),
        models.mlp(hidden=(8, 4), activation="gelu", task="binary"),
    ],
    ids=repr,
)
def test_config_round_trips_through_json(model):
    config = json.loads(json.dumps(model.config()))
    assert models.from_config(config) == model
    assert config["name"] == model.name


def test_custom_config_cannot_be_rebuilt():
    config = models.custom(lambda p, X: X, {}).config()
    assert config == {"name": "custom", "task": "regression"}
    with pytest.raises(InputError, match="custom"):
        models.from_config(config)


@pytest.mark.parametrize("config", [{"degree": 2}, ["linear"], {"name": "linear", "degree": 2}])
def test_from_config_rejects_malformed_configs(config):
    with pytest.raises(InputError):
        models.from_config(config)


def test_logistic_predict_and_predict_proba_match_sklearn(x64):
    rng = np.random.default_rng(6)
    params = {"w": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(0.3)}
    X = rng.normal(size=(N, 3))
    reference = LogisticRegression()
    reference.coef_ = np.asarray(params["w"])[None, :]
    reference.intercept_ = np.array([0.3])
    reference.classes_ = np.array([0, 1])
    np.testing.assert_allclose(
        np.asarray(models.predict_proba(models.logistic(), params, X)),
        reference.predict_proba(X),
        rtol=1e-12,
    )
    labels = models.predict(models.logistic(), params, X)
    np.testing.assert_array_equal(np.asarray(labels), reference.predict(X))


def test_softmax_predict_and_predict_proba_match_scipy(x64):
    model = models.softmax()
    params = _random_like(model.init(None, 3, 4, dtype=jnp.float64), seed=7)
    X = np.random.default_rng(8).normal(size=(N, 3))
    logits = X @ np.asarray(params["w"]) + np.asarray(params["b"])
    probabilities = models.predict_proba(model, params, X)
    np.testing.assert_allclose(
        np.asarray(probabilities), scipy.special.softmax(logits, axis=1), rtol=1e-12
    )
    np.testing.assert_array_equal(
        np.asarray(models.predict(model, params, X)), logits.argmax(axis=1)
    )


def test_binary_mlp_predict_thresholds_the_logit_at_zero():
    model = models.mlp(hidden=(4,), task="binary")
    params = model.init(0, 3)
    X = np.random.default_rng(9).normal(size=(20, 3))
    logits = np.asarray(model.apply(params, X))
    np.testing.assert_array_equal(np.asarray(models.predict(model, params, X)), logits > 0)
    probabilities = np.asarray(models.predict_proba(model, params, X))
    np.testing.assert_allclose(probabilities[:, 1], scipy.special.expit(logits), rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_regression_predict_returns_outputs_and_predict_proba_raises():
    model = models.linear()
    params = _random_like(model.init(None, 2))
    X = np.ones((N, 2))
    np.testing.assert_array_equal(models.predict(model, params, X), model.apply(params, X))
    with pytest.raises(InputError, match="predict_proba needs a classifier"):
        models.predict_proba(model, params, X)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("hidden", [(0,), (8, -1), (2.5,), "64", None, (True,)])
def test_mlp_rejects_bad_hidden_sizes(hidden):
    with pytest.raises(InputError, match="hidden"):
        models.mlp(hidden=hidden)


def test_mlp_rejects_unknown_activation_listing_valid_ones():
    with pytest.raises(InputError, match=r"did you mean 'relu'.*gelu, relu, sigmoid, silu, tanh"):
        models.mlp(activation="Relu")


@pytest.mark.parametrize("make", [lambda: models.mlp(task="ranking"), lambda: models.custom(
    lambda p, X: X, {}, task="ranking")])  # fmt: skip
def test_unknown_task_raises(make):
    with pytest.raises(InputError, match="binary, multiclass, regression"):
        make()


@pytest.mark.parametrize("degree", [0, -2, 1.5, "2"])
def test_polynomial_rejects_degree_below_one_or_not_integer(degree):
    with pytest.raises(InputError, match="degree"):
        models.polynomial(degree)


def test_unknown_model_name_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'mlp'"):
        models.get("mpl")
    with pytest.raises(InputError, match="degree"):
        models.get("linear", degree=2)
    assert models.names() == ("linear", "logistic", "mlp", "polynomial", "softmax")


@pytest.mark.parametrize(
    ("model", "n_features", "n_outputs", "match"),
    [
        (models.logistic(), 3, 3, "softmax"),
        (models.softmax(), 3, 1, "classes"),
        (models.polynomial(2), 2, 1, "one input feature"),
        (models.linear(), 0, 1, "n_features"),
    ],
    ids=str,
)
def test_init_rejects_inconsistent_sizes(model, n_features, n_outputs, match):
    with pytest.raises(InputError, match=match):
        model.init(None, n_features, n_outputs)


def test_init_rejects_missing_key_and_non_float_dtype():
    with pytest.raises(InputError, match="random key"):
        models.mlp().init(None, 3)
    with pytest.raises(InputError, match="dtype"):
        models.linear().init(None, 3, dtype=jnp.int32)


@pytest.mark.parametrize(
    ("model", "X", "match"),
    [
        (models.linear(), np.ones(N), r"reshape\(-1, 1\)"),
        (models.linear(), np.ones((N, 3)), r"\(n_samples, 2\).*\(6, 3\)"),
        (models.mlp(hidden=(4,)), np.ones((N, 5)), r"\(n_samples, 2\)"),
        (models.polynomial(2), np.ones((N, 2)), r"\(n,\) or \(n, 1\)"),
    ],
    ids=str,
)
def test_apply_rejects_inputs_of_the_wrong_shape(model, X, match):
    params = model.init(0, 1 if model.name == "polynomial" else 2)
    with pytest.raises(InputError, match=match):
        model.apply(params, X)


def test_predict_rejects_non_models():
    with pytest.raises(DescendTypeError):
        models.predict("linear", {}, np.ones((2, 1)))
