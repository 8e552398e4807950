"""Small classic datasets shipped with descend, read offline from package data.

The files are scikit-learn's copies (see README.md in this folder for provenance and
licence); the loader is ours and needs only NumPy.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from descend.data.encoding import Dataset, Encoding, float_dtype
from descend.errors import unknown_name

_BREAST_CANCER_MEASURES = (
    "radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
    "concave points", "symmetry", "fractal dimension",
)  # fmt: skip


@dataclass(frozen=True)
class _Spec:
    task: str
    description: str
    feature_names: tuple[str, ...]
    target_name: str


_SPECS = {
    "breast_cancer": _Spec(
        "binary",
        "Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant / benign",
        tuple(f"mean {m}" for m in _BREAST_CANCER_MEASURES)
        + tuple(f"{m} error" for m in _BREAST_CANCER_MEASURES)
        + tuple(f"worst {m}" for m in _BREAST_CANCER_MEASURES),
        "diagnosis",
    ),
    "diabetes": _Spec(
        "regression",
        "Efron et al. diabetes: 442 patients, 10 baseline variables, disease progression "
        "one year later (raw, unscaled values)",
        ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"),
        "progression",
    ),
    "digits": _Spec(
        "multiclass",
        "Handwritten digits: 1797 images of 8x8 pixels (values 0-16) as 64 features, 10 classes",
        tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8)),
        "digit",
    ),
    "iris": _Spec(
        "multiclass",
        "Fisher's iris: 150 flowers, 4 measurements in cm, 3 species",
        ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"),
        "species",
    ),
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_SPECS)


def dataset_task(name: str) -> str:
    """``"regression"``, ``"binary"`` or ``"multiclass"`` for a shipped dataset."""
    if name not in _SPECS:
        raise unknown_name("dataset", str(name), _SPECS)
    return _SPECS[name].task


def _open(filename: str):
    handle = resources.files(__name__).joinpath(filename).open("rb")
    return gzip.open(handle) if filename.endswith(".gz") else handle


def _read_labelled_csv(filename: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    # First line: n_samples, n_features, then the class names; then rows of features + code.
    with _open(filename) as handle:
        header = handle.readline().decode().strip().split(",")
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    n_samples, n_features = int(header[0]), int(header[1])
    assert table.shape == (n_samples, n_features + 1), filename
    return table[:, :-1], table[:, -1], tuple(header[2:])


def load_dataset(name: str, *, dtype: Any = "float32") -> Dataset:
    """Load a shipped dataset as a :class:`descend.data.Dataset` (no download).

    ============== ============ ========= ========== ==========================
    name           task         n_samples n_features target
    ============== ============ ========= ========== ==========================
    breast_cancer  binary       569       30         0 malignant, 1 benign
    diabetes       regression   442       10         progression after a year
    digits         multiclass   1797      64         digit 0-9 (8x8 pixels)
    iris           multiclass   150       4          setosa, versicolor, virginica
    ============== ============ ========= ========== ==========================

    The values equal scikit-learn's ``load_breast_cancer``, ``load_diabetes(scaled=False)``,
    ``load_digits`` and ``load_iris`` (``X`` is ``data``, ``y`` is ``target``). The diabetes
    features are the raw measurements, not scikit-learn's default scaled copy: scale them
    with :class:`descend.data.Standardizer`.

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`.
    dtype : floating dtype, default "float32"
        dtype of ``X`` (and of ``y`` for diabetes); class codes are ``int32``.

    Examples
    --------
    >>> data = load_dataset("digits")
    >>> data.X.shape, data.classes[:3]
    ((1797, 64), (0, 1, 2))
    """
    spec = _SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise unknown_name("dataset", str(name), _SPECS)
    dtype = float_dtype(dtype)
    classes: tuple | None
    if name == "diabetes":
        with _open("diabetes_data_raw.csv.gz") as handle:
            X = np.loadtxt(handle)
        with _open("diabetes_target.csv.gz") as handle:
            y = np.loadtxt(handle).astype(dtype)
        classes = None
    elif name == "digits":
        with _open("digits.csv.gz") as handle:
            table = np.loadtxt(handle, delimiter=",")
        X, y, classes = table[:, :-1], table[:, -1].astype(np.int32), tuple(range(10))
    else:
        X, codes, classes = _read_labelled_csv(f"{name}.csv")
        y = codes.astype(np.int32)
    encoding = Encoding(spec.feature_names, {}, spec.target_name, classes)
    return Dataset(X.astype(dtype), y, encoding)
