"""Logistic regression trained by hand in the peers, the way their users write it.

Each trainer starts from the same NumPy arrays and zero weights, shuffles once per
epoch, takes ``ceil(n / batch_size)`` steps per epoch (the short last batch is used, as
in descend) and returns the weights on the host. ``max_steps`` stops early, for loops
too slow to run whole: the caller extrapolates their time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import optional


@dataclass
class Trained:
    w: np.ndarray
    b: float
    n_steps: int


def torch_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    algorithm: str,
    lr: float,
    batch_size: int,
    epochs: int,
    seed: int = 0,
    implementation: str = "foreach",
    device: str = "cpu",
    max_steps: int | None = None,
) -> Trained:
    """A plain PyTorch loop, no DataLoader: ``randperm`` and indexing, then
    ``zero_grad``, forward, ``binary_cross_entropy_with_logits``, ``backward``, ``step``.

    ``algorithm`` is ``"adam"`` or ``"sgd"``; ``implementation`` is ``"foreach"`` or
    ``"fused"`` (the ``torch.optim`` flag of that name).
    """
    torch = optional("torch")
    functional = torch.nn.functional
    features = torch.from_numpy(X).to(device)
    labels = torch.from_numpy(y).to(device)
    n_samples, n_features = X.shape
    w = torch.zeros(n_features, device=device, requires_grad=True)
    b = torch.zeros((), device=device, requires_grad=True)
    optimizer_class = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[algorithm]
    optimizer = optimizer_class([w, b], lr=lr, **{implementation: True})
    generator = torch.Generator(device=device).manual_seed(seed)
    n_steps = 0
    for _ in range(epochs):
        order = torch.randperm(n_samples, generator=generator, device=device)
        for start in range(0, n_samples, batch_size):
            if max_steps is not None and n_steps >= max_steps:
                break
            rows = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = functional.binary_cross_entropy_with_logits(features[rows] @ w + b, labels[rows])
            loss.backward()
            optimizer.step()
            n_steps += 1
    return Trained(w.detach().cpu().numpy(), float(b.detach().cpu()), n_steps)


def _optax_pieces(transform):
    import jax
    import jax.numpy as jnp
    import optax

    def loss(params, xb, yb):
        logits = xb @ params["w"] + params["b"]
        return optax.sigmoid_binary_cross_entropy(logits, yb).mean()

    def update(params, state, xb, yb):
        grads = jax.grad(loss)(params, xb, yb)
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def start(X, y):
        X, y = jnp.asarray(X), jnp.asarray(y)
        params = {"w": jnp.zeros(X.shape[1], X.dtype), "b": jnp.zeros((), X.dtype)}
        return X, y, params, transform.init(params)

    return update, start


def optax_step_loop(transform, batch_size: int) -> Callable[..., Trained]:
    """JAX + Optax with one jitted step, looped over the batches in Python.

    The step takes the whole data and the epoch's permutation and slices its batch
    inside the program, so each step is one dispatch. Returns
    ``train(X, y, *, epochs, seed, max_steps=None)``; its jitted step is compiled by
    the first call and reused by the next ones.
    """
    import jax

    update, start = _optax_pieces(transform)

    @functools.partial(jax.jit, static_argnames="size")
    def step(params, state, X, y, order, first, size):
        rows = jax.lax.dynamic_slice_in_dim(order, first, size)
        return update(params, state, X[rows], y[rows])

    def train(X, y, *, epochs: int, seed: int = 0, max_steps: int | None = None) -> Trained:
        n_samples = len(X)
        X, y, params, state = start(X, y)
        key = jax.random.key(seed)
        n_steps = 0
        for epoch in range(epochs):
            order = jax.random.permutation(jax.random.fold_in(key, epoch), n_samples)
            for first in range(0, n_samples, batch_size):
                if max_steps is not None and n_steps >= max_steps:
                    break
                size = min(batch_size, n_samples - first)
                params, state = step(params, state, X, y, order, first, size)
                n_steps += 1
        params = jax.device_get(params)
        return Trained(np.asarray(params["w"]), float(params["b"]), n_steps)

    return train


def optax_scan_loop(transform, batch_size: int) -> Callable[..., Trained]:
    """JAX + Optax with each epoch one jitted program: a permutation, then a
    ``lax.scan`` over the batches gathering each batch's rows (what a JAX expert writes).

    Returns ``train(X, y, *, epochs, seed)``; compiled on first call per data shape.
    """
    import jax

    update, start = _optax_pieces(transform)

    @jax.jit
    def epoch(params, state, X, y, key):
        n_samples = X.shape[0]
        order = jax.random.permutation(key, n_samples)
        n_full = n_samples // batch_size

        def body(carry, rows):
            return update(*carry, X[rows], y[rows]), None

        batches = order[: n_full * batch_size].reshape(n_full, batch_size)
        (params, state), _ = jax.lax.scan(body, (params, state), batches)
        if n_samples % batch_size:
            rows = order[n_full * batch_size :]
            params, state = update(params, state, X[rows], y[rows])
        return params, state

    def train(X, y, *, epochs: int, seed: int = 0) -> Trained:
        n_samples = len(X)
        X, y, params, state = start(X, y)
        key = jax.random.key(seed)
        for number in range(epochs):
            params, state = epoch(params, state, X, y, jax.random.fold_in(key, number))
        params = jax.device_get(params)
        n_steps = epochs * -(-n_samples // batch_size)
        return Trained(np.asarray(params["w"]), float(params["b"]), n_steps)

    return train


# --------------------------------------------------------------------------- Keras


STEPS_PER_EXECUTION = (1, 8, 64, 512)
KERAS_NOTE = (
    "Keras is imported with KERAS_BACKEND=jax for that import only; JAX's configuration is "
    "compared before and after it and set back where Keras changed it "
    "(`harness.keras_on_jax`; Keras 3.15 changes none of it). Its cold time is the first "
    "fit of a new model after the steps_per_execution trials in the same process, so "
    "JAX's tracing caches are warm by then, as for the other JAX tools that run after "
    "descend. With steps_per_execution > 1, Keras's JAX trainer still dispatches one "
    "compiled step per batch, in a Python loop; the setting thins out fit's own work "
    "between steps (callbacks, logs)."
)


class KerasLogistic:
    """Keras 3 ``model.fit`` of a ``Dense(1)`` with zero initial weights, on logits
    (``BinaryCrossentropy(from_logits=True)``), the way a Keras user writes it.

    ``algorithm`` is ``"adam"`` (``epsilon=1e-8``, as PyTorch and Optax) or ``"sgd"``.
    The model is built and compiled once; each :meth:`train` puts the weights and the
    optimizer's state (its step count and moments, not its learning rate) back to zero
    first, so later calls reuse the compiled step.
    """

    def __init__(
        self, keras, n_features: int, *, algorithm: str, lr: float, steps_per_execution: int
    ):
        optimizer = {
            "adam": lambda: keras.optimizers.Adam(learning_rate=lr, epsilon=1e-8),
            "sgd": lambda: keras.optimizers.SGD(learning_rate=lr),
        }[algorithm]()
        self.model = keras.Sequential(
            [
                keras.Input((n_features,)),
                keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros"),
            ]
        )
        self.model.compile(
            optimizer=optimizer,
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            steps_per_execution=steps_per_execution,
        )
        self.steps_per_execution = steps_per_execution

    def train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        batch_size: int,
        epochs: int,
        steps_per_epoch: int | None = None,
        shuffle: bool = True,
    ) -> Trained:
        model = self.model
        rate = getattr(model.optimizer, "_learning_rate", None)
        for variable in model.trainable_variables + model.optimizer.variables:
            if variable is not rate:
                variable.assign(np.zeros(variable.shape, variable.dtype))
        model.fit(
            X, y, batch_size=batch_size, epochs=epochs, shuffle=shuffle, verbose=0,
            steps_per_epoch=steps_per_epoch,
        )  # fmt: skip
        kernel, bias = (np.asarray(v) for v in model.get_weights())
        n_steps = epochs * (steps_per_epoch or -(-len(X) // batch_size))
        return Trained(kernel.ravel(), float(bias[0]), n_steps)


def keras_steps_per_execution(
    keras,
    X: np.ndarray,
    y: np.ndarray,
    *,
    algorithm: str,
    lr: float,
    batch_size: int,
    tuning_steps: int = 2_000,
    candidates: tuple[int, ...] = STEPS_PER_EXECUTION,
) -> tuple[int, dict[int, float]]:
    """The fastest ``steps_per_execution`` of ``candidates`` for :class:`KerasLogistic`,
    and the warm seconds per step each candidate took.

    Each candidate trains ``tuning_steps`` steps once to compile, then once timed.
    """
    import time

    per_step = {}
    steps = min(tuning_steps, -(-len(X) // batch_size))
    for value in candidates:
        trainer = KerasLogistic(
            keras, X.shape[1], algorithm=algorithm, lr=lr, steps_per_execution=value
        )
        trainer.train(X, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps)
        began = time.perf_counter()
        trainer.train(X, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps)
        per_step[value] = (time.perf_counter() - began) / steps
    return min(per_step, key=per_step.get), per_step


def keras_tuning_note(per_step: dict[int, float], chosen: int) -> str:
    tried = ", ".join(f"{value}: {seconds * 1e6:.0f} µs" for value, seconds in per_step.items())
    return (
        f"Keras: steps_per_execution={chosen}, the fastest of the values tried (warm time "
        f"per step: {tried})."
    )


# --------------------------------------------------------------------------- Vowpal Wabbit


VW_FLAGS = "--loss_function logistic --sgd --power_t 0 --holdout_off --quiet"


def write_vw_text(path, X: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    """The rows of ``X`` in ``order`` as Vowpal Wabbit text: ``±1 | 0:x0 1:x1 ...``."""
    fmt = "%d | " + " ".join(f"{j}:%.9g" for j in range(X.shape[1]))
    with open(path, "w") as file:
        for start in range(0, len(order), 65_536):
            rows = order[start : start + 65_536]
            labels = np.where(y[rows] > 0, 1, -1).astype(np.float64)[:, None]
            np.savetxt(file, np.hstack([labels, X[rows].astype(np.float64)]), fmt=fmt)


def vw_logistic(path, n_features: int, *, lr: float, cache_file=None, extra: str = "") -> Trained:
    """One pass of Vowpal Wabbit over the examples in ``path`` (as :func:`write_vw_text`
    writes them), plain SGD at the constant rate ``lr`` (:data:`VW_FLAGS`).

    With ``cache_file``, VW reads its binary cache when the file exists and writes it
    while parsing the text when not.
    """
    from vowpalwabbit import Workspace

    arguments = f"-d {path} {VW_FLAGS} -l {lr!r} {extra}"
    if cache_file is not None:
        arguments += f" --cache_file {cache_file}"
    workspace = Workspace(arguments)
    try:
        workspace.run_parser()
        w = np.array([workspace.get_weight_from_name(str(j)) for j in range(n_features)])
        # VW's intercept is the weight of its "Constant" feature, hashed to 11650396.
        b = workspace.get_weight(11650396 & (workspace.num_weights() - 1))
        n_steps = int(workspace.get_weighted_examples())
    finally:
        workspace.finish()
    return Trained(w, float(b), n_steps)
