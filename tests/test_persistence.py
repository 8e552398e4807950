"""save / load of trained models: every field round-trips, and bad files are refused."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

import descend as ds
from checkpoint_fixtures import FIT_FILE, FIT_VALUES, TABLE
from descend import checkpoint, models
from descend.errors import CheckpointError, DescendTypeError, InputError
from descend.optim import schedules
from descend.training.result import FitResult


def leaves_equal(a, b):
    a_leaves, a_tree = jax.tree.flatten(a)
    b_leaves, b_tree = jax.tree.flatten(b)
    return a_tree == b_tree and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)
        for x, y in zip(a_leaves, b_leaves, strict=True)
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A CSV file with a text feature and a text target (three classes)."""
    rng = np.random.default_rng(0)
    size = rng.uniform(0, 3, 60)
    color = rng.choice(["red", "green"], 60)
    label = np.where(size + (color == "red") > 2.5, "large", np.where(size > 1, "mid", "small"))
    path = tmp_path_factory.mktemp("data") / "things.csv"
    lines = ["size,color,label"] + [
        f"{float(s)!r},{c},{t}" for s, c, t in zip(size, color, label, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(table):
    """A result with every optional field set: encoding, classes, standardizer,
    validation history, early stopping's best epoch, float64, a seed."""
    return ds.fit(
        models.mlp(hidden=(5,), task="multiclass"), str(table), target="label",
        optimizer="adam", lr=0.05, batch_size=16, epochs=200, validation_split=0.3,
        patience=2, min_delta=0.05, standardize=True, dtype="float64", seed=3, verbose=0,
    )  # fmt: skip


def assert_same_result(loaded: FitResult, result: FitResult) -> None:
    for field in dataclasses.fields(FitResult):
        saved, restored = getattr(result, field.name), getattr(loaded, field.name)
        if field.name in ("params", "opt_state"):
            assert leaves_equal(restored, saved), field.name
        elif field.name == "history":
            assert restored.keys() == saved.keys()
            for key in saved:
                np.testing.assert_array_equal(restored[key], saved[key])
        elif field.name == "classes":
            assert restored is None if saved is None else restored.tolist() == saved.tolist()
        elif field.name == "best":  # early stopping's record, its kept weights too
            assert (restored is None) == (saved is None)
            if saved is not None:
                numbers = ("loss", "epoch", "waited")
                assert [getattr(restored, k) for k in numbers] == [
                    getattr(saved, k) for k in numbers
                ]
                assert leaves_equal(
                    (restored.params, restored.opt_state), (saved.params, saved.opt_state)
                )
        elif field.name in ("standardizer", "target_standardizer", "encoding"):
            assert (restored is None) == (saved is None)
            if saved is not None:
                assert restored.to_dict() == saved.to_dict()
        else:
            assert restored == saved, field.name


def test_every_field_round_trips(trained, tmp_path):
    assert trained.status == "early_stopping" and trained.best_epoch is not None
    assert trained.encoding is not None and trained.standardizer is not None
    path = tmp_path / "model.ckpt"
    ds.save(path, trained)
    assert_same_result(ds.load(path), trained)


def test_a_loaded_model_predicts_as_the_trained_one(trained, table, tmp_path):
    ds.save(tmp_path / "model.ckpt", trained)
    loaded = ds.load(str(tmp_path / "model.ckpt"))
    predictions = trained.predict(str(table))
    assert set(predictions) <= {"large", "mid", "small"}
    np.testing.assert_array_equal(loaded.predict(str(table)), predictions)
    np.testing.assert_array_equal(
        loaded.predict_proba(str(table)), trained.predict_proba(str(table))
    )
    labels = np.genfromtxt(table, delimiter=",", dtype=str, skip_header=1)[:, 2]
    assert loaded.score(str(table), labels) == trained.score(str(table), labels)


def test_saving_keeps_the_float32_default_and_a_plain_regression(tmp_path):
    X = np.random.default_rng(1).normal(size=(20, 2))
    result = ds.fit(
        "linear", X, X @ [1.0, 2.0], optimizer="sgd", lr=0.1, batch_size=None, epochs=3, verbose=0
    )
    ds.save(tmp_path / "linear.ckpt", result)
    loaded = ds.load(tmp_path / "linear.ckpt")
    assert_same_result(loaded, result)
    assert loaded.params["w"].dtype == np.float32


def custom_model():
    def apply(params, X):
        return params["scale"] * jnp.tanh(X @ params["w"])

    return models.custom(apply, {"scale": jnp.ones(()), "w": jnp.zeros(2)})


def test_a_custom_model_must_be_given_to_load_and_to_resume(tmp_path):
    X = np.random.default_rng(2).normal(size=(30, 2))
    y = np.tanh(X[:, 0])
    model = custom_model()
    common = dict(optimizer="sgd", lr=0.05, batch_size=None, dtype="float64", verbose=0)
    four = ds.fit(model, X, y, epochs=4, **common)
    two = ds.fit(model, X, y, epochs=2, **common)
    path = tmp_path / "custom.ckpt"
    ds.save(path, two)
    with pytest.raises(CheckpointError, match=r"custom model.*load\(path, model="):
        ds.load(path)
    loaded = ds.load(path, model=model)
    assert_same_result(loaded, two)
    assert loaded.params["w"].dtype == np.float64
    np.testing.assert_array_equal(loaded.predict(X), two.predict(X))
    resumed = ds.fit(model, X, y, epochs=4, resume=path, **common)
    assert leaves_equal(resumed.params, four.params)


def test_an_optimizer_with_a_schedule_must_be_given_to_load_to_train_on(tmp_path):
    X = np.random.default_rng(3).normal(size=(20, 2))
    optimizer = ds.optim.sgd(lr=schedules.inverse_scaling(0.1))
    result = ds.fit("linear", X, X[:, 0], optimizer=optimizer, batch_size=None, epochs=2, verbose=0)
    path = tmp_path / "scheduled.ckpt"
    ds.save(path, result)
    loaded = ds.load(path)  # predicts without it
    np.testing.assert_array_equal(loaded.predict(X), result.predict(X))
    with pytest.raises(CheckpointError, match=r"ds.load\(path, optimizer=\.\.\.\)"):
        ds.fit("linear", X, X[:, 0], epochs=4, resume=loaded, verbose=0)
    assert_same_result(ds.load(path, optimizer=optimizer), result)


def test_loading_with_an_optimizer_of_another_state_is_refused(tmp_path):
    X = np.random.default_rng(4).normal(size=(20, 2))
    result = ds.fit("linear", X, X[:, 0], optimizer="adam", batch_size=None, epochs=1, verbose=0)
    ds.save(tmp_path / "adam.ckpt", result)
    with pytest.raises(CheckpointError, match="does not fit"):
        ds.load(tmp_path / "adam.ckpt", optimizer=ds.optim.momentum(lr=0.1))


def test_a_loss_function_is_not_stored_and_must_be_given_to_resume(tmp_path):
    X = np.random.default_rng(5).normal(size=(24, 2))
    y = X @ [1.0, -1.0]

    def squared_error(predictions, targets):
        return (predictions - targets) ** 2

    common = dict(loss=squared_error, optimizer="sgd", lr=0.1, batch_size=8, seed=1, verbose=0)
    four = ds.fit("linear", X, y, epochs=4, **common)
    two = ds.fit("linear", X, y, epochs=2, **common)
    ds.save(tmp_path / "two.ckpt", two)
    assert ds.load(tmp_path / "two.ckpt").loss is None
    with pytest.raises(InputError, match="pass it again"):
        ds.fit("linear", X, y, epochs=4, resume=tmp_path / "two.ckpt", verbose=0)
    resumed = ds.fit("linear", X, y, epochs=4, resume=tmp_path / "two.ckpt", **common)
    assert leaves_equal(resumed.params, four.params)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_tampered_file_is_refused(trained, tmp_path, where):
    path = tmp_path / "model.ckpt"
    ds.save(path, trained)
    content = bytearray(path.read_bytes())
    content[int(len(content) * where)] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(CheckpointError):
        ds.load(path)


def test_a_checkpoint_that_is_not_a_saved_model_is_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    checkpoint.save_tree(path, {"params": {"w": np.zeros(2)}}, {"format": "something else"})
    with pytest.raises(CheckpointError, match="not a saved model"):
        ds.load(path)


def test_a_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.ckpt"):
        ds.load(tmp_path / "missing.ckpt")


def test_save_takes_only_fit_results(tmp_path):
    with pytest.raises(DescendTypeError, match="takes the result of fit"):
        ds.save(tmp_path / "x.ckpt", {"w": np.zeros(2)})


def test_the_tensors_of_a_saved_model_are_named_by_their_paths(tmp_path):
    X = np.random.default_rng(6).normal(size=(20, 2))
    result = ds.fit("linear", X, X[:, 0], optimizer="adam", batch_size=None, epochs=2, verbose=0)
    ds.save(tmp_path / "model.ckpt", result)
    tensors = safetensors.numpy.load_file(tmp_path / "model.ckpt")
    assert set(tensors) == {"params/w", "params/b", "opt_state/count", "opt_state/exp_avg/w",
                            "opt_state/exp_avg/b", "opt_state/exp_avg_sq/w",
                            "opt_state/exp_avg_sq/b"}  # fmt: skip
    np.testing.assert_array_equal(tensors["params/w"], result.params["w"])
    np.testing.assert_array_equal(tensors["opt_state/exp_avg/w"], result.opt_state.exp_avg["w"])


OPTIMIZERS = [name for name in ds.optim.names() if name != "lbfgs"] + [
    ds.optim.lbfgs(),
    ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.decoupled_weight_decay(0.1,
                   lr=0.01), ds.optim.adam(lr=0.01)),
]  # fmt: skip


UNREBUILT = {  # optimizers a file cannot rebuild: their code, or a chain of them
    "sam": lambda: ds.optim.sam(),
    "chain": lambda: ds.optim.chain(ds.optim.clip_by_global_norm(1.0), ds.optim.adam(0.01)),
    "schedule": lambda: ds.optim.adam(lr=schedules.inverse_scaling(0.05)),
    "mask function": lambda: ds.optim.adamw(weight_decay_mask=lambda path, leaf: path == "w"),
    "wrapped": lambda: ds.optim.reduce_on_plateau(ds.optim.sgd(schedules.inverse_scaling(0.1))),
}


@pytest.mark.parametrize("kind", list(UNREBUILT))
def test_a_checkpoint_whose_optimizer_cannot_be_rebuilt_loads_to_predict_and_save(tmp_path, kind):
    X = np.random.default_rng(7).normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(float)
    optimizer = UNREBUILT[kind]()
    options = dict(batch_size=8, verbose=0)
    whole = ds.fit("logistic", X, y, optimizer=optimizer, epochs=4, **options)
    half = ds.fit("logistic", X, y, optimizer=optimizer, epochs=2, **options)
    path = tmp_path / "model.ckpt"
    ds.save(path, half)

    loaded = ds.load(path)  # no optimizer needed to predict, evaluate or save again
    np.testing.assert_array_equal(loaded.predict_proba(X), half.predict_proba(X))
    assert loaded.evaluate(X, y)["accuracy"] == half.evaluate(X, y)["accuracy"]
    assert repr(loaded.optimizer) == repr(half.optimizer)
    assert repr(half.optimizer) in repr(loaded)
    again = tmp_path / "again.ckpt"
    ds.save(again, loaded)
    reloaded = ds.load(again, optimizer=optimizer)
    for name in ("params", "opt_state"):
        for a, b in zip(jax.tree.leaves(getattr(reloaded, name)),
                        jax.tree.leaves(getattr(half, name)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)

    # Training on needs the optimizer, and says how to give it.
    for resume in (loaded, path):
        with pytest.raises(CheckpointError, match=r"cannot be rebuilt .* ds.load\(path, opti"):
            ds.fit("logistic", X, y, epochs=4, resume=resume, **options)
    with pytest.raises(CheckpointError, match="cannot be rebuilt"):
        loaded.optimizer.init(loaded.params)
    resumed = ds.fit("logistic", X, y, optimizer=optimizer, epochs=4, resume=again, **options)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_optimizer_state_comes_back_in_its_own_structure(tmp_path, optimizer, dtype):
    X = np.random.default_rng(7).normal(size=(12, 2))
    model = "linear"
    given = {}
    if optimizer == "muon":  # which takes 2-D weights only
        model = models.custom(lambda params, X: (X @ params["w"])[:, 0], {"w": jnp.zeros((2, 1))})
        given["model"] = model
    result = ds.fit(model, X, X[:, 0], optimizer=optimizer, batch_size=None, epochs=2,
                    dtype=dtype, verbose=0)  # fmt: skip
    # The one fit trained with (lbfgs: tolerances set); sam holds a chain of two
    # optimizers as its adversary, which the file cannot rebuild (load says so).
    if not isinstance(optimizer, str) or optimizer == "sam":
        given["optimizer"] = result.optimizer
    ds.save(tmp_path / "model.ckpt", result)
    loaded = ds.load(tmp_path / "model.ckpt", **given)
    assert_same_result(loaded, result)


# ------------------------------------------------------------ a model saved by descend 0.1.0


def test_a_model_saved_by_0_1_0_loads_with_the_values_it_had():
    expected = json.loads(FIT_VALUES.read_text())
    loaded = ds.load(FIT_FILE)
    for name in ("params", "opt_state"):
        leaves = jax.tree.leaves(getattr(loaded, name))
        assert [str(leaf.dtype) for leaf in leaves] == [e["dtype"] for e in expected[name]]
        for leaf, saved in zip(leaves, expected[name], strict=True):
            np.testing.assert_array_equal(leaf, saved["value"])
    assert type(loaded.opt_state).__name__ == "AdamState"
    assert {key: value.tolist() for key, value in loaded.history.items()} == expected["history"]
    assert loaded.standardizer.to_dict() == expected["standardizer"]
    assert loaded.encoding.to_dict() == expected["encoding"]
    assert loaded.classes.tolist() == expected["classes"]
    for field in ("n_epochs", "n_updates", "seed", "dtype"):
        assert getattr(loaded, field) == expected[field], field
    assert loaded.predict(str(TABLE)).tolist() == expected["predictions"]
    # The weights are bit for bit those saved; the probabilities are computed today, where
    # a one-output model on a few rows multiplies X @ w (0.1.0 summed X * w by rows): the
    # same numbers to float32 rounding.
    np.testing.assert_allclose(
        loaded.predict_proba(str(TABLE)), expected["probabilities"], rtol=1e-6, atol=1e-7
    )


def test_training_resumes_from_a_model_saved_by_0_1_0(tmp_path):
    common = dict(target="label", batch_size=8, verbose=0)
    resumed = ds.fit("logistic", str(TABLE), epochs=3, resume=FIT_FILE, **common)
    # 0.1.0 trained without a penalty, and the resumed run keeps the checkpoint's (none)
    whole = ds.fit("logistic", str(TABLE), optimizer="adam", lr=0.1, epochs=3, standardize=True,
                   seed=0, l2=0.0, **common)  # fmt: skip
    assert resumed.n_epochs == 3
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    ds.save(tmp_path / "resumed.ckpt", resumed)  # and it is saved in the new format
    assert_same_result(ds.load(tmp_path / "resumed.ckpt"), resumed)


# ---------------------------------------------------------------- resuming a run


def _noisy_labels(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return X, (X[:, 0] + 0.8 * rng.normal(size=n) > 0).astype(int)


def _exploding_line():
    x = np.linspace(100, 500, 21)
    return x[:, None], 0.3 * x + 7


# Each stopping rule, with its own numbers, and where to interrupt: before the rule
# fires and, for early stopping, also after the best epoch (its weights kept aside).
RUNS = {
    "early stopping on validation loss, restored (the filed case)": (
        "logistic", _noisy_labels, 6, 40,
        dict(optimizer="adam", lr=0.2, batch_size=16, validation_split=0.3, patience=3),
    ),
    "early stopping at the best epoch itself": (
        "logistic", _noisy_labels, 5, 40,
        dict(optimizer="adam", lr=0.2, batch_size=16, validation_split=0.3, patience=3),
    ),
    "early stopping on training loss, not restored": (
        "logistic", _noisy_labels, 4, 60,
        dict(optimizer="sgd", lr=0.5, batch_size=32, patience=2, min_delta=1e-3,
             restore_best=False),
    ),
    "gradient tolerance": (
        "logistic", _noisy_labels, 3, 60, dict(optimizer="gd", lr=1.0, batch_size=None, tol=2e-3),
    ),
    "plateau rule on the optimizer": (
        "logistic", _noisy_labels, 4, 14,
        dict(optimizer=ds.optim.reduce_on_plateau(ds.optim.sgd(lr=0.8), patience=2),
             batch_size=20, validation_split=0.25),
    ),
    "schedule over the whole run": (
        "logistic", _noisy_labels, 3, 8,
        dict(optimizer=ds.optim.sgd(lr=schedules.one_cycle(0.5, total_steps=8 * 19)),
             batch_size=16),
    ),
    "loss growing without bound": (
        "linear", _exploding_line, 3, 300,
        dict(optimizer="sgd", lr=1e-5, batch_size=None, standardize=False),
    ),
}  # fmt: skip


@pytest.mark.parametrize("how", ["file", "state"])
@pytest.mark.parametrize("case", list(RUNS))
def test_a_resumed_run_equals_the_uninterrupted_one_bit_for_bit(case, how, tmp_path):
    """Everything that decides a run's future is saved: early stopping's best loss, epoch,
    weights and count, plateau rules, the shuffled order, schedules, the divergence guard."""
    model, make_data, stop_after, epochs, options = RUNS[case]
    X, y = make_data()
    options = dict(options, seed=3, dtype="float64", verbose=0)
    straight = ds.fit(model, X, y, epochs=epochs, **options)
    first = ds.fit(model, X, y, epochs=stop_after, **options)
    assert first.status == "max_epochs" and straight.n_epochs > stop_after  # a real split
    start = dict(init=first.state)
    if how == "file":
        ds.save(tmp_path / "first.descend", first)
        start = dict(resume=tmp_path / "first.descend")
    resumed = ds.fit(model, X, y, epochs=epochs, **start, **options)
    assert (resumed.status, resumed.n_epochs, resumed.best_epoch) == (
        straight.status, straight.n_epochs, straight.best_epoch,
    )  # fmt: skip
    assert resumed.reason == straight.reason
    assert leaves_equal(resumed.params, straight.params)
    assert leaves_equal(resumed.opt_state, straight.opt_state)
    for key in straight.history:
        if key != "time":
            np.testing.assert_array_equal(resumed.history[key], straight.history[key])


def test_a_model_trained_on_arrays_predicts_from_a_table_of_its_columns(tmp_path, capsys):
    import pandas as pd

    from descend.cli import main
    from descend.errors import DataError

    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, 3))
    result = ds.fit("logistic", X, (X[:, 0] > 0) * 1, epochs=2, verbose=0)
    path = tmp_path / "plain.ckpt"
    ds.save(path, result)
    table = tmp_path / "new.csv"
    pd.DataFrame(X[:7], columns=["a", "b", "c"]).to_csv(table, index=False)
    expected = result.predict_proba(X[:7])
    np.testing.assert_allclose(result.predict_proba(str(table)), expected, rtol=1e-6)
    np.testing.assert_allclose(result.predict_proba(pd.DataFrame(X[:7])), expected, rtol=1e-6)
    assert main(["predict", str(path), str(table)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == "prediction" and printed[1:] == [str(v) for v in result.predict(X[:7])]
    pd.DataFrame({"a": ["x"] * 3, "b": X[:3, 1], "c": X[:3, 2]}).to_csv(table, index=False)
    with pytest.raises(DataError, match=r"has text in column 'a'.*trained on arrays"):
        result.predict(str(table))


def test_an_unrebuilt_optimizer_may_be_given_by_name_to_load_and_to_resume(tmp_path):
    X = np.random.default_rng(12).normal(size=(40, 2))
    y = (X[:, 0] > 0) * 1.0
    options = dict(optimizer="sam", batch_size=8, verbose=0)
    whole = ds.fit("logistic", X, y, epochs=4, **options)
    ds.save(tmp_path / "half.ckpt", ds.fit("logistic", X, y, epochs=2, **options))
    loaded = ds.load(tmp_path / "half.ckpt", optimizer="sam")
    assert loaded.optimizer == ds.optim.sam()
    resumed = ds.fit("logistic", X, y, epochs=4, resume=tmp_path / "half.ckpt", **options)
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    with pytest.raises(DescendTypeError, match="an optimizer or its name, got int"):
        ds.load(tmp_path / "half.ckpt", optimizer=3)
