"""Row 1: mini-batch training of logistic regression with Adam."""

from __future__ import annotations

from benchmarks import peers, problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
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


@row(1, "minibatch", "Mini-batch training: logistic regression, Adam, batch 32")
def run(settings: Settings) -> RowResult:
    import descend

    n_samples, n_features, epochs = settings.pick(SIZES)
    X, y = problems.classification_data(n_samples, n_features)
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
        return descend.fit(
            "logistic", X, y, optimizer="adam", lr=LR, batch_size=BATCH_SIZE,
            epochs=n_epochs, seed=SEED, verbose=0, **problems.PLAIN,
        )  # fmt: skip

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
            note="descend.fit from NumPy arrays (validation and per-epoch metrics included)",
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

    notes = [
        "Every tool starts from the same NumPy arrays and zero weights and returns the "
        "weights on the host; losses are the mean log-loss of those weights on the full "
        "training data, computed by the same NumPy function (float64).",
        "Losses differ slightly between tools: each shuffles with its own random generator.",
    ]
    if loop_epochs < epochs:
        notes.append(
            f"The Python loops (jit step, PyTorch) were timed on 1 epoch: their times are "
            f"the measured time × {epochs} (run with --full to time all {epochs} epochs); "
            f"their loss after {epochs} epochs is not measured."
        )
    return RowResult(
        1, "minibatch", "Mini-batch training", tables=[table], notes=notes,
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
