"""Data for training: files and arrays checked and turned into float matrices, the
shipped datasets, standardization, a train / validation split and batch indices.

The data layer knows NumPy (and, optionally, pandas and pyarrow); it knows nothing of
optimizers or the training loop.

>>> import descend as ds
>>> iris = ds.data.load_dataset("iris")
>>> iris.X.shape, iris.classes
((150, 4), ('setosa', 'versicolor', 'virginica'))
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import numpy as np

from descend.data.arrays import (
    Standardizer,
    aligned_array,
    feature_matrix,
    float_targets,
    train_validation_split,
)
from descend.data.datasets import dataset_names, load_dataset
from descend.data.encoding import (
    Dataset,
    Encoding,
    check_nan_policy,
    class_set,
    column_kind,
    float_dtype,
    handle_nonfinite,
    label_codes,
    parse_numbers,
    sorted_labels,
    stray_text_error,
)
from descend.data.streams import Stream, stream  # noqa: F401 (data larger than memory)
from descend.data.tables import read_table
from descend.errors import DataError, suggest, unknown_name

TASKS = ("regression", "binary", "multiclass")
TARGET_KINDS = ("auto", "classification", "regression")  # load's task

__all__ = [
    "ArrayData",
    "Dataset",
    "Encoding",
    "Standardizer",
    "as_arrays",
    "dataset_names",
    "load",
    "load_dataset",
    "target_column",
    "train_validation_split",
]


def load(
    source: Any,
    *,
    target: str | None = None,
    features: Collection[str] | None = None,
    categorical: str | Collection[str] = "auto",
    nan_policy: str = "raise",
    dtype: Any = "float32",
    sep: str | None = None,
    task: str = "auto",
) -> Dataset:
    """Read a table into a :class:`Dataset` of float features and a target.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        A file, its format told by the suffix: ``.csv``, ``.tsv`` or ``.txt`` for
        delimited text, ``.parquet`` / ``.pq``; the first line of a text file names
        the columns. Parquet files and DataFrames need pandas and pyarrow
        (``pip install "descend[data]"``); without pandas, text files are read with the
        standard :mod:`csv` module.
    target : str, optional
        The target column. Default: the last column.
    features : list of str, optional
        The feature columns, in order. Default: every column but the target.
    categorical : "auto" or list of str, default "auto"
        ``"auto"``: columns of text (or pandas ``category`` dtype) are one-hot encoded.
        A list: exactly these columns are one-hot encoded (numeric codes included), and
        any other column holding text is an error. A text target always becomes classes.
    nan_policy : {"raise", "drop", "impute_mean"}, default "raise"
        What to do with missing cells and ±inf: raise a DataError saying where they are,
        drop their rows, or replace a feature cell with its column's mean over the
        finite cells (a missing target is never imputed: only "drop" accepts it).
    dtype : floating dtype, default "float32"
        dtype of ``X`` (and of ``y`` for a numeric target).
    sep : str, optional
        The delimiter of a text file, one character (``","``, ``";"``, ``"\t"``, ``"|"``).
        Default: detected by :class:`csv.Sniffer` among ``, ; tab |`` (and space for
        ``.txt``) whatever the suffix, else the suffix's (comma, or tab for ``.tsv``).
    task : {"auto", "classification", "regression"}, default "auto"
        What the target is. ``"auto"`` decides as scikit-learn's ``type_of_target``
        does, with a cap: text, booleans and a category dtype are class labels, and so
        are integers (cells written without a decimal point, or an integer dtype) with
        2 to :data:`MAX_INTEGER_CLASSES` distinct values, at most one per two rows
        (0/1, 1/2/3, -1/1); other numbers (``1.0``, prices, counts with many values)
        are a regression target. ``"classification"`` makes the distinct values of any
        target classes; ``"regression"`` needs numbers.

    Returns
    -------
    Dataset
        ``y`` holds ``int32`` codes into ``classes`` (sorted labels, or the declared
        order of a pandas categorical) when the target is classes (``classes`` holds
        ints for integer labels, floats for other numbers, else text), else floats.

    Notes
    -----
    A categorical column with categories ``c_1 … c_m`` becomes ``m`` columns
    ``x_k = [cell == c_k]`` named ``"column=c_k"``. A column of numbers with some text
    in it (more numbers than text) is taken as a mistake, not as categories: the
    DataError names the column and the first bad row. Rows in messages are numbered as
    a spreadsheet shows the file: the header is row 1, the first sample row 2 (blank
    lines not counted); DataFrame rows are named by their index label.

    Decimal commas: a text column whose cells are numbers written with a decimal comma
    (``1,5``, ``-0,25``, ``1.234,5``; whole numbers among them) is read as numbers,
    never one-hot encoded, and a :class:`~descend.errors.DescendWarning` names it. A
    column mixing decimal commas and points, or holding only ``1,500``-like numbers
    in a comma-delimited file (where the comma may separate thousands), is a DataError.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"size": [1.0, 2.0, 3.0], "color": ["red", "blue", "red"],
    ...                       "price": [10.0, 20.0, 31.0]})
    >>> data = load(frame)
    >>> data.feature_names, data.X.tolist()
    (('size', 'color=blue', 'color=red'), [[1.0, 0.0, 1.0], [2.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    """
    check_nan_policy(nan_policy)
    if task not in TARGET_KINDS:
        raise unknown_name("task", str(task), TARGET_KINDS)
    dtype = float_dtype(dtype)
    if categorical != "auto":
        if isinstance(categorical, str):
            raise DataError(
                f"categorical must be 'auto' or a list of column names, got {categorical!r}"
            )
        categorical = frozenset(categorical)
    table = read_table(source, sep)
    names = table.names
    target = names[-1] if target is None else str(target)
    if target not in names:
        raise DataError(
            f"target column {target!r} is not in {table.origin}{suggest(target, names)} "
            f"({table.listing()}){table.delimiter_hint()}"
        )
    features = _check_features(table, features, target, categorical)
    kinds = {name: column_kind(table, name, categorical) for name in features}
    categories = {
        name: table.declared.get(name) or sorted_labels(table.columns[name])
        for name in features
        if kinds[name] == "categorical"
    }
    y, classes = _target(table, target, categorical, task)
    encoding = Encoding(tuple(features), categories, target, classes)
    sources = encoding.source_columns()
    X, y = handle_nonfinite(
        encoding.matrix(table), y, nan_policy, subject=table.origin,
        target_subject=f"the target {target!r} of {table.origin}", row=table.row,
        column=lambda j: f"column {sources[j]!r}",
    )  # fmt: skip
    y = y.astype(np.int32) if classes is not None else y.astype(dtype)
    return Dataset(X.astype(dtype), y, encoding, delimiter=table.delimiter)


def target_column(table: Any, target: str, task: str) -> np.ndarray:
    """The column ``target`` of a :class:`~descend.data.tables.Table` read as
    :func:`load` reads a target: floats for ``task="regression"``, the labels as written
    (ints, floats, booleans or text, as ``classes`` hold them) for
    ``"classification"``. A :class:`~descend.errors.DataError` names a column that is
    not there (with the closest name) and the first row with a missing target."""
    names = table.names
    if target not in names:
        raise DataError(
            f"target column {target!r} is not in {table.origin}{suggest(target, names)} "
            f"({table.listing()}){table.delimiter_hint()}"
        )
    values, classes = _target(table, target, "auto", task)
    values = np.asarray(values, dtype=np.float64)
    missing = np.flatnonzero(~np.isfinite(values))
    if len(missing):
        raise DataError(
            f"the target {target!r} of {table.origin} is missing at {table.row(missing[0])}"
            f"{f' and {len(missing) - 1} more rows' if len(missing) > 1 else ''}; fill or "
            "drop those rows"
        )
    return values if classes is None else np.asarray(classes)[values.astype(np.intp)]


def _check_features(table, features, target, categorical) -> list[str]:
    names = table.names
    if features is None:
        features = [name for name in names if name != target]
    else:
        features = [str(name) for name in features]
        for name in features:
            if name not in names:
                raise DataError(
                    f"feature column {name!r} is not in {table.origin}{suggest(name, names)} "
                    f"({table.listing()})"
                )
        if target in features:
            raise DataError(f"the target {target!r} is also listed in features; remove it")
        if len(set(features)) != len(features):
            raise DataError(f"features lists a column twice: {features}")
    if not features:
        raise DataError(
            f"{table.origin} has no feature columns besides the target {target!r} "
            f"({table.listing()}); a model needs at least one{table.delimiter_hint()}"
        )
    if categorical != "auto":
        unknown = sorted(set(categorical) - set(features) - {target})
        if unknown:
            raise DataError(f"categorical names columns that are not features: {unknown}")
    return features


# The most distinct integers an "auto" target may hold and still be classes (digits: 10).
MAX_INTEGER_CLASSES = 20


def _target(table, target: str, categorical, task: str) -> tuple[np.ndarray, tuple | None]:
    """The target as floats (NaN where missing) or class codes, and its classes."""
    values = table.columns[target]
    listed = categorical != "auto" and target in categorical
    if not listed and table.kinds[target] != "category":
        parsed = parse_numbers(values)
        if len(parsed.text_rows) == 0:
            numbers = np.asarray(parsed.numbers, dtype=np.float64)
            whole = target in table.integers
            if task == "classification" or (task == "auto" and whole and integer_labels(numbers)):
                codes, classes = number_classes(numbers)
                if target in table.booleans:  # labelled as written: False, True
                    classes = tuple(bool(label) for label in classes)
                return codes, classes
            return parsed.numbers, None
        if parsed.mostly_numeric:
            raise stray_text_error(table, target, parsed, "")
    if task == "regression":
        raise DataError(
            f"the target {target!r} of {table.origin} holds text labels, and a regression "
            "needs numbers; leave the task to be classification"
        )
    classes = table.declared.get(target) or sorted_labels(values)
    codes, _ = label_codes(values, classes)
    return np.where(codes < 0, np.nan, codes), classes


class ArrayData(NamedTuple):
    """Checked arrays: ``X`` (float, 2-D), ``y`` and, for classification, ``classes``."""

    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray | None


def as_arrays(
    X: Any, y: Any, *, task: str | None = None, nan_policy: str = "raise", dtype: Any = "float32"
) -> ArrayData:
    """Check features and labels held in memory and return them as NumPy arrays.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        NumPy or JAX array, nested lists, or a numeric pandas DataFrame. 1-D input is
        refused (reshape with ``X.reshape(-1, 1)`` for one feature); so are complex and
        text values (use :func:`load` to one-hot encode text columns).
    y : array-like, shape (n_samples,) or (n_samples, n_outputs)
        Targets; 1-D for classification. Complex regression targets are refused
        (fit their real and imaginary parts as two outputs).
    task : {None, "regression", "binary", "multiclass"}, default None
        ``"binary"`` and ``"multiclass"`` encode the labels as in scikit-learn's
        ``LabelEncoder``: ``classes = sorted unique labels`` and ``y[i] = k`` where
        ``classes[k]`` is the label; binary needs exactly two classes, multiclass at
        least two. Otherwise ``y`` is returned as floats.
    nan_policy : {"raise", "drop", "impute_mean"}, default "raise"
        As in :func:`load`; positions in messages are 0-based ``(row, column)``.
    dtype : floating dtype, default "float32"

    Returns
    -------
    ArrayData
        ``(X, y, classes)``: ``y`` is ``int32`` codes and ``classes`` a NumPy array for
        classification, else ``y`` is float and ``classes`` is None.

    Examples
    --------
    >>> X, y, classes = as_arrays([[0.0], [1.0], [2.0]], ["no", "yes", "no"], task="binary")
    >>> y.tolist(), classes.tolist()
    ([0, 1, 0], ['no', 'yes'])
    """
    if task is not None and task not in TASKS:
        raise unknown_name("task", str(task), TASKS)
    check_nan_policy(nan_policy)
    dtype = float_dtype(dtype)
    X = feature_matrix(X)
    y = np.asarray(y)
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"y must be 1-D (one target per row), got shape {y.shape}")
    if len(y) != len(X):
        raise DataError(
            f"X has {len(X)} samples (rows) but y has {len(y)}; they need one target per row"
        )
    classification = task in ("binary", "multiclass")
    if classification and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if classification and y.ndim != 1:
        raise DataError(f"y must be 1-D labels for task={task!r}, got shape {y.shape}")
    boolean = y.dtype.kind == "b"  # labels False and True stay booleans
    if not classification:
        y = float_targets(y)
    elif y.dtype.kind in "iub":
        y = y.astype(np.float64)  # lets the NaN check below treat every label dtype alike
    X, y = handle_nonfinite(
        X, y, nan_policy, subject="X", target_subject="y", row=lambda i: f"row {i}",
        column=lambda j: f"column {j}",
    )  # fmt: skip
    if not classification:
        return ArrayData(aligned_array(X, dtype), y.astype(dtype), None)
    assert task is not None  # classification: task is "binary" or "multiclass"
    classes = class_set(
        y, task, fix="use task='multiclass' (with fit: a multiclass model such as 'softmax')"
    )
    codes = np.unique(y, return_inverse=True)[1]  # each label's place in the sorted set
    if boolean:
        classes = classes.astype(bool)
    return ArrayData(aligned_array(X, dtype), codes.astype(np.int32), classes)


def integer_labels(numbers: np.ndarray) -> bool:
    """Whether whole numbers (``Table.integers``) are class labels for ``task="auto"``:
    2 to :data:`MAX_INTEGER_CLASSES` distinct values, at most one per two rows."""
    finite = numbers[np.isfinite(numbers)]
    distinct = len(np.unique(finite))
    return 2 <= distinct <= min(MAX_INTEGER_CLASSES, len(finite) // 2)


def number_classes(numbers: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Class codes of a numeric target (NaN where missing) and its sorted classes, as
    ints when every value is whole."""
    finite = numbers[np.isfinite(numbers)]
    distinct = np.unique(finite)
    whole = bool(np.all(distinct == np.round(distinct)))
    classes = tuple(int(v) if whole else float(v) for v in distinct)
    codes = np.searchsorted(distinct, np.where(np.isfinite(numbers), numbers, distinct[0]))
    return np.where(np.isfinite(numbers), codes, np.nan), classes
