"""Row 2: stochastic gradient descent (batch size 1) against scikit-learn's SGDClassifier."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

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
)

SIZES = {  # (n_samples, n_features)
    "tiny": (400, 8),
    "quick": (5_000, 100),
    "default": (200_000, 100),
    "full": (200_000, 100),
}
LR, SEED = 1e-3, 0
FIRST_CALLS = {  # tool: the function that prepares its first call in a new process
    "descend": f"{__name__}:first_call_descend",
    "scikit-learn SGDClassifier": f"{__name__}:first_call_sklearn",
    "JAX + Optax, lax.scan epoch": f"{__name__}:first_call_optax_scan",
}


def _data(settings: Settings):
    return problems.classification_data(*settings.pick(SIZES))


def _descend_fit(X, y):
    import descend

    return descend.fit(
        "logistic", X, y, optimizer="sgd", lr=LR, batch_size=1, epochs=1,
        seed=SEED, verbose=0, **problems.PLAIN,
    )  # fmt: skip


def _sklearn_fit(X, y):
    model = optional("sklearn.linear_model").SGDClassifier(
        loss="log_loss", penalty=None, learning_rate="constant", eta0=LR,
        max_iter=1, tol=None, shuffle=True, random_state=SEED,
    )  # fmt: skip
    with warnings.catch_warnings():
        # One epoch on purpose: the "not converged" warning is expected.
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def first_call_descend(settings: Settings):
    import descend  # noqa: F401  (imported before the call, as in a user's script)

    X, y = _data(settings)
    return lambda: _descend_fit(X, y)


def first_call_sklearn(settings: Settings):
    optional("sklearn.linear_model")  # imported before the call, as in a user's script
    X, y = _data(settings)
    return lambda: _sklearn_fit(X, y)


def first_call_optax_scan(settings: Settings):
    X, y = _data(settings)
    train = peers.optax_scan_loop(optional("optax").sgd(LR), 1)
    return lambda: train(X, y, epochs=1, seed=SEED)


@row(2, "stochastic", "Stochastic training: logistic regression, SGD, batch 1", devices=("cpu",))
def run(settings: Settings) -> RowResult:
    X, y = _data(settings)
    n_samples, n_features = X.shape
    table = Comparison(
        f"{n_samples:,} × {n_features} float32, SGD with constant lr={LR:g}, batch 1, "
        "1 epoch with shuffling",
        columns=[Column("log_loss", "final log-loss", "{:.5f}")],
    )

    def score(w, b) -> float:
        return problems.log_loss(X, y, w, b)

    def measure_descend() -> Entry:
        timing, result = measure(lambda: _descend_fit(X, y), repeats=settings.repeats)
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

        def measure_sklearn() -> Entry:
            timing, model = measure(lambda: _sklearn_fit(X, y), repeats=settings.repeats)
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

    notes = _keras(table, settings, X, y) + _vowpal_wabbit(table, settings, X, y)
    notes = _loss_notes(table, X, y) + notes
    tables = [table, first_call_table(table, settings, FIRST_CALLS)]
    return RowResult(
        2, "stochastic", "Stochastic training", tables=[t for t in tables if t], notes=notes,
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


def _keras(table: Comparison, settings: Settings, X, y) -> list[str]:
    """Keras ``model.fit`` with batch 1; the notes it adds to the row."""
    tool = "Keras 3 model.fit (JAX backend)"
    keras, missing = keras_on_jax()
    if keras is None:
        table.skip(tool, missing)
        return []
    notes = []

    def measure_keras() -> Entry:
        chosen, per_step = peers.keras_steps_per_execution(
            keras, X, y, algorithm="sgd", lr=LR, batch_size=1
        )
        notes.append(peers.keras_tuning_note(per_step, chosen))
        trainer = peers.KerasLogistic(
            keras, X.shape[1], algorithm="sgd", lr=LR, steps_per_execution=chosen
        )
        timing, trained = measure(
            lambda: trainer.train(X, y, batch_size=1, epochs=1), repeats=settings.repeats
        )
        return Entry(
            "",
            timing,
            {"log_loss": problems.log_loss(X, y, trained.w, trained.b)},
            note="Dense(1), zero init, SGD(learning_rate="
            f"{LR:g}), BinaryCrossentropy(from_logits=True), fit(batch_size=1, "
            f"shuffle=True), steps_per_execution={chosen}",
        )

    table.add(settings, tool, measure_keras)
    return [*notes, peers.KERAS_NOTE]


def _vowpal_wabbit(table: Comparison, settings: Settings, X, y) -> list[str]:
    """Vowpal Wabbit from its text format and from its cache; the notes it adds."""
    tools = ("Vowpal Wabbit, text file", "Vowpal Wabbit, cache file")
    if optional("vowpalwabbit") is None:
        for tool in tools:
            table.skip(tool, "vowpalwabbit is not installed (pip install vowpalwabbit)")
        return []
    folder = tempfile.TemporaryDirectory(prefix="vw-")
    text, cache = Path(folder.name) / "train.vw", Path(folder.name) / "train.cache"
    # One pass in a fixed random order: the shuffled epoch of the other tools.
    peers.write_vw_text(text, X, y, np.random.default_rng(SEED).permutation(len(X)))

    def measure_vw(cache_file) -> Entry:
        if cache_file is not None:  # VW writes its cache on a first pass over the text
            peers.vw_logistic(text, X.shape[1], lr=LR, cache_file=cache_file)
        timing, trained = measure(
            lambda: peers.vw_logistic(text, X.shape[1], lr=LR, cache_file=cache_file),
            repeats=settings.repeats,
        )
        source = "its binary cache (written by an untimed pass)" if cache_file else "text"
        return Entry(
            "",
            timing,
            {"log_loss": problems.log_loss(X, y, trained.w, trained.b)},
            note=f"vw -d train.vw {peers.VW_FLAGS} -l {LR:g}, one pass, reading {source}",
        )

    try:
        table.add(settings, tools[0], lambda: measure_vw(None))
        table.add(settings, tools[1], lambda: measure_vw(cache))
    finally:
        folder.cleanup()
    return [
        "Vowpal Wabbit: the same rows, written once (not timed) as VW text in one fixed "
        "random order, since VW reads its input in order and does not shuffle. `--sgd` "
        "turns off VW's default adaptive, normalized and importance-invariant updates; "
        "`--power_t 0` keeps the rate constant (VW decays it as t^-0.5 by default). What "
        "remains differs from the others' update in two ways: VW clips each raw "
        "prediction to [-50, 50] (its min/max label for the logistic loss), which never "
        "binds here, and it learns its intercept as the weight of a constant feature, "
        "which is the same update. Labels are ±1, the loss log(1 + exp(-y p)), the same "
        "log-loss as the others'. Its feature weights are read by name, hashed into "
        "2^18 slots (no collision among these features).",
    ]
