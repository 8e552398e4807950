"""The learning-rate finder (``ds.lr_find``) against references computed here.

The losses against a plain PyTorch loop over the same batches with the same rates, and
against ``fit``'s own history with the same schedule; the rates against the exponential
formula; the smoothing against fastai's formula and the suggestion against
``numpy.gradient``, recomputed with NumPy from the recorded losses; the divergence stop
against its rule.
"""

from __future__ import annotations

import copy

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

import descend as ds
from descend import engine
from descend.data.shuffle import epoch_order
from descend.errors import DescendTypeError, InputError

# The problem as given: no scaling, no penalty (what a plain loop computes).
PLAIN = dict(standardize=False, l2=0.0)


def breast_cancer():
    data = ds.data.load_dataset("breast_cancer")
    return StandardScaler().fit_transform(data.X.astype(np.float64)), data.y.astype(np.float64)


def regression_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, X @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0 + 0.1 * rng.normal(size=n)


def exponential_formula(start_lr, end_lr, num_iter):
    k = np.arange(num_iter)
    return start_lr * (end_lr / start_lr) ** (k / (num_iter - 1))


def fastai_smoothing(losses, smooth_f):
    """fastai's AvgSmoothLoss: torch.lerp(loss, average, beta), divided by 1 - beta**count."""
    beta, average, out = 1.0 - smooth_f, 0.0, []
    for count, loss in enumerate(np.asarray(losses, float), start=1):
        average = loss + beta * (average - loss)
        out.append(average / (1.0 - beta**count))
    return np.asarray(out)


def torch_range_test(X, y, *, make_optimizer, lrs, batch_size, seed=0):
    """Logistic regression from zero weights: update k takes the k-th whole batch of the
    passes' orders (epoch_order of the pass, the short last batch dropped) at rate lrs[k];
    the loss of each batch before its step."""
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([w, b])
    per_pass = len(X) // batch_size
    losses = []
    for k, lr in enumerate(lrs):
        order = epoch_order(seed, k // per_pass, len(X))
        batch = torch.from_numpy(order[(k % per_pass) * batch_size :][:batch_size].astype(np.int64))
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X_t[batch] @ w + b, y_t[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.asarray(losses)


# ---------------------------------------------------------------- the recorded losses


@pytest.mark.parametrize(
    "optimizer, make_torch",
    [
        ("adam", lambda params: torch.optim.Adam(params)),
        (
            ds.optim.sgd(lr=0.3, momentum=0.9, nesterov=True),
            lambda params: torch.optim.SGD(params, lr=0.3, momentum=0.9, nesterov=True),
        ),
    ],
    ids=["adam", "sgd-nesterov"],
)
def test_losses_equal_a_torch_loop_over_the_same_batches_at_the_same_rates(optimizer, make_torch):
    X, y = breast_cancer()  # 569 rows: 8 whole batches of 64 a pass, the 57 left dropped
    settings = dict(start_lr=1e-4, end_lr=1.0, num_iter=40, diverge_th=1e6)
    result = ds.lr_find(
        "logistic", X, y, optimizer=optimizer, batch_size=64, dtype="float64", **settings, **PLAIN
    )
    assert result.n_iter == 40 and result.status == "completed"  # 5 passes, 5 orders
    lrs = exponential_formula(1e-4, 1.0, 40)
    expected = torch_range_test(X, y, make_optimizer=make_torch, lrs=lrs, batch_size=64)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-9)
    assert expected[-1] < 0.5 * expected[0]  # it trained: the comparison means something


def test_losses_are_fits_own_update_by_update_and_pass_by_pass():
    """With the same schedule, fit's epoch loss is the mean of the test's losses over
    the pass (mini-batches, drop_last), and each of its losses for batch descent, an
    epoch being one update; the defaults (float32, standardize, l2='auto') alike."""
    X, y = regression_data()
    start_lr, end_lr, num_iter = 1e-4, 0.3, 30
    schedule = ds.optim.schedules.exponential(start_lr, (end_lr / start_lr) ** (1 / (num_iter - 1)))
    common = dict(optimizer="sgd", start_lr=start_lr, end_lr=end_lr, diverge_th=1e6)
    # Batch descent: one update an epoch.
    found = ds.lr_find("linear", X, y, batch_size=None, num_iter=num_iter, **common)
    fitted = ds.fit(
        "linear", X, y, optimizer=ds.optim.sgd(lr=schedule), batch_size=None, epochs=num_iter,
        patience=None, verbose=0,
    )  # fmt: skip
    assert found.n_iter == num_iter
    np.testing.assert_allclose(found.losses, fitted.history["loss"], rtol=2e-6)
    # Mini-batches of 32: 6 whole batches a pass (8 rows dropped), 5 passes.
    found = ds.lr_find("linear", X, y, batch_size=32, num_iter=num_iter, **common)
    fitted = ds.fit(
        "linear", X, y, optimizer=ds.optim.sgd(lr=schedule), batch_size=32, drop_last=True,
        epochs=5, patience=None, verbose=0,
    )  # fmt: skip
    np.testing.assert_allclose(found.losses.reshape(5, 6).mean(axis=1), fitted.history["loss"],
                               rtol=2e-6)  # fmt: skip
    assert not np.allclose(found.losses[:6], found.losses[6:12])  # the passes differ


def test_rates_follow_the_exponential_formula_from_start_to_end():
    X, y = regression_data()
    for dtype, rtol in (("float32", 1e-5), ("float64", 1e-12)):
        result = ds.lr_find(
            "linear", X, y, optimizer="sgd", start_lr=1e-6, end_lr=0.1, num_iter=150,
            diverge_th=1e6, dtype=dtype,
        )  # fmt: skip
        assert result.n_iter == 150 and result.lrs.dtype == np.dtype(dtype)
        np.testing.assert_allclose(result.lrs, exponential_formula(1e-6, 0.1, 150), rtol=rtol)
        assert result.lrs[0] == pytest.approx(1e-6, rel=rtol)
        assert result.lrs[-1] == pytest.approx(0.1, rel=rtol)
        assert repr(result.optimizer).startswith("sgd(lr=exponential(")


def test_smoothed_loss_is_fastais_bias_corrected_average():
    X, y = breast_cancer()
    for smooth_f in (0.05, 0.02, 0.5):
        result = ds.lr_find("logistic", X, y, num_iter=120, smooth_f=smooth_f, dtype="float64")
        np.testing.assert_allclose(
            result.smoothed, fastai_smoothing(result.losses, smooth_f), rtol=1e-12
        )
    raw = ds.lr_find("logistic", X, y, num_iter=60, smooth_f=0.0)
    np.testing.assert_array_equal(raw.smoothed, raw.losses)  # torch-lr-finder's 0: none


def central_slopes(lrs, smoothed, span):
    """The slope against log10 of the rate across span points each side, clipped."""
    x, s = np.log10(np.asarray(lrs, float)), np.asarray(smoothed, float)
    out = []
    for k in range(len(s)):
        low, high = max(k - span, 0), min(k + span, len(s) - 1)
        out.append((s[high] - s[low]) / (x[high] - x[low]))
    return np.asarray(out)


@pytest.mark.parametrize("smooth_f, span", [(0.05, 10), (0.02, 25), (0.2, 2)])
def test_suggestion_is_where_the_smoothed_loss_falls_fastest(smooth_f, span):
    X, y = breast_cancer()
    result = ds.lr_find("logistic", X, y, optimizer="sgd", smooth_f=smooth_f)
    slopes = central_slopes(result.lrs, result.smoothed, span)
    n = result.n_iter
    index = 10 + int(np.argmin(slopes[10 : n - 5]))
    assert result.suggestion_index == index and slopes[index] < 0
    assert result.suggestion == pytest.approx(float(result.lrs[index]))
    assert f"fell fastest at lr {result.suggestion:.3g}" in result.reason
    assert f"(update {index + 1}, suggestion_index {index} counting from 0)" in result.reason
    everywhere = int(np.argmin(slopes))
    assert result.suggest(skip_start=0, skip_end=0) == pytest.approx(float(result.lrs[everywhere]))
    assert result.suggest(skip_start=n - 1) is None  # fewer than 2 points left


def test_without_smoothing_the_slope_is_numpys_gradient():
    X, y = breast_cancer()
    result = ds.lr_find("logistic", X, y, smooth_f=0.0, num_iter=100, dtype="float64")
    slopes = np.gradient(result.smoothed, np.log10(result.lrs))
    assert result.suggestion_index == 10 + int(np.argmin(slopes[10 : result.n_iter - 5]))


def test_the_suggestion_is_not_a_wiggle_at_the_start_of_a_noisy_curve():
    """The filed picture: an MLP's noisy losses; across one point the steepest slope was
    near 2e-7, where the loss had not begun to fall."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 8))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=2000)
    result = ds.lr_find(ds.models.mlp(hidden=(32,)), X, y)
    one_point = central_slopes(result.lrs, result.smoothed, 1)
    assert result.lrs[10 + int(np.argmin(one_point[10 : result.n_iter - 5]))] < 1e-6
    least = int(np.argmin(result.smoothed))
    start = float(np.mean(result.smoothed[:50]))
    assert 1e-4 < result.suggestion < result.lrs[least]
    assert result.smoothed[result.suggestion_index] < start  # on the way down


# ---------------------------------------------------------------- stopping


@pytest.mark.parametrize("diverge_th", [4.0, 5.0])
def test_the_test_stops_once_the_smoothed_loss_exceeds_diverge_th_times_its_least(diverge_th):
    X, y = regression_data()
    result = ds.lr_find(
        "linear", X, y, optimizer="sgd", end_lr=100.0, num_iter=300, diverge_th=diverge_th
    )
    assert result.status == "diverged" and 50 < result.n_iter < 300
    smoothed = result.smoothed.astype(float)
    least = np.minimum.accumulate(smoothed)
    assert smoothed[-1] > diverge_th * least[-1]  # the update that stopped it is kept
    assert np.all(smoothed[:-1] <= diverge_th * least[:-1])  # and none before
    assert f"stopped at update {result.n_iter} of 300" in result.reason
    assert np.all(np.isfinite(result.losses))


def test_a_loss_that_becomes_non_finite_stops_the_test_and_is_left_out():
    X, y = regression_data()

    def squared_error_within_range(predictions, targets):  # NaN once predictions blow up
        return jnp.where(jnp.abs(predictions) < 1e3, (predictions - targets) ** 2, jnp.nan)

    result = ds.lr_find(
        "linear", X, y, loss=squared_error_within_range, optimizer="sgd", end_lr=100.0,
        diverge_th=1e30, **PLAIN,
    )  # fmt: skip
    assert result.status == "diverged" and result.n_iter < 299
    assert "the loss became non-finite" in result.reason
    assert np.all(np.isfinite(result.losses)) and np.all(np.isfinite(result.smoothed))
    assert len(result.lrs) == len(result.losses) == result.n_iter


# ---------------------------------------------------------------- inputs


def test_the_users_model_data_and_optimizer_are_left_as_they_were():
    X, y = regression_data()
    X_before, y_before = X.copy(), y.copy()
    params = {"w": np.zeros((4,)), "b": np.zeros(())}
    params_before = copy.deepcopy(params)
    model = ds.models.custom(lambda p, X: X @ p["w"] + p["b"], params)
    optimizer = ds.optim.adam(lr=3e-3)
    fitted_before = ds.fit(model, X, y, optimizer=optimizer, epochs=2, patience=None, verbose=0)
    result = ds.lr_find(model, X, y, optimizer=optimizer, num_iter=50)
    assert result.n_iter == 50
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    for key in params:
        np.testing.assert_array_equal(params[key], params_before[key])
        np.testing.assert_array_equal(model.init(None, 4)[key], params_before[key])
    assert optimizer.hyperparams["lr"] == 3e-3
    fitted_after = ds.fit(model, X, y, optimizer=optimizer, epochs=2, patience=None, verbose=0)
    for key in params:  # nothing was kept between the calls
        np.testing.assert_array_equal(fitted_after.params[key], fitted_before.params[key])


def test_a_table_path_a_dataset_and_arrays_give_the_same_curve(tmp_path):
    pandas = pytest.importorskip("pandas")
    X, y = regression_data(120)
    frame = pandas.DataFrame(X, columns=["a", "b", "c", "d"]).assign(price=y)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    settings = dict(optimizer="sgd", num_iter=40, dtype="float64", diverge_th=1e6)
    from_arrays = ds.lr_find("linear", X, y, **settings)
    from_path = ds.lr_find("linear", str(path), target="price", **settings)
    from_dataset = ds.lr_find("linear", ds.data.load(path, target="price", dtype="float64"),
                              **settings)  # fmt: skip
    np.testing.assert_allclose(from_path.losses, from_arrays.losses, rtol=1e-12)
    np.testing.assert_allclose(from_dataset.losses, from_arrays.losses, rtol=1e-12)


def test_sample_weights_enter_the_losses_as_in_fit():
    X, y = regression_data()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    common = dict(optimizer="sgd", num_iter=20, diverge_th=1e6, dtype="float64")
    weighted = ds.lr_find("linear", X, y, sample_weight=weights, batch_size=None, **common)
    schedule = ds.optim.schedules.exponential(1e-7, (10.0 / 1e-7) ** (1 / 19))
    fitted = ds.fit(
        "linear", X, y, sample_weight=weights, optimizer=ds.optim.sgd(lr=schedule),
        batch_size=None, epochs=20, patience=None, verbose=0, dtype="float64",
    )  # fmt: skip
    np.testing.assert_allclose(weighted.losses, fitted.history["loss"], rtol=1e-10)
    plain = ds.lr_find("linear", X, y, batch_size=None, **common)
    assert not np.allclose(weighted.losses, plain.losses)


def test_a_second_test_of_the_same_shapes_does_not_compile_again():
    X, y = regression_data()
    settings = dict(optimizer="sgd", num_iter=64, diverge_th=1e6)
    ds.lr_find("linear", X, y, **settings)
    before = engine.compiled_range_test.cache_info()
    ds.lr_find("linear", X + 1.0, y, seed=3, **settings)
    after = engine.compiled_range_test.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(start_lr=1.0, end_lr=1.0), "start_lr must be less than end_lr"),
        (dict(start_lr=0.1, end_lr=0.01), "start_lr must be less than end_lr"),
        (dict(start_lr=-1.0), "start_lr must be a finite number > 0, got -1.0"),
        (dict(end_lr=float("inf")), "end_lr must be a finite number > 0, got inf"),
        (dict(num_iter=1), "num_iter must be an integer >= 2, got 1"),
        (dict(num_iter=2.5), "num_iter must be an integer >= 2, got 2.5"),
        (dict(smooth_f=1.0), "smooth_f must be in [0.0, 1.0), got 1.0"),
        (dict(diverge_th=1.0), "diverge_th must be a finite number > 1, got 1.0"),
        (dict(skip_start=-1), "skip_start must be an integer >= 0, got -1"),
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(optimizer="adamm"), "unknown optimizer 'adamm'; did you mean 'adam'?"),
        (dict(optimizer="polyak_sgd"), "cannot give it to polyak_sgd(): unknown hyperparameter"),
        (
            dict(optimizer=ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.adam())),
            "cannot give it to chain(",
        ),
        (dict(batch_size=100, accumulate=3), "batch_size x accumulate = 300 rows, more than"),
    ],
)
def test_bad_input_is_refused_with_the_problem_and_the_fix(options, message):
    X, y = regression_data()
    with pytest.raises(InputError) as caught:
        ds.lr_find("linear", X, y, **options)
    assert message in str(caught.value)


def test_a_stream_and_a_missing_target_are_refused(tmp_path):
    X, y = regression_data()
    np.save(tmp_path / "X_0.npy", X.astype(np.float32))
    np.save(tmp_path / "y_0.npy", y.astype(np.float32))
    with pytest.raises(InputError, match="not a stream"):
        ds.lr_find("linear", ds.data.stream(tmp_path))
    with pytest.raises(InputError, match="y is required"):
        ds.lr_find("linear", X)
    with pytest.raises(DescendTypeError, match="model must be"):
        ds.lr_find(42, X, y)


# ---------------------------------------------------------------- display


def test_plot_draws_the_loss_against_the_rate_on_a_log_axis_with_the_suggestion():
    X, y = breast_cancer()
    result = ds.lr_find("logistic", X, y, num_iter=100)
    fig = ds.plot.lr_find(result)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"
    lines = {line.get_gid(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["smoothed"].get_xdata(), result.lrs)
    np.testing.assert_allclose(lines["losses"].get_ydata(), result.losses)
    marked = lines["suggestion"]
    assert marked.get_xdata()[0] == pytest.approx(result.suggestion)
    assert marked.get_ydata()[0] == pytest.approx(result.smoothed[result.suggestion_index])
    again = result.plot()
    assert again is not fig and again.axes[0].get_xscale() == "log"
    unmarked = ds.plot.lr_find(result, suggestion=False)
    assert "suggestion" not in {line.get_gid() for line in unmarked.axes[0].get_lines()}
    with pytest.raises(DescendTypeError, match="lr_find draws the result"):
        ds.plot.lr_find({"loss": [1.0]})


def test_repr_is_one_short_line_and_html_a_table_with_the_curves():
    X, y = breast_cancer()
    result = ds.lr_find("logistic", X, y, num_iter=80)
    text = repr(result)
    assert "\n" not in text and len(text) < 120
    assert text.startswith(f"LRFinderResult(suggestion={result.suggestion:.3g}, updates=80 of 80")
    html = result._repr_html_()
    assert "LRFinderResult" in html and "<svg" in html and "smoothed" in html
    summary = result.to_dict()
    assert summary["suggestion"] == pytest.approx(result.suggestion)
    assert len(summary["losses"]) == 80 and summary["status"] == "completed"


def test_lr_find_and_its_result_are_public_names():
    assert ds.lr_find is ds.plot.lr_finder.lr_find
    assert ds.LRFinderResult is ds.plot.lr_finder.LRFinderResult
    assert "lr_find" in ds.__all__ and "LRFinderResult" in ds.__all__


def test_too_few_points_advises_what_adds_points():
    """A test that ran every update gains points only from more updates; one that
    diverged also from a rate that grows more slowly (a lower start_lr)."""
    X, y = regression_data()
    short = ds.lr_find("linear", X, y, optimizer="sgd", num_iter=12)
    assert short.status == "completed" and short.suggestion is None
    assert short.reason.endswith("raise num_iter to at least 17") and "start_lr" not in short.reason
    assert ds.lr_find("linear", X, y, optimizer="sgd", num_iter=17).suggestion is not None
    blown = ds.lr_find("linear", X, y, optimizer="sgd", start_lr=1.0, end_lr=1e6, num_iter=300)
    assert blown.status == "diverged" and blown.suggestion is None, blown.reason
    assert "lower start_lr, or raise num_iter" in blown.reason
