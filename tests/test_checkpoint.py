"""Checkpoints: round trips, dtypes, atomic saves under SIGKILL, corruption detection,
the safetensors layout, and files written by descend 0.1.0."""

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
import safetensors.numpy
import safetensors.torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from checkpoint_fixtures import METADATA, TREE_FILE, tree_fixture
from descend import checkpoint
from descend.checkpoint import Checkpoint, legacy, load_metadata, load_tree, save_tree
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
        # At least 8 kills, and on until one lands while the file is being written (its
        # window is a part of each save: the rest is hashing and serializing).
        for attempt in range(60):
            if attempt >= 8 and killed_mid_save:
                break
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


@pytest.mark.parametrize(
    "where", ["length", "header", "tensor table", "metadata", "checksum", "payload", "last"]
)
def test_one_flipped_byte_is_detected(saved, where):
    data = bytearray(saved.read_bytes())
    position = {
        "length": 0,  # the header length
        "header": 8 + 5,  # inside "__metadata__"
        "tensor table": data.index(b'"F64"') + 2,
        "metadata": data.index(b"epoch"),
        "checksum": data.index(b'descend.sha256":"') + 20,
        "payload": len(data) - 400,
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


# ------------------------------------------------------------ forged files of descend 0.1.0


def _forge(path, header: dict, payload: bytes = b"", version: int = legacy.FORMAT_VERSION):
    """A file with a valid checksum around an arbitrary header (what an attacker can write)."""
    text = json.dumps(header).encode()
    body = legacy.MAGIC + struct.pack("<IQ", version, len(text)) + text
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


# ------------------------------------------------------------ files of descend 0.1.0


def _key_data(tree):
    """Typed PRNG keys as their key data, so that trees compare with assert_trees_equal."""

    def data(leaf):
        is_key = isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key
        )
        return jax.random.key_data(leaf) if is_key else leaf

    return jax.tree.map(data, tree)


def test_a_0_1_0_file_loads_with_the_values_it_was_saved_with():
    expected = tree_fixture()
    assert TREE_FILE.read_bytes().startswith(legacy.MAGIC)
    loaded = load_tree(TREE_FILE, like=expected)
    assert loaded.metadata == METADATA == load_metadata(TREE_FILE)
    assert_trees_equal(_key_data(loaded.trees), _key_data(expected))
    impl = jax.random.key_impl
    assert str(impl(loaded.trees["key"])) == str(impl(expected["key"]))
    plain = load_tree(TREE_FILE).trees
    assert list(plain["opt_state"]) == ["count", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert plain["misc"]["python"] == [0.25, 3, True, "relu", 1 + 2j, None]


def test_a_0_1_0_file_and_its_resave_load_the_same(ckpt):
    old = load_tree(TREE_FILE)
    save_tree(ckpt, old.trees, old.metadata)
    new = load_tree(ckpt)
    assert new.metadata == old.metadata
    assert_trees_equal(_key_data(new.trees), _key_data(old.trees))


def test_loaded_arrays_are_writable_in_both_formats(ckpt):
    save_tree(ckpt, {"p": {"w": np.zeros(3, np.float32), "b": np.zeros(2, ml_dtypes.bfloat16)}})
    for path in (ckpt, TREE_FILE):
        for leaf in jax.tree.leaves(load_tree(path).trees):
            if isinstance(leaf, np.ndarray) and leaf.size:
                leaf.reshape(-1)[0] = leaf.reshape(-1)[-1]  # raises if read-only


# ------------------------------------------------------------ the safetensors layout


def test_safetensors_numpy_and_torch_open_a_checkpoint(ckpt):
    trees = tree_fixture()
    save_tree(ckpt, trees, METADATA)
    params, state, misc = trees["params"], trees["opt_state"], trees["misc"]
    expected = {
        "params/w": params["w"],
        "opt_state/exp_avg/w": state.exp_avg["w"],
        "opt_state/count": np.asarray(state.count),
        "optax_state/0/mu/b": trees["optax_state"][0].mu["b"],
        "key": np.asarray(jax.random.key_data(trees["key"])),
        "misc/complex64": np.stack([misc["complex64"].real, misc["complex64"].imag], axis=-1),
        "misc/int64": misc["int64"],
        "misc/bool": misc["bool"],
        "misc/empty": misc["empty"],
        "misc/numpy_scalar": np.asarray(misc["numpy_scalar"]),
    }
    with_numpy = safetensors.numpy.load_file(ckpt)
    with_torch = safetensors.torch.load_file(ckpt)
    assert set(with_numpy) == set(with_torch) == {
        "params/w", "params/b", "key", "raw_key", *(f"optax_state/0/{field}" for field in
        ["count", "mu/w", "mu/b", "nu/w", "nu/b"]), *(f"opt_state/{field}" for field in
        ["count", "exp_avg/w", "exp_avg/b", "exp_avg_sq/w", "exp_avg_sq/b"]),
        *(f"misc/{name}" for name in misc if name != "python"),
    }  # fmt: skip
    for name, value in expected.items():
        assert with_numpy[name].dtype == value.dtype, name
        np.testing.assert_array_equal(with_numpy[name], value)
        np.testing.assert_array_equal(with_torch[name].numpy(), value)
    assert with_torch["misc/bfloat16"].dtype == safetensors.torch.torch.bfloat16
    np.testing.assert_array_equal(with_torch["misc/bfloat16"].float().numpy(), [1.0, -2.5, 3.25])
    with safe_open(ckpt, framework="np") as handle:
        metadata = handle.metadata()
    assert set(metadata) == {"descend.checkpoint", "descend.sha256"}
    assert json.loads(metadata["descend.checkpoint"])["metadata"]["epoch"] == 3


def test_tensor_names_follow_the_pytree_paths(ckpt):
    trees = {
        "params": {"a/b": np.ones(1), "50%": np.ones(1), "layers": [Layer(np.ones(2), np.ones(1))]},
        "state": Moments(np.int32(1), {"w": np.ones(1)}, {"w": np.ones(1)}),
        "scalar": np.float32(2.0),
        "a/b": {"c": np.zeros(1)},
        "__metadata__": np.ones(1),
        "python": {"lr": 0.1, "name": "adam"},
    }
    save_tree(ckpt, trees)
    assert set(safetensors.numpy.load_file(ckpt)) == {
        "params/a%2Fb", "params/50%25", "params/layers/0/w", "params/layers/0/b",
        "state/count", "state/mu/w", "state/nu/w", "scalar", "a%2Fb/c", "%5F_metadata__",
    }  # fmt: skip
    assert_trees_equal(load_tree(ckpt, like=trees).trees, jax.tree.map(np.asarray, trees))


def test_complex_arrays_are_stored_as_real_and_imaginary_parts(ckpt):
    array = np.array([[1 + 2j, 3 - 4j]], np.complex128)
    save_tree(ckpt, {"z": array, "scalar": np.complex64(5j)})
    tensors = safetensors.numpy.load_file(ckpt)
    np.testing.assert_array_equal(tensors["z"], [[[1, 2], [3, -4]]])
    np.testing.assert_array_equal(tensors["scalar"], np.array([0, 5], np.float32))
    trees = load_tree(ckpt).trees
    assert trees["z"].dtype == np.complex128 and trees["scalar"].shape == ()
    np.testing.assert_array_equal(trees["z"], array)
    assert trees["scalar"] == 5j and trees["scalar"].dtype == np.complex64


ML_DTYPES = sorted(
    name
    for name, kind in vars(ml_dtypes).items()
    if isinstance(kind, type) and issubclass(kind, np.generic)
)


@pytest.mark.parametrize("name", ML_DTYPES)
def test_every_ml_dtypes_type_round_trips_bit_for_bit(ckpt, name):
    array = np.array([[0, 1, 2], [3, 4, 5]]).astype(getattr(ml_dtypes, name))
    save_tree(ckpt, {"t": {"a": array}})
    loaded = load_tree(ckpt).trees["t"]["a"]
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded.view(np.uint8), array.view(np.uint8))
    # safetensors stores what it knows natively (torch reads those as its float8 types);
    # a complex type (ml_dtypes' complex32) is stored as its float parts, as complex64 is;
    # the other types are stored as their bytes.
    tensor = safetensors.torch.load_file(ckpt)["t/a"]
    if array.dtype.kind == "c":
        part = f"float{array.dtype.itemsize * 4}"  # real, imaginary, real, ...: the same bytes
        assert str(tensor.dtype) == f"torch.{part}" and tensor.shape == (*array.shape, 2)
        assert tensor.numpy().tobytes() == array.tobytes()
        return
    native = name in ("bfloat16", "float8_e4m3fn", "float8_e5m2")
    assert str(tensor.dtype) == f"torch.{name if native else 'uint8'}"


@pytest.mark.parametrize(
    "array", [np.array(["text"]), np.array(["2024-01-01"], "datetime64[D]"),
              np.ones(2, np.longdouble)], ids=["str", "datetime64", "longdouble"],
)  # fmt: skip
def test_dtypes_that_no_checkpoint_holds_are_refused(ckpt, array):
    if array.dtype == np.float64:
        pytest.skip("long double is double on this platform")
    with pytest.raises(DescendTypeError, match="cannot be saved; checkpoints hold bool"):
        save_tree(ckpt, {"p": array})
    assert not ckpt.exists()


def test_leaves_that_would_share_a_tensor_name_are_refused(ckpt):
    @jax.tree_util.register_pytree_with_keys_class
    class Pair:  # a node keyed by 1 and "1", which are one name as text
        def __init__(self, a, b):
            self.a, self.b = a, b

        def tree_flatten_with_keys(self):
            keys = [jax.tree_util.DictKey(1), jax.tree_util.DictKey("1")]
            return list(zip(keys, [self.a, self.b], strict=True)), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    with pytest.raises(DescendTypeError, match="two leaves would be stored as the tensor 'p/1'"):
        save_tree(ckpt, {"p": Pair(np.ones(1), np.zeros(1))})


def test_a_file_rewritten_by_safetensors_with_the_same_content_still_loads(ckpt, tmp_path):
    """The checksum covers the content, not the layout: safetensors may order the tensors
    and the metadata entries of its header differently on every write."""
    layers = [np.full((2, 3), i, np.float32) for i in range(12)]
    trees = {"params": {"layers": layers, "b": np.float64(1)}, "k": [1, "x"]}
    save_tree(ckpt, trees, {"epoch": 2})
    with safe_open(ckpt, framework="np") as handle:
        metadata = handle.metadata()
    copy = tmp_path / "copy.safetensors"
    safetensors.numpy.save_file(safetensors.numpy.load_file(ckpt), copy, metadata=metadata)
    loaded = load_tree(copy)
    assert loaded.metadata == {"epoch": 2}
    assert_trees_equal(loaded.trees, jax.tree.map(np.asarray, trees))


def test_a_safetensors_file_without_descend_metadata_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors.numpy.save_file({"w": np.ones(3)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a descend checkpoint") as info:
        load_tree(path)
    assert "safetensors.numpy.load_file" in str(info.value)


@pytest.mark.parametrize("change", ["append", "extra tensor", "drop tensor"])
def test_tensors_added_or_removed_are_detected(saved, tmp_path, change):
    tensors = safetensors.numpy.load_file(saved)
    with safe_open(saved, framework="np") as handle:
        metadata = handle.metadata()
    if change == "append":
        saved.write_bytes(saved.read_bytes() + bytes(8))
    elif change == "extra tensor":
        safetensors.numpy.save_file(tensors | {"x": np.ones(1)}, saved, metadata=metadata)
    else:
        safetensors.numpy.save_file({}, saved, metadata=metadata)
    with pytest.raises(CheckpointError, match="is truncated or was modified: checksum mismatch"):
        load_tree(saved)


# ------------------------------------------------------------ forged safetensors files

_CODES = {"float32": "F32", "float64": "F64", "uint8": "U8"}


def _forge_safetensors(path, header: dict, tensors: dict):
    """A file whose checksum, computed by the documented rule, is right (an attacker's)."""
    text = json.dumps(header)
    digest = hashlib.sha256(text.encode())
    for tree in header["trees"].values():
        for entry in tree["leaves"]:
            if "tensor" in entry:
                array = tensors[entry["tensor"]]
                code, shape = _CODES[array.dtype.name], ",".join(map(str, array.shape))
                digest.update(f"\0{entry['tensor']}\0{code}\0{shape}\0".encode())
                digest.update(array.tobytes())
    metadata = {"descend.checkpoint": text, "descend.sha256": digest.hexdigest()}
    safetensors.numpy.save_file(tensors, path, metadata=metadata)


def _leaf(**fields):
    return {"path": "", "keys": []} | fields


def test_a_forged_safetensors_file_with_the_right_checksum_loads(tmp_path):
    path = tmp_path / "forged.ckpt"
    leaf = _leaf(tensor="t", dtype="float32", shape=[2])
    header = {"version": 2, "metadata": {"by": "hand"},
              "trees": {"t": {"structure": {"leaf": 0}, "leaves": [leaf]}}}  # fmt: skip
    _forge_safetensors(path, header, {"t": np.array([1.5, 2.5], np.float32)})
    trees, metadata = load_tree(path)
    assert metadata == {"by": "hand"}
    np.testing.assert_array_equal(trees["t"], [1.5, 2.5])


def test_object_dtype_in_a_forged_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "forged.ckpt"
    pickled = np.frombuffer(pickle.dumps(_Touch(tmp_path / "unpickled")), np.uint8)
    leaf = _leaf(tensor="t", dtype="object", shape=[1])
    header = {"version": 2, "metadata": {},
              "trees": {"t": {"structure": {"leaf": 0}, "leaves": [leaf]}}}  # fmt: skip
    _forge_safetensors(path, header, {"t": pickled})
    with pytest.raises(CheckpointError, match="dtype 'object', which descend refuses to load"):
        load_tree(path)
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.parametrize(
    "leaf",
    [
        _leaf(tensor="t", dtype="float64", shape=[3]),  # the tensor is float32
        _leaf(tensor="t", dtype="float32", shape=[4]),  # the tensor has 3 values
        _leaf(tensor="t", dtype="complex64", shape=[3]),  # complex needs a last axis of 2
    ],
)
def test_a_forged_leaf_that_its_tensor_cannot_hold_is_refused(tmp_path, leaf):
    path = tmp_path / "forged.ckpt"
    header = {"version": 2, "metadata": {},
              "trees": {"t": {"structure": {"leaf": 0}, "leaves": [leaf]}}}  # fmt: skip
    _forge_safetensors(path, header, {"t": np.ones(3, np.float32)})
    with pytest.raises(CheckpointError, match="is not a valid descend checkpoint"):
        load_tree(path)


def test_a_newer_safetensors_format_version_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "future.ckpt"
    _forge_safetensors(path, {"version": 3, "metadata": {}, "trees": {}}, {})
    with pytest.raises(CheckpointError, match=r"version 3.*upgrade descend"):
        load_tree(path)
