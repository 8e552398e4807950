"""Streams: data read chunk by chunk trains as the same rows held in memory.

The oracle is ``fit`` on NumPy arrays in memory: without shuffling, a stream's chunks
are consecutive runs of batches, so training on them equals training on the arrays;
with shuffling, a stream trains in the order :meth:`Stream.row_order` gives, and fits
in memory on the rows in that order (``shuffle=False``, one epoch each, resumed) give
the same weights. Statistics are checked against NumPy and ``descend.data.moments.total_squares``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import descend as ds
from descend import engine
from descend.cli import main
from descend.data import Standardizer
from descend.data.moments import total_squares
from descend.errors import DataError, InputError

PIECES = (3000, 5000, 1234, 7000, 3766)  # rows of each row group / shard / chunk
N_FEATURES = 6
BATCH = dict(batch_size=64, optimizer="adam", lr=0.02, verbose=0)
READER = "descend-stream-reader"


def make_data(task="regression", n=None, seed=0):
    n = sum(PIECES) if n is None else n
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, N_FEATURES)) * [1, 3, 0.5, 2, 1, 4] + [1, -2, 0, 5, 0, 1]).astype(
        np.float32
    )
    score = (X - X.mean(0)) / X.std(0) @ rng.normal(size=N_FEATURES)
    if task == "regression":
        y = score + 0.1 * rng.normal(size=n)
    elif task == "binary":
        y = np.where(score + 0.5 * rng.normal(size=n) > 0, 7, 3)
    else:
        y = 2 * np.digitize(score, np.quantile(score, [0.33, 0.66])) + 1  # labels 1, 3, 5
    return X, y.astype(np.float32)


def pieces(X, y, sizes=PIECES):
    bounds = np.cumsum((0, *sizes))
    return [(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]


def write_parquet(folder, X, y, sizes=PIECES):
    """Row groups of ``sizes`` rows, over two files (the first two groups in the first)."""
    folder.mkdir()
    names = [f"f{j}" for j in range(X.shape[1])] + ["target"]
    split = pieces(X, y, sizes)
    for name, group in (("part-0.parquet", split[:2]), ("part-1.parquet", split[2:])):
        with pq.ParquetWriter(folder / name, pa.schema([(n, pa.float32()) for n in names])) as out:
            for X_piece, y_piece in group:
                columns = [pa.array(column) for column in X_piece.T] + [pa.array(y_piece)]
                out.write_table(pa.table(columns, names=names), row_group_size=len(y_piece))
    (folder / "_SUCCESS").write_text("")  # marker files are skipped
    return folder


def write_npy(folder, X, y, sizes=PIECES):
    folder.mkdir()
    for k, (X_piece, y_piece) in enumerate(pieces(X, y, sizes)):
        np.save(folder / f"X_{k:03d}.npy", X_piece)
        np.save(folder / f"y_{k:03d}.npy", y_piece)
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same rows as Parquet, .npy shards, a list and a function of chunks."""
    root = tmp_path_factory.mktemp("streams")
    made = {}
    for task in ("regression", "binary", "multiclass"):
        X, y = make_data(task)
        made[task] = {
            "arrays": (X, y),
            "parquet": write_parquet(root / f"{task}-parquet", X, y),
            "npy": write_npy(root / f"{task}-npy", X, y),
            "iterable": pieces(X, y),
            "callable": lambda X=X, y=y: iter(pieces(X, y)),
        }
    return made


def reader_threads():
    return [thread for thread in threading.enumerate() if thread.name == READER]


def assert_same_training(result, reference, rtol=0.0):
    """The same weights (bit for bit unless ``rtol``, relative to the largest weight: a
    bias near 0 rounds as the weights do) after the same updates; the epoch losses to
    float32 rounding (a stream adds them up chunk by chunk)."""
    assert result.n_updates == reference.n_updates
    scale = max(float(np.max(np.abs(leaf))) for leaf in reference.params.values())
    for key in result.params:
        np.testing.assert_allclose(
            result.params[key], reference.params[key], rtol=rtol, atol=rtol * scale
        )
    np.testing.assert_allclose(result.history["loss"], reference.history["loss"], rtol=1e-6)


def in_memory_in_row_order(model, stream, X, y, *, epochs, seed, **options):
    """fit on arrays in memory, one epoch at a time, on the rows in the stream's order."""
    result = None
    for epoch in range(epochs):
        order = stream.row_order(seed, epoch, batch_size=options["batch_size"])
        if result is None:
            result = ds.fit(model, X[order], y[order], epochs=1, shuffle=False, **options)
        else:
            result = ds.fit(
                None, X[order], y[order], epochs=epoch + 1, shuffle=False, resume=result,
                batch_size=options["batch_size"], verbose=0,
            )  # fmt: skip
    return result


# ------------------------------------------------------------------ same as memory


@pytest.mark.parametrize("kind", ["parquet", "npy", "iterable", "callable"])
@pytest.mark.parametrize("chunk_rows", [4096, 4000])
def test_unshuffled_stream_trains_as_the_arrays_in_memory(sources, kind, chunk_rows):
    # 4000 is not a multiple of the batch size: chunks are cut at 3968 rows, so that
    # no batch straddles two chunks and the updates are those of the arrays in memory.
    # Then chunks and arrays split into loops of different lengths, and the epoch loop
    # runs two updates per iteration (engine.SCAN_UNROLL): an odd last update runs from
    # a separately compiled copy of the step, which may round the last bit differently.
    X, y = sources["regression"]["arrays"]
    stream = ds.data.stream(sources["regression"][kind], chunk_rows=chunk_rows)
    result = ds.fit("linear", stream, epochs=2, shuffle=False, **BATCH)
    reference = ds.fit("linear", X, y, epochs=2, shuffle=False, **BATCH)
    whole_pairs = chunk_rows % (2 * BATCH["batch_size"]) == 0
    assert_same_training(result, reference, rtol=0.0 if whole_pairs else 1e-6)
    np.testing.assert_allclose(result.history["r2"], reference.history["r2"], rtol=1e-6)


@pytest.mark.parametrize(
    "options", [dict(accumulate=3), dict(drop_last=True), dict(accumulate=2, drop_last=True)]
)
def test_accumulation_and_dropped_batches_follow_the_arrays_in_memory(sources, options):
    X, y = sources["regression"]["arrays"]
    stream = ds.data.stream(sources["regression"]["npy"], chunk_rows=1000)
    result = ds.fit("linear", stream, epochs=2, shuffle=False, **BATCH, **options)
    reference = ds.fit("linear", X, y, epochs=2, shuffle=False, **BATCH, **options)
    # Chunks of 1000 rows make loops of other lengths than the arrays': to float
    # rounding, as in test_unshuffled_stream_trains_as_the_arrays_in_memory.
    assert_same_training(result, reference, rtol=1e-6)


def test_two_outputs_and_chosen_columns_stream_as_in_memory(sources, tmp_path):
    X, y = sources["regression"]["arrays"]
    targets = np.c_[y, X[:, 0] - y]
    shards = write_npy(tmp_path / "two", X, targets)
    result = ds.fit("linear", ds.data.stream(shards, chunk_rows=2048), shuffle=False, **BATCH)
    reference = ds.fit("linear", X, targets, shuffle=False, **BATCH)
    assert result.params["w"].shape == (N_FEATURES, 2)
    assert_same_training(result, reference)
    np.testing.assert_allclose(result.history["r2"], reference.history["r2"], rtol=1e-6)
    chosen = ds.data.stream(
        sources["regression"]["parquet"], target="f0", features=["f3", "f1"], chunk_rows=2048
    )
    assert chosen.feature_names == ("f3", "f1") and chosen.n_features == 2
    result = ds.fit("linear", chosen, shuffle=False, **BATCH)
    reference = ds.fit("linear", X[:, [3, 1]], X[:, 0], shuffle=False, **BATCH)
    assert_same_training(result, reference)


@pytest.mark.parametrize("kind", ["parquet", "npy", "iterable"])
def test_shuffled_stream_trains_as_memory_in_its_row_order(sources, kind):
    X, y = sources["regression"]["arrays"]
    stream = ds.data.stream(sources["regression"][kind], chunk_rows=4096)
    result = ds.fit("linear", stream, epochs=3, seed=3, **BATCH)
    reference = in_memory_in_row_order("linear", stream, X, y, epochs=3, seed=3, **BATCH)
    assert_same_training(result, reference)


def test_parquet_and_npy_shards_of_the_same_pieces_train_identically(sources):
    data = sources["multiclass"]
    results = [
        ds.fit("softmax", ds.data.stream(data[kind], chunk_rows=4096), epochs=2, seed=1, **BATCH)
        for kind in ("parquet", "npy")
    ]
    for key in results[0].params:
        np.testing.assert_array_equal(results[0].params[key], results[1].params[key])


def test_data_in_one_chunk_is_shuffled_as_in_memory(sources):
    X, y = sources["regression"]["arrays"]
    stream = ds.data.stream([(X, y)], chunk_rows=2**15)  # one chunk of every row
    result = ds.fit("linear", stream, epochs=2, seed=5, **BATCH)
    reference = ds.fit("linear", X, y, epochs=2, seed=5, **BATCH)
    assert_same_training(result, reference, rtol=0)


@pytest.mark.parametrize(("task", "model"), [("binary", "logistic"), ("multiclass", "softmax")])
def test_stream_classifier_codes_numeric_labels_as_in_memory(sources, task, model):
    X, y = sources[task]["arrays"]
    stream = ds.data.stream(sources[task]["parquet"], chunk_rows=4096)
    result = ds.fit(model, stream, epochs=2, shuffle=False, **BATCH)
    reference = ds.fit(model, X, y, epochs=2, shuffle=False, **BATCH)
    np.testing.assert_array_equal(result.classes, reference.classes)
    assert result.classes.dtype == reference.classes.dtype
    assert_same_training(result, reference)
    np.testing.assert_allclose(result.history["accuracy"], reference.history["accuracy"])
    np.testing.assert_array_equal(result.predict(X), reference.predict(X))


def test_standardization_and_total_squares_match_numpy(sources):
    X, y = sources["regression"]["arrays"]
    X = X.copy()
    X[:, 4] = 2.5  # a constant column is scaled by 1, as Standardizer.fit does
    stream = ds.data.stream(pieces(X, y), chunk_rows=1000)
    result = ds.fit("linear", stream, epochs=1, standardize=True, shuffle=False, **BATCH)
    expected = Standardizer.fit(X)
    np.testing.assert_allclose(result.standardizer.mean, expected.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.standardizer.scale, expected.scale, rtol=1e-12)
    assert result.standardizer.scale[4] == 1.0
    stats = stream._statistics(labels=False, features=False)  # cached by the fit
    np.testing.assert_allclose(stats.target.m2, total_squares(y, None), rtol=1e-10)
    reference = ds.fit("linear", X, y, epochs=1, standardize=True, shuffle=False, **BATCH)
    assert_same_training(result, reference, rtol=1e-5)


def test_validation_in_memory_scores_a_stream_as_the_arrays(sources):
    X, y = sources["binary"]["arrays"]
    X_val, y_val = make_data("binary", n=500, seed=9)
    stream = ds.data.stream(sources["binary"]["npy"], chunk_rows=4096)
    options = dict(epochs=2, shuffle=False, standardize=True, validation=(X_val, y_val), **BATCH)
    result = ds.fit("logistic", stream, **options)
    reference = ds.fit("logistic", X, y, **options)
    np.testing.assert_allclose(result.history["val_loss"], reference.history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(result.history["val_accuracy"], reference.history["val_accuracy"])


def test_one_shot_generator_trains_one_epoch_as_a_list(sources):
    X, y = sources["regression"]["arrays"]
    # Read once: no first pass to standardize, nor a count of rows for l2="auto" (1/n)
    plain = dict(standardize=False, **BATCH)
    reference = ds.fit(
        "linear", ds.data.stream(pieces(X, y), chunk_rows=4096), epochs=1, l2=0.0, **plain
    )
    one_shot = ds.data.stream((chunk for chunk in pieces(X, y)), chunk_rows=4096)
    result = ds.fit("linear", one_shot, epochs=1, **plain)
    assert result.l2 == 0.0 and reference.l2 == 0.0
    assert_same_training(result, reference, rtol=0)
    np.testing.assert_allclose(result.history["r2"], reference.history["r2"], rtol=1e-6)
    assert one_shot.n_samples is None  # counted by the source as it trained, not stored


def test_resumed_stream_continues_as_one_run(sources, tmp_path):
    stream = ds.data.stream(sources["binary"]["parquet"], chunk_rows=4096)
    options = dict(standardize=True, seed=2, **BATCH)
    straight = ds.fit("logistic", stream, epochs=10, **options)
    first = ds.fit("logistic", stream, epochs=5, **options)
    ds.save(tmp_path / "five.descend", first)
    resumed = ds.fit(None, stream, epochs=10, resume=tmp_path / "five.descend", batch_size=64)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])
    np.testing.assert_array_equal(resumed.history["loss"], straight.history["loss"])
    assert resumed.n_updates == straight.n_updates


def test_chunk_programs_compile_once_for_full_chunks_and_once_for_the_last(sources):
    stream = ds.data.stream(sources["regression"]["npy"], chunk_rows=4800)
    before = engine.compiled_epoch.cache_info().misses
    ds.fit("linear", stream, epochs=2, **{**BATCH, "batch_size": 48})  # 4 x 4800 + 800 rows
    assert engine.compiled_epoch.cache_info().misses - before == 2


def test_parquet_stream_predicts_from_files_by_column_name(sources):
    folder = sources["regression"]["parquet"]
    X, _ = sources["regression"]["arrays"]
    result = ds.fit("linear", ds.data.stream(folder), epochs=1, **BATCH)
    first = folder / "part-0.parquet"
    np.testing.assert_allclose(result.predict(first), result.predict(X[:8000]), rtol=1e-6)


# ----------------------------------------------------------------------- the order


def test_piece_order_is_drawn_per_epoch_from_the_seed(sources):
    stream = ds.data.stream(sources["regression"]["parquet"], chunk_rows=4096)
    orders = [stream.row_order(7, epoch, batch_size=64) for epoch in range(3)]
    n = sum(PIECES)
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(orders[1], stream.row_order(7, 1, batch_size=64))
    assert not np.array_equal(orders[0], stream.row_order(8, 0, batch_size=64))
    # The pieces come in another order each epoch: the first chunk holds other rows.
    first_chunks = {tuple(np.sort(order[:4096])[[0, -1]]) for order in orders}
    assert len(first_chunks) > 1
    unshuffled = stream.row_order(7, 0, batch_size=64, shuffle=False)
    np.testing.assert_array_equal(unshuffled, np.arange(n))


def test_an_iterable_is_read_in_its_own_order(sources):
    stream = ds.data.stream(sources["regression"]["iterable"], chunk_rows=4096)
    for epoch in range(3):
        order = stream.row_order(7, epoch, batch_size=64)
        np.testing.assert_array_equal(np.sort(order[:4096]), np.arange(4096))
        assert not np.array_equal(order[:4096], np.arange(4096))  # rows shuffled in a chunk


# --------------------------------------------------------------------- the thread


class Failing:
    """Chunks of ``data``; in pass ``when`` (counting the statistics pass as 0), chunk
    2 raises ``error`` instead."""

    def __init__(self, data, when, error):
        self.data, self.when, self.error, self.passes = data, when, error, 0

    def __call__(self):
        current, self.passes = self.passes, self.passes + 1
        for index, chunk in enumerate(self.data):
            if current == self.when and index == 2:
                raise self.error
            yield chunk


def test_no_reading_thread_outlives_a_fit(sources):
    ds.fit("linear", ds.data.stream(sources["regression"]["parquet"]), epochs=2, **BATCH)
    assert reader_threads() == []


def test_an_error_in_the_source_reaches_the_caller_and_ends_the_thread(sources):
    failing = Failing(sources["regression"]["iterable"], when=2, error=OSError("disk gone"))
    with pytest.raises(OSError, match="disk gone"):
        ds.fit("linear", ds.data.stream(failing, chunk_rows=1024), epochs=3, **BATCH)
    assert reader_threads() == []


def test_an_interrupt_in_the_source_stops_training_after_the_last_whole_epoch(sources):
    failing = Failing(sources["regression"]["iterable"], when=2, error=KeyboardInterrupt())
    result = ds.fit("linear", ds.data.stream(failing, chunk_rows=1024), epochs=3, **BATCH)
    assert result.status == "interrupted" and result.n_epochs == 1
    assert reader_threads() == []


def test_a_failing_callback_or_divergence_mid_stream_ends_the_thread(sources):
    stream = ds.data.stream(sources["regression"]["npy"], chunk_rows=1024)

    def fails(epoch, history):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        ds.fit("linear", stream, epochs=3, callbacks=[fails], **BATCH)
    assert reader_threads() == []
    diverged = ds.fit("linear", stream, epochs=3, **{**BATCH, "optimizer": "sgd", "lr": 1e6})
    assert diverged.status == "diverged"  # stopped in the first chunks of epoch 1
    assert reader_threads() == []


# ------------------------------------------------------------------------- errors


def test_missing_or_unreadable_sources_are_named(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        ds.data.stream(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Parquet files"):
        ds.data.stream(tmp_path / "empty")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a Parquet file"):
        ds.data.stream(tmp_path / "data.csv")
    with pytest.raises(TypeError, match="iterable of"):
        ds.data.stream(42)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"cannot read .*broken\.parquet.* as Parquet"):
        ds.data.stream(tmp_path / "broken.parquet")


def test_npy_shards_of_mixed_shapes_are_refused(tmp_path):
    X, y = make_data(n=300)
    folder = write_npy(tmp_path / "shards", X, y, sizes=(100, 100, 100))
    np.save(folder / "X_002.npy", X[:100, :4])
    with pytest.raises(DataError, match=r"mixed shapes: X_002\.npy has 4 features"):
        ds.data.stream(folder)
    (folder / "X_002.npy").unlink()
    with pytest.raises(DataError, match=r"y_002\.npy has no X_002\.npy"):
        ds.data.stream(folder)


def test_iterable_chunks_of_mixed_shapes_are_refused():
    X, y = make_data(n=300)
    chunks = [(X[:100], y[:100]), (X[100:200, :4], y[100:200])]
    with pytest.raises(DataError, match="mixed shapes: chunk 1 of the iterable has 4 features"):
        ds.fit("linear", ds.data.stream(chunks), **BATCH)


def test_text_labels_in_a_stream_are_refused(tmp_path):
    X, _ = make_data(n=100)
    labels = np.where(X[:, 0] > 1, "yes", "no")
    with pytest.raises(DataError, match="must be numbers"):
        ds.fit("logistic", ds.data.stream([(X, labels)]), **BATCH)
    pq.write_table(pa.table({"x": X[:, 0], "label": labels}), tmp_path / "text.parquet")
    with pytest.raises(DataError, match=r"column 'label' .* must be numbers"):
        ds.data.stream(tmp_path / "text.parquet")


def test_one_shot_generator_is_refused_for_more_than_one_epoch_or_a_first_pass():
    X, y = make_data(n=300)
    with pytest.raises(InputError, match=r"one-shot iterator .* can be read once"):
        stream = ds.data.stream(iter(pieces(X, y, (300,))))
        ds.fit("linear", stream, epochs=2, standardize=False, **BATCH)
    with pytest.raises(
        InputError, match=r"classifier's classes or standardize.*, or standardize=False$"
    ):
        ds.fit("linear", ds.data.stream(iter([(X, y)])), epochs=1, **BATCH)


def test_missing_values_are_named_by_file_row_group_row_and_column(tmp_path):
    X, y = make_data(n=600)
    X[450, 3] = np.nan
    folder = write_parquet(tmp_path / "holes", X, y, sizes=(200, 200, 200))
    with pytest.raises(DataError, match=r"row group 0 of .*part-1.parquet.* row 50, column 'f3'"):
        ds.fit("linear", ds.data.stream(folder), **BATCH)
    assert reader_threads() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(validation_split=0.2), r"validation=\(X_val, y_val\)"),
        (dict(sample_weight=np.ones(300)), "sample weights are not supported"),
        (dict(nan_policy="drop"), "needs finite data"),
        (dict(batch_size=None), "batch gradient descent"),
        (dict(batch_size=288), "chunk_rows=256"),
        (dict(dtype="float64"), "the stream reads float32"),
        (dict(target="y"), "name the target in ds.data.stream"),
    ],
)
def test_options_streams_do_not_take_are_refused_with_the_alternative(options, message):
    X, y = make_data(n=300)
    stream = ds.data.stream([(X, y)], chunk_rows=256)
    with pytest.raises(InputError, match=message):
        ds.fit("linear", stream, **{**BATCH, **options})


def test_y_and_parquet_column_mistakes_are_refused(sources, tmp_path):
    stream = ds.data.stream(sources["regression"]["iterable"])
    with pytest.raises(InputError, match="carries its own targets"):
        ds.fit("linear", stream, np.zeros(3), **BATCH)
    folder = sources["regression"]["parquet"]
    with pytest.raises(DataError, match="column 'price' is not in"):
        ds.data.stream(folder, target="price")
    with pytest.raises(DataError, match=r"^target column 'targt' .*; did you mean 'target'\?"):
        ds.data.stream(folder, target="targt")
    with pytest.raises(DataError, match=r"^feature column 'f_2' .*; did you mean 'f2'\?"):
        ds.data.stream(folder, features=["f1", "f_2"])
    other = tmp_path / "other"
    other.mkdir()
    for k, names in enumerate((["a", "b"], ["a", "c"])):
        pq.write_table(pa.table({n: np.ones(3) for n in names}), other / f"{k}.parquet")
    with pytest.raises(DataError, match="differ in their columns"):
        ds.data.stream(other)


# ---------------------------------------------------------------------------- CLI


def test_cli_trains_on_a_parquet_folder_as_a_stream(sources, capsys):
    folder = str(sources["regression"]["parquet"])
    status = main(["train", folder, "--stream", "--chunk-rows", "2048", "--epochs", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["epochs"] == 2 and out["metrics"]["r2"] > 0.5
    assert out["updates"] == 2 * 625  # batches of 32 (2048 rows a chunk), no rows held out
    assert main(["train", "--stream", "--dataset", "iris"]) == 2
    assert "--stream" in capsys.readouterr().err
    # A stream holds no rows out: a split asked for is refused, not silently dropped.
    assert main(["train", folder, "--stream", "--validation-split", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "--validation-split" in err and len(err.strip().splitlines()) == 1
    assert main(["train", folder, "--stream", "--validation-split", "0", "--epochs", "1"]) == 0


def test_cli_stream_of_whole_number_labels_asks_for_the_model_instead_of_guessing(
    sources, tmp_path, capsys
):
    # In memory, a column of a few whole numbers is classes; a stream cannot count its
    # distinct values before training, so --model auto is refused rather than fitting a
    # regression to class labels.
    X, y = sources["binary"]["arrays"]
    folder = tmp_path / "labels"
    folder.mkdir()
    table = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table({**table, "label": (y == 7).astype(np.int64)}), folder / "a.parquet")
    shards = write_npy(tmp_path / "shards", X, (y == 7).astype(np.int64))
    for source in (folder, shards):
        assert main(["train", str(source), "--stream", "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--model logistic" in err and "integer" in err
    assert ds.data.stream(folder).target_kind == "integer"
    assert main(["train", str(folder), "--stream", "--model", "logistic", "--epochs", "2",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["metrics"]["accuracy"] > 0.8
    # A target stored as floats is a regression, and the command says so.
    regression = str(sources["regression"]["parquet"])
    assert ds.data.stream(regression).target_kind == "floating"
    assert main(["train", regression, "--stream", "--epochs", "1"]) == 0
    assert "of the stream holds floating-point numbers: regression" in capsys.readouterr().out


# ----------------------------------------------------- larger than the memory cap

BIG_ROWS, BIG_GROUP, BIG_FEATURES = 5_000_000, 100_000, 100  # 2.0 GB of float32 features
MEMORY_CAP = 1200 * 2**20

# Trains in a process whose data segment (heap and anonymous mappings: where NumPy,
# pyarrow and XLA allocate) is capped by RLIMIT_DATA below the size of the data. The
# cap is RLIMIT_DATA, not RLIMIT_AS: XLA reserves about 1.7 GB of address space at
# start-up, so an address-space cap this low kills the process before it reads a row.
# pyarrow allocates from the system allocator there: its default, mimalloc, reserves
# arenas of 1 GiB of address space that RLIMIT_DATA counts though they are not used.
TRAIN_CAPPED = """
import json, resource, sys
import numpy as np
resource.setrlimit(resource.RLIMIT_DATA, ({cap}, {cap}))
import descend as ds
stream = ds.data.stream(sys.argv[1], chunk_rows={group})
result = ds.fit("linear", stream, epochs=1, batch_size=1000, optimizer="sgd", lr=0.01,
                standardize=True, seed=4, l2=0.0, verbose=0)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
np.savez(sys.argv[2], w=result.params["w"], b=result.params["b"], loss=result.history["loss"],
         mean=result.standardizer.mean, scale=result.standardizer.scale,
         y_mean=result.target_standardizer.mean, y_scale=result.target_standardizer.scale)
print(json.dumps({{"peak_rss_kb": int(status["VmHWM"].split()[0]),
                   "limit": resource.getrlimit(resource.RLIMIT_DATA)[0]}}))
"""


def write_big_parquet(path):
    """Row groups of random features and a linear target, generated group by group."""
    names = [f"f{j}" for j in range(BIG_FEATURES)] + ["target"]
    w = np.random.default_rng(0).normal(size=BIG_FEATURES).astype(np.float32)
    schema = pa.schema([(name, pa.float32()) for name in names])
    with pq.ParquetWriter(
        path, schema, compression="none", use_dictionary=False, write_statistics=False
    ) as out:
        for group in range(BIG_ROWS // BIG_GROUP):
            rng = np.random.default_rng([1, group])
            columns = rng.standard_normal((BIG_FEATURES, BIG_GROUP), dtype=np.float32)
            columns *= np.arange(1, BIG_FEATURES + 1, dtype=np.float32)[:, None] / 10
            target = w @ columns + rng.standard_normal(BIG_GROUP, dtype=np.float32)
            out.write_batch(pa.record_batch([*columns, target], schema=schema))


@pytest.mark.slow
def test_two_gigabyte_parquet_trains_under_a_memory_cap_as_in_memory_chunks(tmp_path):
    path = tmp_path / "big.parquet"
    try:
        write_big_parquet(path)
        assert os.path.getsize(path) > 2e9 > 1.5 * MEMORY_CAP
        script = TRAIN_CAPPED.format(cap=MEMORY_CAP, group=BIG_GROUP)
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), str(path), str(tmp_path / "out.npz")],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "JAX_PLATFORMS": "cpu", "ARROW_DEFAULT_MEMORY_POOL": "system"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        size = path.stat().st_size
        print(f"peak RSS {report['peak_rss_kb'] / 2**10:.0f} MiB for {size / 2**30:.2f} GiB")
        assert report["limit"] == MEMORY_CAP
        assert report["peak_rss_kb"] * 1024 < MEMORY_CAP
        streamed = np.load(tmp_path / "out.npz")

        # The standardization against pyarrow's own mean and variance of each column.
        file = pq.ParquetFile(path)
        for j in (0, 57, BIG_FEATURES - 1):
            column = pq.read_table(path, columns=[f"f{j}"]).column(0)
            assert streamed["mean"][j] == pytest.approx(pc.mean(column).as_py(), abs=1e-4)
            std = np.sqrt(pc.variance(column, ddof=0).as_py())
            assert streamed["scale"][j] == pytest.approx(std, rel=1e-5)

        # In memory, chunk by chunk: each chunk is one row group here (chunk_rows equals
        # the group size), its rows permuted as the stream did, trained with resume.
        stream = ds.data.stream(path, chunk_rows=BIG_GROUP)
        order = stream.row_order(4, 0, batch_size=1000)
        standardizer = Standardizer(streamed["mean"], streamed["scale"])
        result = None
        for start in range(0, BIG_ROWS, BIG_GROUP):
            rows = order[start : start + BIG_GROUP]
            group = int(rows[0] // BIG_GROUP)
            table = file.read_row_group(group)
            X = np.column_stack([table.column(j).to_numpy() for j in range(BIG_FEATURES)])
            X = np.asarray(standardizer.transform(X), dtype=np.float32)[rows - group * BIG_GROUP]
            y = table.column(BIG_FEATURES).to_numpy()[rows - group * BIG_GROUP]
            # the targets standardized as the stream does it, in float32
            y = (y - np.float32(streamed["y_mean"][0])) / np.float32(streamed["y_scale"][0])
            result = ds.fit(
                "linear" if result is None else None, X, y, shuffle=False, batch_size=1000,
                epochs=1 if result is None else result.n_epochs + 1, resume=result,
                optimizer="sgd" if result is None else None, lr=0.01 if result is None else None,
                standardize=False, l2=0.0, patience=None, verbose=0,
            )  # fmt: skip
        np.testing.assert_array_equal(streamed["w"], result.params["w"])
        np.testing.assert_array_equal(streamed["b"], result.params["b"])
        chunk_losses = np.asarray(result.history["loss"])  # per chunk: their mean is the epoch's
        assert streamed["loss"][0] == pytest.approx(chunk_losses.mean(), rel=1e-5)
    finally:
        path.unlink(missing_ok=True)


def test_a_resumed_stream_stops_early_where_the_uninterrupted_one_does(sources, tmp_path):
    """Early stopping's record is saved with the model, streams included."""
    X_val, y_val = make_data("binary", n=500, seed=9)
    X_val = X_val + np.float32(1.5)  # a shifted validation set: its loss soon rises
    stream = ds.data.stream(sources["binary"]["parquet"], chunk_rows=4096)
    options = dict(standardize=True, seed=2, patience=2, validation=(X_val, y_val), **BATCH)
    straight = ds.fit("logistic", stream, epochs=30, **options)
    assert straight.status == "early_stopping"
    first = ds.fit("logistic", stream, epochs=straight.best_epoch + 1, **options)
    ds.save(tmp_path / "first.descend", first)
    resumed = ds.fit("logistic", stream, epochs=30, resume=tmp_path / "first.descend", **options)
    assert (resumed.n_epochs, resumed.best_epoch) == (straight.n_epochs, straight.best_epoch)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])
