"""Row 11: a sweep of learning rates in one program against one fit (or loop) per rate."""

from __future__ import annotations

import numpy as np

from benchmarks import peers, problems
from benchmarks.harness import (
    Column,
    Comparison,
    Entry,
    RowResult,
    Settings,
    Table,
    format_seconds,
    measure,
    row,
    torch_device,
    torch_missing,
    torch_sync,
)
from benchmarks.rows.row1_minibatch import BATCH_SIZE, SEED

SIZES = {  # (n_samples, n_features, configurations of the scaling table, torch loops timed)
    "tiny": (512, 8, (1, 4), 2),
    "quick": (5_000, 100, (1, 4, 16), 4),
    "default": (200_000, 100, (1, 4, 16, 64), 2),
    "full": (200_000, 100, (1, 4, 16, 64), 16),
}
N_RATES = 16


def _rates(count: int) -> list[float]:
    return [float(rate) for rate in np.logspace(-4, -1, count)]


def _sweep(X, y, rates):
    import descend

    return descend.fit(
        "logistic", X, y, optimizer="adam", lr=rates, batch_size=BATCH_SIZE, epochs=1,
        seed=SEED, verbose=0, **problems.PLAIN,
    )  # fmt: skip


@row(11, "sweep", "A sweep of 16 learning rates in one program: logistic regression, Adam")
def run(settings: Settings) -> RowResult:
    n_samples, n_features, sizes, torch_loops = settings.pick(SIZES)
    X, y = problems.classification_data(n_samples, n_features)
    rates = _rates(N_RATES)
    table = Comparison(
        f"{n_samples:,} × {n_features} float32, Adam, batch {BATCH_SIZE}, 1 epoch, "
        f"{N_RATES} learning rates from 1e-4 to 1e-1: time for all {N_RATES}",
        baseline="descend, one sweep",
        columns=[Column("best", "best rate", "{:.3g}"), Column("loss", "its loss", "{:.5f}")],
    )

    def loss(w, b) -> float:
        return problems.log_loss(X, y, w, b)

    def entry(runs, rate_of) -> Entry:
        losses = [loss(np.asarray(r.params["w"]), np.asarray(r.params["b"])) for r in runs]
        best = int(np.argmin(losses))
        return Entry("", values={"best": rate_of(best), "loss": losses[best]})

    def measure_sweep() -> Entry:
        timing, sweep = measure(lambda: _sweep(X, y, rates), repeats=settings.repeats)
        result = entry(list(sweep), lambda index: rates[index])
        result.timing = timing
        result.note = "descend.fit(..., lr=[16 rates]): every rate in one vmapped epoch"
        return result

    def measure_sequential() -> Entry:
        import descend

        def fits():
            return [
                descend.fit(
                    "logistic",
                    X,
                    y,
                    optimizer="adam",
                    lr=rate,
                    batch_size=BATCH_SIZE,
                    epochs=1,
                    seed=SEED,
                    verbose=0,
                    **problems.PLAIN,
                )
                for rate in rates
            ]

        timing, runs = measure(fits, repeats=settings.repeats)
        result = entry(runs, lambda index: rates[index])
        result.timing = timing
        result.note = (
            "16 descend.fit calls, one per rate: the first call of each compiles its "
            "program (the rate is part of it), later calls reuse it"
        )
        return result

    table.add(settings, "descend, one sweep", measure_sweep)
    table.add(settings, "descend, 16 sequential fits", measure_sequential)
    device = torch_device(settings)
    tool = "PyTorch, 16 loops (Adam foreach=True)"
    if device is None:
        table.skip(tool, torch_missing(settings))
    else:

        def measure_torch() -> Entry:
            timed = rates[:: N_RATES // torch_loops][:torch_loops]

            def loops():
                runs = [
                    peers.torch_logistic(
                        X,
                        y,
                        algorithm="adam",
                        lr=rate,
                        batch_size=BATCH_SIZE,
                        epochs=1,
                        seed=SEED,
                        device=device,
                    )
                    for rate in timed
                ]
                torch_sync(device)
                return runs

            timing, runs = measure(loops, repeats=settings.repeats)
            losses = [loss(r.w, r.b) for r in runs]
            best = int(np.argmin(losses))
            note = "randperm + indexing, zero_grad / forward / backward / step, one loop a rate"
            if len(timed) < N_RATES:
                timing = timing.scaled(N_RATES / len(timed))
                note += f"; {len(timed)} of the {N_RATES} loops timed, × {N_RATES / len(timed):g}"
            return Entry("", timing, {"best": timed[best], "loss": losses[best]}, note=note)

        table.add(settings, tool, measure_torch)

    scaling = Table(
        f"The cost of a sweep by its size ({n_samples:,} × {n_features}, 1 epoch)",
        ["configurations", "first call", "warm", "warm per configuration",
         "warm / one configuration"],
    )  # fmt: skip
    single = None
    for count in sizes:
        chosen = _rates(count) if count > 1 else [1e-3]
        print(f"    sweep of {count} ...", end="", flush=True)
        timing, _ = measure(lambda chosen=chosen: _sweep(X, y, chosen), repeats=settings.repeats)
        warm = timing.warm_median
        single = warm if single is None else single
        print(f" cold {format_seconds(timing.cold)}, warm {format_seconds(warm)}")
        scaling.rows.append([
            str(count), format_seconds(timing.cold), format_seconds(warm),
            format_seconds(warm / count), f"{warm / single:.2f}",
        ])  # fmt: skip
    scaling.notes.append(
        "A list of one rate is a sweep of one configuration (the same program with a "
        "configuration axis of length 1). Every configuration adds its share of the "
        "arithmetic; the per-update overhead of the loop is shared."
    )
    return RowResult(
        11, "sweep", "A sweep of learning rates in one program", tables=[table, scaling],
        description=(
            f"`descend.fit(\"logistic\", X, y, optimizer=\"adam\", lr=[{N_RATES} rates], "
            f"batch_size={BATCH_SIZE}, epochs=1)` on row 1's data trains every rate in one "
            f"vmapped program per epoch, against {N_RATES} sequential `descend.fit` calls "
            f"and {N_RATES} PyTorch loops."
        ),
        notes=[
            "The ratio column compares warm times (programs compiled); the first-call "
            "column holds the compilations: one for the sweep, one per rate for the "
            "sequential fits.",
            "Losses: the mean log-loss (float64, NumPy) of the best rate's weights on the "
            "training data.",
        ],
    )  # fmt: skip
