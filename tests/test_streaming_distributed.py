"""Streams on several devices and several processes.

The oracles are those of data in memory: a stream on four forced host devices trains
as the same stream on one device (to rounding); two processes, each reading its own
files of one folder, train as one process on the union of their rows laid out in the
global order (each process's shard in :meth:`Stream.row_order`, global batch ``t`` its
processes' local batches ``t`` joined), computed here. Children run as in
``test_distributed.py``: forced devices and ``jax.distributed`` need a fresh JAX.
"""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import descend as ds
from descend.errors import InputError
from test_distributed import _environment, _free_port, _run, _run_together

N_FEATURES = 4


def write_npy(folder: Path, X, y, sizes) -> Path:
    folder.mkdir()
    bounds = np.cumsum((0, *sizes))
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        np.save(folder / f"X_{k:03d}.npy", X[a:b])
        np.save(folder / f"y_{k:03d}.npy", y[a:b])
    return folder


def write_parquet(folder: Path, X, y, sizes, group_rows: int = 128) -> Path:
    """One file per entry of ``sizes``, in row groups of ``group_rows``."""
    folder.mkdir()
    bounds = np.cumsum((0, *sizes))
    names = [f"f{j}" for j in range(X.shape[1])]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        table = pa.table({**{n: X[a:b, j] for j, n in enumerate(names)}, "label": y[a:b]})
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=group_rows)
    return folder


# ------------------------------------------------------------------ one process


def test_shards_deal_out_whole_files_in_path_order(tmp_path):
    sizes = (30, 50, 20, 40, 35)
    X = np.arange(sum(sizes) * 2, dtype=np.float64).reshape(-1, 2)
    y = np.arange(sum(sizes), dtype=np.float64)
    stream = ds.data.stream(write_npy(tmp_path / "npy", X, y, sizes), chunk_rows=16)
    assert stream.shard(1, 0) is stream
    starts = np.cumsum((0, *sizes))
    for index in range(2):
        shard = stream.shard(2, index)
        expected = np.concatenate([y[starts[k] : starts[k + 1]] for k in range(index, 5, 2)])
        assert shard.n_samples == len(expected)
        order = shard.row_order(batch_size=4, shuffle=False)
        np.testing.assert_array_equal(order, np.arange(len(expected)))
        # The first rows of a shard, in path order, cut inside its last file kept.
        first = shard._first(41)
        read = np.concatenate([part.y for part in first._read(None, features=True)])
        np.testing.assert_array_equal(read, expected[:41])
    # Shards of the same layout shuffle apart: each draws its orders with its index.
    even = ds.data.stream(write_npy(tmp_path / "even", X[:80], y[:80], (20,) * 4), chunk_rows=16)
    orders = [even.shard(2, index).row_order(seed=1, batch_size=4) for index in range(2)]
    assert sorted(orders[0]) == sorted(orders[1]) and list(orders[0]) != list(orders[1])


@pytest.mark.parametrize(
    ("source", "arguments", "words"),
    [
        ("one file", (2, 0), "1 file"),
        ("npy", (2, 2), r"\[0, 1\]"),
        ("npy", (0, 0), "num_shards"),
        ("iterable", (2, 0), "no files to split"),
    ],
)
def test_a_source_that_cannot_be_shared_out_is_refused_with_the_fix(
    tmp_path, source, arguments, words
):
    X, y = np.ones((20, 2)), np.zeros(20)
    if source == "iterable":
        stream = ds.data.stream([(X, y)])
    else:
        sizes = (20,) if source == "one file" else (10, 10)
        stream = ds.data.stream(write_npy(tmp_path / "npy", X, y, sizes))
    with pytest.raises(InputError, match=words):
        stream.shard(*arguments)


# ------------------------------------------------------------------ four devices

PIECES = (300, 500, 198, 600, 400)  # 1,998 rows: a short last batch, padded over 4 devices
CHUNK_ROWS = 500

CASES = {
    "shuffled, padded last batch": dict(model="logistic", batch_size=32),
    "accumulated with leftover batches, unshuffled": dict(
        model="logistic", batch_size=16, accumulate=3, shuffle=False
    ),
    "standardized regression, validation": dict(
        model="linear", batch_size=24, standardize=True, validation=True, regression=True
    ),
}

FOUR_DEVICES = """
import json, sys
import jax, numpy as np
import descend as ds

cases, folders, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
X_val = rng.normal(size=(100, 4))
y_val = X_val @ [1.0, -2.0, 0.5, 0.0]
report = {"devices": len(jax.devices())}

def summary(r):
    return {"w": np.ravel(r.params["w"]).tolist(), "b": np.ravel(r.params["b"]).tolist(),
            "updates": r.n_updates,
            "history": {k: v.tolist() for k, v in r.history.items() if k != "time"}}

for name, settings in cases.items():
    settings = dict(settings)
    model = settings.pop("model")
    folder = folders["regression" if settings.pop("regression", False) else "binary"]
    if settings.pop("validation", False):
        settings["validation"] = (X_val, y_val)
    report[name] = {
        where: summary(ds.fit(model, ds.data.stream(folder, chunk_rows=CHUNK_ROWS, dtype="float64"),
                              epochs=3, seed=4, verbose=0, dtype="float64", devices=devices,
                              **settings))
        for where, devices in (("one", None), ("all", "all"))
    }

# Resumed: two epochs on four devices, saved; four on four devices, and on one device.
stream = ds.data.stream(folders["binary"], chunk_rows=CHUNK_ROWS, dtype="float64")
options = dict(batch_size=32, seed=4, verbose=0, dtype="float64", standardize=True)
straight = ds.fit("logistic", stream, epochs=4, devices="all", **options)
ds.save(f"{out}/two.ckpt", ds.fit("logistic", stream, epochs=2, devices="all", **options))
resumed = {
    where: summary(ds.fit(None, stream, epochs=4, resume=f"{out}/two.ckpt", batch_size=32,
                          verbose=0, devices=devices))
    for where, devices in (("all", "all"), ("one", None))
}
report["resumed"] = {"straight": summary(straight), **resumed}

# The evidence of sharding: the predictions' layout seen by a loss.
seen = []
def loss(predictions, targets):
    jax.debug.inspect_array_sharding(
        predictions, callback=lambda s: seen.append(s.shard_shape(predictions.shape)))
    return (predictions - targets) ** 2
ds.fit("linear", stream, loss=loss, batch_size=32, epochs=1, verbose=0, devices="all",
       dtype="float64")
report["shard shapes"] = sorted({tuple(shape) for shape in seen})

try:
    ds.fit("logistic", stream, batch_size=30, epochs=1, verbose=0, devices="all",
           dtype="float64")
except ds.errors.InputError as error:
    report["error"] = str(error)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory) -> dict:
    """Every case streamed on one device and on four, in one child with 4 host devices."""
    root = tmp_path_factory.mktemp("four")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(sum(PIECES), N_FEATURES)) * [1.0, 3.0, 0.5, 2.0] + [1.0, -2.0, 0.0, 5.0]
    score = (X - X.mean(0)) / X.std(0) @ rng.normal(size=N_FEATURES)
    labels = (score + rng.normal(size=len(X)) > 0) * 1.0
    targets = score + 0.1 * rng.normal(size=len(X))
    folders = {
        "binary": str(write_npy(root / "binary", X, labels, PIECES)),
        "regression": str(write_npy(root / "regression", X, targets, PIECES)),
    }
    code = FOUR_DEVICES.replace("CHUNK_ROWS", str(CHUNK_ROWS))
    for argument, value in enumerate((json.dumps(CASES), json.dumps(folders), str(root)), 1):
        code = code.replace(f"sys.argv[{argument}]", repr(value))
    report = json.loads(_run(code, _environment(4), root).strip().splitlines()[-1])
    assert report["devices"] == 4
    return report


def _assert_same(result: dict, reference: dict, rtol: float) -> None:
    assert result["updates"] == reference["updates"]
    np.testing.assert_allclose(result["w"], reference["w"], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(result["b"], reference["b"], rtol=rtol, atol=rtol)
    assert result["history"].keys() == reference["history"].keys()
    for key, values in reference["history"].items():
        np.testing.assert_allclose(result["history"][key], values, rtol=rtol, err_msg=key)


@pytest.mark.parametrize("case", CASES)
def test_a_stream_on_four_devices_trains_as_on_one_device(four_devices, case):
    _assert_same(four_devices[case]["all"], four_devices[case]["one"], rtol=1e-10)


def test_a_stream_resumed_on_four_devices_continues_as_one_run(four_devices):
    runs = four_devices["resumed"]
    assert runs["straight"]["history"]["epoch"] == [1, 2, 3, 4]
    _assert_same(runs["all"], runs["straight"], rtol=1e-12)
    _assert_same(runs["one"], runs["straight"], rtol=1e-10)  # the same rows on one device


def test_each_chunk_s_batches_are_split_over_the_four_devices(four_devices):
    # Chunks of 480 rows (500 cut to whole batches of 32): 8 rows per device; the last
    # chunk's 78 rows end in a batch of 14, padded to 16: 4 per device.
    assert four_devices["shard shapes"] == [[4], [8]]


def test_a_batch_that_does_not_split_over_the_devices_is_refused_for_a_stream(four_devices):
    message = four_devices["error"]
    assert "batch_size=30" in message and "batch_size=28 or batch_size=32" in message


# ------------------------------------------------------------------ two processes

FILE_ROWS = (300, 420, 200, 330, 180)  # process 0: files 0, 2, 4 (680 rows); 1: 1, 3 (750)
SEED, BATCH, EPOCHS = 3, 16, 3

WORKER = """
import json, sys, warnings
import numpy as np
import descend as ds

process, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ds.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process)
validation = np.load(f"{folder}/validation{process}.npz")
stream = ds.data.stream(f"{folder}/parquet", chunk_rows=256, dtype="float64")
settings = dict(batch_size=BATCH, seed=SEED, dtype="float64", verbose=0,
                validation=(validation["X"], validation["y"]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    whole = ds.fit("softmax", stream, epochs=EPOCHS, **settings)
ds.save(f"{folder}/one.ckpt", ds.fit("softmax", stream, epochs=1, **settings))
resumed = ds.fit(None, stream, epochs=EPOCHS, resume=f"{folder}/one.ckpt", **settings)
regression = ds.fit("linear", ds.data.stream(f"{folder}/npy", chunk_rows=200, dtype="float64"),
                    epochs=2, batch_size=BATCH, seed=SEED, dtype="float64", verbose=0)
errors = []
for source, chunk_rows in ((f"{folder}/single", 256), ([(validation["X"], validation["y"])], 256),
                           (f"{folder}/parquet", 256 + 32 * process)):
    try:
        ds.fit("linear", ds.data.stream(source, chunk_rows=chunk_rows, dtype="float64"),
               dtype="float64", verbose=0)
    except (ds.errors.InputError, ds.errors.DataError) as error:
        errors.append(str(error))
np.savez(f"{folder}/result{process}.npz", w=whole.params["w"], b=whole.params["b"],
         classes=whole.classes, loss=whole.history["loss"], val_loss=whole.history["val_loss"],
         resumed_w=resumed.params["w"], resumed_b=resumed.params["b"],
         w_linear=regression.params["w"], r2=regression.history["r2"])
print(json.dumps({"warnings": [str(w.message) for w in caught], "errors": errors}))
"""


def _global_order(stream, epoch: int, share_rows: list[np.ndarray]) -> np.ndarray:
    """Rows of the folder in the order two processes train on them in ``epoch``.

    Process p's shard (its files, cut to the smallest share) orders its rows as its
    ``row_order`` for a local batch of ``BATCH / 2``; global batch t joins the
    processes' local batches t in process order.
    """
    share = BATCH // 2
    orders = []
    for process, rows in enumerate(share_rows):
        shard = stream.shard(2, process)._first(len(rows))
        orders.append(rows[shard.row_order(SEED, epoch, batch_size=share)])
    starts = range(0, len(orders[0]), share)
    return np.concatenate([order[start : start + share] for start in starts for order in orders])


def _one_process(model, stream, X, y, share_rows, epochs: int, **settings):
    """One device, the union's rows in the global order (one epoch a call, resumed)."""
    result = None
    for epoch in range(epochs):
        rows = _global_order(stream, epoch, share_rows)
        result = ds.fit(
            model, X[rows], y[rows], epochs=epoch + 1, resume=result, shuffle=False,
            batch_size=BATCH, seed=SEED, dtype="float64", verbose=0, **settings,
        )  # fmt: skip
    return result


def test_two_processes_stream_their_own_files_into_one_model_as_one_process_would(tmp_path):
    rng = np.random.default_rng(7)
    n = sum(FILE_ROWS)
    X = rng.normal(size=(n, N_FEATURES)) * [1.0, 2.0, 0.5, 1.0] + [0.0, 1.0, -1.0, 2.0]
    y = 2.0 * np.digitize(X[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5]) + 1  # 1, 3, 5
    starts = np.cumsum((0, *FILE_ROWS))
    in_file = np.repeat(np.arange(len(FILE_ROWS)), FILE_ROWS)
    y[(in_file % 2 == 1) & (y == 5)] = 3  # process 1's files hold no label 5
    write_parquet(tmp_path / "parquet", X, y, FILE_ROWS)
    y_linear = X @ [1.0, -1.0, 2.0, 0.5] + np.sin(3 * X[:, 0])
    write_npy(tmp_path / "npy", X, y_linear, FILE_ROWS)
    write_parquet(tmp_path / "single", X[:50], y[:50], (50,))
    validation = []
    for process in range(2):
        X_val = rng.normal(size=(40 + 10 * process, N_FEATURES))
        validation.append((X_val, 2.0 * np.digitize(X_val[:, 0], [-0.5, 0.5]) + 1))
        np.savez(tmp_path / f"validation{process}.npz", X=X_val, y=validation[-1][1])
    code = textwrap.dedent(WORKER)
    for name, value in dict(BATCH=BATCH, SEED=SEED, EPOCHS=EPOCHS).items():
        code = code.replace(name, str(value))
    port = _free_port()
    commands = [[sys.executable, "-c", code, str(p), str(port), str(tmp_path)] for p in range(2)]
    outputs = _run_together(commands, [_environment(2)] * 2, tmp_path)
    reports = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    results = [np.load(tmp_path / f"result{p}.npz") for p in range(2)]

    # One model on both processes, bit for bit; resumed, as the uninterrupted run.
    for key in results[0].files:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)
    np.testing.assert_allclose(results[0]["resumed_w"], results[0]["w"], rtol=1e-12)
    np.testing.assert_allclose(results[0]["resumed_b"], results[0]["b"], rtol=1e-12)
    # Process 1 reads 750 rows and trains on its first 680, as process 0 does on all its own.
    assert not reports[0]["warnings"]
    (warning,) = reports[1]["warnings"]
    assert "first 680 rows" in warning and "[680, 750]" in warning
    for report in reports:
        single, iterable, different = report["errors"]
        assert "1 file(s) with rows, fewer than the 2 shards" in single
        assert "no files to split" in iterable
        assert "differ in chunk_rows (process 0: 256, process 1: 288)" in different

    # The oracle: one process on the union, in the global order. Process 1's files
    # hold no label 5: the classes are those of both processes.
    np.testing.assert_array_equal(results[0]["classes"], [1, 3, 5])
    share_rows = [
        np.concatenate([np.arange(starts[k], starts[k + 1]) for k in range(p, 5, 2)])[:680]
        for p in range(2)
    ]
    stream = ds.data.stream(tmp_path / "parquet", chunk_rows=256, dtype="float64")
    both = tuple(np.concatenate(part) for part in zip(*validation, strict=True))
    reference = _one_process(
        "softmax", stream, X, y, share_rows, EPOCHS, validation=both, standardize=True
    )
    np.testing.assert_allclose(results[0]["w"], reference.params["w"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[0]["b"], reference.params["b"], rtol=1e-9, atol=1e-12)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(results[0][key], reference.history[key], rtol=1e-9)
    # A regression from .npy shards: its standardization and R² are the union's.
    npy = ds.data.stream(tmp_path / "npy", chunk_rows=200, dtype="float64")
    linear = _one_process("linear", npy, X, y_linear, share_rows, 2)
    np.testing.assert_allclose(results[0]["w_linear"], linear.params["w"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["r2"], linear.history["r2"], rtol=1e-9)
