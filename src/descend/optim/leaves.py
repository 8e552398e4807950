"""Per-leaf settings: which leaves of the params a setting applies to.

A weight-decay mask (``True`` / ``False`` per leaf) and :func:`~descend.optim.groups.partition`'s
labels (a group name per leaf) are given in the forms Optax accepts (a pytree in the
params' structure, or a prefix of it; a function of the params) or leaf by leaf as a
function of the leaf's path and value. They are read while the step is traced: the
values are Python values, fixed in the compiled program.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from descend._tree import PyTree
from descend.errors import InputError


def _key_name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def leaf_path(path: tuple) -> str:
    """A leaf's pytree path as text, its keys joined by ``/``.

    ``"w"`` and ``"b"`` for a linear model's params, ``"0/w"`` for the first layer's
    weights of an MLP, ``""`` for params that are a single array: the names of a
    checkpoint's tensors without the tree's name (``params/0/w``).
    """
    return "/".join(_key_name(key) for key in path)


@dataclass(frozen=True)
class LeafTree:
    """A pytree of per-leaf settings (booleans, labels) held as a hashable value.

    Equal trees give equal values, so optimizers built with equal masks compare
    equal and share compiled programs, and optimizers with different masks never do.
    ``repr`` shows the tree.
    """

    structure: Any  # a jax PyTreeDef
    leaves: tuple

    @classmethod
    def of(cls, tree: PyTree) -> LeafTree:
        leaves, structure = jax.tree.flatten(tree)
        return cls(structure, tuple(leaves))

    def tree(self) -> PyTree:
        return self.structure.unflatten(self.leaves)

    def __repr__(self) -> str:
        return repr(self.tree())


def takes_path_and_leaf(function: Callable) -> bool:
    """Whether ``function`` decides leaf by leaf, ``f(path, leaf)``, rather than ``f(params)``.

    Two required positional parameters mean the first; anything else the second.
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) == 2


def _listed_paths(pairs: list) -> str:
    paths = [leaf_path(path) or "(root)" for path, _ in pairs]
    shown = ", ".join(repr(path) for path in paths[:12])
    return shown + (f", ... ({len(paths)} leaves)" if len(paths) > 12 else "")


def per_leaf(
    setting: LeafTree | Callable,
    params: PyTree,
    *,
    name: str,
    valid: Callable[[Any], bool],
    expected: str,
) -> list:
    """The value ``setting`` gives each leaf of ``params``, in ``jax.tree.leaves`` order.

    ``setting`` is a :class:`LeafTree` in the structure of ``params`` or a prefix of
    it (a value standing for a subtree holds for each of its leaves), a function
    ``setting(params)`` returning such a tree, or a function ``setting(path, leaf)``
    called for each leaf with its :func:`leaf_path`. Each value must pass ``valid``;
    ``name`` and ``expected`` word the errors. Python code run while tracing: the
    values are static.
    """
    pairs, _ = jax.tree_util.tree_flatten_with_path(params)
    if callable(setting) and takes_path_and_leaf(setting):
        values = [setting(leaf_path(path), leaf) for path, leaf in pairs]
        for (path, _), value in zip(pairs, values, strict=True):
            if not valid(value):
                raise InputError(
                    f"{name}(path, leaf) must return {expected} for each leaf, got {value!r} "
                    f"for the leaf {leaf_path(path) or '(root)'!r}"
                )
        return values
    if callable(setting):
        try:
            returned = setting(params)
        except Exception as error:
            raise InputError(
                f"{name}(params) raised {type(error).__name__}: {error}. A function of one "
                "argument is called with the whole params and returns a pytree of their "
                f"structure with {expected} as leaves (as Optax's mask=); to decide leaf by "
                "leaf, give a function of two arguments, (path, leaf)"
            ) from error
        setting = LeafTree.of(returned)
        source = f"the tree {name}(params) returned"
    else:
        source = f"{name} {setting!r}"
    bad = [value for value in setting.leaves if not valid(value)]
    if bad:
        raise InputError(f"the leaves of {source} must be {expected}, got {bad[0]!r}")
    try:
        subtrees = setting.structure.flatten_up_to(params)
    except (ValueError, TypeError):
        example = jax.tree.map(lambda _: "...", params)
        raise InputError(
            f"{source} does not have the structure of the params: they are {example!r}, "
            f"with the leaves {_listed_paths(pairs)}. Give one value per leaf in that "
            "structure (or one per subtree: a prefix of it)"
        ) from None
    values = []
    for value, subtree in zip(setting.leaves, subtrees, strict=True):
        values.extend([value] * len(jax.tree.leaves(subtree)))
    return values


WEIGHTS = "weights"  # the weight_decay_mask that decays the leaves named w


def _is_flag(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def decayed_leaves(mask: Any, params: PyTree, *, name: str = "weight_decay_mask") -> PyTree:
    """``True`` for each leaf of ``params`` that weight decay applies to, in their structure.

    ``mask`` is ``None`` (every leaf), ``True`` / ``False`` (every leaf / none),
    ``"weights"`` (the leaves whose path ends in ``w``: the weights of
    :mod:`descend.models`, not their biases ``b``), or a setting of :func:`per_leaf`
    with booleans (Optax's ``mask``). ``name`` words the errors, for the masks of other
    per-leaf steps (LARS's ``trust_ratio_mask``).
    """
    pairs, treedef = jax.tree_util.tree_flatten_with_path(params)
    if mask is None or isinstance(mask, bool):
        flags = [mask is not False] * len(pairs)
    elif isinstance(mask, str):
        flags = [bool(path) and _key_name(path[-1]) == "w" for path, _ in pairs]
        if pairs and not any(flags):
            raise InputError(
                f"{name}='weights' selects the leaves named 'w' (the weights of "
                f"descend's models), but no leaf of these params is: {_listed_paths(pairs)}. "
                "Give a pytree of True / False, or a function mask(path, leaf) -> bool"
            )
    else:
        flags = per_leaf(mask, params, name=name, valid=_is_flag, expected="True or False")
    return jax.tree.unflatten(treedef, [bool(flag) for flag in flags])
