"""Row 3: batch (full-data) gradient descent on linear regression, against the memory floor."""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks import problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    Table,
    block,
    first_call_table,
    measure,
    optional,
    read_bandwidth,
    row,
    torch_device,
    torch_missing,
    torch_sync,
)

SIZES = {  # (n_samples, n_features, steps)
    "tiny": (2_000, 8, 3),
    "quick": (50_000, 100, 5),
    "default": (1_000_000, 100, 50),
    "full": (1_000_000, 100, 50),
}
LR = 0.1
FIRST_CALLS = {  # tool: the function that prepares its first call in a new process
    "descend": f"{__name__}:first_call_descend",
    "JAX, jit + fori_loop": f"{__name__}:first_call_jax",
    "NumPy, gradient written out": f"{__name__}:first_call_numpy",
}


def _data(settings: Settings):
    n_samples, n_features, steps = settings.pick(SIZES)
    X, y = problems.regression_data(n_samples, n_features)
    return X, y, steps


def _descend_fit(X, y, steps: int):
    import descend

    return descend.fit(
        "linear", X, y, optimizer="sgd", lr=LR, batch_size=None, epochs=steps,
        shuffle=False, verbose=0, **problems.PLAIN,
    )  # fmt: skip


def first_call_descend(settings: Settings):
    import descend  # noqa: F401  (imported before the call, as in a user's script)

    X, y, steps = _data(settings)
    return lambda: _descend_fit(X, y, steps)


def first_call_jax(settings: Settings):
    X, y, steps = _data(settings)
    train = _jax_descent(steps)
    return lambda: train(X, y)


def first_call_numpy(settings: Settings):
    X, y, steps = _data(settings)
    return lambda: _numpy_descent(X, y, steps)


@row(3, "batch", "Batch gradient descent: linear regression, full-batch steps")
def run(settings: Settings) -> RowResult:
    X, y, steps = _data(settings)
    n_samples, n_features = X.shape
    repeats = settings.heavy_repeats
    gpu = settings.device == "gpu"
    bandwidth, bandwidth_source = _bandwidth(X, gpu)
    bytes_fused = X.nbytes + y.nbytes
    bytes_two_pass = 2 * X.nbytes + y.nbytes
    floor_fused = steps * bytes_fused / bandwidth
    floor_two_pass = steps * bytes_two_pass / bandwidth

    table = Comparison(
        f"{n_samples:,} × {n_features} float32, mean squared error, {steps} steps of plain "
        f"gradient descent with lr={LR:g}",
        columns=[
            Column("mse", "final MSE", "{:.6g}"),
            Column("x_fused", "× floor, X read once per step", "{:.2f}"),
            Column("x_two_pass", "× floor, X read twice per step", "{:.2f}"),
        ],
    )

    def entry(timing, w, b, note) -> Entry:
        warm = timing.warm_median
        values = {
            "mse": problems.mean_squared_error(X, y, w, b),
            "x_fused": warm / floor_fused,
            "x_two_pass": warm / floor_two_pass,
        }
        return Entry("", timing, values, note=note)

    def measure_descend() -> Entry:
        timing, result = measure(lambda: _descend_fit(X, y, steps), repeats=repeats)
        return entry(
            timing, result.params["w"], result.params["b"],
            f'fit("linear", optimizer="sgd", lr={LR:g}, batch_size=None, epochs={steps}, '
            "shuffle=False)",
        )  # fmt: skip

    def measure_numpy() -> Entry:
        timing, (w, b) = measure(lambda: _numpy_descent(X, y, steps), repeats=repeats)
        return entry(timing, w, b, "float32; per step r = X @ w + b - y, then X.T @ r")

    def measure_jax() -> Entry:
        train = _jax_descent(steps)
        timing, (w, b) = measure(lambda: train(X, y), repeats=repeats, sync=block)
        return entry(timing, w, b, "hand-written: jit of a fori_loop over jax.grad of the MSE")

    table.add(settings, "descend", measure_descend)
    table.add(settings, "NumPy, gradient written out" + (" (CPU)" if gpu else ""), measure_numpy)
    table.add(settings, "JAX, jit + fori_loop", measure_jax)

    device = torch_device(settings)
    for autograd, tool in ((False, "PyTorch, gradient written out"), (True, "PyTorch, autograd")):
        if device is None:
            table.skip(tool, torch_missing(settings))
            continue

        def measure_torch(autograd=autograd) -> Entry:
            def call():
                w, b = _torch_descent(X, y, steps, device, autograd)
                torch_sync(device)
                return w, b

            timing, (w, b) = measure(call, repeats=repeats)
            note = (
                "loss.backward() and torch.optim.SGD (foreach)"
                if autograd
                else "torch.mv(X, w) then torch.mv(X.T, r), in place"
            )
            return entry(timing, w, b, f"{note}, on {device}")

        table.add(settings, tool, measure_torch)

    floor = Table(
        "The memory-bandwidth floor",
        ["read bandwidth", "bytes per step, X read once", "bytes per step, X read twice",
         f"floor for {steps} steps, once", f"floor for {steps} steps, twice"],
        [[f"{bandwidth / 1e9:.2f} GB/s", f"{bytes_fused / 1e6:,.0f} MB",
          f"{bytes_two_pass / 1e6:,.0f} MB", f"{floor_fused:.3g} s", f"{floor_two_pass:.3g} s"]],
        notes=[
            f"Read bandwidth: {bandwidth_source}.",
            "A step needs X w (all of X) and then Xᵀ r, which needs the residual r of every "
            "row: done as two matrix-vector products, X is read twice per step. A fused "
            "kernel could accumulate Xᵀ r row by row as each residual is known and read X "
            "once. Writes (the residual, n floats) are small next to X and not counted.",
            "× floor = tool time / floor time: 1 is the best possible, higher is slower.",
        ],
    )  # fmt: skip
    first = first_call_table(table, settings, FIRST_CALLS)
    return RowResult(
        3, "batch", "Batch gradient descent", tables=[t for t in (table, first, floor) if t],
        description=(
            "Linear regression by batch gradient descent: every step uses all samples. "
            "Each step streams the whole of X from memory, so the floor is memory bandwidth."
        ),
    )  # fmt: skip


def _bandwidth(X: np.ndarray, gpu: bool) -> tuple[float, str]:
    if not gpu:
        return read_bandwidth(X), "NumPy `X.sum()` on X itself, median of 3, one core"
    import jax
    import jax.numpy as jnp

    on_device = jnp.asarray(X)
    total = jax.jit(jnp.sum)
    block(total(on_device))
    times = []
    for _ in range(3):
        began = time.perf_counter()
        block(total(on_device))
        times.append(time.perf_counter() - began)
    return X.nbytes / statistics.median(times), "jit(jnp.sum)(X) on the GPU, median of 3"


def _numpy_descent(X: np.ndarray, y: np.ndarray, steps: int):
    n_samples, n_features = X.shape
    w, b = np.zeros(n_features, np.float32), np.float32(0.0)
    step = np.float32(LR * 2.0 / n_samples)  # d/dw mean(r^2) = 2 Xᵀ r / n
    for _ in range(steps):
        residual = X @ w
        residual += b
        residual -= y
        w -= step * (X.T @ residual)
        b -= step * residual.sum()
    return w, float(b)


def _jax_descent(steps: int):
    import jax
    import jax.numpy as jnp

    @jax.jit
    def descent(X, y):
        def loss(params):
            return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)

        def body(_, params):
            grads = jax.grad(loss)(params)
            return jax.tree.map(lambda p, g: p - LR * g, params, grads)

        start = {"w": jnp.zeros(X.shape[1], X.dtype), "b": jnp.zeros((), X.dtype)}
        return jax.lax.fori_loop(0, steps, body, start)

    def train(X, y):
        params = descent(jnp.asarray(X), jnp.asarray(y))
        params = jax.device_get(params)
        return params["w"], float(params["b"])

    return train


def _torch_descent(X: np.ndarray, y: np.ndarray, steps: int, device: str, autograd: bool):
    torch = optional("torch")
    features = torch.from_numpy(X).to(device)
    targets = torch.from_numpy(y).to(device)
    n_samples, n_features = X.shape
    w = torch.zeros(n_features, device=device)
    b = torch.zeros((), device=device)
    if autograd:
        w.requires_grad_(True)
        b.requires_grad_(True)
        optimizer = torch.optim.SGD([w, b], lr=LR)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.mean((features @ w + b - targets) ** 2)
            loss.backward()
            optimizer.step()
    else:
        scale = LR * 2.0 / n_samples
        with torch.no_grad():
            for _ in range(steps):
                residual = torch.mv(features, w).add_(b).sub_(targets)
                w.sub_(torch.mv(features.T, residual), alpha=scale)
                b.sub_(residual.sum() * scale)
    return w.detach().cpu().numpy(), float(b.detach().cpu())
