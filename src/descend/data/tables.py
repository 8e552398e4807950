"""Tables (CSV, TSV, Parquet files and pandas DataFrames) read into named columns.

pandas and pyarrow are optional (``pip install "descend[data]"``). Without pandas,
delimited text files are read with the standard library's :mod:`csv` module; Parquet
files and DataFrames need pandas.

The delimiter of a text file is detected by :class:`csv.Sniffer` (among ``,`` ``;``
tab ``|``, and space for ``.txt``) whatever the suffix, the suffix's own (``,`` for
``.csv`` and ``.txt``, tab for ``.tsv``) when the sniffer cannot tell, or given as
``sep``; errors about the file's shape say which one was used. A text column of
numbers written with a decimal comma (``1,5``, ``-0,25``, ``1.234,5``) is read as
numbers, with a :class:`~descend.errors.DescendWarning` naming it; such numbers
mixed with decimal points, or ``1,500``-like ones in a comma-delimited file (a
thousands separator as much as a decimal comma), are refused with the fix.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from descend.errors import DataError, DescendTypeError, InputError, warn

# The delimiter each suffix falls back to when the sniffer cannot tell.
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": ","}
_SNIFFED = ",;\t|"  # the delimiters the sniffer chooses from (and space for .txt)
_SAMPLE_BYTES = 65536
_PARQUET = (".parquet", ".pq")
# Cells read as missing by the csv-module reader; pandas already turns these into NaN.
_MISSING_TEXT = frozenset(
    {"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "null", "NULL", "None", "#N/A", "<NA>"}
)
_INSTALL_HINT = 'install the data extra: pip install "descend[data]"'


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
    delimiter: str | None = None  # a text file's, for messages about its columns
    # Numeric columns of whole numbers as the source wrote them: an integer or boolean
    # dtype, or text cells without a decimal point or exponent (what decides whether a
    # target of numbers may be class labels; see descend.data.load's task).
    integers: frozenset[str] = frozenset()
    booleans: frozenset[str] = frozenset()  # of a boolean dtype: as classes, False and True

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def listing(self) -> str:
        """``"its columns: a, b"``, saying where a text file's lines were split."""
        split = "" if self.delimiter is None else f", split at {delimiter_name(self.delimiter)}"
        return f"its columns{split}: {', '.join(self.names)}"

    def delimiter_hint(self) -> str:
        """``"; if the file is split at ';', give sep=';'"`` when a lone column holds one."""
        if self.delimiter is None or len(self.columns) != 1:
            return ""
        inside = [c for c in _SNIFFED if c != self.delimiter and c in self.names[0]]
        if not inside:
            return ""
        return f"; if the file is split at {delimiter_name(inside[0])}, give sep={inside[0]!r}"

    def row(self, i: int) -> str:
        # Files: rows as a spreadsheet shows them, the header being row 1.
        return f"row {i + 2}" if self.index is None else f"index {self.index[i]!r}"


def give_sep(other: str) -> str:
    """How a caller of :func:`descend.data.load` gives a text file's delimiter."""
    return f"give it, e.g. sep={other!r}"


def read_table(
    source: Any, sep: str | None = None, *, how_to_give_sep: Callable[[str], str] = give_sep
) -> Table:
    """Read a CSV / TSV / Parquet path or a pandas DataFrame into a :class:`Table`.

    ``sep`` is the delimiter of a text file (one character); None detects it.
    ``how_to_give_sep(other)`` ends the error about a ragged line: how the caller reads
    the file split at ``other`` (callers without ``sep`` say how to do without).
    """
    if sep is not None:
        _check_sep(sep, source)
    try:
        table = _read(source, sep)
    except _Ragged as error:
        raise DataError(f"{error}{how_to_give_sep(error.other)})") from None
    return _with_decimal_commas(table)


def _read(source: Any, sep: str | None) -> Table:
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
    delimiter = sep or _sniff_delimiter(path, suffix)
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


def _check_sep(sep: Any, source: Any) -> None:
    if not isinstance(sep, str) or len(sep) != 1 or sep in '\r\n"':
        raise InputError(
            f"sep must be one character, such as ',' ';' '|' or '\\t' (a tab), got {sep!r}"
        )
    parquet = isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in _PARQUET
    if is_dataframe(source) or parquet:
        what = "a DataFrame" if is_dataframe(source) else "Parquet"
        raise InputError(f"sep is the delimiter of a text file; {what} has none, leave it out")


def _sniff_delimiter(path: Path, suffix: str) -> str:
    """The delimiter :class:`csv.Sniffer` finds in the first lines, else the header's.

    The sniffer wants the lines to agree; when one of them is ragged it cannot tell,
    and the candidate the header line holds most often is taken (the suffix's own
    delimiter when the header holds none), so that the error about the ragged line
    speaks of the file's own delimiter.
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    if len(sample) == _SAMPLE_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    candidates = _SNIFFED + (" " if suffix == ".txt" else "")
    try:
        return csv.Sniffer().sniff(sample, delimiters=candidates).delimiter
    except csv.Error:
        pass
    header = next((line for line in sample.splitlines() if line.strip()), "").strip()
    counts = {candidate: header.count(candidate) for candidate in candidates}
    default = _DELIMITERS[suffix]
    best = max(counts, key=lambda candidate: (counts[candidate], candidate == default))
    return best if counts[best] else default


def delimiter_name(delimiter: str) -> str:
    """A delimiter as messages show it: ``';'``, ``tabs``, ``spaces``."""
    return {"\t": "tabs", " ": "spaces"}.get(delimiter, repr(delimiter))


def _other_delimiter(delimiter: str) -> str:
    return ";" if delimiter == "," else ","


def _blank(record: list[str]) -> bool:
    # A line of nothing or only spaces, which pandas skips too.
    return len(record) <= 1 and not "".join(record).strip()


def _first_ragged_line(path: Path, delimiter: str) -> tuple[int, int, int] | None:
    """(line, fields, header fields) of the first row whose length differs from the header."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        width = None
        for record in reader:
            if _blank(record):
                continue
            if width is None:
                width = len(record)
            elif len(record) != width:
                return reader.line_num, len(record), width
    return None


class _Ragged(DataError):
    """A line of another length than the header's; :func:`read_table` ends the sentence."""

    def __init__(self, message: str, other: str):
        super().__init__(message)
        self.other = other  # the delimiter to suggest instead


def _ragged(path: Path, line: int, fields: int, width: int, delimiter: str) -> DataError:
    return _Ragged(
        f"{str(path)!r} line {line} has {fields} fields but the header has {width}, split at "
        f"{delimiter_name(delimiter)}; every line needs one value per column (look for a stray "
        "delimiter or an unclosed quote; if the file's delimiter is another, ",
        _other_delimiter(delimiter),
    )


def _exact_floats(pandas) -> dict:
    # Before pandas 3.1 the default float parser can be one ulp off the nearest double;
    # "round_trip" is exact (and later versions are exact by default and deprecate it).
    major, minor = (int(part) for part in pandas.__version__.split(".")[:2])
    return {"float_precision": "round_trip"} if (major, minor) < (3, 1) else {}


def _read_delimited_pandas(pandas, path: Path, delimiter: str) -> Table:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pandas.read_csv(
                path, sep=delimiter, skipinitialspace=True, index_col=False,
                **_exact_floats(pandas),
            )  # fmt: skip
        except pandas.errors.EmptyDataError:
            raise _empty(path) from None
        except UnicodeDecodeError as error:
            raise DataError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
        except pandas.errors.ParserError as error:
            ragged = _first_ragged_line(path, delimiter)
            if ragged:
                raise _ragged(path, *ragged, delimiter) from None
            raise DataError(
                f"cannot parse {str(path)!r} split at {delimiter_name(delimiter)}: {error}".strip()
            ) from None
    # pandas pads short rows with NaN and may drop extra fields with a warning: check the
    # row lengths with the csv module only then, so clean files are read once.
    if caught or frame.isna().to_numpy().any():
        ragged = _first_ragged_line(path, delimiter)
        if ragged:
            raise _ragged(path, *ragged, delimiter)
    if len(frame) == 0:
        raise _no_rows(repr(str(path)), [str(name) for name in frame.columns])
    table = _from_frame(frame, repr(str(path)))
    table.delimiter = delimiter
    return table


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
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
            header, rows = None, []
            for record in reader:
                if _blank(record):
                    continue
                if header is None:
                    header = [name.strip() for name in record]
                elif len(record) != len(header):
                    raise _ragged(path, reader.line_num, len(record), len(header), delimiter)
                else:
                    rows.append(record)
    except UnicodeDecodeError as error:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({error.reason})") from None
    if header is None:
        raise _empty(path)
    if not rows:
        raise _no_rows(repr(str(path)), header)
    columns, kinds, integers = {}, {}, set()
    for name, cells in zip(header, zip(*rows, strict=True), strict=True):
        try:  # NumPy parses a column of clean numbers in C
            columns[name], kinds[name] = np.array(cells, dtype=np.float64), "numeric"
            if _written_as_integers(cells):
                integers.add(name)
        except ValueError:
            stripped = (cell.strip() for cell in cells)
            values = [None if cell in _MISSING_TEXT else cell for cell in stripped]
            columns[name], kinds[name] = np.array(values, dtype=object), "text"
    return Table(repr(str(path)), columns, kinds, delimiter=delimiter, integers=frozenset(integers))


def _written_as_integers(cells: Sequence[str]) -> bool:
    """Whether cells that parse as numbers are all written as whole numbers (``12``,
    ``-3``; not ``1.0``, ``1e3``, ``inf`` or ``nan``)."""
    text = "".join(cells).lower()
    return not any(mark in text for mark in (".", "e", "n", "i"))


def _from_frame(frame, origin: str, index: Sequence | None = None) -> Table:
    import pandas  # a DataFrame, from a file or the user, means pandas is there

    types = pandas.api.types
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        duplicated = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{origin} has duplicated column names: {', '.join(duplicated)}")
    if len(names) == 0:
        raise DataError(f"{origin} has no columns")
    if len(frame) == 0:
        raise _no_rows(origin, names)
    columns, kinds, declared, integers, booleans = {}, {}, {}, set(), set()
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
            if types.is_bool_dtype(dtype) or types.is_integer_dtype(dtype):
                integers.add(name)
            if types.is_bool_dtype(dtype):
                booleans.add(name)
        elif types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
            raise DataError(
                f"column {name!r} of {origin} holds dates or durations ({dtype}); convert it "
                "to numbers first (for example seconds since a start time)"
            )
        else:
            kinds[name] = "text"
            columns[name] = series.astype(object).where(series.notna(), None).to_numpy()
    return Table(
        origin, columns, kinds, declared, index, integers=frozenset(integers),
        booleans=frozenset(booleans),
    )  # fmt: skip


# ------------------------------------------------------------ decimal commas

# A number written with a decimal comma: 1,5  -0,25  1.234,5 (dots grouping thousands).
_DECIMAL_COMMA = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:\.\d{3})+),\d+")
_INTEGER = re.compile(r"[+-]?\d+")
_THOUSANDS = re.compile(r"[+-]?\d{1,3},\d{3}")  # 1,500: a decimal comma or 1500?


def _with_decimal_commas(table: Table) -> Table:
    """``table`` with its text columns of decimal-comma numbers read as numbers (warned)."""
    read = {}
    for name, kind in table.kinds.items():
        if kind == "text":
            example = _read_decimal_commas(table, name)
            if example is not None:
                read[name] = example
    if read:
        names = ", ".join(map(repr, read))
        example = next(iter(read.values()))
        warn(
            f"read column{'s' if len(read) > 1 else ''} {names} of {table.origin} as numbers "
            f"written with a decimal comma ({example!r} is {_comma_number(example):g})"
        )
    return table


def _read_decimal_commas(table: Table, name: str) -> str | None:
    """Replace a column's decimal-comma cells by numbers; one of them, or None if none.

    Only a column whose cells are mostly such numbers (and whole numbers) is read:
    other text stays, for the error about stray text. A column that mixes decimal
    commas and points, or whose commas may separate thousands, is refused.
    """
    values = table.columns[name]
    texts = {v.strip() for v in set(values.tolist()) if isinstance(v, str)}
    commas = {v for v in texts if _DECIMAL_COMMA.fullmatch(v)}
    if not commas:
        return None
    other = texts - commas - {v for v in texts if _INTEGER.fullmatch(v)}
    words = {v for v in other if as_number(v) is None}
    cells = [v.strip() if isinstance(v, str) else v for v in values.tolist()]
    if sum(cell in words for cell in cells) * 2 >= sum(cell is not None for cell in cells):
        return None  # a text column holding a few such values: categories
    example = min(commas)
    # words holds the values that are not numbers: the others have a float.
    points = sorted(v for v in other - words if math.isfinite(cast(float, as_number(v))))
    if points:
        raise DataError(
            f"column {name!r} of {table.origin} holds numbers with a decimal comma "
            f"({example!r}) and with a decimal point ({points[0]!r}); write them all one way"
        )
    if table.delimiter == "," and all(_THOUSANDS.fullmatch(v) for v in commas):
        raise DataError(
            f"column {name!r} of {table.origin} holds numbers such as {example!r} in a "
            "comma-delimited file: is the comma a decimal mark or a thousands separator? "
            "Write them without it, or with ';' as the file's delimiter for decimal commas"
        )
    numeric = texts - words  # with inf and nan as the file writes them
    numbers = [_comma_number(c) if c in numeric else c for c in cells]
    if words:  # stray text stays text: the encoding names its row
        table.columns[name] = np.array(numbers, dtype=object)
    else:
        table.columns[name] = np.array(
            [np.nan if n is None else n for n in numbers], dtype=np.float64
        )
        table.kinds[name] = "numeric"
    return example


def _comma_number(text: str) -> float:
    return float(text.replace(".", "").replace(",", "."))


def category_label(value: Any) -> str:
    """The text a category is known by: strings stripped, whole floats without '.0'."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def as_number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None
