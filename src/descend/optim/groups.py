"""Parameter groups: :func:`partition` steps groups of leaves with optimizers of their own.

PyTorch's ``param_groups`` and Optax's ``multi_transform``: each group has its own
algorithm and hyperparameters (learning rate, weight decay, ...) and keeps its own state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from descend.errors import DescendTypeError, InputError
from descend.optim.base import Optimizer, eval_point, train_point
from descend.optim.blocks import zero_count
from descend.optim.leaves import LeafTree, per_leaf


class PartitionState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in Optax
    groups: dict  # one state per group, by label


def partition(optimizers: Mapping[str, Optimizer], labels: Any) -> Optimizer:
    r"""An optimizer that steps each group of leaves with its own optimizer: parameter groups.

    ``labels`` gives each leaf of the params the name of its group, and ``optimizers``
    the optimizer of each group, with any hyperparameters (learning rate, weight
    decay, betas, ...) and any algorithm. Each optimizer sees only its group's leaves,
    in the params' structure with ``None`` in place of the others (an empty subtree,
    so leaf paths and masks work as on the whole params), and keeps its own state::

        opt = partition(
            {"decay": adamw(1e-3, weight_decay=0.1), "rest": adam(1e-3)},
            lambda path, leaf: "decay" if leaf.ndim == 2 else "rest",
        )

    This is ``torch.optim``'s ``param_groups`` (``AdamW([{"params": weights,
    "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}], lr=1e-3)``) and
    Optax's ``multi_transform(transforms, param_labels)``. The state is a
    ``PartitionState(count, groups)``, ``groups`` a dict of the optimizers' states by
    label. To exclude leaves from weight decay only, the optimizers'
    ``weight_decay_mask`` is shorter.

    Parameters
    ----------
    optimizers:
        A dict from label (a string) to :class:`Optimizer`. Optimizers that evaluate
        the objective (a line search: ``gd`` without ``lr``, ``lbfgs``) cannot be
        given part of the params and are refused.
    labels:
        The label of each leaf: a pytree of labels in the params' structure (or a
        prefix of it: a label for a subtree holds for all its leaves), a function
        ``labels(params)`` returning one, or a function ``labels(path, leaf)``
        returning the label of one leaf, ``path`` as text (``"0/w"``).

    Examples
    --------
    >>> from descend.optim.sgd import sgd
    >>> from descend.optim.groups import partition
    >>> opt = partition({"fast": sgd(lr=0.5), "slow": sgd(lr=0.1)}, {"w": "fast", "b": "slow"})
    >>> params = {"w": 1.0, "b": 1.0}
    >>> {k: round(float(v), 6) for k, v in opt.step(params, params, opt.init(params))[0].items()}
    {'b': 0.9, 'w': 0.5}
    """
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise DescendTypeError(
            "partition's optimizers must be a dict from label to optimizer, for example "
            f"{{'decay': adamw(1e-3), 'rest': adam(1e-3)}}; got {optimizers!r}"
        )
    for label, optimizer in optimizers.items():
        if not isinstance(label, str):
            raise DescendTypeError(f"partition's labels must be strings, got {label!r}")
        if not isinstance(optimizer, Optimizer):
            raise DescendTypeError(
                f"partition's optimizer for {label!r} must be an Optimizer, got {optimizer!r}"
            )
        if optimizer.needs_value_fn:
            raise InputError(
                f"partition's optimizer for {label!r} ({optimizer!r}) evaluates the objective "
                "(a line search) and cannot step on part of the params; give it a fixed lr "
                "or choose a first-order optimizer"
            )
    groups = tuple(optimizers.items())
    names = tuple(label for label, _ in groups)
    expected = "one of the labels " + ", ".join(repr(name) for name in names)
    if not callable(labels):
        tree = labels if isinstance(labels, LeafTree) else LeafTree.of(labels)
        unknown = [leaf for leaf in tree.leaves if leaf not in names]
        if unknown:
            raise InputError(f"partition's labels must be {expected}, got {unknown[0]!r}")
        labels = tree

    def split(params):
        """The label of each leaf, and the params' leaves and structure."""
        leaf_labels = per_leaf(
            labels,
            params,
            name="labels",
            valid=lambda v: isinstance(v, str) and v in names,
            expected=expected,
        )
        leaves, treedef = jax.tree.flatten(params)
        return leaf_labels, leaves, treedef

    def group(leaves, treedef, leaf_labels, label):
        chosen = [
            leaf if own == label else None for leaf, own in zip(leaves, leaf_labels, strict=True)
        ]
        return treedef.unflatten(chosen)

    def init(params):
        leaf_labels, leaves, treedef = split(params)
        states = {
            label: optimizer.init(group(leaves, treedef, leaf_labels, label))
            for label, optimizer in groups
        }
        return PartitionState(count=zero_count(), groups=states)

    def step(params, grads, state, *, value=None, value_fn=None):
        leaf_labels, leaves, treedef = split(params)
        grad_leaves = treedef.flatten_up_to(grads)
        new_leaves = list(leaves)
        states = {}
        for label, optimizer in groups:
            stepped, states[label] = optimizer.step(
                group(leaves, treedef, leaf_labels, label),
                group(grad_leaves, treedef, leaf_labels, label),
                state.groups[label],
                value=value,  # the objective's value, for optimizers that watch it
            )
            for index, leaf in enumerate(treedef.flatten_up_to(stepped)):
                if leaf_labels[index] == label:
                    new_leaves[index] = leaf
        return treedef.unflatten(new_leaves), PartitionState(state.count + 1, states)

    def per_group(point):
        """``point(optimizer, params, state)`` (eval_point or train_point) of each group on
        its own leaves."""

        def apply(params, state):
            leaf_labels, leaves, treedef = split(params)
            new_leaves = list(leaves)
            for label, optimizer in groups:
                moved = point(
                    optimizer, group(leaves, treedef, leaf_labels, label), state.groups[label]
                )
                for index, leaf in enumerate(treedef.flatten_up_to(moved)):
                    if leaf_labels[index] == label:
                        new_leaves[index] = leaf
            return treedef.unflatten(new_leaves)

        return apply

    # A group whose optimizer evaluates elsewhere than it steps (schedule-free) gives its
    # leaves' evaluation point; the other groups' leaves are their own.
    points = {}
    if any(optimizer.eval_params is not None for _, optimizer in groups):
        points = {"eval_params": per_group(eval_point), "train_params": per_group(train_point)}
    # Each group's optimizer steps its own complex leaves (as pairs) or refuses them.
    return Optimizer(
        "partition",
        init,
        step,
        {"optimizers": groups, "labels": labels},
        complex_params="members",
        **points,
    )
