"""Training models by gradient descent: :func:`fit` and what it returns.

- :mod:`~descend.training.train`: ``fit``, the front door.
- :mod:`~descend.training.prepare`: arrays, labels, weights, validation and scaling.
- :mod:`~descend.training.streams`: data read chunk by chunk.
- :mod:`~descend.training.loop`: the epochs, on the engine's compiled epoch.
- :mod:`~descend.training.result`: :class:`FitResult`.
- :mod:`~descend.training.saving`: ``save`` and ``load`` of a trained model.
"""

from __future__ import annotations

from descend.training.result import FitResult, FitState
from descend.training.saving import load, save
from descend.training.train import fit

__all__ = ["FitResult", "FitState", "fit", "load", "save"]
