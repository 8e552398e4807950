"""Row 5: one optimizer step on many parameters, against the memory-bandwidth floor."""

from __future__ import annotations

import gc
import time

import numpy as np

from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    Timing,
    block,
    machine_read_bandwidth,
    optional,
    row,
    torch_device,
    torch_missing,
    torch_sync,
)

SIZES = {  # (n_params, timed steps)
    "tiny": (10_000, 2),
    "quick": (1_000_000, 3),
    "default": (10_000_000, 10),
    "full": (10_000_000, 30),
}

# (name, descend name and hyperparameters, the PyTorch reference (module, class,
#  arguments, implementations timed), optax builder, float32 arrays read + written per
#  parameter). Implementations are torch.optim's "foreach" and "fused" flags, or
#  "default" for a class without them.
ALGORITHMS = {
    "Adam": {
        "descend": ("adam", {"lr": 1e-3}),
        "torch": ("torch.optim", "Adam", {"lr": 1e-3}, ("foreach", "fused")),
        "optax": lambda optax: optax.adam(1e-3),
        # read params, grads, two moments; write params, two moments
        "arrays": 7,
    },
    "SGD with momentum": {
        "descend": ("sgd", {"lr": 1e-2, "momentum": 0.9}),
        "torch": ("torch.optim", "SGD", {"lr": 1e-2, "momentum": 0.9}, ("foreach", "fused")),
        "optax": lambda optax: optax.sgd(1e-2, momentum=0.9),
        # read params, grads, momentum buffer; write params, momentum buffer
        "arrays": 5,
    },
    "LAMB": {
        "descend": ("lamb", {"lr": 1e-3}),
        "torch": None,  # PyTorch has no LAMB; Optax's is the reference
        "optax": lambda optax: optax.lamb(1e-3),
        # read params, grads, two moments; write params, two moments (and two norms)
        "arrays": 7,
    },
    "Lion": {
        "descend": ("lion", {"lr": 1e-4}),
        "torch": None,  # PyTorch has no Lion; Optax's is the reference
        "optax": lambda optax: optax.lion(1e-4),
        # read params, grads, momentum; write params, momentum
        "arrays": 5,
    },
    "Prodigy": {
        "descend": ("prodigy", {"lr": 1.0}),
        "torch": ("prodigyopt", "Prodigy", {"lr": 1.0}, ("default",)),
        # Optax's always corrects the bias (descend's use_bias_correction=True)
        "optax": lambda optax: optax.contrib.prodigy(1.0),
        # read params, grads, two moments, s, the start; write params, two moments, s
        "arrays": 10,
    },
    "Schedule-free AdamW": {
        "descend": ("schedule_free_adamw", {"lr": 2.5e-3}),
        "torch": ("schedulefree", "AdamWScheduleFree", {"lr": 2.5e-3}, ("default",)),
        "optax": lambda optax: optax.contrib.schedule_free_adamw(2.5e-3),
        # read params (y), grads, z, second moment; write params, z, second moment
        "arrays": 7,
    },
}


@row(5, "step", "Optimizer step: Adam, SGD-momentum, LAMB, Lion, Prodigy, schedule-free AdamW")
def run(settings: Settings) -> RowResult:
    n_params, steps = settings.pick(SIZES)
    rng = np.random.default_rng(0)
    params0 = rng.standard_normal(n_params, dtype=np.float32)
    grads0 = rng.standard_normal(n_params, dtype=np.float32)
    gpu = settings.device == "gpu"
    bandwidth = None if gpu else machine_read_bandwidth(min(400 * 2**20, 7 * 4 * n_params))
    tables = [
        _compare(name, spec, params0, grads0, steps, bandwidth, settings)
        for name, spec in ALGORITHMS.items()
    ]
    floor_note = (
        "The floor is the bytes a step must move (each float32 array read or written "
        "once) over the machine's read bandwidth (NumPy `sum` of a large array, one core, "
        f"{bandwidth / 1e9:.2f} GB/s): writes cost at least as much, so the floor is "
        "optimistic. × floor = step time / floor time (1 is the best possible; below 1 "
        "when the arrays fit in a cache)."
        if bandwidth
        else "No floor on the GPU (the NumPy bandwidth is the host's); GB/s is the effective rate."
    )
    return RowResult(
        5, "step", "Optimizer step", tables=tables,
        description=(
            f"One optimizer step on {n_params:,} float32 parameters (one flat array), "
            f"timed per step: cold is the first step (compilation included), warm the "
            f"median of the next {steps}. Each tool steps its own copy of the same "
            "parameters with the same gradient."
        ),
        notes=[
            floor_note,
            "descend and Optax run under jax.jit; 'donated' passes the parameters and "
            "state with donate_argnums so XLA may update them in place, as torch does.",
            "max |Δ| vs descend: the largest difference from descend's parameters after "
            "the first step (float32 rounding only, if the formulas agree).",
        ],
    )  # fmt: skip


def _compare(name, spec, params0, grads0, steps, bandwidth, settings: Settings) -> Comparison:
    import jax
    import jax.numpy as jnp

    import descend
    from descend.optim.base import distinct_buffers

    n_bytes = spec["arrays"] * 4 * params0.size
    columns = [Column("gbps", "GB/s", "{:.1f}")]
    if bandwidth:
        columns.append(Column("x_floor", "× floor", "{:.2f}"))
    columns.append(Column("max_diff", "max |Δ| vs descend", "{:.1e}"))
    table = Comparison(
        f"{name}: {spec['arrays']} float32 arrays moved per step ({n_bytes / 1e6:,.0f} MB)",
        columns=columns,
        baseline="descend, jit",
    )
    reference = {}

    def entry(timing, first_params, note) -> Entry:
        first_params = np.asarray(first_params)
        if not reference:
            reference["params"] = first_params
        values = {
            "gbps": n_bytes / timing.warm_median / 1e9,
            "max_diff": float(np.max(np.abs(first_params - reference["params"]))),
        }
        if bandwidth:
            values["x_floor"] = timing.warm_median / (n_bytes / bandwidth)
        return Entry("", timing, values, note=note)

    def jax_stepper(step, init, donate: bool) -> tuple[Timing, np.ndarray]:
        """Time ``step(params, grads, state)`` in a loop feeding its outputs back."""
        compiled = jax.jit(step, donate_argnums=(0, 2) if donate else ())
        params, grads = jnp.array(params0), jnp.array(grads0)
        carry = {"params": params, "state": init(params)}

        def one_step():
            carry["params"], carry["state"] = compiled(carry["params"], grads, carry["state"])
            block(carry)

        return time_steps(one_step, steps, lambda: np.array(carry["params"]))

    descend_name, hyperparams = spec["descend"]
    for donate in (False, True):

        def measure_descend(donate=donate) -> Entry:
            optimizer = descend.optim.get(descend_name, **hyperparams)
            timing, first = jax_stepper(optimizer.step, optimizer.init, donate)
            return entry(timing, first, f"jax.jit({optimizer!r}.step)")

        table.add(settings, "descend, jit" + (", donated" if donate else ""), measure_descend)

    optax = optional("optax")
    for donate in (False, True):
        tool = "Optax, jit" + (", donated" if donate else "")
        if optax is None:
            table.skip(tool, "optax is not installed")
            continue

        def measure_optax(donate=donate) -> Entry:
            transform = spec["optax"](optax)

            def step(params, grads, state):
                updates, state = transform.update(grads, state, params)
                return optax.apply_updates(params, updates), state

            # Optax's Prodigy keeps the params' own arrays in its state, which XLA
            # cannot donate twice: the state gets copies of them (at init, untimed).
            init = distinct_buffers(transform.init)
            timing, first = jax_stepper(step, init, donate)
            return entry(timing, first, "update + apply_updates under jax.jit")

        table.add(settings, tool, measure_optax)

    if spec.get("torch") is None:
        return table
    device = torch_device(settings)
    module_name, class_name, torch_hyperparams, implementations = spec["torch"]
    for implementation in implementations:
        tool = f"{module_name}.{class_name}"
        if implementation != "default":
            tool += f", {implementation}=True"
        module = optional(module_name)
        if device is None or module is None:
            reason = f"{module_name} is not installed" if device else torch_missing(settings)
            table.skip(tool, reason)
            continue

        def measure_torch(implementation=implementation, module=module) -> Entry:
            torch = optional("torch")
            params = torch.from_numpy(params0.copy()).to(device).requires_grad_(True)
            params.grad = torch.from_numpy(grads0).to(device)
            flags = {} if implementation == "default" else {implementation: True}
            optimizer = getattr(module, class_name)([params], **torch_hyperparams, **flags)
            if hasattr(optimizer, "train"):  # schedule-free: gradients are taken at y
                optimizer.train()

            def one_step():
                optimizer.step()
                torch_sync(device)

            timing, first = time_steps(one_step, steps, lambda: params.detach().cpu().numpy())
            return entry(timing, first, f"on {device}")

        table.add(settings, tool, measure_torch)
    return table


def time_steps(one_step, steps: int, snapshot) -> tuple[Timing, np.ndarray]:
    """Time a first step (cold) and ``steps`` more (warm); ``snapshot()`` copies the
    parameters after the first step to the host, outside the timed region."""
    times, first = [], None
    gc.collect()
    gc.disable()
    try:
        for number in range(1 + steps):
            began = time.perf_counter()
            one_step()
            times.append(time.perf_counter() - began)
            if number == 0:
                first = np.array(snapshot(), copy=True)
    finally:
        gc.enable()
    return Timing(times[0], times[1:]), first
