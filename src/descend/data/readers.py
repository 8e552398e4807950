"""Reading a stream's pieces (Parquet row groups, .npy shards, iterable chunks) in
parts of bounded size, checking them, re-cutting them into chunks, and reading ahead in
a background thread. See :mod:`descend.data.streams` for the layouts."""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from descend.data.arrays import feature_matrix
from descend.errors import DataError, DescendTypeError, InputError, suggest

PARQUET_SUFFIXES = (".parquet", ".pq")
PART_ROWS = 16384  # rows read at a time: small next to a chunk, large for the readers
_SHARD = re.compile(r"X_(\d+)\.npy")


@dataclass
class Part:
    """Rows ``offset ..`` of one piece (``X`` None when only the target is read)."""

    piece: int
    X: np.ndarray | None
    y: np.ndarray
    where: str  # the piece, in words
    offset: int


def path_reader(
    path: Path, target: str | None, features: Sequence[str] | None
) -> _ParquetReader | _NpyReader:
    if not path.exists():
        raise DataError(f"no such file or folder: {str(path)!r}")
    if path.is_file():
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return _ParquetReader([path], target, features)
        raise DataError(
            f"{str(path)!r} is not a Parquet file (.parquet / .pq); a stream reads Parquet "
            "files, folders of them, or folders of X_<k>.npy / y_<k>.npy shards (for a CSV "
            "that fits in memory use fit(model, path) or convert it to Parquet)"
        )
    parquet = sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in PARQUET_SUFFIXES
        and p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
    )
    shards = sorted(p for p in path.iterdir() if _SHARD.fullmatch(p.name))
    if parquet and shards:
        raise DataError(f"{str(path)!r} holds both Parquet files and .npy shards; keep one kind")
    if parquet:
        return _ParquetReader(parquet, target, features)
    if shards:
        if target is not None or features is not None:
            raise InputError("target= and features= name Parquet columns, not .npy shards")
        return _NpyReader(path)
    raise DataError(
        f"the folder {str(path)!r} holds no Parquet files (.parquet / .pq) and no .npy "
        "shards (pairs X_000.npy, y_000.npy, X_001.npy, ...)"
    )


class _ParquetReader:
    """Row groups of Parquet files, read in record batches of at most ``rows`` rows."""

    kind = "parquet"
    one_shot = False

    def __init__(self, files: list[Path], target, features):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                "streaming Parquet files needs pyarrow; install the data extra: "
                'pip install "descend[data]"'
            ) from None
        self.files = files
        self.metadata = []
        for file in files:
            try:
                self.metadata.append(pq.read_metadata(file))
            except Exception as error:  # pyarrow raises several types for a bad file
                raise DataError(f"cannot read {str(file)!r} as Parquet: {error}") from None
        schema = self.metadata[0].schema.to_arrow_schema()
        names = schema.names
        for file, metadata in zip(files[1:], self.metadata[1:], strict=True):
            other = metadata.schema.to_arrow_schema()
            if other.names != names or other.types != schema.types:
                raise DataError(
                    f"the Parquet files differ in their columns: {str(file)!r} has "
                    f"{_columns(other)}, {str(files[0])!r} has {_columns(schema)}"
                )
        target = names[-1] if target is None else str(target)
        features = [n for n in names if n != target] if features is None else list(features)
        for name in [target, *features]:
            if name not in names:
                kind = "target" if name == target else "feature"
                raise DataError(
                    f"{kind} column {name!r} is not in {str(files[0])!r}{suggest(name, names)} "
                    f"(its columns: {names})"
                )
        if target in features:
            raise DataError(f"the target {target!r} is also listed in features; remove it")
        if not features:
            raise DataError(f"{str(files[0])!r} has no feature columns besides the target")
        for name in [target, *features]:
            kind = schema.field(name).type
            if not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            ):
                what = "labels" if name == target else "feature columns"
                raise DataError(
                    f"column {name!r} of {str(files[0])!r} holds {kind} values; {what} of a "
                    "stream must be numbers: encode them as numbers when writing the files "
                    "(for data that fits in memory, fit(model, path) one-hot encodes text)"
                )
        self.target, self.features = target, tuple(features)
        kind = schema.field(target).type
        self.target_kind = (
            "boolean" if pa.types.is_boolean(kind)
            else "integer" if pa.types.is_integer(kind) else "floating"
        )  # fmt: skip
        self.n_features, self.y_shape = len(features), ()
        self.pieces = [
            (f, group)
            for f, metadata in enumerate(self.metadata)
            for group in range(metadata.num_row_groups)
            if metadata.row_group(group).num_rows > 0
        ]
        self.piece_rows = tuple(
            self.metadata[f].row_group(group).num_rows for f, group in self.pieces
        )
        self.piece_files = tuple(f for f, _ in self.pieces)  # the file of each piece
        self.file_names = tuple(file.name for file in files)
        if not self.pieces:
            raise DataError(f"the Parquet data {str(files[0])!r} holds no rows")

    def column_name(self, j: int) -> str:
        return repr(self.features[j])

    def read(self, pieces, *, features: bool, rows: int) -> Iterator[Part]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = [*self.features, self.target] if features else [self.target]
        for piece in range(len(self.pieces)) if pieces is None else pieces:
            f, group = self.pieces[piece]
            where = f"row group {group} of {str(self.files[f])!r}"
            offset = 0
            with pq.ParquetFile(self.files[f], metadata=self.metadata[f]) as file:
                for batch in file.iter_batches(
                    batch_size=rows, row_groups=[group], columns=columns
                ):
                    y = batch.column(self.target).to_numpy(zero_copy_only=False)
                    X = None
                    if features:
                        selected = batch.select(list(self.features))
                        if any(pa.types.is_boolean(t) for t in selected.schema.types):
                            selected = selected.cast(
                                pa.schema([(n, pa.float64()) for n in self.features])
                            )
                        X = np.asarray(selected.to_tensor(null_to_nan=True, row_major=True))
                    yield Part(piece, X, y, where, offset)
                    offset += len(y)


def _columns(schema) -> str:
    return ", ".join(
        f"{name}: {kind}" for name, kind in zip(schema.names, schema.types, strict=True)
    )


class _NpyReader:
    """Pairs of ``X_<k>.npy`` / ``y_<k>.npy`` shards, memory-mapped while read."""

    kind = "npy"
    one_shot = False

    def __init__(self, folder: Path):
        shards = sorted(
            (int(match.group(1)), p)
            for p in folder.iterdir()
            if (match := _SHARD.fullmatch(p.name))
        )
        self.shards, rows, widths, tails, kinds = [], [], [], [], set()
        for number, x_path in shards:
            y_path = x_path.with_name("y_" + x_path.name[2:])
            if not y_path.exists():
                raise DataError(f"the shard {x_path.name} has no {y_path.name} beside it")
            X, y = _open_npy(x_path), _open_npy(y_path)
            if X.ndim != 2 or y.ndim not in (1, 2) or len(X) != len(y):
                raise DataError(
                    f"shard {number}: {x_path.name} has shape {X.shape} and {y_path.name} "
                    f"{y.shape}; X must be (rows, n_features) and y (rows,) or (rows, n_outputs)"
                )
            self.shards.append((x_path, y_path))
            rows.append(len(X))
            widths.append(X.shape[1])
            tails.append(y.shape[1:])
            kinds.add(y.dtype.kind)
            for name, values in ((x_path.name, X), (y_path.name, y)):
                if values.dtype.kind not in "biuf":
                    raise DataError(
                        f"{name} holds {values.dtype} values; shards must hold numbers (labels "
                        "of a stream too: encode them as numbers)"
                    )
            del X, y
            if widths[-1] != widths[0] or tails[-1] != tails[0]:
                raise DataError(
                    f"the shards have mixed shapes: {x_path.name} has {widths[-1]} features and "
                    f"targets of shape {tails[-1]} per row, {self.shards[0][0].name} "
                    f"{widths[0]} and {tails[0]}; every shard needs the same"
                )
        names = {p.name for p in folder.iterdir()}
        orphans = sorted(n for n in names if n.startswith("y_") and "X_" + n[2:] not in names)
        if orphans:
            raise DataError(f"the shard {orphans[0]} has no X_{orphans[0][2:]} beside it")
        kept = [k for k, n in enumerate(rows) if n > 0]
        if not kept:
            raise DataError(f"the shards in {str(folder)!r} hold no rows")
        self.shards = [self.shards[k] for k in kept]
        self.piece_rows = tuple(rows[k] for k in kept)
        self.piece_files = tuple(range(len(self.shards)))  # a shard is a file (a pair)
        self.file_names = tuple(x_path.name for x_path, _ in self.shards)
        self.n_features, self.y_shape = widths[0], tails[0]
        self.target_kind = (
            "floating" if kinds & {"f"} else "boolean" if kinds == {"b"} else "integer"
        )

    def column_name(self, j: int) -> str:
        return str(j)

    def read(self, pieces, *, features: bool, rows: int) -> Iterator[Part]:
        for piece in range(len(self.shards)) if pieces is None else pieces:
            x_path, y_path = self.shards[piece]
            X = _open_npy(x_path) if features else None
            y = _open_npy(y_path)
            where = f"shard {x_path.name} / {y_path.name}"
            for start in range(0, len(y), rows):
                part_X = None if X is None else X[start : start + rows]
                yield Part(piece, part_X, y[start : start + rows], where, start)
            del X, y  # unmap the shard


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"cannot read {str(path)!r} as a .npy array: {error}") from None


class IterableReader:
    """The ``(X, y)`` chunks of an iterable, each one piece, in the iterable's order."""

    kind = "iterable"
    piece_rows = None

    def __init__(self, source):
        if callable(source):
            self._fresh, self.one_shot = source, False
        else:
            try:
                iterator = iter(source)
            except TypeError:
                raise DescendTypeError(
                    "source must be a path, an iterable of (X, y) chunks or a function "
                    f"returning one, got {type(source).__name__}"
                ) from None
            self.one_shot = iterator is source
            self._fresh = (lambda: iter(source)) if not self.one_shot else None
            self._iterator = iterator if self.one_shot else None
        self._peeked: list = []
        self.n_features = self.y_shape = None

    def column_name(self, j: int) -> str:
        return str(j)

    def _open(self) -> Iterator:
        if not self.one_shot:
            iterator = self._fresh()
            try:
                return iter(iterator)
            except TypeError:
                raise DescendTypeError(
                    "the stream's function must return an iterator of (X, y) chunks, got "
                    f"{type(iterator).__name__}"
                ) from None
        if self._iterator is None:
            raise InputError(
                "the one-shot iterator of this stream has been read already; pass a list of "
                "chunks or a function returning a fresh iterator to train more than once"
            )
        iterator, self._iterator = self._iterator, None
        return _chain(self._peeked, iterator)

    def peek(self) -> None:
        """Read the first chunk of a one-shot iterator, to learn the shapes."""
        if self.one_shot and not self._peeked and self._iterator is not None:
            first = next(self._iterator, None)
            if first is None:
                raise DataError("the iterable yields no chunks")
            self._peeked.append(first)
            check_part(self._part(0, first), self)

    def _part(self, index: int, item) -> Part:
        where = f"chunk {index} of the iterable"
        try:
            X, y = item
        except (TypeError, ValueError):
            raise DataError(
                f"{where} is not a pair (X, y) of arrays, got {type(item).__name__}; to stream "
                "arrays held in memory pass [(X, y)]"
            ) from None
        try:
            X = feature_matrix(X)
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
        return Part(index, X, np.asarray(y), where, 0)

    def read(self, pieces: Iterable[int] | None, *, features: bool, rows: int) -> Iterator[Part]:
        count = 0
        for index, item in enumerate(self._open()):
            part = self._part(index, item)
            assert part.X is not None  # _part reads the features of every chunk
            for start in range(0, len(part.y), rows):
                yield Part(
                    index,
                    part.X[start : start + rows],
                    part.y[start : start + rows],
                    part.where,
                    start,
                )
            count += 1
        if count == 0:
            raise DataError("the iterable yields no chunks")


class Share:
    """Some pieces of another reader, the last one maybe cut short: a shard of a stream.

    ``pieces`` are the other reader's piece numbers, read in this order and numbered
    ``0 ..`` here; ``rows`` how many of each piece's first rows are kept.
    """

    one_shot = False

    def __init__(
        self, reader: _ParquetReader | _NpyReader | Share, pieces: Sequence[int],
        rows: Sequence[int],
    ):  # fmt: skip
        self._reader, self._pieces = reader, tuple(pieces)
        self.piece_rows = tuple(int(count) for count in rows)
        self.kind: str = reader.kind
        self.n_features: int | None = reader.n_features
        self.y_shape: tuple[int, ...] | None = reader.y_shape
        self.file_names: tuple[str, ...] = reader.file_names
        self.piece_files: tuple[int, ...] = tuple(reader.piece_files[p] for p in self._pieces)
        # A Parquet source's columns, by name (None for .npy shards).
        self.features = getattr(reader, "features", None)
        self.target = getattr(reader, "target", None)
        self.target_kind: str | None = getattr(reader, "target_kind", None)

    def column_name(self, j: int) -> str:
        return self._reader.column_name(j)

    def read(self, pieces, *, features: bool, rows: int) -> Iterator[Part]:
        for local in range(len(self._pieces)) if pieces is None else pieces:
            keep = self.piece_rows[local]
            parts = self._reader.read([self._pieces[local]], features=features, rows=rows)
            try:
                for part in parts:
                    if part.offset >= keep:
                        break
                    cut = keep - part.offset
                    X = None if part.X is None else part.X[:cut]
                    yield Part(local, X, part.y[:cut], part.where, part.offset)
            finally:  # the other reader's file is closed where the piece is cut
                close = getattr(parts, "close", None)
                if close is not None:
                    close()


# What path_reader and IterableReader make; check_part and the others take any of them.
Reader = _ParquetReader | _NpyReader | IterableReader | Share


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    first.clear()
    yield from rest


def check_part(part: Part, reader: Reader) -> None:
    """Shapes and kinds of a part, against the first part seen (or the metadata)."""
    if part.X is not None:
        if part.X.dtype.kind not in "biuf":
            raise DataError(
                f"X of {part.where} holds {part.X.dtype} values; features must be numbers"
            )
        if reader.n_features is None:
            reader.n_features = part.X.shape[1]
        elif part.X.shape[1] != reader.n_features:
            raise DataError(
                f"mixed shapes: {part.where} has {part.X.shape[1]} features, the data before it "
                f"{reader.n_features}; every chunk needs the same features"
            )
        if len(part.X) != len(part.y):
            raise DataError(f"{part.where} has {len(part.X)} rows of X but {len(part.y)} targets")
    if part.y.dtype.kind not in "biuf":
        raise DataError(
            f"the target of {part.where} holds {part.y.dtype} values; targets and labels of a "
            "stream must be numbers: encode labels as numbers (e.g. the index of each label "
            "in the sorted label set) before streaming, or load data that fits in memory "
            "with fit(model, X, y)"
        )
    if part.y.ndim not in (1, 2):
        raise DataError(
            f"y of {part.where} must be (rows,) or (rows, n_outputs), got {part.y.shape}"
        )
    if reader.y_shape is None:
        reader.y_shape = part.y.shape[1:]
    elif part.y.shape[1:] != reader.y_shape:
        raise DataError(
            f"mixed shapes: the targets of {part.where} have shape {part.y.shape[1:]} per row, "
            f"those before it {reader.y_shape}"
        )


def finite_rows(values: np.ndarray, part: Part, name: str, reader: Reader) -> np.ndarray:
    """``values``, or a DataError naming the first row (and column) that is not finite."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values.reshape(len(values), -1)))[0]
        column = f", column {reader.column_name(bad[1])}" if name == "X" else ""
        raise DataError(
            f"{name} of {part.where} has a missing or infinite value at row "
            f"{part.offset + bad[0]}{column}; a stream needs finite data (nan_policy works on "
            "data in memory): clean the source first"
        )
    return values


def rechunk(parts: Iterator[Part], rows: int, dtype: np.dtype, reader: Reader) -> Iterator[tuple]:
    """Copy parts of any size into chunks ``(X, y)`` of exactly ``rows`` rows (the last
    fewer), ``X`` in ``dtype``; non-finite values are an error naming their part.

    Each part is copied into the chunk's buffer as it arrives, so besides the chunk only
    one part is held.
    """
    X = None
    for part in parts:
        assert part.X is not None  # the parts of training read the features
        finite_rows(part.X, part, "X", reader)
        finite_rows(part.y, part, "target", reader)
        start = 0
        while start < len(part.y):
            if X is None:
                X, targets, count = np.empty((rows, part.X.shape[1]), dtype), [], 0
            take = min(rows - count, len(part.y) - start)
            X[count : count + take] = part.X[start : start + take]
            targets.append(part.y[start : start + take])
            count, start = count + take, start + take
            if count == rows:
                yield X, np.concatenate(targets)
                X = None
    if X is not None:
        yield X[:count].copy(), np.concatenate(targets)


class Prefetch:
    """Iterate ``items`` in a background thread, at most one item ahead of the consumer.

    The thread stops at the end, on an error (raised again in the consumer) and when
    :meth:`close` is called (by the consumer's ``finally`` or ``with``), so none outlives
    the loop that reads it.
    """

    def __init__(self, items: Iterator, depth: int = 1):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(items,), name="descend-stream-reader", daemon=True
        )
        self._thread.start()

    def _run(self, items: Iterator) -> None:
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(("error", error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, message) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            try:
                kind, value = self._queue.get(timeout=0.05)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return  # closed
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # free a thread blocked on a full queue
                self._queue.get_nowait()
            self._thread.join(timeout=0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
