"""The checkpoint files in tests/data/, written by descend 0.1.0 (its own container format).

They prove that files written before the move to safetensors still load. They were made
once, at commit c79a34f (descend 0.1.0, the last writer of that format), with::

    PYTHONPATH=src python tests/checkpoint_fixtures.py

Running this script with a later descend would write the new format: do not rerun it.
The tests rebuild the saved trees with :func:`tree_fixture` (all values are written out
by hand, none computed) and compare the saved model with ``fit-0.1.0.json``, which holds
the values the model had in memory when it was saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import ml_dtypes
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
TREE_FILE = DATA / "tree-0.1.0.ckpt"
FIT_FILE = DATA / "fit-0.1.0.ckpt"
FIT_VALUES = DATA / "fit-0.1.0.json"
TABLE = DATA / "fit-0.1.0.csv"

METADATA = {"epoch": 3, "note": "written by descend 0.1.0", "nested": {"a": [1, 2], "b": None},
            "diverged": float("inf")}  # fmt: skip


def tree_fixture() -> dict:
    """Named trees covering every kind of leaf the 0.1.0 format stored."""
    import optax

    from descend import optim

    params = {
        "w": np.array([[0.5, -1.0, 2.0], [0.25, 0.0, -3.5]], np.float32),
        "b": np.array([0.125, -0.5, 1.0], np.float32),
    }
    moments = {key: value * 0.5 for key, value in params.items()}
    squares = {key: value * value for key, value in params.items()}
    optax_state = optax.adam(1e-3).init(params)
    optax_state = (optax_state[0]._replace(count=np.int32(1), mu=moments, nu=squares),
                   *optax_state[1:])  # fmt: skip
    descend_state = optim.adam(lr=1e-3).init(params)
    descend_state = descend_state._replace(count=np.int32(2), exp_avg=moments, exp_avg_sq=squares)
    return {
        "params": params,
        "optax_state": optax_state,
        "opt_state": descend_state,
        "key": jax.random.key(7),
        "raw_key": jax.random.PRNGKey(3),
        "misc": {
            "complex64": np.array([1 + 2j, -0.5j, 3], np.complex64),
            "complex128": np.array([[1.5 - 1j, 0], [2j, -4]], np.complex128),
            "bfloat16": np.array([1.0, -2.5, 3.25], ml_dtypes.bfloat16),
            "uint8": np.array([0, 7, 255], np.uint8),
            "int64": np.array([-(2**40), 5], np.int64),
            "bool": np.array([True, False, True]),
            "zero_d": np.array(2.5, np.float64),
            "numpy_scalar": np.float32(1.5),
            "empty": np.zeros((0, 2), np.float32),
            "python": [0.25, 3, True, "relu", 1 + 2j, None],
        },
    }


def _table() -> str:
    rng = np.random.default_rng(0)
    size = rng.uniform(0, 3, 24).round(3)
    color = rng.choice(["red", "green", "blue"], 24)
    label = np.where(size + (color == "red") > 1.8, "yes", "no")
    rows = [f"{s},{c},{t}" for s, c, t in zip(size, color, label, strict=True)]
    return "\n".join(["size,color,label", *rows]) + "\n"


def _values(result) -> dict:
    """What the model held in memory when it was saved, as exact JSON values."""

    def leaves(tree):
        return [{"dtype": str(np.asarray(leaf).dtype), "value": np.asarray(leaf).tolist()}
                for leaf in jax.tree.leaves(tree)]  # fmt: skip

    return {
        "params": leaves(result.params),
        "opt_state": leaves(result.opt_state),
        "history": {key: np.asarray(value).tolist() for key, value in result.history.items()},
        "n_epochs": result.n_epochs,
        "n_updates": result.n_updates,
        "classes": np.asarray(result.classes).tolist(),
        "standardizer": result.standardizer.to_dict(),
        "encoding": result.encoding.to_dict(),
        "seed": result.seed,
        "dtype": result.dtype,
        "predictions": np.asarray(result.predict(str(TABLE))).tolist(),
        "probabilities": np.asarray(result.predict_proba(str(TABLE))).tolist(),
    }


def main() -> None:
    import descend as ds
    from descend.checkpoint import save_tree

    DATA.mkdir(exist_ok=True)
    save_tree(TREE_FILE, tree_fixture(), METADATA)
    TABLE.write_text(_table())
    result = ds.fit("logistic", str(TABLE), target="label", optimizer="adam", lr=0.1,
                    batch_size=8, epochs=2, standardize=True, seed=0, verbose=0)  # fmt: skip
    ds.save(FIT_FILE, result)
    FIT_VALUES.write_text(json.dumps(_values(result), indent=1) + "\n")


if __name__ == "__main__":
    main()
