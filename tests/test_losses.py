"""Losses against torch.nn.functional (float64), their gradients, and their errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

from descend import losses
from descend.errors import DescendTypeError, InputError

N, K, C = 7, 3, 4

# torch warns that kl_div's "mean" will change meaning; descend keeps today's meaning.
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _torch_reduce(elementwise: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return elementwise.mean()
    return elementwise.sum() if reduction == "sum" else elementwise


def _hinge_torch(p, t, reduction, squared=False):
    margin = torch.clamp(1 - (2 * t - 1) * p, min=0)
    return _torch_reduce(margin**2 if squared else margin, reduction)


def _regression(rng):
    return rng.normal(size=(N, K)), rng.normal(size=(N, K))


def _probabilities(rng):
    return 1 / (1 + np.exp(-rng.normal(size=(N, K)))), rng.uniform(size=(N, K))


def _binary(rng):
    return 3 * rng.normal(size=(N, K)), rng.integers(0, 2, size=(N, K)).astype(float)


def _labels(rng):
    return 2 * rng.normal(size=(N, C)), rng.integers(0, C, size=N)


def _log_probs_labels(rng):
    logits, labels = _labels(rng)
    return np.asarray(jax.nn.log_softmax(logits, axis=1)), labels


def _soft_targets(rng):
    return 2 * rng.normal(size=(N, C)), np.asarray(jax.nn.softmax(rng.normal(size=(N, C))))


def _kl_inputs(rng):
    log_q = np.asarray(jax.nn.log_softmax(rng.normal(size=(N, C))))
    return log_q, np.asarray(jax.nn.softmax(rng.normal(size=(N, C))))


def _counts(rng):
    return rng.normal(size=(N, K)), rng.poisson(2.0, size=(N, K)).astype(float)


def _rates_counts(rng):
    return rng.uniform(0.5, 3.0, size=(N, K)), rng.poisson(2.0, size=(N, K)).astype(float)


CLASS_WEIGHTS = np.array([0.5, 2.0, 1.0, 3.0])


@dataclass
class Case:
    id: str
    name: str
    make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    torch_fn: Callable[..., torch.Tensor]
    kwargs: dict[str, Any] = field(default_factory=dict)
    class_weighted: bool = False  # the mean divides by the class weights of the labels

    def __str__(self):
        return self.id


CASES = [
    Case("mse", "mse", _regression, lambda p, t, r: F.mse_loss(p, t, reduction=r)),
    Case("mae", "mae", _regression, lambda p, t, r: F.l1_loss(p, t, reduction=r)),
    Case("l1", "l1", _regression, lambda p, t, r: F.l1_loss(p, t, reduction=r)),
    Case(
        "huber",
        "huber",
        _regression,
        lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=0.7),
        {"delta": 0.7},
    ),
    Case(
        "smooth_l1",
        "smooth_l1",
        _regression,
        lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.5),
        {"beta": 0.5},
    ),
    Case(
        "smooth_l1_beta0",
        "smooth_l1",
        _regression,
        lambda p, t, r: F.smooth_l1_loss(p, t, reduction=r, beta=0.0),
        {"beta": 0.0},
    ),
    Case(
        "log_cosh",
        "log_cosh",
        _regression,
        lambda p, t, r: _torch_reduce(torch.log(torch.cosh(p - t)), r),
    ),
    Case("bce", "bce", _probabilities, lambda p, t, r: F.binary_cross_entropy(p, t, reduction=r)),
    Case(
        "bce_with_logits",
        "bce_with_logits",
        _binary,
        lambda p, t, r: F.binary_cross_entropy_with_logits(p, t, reduction=r),
    ),
    Case(
        "bce_with_logits_pos_weight",
        "bce_with_logits",
        _binary,
        lambda p, t, r: F.binary_cross_entropy_with_logits(
            p, t, reduction=r, pos_weight=torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
        ),
        {"pos_weight": np.array([0.5, 1.0, 3.0])},
    ),
    Case("hinge", "hinge", _binary, _hinge_torch),
    Case(
        "squared_hinge",
        "squared_hinge",
        _binary,
        lambda p, t, r: _hinge_torch(p, t, r, squared=True),
    ),
    Case(
        "cross_entropy",
        "cross_entropy",
        _labels,
        lambda p, t, r: F.cross_entropy(p, t, reduction=r),
    ),
    Case(
        "cross_entropy_class_weights_smoothing",
        "cross_entropy",
        _labels,
        lambda p, t, r: F.cross_entropy(
            p, t, reduction=r, weight=torch.tensor(CLASS_WEIGHTS), label_smoothing=0.2
        ),
        {"class_weights": CLASS_WEIGHTS, "label_smoothing": 0.2},
        class_weighted=True,
    ),
    Case(
        "cross_entropy_soft_targets",
        "cross_entropy",
        _soft_targets,
        lambda p, t, r: F.cross_entropy(
            p, t, reduction=r, weight=torch.tensor(CLASS_WEIGHTS), label_smoothing=0.1
        ),
        {"class_weights": CLASS_WEIGHTS, "label_smoothing": 0.1},
    ),
    Case("nll", "nll", _log_probs_labels, lambda p, t, r: F.nll_loss(p, t, reduction=r)),
    Case(
        "nll_class_weights",
        "nll",
        _log_probs_labels,
        lambda p, t, r: F.nll_loss(p, t, reduction=r, weight=torch.tensor(CLASS_WEIGHTS)),
        {"class_weights": CLASS_WEIGHTS},
        class_weighted=True,
    ),
    Case("kl_div", "kl_div", _kl_inputs, lambda p, t, r: F.kl_div(p, t, reduction=r)),
    Case(
        "kl_div_log_target",
        "kl_div",
        _kl_inputs,
        lambda p, t, r: F.kl_div(p, torch.log(t), reduction=r, log_target=True),
        {"log_target": True},
    ),
    Case(
        "poisson_nll",
        "poisson_nll",
        _counts,
        lambda p, t, r: F.poisson_nll_loss(p, t, reduction=r),
    ),
    Case(
        "poisson_nll_rates_full",
        "poisson_nll",
        _rates_counts,
        lambda p, t, r: F.poisson_nll_loss(p, t, log_input=False, full=True, reduction=r),
        {"log_input": False, "full": True},
    ),
]


def _inputs(case: Case, seed: int = 0):
    predictions, targets = case.make(np.random.default_rng(seed))
    if case.kwargs.get("log_target"):
        targets = np.log(targets)
    return predictions, targets


def _to_torch(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array))
    return tensor if tensor.dtype == torch.int64 else tensor.to(torch.float64)


def _torch_args(case: Case, predictions, targets):
    # The kl_div(log_target) oracle takes probabilities and logs them itself.
    if case.kwargs.get("log_target"):
        targets = np.exp(targets)
    return _to_torch(predictions), _to_torch(targets)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_loss_matches_torch_for_each_reduction(case, reduction):
    predictions, targets = _inputs(case)
    ours = losses.get(case.name)(predictions, targets, reduction=reduction, **case.kwargs)
    expected = case.torch_fn(*_torch_args(case, predictions, targets), reduction).numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_sample_weights_give_weighted_reduction_of_torch_elementwise_loss(case, reduction):
    predictions, targets = _inputs(case, seed=1)
    weights = np.random.default_rng(2).uniform(0.1, 2.0, size=N)
    ours = losses.get(case.name)(
        predictions, targets, reduction=reduction, weights=weights, **case.kwargs
    )
    elementwise = case.torch_fn(*_torch_args(case, predictions, targets), "none")
    sample_weights = torch.from_numpy(weights).reshape((N,) + (1,) * (elementwise.ndim - 1))
    weighted = elementwise * sample_weights
    mass = torch.ones_like(elementwise)
    if case.class_weighted:
        mass = torch.from_numpy(CLASS_WEIGHTS[targets])
    expected = {
        "none": weighted,
        "sum": weighted.sum(),
        "mean": weighted.sum() / (mass * sample_weights).sum(),
    }[reduction]
    np.testing.assert_allclose(np.asarray(ours), expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_batchmean_matches_torch_with_and_without_weights(log_target):
    log_q, p = _kl_inputs(np.random.default_rng(3))
    target = np.log(p) if log_target else p
    ours = losses.kl_div(log_q, target, reduction="batchmean", log_target=log_target)
    expected = F.kl_div(
        _to_torch(log_q), _to_torch(target), reduction="batchmean", log_target=log_target
    )
    np.testing.assert_allclose(float(ours), expected.item(), rtol=1e-12)
    weights = np.random.default_rng(4).uniform(0.1, 2.0, size=N)
    ours = losses.kl_div(
        log_q, target, reduction="batchmean", weights=weights, log_target=log_target
    )
    per_sample = F.kl_div(
        _to_torch(log_q), _to_torch(target), reduction="none", log_target=log_target
    ).sum(dim=1)
    expected = (per_sample * torch.from_numpy(weights)).sum() / weights.sum()
    np.testing.assert_allclose(float(ours), expected.item(), rtol=1e-12)


def test_hinge_accepts_zero_one_and_plus_minus_one_labels_alike():
    scores, labels = _binary(np.random.default_rng(5))
    for fn in (losses.hinge, losses.squared_hinge):
        np.testing.assert_allclose(
            np.asarray(fn(scores, labels, reduction="none")),
            np.asarray(fn(scores, 2 * labels - 1, reduction="none")),
        )


def test_cross_entropy_one_hot_integer_targets_equal_class_indices():
    logits, labels = _labels(np.random.default_rng(6))
    one_hot = np.eye(C, dtype=np.int64)[labels]
    np.testing.assert_allclose(
        float(losses.cross_entropy(logits, one_hot)), float(losses.cross_entropy(logits, labels))
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.05, 0.5, 1.0])
def test_cross_entropy_label_smoothing_matches_torch(label_smoothing):
    logits, labels = _labels(np.random.default_rng(7))
    ours = losses.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    expected = F.cross_entropy(
        _to_torch(logits), _to_torch(labels), label_smoothing=label_smoothing
    )
    np.testing.assert_allclose(float(ours), expected.item(), rtol=1e-12)


# Extreme inputs where the textbook formula overflows to inf or nan.
EXTREME_LOGITS = np.array([1e4, -1e4, 1e4, -1e4, 0.0])
EXTREME_LABELS = np.array([0.0, 1.0, 1.0, 0.0, 1.0])


def test_bce_with_logits_is_finite_and_equals_torch_at_extreme_logits():
    with np.errstate(all="ignore"):
        probabilities = 1 / (1 + np.exp(-EXTREME_LOGITS))
        naive = -(
            EXTREME_LABELS * np.log(probabilities)
            + (1 - EXTREME_LABELS) * np.log(1 - probabilities)
        )
    assert not np.all(np.isfinite(naive))
    logits = torch.tensor(EXTREME_LOGITS, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(logits, _to_torch(EXTREME_LABELS))
    expected.backward()
    fn = lambda z: losses.binary_cross_entropy_with_logits(z, EXTREME_LABELS)  # noqa: E731
    value, grad = jax.value_and_grad(fn)(jnp.asarray(EXTREME_LOGITS))
    assert np.isfinite(float(value))
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), logits.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_cross_entropy_and_nll_are_finite_and_equal_torch_at_extreme_logits():
    logits_np = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]])
    labels = np.array([1, 0, 2])
    logits = torch.tensor(logits_np, requires_grad=True)
    expected = F.cross_entropy(logits, _to_torch(labels))
    expected.backward()
    value, grad = jax.value_and_grad(losses.cross_entropy)(jnp.asarray(logits_np), labels)
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), logits.grad.numpy(), rtol=1e-12, atol=1e-300)
    log_probs = jax.nn.log_softmax(jnp.asarray(logits_np), axis=1)
    expected_nll = F.nll_loss(torch.log_softmax(_to_torch(logits_np), 1), _to_torch(labels))
    np.testing.assert_allclose(float(losses.nll(log_probs, labels)), expected_nll.item())


def test_log_cosh_is_finite_where_cosh_overflows():
    gaps = torch.tensor([1e4, -1e4, 800.0])
    assert torch.isinf(torch.log(torch.cosh(gaps.double()))).all()
    ours = losses.log_cosh(gaps.double().numpy(), np.zeros(3), reduction="none")
    # For |d| > 40, log cosh d = |d| - log 2 to within float64 rounding.
    expected = torch.abs(gaps.double()) - math.log(2.0)
    np.testing.assert_allclose(np.asarray(ours), expected.numpy(), rtol=1e-15)


def test_bce_clamps_log_at_minus_100_and_keeps_torch_gradient_at_zero_and_one():
    probabilities = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.3])
    targets = np.array([1.0, 0.0, 0.0, 1.0, 0.7, 0.2])
    reference = torch.tensor(probabilities, requires_grad=True)
    expected = F.binary_cross_entropy(reference, _to_torch(targets), reduction="sum")
    expected.backward()
    value, grad = jax.value_and_grad(
        lambda p: losses.binary_cross_entropy(p, targets, reduction="sum")
    )(jnp.asarray(probabilities))
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(np.asarray(grad), reference.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_loss_gradient_matches_finite_differences(case):
    predictions, targets = _inputs(case, seed=8)
    fn = losses.get(case.name)
    weights = np.random.default_rng(9).uniform(0.5, 1.5, size=N)

    def objective(p):
        return fn(p, targets, weights=weights, **case.kwargs)

    check_grads(objective, (jnp.asarray(predictions),), order=1, modes=("rev",))


@pytest.mark.parametrize("name", losses.names())
def test_result_dtype_follows_predictions(name):
    case = next(case for case in CASES if case.name == name)
    predictions, targets = _inputs(case)
    value = losses.get(name)(predictions.astype(np.float32), targets, **case.kwargs)
    assert value.dtype == jnp.float32


@pytest.mark.parametrize("case", CASES[::3], ids=str)
def test_loss_under_jit_equals_eager(case):
    predictions, targets = _inputs(case)
    fn = losses.get(case.name)
    jitted = jax.jit(lambda p, t: fn(p, t, **case.kwargs))
    np.testing.assert_allclose(
        float(jitted(predictions, targets)), float(fn(predictions, targets, **case.kwargs))
    )


# ---------------------------------------------------------------- errors and registry
@pytest.mark.parametrize("name", ["mse", "bce_with_logits", "hinge", "kl_div", "poisson_nll"])
def test_mismatched_shapes_raise_naming_both_shapes(name):
    with pytest.raises(InputError, match=r"\(5,\).*\(5, 1\)"):
        losses.get(name)(np.zeros(5), np.zeros((5, 1)))


@pytest.mark.parametrize("name", losses.names())
def test_unknown_reduction_lists_valid_ones(name):
    case = next(case for case in CASES if case.name == name)
    predictions, targets = _inputs(case)
    with pytest.raises(InputError, match="'mean', 'sum', 'none'"):
        losses.get(name)(predictions, targets, reduction="average", **case.kwargs)


def test_batchmean_is_accepted_only_by_kl_div():
    with pytest.raises(InputError, match="reduction"):
        losses.mse(np.zeros(3), np.zeros(3), reduction="batchmean")


def test_weights_of_wrong_shape_raise():
    with pytest.raises(InputError, match=r"weights.*\(4,\)"):
        losses.mse(np.zeros((4, 2)), np.zeros((4, 2)), weights=np.ones(8))


@pytest.mark.parametrize(
    ("targets", "kwargs", "match"),
    [
        (np.array([0.0, 1.0, 2.0]), {}, "integers"),
        (np.array([0, 1, 4]), {}, r"\[0, 3\]"),
        (np.array([0, 1]), {}, r"shape \(2,\)"),
        (np.array([0, 1, 2]), {"class_weights": np.ones(3)}, "class_weights"),
        (np.array([0, 1, 2]), {"label_smoothing": 1.5}, "label_smoothing"),
    ],
)
def test_cross_entropy_rejects_bad_targets_and_settings(targets, kwargs, match):
    with pytest.raises(InputError, match=match):
        losses.cross_entropy(np.zeros((3, 4)), targets, **kwargs)


def test_nll_rejects_probability_targets():
    with pytest.raises(InputError, match="cross_entropy"):
        losses.nll(np.zeros((3, 4)), np.full((3, 4), 0.25))


@pytest.mark.parametrize(
    ("fn", "kwargs"), [(losses.huber, {"delta": 0.0}), (losses.smooth_l1, {"beta": -1.0})]
)
def test_bad_shape_parameters_raise(fn, kwargs):
    with pytest.raises(InputError, match=next(iter(kwargs))):
        fn(np.zeros(3), np.zeros(3), **kwargs)


def test_unknown_loss_name_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'cross_entropy'"):
        losses.get("cross_entropi")


def test_get_rejects_non_names_and_passes_functions_through():
    with pytest.raises(DescendTypeError):
        losses.get(3)
    assert losses.get(losses.mse) is losses.mse


def test_names_lists_every_registered_loss():
    assert set(losses.names()) == {
        "mse", "mae", "l1", "huber", "smooth_l1", "log_cosh", "bce", "bce_with_logits",
        "cross_entropy", "nll", "hinge", "squared_hinge", "kl_div", "poisson_nll",
    }  # fmt: skip
    for name in losses.names():
        assert callable(losses.get(name))
