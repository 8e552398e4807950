r"""Complex parameters stepped as pairs of real numbers, as ``torch.optim`` steps them.

PyTorch optimizes a complex parameter :math:`z = x + iy` as the real array
``torch.view_as_real(z)``, of shape ``(..., 2)`` and holding :math:`(x, y)`, with the
gradient :math:`(\partial f/\partial x,\ \partial f/\partial y)`: its ``.grad`` is
:math:`\partial f/\partial x + i\,\partial f/\partial y`, the direction of steepest
ascent. JAX's gradient of a real :math:`f` of complex inputs is the conjugate,

.. math:: \nabla_z^{\mathrm{JAX}} f = \frac{\partial f}{\partial x}
    - i\,\frac{\partial f}{\partial y}
    \qquad\text{so its pair is}\qquad (\mathrm{Re}\,g,\ -\mathrm{Im}\,g)

(for :math:`f = |z|^2`, ``jax.grad`` gives :math:`2\bar z`, torch :math:`2z`). Every
optimizer here sees those real pairs: per-coordinate statistics (second moments,
signs, maxima, step sizes) are those of the real and imaginary parts, norms are
:math:`\sqrt{\sum |z|^2}`, and the trajectories are torch's. The optimizer state of a
complex leaf is the state of its pairs: torch's state viewed with ``view_as_real``.

:class:`~descend.optim.Optimizer` applies :func:`as_real_pairs` to every ``init`` /
``step`` it is built with; an algorithm that has no such form (Adafactor and Muon,
which ``torch.optim`` also refuses) is built with ``complex_params="refuse"`` and
gets :func:`refusing_complex` instead. Both refuse integer and boolean leaves
(:func:`check_floating`), as ``torch`` refuses to let such tensors require gradients.

References: JAX FAQ, "Gradients of complex functions"; ``torch.view_as_real`` and the
``has_complex`` branches of ``torch.optim``'s single-tensor code paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from descend._tree import PyTree
from descend.errors import DescendTypeError

# The attribute a wrapped init or step keeps its algorithm's own function in, so that
# wrapping again (an Optimizer built from another's init and step) wraps that function.
_INNER = "_descend_real_pairs_of"


def is_complex(leaf: Any) -> bool:
    """Whether ``leaf`` holds complex numbers (decided from its dtype, at trace time)."""
    return bool(jnp.iscomplexobj(leaf))


def has_complex(tree: PyTree) -> bool:
    """Whether any leaf of ``tree`` is complex."""
    return any(is_complex(leaf) for leaf in jax.tree.leaves(tree))


def complex_paths(tree: PyTree) -> list[str]:
    """The pytree paths of the complex leaves (``<root>`` for a single leaf)."""
    return [
        jax.tree_util.keystr(path) or "<root>"
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if is_complex(leaf)
    ]


def check_floating(name: str, params: PyTree) -> None:
    """Raise :class:`~descend.errors.DescendTypeError` if a leaf is not floating or complex.

    A gradient step on an integer or boolean leaf would be rounded (or refused by
    JAX inside the algorithm); ``torch`` refuses such tensors as parameters ("only
    Tensors of floating point dtype can require gradients"). Decided from the dtypes,
    at trace time: nothing is added to the compiled program.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    wrong = [
        f"{jax.tree_util.keystr(path) or '<root>'} ({jnp.result_type(leaf)})"
        for path, leaf in leaves
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    if wrong:
        raise DescendTypeError(
            f"{name} steps floating-point or complex parameters, and these are not: "
            f"{', '.join(wrong)}. Give them a floating dtype, e.g. jnp.asarray(p, "
            "jnp.float32) or np.zeros(n) rather than np.zeros(n, int) (torch.optim "
            "refuses integer parameters too)"
        )


def check_gradient(name: str, params: PyTree, grads: PyTree) -> None:
    """Raise :class:`~descend.errors.DescendTypeError` unless ``grads`` fits ``params``.

    The same tree structure, each leaf of the same shape, and no complex gradient for
    a real parameter (its imaginary part would be dropped). A misfit would otherwise
    broadcast into wrong numbers without a word; torch refuses a gradient whose shape
    differs from its parameter's. Decided at trace time, from shapes and dtypes.
    """
    param_leaves, structure = jax.tree_util.tree_flatten_with_path(params)
    try:
        # jaxlib ships no type stubs for PyTreeDef's methods.
        grad_leaves = structure.flatten_up_to(grads)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise DescendTypeError(
            f"{name}.step got a gradient of another structure than the params: "
            f"{jax.tree.structure(grads)} for {structure}; pass the gradient of these "
            "params (jax.grad of the objective at them)"
        ) from None
    for (path, param), grad in zip(param_leaves, grad_leaves, strict=True):
        where = jax.tree_util.keystr(path) or "<root>"
        if jnp.shape(grad) != jnp.shape(param):
            raise DescendTypeError(
                f"{name}.step got a gradient of shape {jnp.shape(grad)} for the parameter "
                f"{where} of shape {jnp.shape(param)}; each gradient has its parameter's shape"
            )
        if is_complex(grad) and not is_complex(param):
            raise DescendTypeError(
                f"{name}.step got a complex gradient for the real parameter {where}; its "
                "imaginary part would be lost: take the gradient of a real function of "
                "these params"
            )


def check_state(name: str, init: Callable, params: PyTree, state: Any) -> None:
    """Raise :class:`~descend.errors.DescendTypeError` unless ``state``'s leaves have the
    shapes of those ``init(params)`` gives (decided by tracing ``init``, without running
    it): a state made for other params would broadcast into wrong steps."""
    expected = jax.eval_shape(init, params)
    shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(expected)]
    given = [jnp.shape(leaf) for leaf in jax.tree.leaves(state)]
    if shapes != given:  # the structure's static data may differ (a plateau rule's mode)
        raise DescendTypeError(
            f"{name}.step got a state that {name}.init did not make for these params "
            f"(leaf shapes {given}, expected {shapes}); make it with init(params)"
        )


def _pair(real: jax.Array, imag: jax.Array) -> jax.Array:
    return jnp.stack([real, imag], axis=-1)


def to_pairs(tree: PyTree) -> PyTree:
    """Each complex leaf :math:`x + iy` as the real ``(..., 2)`` array of :math:`(x, y)`.

    The layout of ``torch.view_as_real``; real leaves are returned as they are.
    """
    return jax.tree.map(
        lambda leaf: _pair(jnp.real(leaf), jnp.imag(leaf)) if is_complex(leaf) else leaf, tree
    )


def gradient_pairs(params: PyTree, grads: PyTree) -> PyTree:
    r"""JAX's gradient as torch's pairs :math:`(\partial f/\partial x, \partial f/\partial y)`.

    For each complex leaf of ``params`` the gradient :math:`g` (JAX's convention, the
    conjugate of torch's ``.grad``) becomes :math:`(\mathrm{Re}\,g, -\mathrm{Im}\,g)`;
    the gradients of real leaves are returned as they are.
    """
    return jax.tree.map(
        lambda p, g: _pair(jnp.real(g), -jnp.imag(g)) if is_complex(p) else g, params, grads
    )


def from_pairs(like: PyTree, pairs: PyTree) -> PyTree:
    """The inverse of :func:`to_pairs`: complex leaves back, in the dtypes of ``like``."""

    def join(template, leaf):
        if not is_complex(template):
            return leaf
        return jax.lax.complex(leaf[..., 0], leaf[..., 1]).astype(jnp.result_type(template))

    return jax.tree.map(join, like, pairs)


def from_pairs_on_host(like: PyTree, pairs: PyTree, *, gradient: bool = False) -> PyTree:
    r""":func:`from_pairs` in NumPy, for results fetched from the device.

    A pair becomes one complex number as ``torch.view_as_complex`` makes it (no
    rounding); with ``gradient`` the pair :math:`(\partial f/\partial x,
    \partial f/\partial y)` becomes JAX's gradient :math:`\partial f/\partial x -
    i\,\partial f/\partial y`. Leading axes (a recorded path) are kept. NumPy keeps
    the dtypes of ``like`` whatever JAX's precision setting is where it is called.
    """

    def join(template, leaf):
        if not is_complex(template):
            return leaf
        real = np.finfo(template.dtype).dtype  # float64 for complex128
        joined = np.ascontiguousarray(leaf, dtype=real).view(template.dtype)[..., 0]
        joined = np.conj(joined) if gradient else joined
        return joined[()] if joined.ndim == 0 else joined

    return jax.tree.map(join, like, pairs)


@dataclass(frozen=True)
class Layout:
    """The shapes and dtypes of a pytree with complex leaves, hashable.

    What turns real pairs back into the tree (:meth:`from_pairs`); loops that run on
    the pairs key their compiled programs on it, so runs with the same layout share
    them.
    """

    treedef: Any
    leaves: tuple  # a jax.ShapeDtypeStruct per leaf

    @classmethod
    def of(cls, tree: PyTree) -> Layout:
        leaves, treedef = jax.tree.flatten(tree)
        shapes = tuple(jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)) for x in leaves)
        return cls(treedef, shapes)

    def like(self) -> PyTree:
        """The tree of ``jax.ShapeDtypeStruct``."""
        return jax.tree.unflatten(self.treedef, self.leaves)

    def from_pairs(self, pairs: PyTree) -> PyTree:
        """:func:`from_pairs` with this layout (traceable)."""
        return from_pairs(self.like(), pairs)


def as_real_pairs(init: Callable, step: Callable, *, name: str) -> tuple[Callable, Callable]:
    r"""``(init, step)`` that step every complex leaf as the pair of its parts.

    With no complex leaf (decided from the dtypes when traced) both call the
    algorithm's own functions with the same arguments: real parameters run the
    same program as before. With complex leaves, ``init`` sees :func:`to_pairs` of
    the params; ``step`` sees the pairs, :func:`gradient_pairs` of the gradient and
    ``value_fn`` as a function of the pairs, and its new params are turned back into
    complex leaves of the params' dtypes. Both first refuse integer and boolean
    leaves (:func:`check_floating`, naming the optimizer ``name``).
    """
    init, step = _own(init), _own(step)

    def pairs_init(params):
        check_floating(name, params)
        if not has_complex(params):
            return init(params)
        return init(to_pairs(params))

    def pairs_step(params, grads, state, **kwargs):
        check_floating(name, params)
        check_gradient(name, params, grads)
        check_state(name, pairs_init, params, state)
        if not has_complex(params):
            return step(params, grads, state, **kwargs)
        value_fn = kwargs.get("value_fn")
        if value_fn is not None:
            kwargs["value_fn"] = lambda pairs: value_fn(from_pairs(params, pairs))
        new_pairs, new_state = step(
            to_pairs(params), gradient_pairs(params, grads), state, **kwargs
        )
        return from_pairs(params, new_pairs), new_state

    return _marked(pairs_init, init), _marked(pairs_step, step)


def point_as_real_pairs(function: Callable) -> Callable:
    """``function(params, state) -> params`` (an optimizer's ``eval_params``) for complex
    params too: it sees their pairs, as the state holds them, and its result is turned
    back into complex leaves. Real params call ``function`` as it is."""
    function = _own(function)

    def on_pairs(params, state):
        if not has_complex(params):
            return function(params, state)
        return from_pairs(params, function(to_pairs(params), state))

    return _marked(on_pairs, function)


def refusing_complex(
    init: Callable, step: Callable, *, name: str, advice: str = ""
) -> tuple[Callable, Callable]:
    """``(init, step)`` that raise :func:`refusal` when a leaf of the params is complex
    (and refuse integer and boolean leaves as :func:`as_real_pairs` does)."""
    init, step = _own(init), _own(step)

    def checked_init(params):
        check_floating(name, params)
        if has_complex(params):
            raise refusal(name, params, advice)
        return init(params)

    def checked_step(params, grads, state, **kwargs):
        check_floating(name, params)
        check_gradient(name, params, grads)
        if has_complex(params):
            raise refusal(name, params, advice)
        check_state(name, checked_init, params, state)
        return step(params, grads, state, **kwargs)

    return _marked(checked_init, init), _marked(checked_step, step)


def refusal(name: str, params: PyTree, advice: str = "") -> DescendTypeError:
    """The error for complex params given to an optimizer that cannot step them."""
    paths = ", ".join(complex_paths(params))
    return DescendTypeError(
        f"{name} does not support complex parameters, and these params are complex: "
        f"{paths}. {advice or ''}Use an optimizer that steps a complex number as the "
        "pair of its real and imaginary parts (adam, adamw, sgd, lbfgs, ...: all but "
        "adafactor and muon), or keep the real and imaginary parts as two real leaves"
    )


def _own(function: Callable) -> Callable:
    """The algorithm's own function behind a wrapper of this module (or the function)."""
    return getattr(function, _INNER, function)


def _marked(wrapper: Callable, inner: Callable) -> Callable:
    setattr(wrapper, _INNER, inner)
    return wrapper
