"""Data-parallel training: several devices in one process, and several processes.

Forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and
``jax.distributed`` must be set up before JAX starts, so those tests run child
processes, each bounded in time. The oracle is single-device training on the same
global batches, computed here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import descend as ds
from descend import distributed
from descend.errors import DescendTypeError, InputError

SOURCE = Path(__file__).resolve().parent.parent / "src"
CHILD_TIMEOUT = 120  # seconds; a child that hangs (e.g. a lost peer) is killed


def _environment(devices: int, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in distributed.ENVIRONMENT and key != "XLA_FLAGS"
    }
    env.update(
        PYTHONPATH=str(SOURCE),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        **extra,
    )
    return env


def _run(code: str, env: dict[str, str], cwd: Path) -> str:
    """Run ``code`` in a fresh Python; its stdout, or the test fails with its stderr."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
            timeout=CHILD_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"child timed out after {CHILD_TIMEOUT} s:\n{error.stderr}")
    if done.returncode != 0:
        pytest.fail(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _run_together(commands: list[list[str]], envs: list[dict[str, str]], cwd: Path) -> list[str]:
    """Start the processes at once and wait for all; kill all if one fails or hangs."""
    children = [
        subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command, env in zip(commands, envs, strict=True)
    ]
    outputs = []
    try:
        for child in children:
            stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT)
            if child.returncode != 0:
                pytest.fail(f"process failed ({child.returncode}):\n{stderr[-3000:]}")
            outputs.append(stdout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the processes did not finish within {CHILD_TIMEOUT} s")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    return outputs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _classification(n: int, seed: int, n_features: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (X @ np.linspace(-1.0, 1.0, n_features) + 0.3 * rng.normal(size=n) > 0).astype(float)
    return X, y


# --------------------------------------------------------------------------- four devices

CASES = {
    "short last batch padded": dict(batch_size=32),
    "accumulated with leftover batches": dict(batch_size=16, accumulate=3),
    "without shuffling": dict(batch_size=16, shuffle=False),
    "sample weights": dict(batch_size=8, sample_weight="uniform"),
    # Rows weighted 10 or 0.1: every update divides by its rows times the mean weight of
    # all rows, which the padding rows (3 real rows of the last batch over 4 devices) and
    # single-row shares do not change.
    "skewed weights, padded last batch": dict(
        batch_size=16, accumulate=3, validation_split=0.2, sample_weight="skewed"
    ),
    "skewed weights, one row per device": dict(batch_size=4, sample_weight="skewed"),
    "skewed weights, full batch": dict(batch_size=None, sample_weight="skewed"),
    "validation and standardization": dict(batch_size=32, validation_split=0.2, standardize=True),
    "full batch": dict(batch_size=None),
}

FOUR_DEVICES = """
import json, sys
import jax, numpy as np
import descend as ds
from descend import engine

cases, out = json.loads(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
X = rng.normal(size=(204, 5))
y = (X @ rng.normal(size=5) > 0).astype(float)
report = {"devices": len(jax.devices())}
for name, settings in cases.items():
    if settings.get("sample_weight") == "uniform":
        settings["sample_weight"] = rng.uniform(size=len(X))
    elif settings.get("sample_weight") == "skewed":
        settings["sample_weight"] = np.where(rng.random(len(X)) < 0.5, 10.0, 0.1)
    runs = {
        where: ds.fit("logistic", X, y, epochs=3, verbose=0, dtype="float64", devices=devices,
                      **settings)
        for where, devices in (("one", None), ("all", "all"))
    }
    report[name] = {
        where: {"w": r.params["w"].tolist(), "b": float(r.params["b"]), "updates": r.n_updates,
                "history": {k: v.tolist() for k, v in r.history.items() if k != "time"}}
        for where, r in runs.items()
    }

# Weighted least squares by descent over the four devices (the parent computes the
# reference): rows of two opposite laws weighted about 10 and 0.1.
X_w = rng.normal(size=(200, 3))
heavy = np.arange(200) < 100
y_w = np.where(heavy, X_w @ [1.5, -0.5, 2.0] + 3.0, X_w @ [-1.5, 0.5, -2.0] - 1.0)
y_w = y_w + 0.5 * rng.normal(size=200)
w_w = np.where(heavy, 10.0, 0.1) * rng.uniform(0.5, 1.5, 200)
decaying = ds.optim.schedules.inverse_scaling(0.2, power_t=0.75)
report["weighted"] = {"X": X_w.tolist(), "y": y_w.tolist(), "weights": w_w.tolist()}
for name, settings in {
    "batch": dict(batch_size=None, lr=0.5, epochs=500),
    "minibatch": dict(batch_size=16, lr=decaying, epochs=300),
    "one row per device": dict(batch_size=4, lr=decaying, epochs=100),
}.items():
    # The weighted least-squares problem as given: no scaling, stopping rule or penalty.
    r = ds.fit("linear", X_w, y_w, optimizer="sgd", sample_weight=w_w, dtype="float64",
               verbose=0, devices="all", standardize=False, patience=None, l2=0.0,
               **settings)
    report["weighted"][name] = [*r.params["w"].tolist(), float(r.params["b"])]

# The evidence of sharding: the predictions' layout seen by a loss, the compiled program.
seen, programs = [], []
def loss(predictions, targets):
    jax.debug.inspect_array_sharding(
        predictions, callback=lambda s: seen.append(s.shard_shape(predictions.shape)))
    return (predictions - targets) ** 2

compiled_epoch = engine.compiled_epoch
def spy(*key):
    program = compiled_epoch(*key)
    def run(*args):
        programs.append(program.lower(*args).compile().as_text())
        return program(*args)
    return run
engine.compiled_epoch = spy
ds.fit("linear", X, y, loss=loss, batch_size=32, epochs=1, verbose=0, devices="all")
engine.compiled_epoch = compiled_epoch
report["shard shapes"] = [list(shape) for shape in seen]
report["all-reduce"] = all("all-reduce" in text for text in programs) and bool(programs)

try:
    ds.fit("logistic", X, y, batch_size=30, epochs=1, verbose=0, devices="all")
except ds.errors.InputError as error:
    report["error"] = str(error)

# devices=n: the first n devices, on arrays and on a stream alike; more than there are
# is refused with their number.
stream = ds.data.stream([(X[:100], y[:100]), (X[100:], y[100:])])
for name, data in (("arrays", (X, y)), ("stream", (stream,))):
    runs = [ds.fit("logistic", *data, batch_size=16, epochs=2, verbose=0, devices=devices)
            for devices in (2, jax.devices()[:2])]
    report[f"first 2, {name}"] = [[*r.params["w"].tolist(), float(r.params["b"])] for r in runs]
try:
    ds.fit("logistic", X, y, epochs=1, verbose=0, devices=5)
except ds.errors.InputError as error:
    report["too many"] = str(error)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory) -> dict:
    """Every case trained on one device and on four, in one child with 4 host devices."""
    cwd = tmp_path_factory.mktemp("four")
    code = FOUR_DEVICES.replace("sys.argv[1]", repr(json.dumps(CASES)))
    code = code.replace("sys.argv[2]", repr(str(cwd)))
    report = json.loads(_run(code, _environment(4), cwd).strip().splitlines()[-1])
    assert report["devices"] == 4
    return report


@pytest.mark.parametrize("case", CASES)
def test_four_devices_train_like_one_device_on_the_same_global_batches(four_devices, case):
    one, four = four_devices[case]["one"], four_devices[case]["all"]
    assert four["updates"] == one["updates"]
    np.testing.assert_allclose(four["w"], one["w"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(four["b"], one["b"], rtol=1e-10, atol=1e-12)
    assert four["history"].keys() == one["history"].keys()
    for key, values in one["history"].items():
        np.testing.assert_allclose(four["history"][key], values, rtol=1e-10, err_msg=key)


@pytest.mark.parametrize(
    ("method", "tolerance"),
    [("batch", 1e-9), ("minibatch", 1e-3), ("one row per device", 1e-3)],
)
def test_four_devices_reach_weighted_least_squares_with_any_batch(four_devices, method, tolerance):
    # Every update divides by its rows times the mean weight of all the rows. Measured:
    # 5e-15, 1.4e-4 and 2.6e-5; divided by each batch's own weight sum, the mini-batches
    # miss by 3.8e-3 and the batches of 4 rows by 0.12.
    weighted = four_devices["weighted"]
    X, y, weights = (np.asarray(weighted[key]) for key in ("X", "y", "weights"))
    scale = np.sqrt(weights)
    A = np.c_[X, np.ones(len(X))]
    expected = np.linalg.lstsq(A * scale[:, None], y * scale, rcond=None)[0]
    unweighted = np.linalg.lstsq(A, y, rcond=None)[0]
    distance = np.linalg.norm(np.asarray(weighted[method]) - expected) / np.linalg.norm(expected)
    assert np.linalg.norm(unweighted - expected) / np.linalg.norm(expected) > 0.5
    assert distance < tolerance, distance


def test_batches_are_split_over_the_devices_and_gradients_all_reduced(four_devices):
    # 204 rows in batches of 32: six whole batches and 12 rows, 8 and 3 rows per device.
    assert {tuple(shape) for shape in four_devices["shard shapes"]} == {(8,), (3,)}
    assert four_devices["all-reduce"]


def test_a_batch_that_does_not_split_over_the_devices_is_an_error_suggesting_sizes(
    four_devices,
):
    message = four_devices["error"]
    assert "batch_size=30" in message and "multiple of 4" in message
    assert "batch_size=28 or batch_size=32" in message


@pytest.mark.parametrize("data", ["arrays", "stream"])
def test_a_number_of_devices_is_the_first_that_many(four_devices, data):
    by_number, by_list = four_devices[f"first 2, {data}"]
    assert by_number == by_list


def test_more_devices_than_there_are_says_how_many_and_how_to_force_them(four_devices):
    message = four_devices["too many"]
    assert "devices=5 asks for more devices than there are: there are 4 devices" in message
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=5" in message


# --------------------------------------------------------------------------- one process


def test_devices_all_on_a_single_device_runs_the_plain_program():
    X, y = _classification(50, seed=1)
    devices = "all" if len(jax.devices()) == 1 else jax.devices()[:1]
    plain = ds.fit("logistic", X, y, batch_size=8, epochs=2, verbose=0)
    placed = ds.fit("logistic", X, y, batch_size=8, epochs=2, verbose=0, devices=devices)
    np.testing.assert_array_equal(placed.params["w"], plain.params["w"])


@pytest.mark.parametrize(
    ("devices", "error", "words"),
    [
        ("gpus", InputError, "'all'"),
        ([], InputError, "at least one"),
        (["cpu"], InputError, "at least one jax device"),
        (0, InputError, "at least 1"),
        (99, InputError, "xla_force_host_platform_device_count=99"),
        (2.0, DescendTypeError, "a number of devices, .*got float"),
        ("duplicate", InputError, "twice"),
        ("mesh without batch axis", InputError, "'batch' axis"),
    ],
)
def test_bad_devices_are_refused_with_the_fix(devices, error, words):
    if devices == "duplicate":
        devices = [jax.devices()[0], jax.devices()[0]]
    elif devices == "mesh without batch axis":
        devices = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    X, y = _classification(20, seed=2)
    with pytest.raises(error, match=words):
        ds.fit("logistic", X, y, epochs=1, verbose=0, devices=devices)


@pytest.mark.parametrize(
    ("arguments", "environment", "words"),
    [
        (("localhost", 2, 0), {}, "HOST:PORT"),
        (("localhost:99999", 2, 0), {}, r"\[1, 65535\]"),
        (("localhost:1234", 2, 2), {}, r"\[0, 1\]"),
        (("localhost:1234", 0, 0), {}, "num_processes must be an integer >= 1"),
        (("localhost:1234", None, None), {}, "num_processes, process_id missing"),
        ((None, None, None), {"DESCEND_NUM_PROCESSES": "two"}, "DESCEND_NUM_PROCESSES"),
    ],
)
def test_initialize_refuses_bad_arguments_before_contacting_anyone(
    monkeypatch, arguments, environment, words
):
    for name in distributed.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=words):
        distributed.initialize(*arguments)


# --------------------------------------------------------------------------- two processes

N_ROWS = (61, 63)  # process 1's two extra rows are cut, with a warning
SEED, BATCH, ACCUMULATE, EPOCHS = 5, 8, 2, 3

WORKER = """
import json, sys, warnings
import numpy as np
import descend as ds

process, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if process == 0:
    ds.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=0)
else:
    ds.distributed.initialize()  # from DESCEND_COORDINATOR and the others

from descend import checkpoint
writes = []
save_tree = checkpoint.save_tree
checkpoint.save_tree = lambda *args: (writes.append(1), save_tree(*args))[1]

shard = np.load(f"{folder}/shard{process}.npz")
settings = dict(
    validation=(shard["X_val"], shard["y_val"]), batch_size=BATCH, accumulate=ACCUMULATE,
    seed=SEED, dtype="float64", standardize=True, verbose=0,
)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    whole = ds.fit("logistic", shard["X"], shard["y"], epochs=EPOCHS, **settings)
first = ds.fit("logistic", shard["X"], shard["y"], epochs=1, **settings)
ds.save(f"{folder}/model.ckpt", first)
resumed = ds.fit(None, shard["X"], shard["y"], epochs=EPOCHS, resume=f"{folder}/model.ckpt",
                 **settings)
# Regression: the training R² needs the total sum of squares of all processes' targets.
regression = ds.fit("linear", shard["X"], shard["y_linear"], epochs=2, batch_size=BATCH,
                    seed=SEED, dtype="float64", verbose=0)
np.savez(f"{folder}/result{process}.npz", w=whole.params["w"], b=whole.params["b"],
         resumed_w=resumed.params["w"], resumed_b=resumed.params["b"],
         loss=whole.history["loss"], val_loss=whole.history["val_loss"],
         val_accuracy=whole.history["val_accuracy"], r2=regression.history["r2"],
         w_linear=regression.params["w"])
print(json.dumps({"writes": len(writes), "warnings": [str(w.message) for w in caught]}))
"""


def _global_order(epoch: int, n_local: int) -> np.ndarray:
    """Rows of the union (process 0's, then 1's) in the order the two processes use.

    The documented rule: process p permutes its rows with default_rng([seed, epoch, p]);
    global batch t is process 0's local batch t, then process 1's.
    """
    share = BATCH // 2
    orders = [
        np.random.default_rng([SEED, epoch, p]).permutation(n_local) + p * n_local for p in range(2)
    ]
    starts = range(0, n_local, share)
    return np.concatenate([order[start : start + share] for start in starts for order in orders])


def _one_process(model, X, y, epochs: int, sample_weight=None, **settings):
    """Training on one device with the union's rows in the two processes' global order
    (one epoch per call, resumed: the order changes every epoch)."""
    result = None
    for epoch in range(epochs):
        rows = _global_order(epoch, len(X) // 2)
        weights = None if sample_weight is None else sample_weight[rows]
        result = ds.fit(
            model, X[rows], y[rows], epochs=epoch + 1, resume=result, shuffle=False,
            batch_size=BATCH, seed=SEED, dtype="float64", verbose=0, sample_weight=weights,
            **settings,
        )  # fmt: skip
    return result


def test_two_processes_train_one_model_equal_to_one_process_on_the_union(tmp_path):
    shards = []
    for process, n_rows in enumerate(N_ROWS):
        X, y = _classification(n_rows + 20, seed=10 + process)
        shard = dict(X=X[:n_rows], y=y[:n_rows], X_val=X[n_rows:], y_val=y[n_rows:])
        shard["y_linear"] = shard["X"] @ np.arange(1.0, 5.0) + np.sin(7.0 * shard["X"][:, 0])
        np.savez(tmp_path / f"shard{process}.npz", **shard)
        shards.append(shard)
    port = _free_port()
    code = textwrap.dedent(WORKER)
    for name, value in dict(BATCH=BATCH, ACCUMULATE=ACCUMULATE, SEED=SEED, EPOCHS=EPOCHS).items():
        code = code.replace(name, str(value))
    envs = [
        _environment(2),
        _environment(
            2, DESCEND_COORDINATOR=f"127.0.0.1:{port}", DESCEND_NUM_PROCESSES="2",
            DESCEND_PROCESS_ID="1",
        ),
    ]  # fmt: skip
    commands = [[sys.executable, "-c", code, str(p), str(port), str(tmp_path)] for p in range(2)]
    reports = [
        json.loads(out.strip().splitlines()[-1]) for out in _run_together(commands, envs, tmp_path)
    ]
    results = [np.load(tmp_path / f"result{p}.npz") for p in range(2)]

    # One model: the same weights on both processes, bit for bit.
    for key in results[0].files:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)
    # Resumed from process 0's checkpoint, both finish as the uninterrupted run.
    np.testing.assert_allclose(results[0]["resumed_w"], results[0]["w"], rtol=1e-12)
    np.testing.assert_allclose(results[0]["resumed_b"], results[0]["b"], rtol=1e-12)
    assert [report["writes"] for report in reports] == [1, 0]
    assert not reports[0]["warnings"]
    assert any("first 61 rows" in message for message in reports[1]["warnings"])

    # The oracle: one process on the union, its rows laid out in the global order.
    n_local = min(N_ROWS)
    X = np.concatenate([shard["X"][:n_local] for shard in shards])
    y = np.concatenate([shard["y"][:n_local] for shard in shards])
    validation = tuple(
        np.concatenate([shard[key] for shard in shards]) for key in ("X_val", "y_val")
    )
    reference = _one_process(
        "logistic", X, y, EPOCHS, validation=validation, accumulate=ACCUMULATE,
        standardize=True,
    )  # fmt: skip
    np.testing.assert_allclose(results[0]["w"], reference.params["w"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["b"], reference.params["b"], rtol=1e-9)
    # (accuracy is a float32 mean in the library: the weighted mean of two rounds at 1e-7)
    for key, rtol in (("loss", 1e-9), ("val_loss", 1e-9), ("val_accuracy", 1e-6)):
        np.testing.assert_allclose(results[0][key], reference.history[key], rtol=rtol, err_msg=key)
    y_linear = np.concatenate([shard["y_linear"][:n_local] for shard in shards])
    linear = _one_process("linear", X, y_linear, 2)
    np.testing.assert_allclose(results[0]["w_linear"], linear.params["w"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["r2"], linear.history["r2"], rtol=1e-9)


WEIGHTED_WORKER = """
import sys
import numpy as np
import descend as ds

process, port, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ds.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process)
shard = np.load(f"{folder}/shard{process}.npz")
X, y = shard["X"], shard["y"]
settings = dict(batch_size=BATCH, seed=SEED, dtype="float64", verbose=0)
# Each process's weights are all equal, but not equal to the other process's.
weighted = ds.fit("logistic", X, y, epochs=EPOCHS, sample_weight=shard["weights"], **settings)
equal = ds.fit("logistic", X, y, epochs=EPOCHS, sample_weight=np.full(len(X), 2.5), **settings)
plain = ds.fit("logistic", X, y, epochs=EPOCHS, **settings)
np.savez(f"{folder}/result{process}.npz", w=weighted.params["w"], b=weighted.params["b"],
         loss=weighted.history["loss"], equal_w=equal.params["w"], plain_w=plain.params["w"])
"""


def test_two_processes_scale_updates_by_the_mean_weight_of_all_their_rows(tmp_path):
    # Process 0's rows weigh 10 each, process 1's 0.1: locally equal weights, which weigh
    # something only together. The mean weight is the union's (5.05), as one process on
    # the union computes it; weights equal everywhere train exactly as none.
    shards = []
    for process, weight in enumerate((10.0, 0.1)):
        X, y = _classification(61, seed=30 + process)
        shards.append(dict(X=X, y=y, weights=np.full(len(X), weight)))
        np.savez(tmp_path / f"shard{process}.npz", **shards[-1])
    port = _free_port()
    code = textwrap.dedent(WEIGHTED_WORKER)
    for name, value in dict(BATCH=BATCH, SEED=SEED, EPOCHS=EPOCHS).items():
        code = code.replace(name, str(value))
    commands = [[sys.executable, "-c", code, str(p), str(port), str(tmp_path)] for p in range(2)]
    _run_together(commands, [_environment(2)] * 2, tmp_path)
    results = [np.load(tmp_path / f"result{p}.npz") for p in range(2)]
    for key in results[0].files:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)
    np.testing.assert_array_equal(results[0]["equal_w"], results[0]["plain_w"])

    X, y, weights = (
        np.concatenate([shard[key] for shard in shards]) for key in ("X", "y", "weights")
    )
    reference = _one_process("logistic", X, y, EPOCHS, sample_weight=weights)
    np.testing.assert_allclose(results[0]["w"], reference.params["w"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["b"], reference.params["b"], rtol=1e-9)
    np.testing.assert_allclose(results[0]["loss"], reference.history["loss"], rtol=1e-9)


def test_two_processes_train_from_the_command_line_and_process_0_saves(tmp_path):
    port = _free_port()
    for process in range(2):
        X, y = _classification(48, seed=20 + process)
        lines = [",".join([f"x{i}" for i in range(X.shape[1])] + ["label"])]
        for row, label in zip(X.tolist(), y, strict=True):  # text labels: a classifier
            lines.append(",".join(map(repr, row)) + ("," + "yes" if label else ",no"))
        (tmp_path / f"shard{process}.csv").write_text("\n".join(lines) + "\n")
    commands = [
        [
            sys.executable, "-m", "descend", "train", f"shard{p}.csv", "--batch-size", "8",
            "--epochs", "2", "--save", "model.ckpt", "--plot", "loss.png", "--json",
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(p),
        ]
        for p in range(2)
    ]  # fmt: skip
    outputs = _run_together(commands, [_environment(1)] * 2, tmp_path)
    # (Gloo announces its connections on stdout: the JSON object is the last line)
    summaries = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    assert summaries[0]["model"] == "logistic()"
    histories = [summary["history"] for summary in summaries]
    for history in histories:
        del history["time"]  # each process's own clock
    assert histories[0] == histories[1]
    assert summaries[0]["updates"] == 2 * 10  # 2 x 48 rows, 20% held out: 76 per batch of 8
    saved = ds.load(tmp_path / "model.ckpt")
    assert saved.n_epochs == 2 and (tmp_path / "loss.png").is_file()
    np.testing.assert_allclose(saved.history["loss"], summaries[0]["history"]["loss"])


def test_benchmark_row_on_forced_host_devices_fills_its_table(tmp_path):
    repository = str(SOURCE.parent)
    if repository not in sys.path:
        sys.path.insert(0, repository)
    from benchmarks import harness
    from benchmarks.rows import row7_devices

    settings = harness.Settings.for_mode("tiny", strict=True, out_dir=tmp_path)
    result = row7_devices.run(settings)
    sizes = row7_devices.SIZES["tiny"]
    assert len(result.tables) == 2  # in memory, and streamed
    for table in result.tables:
        assert len(table.rows) == len(sizes.batch_sizes) * len(sizes.device_counts)
        assert all("–" not in cells[2] for cells in table.rows), table.rows
    assert not any(note.startswith("failed") for note in result.notes)
