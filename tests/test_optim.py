"""Properties every optimizer must have, beyond matching its reference.

Pytrees, jit without retracing, dtypes, validation of hyperparameters, the registry
and its defaults (checked against the signatures of torch.optim and Optax).
"""

from __future__ import annotations

import doctest
import functools
import importlib
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import descend as ds
from descend.errors import InputError
from descend.optim import pairs
from torch_names import SAME_DEFAULTS_AS_TORCH as TORCH_CLASSES

# Each algorithm with settings that switch on every piece of state it can keep.
SETTINGS = {
    "gd": {"lr": 0.01},
    "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1},
    "momentum": {"lr": 0.01, "nesterov": True},
    "adagrad": {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    "rmsprop": {"centered": True, "momentum": 0.9, "weight_decay": 0.1},
    "adadelta": {"weight_decay": 0.1},
    "adam": {"amsgrad": True, "weight_decay": 0.1},
    "adamw": {"amsgrad": True},
    "adamax": {"weight_decay": 0.1},
    "nadam": {"decoupled_weight_decay": True, "weight_decay": 0.1},
    "radam": {"weight_decay": 0.1},
    "rprop": {},
    "asgd": {"t0": 1.0},
    "lion": {},
    "adabelief": {"nesterov": True},
    "schedule_free_sgd": {"lr": 0.01, "weight_decay": 0.1, "warmup_steps": 3, "r": 1.0},
    "schedule_free_adamw": {"weight_decay": 0.1, "warmup_steps": 3, "r": 1.0},
    "sign_sgd": {},
    "signum": {},
    "noisy_sgd": {"eta": 0.1},
    "optimistic_gradient_descent": {"lr": 0.01, "beta": 0.5},
    "optimistic_adam": {"eps_root": 1e-8},
    "muon_optax": {"weight_decay": 0.1, "adam_weight_decay": 0.1},
    "adopt": {"lr": 0.01, "nesterov": True},
    "ademamix": {"alpha": 2.0, "weight_decay": 0.1},
    "simplified_ademamix": {"lr": 1e-3, "alpha": 1.0, "weight_decay": 0.1},
    "madgrad": {"weight_decay": 0.1},
    "adan": {"weight_decay": 0.1},
    "amsgrad": {"bias_correction_mu": False},
    "adamaxw": {"weight_decay": 0.1},
    "nadamw": {"weight_decay": 0.1},
    "yogi": {},
    "lamb": {"lr": 0.01, "weight_decay": 0.1},
    "lars": {"nesterov": True, "weight_decay": 0.1},
    "fromage": {},
    "novograd": {"weight_decay": 0.1},
    "sm3": {},
}
NAMES = list(SETTINGS)

OPTAX_NAMES = {"lion": "lion", "adabelief": "adabelief"}


def make(name: str, **overrides) -> ds.optim.Optimizer:
    return ds.optim.get(name, **{**SETTINGS[name], **overrides})


def tree(dtype=jnp.float32):
    """A dict of leaves of different shapes, including a scalar."""
    rng = np.random.default_rng(0)
    return {
        "weights": jnp.asarray(rng.standard_normal((3, 2)), dtype),
        "bias": jnp.asarray(rng.standard_normal(2), dtype),
        "scale": jnp.asarray(rng.standard_normal(()), dtype),
    }


def grads_at(params):
    """Gradient of a smooth separable function, so several steps are meaningful."""
    return jax.grad(lambda p: sum(jnp.sum(jnp.sin(x) + x**2) for x in jax.tree.leaves(p)))(params)


class Compiled:
    """One optimizer with its jitted step, built once per algorithm and shared by the
    tests below (compilation dominates their cost); ``traces`` counts tracings."""

    def __init__(self, opt: ds.optim.Optimizer, *, jit: bool = True):
        self.opt = opt
        self.traces = 0

        def counted(params, grads, state):
            self.traces += 1
            return opt.step(params, grads, state)

        self.step = jax.jit(counted) if jit else counted

    def run(self, params, n_steps=4, grads_fn=grads_at):
        state = self.opt.init(params)
        for _ in range(n_steps):
            params, state = self.step(params, grads_fn(params), state)
        return params, state


@functools.cache
def compiled(name: str) -> Compiled:
    return Compiled(make(name))


@pytest.mark.parametrize("name", NAMES)
def test_pytree_step_under_jit_keeps_structure_and_leaves_independent(name):
    params = tree()
    result, _ = compiled(name).run(params)
    assert jax.tree.structure(result) == jax.tree.structure(params)
    for key, leaf in params.items():
        assert result[key].shape == leaf.shape
        assert np.all(np.isfinite(result[key]))
        assert not np.allclose(result[key], leaf)

    # A different gradient on one leaf must leave the others' trajectories unchanged.
    def other_grads(p):
        grads = grads_at(p)
        return {**grads, "weights": -grads["weights"]}

    changed, _ = compiled(name).run(params, grads_fn=other_grads)
    assert not np.allclose(changed["weights"], result["weights"])
    for key in ("bias", "scale"):
        np.testing.assert_array_equal(changed[key], result[key])


@pytest.mark.parametrize("name", NAMES)
def test_jitted_step_does_not_retrace(name):
    runner = compiled(name)
    params = tree()
    state = runner.opt.init(params)
    params, state = runner.step(params, grads_at(params), state)
    traces = runner.traces
    for _ in range(3):
        params, state = runner.step(params, grads_at(params), state)
    assert traces >= 1
    assert runner.traces == traces


@pytest.mark.parametrize("enable_x64", [False, True], ids=["x32", "x64"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_params_and_state_stay_float32(name, enable_x64):
    with jax.enable_x64(enable_x64):
        params, state = compiled(name).run(tree(jnp.float32))
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == jnp.float32
    for leaf in jax.tree.leaves(state):
        # uint32: a PRNG key (noisy_sgd's)
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.uint32), (name, leaf.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_with_negated_gradient_is_the_minimizing_step(name):
    params = tree()
    down, _ = compiled(name).run(params)
    up, _ = Compiled(make(name, maximize=True), jit=False).run(
        params, grads_fn=lambda p: jax.tree.map(jnp.negative, grads_at(p))
    )
    for a, b in zip(jax.tree.leaves(down), jax.tree.leaves(up), strict=True):
        # equal up to XLA rewriting the double negation (one float32 ulp)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_schedule_that_is_constant_matches_the_number(name):
    if name == "rprop":
        pytest.skip("rprop's lr is an initial step size and takes no schedule")
    lr = compiled(name).opt.hyperparams["lr"]
    fixed, _ = compiled(name).run(tree())
    scheduled, _ = Compiled(make(name, lr=lambda count: lr), jit=False).run(tree())
    for a, b in zip(jax.tree.leaves(fixed), jax.tree.leaves(scheduled), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_asgd_average_after_t0_is_the_mean_of_the_iterates():
    """With t0=0 the average copies the iterates for two steps, then is their mean."""
    opt = ds.optim.asgd(lr=0.05, t0=0.0)
    x = jnp.array([1.0, -2.0])
    state = opt.init(x)
    iterates = []
    for _ in range(10):
        x, state = opt.step(x, 2 * x + 1, state)
        iterates.append(np.asarray(x))
    np.testing.assert_allclose(state.ax, np.mean(iterates[1:], axis=0), rtol=1e-6)


INVALID = [
    ("adam", {"lr": -1.0}, "lr"),
    ("adam", {"lr": math.nan}, "lr"),
    ("adam", {"lr": 0.0}, "lr"),
    ("adam", {"betas": (0.9, 1.0)}, "betas"),
    ("adam", {"betas": (-0.1, 0.999)}, "betas"),
    ("adam", {"betas": 0.9}, "betas"),
    ("adam", {"eps": -1e-8}, "eps"),
    ("adam", {"amsgrad": "yes"}, "amsgrad"),
    ("adamw", {"weight_decay": -0.01}, "weight_decay"),
    ("adamax", {"betas": (0.9, 2.0)}, "betas"),
    ("nadam", {"momentum_decay": -1.0}, "momentum_decay"),
    ("radam", {"eps": math.inf}, "eps"),
    ("radam", {"decoupled_weight_decay": 1}, "decoupled_weight_decay"),
    ("adagrad", {"lr_decay": -0.1}, "lr_decay"),
    ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    ("rmsprop", {"alpha": 1.5}, "alpha"),
    ("rmsprop", {"momentum": -0.5}, "momentum"),
    ("rmsprop", {"centered": None}, "centered"),
    ("adadelta", {"rho": 1.1}, "rho"),
    ("rprop", {"etas": (1.5, 1.2)}, "etas"),
    ("rprop", {"etas": (0.5, 0.9)}, "etas"),
    ("rprop", {"step_sizes": (1.0, 0.1)}, "step_sizes"),
    ("rprop", {"step_sizes": (-1.0, 1.0)}, "step_sizes"),
    ("rprop", {"lr": lambda count: 0.1}, "lr"),
    ("asgd", {"lambd": -1e-4}, "lambd"),
    ("asgd", {"t0": -1.0}, "t0"),
    ("asgd", {"alpha": -0.5}, "alpha"),
    ("lion", {"betas": (1.0, 0.99)}, "betas"),
    ("lion", {"weight_decay": -1.0}, "weight_decay"),
    ("adabelief", {"eps_root": -1e-16}, "eps_root"),
    ("adabelief", {"nesterov": "no"}, "nesterov"),
]


@pytest.mark.parametrize(
    ("name", "hyperparams", "param"),
    INVALID,
    ids=[f"{name}-{param}-{i}" for i, (name, _, param) in enumerate(INVALID)],
)
def test_invalid_hyperparameter_raises_input_error_naming_it(name, hyperparams, param):
    with pytest.raises(InputError) as excinfo:
        ds.optim.get(name, **hyperparams)
    message = str(excinfo.value)
    assert param in message
    if not callable(hyperparams[param]):
        assert repr(hyperparams[param]) in message


def test_unknown_hyperparameter_suggests_the_right_name():
    with pytest.raises(InputError, match="betas"):
        ds.optim.get("adam", betass=(0.9, 0.99))


def test_available_lists_every_algorithm():
    listed = {row["name"]: row for row in ds.optim.available()}
    assert set(NAMES) <= set(listed)
    for name in NAMES:
        assert listed[name]["summary"]


def test_every_algorithm_names_a_reference_that_exists():
    """The listing's ``reference`` is a real class or function of the reference package."""
    for row in ds.optim.available():
        reference = row["reference"]
        assert reference, row["name"]
        dotted = reference.split(" ")[0].split("(")[0]
        module_name, _, attribute = dotted.rpartition(".")
        module = pytest.importorskip(module_name)
        assert hasattr(module, attribute), (row["name"], reference)


def _defaults(name: str) -> dict:
    (row,) = [row for row in ds.optim.available() if row["name"] == name]
    return row["hyperparams"]


@pytest.mark.parametrize("name", sorted(TORCH_CLASSES))
def test_hyperparameter_names_and_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    reference = inspect.signature(getattr(torch.optim, TORCH_CLASSES[name])).parameters
    ours = _defaults(name)
    assert set(ours) <= set(reference), set(ours) - set(reference)
    for key, default in ours.items():
        assert default == reference[key].default, (key, default, reference[key].default)


@pytest.mark.parametrize("name", sorted(OPTAX_NAMES))
def test_hyperparameter_defaults_match_optax(name):
    optax = pytest.importorskip("optax")
    reference = inspect.signature(getattr(optax, OPTAX_NAMES[name])).parameters
    ours = dict(_defaults(name))
    assert ours.pop("betas") == (reference["b1"].default, reference["b2"].default)
    ours.pop("lr")  # Optax's learning_rate has no default
    ours.pop("maximize")  # not in Optax
    for key, default in ours.items():
        assert default == reference[key].default, (key, default, reference[key].default)


MODULES = [
    "descend.optim",
    "descend.optim.adaptive",
    "descend.optim.adam",
    "descend.optim.adam_variants",
    "descend.optim.adam_extended",
    "descend.optim.classic",
    "descend.optim.averaging",
    "descend.optim.base",
    "descend.optim.sgd_variants",
    "descend.optim.optimistic",
    "descend.optim.orthogonalized",
    "descend.optim.contrib_moments",
    "descend.optim.dual_averaging",
    "descend.optim.interop",
    "descend.optim._optax",
    "descend.optim.polyak",
    "descend.optim.momentum_models",
    "descend.optim.probes",
    "descend.optim.layerwise",
    "descend.optim.low_memory",
    "descend.optim.parameter_free",
    "descend.optim.d_adaptation",
    "descend.optim.mechanic",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in finder.find(module, module_name):
        if test.name.startswith(module_name):
            runner.run(test)
            examples += len(test.examples)
    assert examples > 0
    assert runner.failures == 0


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999, 0.9999])
def test_bias_correction_in_float32_is_as_accurate_as_torchs_double(beta):
    """torch computes 1 - beta**t in Python floats; float32 JAX must not lose digits."""
    from descend.optim.blocks import bias_correction

    steps = np.array([1, 2, 3, 10, 100, 1000, 100_000], np.int32)
    ours = np.asarray(jax.jit(lambda t: bias_correction(beta, t * 1.0))(steps))
    assert ours.dtype == np.float32
    expected = np.array([1 - beta ** float(t) for t in steps])
    np.testing.assert_allclose(ours, expected, rtol=3e-7)


def test_get_refuses_hyperparameters_next_to_an_optimizer():
    from descend.errors import DescendTypeError

    with pytest.raises(DescendTypeError, match="adam") as excinfo:
        ds.optim.get(ds.optim.adam(), lr=0.1)
    assert isinstance(excinfo.value, TypeError)
    assert "ds.optim.get('adam', lr=0.1)" in str(excinfo.value)


def _scaled_descent(c: float) -> ds.optim.Optimizer:
    """A user-built optimizer whose step size is captured, not listed in hyperparams."""

    def init(params):
        return ()

    return ds.optim.Optimizer("scaled", init, lambda p, g, s, **kw: (p - c * g, s))


def test_optimizers_differing_only_in_a_captured_value_each_run_their_own_program():
    curvature = np.array([1.0, 3.0])
    x0 = np.array([1.0, -2.0])

    def f(x):
        return 0.5 * jnp.sum(jnp.asarray(curvature) * x * x)

    slow, fast = _scaled_descent(0.1), _scaled_descent(0.5)
    assert slow != fast
    for c, opt in ((0.1, slow), (0.5, fast)):
        result = ds.minimize(f, x0, optimizer=opt, tol=1e-12, max_iter=5)
        np.testing.assert_allclose(result.x, (1 - c * curvature) ** 5 * x0, rtol=1e-12)


def test_optimizers_built_alike_are_equal_and_hash_alike():
    assert ds.optim.adam(lr=0.1) == ds.optim.adam(lr=0.1)
    assert hash(ds.optim.adam(lr=0.1)) == hash(ds.optim.adam(lr=0.1))
    assert ds.optim.adam(lr=0.1) != ds.optim.adam(lr=0.2)
    assert _scaled_descent(0.1) == _scaled_descent(0.1)
    assert hash(_scaled_descent(0.1)) == hash(_scaled_descent(0.1))


def test_schedules_given_as_functions_compare_by_what_they_capture():
    def decaying(base):
        return lambda count: base / (1.0 + count)

    assert ds.optim.sgd(lr=decaying(0.1)) == ds.optim.sgd(lr=decaying(0.1))
    assert ds.optim.sgd(lr=decaying(0.1)) != ds.optim.sgd(lr=decaying(0.2))


def test_an_optimizer_whose_step_refers_to_itself_still_hashes():
    def step(params, grads, state, **kw):
        return params - 0.1 * grads, (state, step)[0]

    opt = ds.optim.Optimizer("recursive", lambda params: (), step)
    assert opt == opt and hash(opt) == hash(opt)


def test_an_unknown_hyperparameter_lists_the_valid_ones_in_good_english():
    with pytest.raises(InputError, match=r"valid hyperparameters of adam: amsgrad"):
        ds.optim.get("adam", foo=1)


# ------------------------------------------------------------ steps called eagerly

ALL_NAMES = ds.optim.names()


WRAPPED = {
    "chain": lambda: ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.adam(lr=0.1)),
    "reduce_on_plateau": lambda: ds.optim.schedules.reduce_on_plateau(ds.optim.sgd(lr=0.1)),
    "one_cycle": lambda: ds.optim.sgd(lr=ds.optim.schedules.one_cycle(0.5, total_steps=10)),
}


# Defaults whose first steps are ~1e-6 by design (a distance or scale estimated from
# 1e-6 up): started larger, so that three steps move the params visibly.
EAGER = {
    "dadapt_adamw": {"d0": 1e-2},
    "dog": {"init_step": ("distance", 1e-2)},
    "mechanize": {"s_init": 1e-2},
}


def eager_problem(name):
    """Params, value function and optimizer for one eager step of ``name``."""
    # muon takes 2-D weights only; float32 given, so no weak type changes at the 2nd step
    shape = (3, 3) if name == "muon" else (3,)
    params = jnp.asarray(np.linspace(-1.0, 2.0, math.prod(shape)).reshape(shape), jnp.float32)

    def value_fn(p):
        return jnp.sum((p - 1.0) ** 2 * jnp.arange(1.0, 1.0 + p.size).reshape(p.shape))

    opt = WRAPPED[name]() if name in WRAPPED else ds.optim.get(name, **EAGER.get(name, {}))
    return params, value_fn, opt


@pytest.mark.parametrize("name", ALL_NAMES + sorted(WRAPPED))
def test_eager_steps_run_one_compiled_program_and_equal_the_jitted_step(name):
    from descend.optim.base import compiled_step

    params, value_fn, opt = eager_problem(name)
    jitted = jax.jit(lambda p, s: opt.step(p, jax.grad(value_fn)(p), s, value=value_fn(p),
                                           value_fn=value_fn))  # fmt: skip
    eager, jit_params = params, params
    eager_state = jit_state = opt.init(params)
    for _ in range(3):
        grads, value = jax.grad(value_fn)(eager), value_fn(eager)
        eager, eager_state = opt.step(eager, grads, eager_state, value=value, value_fn=value_fn)
        jit_params, jit_state = jitted(jit_params, jit_state)
    assert compiled_step(opt, value_fn)._cache_size() == 1  # traced once, then reused
    np.testing.assert_allclose(eager, jit_params, rtol=1e-6)
    assert not np.allclose(eager, params)


def test_an_eager_lbfgs_step_traces_its_line_search_once():
    """Before, every eager step traced (and compiled) the line search again: 0.45-0.7 s."""
    traces = []

    def f(x):
        traces.append(1)  # runs when traced, not when the compiled program runs
        return jnp.sum((x - jnp.array([1.0, 2.0, 3.0])) ** 2 * jnp.array([1.0, 10.0, 100.0]))

    opt = ds.optim.lbfgs()
    x, state = jnp.zeros(3), opt.init(jnp.zeros(3))
    x, state = opt.step(x, jax.grad(f)(x), state, value=f(x), value_fn=f)
    after_first = len(traces)
    for _ in range(9):
        x, state = opt.step(x, jax.grad(f)(x), state, value=f(x), value_fn=f)
    assert len(traces) == after_first + 18  # only the value and gradient above, twice a step
    np.testing.assert_allclose(x, [1.0, 2.0, 3.0], rtol=1e-4)


def test_a_step_inside_jit_is_the_plain_function():
    from descend.optim.base import compiled_step

    opt = ds.optim.adam(lr=0.1)
    before = compiled_step.cache_info()
    x, _ = jax.jit(lambda x, s: opt.step(x, 2 * x, s))(jnp.ones(2), opt.init(jnp.ones(2)))
    jax.grad(lambda x: jnp.sum(opt.step(x, 2 * x, opt.init(x))[0]))(jnp.ones(2))
    assert compiled_step.cache_info() == before
    assert opt.step.function is not opt.step and callable(opt.step.function)


def test_a_new_value_fn_at_every_eager_step_warns_once(monkeypatch):
    from descend.errors import DescendWarning
    from descend.optim import base

    monkeypatch.setattr(base, "MANY_PROGRAMS", 3)
    opt = ds.optim.gd()  # the line search reads value_fn
    x, state = jnp.ones(2), opt.init(jnp.ones(2))
    with pytest.warns(DescendWarning, match=r"gd\.step has compiled 3 programs, one for each new"):
        for shift in range(4):
            f = lambda x, shift=shift: jnp.sum((x - shift) ** 2)  # noqa: E731
            x, state = opt.step(x, jax.grad(f)(x), state, value=f(x), value_fn=f)


def test_a_step_that_cannot_be_traced_still_runs_eagerly():
    def step(params, grads, state, *, value=None, value_fn=None):
        lr = 0.5 if float(grads) > 0 else 0.25  # Python control flow on a value
        return params - lr * grads, state + 1

    opt = ds.optim.Optimizer("custom", lambda params: 0, step)
    x, state = opt.step(jnp.asarray(1.0), jnp.asarray(2.0), opt.init(1.0))
    x, state = opt.step(x, jnp.asarray(-4.0), state)
    assert float(x) == 1.0 and state == 2


def test_an_optimizer_built_from_anothers_step_is_equal_to_it():
    base = ds.optim.sgd(lr=0.1, momentum=0.9)
    rebuilt = ds.optim.Optimizer(base.name, base.init, base.step, base.hyperparams)
    assert rebuilt == base and hash(rebuilt) == hash(base)
    # One wrapper each (complex pairs, then the eager step), around the same algorithm.
    assert not isinstance(rebuilt.step.function, ds.optim.base.EagerStep)
    assert pairs._own(rebuilt.step.function) is pairs._own(base.step.function)


@pytest.mark.parametrize("name", ds.optim.names())
def test_a_step_with_params_and_state_donated_runs(name):
    """No state shares an array with the params or with itself: XLA refuses to donate
    one buffer twice (Prodigy's starting point, DoG's, a zero shared by two fields)."""
    opt = ds.optim.get(name)
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    if name == "muon":  # torch's Muon takes matrices only
        params["b"] = jnp.zeros((2, 2))
    state = opt.init(params)
    leaves = [leaf for leaf in jax.tree.leaves((params, state)) if isinstance(leaf, jax.Array)]
    assert len({id(leaf) for leaf in leaves}) == len(leaves)
    objective = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum((p["b"] - 1.0) ** 2)  # noqa: E731
    grads = jax.grad(objective)(params)
    step = jax.jit(
        lambda p, g, s: opt.step(p, g, s, value=objective(p), value_fn=objective),
        donate_argnums=(0, 2),
    )
    new_params, _ = step(params, grads, state)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(new_params))
