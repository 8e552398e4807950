"""Running one of our optimizers step by step on a dict of params (shared by tests)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import torch


def flat(params):
    """The params' values in one vector, keys in sorted order (as a reference run lists them)."""
    return np.concatenate([np.ravel(np.asarray(params[k])) for k in sorted(params)])


def trajectory(opt, objective, params, n_steps):
    """``(path, state)``: the flattened params after each of ``n_steps`` jitted steps."""
    grad = jax.grad(objective)
    step = jax.jit(lambda p, s: opt.step(p, grad(p), s))
    params = {k: jnp.asarray(v) for k, v in params.items()}
    state = opt.init(params)
    path = []
    for _ in range(n_steps):
        params, state = step(params, state)
        path.append(flat(params))
    return np.array(path), state


@contextlib.contextmanager
def torch_float64():
    """torch's default dtype float64 inside the block (tensors from Python floats)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
