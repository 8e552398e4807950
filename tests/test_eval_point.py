"""Every consumer of an optimizer's params reports its evaluation point.

Schedule-free optimizers take the gradient at :math:`y` (the params the loop holds) and
are evaluated at :math:`x` (``optimizer.eval()`` in the ``schedulefree`` package).
Each test runs the package (PyTorch, float64) beside ``minimize``, ``fit``, early
stopping, checkpoints and resume, the scikit-learn estimators and the CLI, and checks
that what descend reports is the package's weights after ``optimizer.eval()``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from trajectories import torch_float64

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")

RTOL = 1e-9


def _quartic(x):
    return jnp.sum((x - 1.0) ** 2) + 0.1 * jnp.sum(x**4)


def _torch_quartic(x):
    return torch.sum((x - 1.0) ** 2) + 0.1 * torch.sum(x**4)


def _package_minimum(n_steps: int, x0, **settings):
    """The package's x after ``n_steps`` (by ``eval()``), f there and its gradient."""
    with torch_float64():
        x = torch.tensor(x0, requires_grad=True)
        opt = schedulefree.AdamWScheduleFree([x], **settings)
        opt.train()
        for _ in range(n_steps):
            opt.zero_grad()
            _torch_quartic(x).backward()
            opt.step()
        opt.eval()
        x.grad = None
        value = _torch_quartic(x)
        value.backward()
        return x.detach().numpy().copy(), float(value), x.grad.numpy().copy()


def test_minimize_reports_the_evaluation_point_its_value_and_gradient():
    x0 = np.array([2.0, -1.0, 0.5])
    settings = {"lr": 0.05, "warmup_steps": 10, "weight_decay": 0.01}
    result = ds.minimize(
        _quartic, x0, optimizer=ds.optim.schedule_free_adamw(**settings),
        max_iter=150, tol=0.0, patience=1000,
    )  # fmt: skip
    assert result.status == "max_iter"
    x, value, grad = _package_minimum(150, x0, **settings)
    np.testing.assert_allclose(result.x, x, rtol=RTOL)
    np.testing.assert_allclose(result.fun, value, rtol=RTOL)
    np.testing.assert_allclose(result.grad, grad, rtol=RTOL, atol=1e-12)
    assert result.grad_norm == pytest.approx(np.linalg.norm(grad), rel=1e-9)
    # The history is the training point's, where each step evaluated f.
    assert result.history["value"][-1] != pytest.approx(result.fun, rel=1e-12)


def test_minimize_converges_when_the_evaluation_points_gradient_is_small():
    result = ds.minimize(
        _quartic, np.array([2.0, -1.0]), optimizer=ds.optim.schedule_free_sgd(lr=0.1),
        tol=1e-6, patience=100_000,
    )  # fmt: skip
    assert result.converged, result.reason
    x = jnp.asarray(result.x)
    assert float(jnp.linalg.norm(jax.grad(_quartic)(x))) <= 1e-6
    assert result.grad_norm <= 1e-6


def test_minimize_callback_and_many_starts_see_the_evaluation_point():
    seen = []
    opt = ds.optim.schedule_free_adamw(lr=0.05)
    one = ds.minimize(
        _quartic, np.array([2.0, -1.0]), optimizer=opt, max_iter=40, tol=0.0,
        patience=1000, callback=lambda x: seen.append(np.array(x)),
    )  # fmt: skip
    np.testing.assert_array_equal(seen[-1], one.x)
    many = ds.minimize(
        _quartic, np.array([[2.0, -1.0], [0.0, 3.0]]), optimizer=opt, max_iter=40,
        tol=0.0, patience=1000, batched=True,
    )  # fmt: skip
    first = ds.minimize(
        _quartic, np.array([2.0, -1.0]), optimizer=opt, max_iter=40, tol=0.0, patience=1000
    )
    np.testing.assert_allclose(many.x[0], first.x, rtol=1e-12)


# ------------------------------------------------------------------------------ fit


def _regression(seed=0, n=60):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.standard_normal(n)
    return X, y


def _package_fit(X, y, n_epochs, validation=None, *, settings, l2=0.0):
    """Full-batch linear regression (mse) with the package: ``(x after each epoch,
    validation mse at x after each epoch)``; x by the package's ``eval()`` formula on
    copies, and the last one by ``eval()`` itself."""
    with torch_float64():
        w = torch.zeros(X.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = schedulefree.SGDScheduleFree([w, b], **settings)
        opt.train()
        features, targets = torch.tensor(X), torch.tensor(y)
        beta = opt.param_groups[0]["momentum"]
        weights, scores = [], []
        for _ in range(n_epochs):
            opt.zero_grad()
            loss = torch.mean((features @ w + b - targets) ** 2)
            (loss + 0.5 * l2 * torch.sum(w**2) if l2 else loss).backward()
            opt.step()
            x_w, x_b = (p.detach().clone().lerp_(opt.state[p]["z"], 1 - 1 / beta) for p in (w, b))
            weights.append((x_w.numpy(), float(x_b)))
            if validation is not None:
                X_val, y_val = map(torch.tensor, validation)
                scores.append(float(torch.mean((X_val @ x_w + x_b - y_val) ** 2)))
        opt.eval()
        final = (w.detach().numpy().copy(), float(b))
    return weights, np.array(scores), final


SGD = {"lr": 0.05, "momentum": 0.9, "warmup_steps": 5}
FIT = {
    "batch_size": None, "standardize": False, "l2": 0.0, "dtype": "float64",
    "verbose": 0, "shuffle": False,
}  # fmt: skip


def test_fit_reports_and_validates_at_the_evaluation_point():
    X, y = _regression()
    X_val, y_val = _regression(seed=1, n=20)
    result = ds.fit(
        "linear", X, y, optimizer=ds.optim.schedule_free_sgd(**SGD), epochs=30,
        patience=None, validation=(X_val, y_val), **FIT,
    )  # fmt: skip
    weights, scores, (w, b) = _package_fit(X, y, 30, (X_val, y_val), settings=SGD)
    np.testing.assert_allclose(result.params["w"], w, rtol=RTOL)
    np.testing.assert_allclose(result.params["b"], b, rtol=RTOL)
    np.testing.assert_allclose(result.history["val_loss"], scores, rtol=RTOL)
    prediction = np.asarray(X_val @ w + b)
    np.testing.assert_allclose(result.predict(X_val), prediction, rtol=RTOL)


def test_early_stopping_restores_the_best_epochs_evaluation_point():
    X, y = _regression()
    # Validation targets of other weights: the validation loss falls, then rises.
    X_val = np.random.default_rng(3).standard_normal((20, 3))
    y_val = X_val @ np.array([0.5, -1.0, 0.2])
    result = ds.fit(
        "linear", X, y, optimizer=ds.optim.schedule_free_sgd(**SGD), epochs=200,
        patience=3, min_delta=0.0, validation=(X_val, y_val), **FIT,
    )  # fmt: skip
    assert result.status == "early_stopping" and result.best_epoch is not None
    weights, scores, _ = _package_fit(X, y, result.n_epochs, (X_val, y_val), settings=SGD)
    assert result.best_epoch == int(np.argmin(scores)) + 1
    w, b = weights[result.best_epoch - 1]
    np.testing.assert_allclose(result.params["w"], w, rtol=RTOL)
    np.testing.assert_allclose(result.params["b"], b, rtol=RTOL)


def test_checkpoint_holds_the_evaluation_point_and_resume_continues_the_run(tmp_path):
    X, y = _regression()
    opt = ds.optim.schedule_free_adamw(lr=0.05, warmup_steps=3)
    settings = {**FIT, "batch_size": 16, "shuffle": True, "patience": None, "optimizer": opt}
    whole = ds.fit("linear", X, y, epochs=12, **settings)
    half = ds.fit("linear", X, y, epochs=6, **settings)
    path = tmp_path / "half.ckpt"
    ds.save(path, half)
    saved = ds.load(path)
    np.testing.assert_array_equal(saved.params["w"], half.params["w"])  # x, as reported
    resumed = ds.fit("linear", X, y, epochs=12, resume=path, **settings)
    # The training point is rebuilt from x and z as the package's train() does: equal
    # to the one the run held up to rounding (a few units in the last place), which the
    # next six epochs carry along without growth.
    for key in ("w", "b"):
        np.testing.assert_allclose(resumed.params[key], whole.params[key], rtol=1e-13)
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-13)
    again = ds.fit("linear", X, y, epochs=12, init=half.state, **settings)
    np.testing.assert_allclose(again.params["w"], whole.params["w"], rtol=1e-13)


# ----------------------------------------------------------------- wrappers pass it on


def test_wrappers_pass_the_evaluation_point_through():
    X, y = _regression()
    sf = ds.optim.schedule_free_sgd(**SGD)
    plain = ds.fit("linear", X, y, optimizer=sf, epochs=20, patience=None, **FIT)
    wrapped = [
        ds.optim.chain(ds.optim.clip_by_global_norm(1e6), sf),
        ds.optim.reduce_on_plateau(sf, patience=1000),
        ds.optim.partition({"all": sf}, {"w": "all", "b": "all"}),
    ]
    for opt in wrapped:
        assert opt.eval_params is not None, opt.name
        result = ds.fit("linear", X, y, optimizer=opt, epochs=20, patience=None, **FIT)
        for key in ("w", "b"):
            np.testing.assert_allclose(result.params[key], plain.params[key], rtol=1e-13)
    # A partition evaluates each group at its own optimizer's point.
    mixed = ds.optim.partition({"sf": sf, "sgd": ds.optim.sgd(lr=0.05)}, {"w": "sf", "b": "sgd"})
    params = {"w": jnp.ones(3), "b": jnp.ones(())}
    state = mixed.init(params)
    for _ in range(3):
        params, state = mixed.step(params, jax.tree.map(lambda p: 2 * p, params), state)
    x = ds.optim.eval_point(mixed, params, state)
    expected = ds.optim.eval_point(sf, {"w": params["w"], "b": None}, state.groups["sf"])["w"]
    np.testing.assert_array_equal(x["w"], expected)
    assert not np.array_equal(x["w"], params["w"])
    np.testing.assert_array_equal(x["b"], params["b"])
    assert ds.optim.adam().eval_params is None


# ----------------------------------------------------------- estimators and the CLI


def test_estimator_coefficients_are_the_evaluation_point():
    from descend.sklearn import GDRegressor

    X, y = _regression()
    estimator = GDRegressor(
        optimizer="schedule_free_sgd", learning_rate=0.05, optimizer_kwargs={"warmup_steps": 5},
        batch_size=None, max_epochs=25, alpha=0.0, standardize=False, shuffle=False,
        adaptive=False, early_stopping=False, tol=None,
    )  # fmt: skip
    estimator.fit(X, y)
    _, _, (w, b) = _package_fit(X, y, 25, settings=SGD)
    np.testing.assert_allclose(estimator.coef_, w, rtol=RTOL)
    np.testing.assert_allclose(estimator.intercept_, b, rtol=RTOL)
    np.testing.assert_allclose(estimator.predict(X), X @ w + b, rtol=RTOL)


def test_cli_train_saves_and_predict_uses_the_evaluation_point(tmp_path, capsys):
    from descend.cli import main

    X, y = _regression()
    table = tmp_path / "data.csv"
    header = "a,b,c,target"
    np.savetxt(table, np.column_stack([X, y]), delimiter=",", header=header, comments="")
    saved = tmp_path / "model.ckpt"
    arguments = [
        "train", str(table), "--model", "linear", "--optimizer", "schedule_free_sgd",
        "--lr", "0.05", "--opt-args", "warmup_steps=5", "--method", "batch",
        "--epochs", "25", "--validation-split", "0", "--no-standardize", "--dtype",
        "float64", "--patience", "0", "--save", str(saved),
    ]  # fmt: skip
    assert main(arguments) == 0, capsys.readouterr().err
    loaded = ds.load(saved)
    assert loaded.l2 == pytest.approx(1 / len(X))  # the CLI's l2="auto"
    _, _, (w, b) = _package_fit(X, y, 25, settings=SGD, l2=loaded.l2)
    np.testing.assert_allclose(loaded.params["w"], w, rtol=RTOL)
    np.testing.assert_allclose(loaded.params["b"], b, rtol=RTOL)
    capsys.readouterr()
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", str(saved), str(table), "--output", str(predictions)]) == 0
    printed = np.loadtxt(predictions, delimiter=",", skiprows=1)
    np.testing.assert_allclose(np.ravel(printed), X @ w + b, rtol=1e-9)
