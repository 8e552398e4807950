"""Data larger than memory: a :class:`Stream` reads the training rows chunk by chunk.

``fit(model, ds.data.stream(source))`` trains with the same compiled epoch program as
data in memory, one chunk of ``chunk_rows`` rows at a time, while a background thread
reads the next chunk. Memory holds a few chunks, whatever the size of the data.

Sources
-------
Parquet
    A ``.parquet`` / ``.pq`` file, or a folder of them (searched recursively, read in
    the order of their paths; names starting with ``_`` or ``.`` are skipped). Every
    file has the same columns; the features and the target are numeric columns. Each
    row group is one *piece*.
Folder of ``.npy`` shards
    Pairs ``X_<k>.npy`` (2-D, ``(rows, n_features)``) and ``y_<k>.npy`` (``(rows,)`` or
    ``(rows, n_outputs)``) of the same number of rows, ``<k>`` a number (``X_000.npy``,
    ``X_001.npy``, ... read in the order of ``k``). Each pair is one piece, memory-mapped
    while it is read.
An iterable of ``(X, y)`` chunks
    A re-iterable (a list, a tuple, any object whose ``iter()`` starts afresh) or a
    function of no arguments returning a fresh iterator; it must give the same rows
    each time. A one-shot iterator (a generator) is read once: ``epochs=1`` only, for a
    regression without ``standardize`` (a classifier's classes and the standardization
    need a first pass over the data). Each chunk it yields is one piece.

Order
-----
The rows are numbered in the source's own order (above). In epoch ``e`` with
``shuffle=True`` the pieces of a Parquet or ``.npy`` source are taken in the order of a
permutation drawn from ``(seed, e)``; an iterable is read in its own order. The rows of
the pieces, one after another, are cut into chunks of ``chunk_rows`` rows (rounded down
to a multiple of ``batch_size * accumulate``, so that batches never straddle two
chunks); the rows of chunk ``k`` are permuted by
``descend.data.shuffle.epoch_order(chunk_seed(seed, k), e, rows)`` (``chunk_seed(seed, 0) =
seed``, so data that fits in one chunk is shuffled as in memory). Rows move between
batches only within a chunk: the shuffle is local, so a source sorted by the target
should be shuffled once when it is written. :meth:`Stream.row_order` returns the order.

Statistics
----------
Before training, one pass reads what ``fit`` needs to know first: the number of rows,
the target's mean and total sum of squares (for R²), the label set of a classifier
(labels must be numbers; they are coded by their sorted set, as in memory) and, for
``standardize=True``, each feature's mean and variance (merged chunk by chunk in
float64, Chan, Golub & LeVeque 1979). Only the columns needed are read. The
statistics are kept on the :class:`Stream`, so the next ``fit`` does not read them again.

Several devices and processes
-----------------------------
``fit(model, stream, devices=...)`` splits every batch of every chunk evenly over the
devices, as for data in memory (each device holds a copy of the chunk). In a
multi-process run (:func:`descend.distributed.initialize`) every process passes the same
Parquet or ``.npy`` folder (on a shared file system, or a copy on each machine) and
reads its own files, :meth:`Stream.shard`: process ``p`` of ``P`` reads files ``p``,
``p + P``, ... Every process trains on as many rows: each keeps the first rows of its
files, in path order, as many as the smallest share holds (with a warning naming the
rows left out). ``chunk_rows`` counts one process's rows, and is cut to a multiple of
``batch_size / P * accumulate``; global batch ``t`` of a chunk joins the processes'
local batches ``t`` in process order, each in the order its shard's
:meth:`Stream.row_order` gives for ``batch_size / P``. The statistics (standardization,
classes, the targets' total sum of squares) are those of all processes' rows.

Not supported for streams: ``sample_weight``, ``validation_split`` (give
``validation=(X_val, y_val)`` in memory), ``nan_policy`` other than ``"raise"`` (rows
with missing values are an error naming the file and row), batch gradient descent
(``batch_size=None``: one batch cannot exceed a chunk) and text columns.

>>> import numpy as np, descend as ds
>>> rng = np.random.default_rng(0)
>>> chunks = [(X, X @ np.array([1.0, -2.0]) + 0.5) for X in rng.normal(size=(4, 250, 2))]
>>> stream = ds.data.stream(chunks, chunk_rows=256)
>>> result = ds.fit("linear", stream, optimizer="sgd", lr=0.1, epochs=20, verbose=0,
...                 standardize=False, l2=0.0)  # the weights in the data's own units
>>> stream.n_samples, np.round(result.params["w"], 2).tolist()
(1000, [1.0, -2.0])
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from descend.data.encoding import float_dtype
from descend.data.moments import Moments
from descend.data.readers import (
    PART_ROWS,
    IterableReader,
    Part,
    Prefetch,
    Reader,
    Share,
    check_part,
    finite_rows,
    path_reader,
)
from descend.data.shuffle import chunk_order, piece_order
from descend.errors import DataError, DescendTypeError, InputError, check_int

__all__ = ["Stream", "stream"]

DEFAULT_CHUNK_ROWS = 65536


def stream(
    source: Any,
    *,
    target: str | None = None,
    features: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dtype: Any = "float32",
) -> Stream:
    """Training data read chunk by chunk, for ``fit(model, stream)``.

    Parameters
    ----------
    source : str, os.PathLike, iterable or callable
        A Parquet file or folder, a folder of ``X_<k>.npy`` / ``y_<k>.npy`` shards, a
        re-iterable of ``(X, y)`` chunks or a function returning a fresh iterator of
        them, or a one-shot iterator (see the module documentation for each layout).
    target, features : optional
        Parquet only: the target column (default: the last) and the feature columns
        (default: every other column).
    chunk_rows : int >= 1, default 65536
        Rows per chunk: the pieces are re-cut into chunks of this many rows (the last
        chunk of an epoch shorter), so at most two epoch programs are compiled. Memory
        holds about four chunks.
    dtype : "float32" or "float64", default "float32"
        The dtype the features (and a regression target) are read as; ``fit`` trains in
        it (pass the same ``dtype`` to ``fit``).

    Returns
    -------
    Stream
        Metadata is read and checked now (files, columns, shard shapes); the rows are
        read by ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> chunks = [(np.ones((3, 2)), np.zeros(3)), (np.ones((2, 2)), np.ones(2))]
    >>> data = stream(chunks, chunk_rows=4)
    >>> data.kind, data.row_order(batch_size=2, shuffle=False).tolist()
    ('iterable', [0, 1, 2, 3, 4])
    """
    chunk_rows = check_int("chunk_rows", chunk_rows, minimum=1)
    dtype = float_dtype(dtype)
    if isinstance(source, Stream):
        raise DescendTypeError("source is already a Stream; pass it to fit directly")
    reader: Reader
    if isinstance(source, (str, os.PathLike)):
        reader = path_reader(Path(source), target, features)
    else:
        if target is not None or features is not None:
            raise InputError(
                "target= and features= name Parquet columns; an iterable yields (X, y) "
                "chunks with the features and the target already apart"
            )
        reader = IterableReader(source)
    return Stream(reader, chunk_rows, dtype)


class Stream:
    """Training rows read chunk by chunk from files or an iterable (see :func:`stream`).

    Attributes
    ----------
    kind : {"parquet", "npy", "iterable"}
    chunk_rows : int
    dtype : numpy.dtype
    n_samples : int or None
        Rows in all (None for an iterable not read yet).
    n_features : int or None
    feature_names : tuple of str or None
        The feature columns of a Parquet source.
    target : str or None
        The target column of a Parquet source.
    target_kind : {"integer", "boolean", "floating"} or None
        The type the files store the target as (None for an iterable): whole numbers may
        be class labels or counts, which a stream cannot tell without reading every row.
    """

    def __init__(self, reader, chunk_rows: int, dtype: np.dtype, process: int | None = None):
        self._reader = reader
        self.chunk_rows = chunk_rows
        self.dtype = dtype
        self._stats: Stats | None = None
        self._process = process  # a shard's index: drawn into its orders (see shard)

    @property
    def kind(self) -> str:
        return self._reader.kind

    @property
    def n_samples(self) -> int | None:
        if self._reader.piece_rows is not None:
            return int(sum(self._reader.piece_rows))
        return None if self._stats is None else self._stats.n_samples

    @property
    def n_features(self) -> int | None:
        return self._reader.n_features

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return getattr(self._reader, "features", None)

    @property
    def target(self) -> str | None:
        return getattr(self._reader, "target", None)

    @property
    def target_kind(self) -> str | None:
        return getattr(self._reader, "target_kind", None)

    def __repr__(self) -> str:
        return (
            f"Stream(kind={self.kind!r}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, chunk_rows={self.chunk_rows}, dtype='{self.dtype}')"
        )

    def row_order(
        self,
        seed: int = 0,
        epoch: int = 0,
        *,
        batch_size: int = 32,
        accumulate: int = 1,
        shuffle: bool = True,
    ) -> np.ndarray:
        """The rows in the order ``fit(model, self, ...)`` trains on them in ``epoch``.

        Rows are numbered in the source's own order; ``epoch`` counts from 0, and the
        other arguments are those given to ``fit``. An iterable is read once to count
        its rows (unless already read).

        Examples
        --------
        >>> import numpy as np
        >>> data = stream([(np.zeros((2, 1)), np.zeros(2))] * 3, chunk_rows=4)
        >>> sorted(data.row_order(seed=1, batch_size=2).tolist())
        [0, 1, 2, 3, 4, 5]
        """
        seed = check_int("seed", seed, minimum=0)
        epoch = check_int("epoch", epoch, minimum=0)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        group = batch_size * check_int("accumulate", accumulate, minimum=1)
        rows = rows_per_chunk(self.chunk_rows, group, batch_size)
        piece_rows = (
            self._reader.piece_rows or self._statistics(labels=False, features=False).piece_rows
        )
        offsets = np.concatenate([[0], np.cumsum(piece_rows, dtype=np.int64)])
        pieces: Iterable[int] | None = self._piece_order(seed, epoch, shuffle)
        pieces = range(len(piece_rows)) if pieces is None else pieces
        order = np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in pieces])
        for index, start in enumerate(range(0, len(order), rows)):
            block = order[start : start + rows]
            if shuffle and batch_size < len(block):
                shuffled = chunk_order(seed, epoch, index, len(block), process=self._process)
                order[start : start + rows] = block[shuffled]
        return order

    def shard(self, num_shards: int, index: int) -> Stream:
        """The files that shard ``index`` of ``num_shards`` reads: a process's share.

        The files holding rows are dealt out in path order: shard ``index`` reads files
        ``index``, ``index + num_shards``, ``index + 2 * num_shards``, ... (a Parquet file
        with all its row groups, a pair of ``.npy`` shards), as ``fit`` splits a stream
        over the processes of a multi-process run (process ``index`` of ``num_shards``).
        The shard's piece and row orders (:meth:`row_order`) are drawn with ``index``
        too, so that shards shuffle apart from one another. One shard of one is the
        stream itself. (``shard(num_shards, index)`` as in ``tf.data`` and Hugging Face
        ``datasets``, by whole files.)

        Raises
        ------
        InputError
            ``num_shards`` below 1 or ``index`` outside ``[0, num_shards - 1]``; an
            iterable source (it has no files: each process streams its own rows); fewer
            files holding rows than ``num_shards``.

        Examples
        --------
        >>> import numpy as np, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for k in range(3):
        ...     np.save(folder / f"X_{k:03d}.npy", np.zeros((10 * (k + 1), 2)))
        ...     np.save(folder / f"y_{k:03d}.npy", np.zeros(10 * (k + 1)))
        >>> data = stream(folder)
        >>> data.shard(2, 0).n_samples, data.shard(2, 1).n_samples  # files 0 and 2; file 1
        (40, 20)
        """
        num_shards = check_int("num_shards", num_shards, minimum=1)
        index = check_int("index", index, minimum=0)
        if index >= num_shards:
            raise InputError(
                f"index must be in [0, num_shards - 1] = [0, {num_shards - 1}], got {index}"
            )
        if num_shards == 1:
            return self
        reader = self._reader
        if reader.kind == "iterable":
            raise InputError(
                "an iterable stream has no files to split among processes; write the chunks "
                "as Parquet files or .npy shards (at least one per process), or give each "
                "process its own rows in memory: fit(model, X_local, y_local)"
            )
        files = sorted(set(reader.piece_files))
        if len(files) < num_shards:
            raise InputError(
                f"the {reader.kind} source holds {len(files)} file(s) with rows, fewer than "
                f"the {num_shards} shards (processes) that each read whole files; write the "
                f"data as at least {num_shards} files (of about equal rows), e.g. one per process"
            )
        mine = set(files[index::num_shards])
        pieces = [p for p, file in enumerate(reader.piece_files) if file in mine]
        rows = [reader.piece_rows[p] for p in pieces]
        return Stream(Share(reader, pieces, rows), self.chunk_rows, self.dtype, process=index)

    # ------------------------------------------------------------------ internals

    def _first(self, n_rows: int) -> Stream:
        """The stream of its first ``n_rows`` rows, in the source's own order (files only)."""
        piece_rows = self._reader.piece_rows
        pieces, rows, left = [], [], n_rows
        for piece, count in enumerate(piece_rows):
            if left <= 0:
                break
            pieces.append(piece)
            rows.append(min(count, left))
            left -= count
        share = Share(self._reader, pieces, rows)
        return Stream(share, self.chunk_rows, self.dtype, process=self._process)

    def _piece_order(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray | None:
        """This epoch's order of the pieces (None: an iterable, read in its own order)."""
        if self._reader.piece_rows is None:
            return None
        n_pieces = len(self._reader.piece_rows)
        if not shuffle:
            return np.arange(n_pieces)
        return piece_order(seed, epoch, n_pieces, process=self._process)

    def _read(self, pieces, *, features: bool) -> Iterator[Part]:
        """Parts of the pieces (bounded in size), checked but not yet converted."""
        rows = min(self.chunk_rows, PART_ROWS)
        for part in self._reader.read(pieces, features=features, rows=rows):
            check_part(part, self._reader)
            yield part

    def _statistics(self, *, labels: bool, features: bool) -> Stats:
        """The first pass over the data (only what is not known yet), cached."""
        cached = self._stats
        if (
            cached is not None
            and (cached.labels is not None or not labels)
            and (cached.features is not None or not features)
        ):
            return cached
        if self._reader.one_shot:
            raise InputError(
                "training needs a first pass over the data (to count rows, find classes "
                "or standardize), and a one-shot iterator can be read only once; pass a "
                "list of chunks or a function returning a fresh iterator"
            )
        labels = labels or (cached is not None and cached.labels is not None)
        features = features or (cached is not None and cached.features is not None)
        stats = Stats(features=Moments() if features else None)
        label_sets = []
        piece_rows: dict[int, int] = {}
        with Prefetch(self._read(None, features=features)) as parts:
            for part in parts:
                piece_rows[part.piece] = piece_rows.get(part.piece, 0) + len(part.y)
                y = finite_rows(part.y, part, "target", self._reader)
                if labels:
                    label_sets.append(np.unique(y.astype(np.float64)))
                # The target as training reads it: in the stream's dtype.
                stats.target.add(y.reshape(len(y), -1).astype(self.dtype))
                if stats.features is not None:  # features were asked for
                    X = finite_rows(part.X, part, "X", self._reader)
                    stats.features.add(X.astype(self.dtype, copy=False))
        if stats.target.n == 0:
            raise DataError(f"the {self.kind} source holds no rows")
        stats.n_samples = int(stats.target.n)  # rows: a stream has no sample weights
        stats.piece_rows = tuple(piece_rows[p] for p in sorted(piece_rows))
        stats.labels = np.unique(np.concatenate(label_sets)) if labels else None
        self._stats = stats
        return stats


def rows_per_chunk(chunk_rows: int, group: int, batch_size: int, processes: int = 1) -> int:
    """``chunk_rows`` rounded down to whole groups of ``batch_size * accumulate`` rows;
    with several ``processes``, to whole shares of a group (``chunk_rows`` counting one
    process's rows, ``group`` and ``batch_size`` all processes')."""
    share = group // processes
    if share > chunk_rows:
        each = "" if processes == 1 else f", split over {processes} processes"
        raise InputError(
            f"a batch group of {group} rows (batch_size={batch_size} times accumulate{each}) "
            f"does not fit in a chunk of chunk_rows={chunk_rows}; a stream trains on "
            f"mini-batches of one chunk (batch_size=None, batch gradient descent, is not "
            f"available): use a smaller batch_size or ds.data.stream(..., "
            f"chunk_rows={share}) or more"
        )
    return chunk_rows - chunk_rows % share


# ----------------------------------------------------------------------- statistics


@dataclass
class Stats:
    features: Moments | None
    target: Moments = dataclasses.field(default_factory=Moments)
    n_samples: int = 0
    piece_rows: tuple = ()
    labels: np.ndarray | None = None
