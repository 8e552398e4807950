"""``python -m benchmarks.lr_find_timing``: the range test against the same updates by fit.

On benchmark row 1's data (logistic regression, 200,000 x 100 float32, Adam, batches of
32, the problem as given), in one process: ``ds.lr_find`` with ``num_iter`` updates
(100 and 300; ``diverge_th`` high enough that every update runs) against ``ds.fit``
making the same number of updates of the same size with the same exponential schedule
(one epoch over the first ``num_iter * 32`` rows), and a PyTorch loop of those updates.
Cold is the first call (compilation included), warm the median of the next calls.
``lr_find`` prepares all 200,000 rows as ``fit`` does (copying, checking and placing
them, about 85 ms here, as ``fit`` on those rows), so its compiled program (the updates
alone) is timed as well, by wrapping :func:`descend.engine.compiled_range_test`.
"""

from __future__ import annotations

import argparse
import statistics
import time

N_SAMPLES, N_FEATURES, BATCH_SIZE = 200_000, 100, 32
START_LR, END_LR = 1e-7, 10.0


def timed(call, repeats: int) -> tuple[float, float]:
    """(cold, warm median) seconds."""
    began = time.perf_counter()
    call()
    cold = time.perf_counter() - began
    warm = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        warm.append(time.perf_counter() - began)
    return cold, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lr_find_timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=N_SAMPLES)
    parser.add_argument(
        "--threads",
        type=int,
        help="limit NumPy, PyTorch and XLA to N threads (1 on a shared machine)",
    )
    args = parser.parse_args()
    if args.threads:  # before NumPy, PyTorch and JAX start
        from benchmarks.__main__ import limit_threads

        limit_threads(args.threads)
    import numpy as np

    import descend as ds
    from benchmarks import problems

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    X, y = problems.classification_data(args.rows, N_FEATURES)
    plain = dict(standardize=False, l2=0.0)
    results = {}
    from descend import engine

    program_seconds: dict[int, list[float]] = {}
    compiled = engine.compiled_range_test

    def timing_program(*key):
        program = compiled(*key)

        def run(*args):
            import jax

            began = time.perf_counter()
            outcome = jax.block_until_ready(program(*args))
            program_seconds.setdefault(key[3], []).append(time.perf_counter() - began)
            return outcome

        return run

    engine.compiled_range_test = timing_program
    for num_iter in (100, 300):
        gamma = (END_LR / START_LR) ** (1 / (num_iter - 1))
        schedule = ds.optim.schedules.exponential(START_LR, gamma)

        def find(num_iter=num_iter):
            result = ds.lr_find(
                "logistic", X, y, optimizer="adam", batch_size=BATCH_SIZE, num_iter=num_iter,
                start_lr=START_LR, end_lr=END_LR, diverge_th=1e30, **plain,
            )  # fmt: skip
            assert result.n_iter == num_iter

        rows = num_iter * BATCH_SIZE

        def fit(rows=rows, schedule=schedule):
            ds.fit(
                "logistic", X[:rows], y[:rows], optimizer=ds.optim.adam(lr=schedule),
                batch_size=BATCH_SIZE, epochs=1, patience=None, verbose=0, **plain,
            )  # fmt: skip

        def torch_loop(num_iter=num_iter, gamma=gamma):
            import torch

            X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
            w = torch.zeros(N_FEATURES, requires_grad=True)
            b = torch.zeros((), requires_grad=True)
            adam = torch.optim.Adam([w, b], lr=START_LR)
            order = torch.from_numpy(np.random.default_rng([0, 0]).permutation(args.rows))
            for k in range(num_iter):
                batch = order[k * BATCH_SIZE : (k + 1) * BATCH_SIZE]
                adam.param_groups[0]["lr"] = START_LR * gamma**k
                adam.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    X_t[batch] @ w + b, y_t[batch]
                )
                loss.backward()
                adam.step()
                loss.item()  # the recorded loss, read every update

        results[num_iter] = {
            "lr_find": timed(find, args.repeats),
            "fit, same updates": timed(fit, args.repeats),
            "PyTorch loop": timed(torch_loop, args.repeats),
        }

    def full_epoch():
        ds.fit(
            "logistic", X, y, optimizer="adam", lr=1e-3, batch_size=BATCH_SIZE, epochs=1,
            patience=None, verbose=0, **plain,
        )  # fmt: skip

    epoch = timed(full_epoch, max(1, args.repeats // 2))
    per_epoch = args.rows // BATCH_SIZE + (args.rows % BATCH_SIZE > 0)
    print(f"{args.rows} x {N_FEATURES}, Adam, batch {BATCH_SIZE}; seconds (cold / warm)")
    for num_iter, row in results.items():
        for tool, (cold, warm) in row.items():
            print(f"  {num_iter:>4} updates  {tool:<18} {cold:8.3f} / {warm:8.4f}")
    for num_iter in (100, 300):
        updates = statistics.median(program_seconds[num_iter][1:])  # warm calls
        fit = results[num_iter]["fit, same updates"][1]
        torch = results[num_iter]["PyTorch loop"][1]
        print(
            f"  {num_iter:>4} updates: lr_find's program {updates:.4f} s "
            f"({1e6 * updates / num_iter:.1f} us an update); fit on {num_iter * BATCH_SIZE} "
            f"rows {fit:.4f} s; PyTorch loop {torch:.4f} s ({torch / updates:.0f}x the program)"
        )
    print(f"  fit, one epoch of {per_epoch} updates on all rows {epoch[0]:.3f} / {epoch[1]:.4f}"
          f" ({1e6 * epoch[1] / per_epoch:.1f} us an update, preparation included)")  # fmt: skip


if __name__ == "__main__":
    main()
