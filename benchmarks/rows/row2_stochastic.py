"""Row 2: stochastic gradient descent (batch size 1) against scikit-learn's SGDClassifier."""

from __future__ import annotations

import warnings

import numpy as np

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
)

SIZES = {  # (n_samples, n_features)
    "tiny": (400, 8),
    "quick": (5_000, 100),
    "default": (200_000, 100),
    "full": (200_000, 100),
}
LR, SEED = 1e-3, 0


@row(2, "stochastic", "Stochastic training: logistic regression, SGD, batch 1", devices=("cpu",))
def run(settings: Settings) -> RowResult:
    import descend

    n_samples, n_features = settings.pick(SIZES)
    X, y = problems.classification_data(n_samples, n_features)
    table = Comparison(
        f"{n_samples:,} × {n_features} float32, SGD with constant lr={LR:g}, batch 1, "
        "1 epoch with shuffling",
        columns=[Column("log_loss", "final log-loss", "{:.5f}")],
    )

    def score(w, b) -> float:
        return problems.log_loss(X, y, w, b)

    def measure_descend() -> Entry:
        timing, result = measure(
            lambda: descend.fit(
                "logistic", X, y, optimizer="sgd", lr=LR, batch_size=1, epochs=1,
                seed=SEED, verbose=0, **problems.PLAIN,
            ),
            repeats=settings.repeats,
        )  # fmt: skip
        params = result.params
        return Entry(
            "descend",
            timing,
            {"log_loss": score(params["w"], params["b"])},
            note=f'fit("logistic", optimizer="sgd", lr={LR:g}, batch_size=1, epochs=1)',
        )

    table.add(settings, "descend", measure_descend)

    sklearn = optional("sklearn.linear_model")
    if sklearn is None:
        table.skip("scikit-learn SGDClassifier", "scikit-learn is not installed")
    else:

        def fit_sklearn():
            model = sklearn.SGDClassifier(
                loss="log_loss", penalty=None, learning_rate="constant", eta0=LR,
                max_iter=1, tol=None, shuffle=True, random_state=SEED,
            )  # fmt: skip
            with warnings.catch_warnings():
                # One epoch on purpose: the "not converged" warning is expected.
                warnings.simplefilter("ignore")
                return model.fit(X, y)

        def measure_sklearn() -> Entry:
            timing, model = measure(fit_sklearn, repeats=settings.repeats)
            return Entry(
                "",
                timing,
                {"log_loss": score(model.coef_.ravel(), model.intercept_[0])},
                note=f'SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", '
                f"eta0={LR:g}, max_iter=1, tol=None, shuffle=True)",
            )

        table.add(settings, "scikit-learn SGDClassifier", measure_sklearn)

    optax = optional("optax")
    if optax is None:
        table.skip("JAX + Optax, lax.scan epoch", "optax is not installed")
    else:

        def measure_scan() -> Entry:
            train = peers.optax_scan_loop(optax.sgd(LR), 1)
            timing, trained = measure(
                lambda: train(X, y, epochs=1, seed=SEED), repeats=settings.repeats
            )
            return Entry(
                "",
                timing,
                {"log_loss": score(trained.w, trained.b)},
                note="hand-written lax.scan over single rows (a reference for what JAX allows)",
            )

        table.add(settings, "JAX + Optax, lax.scan epoch", measure_scan)

    notes = _loss_notes(table, X, y)
    return RowResult(
        2, "stochastic", "Stochastic training", tables=[table], notes=notes,
        description=(
            "Logistic regression by stochastic gradient descent: one sample per update, "
            "one pass over the data, the same constant learning rate for every tool "
            "(scikit-learn's default schedule, `\"optimal\"`, depends on its L2 penalty, "
            "so both run `\"constant\"` without penalty)."
        ),
    )  # fmt: skip


def _loss_notes(table: Comparison, X, y) -> list[str]:
    """The log-loss comparison the row is about, and the best log-loss for scale."""
    notes = ["Log-loss of the final weights on the full training data (same NumPy function)."]
    ours, theirs = table.find("descend"), table.find("scikit-learn SGDClassifier")
    if ours and theirs and ours.timing and theirs.timing:
        gap = ours.values["log_loss"] - theirs.values["log_loss"]
        # The two shuffle differently, so equal means equal up to that noise.
        if gap <= 0:
            verdict = "descend is better"
        elif gap <= 1e-3 * theirs.values["log_loss"]:
            verdict = "equal within 0.1%"
        else:
            verdict = "descend is worse"
        notes.append(f"descend − scikit-learn log-loss: {gap:+.2e} ({verdict}).")
    linear_model = optional("sklearn.linear_model")
    if linear_model is not None:
        best = linear_model.LogisticRegression(C=np.inf, max_iter=1000).fit(X, y)
        best_loss = problems.log_loss(X, y, best.coef_.ravel(), best.intercept_[0])
        notes.append(
            f"For scale, the minimum log-loss (LogisticRegression without penalty, L-BFGS "
            f"to convergence, untimed): {best_loss:.5f}."
        )
    return notes
