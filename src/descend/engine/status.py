"""Why a loop stopped: one :class:`Status` per stopping rule, each with its sentence.

Every front end (``minimize``, ``fit``, streams, several devices, ``partial_fit``, the
race) reports its stop through :meth:`Status.message`, so an event is worded once: a
run of ``minimize`` that diverged and a training run that diverged say it the same way,
with their own numbers. The statuses are integers, so the compiled loop of
``minimize`` can carry one on the device.

>>> Status.CONVERGED.message(grad_norm=3e-7, tol=1e-6)
'gradient norm 3e-07 is below tol=1e-06'
>>> Status.CALLBACK.message(unit="epoch", done=3)
'a callback stopped the run after epoch 3'
"""

from __future__ import annotations

import enum
import math
from typing import Any


class Status(enum.IntEnum):
    """The stopping rules, in the words of :attr:`label` and :meth:`message`."""

    RUNNING = 0
    CONVERGED = 1  # the gradient norm reached tol
    NO_DECREASE = 2  # minimize: the value stopped improving, or the step stopped moving x
    SIGN_CHANGE = 3  # minimize, one variable: the derivative changed sign (then bisection)
    DIVERGED = 4  # a value, gradient or point became non-finite
    MAX_ITER = 5  # minimize's budget of iterations
    MAX_EPOCHS = 6  # fit's budget of epochs
    EARLY_STOPPING = 7  # fit: the monitored loss stopped improving
    INTERRUPTED = 8  # Ctrl-C (or KeyboardInterrupt) between or during blocks
    CALLBACK = 9  # a callback asked to stop

    @property
    def label(self) -> str:
        """The short name results carry in ``status``: ``"converged"``, ``"max_iter"``, ..."""
        return self.name.lower()

    def message(self, **facts: Any) -> str:
        """The sentence of this stop, filled with ``facts`` (see each template).

        Raises ``KeyError`` naming a missing fact: the templates are the contract
        between the loops and their results.
        """
        return _TEMPLATES[self].format(**facts)


_TEMPLATES = {
    Status.RUNNING: "still running",
    Status.CONVERGED: "gradient norm {grad_norm:.3g} is below tol={tol:g}",
    Status.NO_DECREASE: "no further decrease: {why}",
    Status.EARLY_STOPPING: "early stopping: {why}",
    Status.SIGN_CHANGE: (
        "derivative changed sign, so a minimum lies between the last two iterates; "
        "{n_bisections} bisection steps on the derivative narrowed it to "
        "[{left:.10g}, {right:.10g}] where |f'| = {grad_norm:.3g}"
    ),
    Status.DIVERGED: "diverged: {what}{where}; {kept}{advice}",
    Status.MAX_ITER: "maximum iterations reached ({max_iter}) with gradient norm {grad_norm:.3g}",
    Status.MAX_EPOCHS: "completed {epochs}",
    Status.INTERRUPTED: "interrupted (Ctrl-C) after {unit} {done}; {kept}",
    Status.CALLBACK: "a callback stopped the run after {unit} {done}",
}


# ------------------------------------------------------------ fragments of the sentences


def plateau(
    watched: str,
    *,
    rtol: float,
    atol: float,
    patience: int,
    unit: str,
    best: float,
    best_at: int | None,
    restored: bool = False,
) -> str:
    """The ``why`` of NO_DECREASE and EARLY_STOPPING: the improvement rule was not met.

    ``"the validation loss has not improved by more than 0.001 for 5 epochs (best
    0.1234 at epoch 7); restored the weights of epoch 7"``; with no tolerance (both 0),
    any decrease counts and the sentence says only "has not improved".
    """
    by = f" by more than {tolerance(rtol, atol)}" if rtol or atol else ""
    return (
        f"the {watched} has not improved{by} for "
        f"{patience} {unit}s (best {best:.6g} at {unit} {best_at})"
        + (f"; restored the weights of {unit} {best_at}" if restored else "")
    )


def tolerance(rtol: float, atol: float) -> str:
    """The improvement threshold in words: ``0.001``, ``1e-08 relative`` or both."""
    if rtol and atol:
        return f"{atol:g} + {rtol:g} relative"
    return f"{rtol:g} relative" if rtol else f"{atol:g}"


def smaller_lr(lr: Any) -> str:
    """The advice for a run whose steps were too large, with the rate when it is a number."""
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr):
        return f"; try a smaller learning rate than lr={lr:g}, e.g. lr={lr / 10:g}"
    return "; try a smaller learning rate"


def count(n: int, unit: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``: a whole number with its unit, plural unless 1."""
    return f"{n} {unit}{'' if n == 1 else 's'}"
