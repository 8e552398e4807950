"""A stream prepared for :func:`descend.fit`: classes, standardizer and validation from
the first pass, and the chunk source the epoch loop reads (a
:class:`~descend.training.sources.ChunkSource`), with its reading thread; on several
devices each chunk is split over them as data in memory is, and with several processes
each reads its own share of the files (:func:`process_share`)."""

from __future__ import annotations

import dataclasses
import sys
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from descend.data.arrays import Standardizer
from descend.data.encoding import Encoding, class_set
from descend.data.moments import Moments
from descend.data.readers import Prefetch, rechunk
from descend.data.shuffle import chunk_order
from descend.data.streams import Stats, Stream, rows_per_chunk
from descend.distributed import Placement
from descend.engine import EpochConfig
from descend.errors import DataError, DescendWarning, InputError
from descend.training.prepare import (
    Prepared,
    check_same_features,
    scale_targets,
    validation_arrays,
)
from descend.training.spec import FitSpec


def process_share(placement: Placement, stream: Stream, validation: Any) -> Stream:
    """This process's share of ``stream`` in a multi-process run: its files
    (:meth:`Stream.shard`), cut to the rows of the smallest share, with a warning.

    Every process passes the same source: the processes agree on its files, their rows,
    columns and shapes, ``chunk_rows``, the dtype, and on having validation data or not,
    before any of them reads a row.
    """
    reader = stream._reader
    signature = (
        reader.kind, getattr(reader, "file_names", None), reader.piece_rows,
        stream.feature_names, stream.target,
    )  # fmt: skip
    fields = {
        "files (checksum of their names, rows and columns)": zlib.crc32(repr(signature).encode()),
        "chunk_rows": stream.chunk_rows,
        "dtype (bytes)": stream.dtype.itemsize,
        "validation data": validation is not None,
    }
    table = placement.agree(list(fields.values()))
    for column, name in enumerate(fields):
        if len(set(table[:, column])) > 1:
            values = ", ".join(
                f"process {p}: {value:g}" for p, value in enumerate(table[:, column])
            )
            raise DataError(
                f"the processes' streams differ in {name} ({values}); every process passes "
                "the same source (the same folder, with the same target=, features=, "
                "chunk_rows= and dtype=) and fit gives each process its own files"
            )
    n_processes, process = placement.n_processes, placement.process
    share = stream.shard(n_processes, process)  # the same error on every process
    counts = [stream.shard(n_processes, p).n_samples or 0 for p in range(n_processes)]
    smallest = min(counts)
    if counts[process] > smallest:
        warnings.warn(
            f"this process (process {process}) reads {counts[process]} rows from its files "
            f"and the smallest share {smallest} (rows per process: {counts}, process p "
            f"reading files p, p + {n_processes}, ...); every process trains on the first "
            f"{smallest} rows of its files, in path order; files of equal rows, as many for "
            "every process, leave none out",
            DescendWarning,
            stacklevel=4,
        )
        share = share._first(smallest)
    return share


def prepare_stream(spec: FitSpec, stream: Stream, validation: Any) -> Prepared:
    """The :class:`Prepared` of a stream: statistics, classes, standardizer, validation.

    The options a stream cannot take were refused by :class:`FitSpec` already. With
    several processes, ``stream`` is this process's share (:func:`process_share`) and the
    statistics are those of all processes' rows.
    """
    model, dtype, previous, standardize = spec.model, spec.dtype, spec.resumed, spec.standardize
    task = model.task
    classes = previous.classes if previous is not None else None
    standardizer = previous.standardizer if previous is not None else None
    need_labels = task != "regression" and classes is None
    need_features = bool(standardize) and standardizer is None
    reader = stream._reader
    stats = None
    if reader.one_shot:
        if need_labels or need_features:
            plain = "" if need_labels else ", or standardize=False"
            raise InputError(
                "a one-shot iterator is read once, and a classifier's classes or "
                "standardize=True need a first pass over the data; pass a list of chunks or "
                f"a function returning a fresh iterator{plain}"
            )
        reader.peek()
    else:
        stats = stream._statistics(labels=need_labels, features=need_features)
        if spec.placement is not None and spec.placement.n_processes > 1:
            stats = _merged(spec.placement, stats)
    if need_labels:
        # A one-shot iterator needing a first pass was refused above: stats were read.
        assert stats is not None and stats.labels is not None
        classes = class_set(
            stats.labels, task, subject="the stream's target", fix="use a multiclass model "
            "(e.g. 'softmax')",
        )  # fmt: skip
    if need_features:
        assert stats is not None and stats.features is not None  # as for the labels
        standardizer = stats.features.standardizer()
    if task != "regression" and reader.y_shape not in ((), (1,)):
        raise DataError(f"y must be 1-D labels for a {task} model, got {reader.y_shape} per row")
    X_val = y_val = None
    if validation is not None:
        X_val, y_val = validation_arrays(
            validation, model, classes, reader.n_features, dtype, "raise"
        )
        if standardizer is not None:
            X_val = np.asarray(standardizer.transform(X_val), dtype=dtype)
        if task == "binary":
            y_val = y_val.astype(dtype)
    if task == "multiclass":
        assert classes is not None  # the resumed run's, or found by the first pass
        n_outputs = len(classes)
    else:
        n_outputs = 1 if task == "binary" or reader.y_shape == () else reader.y_shape[0]
    encoding = None
    if reader.kind == "parquet":
        encoding = Encoding(reader.features, {}, reader.target, None)
    if previous is not None:
        check_same_features(previous, encoding, reader.n_features)
    target_standardizer = None
    if task == "regression":
        if spec.start is not None:  # a continued run keeps the targets' scale it trained on
            target_standardizer = spec.start.target_standardizer
        elif standardize:  # the first pass measured the targets too
            assert stats is not None  # a one-shot iterator cannot standardize (refused above)
            target_standardizer = stats.target.standardizer()
    plan = StreamPlan(stream, task, classes, standardizer, stats, target_standardizer)
    # X and y None: a stream's rows are read chunk by chunk (Prepared.stream).
    prepared = Prepared(
        None, None, None, X_val, y_val, classes, standardizer, encoding, n_outputs, stream=plan  # type: ignore[arg-type]
    )  # fmt: skip
    return scale_targets(prepared, target_standardizer)


def _merged(placement: Placement, stats: Stats) -> Stats:
    """The statistics of every process's rows, from each process's own."""
    features = None if stats.features is None else placement.merged(stats.features)
    labels = None if stats.labels is None else placement.union(stats.labels)
    n_samples = int(placement.agree([stats.n_samples])[:, 0].sum())
    target = placement.merged(stats.target)
    return Stats(features, target, n_samples, stats.piece_rows, labels)


@dataclass
class StreamPlan:
    """A stream prepared for one ``fit``: what a chunk becomes before training."""

    stream: Stream
    task: str
    classes: np.ndarray | None
    standardizer: Standardizer | None
    stats: Stats | None  # None for a one-shot iterator (counted while training); all
    # processes' rows with several
    target_standardizer: Standardizer | None = None  # a regression's targets, standardized

    @property
    def n_samples(self) -> int:
        """Rows of this process (a one-shot iterator counts them while training: a large
        bound)."""
        count = self.stream.n_samples
        return sys.maxsize if count is None else count

    @property
    def n_features(self) -> int | None:  # None until an iterator's first chunk is read
        return self.stream.n_features

    def source(
        self, config: EpochConfig, *, shuffle: bool, epochs: int,
        placement: Placement | None = None,
    ) -> StreamSource:  # fmt: skip
        """The chunk source for ``fit``'s loop (``epochs``: how many it will run), its
        chunks split over ``placement``'s devices (``config.mesh``) if given."""
        if self.stream._reader.one_shot and epochs > 1:
            raise InputError(
                f"a one-shot iterator (a generator) can be read once, but fit would run "
                f"{epochs} epochs; use epochs=1 (one more when resuming), or pass a list of "
                "chunks or a function returning a fresh iterator"
            )
        processes = 1
        if placement is not None:
            placement.check_batch_size(config.batch_size, config.n_samples)
            processes = placement.n_processes
        group = config.batch_size * config.accumulate
        rows = rows_per_chunk(self.stream.chunk_rows, group, config.batch_size, processes)
        return StreamSource(self, config, bool(shuffle), rows, placement)

    def transform(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A chunk as training sees it: standardized features, targets or class codes.

        ``X`` (a fresh buffer) is standardized in place, as ``Standardizer.transform``
        computes it: ``(X - mean) / scale`` in the dtype of ``X``.
        """
        dtype = self.stream.dtype
        if self.standardizer is not None:
            X -= np.asarray(self.standardizer.mean, dtype)
            X /= np.asarray(self.standardizer.scale, dtype)
        if self.task == "regression":
            y = y.astype(dtype)
            scaler = self.target_standardizer
            if scaler is not None:  # as Standardizer.transform, per output
                y = ((y.reshape(len(y), -1) - np.asarray(scaler.mean, dtype))
                     / np.asarray(scaler.scale, dtype)).reshape(y.shape)  # fmt: skip
            return X, y
        labels = y.reshape(-1).astype(np.float64)
        known = np.asarray(self.classes, dtype=np.float64)
        codes = np.minimum(np.searchsorted(known, labels), len(known) - 1)
        unseen = known[codes] != labels
        if unseen.any():
            raise DataError(
                "the stream has labels not seen in training: "
                f"{np.unique(labels[unseen])[:5].tolist()} "
                f"(training classes: {np.asarray(self.classes).tolist()})"
            )
        return X, codes.astype(dtype if self.task == "binary" else np.int32)


class StreamSource:
    """The chunk source of a stream (a :class:`~descend.training.sources.ChunkSource`).

    ``close()`` ends its reading threads (also on errors and interrupts).
    """

    # Streams take no sample weights (spec.STREAM_REFUSES). Weighted, every chunk would
    # divide by the mean weight of the whole stream (from the first pass's statistics),
    # never by a chunk's: chunks are marked as such in their EpochConfig.
    mean_weight = None

    def __init__(
        self, plan: StreamPlan, config: EpochConfig, shuffle: bool, rows: int,
        placement: Placement | None = None,
    ):  # fmt: skip
        self.plan, self.config, self.shuffle, self.rows = plan, config, shuffle, rows
        self.placement = placement  # the devices (and processes) each chunk is split over
        self._threads: set[Prefetch] = set()
        self._counted: Moments | None = None  # a one-shot iterator's target, as read

    @property
    def n_samples(self) -> float | None:  # a one-shot count is a Moments weight (float)
        if self.plan.stats is None:
            return None if self._counted is None else self._counted.n
        return self.plan.stats.n_samples

    def total_squares(self) -> np.ndarray | None:
        """Per output; None for a one-shot iterator before its pass (the loop asks again)."""
        if self.plan.stats is None:  # counted from the chunks as trained (scaled, if so)
            return None if self._counted is None else self._counted.m2
        m2 = self.plan.stats.target.m2  # the first pass read the targets in their own units
        scaler = self.plan.target_standardizer
        return m2 if scaler is None else m2 / np.asarray(scaler.scale) ** 2

    def chunks(self, seed: int, epoch: int) -> Iterator[tuple[EpochConfig, tuple, Any]]:
        prefetch = Prefetch(self._prepared_chunks(seed, epoch))
        self._threads.add(prefetch)
        try:
            for config, X, y, order in prefetch:
                placement = self.placement
                if placement is None:
                    data = (jnp.asarray(X), jnp.asarray(y))
                else:  # as data in memory: a copy per device, the batches split
                    data = (placement.spread(X), placement.spread(y))
                    local = np.arange(len(X), dtype=np.int32) if order is None else order
                    order = placement.order(config, local, X.dtype)
                del X, y  # the host copy is not kept while the chunk trains
                yield config, data, order
        finally:
            prefetch.close()
            self._threads.discard(prefetch)

    def close(self) -> None:
        for prefetch in list(self._threads):
            prefetch.close()
        self._threads.clear()

    def _prepared_chunks(self, seed: int, epoch: int):
        """(config, X, y, order) of each chunk: read, joined, checked, transformed.

        Runs in the reading thread: NumPy and pyarrow release the GIL while they copy.
        """
        plan, stream = self.plan, self.plan.stream
        processes = 1 if self.placement is None else self.placement.n_processes
        pieces = stream._piece_order(seed, epoch, self.shuffle)
        counted = Moments() if plan.stats is None else None
        reader, read = stream._reader, 0
        parts = stream._read(pieces, features=True)
        for index, (X, y) in enumerate(rechunk(parts, self.rows, stream.dtype, reader)):
            X, y = plan.transform(X, y)
            if counted is not None:
                counted.add(y.reshape(len(y), -1))
            # With several processes the chunk is every process's rows (as many each).
            n_rows = len(X) * processes
            shuffle = self.shuffle and self.config.batch_size < n_rows
            config = dataclasses.replace(self.config, n_samples=n_rows, shuffle=shuffle, chunk=True)
            order = None
            if shuffle:
                order = chunk_order(seed, epoch, index, len(X), process=stream._process)
            read += len(X)
            yield config, X, y, order
        if counted is not None:
            self._counted = counted
        elif read != stream.n_samples:  # this process's rows (plan.stats: all processes')
            raise DataError(
                f"the {stream.kind} source gave {read} rows in epoch {epoch + 1} but "
                f"{stream.n_samples} in its first pass; it must give the same rows each time"
            )
