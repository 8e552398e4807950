"""Row 9: the classic test set (Moré–Garbow–Hillstrom and 2-D functions), with a
performance profile (Dolan & Moré, Math. Programming 91, 2002)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.harness import RowResult, Settings, Table, format_seconds, measure, optional, row

TOL = 1e-6  # gradient tolerance of every solver
SOLVED = 1e-6  # |f - f*| <= SOLVED * max(1, |f*|)
MAX_ITER = 10_000
MEMORY = 10
SOLVERS = ("descend L-BFGS", "descend gd (Armijo)", "SciPy BFGS", "SciPy L-BFGS-B")
TWO_D = ("six_hump_camel", "goldstein_price", "mccormick", "ackley", "easom")


@dataclass(frozen=True)
class Case:
    name: str
    function: object  # a JAX function of one vector
    start: np.ndarray
    minimum: float
    bounds: tuple | None = None


def _cases(mode: str) -> list[Case]:
    import descend

    cases = [
        Case(f"{p.name} (MGH {p.number}, n={p.n})", p, np.asarray(p.start), p.minimum)
        for p in descend.mgh.problems()
    ]
    for name in TWO_D:
        f = descend.functions.get(name)
        bounds = f.bounds if name == "mccormick" else None
        cases.append(Case(f"{name} (2-D)", f, np.asarray(f.start), f.minimum, bounds))
    return cases[:3] + cases[-2:] if mode == "tiny" else cases


@row(9, "mgh", "The classic test set: Moré–Garbow–Hillstrom and 2-D functions, float64")
def run(settings: Settings) -> RowResult:
    import jax

    cases = _cases(settings.mode)
    results: dict[str, dict[str, dict]] = {}
    with jax.enable_x64(True):
        for case in cases:
            print(f"  {case.name}")
            results[case.name] = {s: _solve(s, case, settings) for s in SOLVERS}
    table = Table(
        "Solved (|f - f*| <= 1e-6 max(1, |f*|)) / evaluations / warm time, per problem",
        ["problem", "f*", *SOLVERS],
    )
    for case in cases:
        cells = [case.name, f"{case.minimum:.6g}"]
        for solver in SOLVERS:
            r = results[case.name][solver]
            mark = "yes" if r["solved"] else f"no (f = {r['fun']:.6g})"
            cells.append(f"{mark} / {r['n_fev']:,} / {format_seconds(r['warm'])}")
        table.rows.append(cells)
    summary = Table("Totals", ["solver", "solved", "evaluations (solved problems)", "warm time"])
    for solver in SOLVERS:
        solved = [c.name for c in cases if results[c.name][solver]["solved"]]
        summary.rows.append(
            [
                solver,
                f"{len(solved)} of {len(cases)}",
                f"{sum(results[n][solver]['n_fev'] for n in solved):,}",
                format_seconds(sum(results[c.name][solver]["warm"] for c in cases)),
            ]
        )
    figure = settings.out_dir / "mgh-profile.png"
    _profile(results, figure)
    return RowResult(
        9, "mgh", "The classic test set", tables=[summary, table], figures=[figure],
        description=(
            "The 18 problems of Moré, Garbow & Hillstrom (ACM TOMS 7, 1981) that are "
            "differentiable where solvers go, from the paper's starts, and five 2-D functions "
            "from their `descend.functions` starts. Every solver gets the exact gradient (JAX, "
            f"float64), a gradient tolerance of {TOL:g} and at most {MAX_ITER:,} iterations. "
            f"descend: `minimize(f, x0, optimizer=lbfgs(history_size={MEMORY}))` and "
            "`minimize(f, x0)` (gd with its Armijo line search); SciPy: "
            f"`minimize(..., method='BFGS' or 'L-BFGS-B', options={{'gtol': {TOL:g}}})` with "
            "its other defaults. A problem is solved when the final value is within 1e-6 "
            "(relative above 1) of the minimum the paper reports."
        ),
        notes=[
            "The performance profile (Dolan & Moré, 2002): for each solver, the share of "
            "problems it solves within a factor tau of the fewest evaluations (left) or the "
            "least warm time (right) any solver needed; a problem not solved counts as never.",
            "mccormick is minimized in its box by descend and L-BFGS-B (bounds=...); BFGS "
            "takes no bounds and runs unbounded from the same start.",
            "biggs_exp6 and trigonometric have local minima the paper also reports "
            "(5.65565e-3, 2.79506e-5): a solver ending there counts as not solved. ackley is "
            "not differentiable at its minimizer (a cone).",
            "SciPy's tests measure the largest gradient component (descend's the Euclidean "
            "norm), and L-BFGS-B also stops on a small relative decrease (ftol).",
        ],
    )  # fmt: skip


def _solve(solver: str, case: Case, settings: Settings) -> dict:
    import jax

    import descend
    from descend.optim.lbfgs import lbfgs

    value_and_grad = jax.jit(jax.value_and_grad(case.function))

    def numpy_fn(x):
        value, grad = value_and_grad(x)
        return float(value), np.asarray(grad)

    if solver.startswith("descend"):
        optimizer = lbfgs(history_size=MEMORY) if "L-BFGS" in solver else descend.optim.gd()

        def call():
            result = descend.minimize(
                case.function, case.start, optimizer=optimizer, bounds=case.bounds, tol=TOL,
                max_iter=MAX_ITER, verbose=0,
            )  # fmt: skip
            return result.fun, result.n_fev

    else:
        scipy_optimize = optional("scipy.optimize")
        method = solver.split()[-1]
        bounds = case.bounds if method == "L-BFGS-B" else None

        def call():
            result = scipy_optimize.minimize(
                numpy_fn, case.start, jac=True, method=method, bounds=bounds,
                options={"gtol": TOL, "maxiter": MAX_ITER},
            )  # fmt: skip
            return float(result.fun), int(result.nfev)

    timing, (fun, n_fev) = measure(call, repeats=settings.repeats)
    solved = abs(fun - case.minimum) <= SOLVED * max(1.0, abs(case.minimum))
    return {"fun": fun, "n_fev": n_fev, "solved": solved, "warm": timing.warm_median}


def _profile(results: dict, path) -> None:
    """Dolan–Moré performance profiles of evaluations and of warm time."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    for axes, key, label in zip(
        figure.subplots(1, 2), ("n_fev", "warm"), ("evaluations", "warm time"), strict=True
    ):
        costs = np.array(
            [
                [r[key] if r["solved"] else np.inf for r in (per[s] for s in SOLVERS)]
                for per in results.values()
            ],
            dtype=float,
        )
        best = np.min(costs, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(np.isfinite(best), costs / best, np.inf)
        finite = ratios[np.isfinite(ratios)]
        top = max(2.0, float(np.max(finite)) * 1.2) if finite.size else 2.0
        taus = np.geomspace(1.0, top, 200)
        for k, solver in enumerate(SOLVERS):
            share = [(ratios[:, k] <= tau).mean() for tau in taus]
            axes.step(taus, share, where="post", label=solver)
        axes.set_xscale("log")
        axes.set_ylim(0, 1.02)
        axes.set_xlabel(f"tau (within tau times the best {label})")
        axes.set_ylabel("share of problems solved")
        axes.set_title(f"Performance profile: {label}")
        axes.grid(True, alpha=0.3)
    figure.axes[0].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
