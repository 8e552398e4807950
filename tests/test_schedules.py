"""Learning-rate schedules against torch.optim.lr_scheduler, scikit-learn and Optax."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from sklearn.linear_model import SGDRegressor
from torch.optim import lr_scheduler

from descend.errors import InputError
from descend.optim import schedules
from descend.optim.sgd import sgd

LR = 0.1
N_STEPS = 100


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def torch_rates(make_scheduler, n_steps=N_STEPS, lr=LR):
    """The learning rate of each of n_steps optimizer steps, one scheduler.step() after each."""
    weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scheduler = make_scheduler(optimizer)
        rates = []
        for _ in range(n_steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return np.array(rates, dtype=np.float64)


def our_rates(schedule, n_steps=N_STEPS):
    at = jax.jit(schedule)
    return np.array([float(at(jnp.int32(k))) for k in range(n_steps)])


CASES = {
    "step": (
        lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
        schedules.step(LR, step_size=7, gamma=0.5),
    ),
    "multistep": (
        lambda o: lr_scheduler.MultiStepLR(o, milestones=[10, 30, 30, 55], gamma=0.3),
        schedules.multistep(LR, milestones=[55, 10, 30, 30], gamma=0.3),
    ),
    "exponential": (
        lambda o: lr_scheduler.ExponentialLR(o, gamma=0.97),
        schedules.exponential(LR, gamma=0.97),
    ),
    "cosine_past_T_max": (
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.001),
        schedules.cosine_annealing(LR, T_max=30, eta_min=0.001),
    ),
    "cosine_to_zero": (
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=100),
        schedules.cosine_annealing(LR, T_max=100),
    ),
    "constant": (
        lambda o: lr_scheduler.ConstantLR(o, factor=0.5, total_iters=10),
        schedules.constant(LR, factor=0.5, total_iters=10),
    ),
    "warmup_then_cosine": (
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=10),
                lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.001),
            ],
            milestones=[10],
        ),
        schedules.linear_warmup(
            schedules.cosine_annealing(LR, T_max=50, eta_min=0.001), 10, start_factor=0.2
        ),
    ),
    "warmup_of_constant": (
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=8),
        schedules.linear_warmup(LR, 8, start_factor=0.25),
    ),
    "warmup_chained_exponential": (
        lambda o: lr_scheduler.ChainedScheduler(
            [
                lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=10),
                lr_scheduler.ExponentialLR(o, gamma=0.98),
            ]
        ),
        schedules.linear_warmup(schedules.exponential(LR, 0.98), 10, 0.2, chained=True),
    ),
    "warmup_chained_cosine": (
        lambda o: lr_scheduler.ChainedScheduler(
            [
                lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=10),
                lr_scheduler.CosineAnnealingLR(o, T_max=40),
            ]
        ),
        schedules.linear_warmup(schedules.cosine_annealing(LR, 40), 10, 0.2, chained=True),
    ),
    "one_cycle_cos": (
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=N_STEPS),
        schedules.one_cycle(0.5, total_steps=N_STEPS),
    ),
    "one_cycle_linear": (
        lambda o: lr_scheduler.OneCycleLR(
            o, max_lr=0.5, total_steps=N_STEPS, anneal_strategy="linear", pct_start=0.4
        ),
        schedules.one_cycle(0.5, N_STEPS, pct_start=0.4, anneal_strategy="linear"),
    ),
    "one_cycle_three_phase_linear": (
        lambda o: lr_scheduler.OneCycleLR(
            o, 0.5, total_steps=N_STEPS, three_phase=True, anneal_strategy="linear", pct_start=0.25
        ),
        schedules.one_cycle(0.5, N_STEPS, 0.25, "linear", three_phase=True),
    ),
    "one_cycle_three_phase_cos": (
        lambda o: lr_scheduler.OneCycleLR(
            o,
            0.5,
            total_steps=N_STEPS,
            pct_start=0.37,
            div_factor=10,
            final_div_factor=100,
            three_phase=True,
        ),
        schedules.one_cycle(
            0.5, N_STEPS, 0.37, div_factor=10, final_div_factor=100, three_phase=True
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_torch_scheduler_step_by_step(name):
    make_scheduler, schedule = CASES[name]
    expected = torch_rates(make_scheduler)
    # Relative to the rate, with an absolute floor at 1e-12 of the peak: torch's
    # recursive updates and the closed forms round differently where the rate is ~0.
    np.testing.assert_allclose(
        our_rates(schedule), expected, rtol=1e-12, atol=1e-12 * expected.max()
    )


def test_schedules_are_hashable_so_compiled_loops_are_reused():
    assert schedules.multistep(0.1, [3, 1]) == schedules.multistep(0.1, (1, 3))
    assert hash(schedules.multistep(0.1, [3, 1])) == hash(schedules.multistep(0.1, (1, 3)))
    warm = schedules.linear_warmup(schedules.cosine_annealing(0.1, 50), 5)
    assert sgd(lr=warm) == sgd(lr=schedules.linear_warmup(schedules.cosine_annealing(0.1, 50), 5))
    assert sgd(lr=schedules.step(0.1, 5)) != sgd(lr=schedules.step(0.1, 6))


def test_schedule_as_lr_drives_an_optimizer_inside_jit():
    schedule = schedules.exponential(0.5, gamma=0.5)
    opt = sgd(lr=schedule)
    step = jax.jit(lambda x, s: opt.step(x, jnp.ones(()), s))
    x, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    for _ in range(3):
        x, state = step(x, state)
    assert float(x) == pytest.approx(-(0.5 + 0.25 + 0.125), rel=1e-15)


def test_one_cycle_holds_its_final_rate_after_total_steps():
    schedule = schedules.one_cycle(1.0, total_steps=20)
    final = float(schedule(19))
    assert final == pytest.approx(1.0 / 25 / 1e4, rel=1e-12)
    assert [float(schedule(k)) for k in (20, 21, 1000)] == [final] * 3


def test_inverse_scaling_matches_scikit_learn_sgd_per_sample():
    """sklearn's t starts at 1 for the first sample, our count at 0: eta0 / (count + 1)**power_t."""
    rng = np.random.default_rng(0)
    features, targets = rng.normal(size=(40, 3)), rng.normal(size=40)
    eta0, power_t = 0.05, 0.3
    reference = SGDRegressor(
        learning_rate="invscaling", eta0=eta0, power_t=power_t, penalty=None,
        fit_intercept=False, shuffle=False, max_iter=1, tol=None,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge
        reference.fit(features, targets)

    opt = sgd(lr=schedules.inverse_scaling(eta0, power_t=power_t))

    def sample_loss(w, x, y):
        return 0.5 * (jnp.dot(w, x) - y) ** 2

    @jax.jit
    def epoch(w):
        def one(carry, sample):
            w, state = carry
            return opt.step(w, jax.grad(sample_loss)(w, *sample), state), None

        (w, _), _ = jax.lax.scan(one, (w, opt.init(w)), (features, targets))
        return w

    np.testing.assert_allclose(epoch(jnp.zeros(3)), reference.coef_, rtol=1e-12)


PLATEAU_CASES = [
    {"factor": 0.5, "patience": 2},
    {"factor": 0.3, "patience": 3, "cooldown": 2, "min_scale": 0.05},
    {"factor": 0.5, "patience": 1, "accumulation_size": 3, "rtol": 0.0, "atol": 0.01},
]


@pytest.mark.parametrize("settings", PLATEAU_CASES)
def test_reduce_on_plateau_scales_like_optax(settings):
    rng = np.random.default_rng(1)
    # Falling, then flat with noise, then falling again: improvements and plateaus.
    losses = np.concatenate(
        [np.linspace(2.0, 1.0, 10), 1.0 + 0.01 * rng.random(25), np.linspace(0.9, 0.5, 10)]
    )
    reference = optax.contrib.reduce_on_plateau(**settings)
    ref_state = reference.init(jnp.zeros(()))
    ref_update = jax.jit(lambda s, v: reference.update(jnp.ones(()), s, value=v))
    opt = schedules.reduce_on_plateau(sgd(lr=1.0), **settings)
    step = jax.jit(lambda x, s, v: opt.step(x, jnp.ones(()), s, value=v))
    x, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    for loss in losses:
        scaled, ref_state = ref_update(ref_state, jnp.asarray(loss))
        before = x
        x, state = step(x, state, jnp.asarray(loss))
        assert float(state.scale) == float(ref_state.scale)
        # sgd(lr=1) with gradient 1 would move by -1; the wrapper moves by -scale.
        assert float(before - x) == pytest.approx(float(scaled), rel=1e-12)
    assert float(state.scale) < 1.0


def test_reduce_on_plateau_never_counts_a_growing_negative_loss_as_an_improvement():
    """The documented difference from Optax: the relative threshold is of |best|."""
    settings = {"factor": 0.5, "patience": 2, "rtol": 0.1}
    reference = optax.contrib.reduce_on_plateau(**settings)
    ref_state = reference.init(jnp.zeros(()))
    opt = schedules.reduce_on_plateau(sgd(lr=1.0), **settings)
    x, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    for loss in [-1.0, -0.95, -0.9]:  # getting worse
        _, ref_state = reference.update(jnp.ones(()), ref_state, value=jnp.asarray(loss))
        x, state = opt.step(x, jnp.ones(()), state, value=loss)
    assert float(state.scale) == 0.5  # two bad steps: reduced
    assert float(ref_state.scale) == 1.0  # Optax took -0.95 for an improvement on -1.0


def test_reduce_on_plateau_needs_the_loss_and_keeps_inner_properties():
    from descend.optim.lbfgs import lbfgs

    wrapped = schedules.reduce_on_plateau(lbfgs())
    assert wrapped.needs_value_fn
    assert wrapped.evaluations is not None
    opt = schedules.reduce_on_plateau(sgd(lr=0.1))
    with pytest.raises(InputError, match="value=loss"):
        opt.step(jnp.zeros(()), jnp.ones(()), opt.init(jnp.zeros(())))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: schedules.step(0.1, step_size=0), "step_size"),
        (lambda: schedules.multistep(0.1, [-1]), "milestones"),
        (lambda: schedules.exponential(-0.1, 0.9), "lr"),
        (lambda: schedules.cosine_annealing(0.1, T_max=0), "T_max"),
        (lambda: schedules.linear_warmup(0.1, 5, start_factor=0.0), "start_factor"),
        (lambda: schedules.one_cycle(0.1, 100, anneal_strategy="exp"), "anneal_strategy"),
        (lambda: schedules.one_cycle(0.1, 100, pct_start=1.5), "pct_start"),
        (lambda: schedules.inverse_scaling(0.1, power_t=-1.0), "power_t"),
        (lambda: schedules.reduce_on_plateau(sgd(), factor=1.0), "factor"),
        (lambda: schedules.reduce_on_plateau(sgd(), rtol=0.0, atol=0.0), "rtol"),
    ],
)
def test_schedules_reject_invalid_arguments(make, message):
    with pytest.raises(InputError, match=message):
        make()


# ------------------------------------------------------------ horizons


def torch_one_cycle_completed_steps(total_steps):
    """Optimizer steps, each followed by scheduler.step(), that torch's OneCycleLR completes."""
    weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=LR)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=total_steps)
    completed = 0
    with pytest.raises(ValueError, match="Tried to step"):
        for _ in range(10 * total_steps):
            optimizer.step()
            scheduler.step()
            completed += 1
    return completed


def test_one_cycle_horizon_is_the_steps_torch_completes_before_raising():
    assert schedules.one_cycle(1.0, total_steps=20).horizon == torch_one_cycle_completed_steps(20)


def test_cosine_annealing_horizon_ends_where_torch_climbs_back():
    rates = torch_rates(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=0.01), 80)
    first_rise = next(k for k in range(1, len(rates)) if rates[k] > rates[k - 1])
    assert schedules.cosine_annealing(LR, T_max=30, eta_min=0.01).horizon == first_rise


HORIZON_CASES = {  # a schedule by its setting, the setting, steps before it starts
    "one_cycle": (lambda n: schedules.one_cycle(1.0, total_steps=n), "total_steps", 0),
    "cosine_annealing": (lambda n: schedules.cosine_annealing(LR, T_max=n), "T_max", 0),
    "warmup_one_cycle": (
        lambda n: schedules.linear_warmup(schedules.one_cycle(1.0, total_steps=n), 10),
        "total_steps",
        10,
    ),
    "chained_warmup_cosine": (
        lambda n: schedules.linear_warmup(
            schedules.cosine_annealing(LR, T_max=n), 10, chained=True
        ),
        "T_max",
        0,
    ),
}


@pytest.mark.parametrize("name", sorted(HORIZON_CASES))
def test_past_horizon_names_the_schedule_and_a_setting_that_covers_the_run(name):
    make, setting, delay = HORIZON_CASES[name]
    opt = sgd(lr=make(50))
    horizon = opt.hyperparams["lr"].horizon
    assert schedules.past_horizon(opt, horizon) is None
    sentence = schedules.past_horizon(opt, horizon + 1)
    assert f"({setting}=50)" in sentence
    assert (f"({delay} warm-up steps included)" in sentence) == (delay > 0)
    fixed = int(re.search(rf"set {setting}=(\d+)", sentence).group(1))
    assert schedules.past_horizon(sgd(lr=make(fixed)), horizon + 1) is None  # the fix covers it
    assert fixed <= horizon + 1 - delay  # and asks for no more steps than the run makes


def test_past_horizon_looks_inside_wrapping_optimizers():
    from descend.optim import chain, clip_by_global_norm

    cycle = schedules.one_cycle(1.0, total_steps=10)
    wrapped = (
        chain(clip_by_global_norm(1.0), sgd(lr=cycle)),
        schedules.reduce_on_plateau(sgd(lr=cycle)),
    )
    for opt in wrapped:
        assert "total_steps=10" in schedules.past_horizon(opt, 11)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.constant(LR, factor=0.5, total_iters=3),
        schedules.step(LR, 5),
        schedules.multistep(LR, [3, 7]),
        schedules.exponential(LR, 0.9),
        schedules.inverse_scaling(LR),
        schedules.linear_warmup(schedules.step(LR, 5), 10),
    ],
    ids=repr,
)
def test_schedules_that_keep_their_last_rate_have_no_horizon(schedule):
    assert getattr(schedule, "horizon", None) is None
    assert schedules.past_horizon(sgd(lr=schedule), 10**9) is None
