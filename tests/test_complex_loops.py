"""Complex numbers in ``minimize`` and ``fit``: run as pairs of reals, reported complex.

``minimize`` runs the engine on the real pairs of a complex ``x0``; ``fit`` trains the
complex params of a custom model the same way. Their answers are checked against
SciPy on the real pairs (``minimize``) and a torch training loop (``fit``).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import descend as ds
from descend.errors import DescendTypeError, DescendWarning, InputError

torch = pytest.importorskip("torch")

C = np.array([1 + 2j, -0.5 + 0.3j])
Z0 = np.array([0.2 - 0.1j, 1 + 1j])


def f(z):
    return jnp.sum(jnp.abs(z - C) ** 2) + 0.1 * jnp.sum(jnp.abs(z) ** 4)


def f_on_pairs(v):
    """f of the complex numbers whose (real, imaginary) pairs are the rows of v."""
    return f(v[:, 0] + 1j * v[:, 1])


def as_pairs(z):
    return np.stack([np.real(z), np.imag(z)], axis=-1)


# ------------------------------------------------------------------------------ minimize


def test_minimize_complex_x0_matches_scipy_on_the_real_pairs():
    def real_f(v):
        z = v[0::2] + 1j * v[1::2]
        return float(np.sum(np.abs(z - C) ** 2) + 0.1 * np.sum(np.abs(z) ** 4))

    found = scipy_minimize(real_f, as_pairs(Z0).ravel(), method="BFGS", options={"gtol": 1e-12})
    expected = found.x[0::2] + 1j * found.x[1::2]
    for optimizer in (None, "lbfgs", ds.optim.adam(lr=0.05)):
        result = ds.minimize(f, Z0, optimizer=optimizer, tol=1e-9, verbose=0)
        assert result.status in ("converged", "no_decrease"), result.reason
        np.testing.assert_allclose(result.x, expected, atol=1e-7)
        np.testing.assert_allclose(result.fun, found.fun, rtol=1e-12)
    np.testing.assert_allclose(expected, [0.6823 + 1.3647j, -0.4715 + 0.2829j], atol=1e-4)


@pytest.mark.parametrize("optimizer", [None, "adam", "lbfgs", "rprop"])
def test_minimize_complex_x0_is_the_run_on_the_real_pairs(optimizer):
    """Same iterates, values, gradient norms, stopping rule and evaluation count."""
    ours = ds.minimize(f, Z0, optimizer=optimizer, tol=1e-8, max_iter=400, verbose=0)
    real = ds.minimize(f_on_pairs, as_pairs(Z0), optimizer=optimizer, tol=1e-8, max_iter=400,
                       verbose=0)  # fmt: skip
    assert (ours.status, ours.n_iter, ours.n_fev) == (real.status, real.n_iter, real.n_fev)
    np.testing.assert_array_equal(ours.history["value"], real.history["value"])
    np.testing.assert_array_equal(ours.history["grad_norm"], real.history["grad_norm"])
    np.testing.assert_array_equal(as_pairs(ours.history["x"]), real.history["x"])
    np.testing.assert_array_equal(as_pairs(ours.x), real.x)
    assert ours.grad_norm == real.grad_norm
    assert ours.n_overshoots == real.n_overshoots


def test_minimize_reports_complex_points_and_jax_gradients():
    result = ds.minimize(f, Z0, optimizer=ds.optim.adam(lr=0.05), max_iter=20, verbose=0)
    assert result.x.dtype == np.complex128 and result.grad.dtype == np.complex128
    assert result.history["x"].shape == (21, 2) and result.history["x"].dtype == np.complex128
    np.testing.assert_array_equal(result.history["x"][0], Z0)
    with jax.enable_x64(True):
        expected = np.asarray(ds.gradient(f)(jnp.asarray(result.x)))
    np.testing.assert_allclose(result.grad, expected, rtol=1e-12)
    np.testing.assert_allclose(result.grad_norm, np.linalg.norm(expected), rtol=1e-12)
    as_json = json.loads(json.dumps(result.to_dict()))
    np.testing.assert_array_equal(as_json["x"], as_pairs(result.x))


def test_minimize_complex_in_float32_and_python_complex_scalars():
    c = C.astype(np.complex64)
    result = ds.minimize(lambda z: jnp.sum(jnp.abs(z - c) ** 2), Z0, dtype="float32", verbose=0)
    assert result.x.dtype == np.complex64 and result.grad.dtype == np.complex64
    np.testing.assert_allclose(result.x, C, atol=1e-5)
    result = ds.minimize(lambda z: jnp.abs(z - (1 + 1j)) ** 2, 0j, verbose=0)
    assert isinstance(result.x, np.complex128) and abs(result.x - (1 + 1j)) < 1e-6


def test_minimize_a_pytree_of_real_and_complex_leaves():
    def g(p):
        return f(p["z"]) + jnp.sum((p["w"] - 3.0) ** 2)

    lbfgs = ds.optim.lbfgs(tolerance_grad=0.0, tolerance_change=0.0)  # let tol decide
    result = ds.minimize(g, {"z": Z0, "w": np.zeros(2)}, optimizer=lbfgs, tol=1e-10, verbose=0)
    assert result.grad_norm < 1e-8
    assert result.x["w"].dtype == np.float64 and result.x["z"].dtype == np.complex128
    np.testing.assert_allclose(result.x["w"], [3.0, 3.0], atol=1e-8)
    np.testing.assert_allclose(result.x["z"], ds.minimize(f, Z0, tol=1e-10, verbose=0).x, atol=1e-8)


def test_minimize_callback_sees_complex_points():
    seen = []

    def callback(intermediate_result):
        seen.append((intermediate_result.x, intermediate_result.grad))
        return len(seen) == 3

    result = ds.minimize(f, Z0, callback=callback, verbose=0)
    assert result.status == "callback"
    x, grad = seen[-1]
    assert x.dtype == np.complex128
    with jax.enable_x64(True):
        np.testing.assert_allclose(grad, np.asarray(ds.gradient(f)(jnp.asarray(x))), rtol=1e-12)
    points = []
    ds.minimize(f, Z0, callback=lambda x: points.append(x) or True, verbose=0)
    assert points[0].dtype == np.complex128


def test_minimize_refuses_complex_x0_where_it_cannot_run():
    with pytest.raises(DescendTypeError, match=r"^adafactor does not support complex"):
        ds.minimize(f, Z0, optimizer="adafactor", verbose=0)
    with pytest.raises(DescendTypeError, match=r"^muon \(the optimizer inside chain\)"):
        ds.minimize(f, Z0, optimizer=ds.optim.chain(ds.optim.muon()), verbose=0)
    with pytest.raises(InputError, match="x0 has 2 real numbers \\(a complex number counts two"):
        ds.minimize(lambda z: jnp.abs(z) ** 2, 1j, refine=True, verbose=0)
    with pytest.raises(InputError, match="rosenbrock is a function of real numbers"):
        ds.minimize("rosenbrock", np.array([1j, 0.0]), verbose=0)
    with pytest.raises(ds.errors.FunctionError, match="complex"):
        ds.minimize(lambda z: jnp.sum(z**2), Z0, verbose=0)


# ----------------------------------------------------------------------------------- fit

X = np.random.default_rng(0).standard_normal((40, 2))
W_TRUE = np.array([1 + 2j, -0.5 + 0.3j])
Y = as_pairs(X @ W_TRUE)  # two real outputs: the real and imaginary parts of X @ w


# The problem as given, for a reference to compare with: no scaling, early stopping or
# penalty (fit's defaults).
PLAIN = {"standardize": False, "patience": None, "l2": 0.0}


def apply(params, X):
    z = X @ params["w"] + params["b"]
    return jnp.stack([z.real, z.imag], axis=1)


def complex_model():
    return ds.models.custom(apply, {"w": np.zeros(2, np.complex64), "b": np.zeros(())})


def test_fit_complex_params_matches_torch():
    epochs, lr = 40, 0.05
    result = ds.fit(complex_model(), X, Y, optimizer="adam", lr=lr, batch_size=None,
                    epochs=epochs, dtype="float64", verbose=0, **PLAIN)  # fmt: skip
    assert result.params["w"].dtype == np.complex128 and result.params["b"].dtype == np.float64

    torch.set_default_dtype(torch.float64)
    try:
        w = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([b, w], lr=lr, foreach=False)
        x, y = torch.tensor(X), torch.tensor(Y)
        losses = []
        for _ in range(epochs):
            opt.zero_grad()
            z = x.to(torch.complex128) @ w + b
            loss = torch.nn.functional.mse_loss(torch.stack([z.real, z.imag], 1), y)
            loss.backward()
            losses.append(loss.item())
            opt.step()
    finally:
        torch.set_default_dtype(torch.float32)
    np.testing.assert_allclose(result.params["w"], w.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(result.params["b"], b.detach().numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-9)
    assert result.opt_state.exp_avg["w"].shape == (2, 2)  # torch's view_as_real of its state
    np.testing.assert_allclose(
        result.opt_state.exp_avg["w"], torch.view_as_real(opt.state[w]["exp_avg"]), rtol=1e-9
    )


def test_fit_complex_params_continue_exactly_and_round_trip_a_file(tmp_path):
    settings = dict(optimizer="adam", lr=0.05, batch_size=8, shuffle=True, seed=3, verbose=0)
    whole = ds.fit(complex_model(), X, Y, epochs=6, **settings)
    first = ds.fit(complex_model(), X, Y, epochs=3, **settings)
    assert first.params["w"].dtype == np.complex64  # float32 training: complex64
    path = tmp_path / "complex.safetensors"
    ds.save(path, first)
    loaded = ds.load(path, model=complex_model())
    np.testing.assert_array_equal(loaded.params["w"], first.params["w"])
    for start in ({"resume": path}, {"init": first.state}):
        continued = ds.fit(complex_model(), X, Y, epochs=6, **settings, **start)
        np.testing.assert_array_equal(continued.params["w"], whole.params["w"])
    predictions = whole.predict(X[:3])
    assert predictions.shape == (3, 2) and predictions.dtype == np.float32


def test_fit_refuses_complex_params_with_adafactor_and_complex_outputs():
    with pytest.raises(DescendTypeError, match=r"adafactor does not support complex.*\['w'\]"):
        ds.fit(complex_model(), X, Y, optimizer="adafactor", epochs=1, verbose=0)
    bare = ds.models.custom(lambda p, X: X @ p["w"], {"w": np.zeros(2, np.complex64)})
    with pytest.raises(InputError, match="the model returns complex outputs"):
        ds.fit(bare, X, Y[:, 0], epochs=1, verbose=0)


# ------------------------------------------------- integer params, complex targets


def test_fit_refuses_integer_params_of_a_custom_model():
    model = ds.models.custom(lambda p, X: X @ p["w"], {"w": np.zeros(2, np.int32)})
    with pytest.raises(DescendTypeError, match=r"^adam .*steps floating-point.*\['w'\] \(int32\)"):
        ds.fit(model, X, Y[:, 0], epochs=1, verbose=0)


def test_minimize_promotes_integer_x0_as_scipy_does():
    def g(x):
        return jnp.sum((x - 0.3) ** 2)

    from_ints = ds.minimize(g, np.array([1, 2]), verbose=0)
    from_floats = ds.minimize(g, np.array([1.0, 2.0]), verbose=0)
    assert from_ints.x.dtype == np.float64
    np.testing.assert_array_equal(from_ints.x, from_floats.x)
    found = scipy_minimize(lambda v: float(np.sum((v - 0.3) ** 2)), np.array([1, 2]))
    np.testing.assert_allclose(from_ints.x, found.x, atol=1e-6)


def test_complex_regression_targets_are_refused_not_cut_to_their_real_parts():
    """numpy's astype(float) drops the imaginary parts with only a ComplexWarning."""
    y = X @ W_TRUE
    with pytest.warns(np.exceptions.ComplexWarning):
        y.astype(float)
    message = r"y holds complex numbers.*np.stack\(\[y.real, y.imag\], axis=1\)"
    with pytest.raises(ds.errors.DataError, match=message):
        ds.fit("linear", X, y, epochs=1, verbose=0)
    with pytest.raises(ds.errors.DataError, match=message):
        ds.fit("linear", X, y.real, validation=(X, y), epochs=1, verbose=0)
    result = ds.fit("linear", X, y.real, epochs=1, verbose=0)
    with pytest.raises(ds.errors.DataError, match=message):
        result.score(X, y)


def test_early_stopping_keeps_and_restores_complex_weights(tmp_path):
    settings = dict(optimizer="sgd", lr=0.3, batch_size=4, validation_split=0.25, patience=2,
                    min_delta=1e-3, epochs=200, verbose=0, dtype="float64")  # fmt: skip
    result = ds.fit(complex_model(), X, Y, restore_best=False, **settings)
    assert result.status == "early_stopping"
    kept = result.best.params  # the best epoch's weights, apart from the last ones
    assert kept["w"].dtype == np.complex128 and kept["b"].dtype == np.float64
    assert not np.array_equal(kept["w"], result.params["w"])
    path = tmp_path / "stopped.safetensors"
    ds.save(path, result)
    # Resumed with restore_best, the run (which had stopped: a warning says so) trains
    # nothing and restores those weights.
    with pytest.warns(DescendWarning, match="had already stopped early"):
        continued = ds.fit(complex_model(), X, Y, resume=path, **{**settings, "epochs": 210})
    assert continued.status == "early_stopping"
    np.testing.assert_array_equal(continued.params["w"], kept["w"])


def test_minimize_takes_a_list_of_complex_numbers_as_one_point():
    result = ds.minimize(f, [0.2 - 0.1j, 1 + 1j], optimizer="lbfgs", tol=1e-10)
    assert np.shape(result.x) == (2,) and np.iscomplexobj(result.x)
    reference = ds.minimize(f, Z0, optimizer="lbfgs", tol=1e-10)
    np.testing.assert_allclose(result.x, reference.x, rtol=1e-12)
