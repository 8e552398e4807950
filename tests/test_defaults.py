"""The defaults reach scikit-learn's standard models on every table of
``benchmarks/defaults.py``: ``descend train FILE --target T`` with no other flag,
``ds.fit`` with defaults, and ``GDClassifier()`` / ``GDRegressor()``, each within 0.01
accuracy or 0.02 R² of ``LogisticRegression`` / ``Ridge`` (after ``StandardScaler`` and
``OneHotEncoder``), the reference trained live on the same rows."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pandas")

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from benchmarks import defaults  # noqa: E402

import descend as ds  # noqa: E402

TABLES = {table.name: table for table in defaults.tables()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


@pytest.mark.parametrize("name", list(TABLES))
def test_every_default_reaches_scikit_learn(name, folder):
    table = TABLES[name]
    reference = defaults.reference(table)
    margin = defaults.MARGIN[table.metric]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = {
            "descend train": defaults.cli(table, folder),
            "ds.fit": defaults.with_fit(table),
            "estimator": defaults.with_estimator(table),
        }
    for way, score in scores.items():
        assert score >= reference - margin, f"{way}: {score:.4f} against {reference:.4f}"


def test_the_tables_cover_what_the_defaults_were_not_tuned_on():
    own = [t for t in TABLES.values() if t.name not in ds.data.dataset_names()]
    assert len(own) >= 8
    kinds = {t.metric for t in own}
    assert kinds == {"accuracy", "r2"}
    assert any(defaults._is_text(t.frame[c]) for t in own for c in t.frame.columns)
    magnitudes = [np.abs(t.frame[t.target]).mean() for t in own if t.metric == "r2"]
    assert min(magnitudes) < 0.1 and max(magnitudes) > 1e5
    assert {t.frame[t.target].nunique() for t in own if t.metric == "accuracy"} >= {2, 3, 5}
