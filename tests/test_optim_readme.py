"""The README's table of optimizers lists every algorithm, its reference and defaults."""

from __future__ import annotations

import re
from pathlib import Path

import descend as ds

README = Path(__file__).resolve().parents[1] / "README.md"

# What the test suite checks for each, by test file.
TORCH = "200-step trajectory, rtol 1e-9, float64, 3 problems (`test_optim_reference`)"
OPTAX = TORCH


def _suite(test_file: str, problems: str = "4 problems") -> str:
    return (
        f"200-step trajectory, rtol 1e-9, float64, {problems}; float32 minima; "
        f"no second compilation (`{test_file}`)"
    )


SIGNS = _suite("test_optim_signs")
CONTRIB = _suite("test_optim_contrib")
ADAMEXT = _suite("test_optim_adamext")
VALUES = _suite("test_optim_valuebased")
LAYERWISE = _suite("test_optim_layerwise")
FREE = _suite("test_optim_paramfree")
CHECKED = {
    "gd": TORCH + "; Armijo search: `test_minimize`",
    "sgd": TORCH,
    "momentum": TORCH,
    "adagrad": TORCH,
    "rmsprop": TORCH,
    "adadelta": TORCH,
    "adam": TORCH,
    "adamw": TORCH,
    "adamax": TORCH,
    "nadam": TORCH,
    "radam": TORCH,
    "adabelief": OPTAX,
    "lion": OPTAX,
    "rprop": TORCH,
    "asgd": TORCH,
    "lbfgs": "iterates and line-search evaluations (`test_optim_lbfgs`)",
    "adafactor": "trajectory, rtol 1e-9, on matrices and vectors (`test_optim_matrix`)",
    "muon": "trajectory on matrices, to bfloat16 precision (`test_optim_matrix`)",
    "schedule_free_sgd": _suite("test_optim_schedfree") + "; x, y and z; Optax too",
    "schedule_free_adamw": _suite("test_optim_schedfree") + "; x, y and z; Optax too",
    "sign_sgd": SIGNS,
    "signum": SIGNS,
    "noisy_sgd": SIGNS + "; the same noise from the same seed",
    "optimistic_gradient_descent": SIGNS,
    "optimistic_adam": SIGNS,
    "muon_optax": SIGNS + "; non-matrix leaves by its AdamW",
    "adopt": CONTRIB,
    "ademamix": CONTRIB,
    "simplified_ademamix": CONTRIB,
    "madgrad": CONTRIB,
    "adan": ADAMEXT,
    "amsgrad": ADAMEXT + "; differs from `adam(amsgrad=True)` (torch's), tested",
    "adamaxw": ADAMEXT,
    "nadamw": ADAMEXT,
    "yogi": ADAMEXT,
    "polyak_sgd": VALUES + "; given the loss value",
    "momo": VALUES + "; given the loss value",
    "momo_adam": VALUES + "; given the loss value",
    "sophia": VALUES + "; the same random probes from the same seed",
    "sam": VALUES + "; and every `sync_period`-th iterate of Optax's transparent mode",
    "lamb": LAYERWISE + "; masks on a dict of leaves",
    "lars": LAYERWISE + "; both masks on a dict of leaves",
    "fromage": LAYERWISE,
    "novograd": LAYERWISE + "; the mask against `optax.partition`",
    "sm3": LAYERWISE + "; a schedule against Optax's pieces",
    "cocob": FREE + "; a dict of leaves",
    "dog": FREE + "; a dict of leaves",
    "dowg": FREE + "; a dict of leaves",
    "dadapt_adamw": FREE,
    "prodigy": (
        "trajectory against prodigyopt and Optax, rtol 1e-9, float64, 4 problems, "
        "120 steps (rounding is amplified later: measured); float32 minima; "
        "no second compilation (`test_optim_paramfree`)"
    ),
    "mechanize": (
        "trajectory against Optax with adam, sgd and lion inside, rtol 1e-9, float64, "
        "50 steps (chaotic later: measured); float32 minima (`test_optim_paramfree`)"
    ),
}


def defaults_text(row: dict) -> str:
    """The hyperparameters and defaults as the README shows them."""
    settings = {**row["hyperparams"], **row["leaf_settings"]}
    return ", ".join(f"`{key}={value!r}`" for key, value in settings.items())


def _readme_rows() -> dict[str, list[str]]:
    text = README.read_text()
    start = text.index("| name | equals | hyperparameters (defaults) | checked |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[re.sub(r"`", "", cells[0])] = cells
    return rows


def test_the_readme_lists_every_algorithm_with_its_reference_and_defaults():
    rows = _readme_rows()
    listed = {row["name"]: row for row in ds.optim.available()}
    assert set(rows) == set(listed)
    for name, row in listed.items():
        cells = rows[name]
        assert cells[1] == f"`{row['reference']}`", name
        assert cells[2] == defaults_text(row), name
        assert cells[3] == CHECKED[name], name


def test_the_readme_counts_the_algorithms():
    assert f"{len(ds.optim.available())} algorithms" in README.read_text()


def test_the_reference_pages_document_every_algorithm():
    page = (README.parent / "docs" / "reference" / "optim.md").read_text()
    documented = set(re.findall(r"^ {8}- (\w+)$", page, flags=re.M))
    assert set(ds.optim.names()) <= documented
