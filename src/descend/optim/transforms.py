"""Gradient transforms (clipping, weight decay) and :func:`chain`.

A transform is a small frozen dataclass with two pure methods::

    state = transform.init(params)
    grads, state = transform.apply(grads, state, params, value=None)

and optionally ``update_params(params, state) -> params`` for transforms that act on
the parameters themselves (decoupled weight decay). :func:`chain` applies the
transforms in order to the gradients and then calls the optimizer's step::

    opt = chain(clip_by_global_norm(1.0), sgd(lr=0.1))

Unlike Optax, where everything (including the optimizer) is a transform of updates,
here transforms act on gradients *before* the optimizer, as ``torch.nn.utils``
clipping and ``weight_decay=`` act before ``optimizer.step()`` in PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from descend import _tree
from descend._tree import PyTree
from descend.errors import DescendTypeError, check_positive
from descend.optim._common import (
    DecayMask,
    check_decay_mask,
    inner_points,
    lr_or_schedule,
    nonnegative_number,
    store_checked,
)
from descend.optim.base import LearningRate, Optimizer, lr_at
from descend.optim.blocks import cast_like, coupled_decay, decoupled_decay, zero_count
from descend.optim.leaves import decayed_leaves

_TORCH_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_ divides by (norm + 1e-6)


class _Stateless:
    """The ``init`` of a transform that keeps no state between steps."""

    def init(self, params: PyTree) -> tuple:
        return ()


@dataclass(frozen=True)
class clip_by_global_norm(_Stateless):
    r"""Scale all gradients down together when their joint norm exceeds ``max_norm``.

    .. math::

        \lVert g\rVert = \Big(\sum_{\text{leaves}} \lVert g_i\rVert_2^2\Big)^{1/2}, \qquad
        g \leftarrow g \cdot \min\!\Big(1, \frac{\text{max\_norm}}{\lVert g\rVert + 10^{-6}}\Big)

    Matches ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` (2-norm); a complex
    entry counts :math:`|g|^2 = (\mathrm{Re}\,g)^2 + (\mathrm{Im}\,g)^2`, as in torch.
    Differences from ``optax.clip_by_global_norm``: Optax leaves gradients with norm
    below ``max_norm`` untouched and otherwise scales by ``max_norm / norm`` without
    the ``1e-6``, so torch's (and this) clipped norm is slightly below ``max_norm``, and
    gradients with a norm within ``1e-6`` under ``max_norm`` are scaled very slightly.

    Parameters
    ----------
    max_norm:
        Largest allowed global norm (> 0).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.transforms import clip_by_global_norm
    >>> clip = clip_by_global_norm(1.0)
    >>> g, _ = clip.apply(jnp.array([3.0, 4.0]), clip.init(None), None)
    >>> [round(float(v), 4) for v in g]
    [0.6, 0.8]
    """

    max_norm: float

    def __post_init__(self):
        store_checked(self, max_norm=check_positive)

    def apply(
        self, grads: PyTree, state: tuple, params: PyTree, *, value: jax.Array | None = None
    ) -> tuple[PyTree, tuple]:
        coefficient = jnp.minimum(self.max_norm / (_tree.norm(grads) + _TORCH_CLIP_EPS), 1.0)
        return _scale_keeping_dtype(coefficient, grads), state


@dataclass(frozen=True)
class clip_by_value(_Stateless):
    r"""Clip every gradient entry to ``[-clip_value, clip_value]``.

    .. math:: g \leftarrow \min(\max(g, -c), c)

    Matches ``torch.nn.utils.clip_grad_value_`` and ``optax.clip``. A complex
    gradient has its real and imaginary parts clipped each (the pairs every optimizer
    steps, see :mod:`descend.optim.pairs`; torch's ``clamp`` refuses complex tensors).

    Parameters
    ----------
    clip_value:
        The bound :math:`c > 0`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.transforms import clip_by_value
    >>> clip = clip_by_value(1.0)
    >>> [float(v) for v in clip.apply(jnp.array([-3.0, 0.5]), (), None)[0]]
    [-1.0, 0.5]
    """

    clip_value: float

    def __post_init__(self):
        store_checked(self, clip_value=check_positive)

    def apply(
        self, grads: PyTree, state: tuple, params: PyTree, *, value: jax.Array | None = None
    ) -> tuple[PyTree, tuple]:
        def clip(g):
            return jnp.clip(g, -self.clip_value, self.clip_value)

        def clip_leaf(g):
            return jax.lax.complex(clip(g.real), clip(g.imag)) if jnp.iscomplexobj(g) else clip(g)

        return jax.tree.map(clip_leaf, grads), state


@dataclass(frozen=True)
class add_weight_decay(_Stateless):
    r"""Coupled L2 weight decay: add ``weight_decay * params`` to the gradients.

    .. math:: g \leftarrow g + \lambda \theta

    This is the gradient of :math:`f(\theta) + \tfrac{\lambda}{2}\lVert\theta\rVert^2`
    (for a complex :math:`\theta` given with JAX's gradient, the conjugate of torch's,
    :math:`g + \lambda\bar\theta`), and what ``weight_decay=`` does in
    ``torch.optim.SGD`` and ``torch.optim.Adam`` (``chain(add_weight_decay(wd),
    sgd(lr))`` equals ``sgd(lr, weight_decay=wd)``). Optax: ``add_decayed_weights``
    placed before the optimizer (its ``mask`` is ``weight_decay_mask`` here). With
    adaptive optimizers the decay is rescaled like the gradient; see
    :class:`decoupled_weight_decay` for the AdamW form.

    Parameters
    ----------
    weight_decay:
        :math:`\lambda \ge 0`.
    weight_decay_mask:
        The leaves to decay; the others keep their gradient. ``None`` (all),
        ``"weights"`` (the leaves named ``w``), a pytree of ``True`` / ``False`` or a
        function, as for the optimizers' ``weight_decay_mask`` (:mod:`descend.optim`).

    Examples
    --------
    >>> from descend.optim.transforms import add_weight_decay
    >>> round(float(add_weight_decay(0.1).apply(1.0, (), 2.0)[0]), 6)
    1.2
    >>> decay = add_weight_decay(0.1, weight_decay_mask="weights")
    >>> grads, _ = decay.apply({"w": 1.0, "b": 1.0}, (), {"w": 2.0, "b": 2.0})
    >>> {k: round(float(v), 6) for k, v in grads.items()}
    {'b': 1.0, 'w': 1.2}
    """

    weight_decay: float
    weight_decay_mask: DecayMask = None

    def __post_init__(self):
        store_checked(self, weight_decay=nonnegative_number, weight_decay_mask=check_decay_mask)

    def init(self, params: PyTree) -> tuple:
        decayed_leaves(self.weight_decay_mask, params)  # refuses a mask that does not fit
        return ()

    def apply(
        self, grads: PyTree, state: tuple, params: PyTree, *, value: jax.Array | None = None
    ) -> tuple[PyTree, tuple]:
        grads_in = jax.tree.map(jnp.asarray, grads)
        # JAX's gradient of a complex leaf is the conjugate of torch's: so is its decay.
        conjugated = jax.tree.map(lambda p: jnp.conj(p) if jnp.iscomplexobj(p) else p, params)
        decayed = coupled_decay(grads_in, conjugated, self.weight_decay, self.weight_decay_mask)
        return cast_like(grads, decayed), state


class DecayState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax


@dataclass(frozen=True)
class decoupled_weight_decay:
    r"""Decoupled weight decay: shrink the params before the optimizer's step (AdamW).

    .. math:: \theta \leftarrow \theta\,(1 - \eta_t \lambda), \quad\text{then}\quad
        \theta \leftarrow \mathrm{step}(\theta, g)

    where :math:`\eta_t` is ``lr`` (a number or the same schedule as the optimizer's)
    and the gradient :math:`g` is the one computed at the params before the decay.
    The gradients are not changed. ``chain(decoupled_weight_decay(wd, lr), adam(lr))``
    is ``torch.optim.AdamW(lr=lr, weight_decay=wd)``, which also multiplies the
    params by :math:`1 - \eta\lambda` before its Adam step (Loshchilov & Hutter,
    "Decoupled Weight Decay Regularization", ICLR 2019).

    In a :func:`chain`, the decay is applied to the params that are handed to the
    optimizer; other transforms still see the original params. Optimizers whose step
    evaluates the objective (line searches) would evaluate it at the decayed params,
    so use this with first-order optimizers. Differences from
    ``optax.add_decayed_weights``: Optax adds :math:`\lambda\theta` to the updates
    *after* the optimizer and before the learning-rate scaling; the result is the
    same :math:`-\eta\lambda\theta` term, but the decay here uses the params before
    the step, as torch's AdamW does.

    Parameters
    ----------
    weight_decay:
        :math:`\lambda \ge 0`.
    lr:
        :math:`\eta > 0` (or a schedule), normally the optimizer's learning rate.
    weight_decay_mask:
        The leaves to decay; the others are not shrunk. ``None`` (all), ``"weights"``
        (the leaves named ``w``), a pytree of ``True`` / ``False`` or a function, as
        for the optimizers' ``weight_decay_mask`` (:mod:`descend.optim`); Optax's
        ``add_decayed_weights(mask=...)``.

    Examples
    --------
    >>> from descend.optim.sgd import sgd
    >>> from descend.optim.transforms import chain, decoupled_weight_decay
    >>> opt = chain(decoupled_weight_decay(0.5, lr=0.1), sgd(lr=0.1))
    >>> round(float(opt.step(2.0, 0.0, opt.init(2.0))[0]), 6)
    1.9
    """

    weight_decay: float
    lr: LearningRate
    weight_decay_mask: DecayMask = None

    def __post_init__(self):
        store_checked(
            self,
            weight_decay=nonnegative_number,
            lr=lr_or_schedule,
            weight_decay_mask=check_decay_mask,
        )

    def init(self, params: PyTree) -> DecayState:
        decayed_leaves(self.weight_decay_mask, params)  # refuses a mask that does not fit
        return DecayState(count=jnp.zeros((), jnp.int32))

    def apply(
        self,
        grads: PyTree,
        state: DecayState,
        params: PyTree,
        *,
        value: jax.Array | None = None,
    ) -> tuple[PyTree, DecayState]:
        return grads, DecayState(count=state.count + 1)

    def update_params(self, params: PyTree, state: DecayState) -> PyTree:
        rate = lr_at(self.lr, state.count)
        arrays = jax.tree.map(jnp.asarray, params)
        shrunk = decoupled_decay(arrays, rate, self.weight_decay, self.weight_decay_mask)
        return cast_like(params, shrunk)


class ChainState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    transforms: tuple  # one state per transform, in order
    optimizer: Any  # the optimizer's state


def chain(*parts: Any) -> Optimizer:
    r"""An optimizer that transforms the gradients, in order, before another optimizer's step.

    ``chain(t1, t2, ..., optimizer)`` steps as

    .. math::

        g \leftarrow t_k(\dots t_2(t_1(g))), \qquad
        \theta \leftarrow u_k(\dots u_1(\theta)), \qquad
        (\theta, s) \leftarrow \mathrm{optimizer.step}(\theta, g, s)

    where :math:`u_i` is the transform's ``update_params`` (only
    :class:`decoupled_weight_decay` has one). Each transform sees the original params
    in ``apply``. The state is a ``ChainState(count, transforms, optimizer)``; the
    result needs the objective when the optimizer does (``needs_value_fn``) and
    reports the optimizer's evaluations. ``value`` and ``value_fn`` are passed on
    unchanged, so an optimizer with a line search searches the true objective (with
    the transformed gradient as its first direction).

    Matches the PyTorch idiom ``clip_grad_norm_(...); optimizer.step()``; the
    counterpart of ``optax.chain``, except that the optimizer comes last as a whole
    and transforms act on gradients, not on updates.

    Parameters
    ----------
    *parts:
        Zero or more transforms, then an :class:`Optimizer`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from descend.optim.sgd import sgd
    >>> from descend.optim.transforms import chain, clip_by_value
    >>> opt = chain(clip_by_value(1.0), sgd(lr=0.1))
    >>> round(float(opt.step(0.0, 5.0, opt.init(0.0))[0]), 6)
    -0.1
    """
    if not parts or not isinstance(parts[-1], Optimizer):
        got = "nothing" if not parts else repr(parts[-1])
        raise DescendTypeError(
            "chain(*transforms, optimizer) needs an optimizer as its last argument, "
            f"for example chain(clip_by_global_norm(1.0), sgd(lr=0.1)); got {got}"
        )
    transforms: Sequence[Any]
    *transforms, optimizer = parts
    for position, transform in enumerate(transforms):
        if isinstance(transform, Optimizer) or not (
            callable(getattr(transform, "init", None))
            and callable(getattr(transform, "apply", None))
        ):
            raise DescendTypeError(
                f"chain's argument {position} must be a gradient transform (with init and "
                f"apply, such as clip_by_global_norm(1.0)); only the last argument may be an "
                f"optimizer; got {transform!r}"
            )
    transforms = tuple(transforms)

    def init(params):
        return ChainState(
            count=zero_count(),
            transforms=tuple(t.init(params) for t in transforms),
            optimizer=optimizer.init(params),
        )

    def step(params, grads, state, *, value=None, value_fn=None):
        stepped_params = params
        states = []
        for transform, transform_state in zip(transforms, state.transforms, strict=True):
            update_params = getattr(transform, "update_params", None)
            if update_params is not None:
                stepped_params = update_params(stepped_params, transform_state)
            grads, transform_state = transform.apply(grads, transform_state, params, value=value)
            states.append(transform_state)
        new_params, optimizer_state = optimizer.step(
            stepped_params, grads, state.optimizer, value=value, value_fn=value_fn
        )
        return new_params, ChainState(state.count + 1, tuple(states), optimizer_state)

    evaluations = optimizer.evaluations
    return Optimizer(
        "chain",
        init,
        step,
        {"transforms": transforms, "optimizer": optimizer},
        needs_value_fn=optimizer.needs_value_fn,
        evaluations=None if evaluations is None else (lambda state: evaluations(state.optimizer)),
        # Complex leaves become pairs here, before the transforms: they see torch's
        # gradient pairs, and the optimizer only real arrays.
        complex_params=optimizer.complex_params,
        **inner_points(optimizer, lambda state: state.optimizer),
        evaluations_with_gradient=optimizer.evaluations_with_gradient,
    )


def _scale_keeping_dtype(factor: jax.Array, tree: PyTree) -> PyTree:
    return jax.tree.map(lambda leaf: (factor * leaf).astype(jnp.result_type(leaf)), tree)
