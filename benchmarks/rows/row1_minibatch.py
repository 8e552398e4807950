"""Row 1: mini-batch training of logistic regression with Adam."""

from __future__ import annotations

from benchmarks import peers, problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    first_call_table,
    keras_on_jax,
    measure,
    optional,
    row,
    torch_device,
    torch_missing,
    torch_sync,
)

SIZES = {  # (n_samples, n_features, epochs)
    "tiny": (512, 8, 2),
    "quick": (5_000, 100, 2),
    "default": (200_000, 100, 5),
    "full": (200_000, 100, 5),
}
LR, BATCH_SIZE, SEED = 1e-3, 32, 0
FIRST_CALLS = {  # tool: the function that prepares its first call in a new process
    "descend": f"{__name__}:first_call_descend",
    "JAX + Optax, lax.scan epoch": f"{__name__}:first_call_optax_scan",
    "PyTorch loop, Adam foreach=True": f"{__name__}:first_call_torch",
}


def _data(settings: Settings):
    n_samples, n_features, epochs = settings.pick(SIZES)
    X, y = problems.classification_data(n_samples, n_features)
    return X, y, epochs


def _descend_fit(X, y, epochs: int):
    import descend

    return descend.fit(
        "logistic", X, y, optimizer="adam", lr=LR, batch_size=BATCH_SIZE,
        epochs=epochs, seed=SEED, verbose=0, **problems.PLAIN,
    )  # fmt: skip


def first_call_descend(settings: Settings):
    import descend  # noqa: F401  (imported before the call, as in a user's script)

    X, y, epochs = _data(settings)
    return lambda: _descend_fit(X, y, epochs)


def first_call_optax_scan(settings: Settings):
    X, y, epochs = _data(settings)
    train = peers.optax_scan_loop(optional("optax").adam(LR), BATCH_SIZE)
    return lambda: train(X, y, epochs=epochs, seed=SEED)


def first_call_keras(settings: Settings, steps_per_execution: int):
    keras, missing = keras_on_jax()
    if keras is None:
        raise RuntimeError(missing)
    X, y, epochs = _data(settings)
    trainer = peers.KerasLogistic(
        keras, X.shape[1], algorithm="adam", lr=LR, steps_per_execution=steps_per_execution
    )
    return lambda: trainer.train(X, y, batch_size=BATCH_SIZE, epochs=epochs)


def first_call_torch(settings: Settings):
    optional("torch")  # imported before the call, as in a user's script
    X, y, epochs = _data(settings)
    return lambda: peers.torch_logistic(
        X, y, algorithm="adam", lr=LR, batch_size=BATCH_SIZE, epochs=epochs, seed=SEED
    )


@row(1, "minibatch", "Mini-batch training: logistic regression, Adam, batch 32")
def run(settings: Settings) -> RowResult:
    X, y, epochs = _data(settings)
    n_samples, n_features = X.shape
    # The Python loops take one dispatch per step: outside --full they are timed on one
    # epoch and their time is multiplied by the number of epochs.
    loop_epochs = epochs if settings.full else 1
    table = Comparison(
        f"{n_samples:,} × {n_features} float32, Adam lr={LR:g}, batch {BATCH_SIZE}, "
        f"{epochs} epochs with shuffling: time for {epochs} epochs",
        columns=[
            Column("epochs_timed", "epochs timed"),
            Column("loss_1", "loss after 1 epoch", "{:.5f}"),
            Column("loss_all", f"loss after {epochs} epochs", "{:.5f}"),
        ],
    )

    def loss(trained_w, trained_b) -> float:
        return problems.log_loss(X, y, trained_w, trained_b)

    def descend_fit(n_epochs: int):
        return _descend_fit(X, y, n_epochs)

    def measure_descend() -> Entry:
        timing, result = measure(lambda: descend_fit(epochs), repeats=settings.repeats)
        one = descend_fit(1)
        return Entry(
            "descend",
            timing,
            {
                "epochs_timed": epochs,
                "loss_1": loss(one.params["w"], one.params["b"]),
                "loss_all": loss(result.params["w"], result.params["b"]),
            },
            note="descend.fit from NumPy arrays (its input checks and per-epoch metrics included)",
        )

    table.add(settings, "descend", measure_descend)

    optax = optional("optax")
    if optax is None:
        table.skip("JAX + Optax, lax.scan epoch", "optax is not installed")
        table.skip("JAX + Optax, jit step, Python loop", "optax is not installed")
    else:

        def measure_scan() -> Entry:
            train = peers.optax_scan_loop(optax.adam(LR), BATCH_SIZE)
            timing, trained = measure(
                lambda: train(X, y, epochs=epochs, seed=SEED), repeats=settings.repeats
            )
            one = train(X, y, epochs=1, seed=SEED)
            return Entry(
                "",
                timing,
                {
                    "epochs_timed": epochs,
                    "loss_1": loss(one.w, one.b),
                    "loss_all": loss(trained.w, trained.b),
                },
                note="hand-written: one permutation per epoch, lax.scan over the batches",
            )

        def measure_step_loop() -> Entry:
            train = peers.optax_step_loop(optax.adam(LR), BATCH_SIZE)
            return _loop_entry(
                lambda n_epochs: train(X, y, epochs=n_epochs, seed=SEED),
                loss, epochs, loop_epochs, settings,
                "jax.jit of one step (batch sliced inside), Python loop over the batches",
            )  # fmt: skip

        table.add(settings, "JAX + Optax, lax.scan epoch", measure_scan)
        table.add(settings, "JAX + Optax, jit step, Python loop", measure_step_loop)

    device = torch_device(settings)
    for implementation in ("foreach", "fused"):
        tool = f"PyTorch loop, Adam {implementation}=True"
        if device is None:
            table.skip(tool, torch_missing(settings))
            continue

        def measure_torch(implementation=implementation) -> Entry:
            def train(n_epochs: int):
                trained = peers.torch_logistic(
                    X, y, algorithm="adam", lr=LR, batch_size=BATCH_SIZE, epochs=n_epochs,
                    seed=SEED, implementation=implementation, device=device,
                )  # fmt: skip
                torch_sync(device)
                return trained

            return _loop_entry(
                train, loss, epochs, loop_epochs, settings,
                f"randperm + indexing, zero_grad / forward / backward / step on {device}",
            )  # fmt: skip

        table.add(settings, tool, measure_torch)

    keras, keras_missing = keras_on_jax()
    keras_tool = "Keras 3 model.fit (JAX backend)"
    tuning, first_calls = [], dict(FIRST_CALLS)
    if keras is None:
        table.skip(keras_tool, keras_missing)
    else:

        def measure_keras() -> Entry:
            chosen, per_step = peers.keras_steps_per_execution(
                keras, X, y, algorithm="adam", lr=LR, batch_size=BATCH_SIZE
            )
            tuning.append(peers.keras_tuning_note(per_step, chosen))
            arguments = {"steps_per_execution": chosen}
            first_calls[keras_tool] = (f"{__name__}:first_call_keras", arguments)
            trainer = peers.KerasLogistic(
                keras, n_features, algorithm="adam", lr=LR, steps_per_execution=chosen
            )

            def train(n_epochs: int):
                return trainer.train(X, y, batch_size=BATCH_SIZE, epochs=n_epochs)

            timing, trained = measure(lambda: train(epochs), repeats=settings.repeats)
            one = train(1)
            return Entry(
                "",
                timing,
                {
                    "epochs_timed": epochs,
                    "loss_1": loss(one.w, one.b),
                    "loss_all": loss(trained.w, trained.b),
                },
                note=f"Dense(1), zero init, Adam(epsilon=1e-8), BinaryCrossentropy(from_logits="
                f"True), fit(batch_size={BATCH_SIZE}, shuffle=True), steps_per_execution="
                f"{chosen}",
            )

        table.add(settings, keras_tool, measure_keras)

    notes = [
        "Every tool starts from the same NumPy arrays and zero weights and returns the "
        "weights on the host; losses are the mean log-loss of those weights on the full "
        "training data, computed by the same NumPy function (float64).",
        "Losses differ slightly between tools: each shuffles with its own random generator.",
    ]
    notes += tuning
    if keras is not None:
        notes += [
            peers.KERAS_NOTE,
            "Keras's Adam adds epsilon to the square root of the uncorrected second moment "
            "(the paper's epsilon-hat; PyTorch and Optax add it after bias correction), a "
            "negligible difference at epsilon=1e-8.",
        ]
    if loop_epochs < epochs:
        notes.append(
            f"The Python loops (jit step, PyTorch) were timed on 1 epoch: their times are "
            f"the measured time × {epochs} (run with --full to time all {epochs} epochs); "
            f"their loss after {epochs} epochs is not measured."
        )
    tables = [table, first_call_table(table, settings, first_calls)]
    return RowResult(
        1, "minibatch", "Mini-batch training", tables=[t for t in tables if t], notes=notes,
        description=(
            "Logistic regression by mini-batch gradient descent with Adam, as "
            f"`descend.fit(\"logistic\", X, y, optimizer=\"adam\", lr={LR:g}, "
            f"batch_size={BATCH_SIZE}, epochs={epochs}, verbose=0)`."
        ),
    )  # fmt: skip


def _loop_entry(train, loss, epochs: int, loop_epochs: int, settings: Settings, note: str):
    """Time a Python-loop trainer on ``loop_epochs`` epochs, reported for ``epochs``."""
    timing, trained = measure(lambda: train(loop_epochs), repeats=settings.repeats)
    values = {"epochs_timed": loop_epochs, "loss_all": None}
    if loop_epochs == epochs:
        values["loss_all"] = loss(trained.w, trained.b)
        one = train(1)
        values["loss_1"] = loss(one.w, one.b)
    else:
        values["loss_1"] = loss(trained.w, trained.b)
        timing = timing.scaled(epochs / loop_epochs)
        note += f"; time measured on {loop_epochs} epoch × {epochs / loop_epochs:g}"
    return Entry("", timing, values, note=note)
