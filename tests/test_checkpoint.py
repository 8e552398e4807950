"""Checkpoints: round trips, dtypes, atomic saves under SIGKILL, corruption detection."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descend import checkpoint
from descend.checkpoint import Checkpoint, load_metadata, load_tree, save_tree
from descend.errors import CheckpointError, DescendTypeError

SRC = str(Path(checkpoint.__file__).resolve().parents[1])


class Moments(NamedTuple):
    count: jax.Array
    mu: dict
    nu: dict


def assert_trees_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        if isinstance(e, (jax.Array, np.ndarray, np.generic)):
            assert np.asarray(a).dtype == np.asarray(e).dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
        else:
            assert type(a) is type(e) and a == e


@pytest.fixture
def ckpt(tmp_path):
    return tmp_path / "model.ckpt"


def test_round_trip_of_nested_dicts_lists_tuples_none_and_scalars(ckpt):
    params = {
        "layers": [{"w": np.arange(6.0).reshape(2, 3), "b": np.zeros(3, np.float32)}],
        "scale": (jnp.float32(2.0), None, 3, 0.25, True, "relu", 1 + 2j),
        "empty": np.zeros((0, 4)),
    }
    save_tree(ckpt, {"params": params}, {"epoch": 7})
    trees, metadata = load_tree(ckpt)
    # A JAX scalar comes back as a 0-d NumPy array of its dtype; Python scalars as themselves.
    assert_trees_equal(trees["params"], jax.tree.map(np.asarray, params))
    assert type(trees["params"]["scale"][0]) is np.ndarray
    assert metadata == {"epoch": 7}


def test_plain_load_gives_namedtuples_as_dicts_of_fields(ckpt):
    state = Moments(jnp.int32(3), {"w": jnp.ones(2)}, {"w": jnp.full(2, 0.5)})
    save_tree(ckpt, {"state": state}, {})
    loaded = load_tree(ckpt).trees["state"]
    assert isinstance(loaded, dict) and list(loaded) == ["count", "mu", "nu"]
    np.testing.assert_array_equal(loaded["nu"]["w"], [0.5, 0.5])


def test_like_restores_exact_optax_state_structure(ckpt):
    params = {"w": jnp.arange(4.0), "b": {"bias": jnp.zeros((2, 2))}}
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = optimizer.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = optimizer.update(grads, state, params)
    save_tree(ckpt, {"params": params, "opt_state": state}, {"step": 1})
    template = optimizer.init(params)
    loaded = load_tree(ckpt, like={"opt_state": template})
    assert_trees_equal(loaded.trees["opt_state"], state)
    # the restored state is usable by the optimizer as it is
    optimizer.update(grads, loaded.trees["opt_state"], params)


def test_like_accepts_shape_dtype_structs(ckpt):
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    save_tree(ckpt, {"params": params})
    template = jax.eval_shape(lambda: params)
    assert_trees_equal(load_tree(ckpt, like={"params": template}).trees["params"], params)


def test_ordered_dict_keeps_its_leaf_order_with_like(ckpt):
    tree = OrderedDict([("z", np.ones(1)), ("a", np.zeros(2))])
    save_tree(ckpt, {"t": tree})
    plain = load_tree(ckpt).trees["t"]
    assert list(plain) == ["z", "a"]
    assert_trees_equal(load_tree(ckpt, like={"t": tree}).trees["t"], tree)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["w", "b"], meta_fields=[])
@dataclasses.dataclass
class Layer:
    w: jax.Array
    b: jax.Array


def test_custom_pytree_nodes_load_as_children_or_exactly_with_like(ckpt):
    layers = [Layer(jnp.ones((2, 2)), jnp.zeros(2)), Layer(jnp.full((2, 1), 3.0), jnp.ones(1))]
    save_tree(ckpt, {"model": layers})
    plain = load_tree(ckpt).trees["model"]
    assert isinstance(plain[0], list) and len(plain[0]) == 2
    np.testing.assert_array_equal(plain[1][0], layers[1].w)
    assert_trees_equal(load_tree(ckpt, like={"model": layers}).trees["model"], layers)


DTYPES = [
    np.float32, np.float64, np.float16, ml_dtypes.bfloat16, np.int8, np.int32, np.int64,
    np.uint8, np.uint32, np.bool_, np.complex64, np.complex128,
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_arrays_keep_dtype_and_shape(ckpt, dtype, shape):
    values = np.random.default_rng(0).normal(size=shape) * 50
    array = values.astype(dtype) if dtype is not np.bool_ else values > 0
    tree = {"numpy": array}
    if jnp.asarray(array).dtype == array.dtype:  # 64-bit types need x64 in JAX
        tree["jax"] = jnp.asarray(array)
    save_tree(ckpt, {"t": tree})
    loaded = load_tree(ckpt).trees["t"]
    for leaf in loaded.values():
        assert leaf.dtype == np.dtype(dtype) and leaf.shape == shape
        np.testing.assert_array_equal(leaf, array)


def test_non_contiguous_and_big_endian_arrays_round_trip(ckpt):
    transposed = np.arange(12.0).reshape(3, 4).T
    big_endian = np.arange(5, dtype=">i4")
    save_tree(ckpt, {"t": [transposed, big_endian]})
    loaded = load_tree(ckpt).trees["t"]
    np.testing.assert_array_equal(loaded[0], transposed)
    np.testing.assert_array_equal(loaded[1], big_endian)


def test_float64_jax_arrays_round_trip_under_x64(ckpt):
    with jax.enable_x64(True):
        tree = {
            "w": jnp.linspace(0.0, 1.0, 7, dtype=jnp.float64),
            "i": jnp.arange(3, dtype=jnp.int64),
        }
        save_tree(ckpt, {"t": tree})
        loaded = load_tree(ckpt, like={"t": tree}).trees["t"]
    assert loaded["w"].dtype == np.float64 and loaded["i"].dtype == np.int64
    np.testing.assert_array_equal(loaded["w"], np.linspace(0.0, 1.0, 7))


@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["typed", "uint32"])
def test_rng_keys_round_trip_and_give_the_same_random_numbers(ckpt, make_key):
    keys = {"one": make_key(42), "split": jax.random.split(make_key(0), 3)}
    save_tree(ckpt, {"keys": keys})
    loaded = load_tree(ckpt, like={"keys": keys}).trees["keys"]
    for name, key in keys.items():
        assert loaded[name].dtype == key.dtype and loaded[name].shape == key.shape
    np.testing.assert_array_equal(
        jax.random.normal(jnp.asarray(loaded["one"]), (4,)), jax.random.normal(keys["one"], (4,))
    )


def test_metadata_round_trips_as_json_does(ckpt):
    metadata = {
        "epoch": 3, "loss": 0.125, "history": [1.0, 0.5], "nested": {"a": None, "t": (1, 2)},
        "numpy": np.float32(0.5), "diverged": float("inf"),
    }  # fmt: skip
    save_tree(ckpt, {"params": {"w": np.ones(1)}}, metadata)
    expected = json.loads(json.dumps(metadata, default=lambda v: v.item()))
    assert load_tree(ckpt).metadata == expected
    assert load_metadata(ckpt) == expected


def test_load_returns_a_named_pair(ckpt):
    save_tree(ckpt, {"p": np.ones(2)}, {"k": 1})
    result = load_tree(ckpt)
    assert isinstance(result, Checkpoint) and result.metadata == {"k": 1}


@st.composite
def pytrees(draw, depth=0):
    leaf = st.one_of(
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.tuples(
            st.sampled_from(["float32", "int32", "uint8", "bool"]),
            st.lists(st.integers(0, 3), max_size=3),
        ).map(lambda spec: np.ones(spec[1], dtype=spec[0])),
    )
    if depth >= 3:
        return draw(leaf)
    child = pytrees(depth=depth + 1)
    return draw(
        st.one_of(
            leaf,
            st.none(),
            st.lists(child, max_size=3),
            st.lists(child, max_size=3).map(tuple),
            st.dictionaries(st.text(min_size=1, max_size=4), child, max_size=3),
        )
    )


@settings(max_examples=25, deadline=None)
@given(tree=pytrees())
def test_any_supported_pytree_round_trips_with_like(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("ckpt") / "t.ckpt"
    save_tree(path, {"t": tree})
    assert_trees_equal(load_tree(path, like={"t": tree}).trees["t"], tree)
    assert_trees_equal(load_tree(path).trees["t"], tree)


# ------------------------------------------------------------ template mismatches


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"w": np.zeros(3)}, "has 2 leaves but the template"),
        ({"w": np.zeros(3), "b": np.zeros(3)}, "shape (2,) in the file but (3,)"),
        ({"w": np.zeros(3), "b": np.zeros(2, np.int32)}, "dtype float64 in the file but int32"),
        ({"w": np.zeros(3), "c": np.zeros(2)}, "the structures differ"),
    ],
)
def test_like_mismatch_names_the_leaf(ckpt, template, message):
    save_tree(ckpt, {"params": {"w": np.zeros(3), "b": np.zeros(2)}})
    with pytest.raises(CheckpointError, match="params") as info:
        load_tree(ckpt, like={"params": template})
    assert message in str(info.value)


def test_like_with_an_unknown_tree_name_suggests_the_right_one(ckpt):
    save_tree(ckpt, {"params": np.zeros(1)})
    with pytest.raises(CheckpointError, match="did you mean 'params'"):
        load_tree(ckpt, like={"parms": np.zeros(1)})


# ------------------------------------------------------------ refusing bad input on save


@pytest.mark.parametrize(
    ("trees", "metadata", "message"),
    [
        ({"p": {"f": print}}, {}, "cannot save a builtin_function_or_method"),
        ({"p": np.array([{}], dtype=object)}, {}, "dtype object cannot be saved"),
        ({"p": {1: np.ones(1)}}, {}, "keys must be str"),
        ({"p": np.ones(1)}, {"bad": object()}, "metadata must be JSON-able"),
        ([np.ones(1)], {}, "trees must be a dict of named pytrees"),
    ],
)
def test_save_refuses_what_it_cannot_store(ckpt, trees, metadata, message):
    with pytest.raises(DescendTypeError, match=message):
        save_tree(ckpt, trees, metadata)
    assert not ckpt.exists() and list(ckpt.parent.iterdir()) == []


def test_save_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        save_tree(tmp_path / "nowhere" / "x.ckpt", {"p": np.ones(1)})


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(ckpt, monkeypatch):
    save_tree(ckpt, {"p": np.zeros(3)}, {"version": "old"})

    def broken_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_tree(ckpt, {"p": np.ones(3)}, {"version": "new"})
    monkeypatch.undo()
    assert load_tree(ckpt).metadata == {"version": "old"}
    assert [p.name for p in ckpt.parent.iterdir()] == [ckpt.name]


def test_replacing_a_checkpoint_keeps_its_permissions(ckpt):
    save_tree(ckpt, {"p": np.zeros(1)})
    ckpt.chmod(0o640)
    save_tree(ckpt, {"p": np.ones(1)})
    assert ckpt.stat().st_mode & 0o777 == 0o640


# ------------------------------------------------------------ atomicity under SIGKILL

_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from descend.checkpoint import save_tree

    path, step = sys.argv[1], 0
    for _ in sys.stdin:  # one killed writer per line; forking skips re-importing JAX
        child = os.fork()
        if child == 0:
            while True:
                step += 1
                trees = {"params": {"w": np.full(2_000_000, step, np.float32),
                                    "b": np.full(1000, step, np.int64)}}
                save_tree(path, trees, {"step": step})
        print(child, flush=True)
        os.waitpid(child, 0)
        step += 10_000
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_checkpoint_survives_sigkill_mid_save(ckpt):
    save_tree(
        ckpt,
        {"params": {"w": np.zeros(2_000_000, np.float32), "b": np.zeros(1000, np.int64)}},
        {"step": 0},
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(ckpt)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=env, text=True,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    steps, killed_mid_save = [], 0
    try:
        for _ in range(8):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            child = int(writer.stdout.readline())
            time.sleep(rng.uniform(0.02, 0.4))
            os.kill(child, signal.SIGKILL)
            time.sleep(0.05)  # let the writer reap it
            trees, metadata = load_tree(ckpt)
            step = metadata["step"]
            for leaf in jax.tree.leaves(trees):
                assert np.all(leaf == step)
            assert trees["params"]["w"].shape == (2_000_000,)
            steps.append(step)
            for stray in ckpt.parent.glob(f".{ckpt.name}.*.tmp"):
                stray.unlink()  # the partial file of the killed save
                killed_mid_save += 1
    finally:
        writer.stdin.close()
        writer.wait(timeout=10)
    assert steps == sorted(steps) and steps[-1] > 0  # some saves completed between kills
    assert killed_mid_save > 0  # and some kills did land in the middle of a save


# ------------------------------------------------------------ corrupt and foreign files


@pytest.fixture
def saved(ckpt):
    save_tree(ckpt, {"params": {"w": np.arange(100.0)}}, {"epoch": 1})
    return ckpt


def test_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "absent.ckpt"
    with pytest.raises(CheckpointError, match=r"absent\.ckpt' does not exist"):
        load_tree(path)


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.1, 30 / 1000, 10 / 1000])
def test_truncated_file_is_reported_as_truncated(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: max(1, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match="is truncated or was modified: checksum mismatch"):
        load_tree(saved)


def test_empty_file_is_refused(saved):
    saved.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_tree(saved)


@pytest.mark.parametrize("where", ["version", "header", "payload", "checksum", "last"])
def test_one_flipped_byte_is_detected(saved, where):
    data = bytearray(saved.read_bytes())
    header_start = len(checkpoint._MAGIC) + 12
    position = {
        "version": len(checkpoint._MAGIC),
        "header": header_start + 5,
        "payload": len(data) - 32 - 400,
        "checksum": len(data) - 20,
        "last": len(data) - 1,
    }[where]
    data[position] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match="checksum mismatch; re-save it or restore it from a backup"
    ):
        load_tree(saved)


class _Touch:
    """Unpickling this creates a file: proof that a loader unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _foreign_files(tmp_path):
    npz = tmp_path / "arrays.npz"
    np.savez(npz, w=np.ones(3))
    npy = tmp_path / "array.npy"
    np.save(npy, np.ones(3))
    return {
        "pickle": (pickle.dumps(_Touch(tmp_path / "unpickled")), "pickle file"),
        "npz": (npz.read_bytes(), "zip or .npz"),
        "npy": (npy.read_bytes(), ".npy file"),
        "random": (np.random.default_rng(1).bytes(4096), "not a descend checkpoint"),
        "text": (b"epoch,loss\n1,0.5\n", "not a descend checkpoint"),
    }


@pytest.mark.parametrize("kind", ["pickle", "npz", "npy", "random", "text"])
def test_files_of_other_formats_are_refused_without_unpickling(tmp_path, kind):
    content, message = _foreign_files(tmp_path)[kind]
    path = tmp_path / "foreign.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a descend checkpoint") as info:
        load_tree(path)
    assert message in str(info.value)
    assert not (tmp_path / "unpickled").exists()


def _forge(path, header: dict, payload: bytes = b"", version: int = checkpoint.FORMAT_VERSION):
    """A file with a valid checksum around an arbitrary header (what an attacker can write)."""
    text = json.dumps(header).encode()
    body = checkpoint._MAGIC + struct.pack("<IQ", version, len(text)) + text
    body += bytes(-len(body) % 64) + payload
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_object_dtype_in_a_forged_file_is_refused(tmp_path):
    path = tmp_path / "forged.ckpt"
    pickled = pickle.dumps(_Touch(tmp_path / "unpickled"))
    leaf = {"path": "", "keys": [], "dtype": "object", "shape": [1], "offset": 0, "nbytes": 8}
    header = {"metadata": {}, "payload_bytes": len(pickled),
              "trees": {"t": {"structure": {"leaf": 0}, "leaves": [leaf]}}}  # fmt: skip
    _forge(path, header, pickled)
    with pytest.raises(CheckpointError, match="dtype 'object', which descend refuses to load"):
        load_tree(path)
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.parametrize(
    "leaf",
    [
        {"dtype": "float64", "shape": [100], "offset": 0, "nbytes": 800},  # beyond the payload
        {"dtype": "float64", "shape": [2], "offset": 0, "nbytes": 24},  # size disagrees
        {"dtype": "float64", "shape": [-1], "offset": 0, "nbytes": -8},
    ],
)
def test_forged_leaf_outside_the_payload_is_refused(tmp_path, leaf):
    path = tmp_path / "forged.ckpt"
    entry = {"path": "", "keys": []} | leaf
    header = {"metadata": {}, "payload_bytes": 16,
              "trees": {"t": {"structure": {"leaf": 0}, "leaves": [entry]}}}  # fmt: skip
    _forge(path, header, bytes(16))
    with pytest.raises(CheckpointError, match="is not a valid descend checkpoint"):
        load_tree(path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "future.ckpt"
    _forge(path, {"metadata": {}, "payload_bytes": 0, "trees": {}}, version=99)
    with pytest.raises(CheckpointError, match=r"version 99.*upgrade descend"):
        load_tree(path)
