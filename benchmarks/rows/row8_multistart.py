"""Row 8: many starts in one call (``batched=True``) against loops of single runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

TOL = 1e-6
MEMORY = 10  # L-BFGS history, SciPy's default (descend's, as torch's, is 100)


@dataclass(frozen=True)
class Sizes:
    starts_2d: int  # Himmelblau starts
    rosenbrock: tuple[int, int]  # (starts, dimensions)
    loop_share: float  # the share of the starts a Python loop is timed on (then scaled)


SIZES = {
    "tiny": Sizes(16, (4, 5), 1.0),
    "quick": Sizes(200, (10, 20), 0.25),
    "default": Sizes(1_000, (100, 100), 0.1),
    "full": Sizes(1_000, (100, 100), 1.0),
}


def _himmelblau_numpy(x: np.ndarray) -> tuple[float, np.ndarray]:
    a = x[0] ** 2 + x[1] - 11.0
    b = x[0] + x[1] ** 2 - 7.0
    return float(a * a + b * b), np.array([4 * x[0] * a + 2 * b, 2 * a + 4 * x[1] * b])


@row(8, "multistart", "Many starts in one call: Himmelblau and Rosenbrock, float64")
def run(settings: Settings) -> RowResult:
    import descend

    sizes = settings.pick(SIZES)
    rng = np.random.default_rng(0)
    himmelblau = descend.functions.himmelblau
    n_starts, dim = sizes.rosenbrock
    cases = [
        (
            f"Himmelblau, {sizes.starts_2d:,} starts in [-5, 5]²",
            himmelblau,
            _himmelblau_numpy,
            rng.uniform(-5.0, 5.0, size=(sizes.starts_2d, 2)),
            ("gd", "lbfgs"),
        ),
        (
            f"Rosenbrock, {n_starts} starts in [-2, 2]^{dim}",
            descend.functions.rosenbrock.with_dim(dim),
            problems.rosenbrock_numpy,
            rng.uniform(-2.0, 2.0, size=(n_starts, dim)),
            ("lbfgs",),
        ),
    ]
    tables = [_compare(*case, sizes, settings) for case in cases]
    share = f"{sizes.loop_share:.0%}"
    return RowResult(
        8, "multistart", "Many starts in one call", tables=tables,
        description=(
            "All starts in one call, `descend.minimize(f, starts, batched=True, optimizer=...)` "
            f"(tol={TOL:g}, float64), against Python loops over the starts of "
            "`descend.minimize` and of SciPy's L-BFGS-B (NumPy value and gradient, its own "
            "default tests)."
        ),
        notes=[
            f"The loops are timed on the first {share} of the starts and scaled to all of "
            "them (every start is timed with --full).",
            "minima: the distinct minima among the converged starts (descend's "
            "`result.minima`; for the loops, the same clustering of their end points).",
            "A vectorized loop runs until its slowest start stops: the batched run's time is "
            "set by the start that needs the most iterations.",
            f"L-BFGS keeps {MEMORY} pairs everywhere (SciPy's default; descend's is 100). "
            "Vectorized, the two-loop recursion runs as many steps as the fullest memory of "
            "any start: with 100 pairs, 100 starts of 100-D Rosenbrock took 7.2 s batched "
            "against 6.0 s for the loop (measured once, outside the suite).",
        ],
    )  # fmt: skip


def _compare(title, function, numpy_fn, starts, optimizers, sizes: Sizes, settings: Settings):
    import descend
    from descend.multistart import distinct_minima

    table = Comparison(
        title,
        columns=[
            Column("converged", "converged"),
            Column("minima", "minima"),
            Column("n_fev", "evaluations", "{:,}"),
        ],
        baseline=f"descend, {optimizers[0]}, batched",
    )
    n_loop = max(1, round(len(starts) * sizes.loop_share))
    scale = len(starts) / n_loop

    from descend.optim.lbfgs import lbfgs

    built = {"gd": descend.optim.gd(), "lbfgs": lbfgs(history_size=MEMORY)}
    for name in optimizers:
        optimizer = built[name]

        def batched(name=name, optimizer=optimizer) -> Entry:
            timing, result = measure(
                lambda: descend.minimize(
                    function, starts, batched=True, optimizer=optimizer, tol=TOL, verbose=0
                ),
                repeats=settings.heavy_repeats,
            )
            values = {
                "converged": int(result.converged.sum()),
                "minima": len(result.minima),
                "n_fev": int(result.n_fev.sum()),
            }
            return Entry("", timing, values, note=f"batched=True, {optimizer!r}")

        table.add(settings, f"descend, {name}, batched", batched)

        def loop(optimizer=optimizer) -> Entry:
            def solve():
                return [
                    descend.minimize(function, start, optimizer=optimizer, tol=TOL, verbose=0)
                    for start in starts[:n_loop]
                ]

            descend.minimize(function, starts[0], optimizer=optimizer, tol=TOL, verbose=0)
            timing, results = measure(solve, repeats=settings.heavy_repeats)
            ends = np.array([np.ravel(r.x) for r in results])
            converged = np.array([r.converged for r in results])
            values = {
                "converged": _scaled(int(converged.sum()), scale),
                "minima": len(distinct_minima(ends, np.array([r.fun for r in results]), converged)),
                "n_fev": _scaled(sum(r.n_fev for r in results), scale),
            }
            return Entry(
                "", timing.scaled(scale), values,
                note="a Python loop of descend.minimize (compiled once, before timing)",
            )  # fmt: skip

        table.add(settings, f"descend, {name}, Python loop", loop)

    scipy_optimize = optional("scipy.optimize")
    if scipy_optimize is None:
        table.skip("SciPy L-BFGS-B, Python loop", "scipy is not installed")
        return table

    def scipy_loop() -> Entry:
        def solve():
            return [
                scipy_optimize.minimize(numpy_fn, start, jac=True, method="L-BFGS-B")
                for start in starts[:n_loop]
            ]

        timing, results = measure(solve, repeats=settings.heavy_repeats)
        ends = np.array([r.x for r in results])
        converged = np.array([bool(r.success) for r in results])
        values = {
            "converged": _scaled(int(converged.sum()), scale),
            "minima": len(distinct_minima(ends, np.array([r.fun for r in results]), converged)),
            "n_fev": _scaled(sum(int(r.nfev) for r in results), scale),
        }
        return Entry("", timing.scaled(scale), values, note="scipy.optimize.minimize('L-BFGS-B')")

    table.add(settings, "SciPy L-BFGS-B, Python loop", scipy_loop)
    return table


def _scaled(count: int, scale: float) -> int:
    return round(count * scale)
