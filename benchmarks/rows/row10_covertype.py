"""Row 10: stochastic gradient descent on the shape of scikit-learn's covertype benchmark."""

from __future__ import annotations

import warnings

from benchmarks import problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    measure,
    optional,
    row,
)

SIZES = {  # n_samples; the features are always covertype's 54
    "tiny": 2_000,
    "quick": 50_000,
    "default": problems.COVERTYPE_SHAPE[0],
    "full": problems.COVERTYPE_SHAPE[0],
}
LR, EPOCHS, SEED = 1e-3, 2, 0
MINIBATCH = 32  # the mini-batch variant, at lr = MINIBATCH × LR (the linear scaling rule)


@row(10, "covertype", "Covertype-shaped SGD: logistic regression, batch 1 and mini-batch")
def run(settings: Settings) -> RowResult:
    import descend

    X, y = problems.covertype_like_data(settings.pick(SIZES), seed=SEED)
    n_samples, n_features = X.shape
    table = Comparison(
        f"{n_samples:,} × {n_features} float32 (covertype-like, generated), logistic loss, "
        f"{EPOCHS} epochs with shuffling",
        columns=[
            Column("batch", "batch"),
            Column("lr", "lr", "{:g}"),
            Column("log_loss", "final log-loss", "{:.5f}"),
        ],
    )

    def fit(batch_size: int, lr: float):
        return descend.fit(
            "logistic", X, y, optimizer="sgd", lr=lr, batch_size=batch_size, epochs=EPOCHS,
            seed=SEED, verbose=0, **problems.PLAIN,
        )  # fmt: skip

    def measure_descend(batch_size: int, lr: float) -> Entry:
        timing, result = measure(lambda: fit(batch_size, lr), repeats=settings.repeats)
        return Entry(
            "",
            timing,
            {
                "batch": batch_size,
                "lr": lr,
                "log_loss": problems.log_loss(X, y, result.params["w"], result.params["b"]),
            },
            note=f'fit("logistic", optimizer="sgd", lr={lr:g}, batch_size={batch_size}, '
            f"epochs={EPOCHS})",
        )

    table.add(settings, "descend", lambda: measure_descend(1, LR))
    table.add(
        settings, f"descend, batch {MINIBATCH}", lambda: measure_descend(MINIBATCH, MINIBATCH * LR)
    )

    linear_model = optional("sklearn.linear_model")
    if linear_model is None:
        table.skip("scikit-learn SGDClassifier", "scikit-learn is not installed")
    else:

        def fit_sklearn():
            model = linear_model.SGDClassifier(
                loss="log_loss", penalty=None, learning_rate="constant", eta0=LR,
                max_iter=EPOCHS, tol=None, shuffle=True, random_state=SEED,
            )  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a fixed number of epochs, on purpose
                return model.fit(X, y)

        def measure_sklearn() -> Entry:
            timing, model = measure(fit_sklearn, repeats=settings.repeats)
            return Entry(
                "",
                timing,
                {
                    "batch": 1,
                    "lr": LR,
                    "log_loss": problems.log_loss(X, y, model.coef_.ravel(), model.intercept_[0]),
                },
                note=f'SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", '
                f"eta0={LR:g}, max_iter={EPOCHS}, tol=None, shuffle=True)",
            )

        table.add(settings, "scikit-learn SGDClassifier", measure_sklearn)

    notes = [
        "The data has the shape of the training split of scikit-learn's own SGD benchmark "
        "(`benchmarks/bench_covertype.py`: 522,911 × 54, class 1 against the rest), but is "
        "generated from a fixed seed (`problems.covertype_like_data`): the real set is a "
        "download, not available offline. 10 continuous features, standardized as that "
        "benchmark does, and two one-hot groups (4 areas, 40 soil types); about 36% "
        "positives.",
        "Log-loss of the final weights on the full training data (same NumPy function). The "
        f"mini-batch variant takes {MINIBATCH} rows per step at {MINIBATCH}× the rate, so "
        "its loss is comparable, in 1/32 of the steps.",
    ]
    return RowResult(
        10, "covertype", "Covertype-shaped SGD", tables=[table], notes=notes,
        description=(
            "Logistic regression by stochastic gradient descent on data of the shape "
            "scikit-learn benchmarks its SGD on, where `SGDClassifier` trains in about a "
            "second: descend with batch 1 (as `SGDClassifier`) and with mini-batches, the "
            "same constant rate, no penalty, the same number of epochs."
        ),
    )  # fmt: skip
