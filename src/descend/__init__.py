"""descend: gradient descent as a real tool.

Exact derivatives and gradients (JAX autodiff), the classic gradient-descent
optimizers, a compiled minimization loop that stops for a reason it can state, and
training of models by batch, stochastic or mini-batch gradient descent.

>>> import descend as ds
>>> float(ds.derivative(lambda x: 5 * x**2)(1.0))
10.0
"""

from __future__ import annotations

import importlib
from typing import Any

from descend import errors, optim
from descend._version import __version__
from descend.calculus import derivative, gradient, hessian, value_and_grad
from descend.errors import DescendError
from descend.expr import Expression, parse
from descend.minimization import MinimizeResult, minimize
from descend.sweeps import Sweep
from descend.training import FitResult, FitState, fit, load, save

# Submodules that pull in more (data formats, plotting, scikit-learn) load on first use.
_LAZY_MODULES = (
    "functions", "mgh", "multistart", "losses", "models", "data", "checkpoint", "plot",
    "sklearn", "distributed", "callbacks",
)  # fmt: skip
# The race lives with the pictures (matplotlib), loaded on first use as well.
_LAZY_NAMES = {
    "compare": "descend.plot.racing",
    "CompareResult": "descend.plot.racing",
    "use_compilation_cache": "descend.cache",
}


def __dir__() -> list[str]:
    return sorted({*__all__, *_LAZY_MODULES, *_LAZY_NAMES})


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"descend.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'descend' has no attribute {name!r}")


__all__ = [
    "CompareResult",
    "DescendError",
    "Expression",
    "FitResult",
    "FitState",
    "MinimizeResult",
    "Sweep",
    "__version__",
    "compare",
    "derivative",
    "errors",
    "fit",
    "gradient",
    "hessian",
    "load",
    "minimize",
    "optim",
    "parse",
    "save",
    "use_compilation_cache",
    "value_and_grad",
]
