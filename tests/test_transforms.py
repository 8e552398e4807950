"""Gradient transforms and chain against torch.nn.utils clipping and torch.optim weight decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from descend.errors import DescendTypeError, InputError
from descend.optim.lbfgs import lbfgs
from descend.optim.sgd import sgd
from descend.optim.transforms import (
    add_weight_decay,
    chain,
    clip_by_global_norm,
    clip_by_value,
    decoupled_weight_decay,
)
from trajectories import flat, trajectory

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 5)) * 3.0
Y = RNG.normal(size=(30, 2)) * 5.0
START = {"W": RNG.normal(size=(5, 2)), "b": RNG.normal(size=2)}
N_STEPS = 40


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def loss(params, lib=jnp):
    x, y = (lib.asarray(a) if lib is jnp else torch.tensor(a) for a in (X, Y))
    return lib.mean((x @ params["W"] + params["b"] - y) ** 2)


def run_ours(opt, n_steps=N_STEPS):
    return trajectory(opt, loss, START, n_steps)[0]


def run_torch(make_optimizer, before_step, n_steps=N_STEPS):
    """torch: backward, then ``before_step(tensors, optimizer)``, then optimizer.step()."""
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in START.items()}
    optimizer = make_optimizer(list(tensors.values()))
    path = []
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss(tensors, lib=torch).backward()
        with torch.no_grad():
            before_step(list(tensors.values()), optimizer)
        optimizer.step()
        path.append(flat({k: t.detach().numpy() for k, t in tensors.items()}))
    return np.array(path)


def assert_same_trajectory(ours, theirs):
    relative = np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert relative.max() < 1e-12


@pytest.mark.parametrize("max_norm", [0.5, 20.0])
def test_chain_clip_by_global_norm_matches_torch_clip_grad_norm(max_norm):
    norms = []
    ours = run_ours(chain(clip_by_global_norm(max_norm), sgd(lr=0.05, momentum=0.9)))
    theirs = run_torch(
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        lambda tensors, _: norms.append(float(torch.nn.utils.clip_grad_norm_(tensors, max_norm))),
    )
    assert_same_trajectory(ours, theirs)
    if max_norm == 20.0:  # the run has both clipped and unclipped steps
        assert min(norms) < max_norm < max(norms)


def test_clip_by_value_matches_torch_clip_grad_value():
    grads = {"a": RNG.normal(size=(3, 4)) * 2, "b": RNG.normal(size=5)}
    ours, _ = clip_by_value(1.5).apply({k: jnp.asarray(v) for k, v in grads.items()}, (), None)
    tensors = [
        torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for v in grads.values()
    ]
    for tensor, value in zip(tensors, grads.values(), strict=True):
        tensor.grad = torch.tensor(value)
    torch.nn.utils.clip_grad_value_(tensors, 1.5)
    for key, tensor in zip(grads, tensors, strict=True):
        np.testing.assert_array_equal(ours[key], tensor.grad.numpy())


def test_chain_clip_by_value_matches_torch_trajectory():
    ours = run_ours(chain(clip_by_value(2.0), sgd(lr=0.05)))
    theirs = run_torch(
        lambda p: torch.optim.SGD(p, lr=0.05),
        lambda tensors, _: torch.nn.utils.clip_grad_value_(tensors, 2.0),
    )
    assert_same_trajectory(ours, theirs)


def test_add_weight_decay_matches_torch_sgd_weight_decay():
    ours = run_ours(chain(add_weight_decay(0.3), sgd(lr=0.05, momentum=0.9)))
    theirs = run_torch(
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.3),
        lambda tensors, _: None,
    )
    assert_same_trajectory(ours, theirs)
    builtin = run_ours(sgd(lr=0.05, momentum=0.9, weight_decay=0.3))
    assert_same_trajectory(ours, builtin)


def test_decoupled_weight_decay_matches_adamw_style_decay_before_torch_sgd():
    lr, weight_decay = 0.05, 0.3

    def decay(tensors, _):
        # What torch.optim.AdamW does before its Adam step.
        for tensor in tensors:
            tensor.mul_(1 - lr * weight_decay)

    ours = run_ours(chain(decoupled_weight_decay(weight_decay, lr), sgd(lr=lr, momentum=0.9)))
    theirs = run_torch(lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9), decay)
    assert_same_trajectory(ours, theirs)


def test_chain_decoupled_weight_decay_with_adam_is_torch_adamw():
    adam_module = pytest.importorskip("descend.optim.adam")
    lr, weight_decay = 0.01, 0.2
    ours = run_ours(chain(decoupled_weight_decay(weight_decay, lr), adam_module.adam(lr)))
    theirs = run_torch(
        lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=weight_decay), lambda *_: None
    )
    assert_same_trajectory(ours, theirs)


def test_chain_applies_transforms_in_order():
    # clip to 1 then add 10 * params, versus add then clip: different results.
    params, grads = jnp.array([1.0]), jnp.array([5.0])
    clip_then_decay = chain(clip_by_value(1.0), add_weight_decay(10.0), sgd(lr=1.0))
    decay_then_clip = chain(add_weight_decay(10.0), clip_by_value(1.0), sgd(lr=1.0))
    first, _ = clip_then_decay.step(params, grads, clip_then_decay.init(params))
    second, _ = decay_then_clip.step(params, grads, decay_then_clip.init(params))
    assert float(first[0]) == pytest.approx(1.0 - 11.0)
    assert float(second[0]) == pytest.approx(1.0 - 1.0)


def test_chain_passes_on_line_search_needs_and_evaluations():
    opt = chain(clip_by_global_norm(100.0), lbfgs())
    assert opt.needs_value_fn
    params = jnp.array([-1.2, 1.0])

    def f(x):
        return jnp.sum((x - 2.0) ** 2)

    value, grads = jax.value_and_grad(f)(params)
    step = jax.jit(lambda p, g, s, v: opt.step(p, g, s, value=v, value_fn=f))
    params, state = step(params, grads, opt.init(params), value)
    assert int(state.count) == 1
    assert int(opt.evaluations(state)) >= 1
    assert f(params) < value
    assert chain(clip_by_value(1.0), sgd()).evaluations is None


def test_equal_chains_compare_equal():
    assert chain(clip_by_global_norm(1.0), sgd(lr=0.1)) == chain(
        clip_by_global_norm(1.0), sgd(lr=0.1)
    )
    assert chain(clip_by_global_norm(1.0), sgd(lr=0.1)) != chain(
        clip_by_global_norm(2.0), sgd(lr=0.1)
    )


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: chain(), DescendTypeError, "optimizer as its last argument"),
        (lambda: chain(sgd(), clip_by_value(1.0)), DescendTypeError, "last argument"),
        (lambda: chain(sgd(), sgd()), DescendTypeError, "argument 0"),
        (lambda: chain("clip", sgd()), DescendTypeError, "argument 0"),
        (lambda: clip_by_global_norm(0.0), InputError, "max_norm"),
        (lambda: clip_by_value(-1.0), InputError, "clip_value"),
        (lambda: add_weight_decay(-0.1), InputError, "weight_decay"),
        (lambda: decoupled_weight_decay(0.1, lr=0.0), InputError, "lr"),
    ],
)
def test_transforms_reject_invalid_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()
