"""Row 12: a sweep of learning rates of minimize in one program against one call per rate."""

from __future__ import annotations

import numpy as np

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
)

SIZES = {  # (max_iter, configurations of the scaling table)
    "tiny": (500, (1, 4)),
    "quick": (2_000, (1, 4, 16)),
    "default": (10_000, (1, 4, 16, 64)),
    "full": (10_000, (1, 4, 16, 64)),
}
N_RATES = 16
START = (-1.2, 1.0)


def _rates(count: int) -> list[float]:
    return [float(rate) for rate in np.logspace(-3, 0, count)]


@row(12, "minimize-sweep", "A sweep of 16 learning rates of minimize in one program: Rosenbrock")
def run(settings: Settings) -> RowResult:
    import descend

    max_iter, sizes = settings.pick(SIZES)
    f = descend.functions.rosenbrock
    rates = _rates(N_RATES)

    def sweep(chosen):
        return descend.minimize(f, START, optimizer="adam", lr=chosen, max_iter=max_iter,
                                verbose=0)  # fmt: skip

    def sequential():
        runs = []
        for rate in rates:
            optimizer = descend.optim.adam(lr=rate)
            runs.append(
                descend.minimize(f, START, optimizer=optimizer, max_iter=max_iter, verbose=0)
            )
        return runs

    table = Comparison(
        f"Rosenbrock from {START}, Adam, tol 1e-6, max_iter {max_iter:,}, float64, "
        f"{N_RATES} learning rates from 1e-3 to 1: time for all {N_RATES}",
        baseline="descend, one sweep",
        columns=[
            Column("best", "best rate", "{:.3g}"),
            Column("fun", "its f", "{:.3g}"),
            Column("converged", "converged"),
            Column("n_iter", "iterations (all rates)", "{:,}"),
        ],
    )

    def entry(runs) -> Entry:
        best = int(np.argmin([r.fun if r.status != "diverged" else np.inf for r in runs]))
        return Entry("", values={
            "best": rates[best], "fun": runs[best].fun,
            "converged": sum(bool(r.converged) for r in runs),
            "n_iter": sum(r.n_iter for r in runs),
        })  # fmt: skip

    def measure_sweep() -> Entry:
        timing, result = measure(lambda: sweep(rates), repeats=settings.repeats)
        found = entry(list(result))
        found.timing = timing
        found.note = (
            "descend.minimize(f, x0, optimizer='adam', lr=[16 rates]): one vmapped "
            "program, run until the slowest rate stops"
        )
        return found

    def measure_sequential() -> Entry:
        timing, runs = measure(sequential, repeats=settings.repeats)
        found = entry(runs)
        found.timing = timing
        found.note = (
            "16 descend.minimize calls, one per rate: the first call of each compiles its "
            "program (the rate is part of it)"
        )
        return found

    table.add(settings, "descend, one sweep", measure_sweep)
    table.add(settings, "descend, 16 sequential calls", measure_sequential)

    scaling = Table(
        f"The cost of a sweep by its size (Rosenbrock, Adam, max_iter {max_iter:,})",
        ["configurations", "first call", "warm", "warm per configuration",
         "warm / one configuration", "slowest rate's iterations"],
    )  # fmt: skip
    single = None
    for count in sizes:
        chosen = _rates(count) if count > 1 else [1e-2]
        print(f"    sweep of {count} ...", end="", flush=True)
        timing, result = measure(lambda chosen=chosen: sweep(chosen), repeats=settings.repeats)
        warm = timing.warm_median
        single = warm if single is None else single
        print(f" cold {format_seconds(timing.cold)}, warm {format_seconds(warm)}")
        scaling.rows.append([
            str(count), format_seconds(timing.cold), format_seconds(warm),
            format_seconds(warm / count), f"{warm / single:.2f}",
            f"{max(r.n_iter for r in result):,}",
        ])  # fmt: skip
    scaling.notes.append(
        "A sweep runs until its slowest configuration stops: the rates of a bigger sweep "
        "spread over the same range, and one that needs the whole budget sets the time."
    )
    return RowResult(
        12, "minimize-sweep", "A sweep of learning rates of minimize in one program",
        tables=[table, scaling],
        description=(
            f"`descend.minimize(rosenbrock, {START}, optimizer=\"adam\", lr=[{N_RATES} "
            f"rates])` runs every rate in one vmapped program (each stops on its own rule, "
            f"each equal to the call alone), against {N_RATES} sequential `descend.minimize` "
            "calls."
        ),
        notes=[
            "The ratio column compares warm times (programs compiled); the first-call "
            "column holds the compilations: one for the sweep, one per rate for the "
            "sequential calls.",
            "iterations (all rates): the sum of the rates' iterations, equal in both rows.",
        ],
    )  # fmt: skip
