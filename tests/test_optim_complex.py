"""Complex parameters: every optimizer steps them as pairs of reals, as torch.optim does.

The problem is ``f(z) = sum |z - c|^2 + 0.1 sum |z|^4`` over two complex numbers, next
to a real quadratic leaf ``w`` (so trees mixing real and complex leaves are covered);
its minimizer in ``z`` is about ``[0.6823+1.3647j, -0.4715+0.2829j]``. The torch runs
take ``.grad`` from autograd; descend takes JAX's gradient, which is its conjugate.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendTypeError
from descend.optim import pairs
from torch_names import TORCH_CLASSES
from trajectories import torch_float64

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")

N_STEPS = 60
RTOL = 1e-9
ATOL = 1e-12

C = np.array([1 + 2j, -0.5 + 0.3j])
Z0 = np.array([0.2 - 0.1j, 1 + 1j])
A = np.array([1.0, 3.0, 0.5])
B = np.array([0.5, -1.0, 2.0])
W0 = np.array([0.0, 0.3, -0.4])


def f_z(z):
    return jnp.sum(jnp.abs(z - C) ** 2) + 0.1 * jnp.sum(jnp.abs(z) ** 4)


def torch_f_z(z):
    return torch.sum(torch.abs(z - torch.tensor(C)) ** 2) + 0.1 * torch.sum(torch.abs(z) ** 4)


def f_w(w):
    return jnp.sum(A * (w - B) ** 2)


def objective(params):
    return f_z(params["z"]) + f_w(params["w"])


def torch_objective(w, z):
    return torch_f_z(z) + torch.sum(torch.tensor(A) * (w - torch.tensor(B)) ** 2)


def z_minimizer():
    """The minimizer in z, from SciPy on the real pairs (f_z separates from f_w)."""
    from scipy.optimize import minimize

    def real_f(v):
        z = v[0::2] + 1j * v[1::2]
        return float(np.sum(np.abs(z - C) ** 2) + 0.1 * np.sum(np.abs(z) ** 4))

    found = minimize(real_f, np.zeros(4), method="BFGS", options={"gtol": 1e-12})
    return found.x[0::2] + 1j * found.x[1::2]


def as_real(params) -> np.ndarray:
    """w, then z as torch.view_as_real, in one vector (torch's LBFGS order for [w, z])."""
    z = np.asarray(params["z"])
    return np.concatenate([np.asarray(params["w"]), np.stack([z.real, z.imag], -1).ravel()])


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------------ the gradient convention


def test_jax_gradient_of_a_real_function_is_the_conjugate_of_torchs_grad():
    ours = np.asarray(ds.gradient(lambda z: f_z(z))(jnp.asarray(Z0)))
    z = torch.tensor(Z0, requires_grad=True)
    torch_f_z(z).backward()
    np.testing.assert_allclose(ours, np.conj(z.grad.numpy()), rtol=1e-14)
    # and torch's is the pair (df/dx, df/dy): the direction of steepest ascent
    np.testing.assert_allclose(
        np.asarray(pairs.gradient_pairs(jnp.asarray(Z0), jnp.asarray(ours))),
        torch.view_as_real(z.grad).numpy(),
        rtol=1e-14,
    )


# --------------------------------------------------------------- trajectories against torch

CASES = [
    ("gd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.02, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "maximize": True}),
    ("momentum", {"lr": 0.02}),
    ("adagrad", {"lr": 0.1}),
    (
        "adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.01,
            "weight_decay": 0.05,
            "initial_accumulator_value": 0.3,
            "eps": 1e-6,
            "maximize": True,
        },
    ),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.95, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
    ("adam", {"lr": 0.05}),
    ("adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    (
        "adam",
        {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
    ),
    ("adamw", {"lr": 0.05}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True}),
    ("adamax", {"lr": 0.05}),
    ("adamax", {"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}),
    ("nadam", {"lr": 0.05}),
    ("nadam", {"lr": 0.02, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam", {"lr": 0.05}),
    ("radam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("rprop", {"lr": 0.01}),
    ("rprop", {"lr": 0.01, "etas": (0.3, 1.5), "step_sizes": (1e-5, 0.5), "maximize": True}),
    ("asgd", {"lr": 0.02}),
    ("asgd", {"lr": 0.02, "lambd": 1e-2, "alpha": 0.5, "t0": 20.0, "weight_decay": 0.1}),
]


def _case_id(case) -> str:
    name, hyperparams = case
    return f"{name}[{'-'.join(f'{k}={v}' for k, v in hyperparams.items()) or 'defaults'}]"


def _sign(hyperparams: dict) -> float:
    # Maximizing a problem bounded below diverges: maximize cases ascend -f.
    return -1.0 if hyperparams.get("maximize", False) else 1.0


@functools.cache
def _gradient(sign: float):
    return jax.jit(jax.grad(lambda params: sign * objective(params)))


def run_descend(opt, sign: float, n_steps: int = N_STEPS, scheduled=None):
    grad = _gradient(sign)
    step = jax.jit(opt.step)
    params = {"w": jnp.asarray(W0), "z": jnp.asarray(Z0)}
    state = opt.init(params)
    path = []
    for _ in range(n_steps):
        params, state = step(params, grad(params), state)
        path.append(as_real(params))
    return np.array(path), params, state


def run_torch(name: str, hyperparams: dict, sign: float, scheduler=None):
    """The torch optimizer with the same name and hyperparameters, on [w, z]."""
    with torch_float64():
        w = torch.tensor(W0, requires_grad=True)
        z = torch.tensor(Z0, requires_grad=True)
        opt = getattr(torch.optim, TORCH_CLASSES[name])([w, z], **hyperparams, foreach=False)
        schedule = scheduler(opt) if scheduler else None
        path = []
        for _ in range(N_STEPS):
            opt.zero_grad()
            (sign * torch_objective(w, z)).backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            path.append(as_real({"w": w.detach().numpy(), "z": z.detach().numpy()}))
        state = {
            key: {"w": np.asarray(opt.state[w][key]), "z": np.asarray(opt.state[z][key])}
            for key in opt.state[z]
        }
    return np.array(path), state


def _assert_states_match(ours, theirs: dict) -> None:
    """Each state entry torch keeps under the same name; z's as torch.view_as_real of it."""
    for name, value in ours._asdict().items():
        key = "step" if name == "count" else name
        if value is None or key not in theirs:
            continue
        if name == "count":
            np.testing.assert_allclose(value + 0.0, theirs[key]["z"], err_msg=name)
            continue
        if not isinstance(value, dict):  # a scalar for all leaves (NAdam's mu_product, ...)
            np.testing.assert_allclose(value, theirs[key]["z"], rtol=RTOL, err_msg=name)
            continue
        expected_z = theirs[key]["z"]
        if np.iscomplexobj(expected_z):
            expected_z = np.stack([expected_z.real, expected_z.imag], -1)
        np.testing.assert_allclose(value["z"], expected_z, rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(value["w"], theirs[key]["w"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_complex_trajectory_matches_torch(case):
    name, hyperparams = case
    opt = ds.optim.get(name, **hyperparams)
    sign = _sign(hyperparams)
    ours, params, state = run_descend(opt, sign)
    theirs, their_state = run_torch(name, opt.hyperparams, sign)
    assert np.all(np.isfinite(ours))
    assert params["z"].dtype == jnp.complex128 and params["w"].dtype == jnp.float64
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    _assert_states_match(state, their_state)
    assert np.abs(ours[-1] - ours[0]).max() > 1e-3  # the run really moved


def test_every_torch_optimizer_is_covered():
    assert {name for name, _ in CASES} == set(TORCH_CLASSES)


def test_complex_trajectory_with_a_schedule_matches_torch_lambda_lr():
    def factor(count):
        return 1.0 / (1.0 + 0.05 * count)

    opt = ds.optim.adam(lr=lambda count: 0.05 * factor(count))
    ours = run_descend(opt, 1.0)[0]
    theirs, _ = run_torch(
        "adam",
        ds.optim.adam(lr=0.05).hyperparams,
        1.0,
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor),
    )
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_adam_on_complex_params_reaches_the_minimizer():
    """The filed case: adam(lr=0.05) moved away from the minimum; it now matches torch
    after 50 steps (about [0.607+1.464j, -0.545+0.306j]) and converges."""
    opt = ds.optim.adam(lr=0.05)
    _, params, _ = run_descend(opt, 1.0, n_steps=50)
    np.testing.assert_allclose(
        np.asarray(params["z"]), [0.607 + 1.464j, -0.545 + 0.306j], atol=1e-3
    )
    _, params, _ = run_descend(ds.optim.adam(lr=0.01), 1.0, n_steps=3000)
    np.testing.assert_allclose(np.asarray(params["z"]), z_minimizer(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(params["w"]), B, atol=1e-6)


def test_sgd_with_momentum_on_complex_params_converges():
    _, params, _ = run_descend(ds.optim.sgd(lr=0.02, momentum=0.9), 1.0, n_steps=600)
    np.testing.assert_allclose(np.asarray(params["z"]), z_minimizer(), atol=1e-8)


# ----------------------------------------------------------------------------- L-BFGS


@pytest.mark.parametrize("line_search_fn", ["strong_wolfe", None])
def test_complex_lbfgs_matches_torch(line_search_fn):
    hyperparams = {"lr": 1.0 if line_search_fn else 0.1, "line_search_fn": line_search_fn}
    hyperparams.update(tolerance_grad=1e-12, tolerance_change=1e-14)
    opt = ds.optim.lbfgs(**hyperparams)
    value_and_grad = jax.value_and_grad(objective)

    @jax.jit
    def one_step(params, state):
        value, grads = value_and_grad(params)
        return opt.step(params, grads, state, value=value, value_fn=objective)

    params = {"w": jnp.asarray(W0), "z": jnp.asarray(Z0)}
    state, ours = opt.init(params), []
    for _ in range(20):
        params, state = one_step(params, state)
        ours.append(as_real(params))

    with torch_float64():
        w = torch.tensor(W0, requires_grad=True)
        z = torch.tensor(Z0, requires_grad=True)
        reference = torch.optim.LBFGS([w, z], max_iter=1, max_eval=26, **hyperparams)

        def closure():
            reference.zero_grad()
            loss = torch_objective(w, z)
            loss.backward()
            return loss

        theirs = []
        for _ in range(20):
            reference.step(closure)
            theirs.append(as_real({"w": w.detach().numpy(), "z": z.detach().numpy()}))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    if line_search_fn:
        np.testing.assert_allclose(np.asarray(params["z"]), z_minimizer(), atol=1e-8)


# ------------------------------------------------------------- Lion and AdaBelief (Optax)

OPTAX_CASES = [
    ("lion", {"lr": 0.01, "weight_decay": 0.0}, lambda hp: optax.lion(hp["lr"], weight_decay=0.0)),
    (
        "lion",
        {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1},
        lambda hp: optax.lion(hp["lr"], b1=0.8, b2=0.95, weight_decay=0.1),
    ),
    ("adabelief", {"lr": 0.05}, lambda hp: optax.adabelief(hp["lr"])),
    (
        "adabelief",
        {"lr": 0.05, "eps": 1e-8, "eps_root": 0.0, "nesterov": True},
        lambda hp: optax.adabelief(hp["lr"], eps=1e-8, eps_root=0.0, nesterov=True),
    ),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "reference"),
    OPTAX_CASES,
    ids=[_case_id(case[:2]) for case in OPTAX_CASES],
)
def test_complex_lion_and_adabelief_match_optax_on_real_and_imaginary_parts(
    name, hyperparams, reference
):
    """Optax's own form for complex params: ``optax.contrib.split_real_and_imaginary``
    around the optimizer, fed the conjugate of JAX's gradient (as its docs say)."""
    ours = run_descend(ds.optim.get(name, **hyperparams), 1.0)[0]
    transform = optax.contrib.split_real_and_imaginary(reference(hyperparams))
    grad = _gradient(1.0)

    @jax.jit
    def step(params, state):
        grads = jax.tree.map(jnp.conj, grad(params))
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = {"w": jnp.asarray(W0), "z": jnp.asarray(Z0)}
    state, theirs = transform.init(params), []
    for _ in range(N_STEPS):
        params, state = step(params, state)
        theirs.append(as_real(params))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    assert np.abs(ours[-1] - ours[0]).max() > 1e-3


def test_gd_line_search_on_complex_params_is_the_search_on_real_pairs():
    """No reference has the Armijo search of gd(lr=None): it must equal its real form."""
    opt = ds.optim.gd()
    value_and_grad = jax.value_and_grad(objective)

    def real_objective(params):
        return objective({"w": params["w"], "z": params["z"][:, 0] + 1j * params["z"][:, 1]})

    def run(f, params):
        vg = jax.value_and_grad(f)
        step = jax.jit(lambda p, s: opt.step(p, vg(p)[1], s, value=vg(p)[0], value_fn=f))
        state = opt.init(params)
        for _ in range(30):
            params, state = step(params, state)
        return params, state

    del value_and_grad
    ours, state = run(objective, {"w": jnp.asarray(W0), "z": jnp.asarray(Z0)})
    pairs_z = jnp.stack([Z0.real, Z0.imag], -1)
    theirs, their_state = run(real_objective, {"w": jnp.asarray(W0), "z": pairs_z})
    np.testing.assert_allclose(as_real(ours), np.concatenate([theirs["w"], theirs["z"].ravel()]))
    assert int(state.n_evals) == int(their_state.n_evals)
    np.testing.assert_allclose(np.asarray(ours["z"]), z_minimizer(), atol=1e-6)


# -------------------------------------------------------------- transforms and wrappers


def test_chain_with_clipping_and_weight_decay_matches_torch():
    """clip_grad_norm_ (|g| of complex entries) then SGD's weight decay, on [w, z]."""
    opt = ds.optim.chain(
        ds.optim.clip_by_global_norm(1.0), ds.optim.add_weight_decay(0.1), ds.optim.sgd(lr=0.05)
    )
    ours = run_descend(opt, 1.0)[0]
    with torch_float64():
        w = torch.tensor(W0, requires_grad=True)
        z = torch.tensor(Z0, requires_grad=True)
        reference = torch.optim.SGD([w, z], lr=0.05, weight_decay=0.1, foreach=False)
        theirs = []
        for _ in range(N_STEPS):
            reference.zero_grad()
            torch_objective(w, z).backward()
            torch.nn.utils.clip_grad_norm_([w, z], 1.0, foreach=False)
            reference.step()
            theirs.append(as_real({"w": w.detach().numpy(), "z": z.detach().numpy()}))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_transforms_applied_alone_take_jax_gradients_of_complex_leaves():
    z, g = jnp.asarray([3.0 + 4.0j]), jnp.asarray([2.0 - 5.0j])
    clipped, _ = ds.optim.clip_by_global_norm(1.0).apply(g, (), z)
    np.testing.assert_allclose(np.asarray(clipped), g / (np.abs(g) + 1e-6), rtol=1e-12)
    clipped, _ = ds.optim.clip_by_value(1.0).apply(g, (), z)
    np.testing.assert_allclose(np.asarray(clipped), [1.0 - 1.0j])
    # the gradient of 0.05 |z|^2 in JAX's convention is 0.1 * conj(z)
    decayed, _ = ds.optim.add_weight_decay(0.1).apply(g, (), z)
    expected = g + jax.grad(lambda v: 0.05 * jnp.sum(jnp.abs(v) ** 2))(z)
    np.testing.assert_allclose(np.asarray(decayed), np.asarray(expected), rtol=1e-12)


def test_clip_by_value_in_a_chain_clips_real_and_imaginary_parts():
    opt = ds.optim.chain(ds.optim.clip_by_value(0.5), ds.optim.sgd(lr=0.1))
    z = jnp.asarray([1.0 + 1.0j, 0.0j])
    grads = jnp.asarray([3.0 - 0.2j, -1.0 - 4.0j])  # torch's .grad: 3+0.2j, -1+4j
    new, _ = opt.step(z, grads, opt.init(z))
    np.testing.assert_allclose(np.asarray(new), z - 0.1 * np.array([0.5 + 0.2j, -0.5 + 0.5j]))


def test_reduce_on_plateau_scales_complex_steps_as_real_ones():
    opt = ds.optim.reduce_on_plateau(ds.optim.adam(lr=0.05), factor=0.5, patience=2)
    real_opt = ds.optim.reduce_on_plateau(ds.optim.adam(lr=0.05), factor=0.5, patience=2)
    z = jnp.asarray(Z0)
    zr = jnp.stack([z.real, z.imag], -1)
    state, real_state = opt.init(z), real_opt.init(zr)
    for _ in range(10):  # a constant loss: the scale halves every two steps
        g = jax.grad(f_z)(z)
        z, state = opt.step(z, g, state, value=1.0)
        zr, real_state = real_opt.step(zr, jnp.stack([g.real, -g.imag], -1), real_state, value=1.0)
    np.testing.assert_allclose(np.asarray(z), np.asarray(zr[:, 0] + 1j * zr[:, 1]), rtol=1e-14)
    assert float(state.scale) == float(real_state.scale) < 1


def test_complex64_params_keep_their_dtype_and_a_float32_state():
    with jax.enable_x64(False):
        opt = ds.optim.adam(lr=0.05)
        z = jnp.asarray(Z0, jnp.complex64)
        c = jnp.asarray(C, jnp.complex64)
        state = opt.init(z)
        grads = jax.grad(lambda v: jnp.sum(jnp.abs(v - c) ** 2))(z)
        new, state = jax.jit(opt.step)(z, grads, state)
        assert new.dtype == jnp.complex64
        assert state.exp_avg.dtype == jnp.float32 and state.exp_avg.shape == (2, 2)
        # Adam's first step moves each part by lr against the sign of its derivative.
        np.testing.assert_allclose(np.asarray(new), Z0 - 0.05 * np.array([-1 - 1j, 1 + 1j]), 1e-6)


def test_python_complex_number_as_params():
    opt = ds.optim.sgd(lr=0.25)
    new, _ = opt.step(1.0 + 1.0j, 2.0 - 2.0j, opt.init(1.0 + 1.0j))  # torch's grad 2+2j
    assert complex(new) == 0.5 + 0.5j


def test_real_params_run_the_algorithms_own_program():
    """The wrapping adds nothing for real params: the same jaxpr as the algorithm's step."""
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}

    def value_fn(p):
        return sum(map(jnp.sum, jax.tree.leaves(p)))

    def program(step, state):
        def call(p, g, s):
            return step(p, g, s, value=jnp.ones(()), value_fn=value_fn)

        return str(jax.make_jaxpr(call)(params, params, state))

    for name in ("adam", "sgd", "lbfgs", "rprop", "lion"):
        opt = ds.optim.get(name)
        state = opt.init(params)
        assert program(opt.step, state) == program(pairs._own(opt.step), state)


# -------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("opt", "named"),
    [
        (ds.optim.adafactor(), "adafactor"),
        (ds.optim.muon(), "muon"),
        (ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.muon()), "muon"),
        (ds.optim.reduce_on_plateau(ds.optim.adafactor()), "adafactor"),
    ],
    ids=["adafactor", "muon", "chain-muon", "plateau-adafactor"],
)
def test_optimizers_torch_refuses_complex_params_for_refuse_them_by_name(opt, named):
    params = {"real": jnp.ones((2, 2)), "weights": jnp.ones((2, 2), jnp.complex64)}
    with pytest.raises(DescendTypeError, match=rf"^{named} .*complex.*\['weights'\]") as error:
        opt.init(params)
    assert "real" not in str(error.value).split("complex:")[-1].split(".")[0]
    assert "adam" in str(error.value)  # what to use instead
    real = {key: jnp.ones((2, 2)) for key in params}
    with pytest.raises(DescendTypeError, match=named):
        opt.step(params, params, opt.init(real))


def test_optimizer_refuses_an_unknown_complex_params_mode():
    with pytest.raises(ds.errors.InputError, match="must be 'pairs', 'refuse' or 'members'"):
        ds.optim.Optimizer("x", lambda p: (), lambda p, g, s, **kw: (p, s), complex_params="no")


def test_an_optimizer_built_from_anothers_functions_wraps_them_once():
    momentum = ds.optim.momentum(lr=0.1)  # built from sgd's (wrapped) init and step
    assert pairs._own(momentum.step).__qualname__ == "sgd.<locals>.step"
    z = jnp.asarray(Z0)
    new, _ = momentum.step(z, jnp.conj(z), momentum.init(z))
    np.testing.assert_allclose(np.asarray(new), 0.9 * Z0)


# ------------------------------------------------------------------------- checkpoints


def test_checkpoint_of_complex_params_and_their_state_round_trips(tmp_path):
    opt = ds.optim.adam(lr=0.05)
    _, params, state = run_descend(opt, 1.0, n_steps=5)
    path = tmp_path / "complex.safetensors"
    ds.checkpoint.save_tree(path, {"params": params, "state": state})
    loaded = ds.checkpoint.load_tree(path, like={"state": state}).trees
    assert loaded["params"]["z"].dtype == np.complex128
    for ours, back in zip(
        jax.tree.leaves((params, state)),
        jax.tree.leaves((loaded["params"], loaded["state"])),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(back))
    # the run continues from the loaded state exactly as from the one in memory
    grad = _gradient(1.0)
    one = jax.jit(opt.step)
    here = one(params, grad(params), state)[0]
    loaded_params = jax.tree.map(jnp.asarray, loaded["params"])
    there = one(loaded_params, grad(loaded_params), jax.tree.map(jnp.asarray, loaded["state"]))[0]
    np.testing.assert_array_equal(np.asarray(here["z"]), np.asarray(there["z"]))


# ------------------------------------------------------------- integer and boolean params


@pytest.mark.parametrize("name", ds.optim.names())
@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_every_optimizer_refuses_integer_and_boolean_params_by_name(name, dtype):
    """A step on an integer leaf was rounded without a word (sgd: 3 - 0.1*3 -> 2);
    torch refuses such tensors as parameters, and so does every optimizer here."""
    with pytest.raises(RuntimeError, match="floating point"):
        torch.ones(2, dtype=getattr(torch, dtype)).requires_grad_()
    opt = ds.optim.get(name)
    params = {"w": jnp.ones((2, 2)), "n": jnp.ones((2, 2), dtype)}
    who = re.escape(opt._described())  # a wrapper (mechanize) names the optimizer inside
    expected = rf"^{who} steps floating-point or complex parameters.*\['n'\] \({dtype}\)"
    with pytest.raises(DescendTypeError, match=expected) as error:
        opt.init(params)
    assert "['w']" not in str(error.value)
    real = {key: jnp.ones((2, 2)) for key in params}
    with pytest.raises(DescendTypeError, match=expected):
        opt.step(params, real, opt.init(real), value=jnp.ones(()), value_fn=lambda p: 0.0)


def test_wrapped_optimizers_and_python_ints_are_refused_too():
    chained = ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.sgd(lr=0.1))
    with pytest.raises(DescendTypeError, match=r"^sgd \(the optimizer inside chain\).*<root>"):
        chained.init(jnp.arange(3))
    plateau = ds.optim.reduce_on_plateau(ds.optim.adam())
    with pytest.raises(DescendTypeError, match=r"^adam \(the optimizer inside reduce_on_plateau"):
        plateau.init({"a": 3})
    opt = ds.optim.sgd(lr=0.1)
    with pytest.raises(DescendTypeError, match=r"<root> \(int"):
        opt.step(3, 3.0, opt.init(3.0))
    # float16 and bfloat16 are floating: stepped as torch steps them, in their own dtype
    for dtype in (jnp.float16, jnp.bfloat16):
        new, _ = opt.step(jnp.ones(2, dtype), jnp.ones(2, dtype), opt.init(jnp.ones(2, dtype)))
        assert new.dtype == dtype


# ------------------------------------- parameter groups, decay masks and eager steps


def _torch_groups_run(make, n_steps: int = N_STEPS):
    """Torch's trajectory of [w, z] with the optimizers ``make(w, z)`` returns."""
    with torch_float64():
        w = torch.tensor(W0, requires_grad=True)
        z = torch.tensor(Z0, requires_grad=True)
        optimizers = make(w, z)
        path = []
        for _ in range(n_steps):
            for opt in optimizers:
                opt.zero_grad()
            torch_objective(w, z).backward()
            for opt in optimizers:
                opt.step()
            path.append(as_real({"w": w.detach().numpy(), "z": z.detach().numpy()}))
    return np.array(path)


def test_partition_steps_each_groups_complex_leaves_as_torch_does():
    # f separates in w and z, so torch's Adam on z beside its SGD on w is the oracle.
    opt = ds.optim.partition(
        {"complex": ds.optim.adam(lr=0.05), "real": ds.optim.sgd(lr=0.02, momentum=0.9)},
        lambda path, leaf: "complex" if jnp.iscomplexobj(leaf) else "real",
    )
    ours, params, _ = run_descend(opt, 1.0)
    theirs = _torch_groups_run(
        lambda w, z: [
            torch.optim.Adam([z], lr=0.05, foreach=False),
            torch.optim.SGD([w], lr=0.02, momentum=0.9, foreach=False),
        ]
    )
    assert params["z"].dtype == jnp.complex128
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_partition_group_that_cannot_step_complex_leaves_refuses_them():
    opt = ds.optim.partition(
        {"z": ds.optim.adafactor(lr=0.01), "w": ds.optim.adam(lr=0.01)}, {"z": "z", "w": "w"}
    )
    with pytest.raises(DescendTypeError, match=r"adafactor does not support complex.*\['z'\]"):
        opt.init({"w": jnp.asarray(W0), "z": jnp.asarray(Z0)})


def test_weight_decay_mask_on_complex_params_matches_torch_param_groups():
    opt = ds.optim.adamw(lr=0.05, weight_decay=0.5, weight_decay_mask={"w": False, "z": True})
    ours, _, _ = run_descend(opt, 1.0)
    theirs = _torch_groups_run(
        lambda w, z: [
            torch.optim.AdamW(
                [{"params": [w], "weight_decay": 0.0}, {"params": [z]}],
                lr=0.05,
                weight_decay=0.5,
                foreach=False,
            )
        ]
    )
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_refusals_survive_a_weight_decay_mask():
    opt = ds.optim.adafactor(lr=0.01, weight_decay=0.1, weight_decay_mask={"w": True, "z": True})
    with pytest.raises(DescendTypeError, match="adafactor does not support complex"):
        opt.init({"w": jnp.asarray(W0), "z": jnp.asarray(Z0)})


def test_eager_steps_on_complex_params_equal_the_jitted_ones():
    opt = ds.optim.adam(lr=0.05)
    jitted, _, _ = run_descend(opt, 1.0, n_steps=5)
    grad = _gradient(1.0)
    params = {"w": jnp.asarray(W0), "z": jnp.asarray(Z0)}
    state = opt.init(params)
    for expected in jitted:
        params, state = opt.step(params, grad(params), state)  # compiled by the optimizer
        np.testing.assert_allclose(as_real(params), expected, rtol=1e-14, atol=1e-15)
    assert params["z"].dtype == jnp.complex128


# ------------------------------------- gradients and states that do not fit the params


@pytest.mark.parametrize("name", ["sgd", "adam", "adafactor", "lbfgs"])
def test_a_gradient_of_another_shape_is_refused_not_broadcast(name):
    opt = ds.optim.get(name)
    params = jnp.ones((2, 3))
    with pytest.raises(DescendTypeError, match=r"gradient of shape \(3,\) .* shape \(2, 3\)"):
        opt.step(params, jnp.ones(3), opt.init(params), value=1.0, value_fn=jnp.sum)


def test_a_complex_gradient_for_real_params_is_refused():
    opt = ds.optim.adam(0.1)
    params = jnp.asarray([1.0, 2.0])
    with pytest.raises(DescendTypeError, match="complex gradient for the real parameter"):
        opt.step(params, jnp.asarray([0.5 + 0.25j, -1 + 1j]), opt.init(params))


def test_a_state_made_for_other_params_is_refused():
    opt = ds.optim.sgd(0.1, momentum=0.9)
    z = jnp.asarray(Z0)
    with pytest.raises(DescendTypeError, match=r"state that sgd\.init did not make"):
        opt.step(z, z, opt.init(z.real))  # a real state for complex params
    with pytest.raises(DescendTypeError, match=r"state that sgd\.init did not make"):
        opt.step(z.real, z.real, opt.init(z))  # the params would become (2, 2)


def test_hessian_refuses_complex_inputs_by_name():
    with pytest.raises(DescendTypeError, match="hessian takes real inputs"):
        ds.hessian(lambda z: jnp.abs(z) ** 2)(1 + 1j)
