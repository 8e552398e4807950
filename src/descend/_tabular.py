"""Tables (CSV, TSV, Parquet files and pandas DataFrames) read into columns, and the
encoding that turns those columns into a float feature matrix.

pandas and pyarrow are optional (``pip install "descend[data]"``). Without pandas,
delimited text files are read with the standard library's :mod:`csv` module; Parquet
files and DataFrames need pandas.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from descend.errors import DataError, DescendTypeError, suggest, unknown_name

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}
_PARQUET = (".parquet", ".pq")
# Cells read as missing by the csv-module reader; pandas already turns these into NaN.
_MISSING_TEXT = frozenset(
    {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "null", "NULL", "None", "#N/A", "<NA>"}
)
NAN_POLICIES = ("raise", "drop", "impute_mean")
_INSTALL_HINT = 'install the data extra: pip install "descend[data]"'


def float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy floating dtype, or a DataError naming the valid choices."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.kind != "f":
        raise DataError(
            f"dtype must be a floating type such as 'float32' or 'float64', got {dtype!r}"
        )
    return resolved


def check_nan_policy(nan_policy: str) -> str:
    if nan_policy not in NAN_POLICIES:
        raise unknown_name("nan_policy", str(nan_policy), NAN_POLICIES)
    return nan_policy


def _pandas():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def is_dataframe(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and hasattr(obj, "columns")


@dataclass
class Table:
    """Named columns, each a float64 array (``numeric``) or an object array (``text``,
    ``category``), plus what is needed to point at a row in an error message."""

    origin: str
    columns: dict[str, np.ndarray]
    kinds: dict[str, str]
    declared: dict[str, tuple] = field(default_factory=dict)
    index: Sequence | None = None

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values())))

    def row(self, i: int) -> str:
        # Files: rows as a spreadsheet shows them, the header being row 1.
        return f"row {i + 2}" if self.index is None else f"index {self.index[i]!r}"


def read_table(source: Any) -> Table:
    """Read a CSV / TSV / Parquet path or a pandas DataFrame into a :class:`Table`."""
    if is_dataframe(source):
        return _from_frame(source, "the DataFrame", index=source.index)
    if not isinstance(source, (str, os.PathLike)):
        raise DescendTypeError(
            "source must be a path to a .csv/.tsv/.txt/.parquet file or a pandas DataFrame, "
            f"got {type(source).__name__}; for arrays in memory use descend.data.as_arrays(X, y)"
        )
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist; check the path and the folder")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, not a data file")
    suffix = path.suffix.lower()
    if suffix not in _DELIMITERS and suffix not in _PARQUET:
        raise DataError(
            f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; "
            "use .csv, .tsv or .txt for delimited text, .parquet or .pq for Parquet"
        )
    if path.stat().st_size == 0:
        raise _empty(path)
    if suffix in _PARQUET:
        return _read_parquet(path)
    delimiter = _DELIMITERS[suffix] or _sniff_delimiter(path)
    pandas = _pandas()
    if pandas is None:
        return _read_delimited_stdlib(path, delimiter)
    return _read_delimited_pandas(pandas, path, delimiter)


def _empty(path: Path) -> DataError:
    return DataError(
        f"{str(path)!r} is empty; a data file needs a header line with the column names "
        "and then one line per sample"
    )


def _no_rows(origin: str, names: Sequence[str]) -> DataError:
    return DataError(
        f"{origin} has a header ({', '.join(map(str, names))}) but no data rows; "
        "add one row per sample"
    )


def _sniff_delimiter(path: Path) -> str:
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        sample = handle.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t |").delimiter
    except csv.Error:
        return ","


def _first_ragged_line(path: Path, delimiter: str) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first row whose length differs from the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        width = None
        for record in reader:
            if not record:
                continue
            if width is None:
                width = len(record)
            elif len(record) != width:
                return reader.line_num, len(record), width
    return None


def _ragged(path: Path, line: int, fields: int, width: int) -> DataError:
    return DataError(
        f"{str(path)!r} line {line} has {fields} fields but the header has {width}; every "
        "line needs one value per column (look for a stray delimiter or an unclosed quote)"
    )


def _read_delimited_pandas(pandas, path: Path, delimiter: str) -> Table:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pandas.read_csv(path, sep=delimiter, skipinitialspace=True, index_col=False)
        except pandas.errors.EmptyDataError:
            raise _empty(path) from None
        except UnicodeDecodeError as error:
            raise DataError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
        except pandas.errors.ParserError as error:
            ragged = _first_ragged_line(path, delimiter)
            if ragged:
                raise _ragged(path, *ragged) from None
            raise DataError(f"cannot parse {str(path)!r}: {error}".strip()) from None
    # pandas pads short rows with NaN and may drop extra fields with a warning: check the
    # row lengths with the csv module only then, so clean files are read once.
    if caught or frame.isna().to_numpy().any():
        ragged = _first_ragged_line(path, delimiter)
        if ragged:
            raise _ragged(path, *ragged)
    if len(frame) == 0:
        raise _no_rows(repr(str(path)), [str(name) for name in frame.columns])
    return _from_frame(frame, repr(str(path)))


def _read_parquet(path: Path) -> Table:
    pandas = _pandas()
    if pandas is None:
        raise DataError(
            f"reading Parquet files such as {str(path)!r} needs pandas; {_INSTALL_HINT}"
        )
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(
            f"reading Parquet files such as {str(path)!r} needs pyarrow; {_INSTALL_HINT}"
        ) from None
    try:
        frame = parquet.read_table(path).to_pandas()
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"cannot read {str(path)!r} as Parquet: {error}") from None
    if len(frame.columns) == 0:
        raise _empty(path)
    if len(frame) == 0:
        raise _no_rows(repr(str(path)), [str(name) for name in frame.columns])
    return _from_frame(frame, repr(str(path)))


def _read_delimited_stdlib(path: Path, delimiter: str) -> Table:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
            header, rows = None, []
            for record in reader:
                if not record:
                    continue
                if header is None:
                    header = [name.strip() for name in record]
                elif len(record) != len(header):
                    raise _ragged(path, reader.line_num, len(record), len(header))
                else:
                    rows.append(record)
    except UnicodeDecodeError as error:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
    if header is None:
        raise _empty(path)
    if not rows:
        raise _no_rows(repr(str(path)), header)
    cells = np.array(rows, dtype=object)
    columns = {}
    for j, name in enumerate(header):
        values = np.array(
            [None if v.strip() in _MISSING_TEXT else v.strip() for v in cells[:, j]], dtype=object
        )
        columns[name] = values
    return Table(repr(str(path)), columns, dict.fromkeys(header, "text"))


def _from_frame(frame, origin: str, index: Sequence | None = None) -> Table:
    pandas = _pandas()
    types = pandas.api.types
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        duplicated = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{origin} has duplicated column names: {', '.join(duplicated)}")
    if len(names) == 0:
        raise DataError(f"{origin} has no columns")
    if len(frame) == 0:
        raise _no_rows(origin, names)
    columns, kinds, declared = {}, {}, {}
    for name, (_, series) in zip(names, frame.items(), strict=True):
        dtype = series.dtype
        if isinstance(dtype, pandas.CategoricalDtype):
            kinds[name] = "category"
            declared[name] = tuple(category_label(c) for c in dtype.categories)
            columns[name] = series.astype(object).where(series.notna(), None).to_numpy()
        elif types.is_complex_dtype(dtype):
            raise DataError(f"column {name!r} of {origin} holds complex numbers; use real parts")
        elif types.is_bool_dtype(dtype) or types.is_numeric_dtype(dtype):
            kinds[name] = "numeric"
            columns[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
            raise DataError(
                f"column {name!r} of {origin} holds dates or durations ({dtype}); convert it "
                "to numbers first (for example seconds since a start time)"
            )
        else:
            kinds[name] = "text"
            columns[name] = series.astype(object).where(series.notna(), None).to_numpy()
    return Table(origin, columns, kinds, declared, index)


def category_label(value: Any) -> str:
    """The text a category is known by: strings stripped, whole floats without '.0'."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _as_number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


@dataclass
class ParsedColumn:
    """A column read as numbers: ``numbers`` (NaN where missing or text) and ``text`` rows."""

    numbers: np.ndarray
    text_rows: np.ndarray

    @property
    def mostly_numeric(self) -> bool:
        n_text = len(self.text_rows)
        return np.count_nonzero(~np.isnan(self.numbers)) > n_text


def parse_numbers(values: np.ndarray) -> ParsedColumn:
    if values.dtype != object:
        return ParsedColumn(values, np.zeros(0, dtype=np.intp))
    try:  # NumPy parses numeric strings (and None → NaN) in C; fall back per cell on text
        return ParsedColumn(values.astype(np.float64), np.zeros(0, dtype=np.intp))
    except (TypeError, ValueError):
        pass
    numbers = np.full(len(values), np.nan)
    text_rows = []
    cache: dict[Any, float | None] = {}
    for i, value in enumerate(values):
        if value is None:
            continue
        number = cache[value] if value in cache else cache.setdefault(value, _as_number(value))
        if number is None:
            text_rows.append(i)
        else:
            numbers[i] = number
    return ParsedColumn(numbers, np.asarray(text_rows, dtype=np.intp))


def stray_text_error(table: Table, name: str, parsed: ParsedColumn, hint: str) -> DataError:
    first = int(parsed.text_rows[0])
    others = len(parsed.text_rows) - 1
    more = f" (and {others} more row{'s' if others > 1 else ''})" if others else ""
    return DataError(
        f"column {name!r} of {table.origin} holds numbers, but {table.row(first)} has the text "
        f"{table.columns[name][first]!r}{more}; fix or empty that cell (an empty cell counts "
        f"as missing){hint}"
    )


def column_kind(table: Table, name: str, categorical: str | frozenset) -> str:
    """'numeric' or 'categorical' for a column, or a DataError for text that fits neither."""
    listed = categorical != "auto" and name in categorical
    if listed or (categorical == "auto" and table.kinds[name] == "category"):
        return "categorical"
    if table.kinds[name] == "numeric":
        return "numeric"
    parsed = parse_numbers(table.columns[name])
    if len(parsed.text_rows) == 0:
        return "numeric"
    if parsed.mostly_numeric:
        hint = " or list the column in categorical=[...] if it is a category"
        raise stray_text_error(table, name, parsed, hint)
    if categorical == "auto":
        return "categorical"
    raise DataError(
        f"column {name!r} of {table.origin} holds text such as "
        f"{table.columns[name][parsed.text_rows[0]]!r}; add it to categorical=[...] to one-hot "
        "encode it, or leave it out of features"
    )


@dataclass(frozen=True)
class Encoding:
    """How the columns of a table become features (and the target labels become codes).

    Numeric columns are used as they are. A categorical column with categories
    ``c_1 … c_m`` becomes ``m`` one-hot columns named ``"column=c_k"``: 1 where the
    cell is ``c_k``, else 0 (all NaN where the cell is missing). Categories are
    compared as text (``category_label``: stripped strings, ``2.0`` written ``2``).

    Attributes
    ----------
    columns : tuple of str
        The source columns used as features, in order.
    categories : dict of str to tuple of str
        The categories of each one-hot encoded column, in the order of its columns.
    target_name : str or None
        The target column, if any.
    classes : tuple or None
        Target labels in code order (code ``k`` is ``classes[k]``) when the target is
        text or categorical; ``None`` for a numeric target.
    """

    columns: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    target_name: str | None = None
    classes: tuple | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for column in self.columns:
            if column in self.categories:
                names.extend(f"{column}={category}" for category in self.categories[column])
            else:
                names.append(column)
        return tuple(names)

    def source_columns(self) -> list[str]:
        """The source column of each feature (one entry per one-hot column too)."""
        return [c for c in self.columns for _ in self.categories.get(c, (None,))]

    def features(self, table: Table) -> np.ndarray:
        """The float64 feature matrix of ``table`` (NaN where a cell is missing)."""
        missing = [name for name in self.columns if name not in table.columns]
        if missing:
            first = missing[0]
            raise DataError(
                f"{table.origin} lacks the feature column {first!r}{suggest(first, table.names)}"
                f" (it has: {', '.join(table.names)}); the data must have the columns the "
                "model was trained on"
            )
        blocks = []
        for name in self.columns:
            if name in self.categories:
                blocks.append(self._one_hot(table, name))
                continue
            parsed = parse_numbers(table.columns[name])
            if len(parsed.text_rows):
                raise stray_text_error(table, name, parsed, "")
            blocks.append(parsed.numbers[:, None])
        return np.concatenate(blocks, axis=1)

    def _one_hot(self, table: Table, name: str) -> np.ndarray:
        categories = self.categories[name]
        position = {category: k for k, category in enumerate(categories)}
        values = table.columns[name]
        codes = np.full(len(values), -1, dtype=np.intp)
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            label = category_label(value)
            if label not in position:
                raise DataError(
                    f"column {name!r} of {table.origin}, {table.row(i)}: the category {label!r}"
                    f"{suggest(label, categories)} was not seen in the training data (known: "
                    f"{', '.join(categories)}); fix the value or retrain with it"
                )
            codes[i] = position[label]
        block = (codes[:, None] == np.arange(len(categories))).astype(np.float64)
        block[codes < 0] = np.nan
        return block

    def decode(self, codes: Any) -> np.ndarray:
        """Target labels for integer codes (the inverse of the target encoding)."""
        if self.classes is None:
            raise DataError("the target is numeric: it has no classes to decode codes into")
        return np.asarray(self.classes)[np.asarray(codes, dtype=np.intp)]

    def to_dict(self) -> dict:
        """A JSON-able dict; :meth:`from_dict` rebuilds the encoding from it."""
        return {
            "columns": list(self.columns),
            "categories": {name: list(cats) for name, cats in self.categories.items()},
            "target_name": self.target_name,
            "classes": None if self.classes is None else list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Encoding:
        try:
            return cls(
                columns=tuple(data["columns"]),
                categories={name: tuple(c) for name, c in data["categories"].items()},
                target_name=data["target_name"],
                classes=None if data["classes"] is None else tuple(data["classes"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise DataError(f"not an encoding dict (from Encoding.to_dict): {error!r}") from None


def handle_nonfinite(
    X: np.ndarray,
    y: np.ndarray | None,
    nan_policy: str,
    *,
    subject: str,
    row: Callable[[int], str],
    column: Callable[[int], str],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``nan_policy`` to the NaN / ±inf entries of ``X`` (float) and ``y`` (float)."""
    bad_x = ~np.isfinite(X)
    bad_y = None
    if y is not None and y.dtype.kind in "fc":
        bad_y = ~np.isfinite(y) if y.ndim == 1 else ~np.isfinite(y).all(axis=1)
    if bad_y is not None and bad_y.any() and nan_policy != "drop":
        rows = np.flatnonzero(bad_y)
        where = ", ".join(row(int(i)) for i in rows[:3]) + (", ..." if len(rows) > 3 else "")
        raise DataError(
            f"the target of {subject} has {len(rows)} missing or non-finite value"
            f"{'s' if len(rows) > 1 else ''} (NaN or ±inf), at {where}; targets cannot be "
            "imputed: pass nan_policy='drop' to drop those rows, or fix the data"
        )
    if not bad_x.any() and (bad_y is None or not bad_y.any()):
        return X, y
    if nan_policy == "raise":
        positions = np.argwhere(bad_x)
        where = ", ".join(f"({row(int(i))}, {column(int(j))})" for i, j in positions[:3])
        more = ", ..." if len(positions) > 3 else ""
        raise DataError(
            f"{subject} has {len(positions)} missing or non-finite feature value"
            f"{'s' if len(positions) > 1 else ''} (NaN or ±inf), at {where}{more}; pass "
            "nan_policy='drop' to drop those rows or nan_policy='impute_mean' to replace each "
            "with the mean of its column"
        )
    if nan_policy == "drop":
        keep = ~bad_x.any(axis=1) if bad_y is None else ~(bad_x.any(axis=1) | bad_y)
        if not keep.any():
            raise DataError(f"every row of {subject} has a missing or non-finite value")
        return X[keep], None if y is None else y[keep]
    finite_count = np.count_nonzero(~bad_x, axis=0)
    if (finite_count == 0).any():
        j = int(np.flatnonzero(finite_count == 0)[0])
        raise DataError(f"{subject}: {column(j)} has no finite value to take a mean of")
    means = np.where(bad_x, 0.0, X).sum(axis=0) / finite_count
    return np.where(bad_x, means, X), y
