"""Default training against scikit-learn's standard models, on the shipped datasets and
on tables the defaults were not tuned on.

``python -m benchmarks.defaults`` writes ``benchmarks/DEFAULTS.md``: for each table, the
held-out accuracy (classes) or R² (regression) of

- ``descend train FILE --target T`` with no other flag (its own validation split: the
  rows ``data.train_validation_split(rows, rows, 0.2, seed=0)`` holds out),
- ``ds.fit(model, X_train, y_train)`` with defaults, scored on the same held-out rows,
- ``GDClassifier()`` / ``GDRegressor()`` with defaults (``random_state=0``) on the
  one-hot encoded arrays,
- scikit-learn's standard model on the same rows: ``LogisticRegression`` / ``Ridge``
  after ``StandardScaler`` (numbers) and ``OneHotEncoder`` (text and category columns).

The tables themselves come from :func:`tables` (the shipped datasets, scikit-learn's
wine data, and generated ones of various sizes, scales, class counts, categorical
columns and target magnitudes); the test suite checks the same margins per table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
# The margins: descend's default within these of scikit-learn's standard model.
MARGIN = {"accuracy": 0.01, "r2": 0.02}


@dataclass(frozen=True)
class Table:
    """A table to train on: its rows, the target column, and what kind of target it is."""

    name: str
    frame: pd.DataFrame
    target: str
    task: str  # "classification" or "regression", as scikit-learn's type_of_target says

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "r2"

    def describe(self) -> str:
        n, d = self.frame.shape
        text = sum(1 for c in self.frame.columns if c != self.target and _is_text(self.frame[c]))
        kind = (
            f"{self.frame[self.target].nunique()} classes"
            if self.metric == "accuracy"
            else (f"target ~{np.abs(self.frame[self.target]).mean():.3g}")
        )
        return f"{n} × {d - 1}" + (f", {text} text" if text else "") + f", {kind}"


def _is_text(column: pd.Series) -> bool:
    return column.dtype == object or str(column.dtype) in ("category", "string", "str")


def tables() -> list[Table]:
    """The shipped datasets, then eight tables the defaults were not tuned on."""
    from sklearn import datasets

    import descend as ds

    shipped = []
    for name in ds.data.dataset_names():
        data = ds.data.load_dataset(name, dtype="float64")
        frame = pd.DataFrame(data.X, columns=list(data.encoding.columns))
        target = data.encoding.target_name
        if data.classes is None:
            frame[target] = data.y
        else:
            frame[target] = np.asarray(data.classes)[np.asarray(data.y, int)]
        task = "regression" if data.classes is None else "classification"
        shipped.append(Table(name, frame, target, task))

    rng = np.random.default_rng(7)
    own = []
    wine = datasets.load_wine(as_frame=True)
    frame = wine.frame.copy()
    frame["target"] = np.asarray(wine.target_names)[wine.target]
    own.append(Table("wine", frame, "target", "classification"))

    X, y = datasets.make_classification(2000, 20, n_informative=8, flip_y=0.03, random_state=1)
    X = X * 10.0 ** rng.uniform(-3, 4, X.shape[1]) + rng.uniform(-50, 50, X.shape[1])
    own.append(Table("scales_1e-3_to_1e4", _frame(X, y), "y", "classification"))

    X, y = datasets.make_classification(
        3000, 30, n_informative=12, n_classes=5, n_clusters_per_class=1, random_state=2
    )
    own.append(Table("five_classes", _frame(X, y), "y", "classification"))

    X, y = datasets.make_regression(1500, 8, n_informative=6, noise=10.0, random_state=3)
    X = X * [1, 10, 100, 1000, 0.1, 0.01, 5, 50] + [0, 0, 2000, 0, 0, 3, 0, 100]
    own.append(Table("prices_1e5", _frame(X, 2000 * y + 300_000), "y", "regression"))

    X, y = datasets.make_friedman1(1000, n_features=8, noise=1.0, random_state=4)
    own.append(Table("friedman1", _frame(X, y), "y", "regression"))

    n = 1200
    city = rng.choice(["Lyon", "Oslo", "Pune", "Lima", "Kobe", "Graz"], n)
    kind = rng.choice(["flat", "house", "loft"], n)
    area, age = rng.uniform(20, 250, n), rng.integers(0, 80, n)
    effect = {"Lyon": 3.0, "Oslo": 4.5, "Pune": 1.0, "Lima": 1.5, "Kobe": 3.5, "Graz": 2.5}
    rent = (np.vectorize(effect.get)(city) * area + 80 * (kind == "loft") - 4 * age
            + rng.normal(0, 60, n) + 400)  # fmt: skip
    frame = pd.DataFrame({"city": city, "kind": kind, "area": area, "age": age, "rent": rent})
    own.append(Table("rents_categorical", frame, "rent", "regression"))

    n = 1500
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    usage, tenure = rng.gamma(2.0, 30.0, n), rng.integers(1, 120, n)
    logit = (
        -2.0 + 1.2 * (plan == "basic") - 0.02 * tenure + 0.015 * usage + 0.5 * (region == "south")
    )
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)  # integers 0/1
    frame = pd.DataFrame(
        {"plan": plan, "region": region, "usage": usage, "tenure": tenure, "churned": churn}
    )
    own.append(Table("churn_0_1_categorical", frame, "churned", "classification"))

    X = rng.normal(size=(2000, 6))
    counts = rng.poisson(np.exp(3.5 + X @ [0.4, -0.3, 0.2, 0.0, 0.1, -0.2]))
    own.append(Table("counts_integers", _frame(X, counts), "y", "regression"))

    X, y = datasets.make_classification(
        20000, 40, n_informative=10, flip_y=0.05, weights=[0.85], random_state=5
    )
    own.append(Table("large_imbalanced", _frame(X, np.where(y == 1, 1, -1)), "y", "classification"))

    X, y = datasets.make_regression(800, 12, noise=0.5, random_state=6)
    own.append(Table("tiny_targets_1e-4", _frame(X, 1e-4 * y), "y", "regression"))
    return shipped + own


def _frame(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(X, columns=[f"x{k}" for k in range(X.shape[1])])
    frame["y"] = y
    return frame


def split_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``descend train``'s default validation split trains on and holds out."""
    from descend import data

    rows = np.arange(n)
    train, held_out, _, _ = data.train_validation_split(rows, rows, 0.2, 0)
    return train, held_out


def _encoder(frame: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = [c for c in frame.columns if _is_text(frame[c])]
    numbers = [c for c in frame.columns if c not in text]
    return ColumnTransformer(
        [("numbers", StandardScaler(), numbers),
         ("text", OneHotEncoder(handle_unknown="ignore"), text)]
    )  # fmt: skip


def reference(table: Table) -> float:
    """scikit-learn's standard model, trained on the training rows, on the held-out rows."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    X, y = table.frame.drop(columns=table.target), table.frame[table.target].to_numpy()
    train, held_out = split_rows(len(y))
    estimator = LogisticRegression(max_iter=5000) if table.metric == "accuracy" else Ridge()
    pipeline = make_pipeline(_encoder(X), estimator).fit(X.iloc[train], y[train])
    return float(pipeline.score(X.iloc[held_out], y[held_out]))


def cli(table: Table, folder: Path) -> float:
    """``descend train FILE --target T --json``: its validation metric."""
    path = folder / f"{table.name}.csv"
    table.frame.to_csv(path, index=False)
    command = [sys.executable, "-m", "descend", "train", str(path), "--target", table.target,
               "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{table.name}: {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    # A classification target trained as a regression has no accuracy: NaN.
    return float(summary["metrics"].get(f"val_{table.metric}", float("nan")))


def with_fit(table: Table) -> float:
    """``ds.fit`` with defaults on the training rows (the model for the target's kind)."""
    import descend as ds

    frame = table.frame
    train, held_out = split_rows(len(frame))
    n_classes = frame[table.target].nunique()
    model = "linear" if table.metric == "r2" else "logistic" if n_classes == 2 else "softmax"
    result = ds.fit(model, frame.iloc[train], target=table.target, verbose=0)
    rows = frame.iloc[held_out]
    return float(result.score(rows.drop(columns=table.target), rows[table.target].to_numpy()))


def with_estimator(table: Table) -> float:
    """``GDClassifier()`` / ``GDRegressor()`` on the one-hot encoded (unscaled) arrays."""
    from sklearn.preprocessing import OneHotEncoder

    from descend.sklearn import GDClassifier, GDRegressor

    X, y = table.frame.drop(columns=table.target), table.frame[table.target].to_numpy()
    text = [c for c in X.columns if _is_text(X[c])]
    arrays = X.drop(columns=text).to_numpy(float)
    if text:
        hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit_transform(X[text])
        arrays = np.c_[arrays, hot]
    train, held_out = split_rows(len(y))
    # Defaults but the seed (None draws one): the same every run, as fit's seed=0.
    estimator = (GDClassifier if table.metric == "accuracy" else GDRegressor)(random_state=0)
    estimator.fit(arrays[train], y[train])
    return float(estimator.score(arrays[held_out], y[held_out]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.defaults", description=__doc__)
    parser.add_argument("--only", help="comma-separated table names")
    parser.add_argument("--out", type=Path, default=HERE / "DEFAULTS.md")
    args = parser.parse_args(argv)
    chosen = [t for t in tables() if not args.only or t.name in args.only.split(",")]
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for table in chosen:
            began = time.perf_counter()
            ref = reference(table)
            scores = {"cli": cli(table, Path(folder)), "fit": with_fit(table),
                      "estimator": with_estimator(table)}  # fmt: skip
            worst = min(scores.values()) - ref  # NaN (a wrong task) is not met
            met = bool(worst >= -MARGIN[table.metric])
            failures += not met
            rows.append(
                f"| {table.name} | {table.describe()} | {table.metric} | {scores['cli']:.3f} | "
                f"{scores['fit']:.3f} | {scores['estimator']:.3f} | {ref:.3f} | "
                f"{'yes' if met else 'no'} |"
            )
            print(rows[-1], f"({time.perf_counter() - began:.1f} s)", flush=True)
    header = [
        "| table | rows × columns | metric | `descend train` | `ds.fit` | estimator | "
        "scikit-learn | within margin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    text = (
        "## Defaults against scikit-learn\n\n"
        "Held-out accuracy or R² (the 20 % of rows `descend train` holds out), each "
        "with its defaults and no flag; scikit-learn: `LogisticRegression` / `Ridge` "
        "after `StandardScaler` and `OneHotEncoder`. Margins: 0.01 accuracy, 0.02 R². "
        "Written by `python -m benchmarks.defaults`.\n\n" + "\n".join(header + rows) + "\n"
    )
    if not args.only:
        args.out.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
