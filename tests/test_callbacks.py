"""Callback objects (Keras's hooks) beside plain functions, and the ready callbacks:
CSV and TensorBoard logs read back against the history, early stopping and
checkpoints as objects equal to fit's keywords and descend.save."""

from __future__ import annotations

import csv
import glob
import inspect
import struct
import sys

import numpy as np
import pytest

import descend as ds
from descend.callbacks import Callback, Checkpoint, CSVLogger, EarlyStopping, TensorBoard
from descend.errors import DescendTypeError, InputError

# One compiled epoch serves most tests: the same shapes and settings.
SETTINGS = dict(optimizer="sgd", lr=0.05, batch_size=8, dtype="float64", verbose=0)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.5, -0.5, 2.0]) + 3.0 + 0.3 * rng.normal(size=n)


def validation():
    return data(24, seed=5)


class Recorder(Callback):
    """Every hook call, in order, with its arguments (copies)."""

    def __init__(self, calls, stop_at=None, how="return"):
        self.calls, self.stop_at, self.how = calls, stop_at, how

    def on_train_begin(self, logs):
        self.calls.append(("begin", None, dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch", epoch, dict(logs)))
        if epoch == self.stop_at:
            if self.how == "raise":
                raise StopIteration
            return True
        return None

    def on_train_end(self, logs):
        self.calls.append(("end", None, dict(logs)))


def history_row(history, index):
    return {key: values[index] for key, values in history.items() if key != "epoch"}


def test_each_hook_is_called_with_the_epoch_and_the_logs_of_the_history():
    calls = []
    result = ds.fit(
        "linear",
        *data(),
        validation=validation(),
        epochs=4,
        patience=None,
        callbacks=[Recorder(calls)],
        **SETTINGS,
    )
    assert [call[0] for call in calls] == ["begin", "epoch", "epoch", "epoch", "epoch", "end"]
    assert calls[0][2] == {}
    epochs = [call for call in calls if call[0] == "epoch"]
    assert [call[1] for call in epochs] == [1, 2, 3, 4] == result.history["epoch"].tolist()
    for index, (_, _, logs) in enumerate(epochs):
        assert logs == history_row(result.history, index)
    assert set(epochs[0][2]) == {"loss", "r2", "val_loss", "val_r2", "grad_norm", "lr", "time"}
    assert calls[-1][2] == history_row(result.history, -1)


@pytest.mark.parametrize("how", ["return", "raise"])
def test_on_epoch_end_stops_training_by_returning_true_or_raising_stop_iteration(how):
    calls = []
    result = ds.fit(
        "linear",
        *data(),
        epochs=10,
        patience=None,
        callbacks=[Recorder(calls, stop_at=3, how=how)],
        **SETTINGS,
    )
    assert result.status == "callback" and result.n_epochs == 3
    assert "a callback stopped the run after epoch 3" in result.reason
    assert [call[1] for call in calls if call[0] == "epoch"] == [1, 2, 3]
    assert calls[-1][0] == "end"  # on_train_end follows a stop by a callback too


def test_objects_and_functions_mix_in_one_list_called_in_its_order():
    order = []

    class OnlyEpochEnd:  # no base class, one hook: the others are skipped
        def on_epoch_end(self, epoch, logs):
            order.append(("object", epoch, logs["loss"]))

    def function(epoch, history):
        order.append(("function", epoch, float(history["loss"][-1])))

    callbacks = [function, OnlyEpochEnd()]
    result = ds.fit("linear", *data(), epochs=2, patience=None, callbacks=callbacks, **SETTINGS)
    losses = result.history["loss"].tolist()
    assert order == [
        ("function", 1, losses[0]),
        ("object", 1, losses[0]),
        ("function", 2, losses[1]),
        ("object", 2, losses[1]),
    ]


def test_one_callback_object_is_taken_without_a_list():
    calls = []
    result = ds.fit(
        "linear", *data(), epochs=2, patience=None, callbacks=Recorder(calls), **SETTINGS
    )
    assert [call[1] for call in calls if call[0] == "epoch"] == [1, 2]
    assert result.n_epochs == 2


@pytest.mark.parametrize("bad", [[42], [object()], 3.5])
def test_something_that_is_no_callback_is_refused_naming_both_forms(bad):
    with pytest.raises(DescendTypeError, match=r"callback\(epoch, history\).*on_epoch_end"):
        ds.fit("linear", *data(), epochs=1, callbacks=bad, **SETTINGS)


@pytest.mark.parametrize("given", [CSVLogger, [Recorder]])
def test_a_callback_class_instead_of_an_object_says_to_make_one(given):
    with pytest.raises(DescendTypeError, match=r"the class \w+; pass an object of it"):
        ds.fit("linear", *data(), epochs=1, callbacks=given, **SETTINGS)


def test_csv_logger_writes_the_history_row_by_row(tmp_path):
    path = tmp_path / "logs" / "history.csv"  # the folder is made
    result = ds.fit(
        "linear",
        *data(),
        validation=validation(),
        epochs=5,
        patience=None,
        callbacks=[CSVLogger(path)],
        **SETTINGS,
    )
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header == ["epoch", *(key for key in result.history if key != "epoch")]
    assert len(body) == 5
    for j, key in enumerate(header):  # the numbers read back exactly
        np.testing.assert_array_equal([float(row[j]) for row in body], result.history[key])


def test_csv_logger_appends_the_epochs_of_a_continued_run(tmp_path):
    path = tmp_path / "history.csv"
    first = ds.fit(
        "linear", *data(), epochs=2, patience=None, callbacks=[CSVLogger(path)], **SETTINGS
    )
    whole = ds.fit(
        "linear",
        *data(),
        epochs=4,
        patience=None,
        init=first.state,
        callbacks=[CSVLogger(path, append=True)],
        **SETTINGS,
    )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    np.testing.assert_array_equal([float(row["loss"]) for row in rows], whole.history["loss"])
    # Without append a run starts the file afresh.
    ds.fit("linear", *data(), epochs=1, patience=None, callbacks=[CSVLogger(path)], **SETTINGS)
    assert len(path.read_text().splitlines()) == 2


def read_scalars(folder):
    """``{tag: [(step, value), ...]}`` of the event files in ``folder``, read by the
    tensorboard package's EventAccumulator when installed, else record by record with
    tensorboardX's protocol buffers (checking each record's masked CRC-32C)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        EventAccumulator = None
    if EventAccumulator is not None:
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        return {
            tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]
        }
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    scalars = {}
    (path,) = glob.glob(str(folder / "events.out.tfevents.*"))
    with open(path, "rb") as handle:
        content = handle.read()
    at = 0
    while at < len(content):
        header = content[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", content[at + 8 : at + 12])[0] == masked_crc32c(header)
        record = content[at + 12 : at + 12 + length]
        crc = content[at + 12 + length : at + 16 + length]
        assert struct.unpack("<I", crc)[0] == masked_crc32c(record)
        at += 16 + length
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_every_number_of_the_history_at_its_epoch(tmp_path):
    writer = TensorBoard(tmp_path / "runs")
    result = ds.fit(
        "linear",
        *data(),
        validation=validation(),
        epochs=3,
        patience=None,
        callbacks=[writer],
        **SETTINGS,
    )
    scalars = read_scalars(tmp_path / "runs")
    assert set(scalars) == {key for key in result.history if key != "epoch"}
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [1, 2, 3]
        # TensorBoard keeps float32 numbers.
        expected = result.history[tag].astype(np.float32)
        np.testing.assert_array_equal(np.float32([value for _, value in points]), expected)
    assert writer.writer is None  # closed when training ended


def test_tensorboard_without_tensorboardx_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(InputError, match=r'pip install "descend\[tensorboard\]"'):
        TensorBoard(tmp_path)


def test_a_log_path_that_cannot_be_written_is_an_input_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for callback in (CSVLogger(blocker / "history.csv"), TensorBoard(blocker / "runs")):
        with pytest.raises(InputError, match=r"cannot write .*a_file.*a folder you can write"):
            ds.fit("linear", *data(), epochs=1, callbacks=[callback], **SETTINGS)


def test_early_stopping_defaults_are_fits_own():
    defaults = inspect.signature(ds.fit).parameters
    for name, value in EarlyStopping().settings().items():
        assert defaults[name].default == value


@pytest.mark.parametrize(
    "settings", [dict(patience=2), dict(patience=3, min_delta=0.5, restore_best=False)]
)
def test_early_stopping_object_trains_as_the_keywords(settings):
    X, y = data()
    common = dict(validation=validation(), epochs=60, **SETTINGS)
    by_object = ds.fit("linear", X, y, callbacks=[EarlyStopping(**settings)], **common)
    by_keywords = ds.fit("linear", X, y, **settings, **common)
    assert by_object.status == by_keywords.status == "early_stopping"
    assert by_object.reason == by_keywords.reason
    assert by_object.best_epoch == by_keywords.best_epoch
    for key in by_keywords.history:
        if key != "time":
            np.testing.assert_array_equal(by_object.history[key], by_keywords.history[key])
    for name in ("w", "b"):
        np.testing.assert_array_equal(by_object.params[name], by_keywords.params[name])


def test_early_stopping_given_twice_or_out_of_range_is_refused():
    X, y = data()
    with pytest.raises(InputError, match=r"early stopping is given twice: patience=3"):
        ds.fit("linear", X, y, patience=3, callbacks=[EarlyStopping(patience=5)], **SETTINGS)
    with pytest.raises(InputError, match="2 EarlyStopping objects"):
        ds.fit("linear", X, y, callbacks=[EarlyStopping(), EarlyStopping()], **SETTINGS)
    # The object's settings are checked by fit's table, in its words.
    with pytest.raises(InputError, match="patience must be an integer >= 1, got 0"):
        ds.fit("linear", X, y, callbacks=[EarlyStopping(patience=0)], **SETTINGS)


def test_checkpoint_at_the_end_is_the_file_descend_save_writes(tmp_path):
    X, y = data()
    result = ds.fit(
        "linear",
        X,
        y,
        validation=validation(),
        epochs=60,
        patience=2,
        callbacks=[Checkpoint(tmp_path / "run" / "model.ckpt")],
        **SETTINGS,
    )
    assert result.status == "early_stopping"
    ds.save(tmp_path / "saved.ckpt", result)
    assert file_content(tmp_path / "run" / "model.ckpt") == file_content(tmp_path / "saved.ckpt")


def file_content(path):
    """A safetensors file's metadata and tensors (its header's key order aside, which
    safetensors does not keep from one write to the next)."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as handle:
        tensors = {key: handle.get_tensor(key).tolist() for key in handle.keys()}  # noqa: SIM118
        return handle.metadata(), tensors


def test_checkpoint_during_training_resumes_to_the_uninterrupted_run(tmp_path):
    X, y = data()
    path = tmp_path / "model.ckpt"

    class Crash(Exception):
        pass

    def crash_at_four(epoch, history):
        if epoch == 4:
            raise Crash

    common = dict(epochs=7, patience=None, **SETTINGS)
    with pytest.raises(Crash):
        ds.fit("linear", X, y, callbacks=[Checkpoint(path, every=2), crash_at_four], **common)
    saved = ds.load(path)
    assert saved.n_epochs == 4 and saved.status == "running"
    assert saved.reason == "still training: saved after epoch 4"
    resumed = ds.fit("linear", X, y, resume=path, **common)
    straight = ds.fit("linear", X, y, **common)
    np.testing.assert_array_equal(resumed.history["loss"], straight.history["loss"])
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.params[name], straight.params[name])


def test_checkpoint_every_must_be_a_whole_number_of_epochs(tmp_path):
    with pytest.raises(InputError, match="every must be an integer >= 1, got 0"):
        Checkpoint(tmp_path / "m.ckpt", every=0)
