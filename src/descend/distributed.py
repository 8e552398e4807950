"""Data-parallel training on several devices and several machines, on JAX's own machinery.

``fit(..., devices="all")`` splits every batch over the devices of a mesh's ``"batch"``
axis (:class:`jax.sharding.Mesh`): each device holds a copy of its process's training
rows, gathers its share of the batch from its copy, and computes the loss and gradient
sums of that share; the weights and optimizer state are replicated, and XLA's
partitioner adds the all-reduce that sums the shares. The update is the same
arithmetic as on one device (the sums are only added in another order), so the
results agree to rounding.

Several processes (machines) join with :func:`initialize` (``jax.distributed``; on
CPUs the collectives go through Gloo). Each process passes its own rows to ``fit``,
and they train one model:

- ``batch_size`` is the global batch, split evenly over the processes and over each
  process's devices. Each process permutes its own rows every epoch (process ``p``
  draws ``numpy.random.default_rng([seed, epoch, p]).permutation(n_local)``, see
  :func:`descend.data.shuffle.epoch_order`), and the global batch ``t`` is the concatenation,
  in process order, of every process's local batch ``t``. Without shuffling the local
  order is ``0 .. n_local - 1``.
- Every process must have as many training rows: the larger shards are cut to the
  smallest one (their first rows are kept), with a warning.
- The features, outputs, classes, dtype and sample weighting must agree. With
  ``standardize=True`` the mean and scale are those of all processes' training rows
  together. ``nan_policy="impute_mean"`` imputes each process's own column means.
- Every process scores its own validation rows; the history holds their row-weighted
  mean (the exact mean of the loss and accuracy over all validation rows; for R², the
  row-weighted mean of the processes' R²). Callbacks run on every process and training
  stops when one of them asks. All stopping decisions are therefore the same on every
  process.
- A stream (:func:`descend.data.stream` of a Parquet or ``.npy`` folder) is passed
  the same by every process, and each reads its own files
  (:meth:`~descend.data.streams.Stream.shard`: process ``p`` of ``P`` the files ``p``,
  ``p + P``, ...), keeping as many rows as the
  smallest share (a warning names the rows left out); each chunk is placed and split
  as data in memory is (see :mod:`descend.data.streams`).
- :func:`descend.save` writes on process 0 only, then waits for it on every process,
  so every process calls it with the same path (on a shared file system) and every
  process can resume from the file.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from descend._tree import PyTree
from descend.data.moments import Moments
from descend.data.shuffle import epoch_order
from descend.engine import BATCH_AXIS, EpochConfig, ShardedOrder
from descend.errors import DataError, DescendTypeError, DescendWarning, InputError


class Rows(Protocol):
    """A process's training rows as ``fit`` prepared them (``training.prepare.Prepared``)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # a dataclass: dataclasses.replace works
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    classes: np.ndarray | None
    standardizer: Any
    target_standardizer: Any
    n_outputs: int


R = TypeVar("R", bound=Rows)

ENVIRONMENT = ("DESCEND_COORDINATOR", "DESCEND_NUM_PROCESSES", "DESCEND_PROCESS_ID")


# --------------------------------------------------------------------------- processes


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    timeout: int = 300,
) -> None:
    """Join a multi-process (multi-machine) run: :func:`jax.distributed.initialize`.

    Every process calls it once, before any JAX computation, with the same
    ``coordinator`` and ``num_processes`` and its own ``process_id``; afterwards
    ``jax.devices()`` lists the devices of all processes and ``fit`` trains one model
    on all of them (see the module documentation). On CPUs the cross-process
    collectives use Gloo (``jax_cpu_collectives_implementation="gloo"``).

    Parameters
    ----------
    coordinator:
        ``"HOST:PORT"`` of process 0, reachable from every process. Default: the
        environment variable ``DESCEND_COORDINATOR``.
    num_processes:
        How many processes take part, >= 1. Default: ``DESCEND_NUM_PROCESSES``.
    process_id:
        This process, ``0 .. num_processes - 1``. Default: ``DESCEND_PROCESS_ID``.
    local_device_ids:
        The local devices this process uses (default: all of them).
    timeout:
        Seconds to wait for all processes to connect (default 300).

    Notes
    -----
    When none of the three is given, here or in the environment, JAX's cluster
    detection (SLURM, Open MPI, Kubernetes, cloud TPUs) supplies them.

    Examples
    --------
    On two machines (or two terminals), the same program with its own id::

        import descend as ds
        ds.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=0)
        result = ds.fit("logistic", X_local, y_local, batch_size=64)

    >>> import descend as ds
    >>> ds.distributed.initialize("10.0.0.1", num_processes=2, process_id=0)
    Traceback (most recent call last):
    ...
    descend.errors.InputError: coordinator must be 'HOST:PORT', ... got '10.0.0.1'
    """
    coordinator = coordinator if coordinator is not None else os.environ.get(ENVIRONMENT[0])
    num_processes = _count("num_processes", num_processes, ENVIRONMENT[1], minimum=1)
    process_id = _count("process_id", process_id, ENVIRONMENT[2], minimum=0)
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) not in (0, 3):
        raise InputError(
            f"initialize needs coordinator, num_processes and process_id together; "
            f"{', '.join(missing)} missing (pass them, or set "
            f"{', '.join(ENVIRONMENT)})"
        )
    if coordinator is not None:
        assert process_id is not None and num_processes is not None  # all three, or none
        _check_address(coordinator)
        if process_id >= num_processes:
            raise InputError(
                f"process_id must be in [0, num_processes - 1] = [0, {num_processes - 1}], "
                f"got {process_id}"
            )
    if jax.distributed.is_initialized():
        raise InputError("jax.distributed is already initialized in this process")
    # jax.config's flags are attributes its type stubs do not declare.
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):  # type: ignore[attr-defined]
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
            initialization_timeout=timeout,
        )
    except (RuntimeError, ValueError) as error:
        if "before any JAX" in str(error):
            raise InputError(
                "descend.distributed.initialize must run before any JAX computation in "
                "this process: call it first, right after the imports"
            ) from error
        if coordinator is None:
            raise InputError(
                f"no cluster found to join ({error}); pass coordinator, num_processes and "
                f"process_id, or set {', '.join(ENVIRONMENT)}"
            ) from error
        raise


def requested(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Whether a multi-process run is asked for, by these arguments or the environment."""
    given = (coordinator, num_processes, process_id)
    return any(value is not None for value in given) or any(
        os.environ.get(name) for name in ENVIRONMENT
    )


def is_multiprocess() -> bool:
    """True after :func:`initialize` joined two or more processes."""
    return jax.distributed.is_initialized() and jax.process_count() > 1


def is_first_process() -> bool:
    """True in a single-process run, and on process 0 of a multi-process one."""
    return not is_multiprocess() or jax.process_index() == 0


def on_first_process(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` on process 0 only, then a barrier (in multi-process runs).

    Every process must call it (the barrier is a collective); single-process runs just
    call ``function``. Used by :func:`descend.save` so that one process writes a
    checkpoint that all of them may then read.
    """
    if not is_multiprocess():
        return function(*args)
    from jax.experimental import multihost_utils

    try:
        return function(*args) if jax.process_index() == 0 else None
    finally:
        multihost_utils.sync_global_devices(f"descend: {getattr(function, '__name__', 'call')}")


def _count(name: str, value: Any, variable: str, *, minimum: int) -> int | None:
    source = name
    if value is None:
        text = os.environ.get(variable)
        if not text:
            return None
        value, source = text, f"{variable} (environment)"
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"{source} must be an integer >= {minimum}, got {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{source} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_address(coordinator: Any) -> None:
    host, _, port = str(coordinator).rpartition(":")
    if not isinstance(coordinator, str) or not host or not port.isdigit():
        raise InputError(
            f"coordinator must be 'HOST:PORT', the address of process 0 (e.g. "
            f"'10.0.0.1:1234'), got {coordinator!r}"
        )
    if not 0 < int(port) < 65536:
        raise InputError(f"the coordinator's port must be in [1, 65535], got {port}")


# --------------------------------------------------------------------------- devices


def data_mesh(devices: Any = "all") -> Mesh:
    """The one-axis mesh (axis ``"batch"``) that ``fit(..., devices=devices)`` trains on.

    ``devices`` is ``"all"`` (every device of every process, ``jax.devices()``), a
    number ``n`` (the first ``n``, ``jax.devices()[:n]``), a sequence of
    :class:`jax.Device`, or a :class:`jax.sharding.Mesh` with a ``"batch"`` axis
    (returned as it is; its other axes, if any, hold copies). Devices are ordered by
    process, then by id: the order in which the processes' batches are concatenated.

    Examples
    --------
    >>> import jax, descend as ds
    >>> mesh = ds.distributed.data_mesh("all")
    >>> mesh.axis_names, mesh.size == len(jax.devices())
    (('batch',), True)
    """
    if isinstance(devices, Mesh):
        if BATCH_AXIS not in devices.axis_names:
            raise InputError(
                f"a Mesh given as devices must have a {BATCH_AXIS!r} axis to split batches "
                f"over, got the axes {devices.axis_names}; e.g. "
                "jax.make_mesh((n,), ('batch',))"
            )
        return devices
    if isinstance(devices, str):
        if devices != "all":
            raise InputError(f"devices must be {_DEVICES}, got {devices!r}")
        devices = jax.devices()
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        devices = first_devices(int(devices))
    try:
        devices = list(devices)
    except TypeError:
        raise DescendTypeError(
            f"devices must be {_DEVICES}, got {type(devices).__name__}"
        ) from None
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise InputError(
            f"devices must list at least one jax device (e.g. jax.devices()[:2]), got {devices!r}"
        )
    if len(set(devices)) != len(devices):
        raise InputError(f"devices lists a device twice: {devices!r}")
    ordered = sorted(devices, key=lambda device: (device.process_index, device.id))
    return Mesh(np.array(ordered), (BATCH_AXIS,))


_DEVICES = "None, 'all', a number of devices, a list of jax devices or a Mesh"


def first_devices(count: int) -> list[jax.Device]:
    """``jax.devices()[:count]``, or the error saying how many there are and how a CPU
    gets more (XLA's forced host devices, set before JAX starts)."""
    available = jax.devices()
    if count < 1:
        raise InputError(f"devices must be at least 1 when a number, got {count}")
    if count > len(available):
        there = "is 1 device" if len(available) == 1 else f"are {len(available)} devices"
        raise InputError(
            f"devices={count} asks for more devices than there are: there {there} "
            f"({available[0].platform}); give devices={len(available)} or fewer, or on a CPU "
            f"start Python with XLA_FLAGS=--xla_force_host_platform_device_count={count} "
            "(set before JAX starts) to split it into that many host devices"
        )
    return list(available[:count])


def resolve(devices: Any) -> Placement | None:
    """The placement ``fit`` trains with, or None for the plain single-device program.

    ``devices=None`` is one device in a single-process run and all devices after
    :func:`initialize` joined several processes; a mesh of one device in one process
    also runs the plain program.
    """
    if devices is None:
        if not is_multiprocess():
            return None
        devices = "all"
    mesh = data_mesh(devices)
    processes = sorted({device.process_index for device in mesh.devices.flat})
    if len(processes) == 1:
        if processes[0] != jax.process_index():
            raise InputError(
                f"devices holds only devices of process {processes[0]}, none of this "
                f"process ({jax.process_index()})"
            )
        if mesh.devices.size == 1:
            return None
    elif len(processes) != jax.process_count():
        raise InputError(
            f"devices spans processes {processes} of {jax.process_count()}: training "
            "across processes uses all of them (devices='all')"
        )
    # Each device position along the batch axis belongs to one process, and every
    # process owns as many positions: each process supplies one equal share of a batch.
    positions = np.moveaxis(mesh.devices, mesh.axis_names.index(BATCH_AXIS), 0)
    owners = [{device.process_index for device in np.ravel(column)} for column in positions]
    shares = [sum(owner == {process} for owner in owners) for process in processes]
    if any(len(owner) != 1 for owner in owners) or len(set(shares)) != 1:
        raise InputError(
            f"every process must own the same number of positions along the mesh's "
            f"{BATCH_AXIS!r} axis; got {shares} for processes {processes}"
        )
    if len(processes) == 1:
        return Placement(mesh, 1, 0)
    return Placement(mesh, len(processes), jax.process_index())


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class Placement:
    """Where data-parallel training runs: the mesh, and the processes taking part.

    ``n_processes`` processes (1, or all of the run) each feed ``n_local_shards`` of
    the ``n_shards`` devices along the mesh's batch axis; this is process ``process``.
    """

    mesh: Mesh
    n_processes: int
    process: int

    @property
    def n_shards(self) -> int:
        return self.mesh.shape[BATCH_AXIS]

    @property
    def n_local_shards(self) -> int:
        return self.n_shards // self.n_processes

    def _sharding(self, *spec: Any) -> NamedSharding:
        return NamedSharding(self.mesh, P(*spec))

    def replicate(self, tree: PyTree) -> PyTree:
        """The same values on every device of the mesh (global arrays)."""
        sharding = self._sharding()

        def put(leaf):
            leaf = np.asarray(leaf)
            return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])

        return jax.tree.map(put, tree)

    def local(self, tree: PyTree) -> PyTree:
        """This process's copy of replicated arrays (to score local validation data)."""
        return jax.tree.map(lambda leaf: leaf.addressable_data(0), tree)

    def check_batch_size(self, batch_size: int, n_samples: int) -> None:
        """The global batch must split evenly over the devices of the batch axis."""
        if batch_size % self.n_shards == 0:
            return
        if batch_size == n_samples:
            raise InputError(
                f"batch gradient descent over the {self.n_shards} devices of the batch axis "
                f"needs a number of training rows divisible by {self.n_shards}, got "
                f"{n_samples}; drop {n_samples % self.n_shards} rows, or use mini-batches "
                f"(e.g. batch_size={n_samples // self.n_shards * self.n_shards})"
            )
        lower = batch_size // self.n_shards * self.n_shards
        sizes = [size for size in (lower, lower + self.n_shards) if 0 < size <= n_samples]
        raise InputError(
            f"batch_size={batch_size} does not split evenly over the {self.n_shards} "
            f"devices of the batch axis; use a multiple of {self.n_shards}, e.g. "
            + " or ".join(f"batch_size={size}" for size in sizes)
        )

    def agree(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """``values`` of every process, stacked: shape ``(n_processes, len(values))``."""
        values = np.asarray(values, dtype=np.float64).reshape(1, -1)
        if self.n_processes == 1:
            return values
        return _allgather(values[0])

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any process (the same answer everywhere)."""
        return bool(self.agree([float(flag)]).max() > 0)

    def mean_scores(self, scores: Sequence[float], weight: float) -> list[float]:
        """The processes' validation scores, averaged with ``weight`` as weights (the
        process's validation rows, or their sample weights' sum)."""
        if self.n_processes == 1:
            return [float(score) for score in scores]
        table = self.agree([weight, *scores])
        # A process whose held-out rows all weigh 0 scores NaN, and counts nothing.
        table = table[table[:, 0] > 0]
        weights = table[:, 0]
        return [float(np.dot(weights, column) / weights.sum()) for column in table[:, 1:].T]

    def prepare(self, prepared: R, standardize: bool, targets: bool = False) -> R:
        """Check that the processes' data agree, cut them to one length, standardize.

        ``prepared`` comes from :func:`descend.training.prepare.prepare`, run without
        standardization (unless resumed): the standardization is fitted here on the
        training rows of all processes together, of the features, and of the regression
        targets too with ``targets`` (a fresh regression run).
        """

        if self.n_processes > 1:
            prepared = self._agree_on_shapes(prepared)
        if standardize and prepared.standardizer is None:
            standardizer = self._standardizer(prepared.X, prepared.weights)
            dtype = prepared.X.dtype
            prepared = replace(
                prepared,
                X=np.asarray(standardizer.transform(prepared.X), dtype=dtype),
                X_val=None
                if prepared.X_val is None
                else np.asarray(standardizer.transform(prepared.X_val), dtype=dtype),
                standardizer=standardizer,
            )
        if standardize and targets and prepared.target_standardizer is None:
            from descend.data.arrays import as_columns, standardized_targets

            scaler = self._standardizer(as_columns(prepared.y), prepared.weights)
            prepared = replace(
                prepared,
                y=standardized_targets(scaler, prepared.y),
                y_val=standardized_targets(scaler, prepared.y_val),
                target_standardizer=scaler,
            )
        return prepared

    def _agree_on_shapes(self, prepared):
        classes = None if prepared.classes is None else np.asarray(prepared.classes).tolist()
        fields = {
            "features": prepared.X.shape[1],
            "outputs": prepared.n_outputs,
            "classes (checksum)": zlib.crc32(repr(classes).encode()),
            "sample weights": prepared.weights is not None,
            "validation data": prepared.X_val is not None,
            "dtype (bytes)": prepared.X.dtype.itemsize,
            "standardization (checksum)": zlib.crc32(
                repr(
                    None if prepared.standardizer is None else prepared.standardizer.to_dict()
                ).encode()
            ),
        }
        table = self.agree([len(prepared.X), *fields.values()])
        for column, name in enumerate(fields, start=1):
            if len(set(table[:, column])) > 1:
                values = ", ".join(
                    f"process {p}: {value:g}" for p, value in enumerate(table[:, column])
                )
                hint = (
                    "; every process needs every class: shuffle the rows before splitting "
                    "them among the processes"
                    if name.startswith("classes")
                    else ""
                )
                raise DataError(
                    f"the processes' training data differ in {name} ({values}); every "
                    f"process must pass data of the same form{hint}"
                )
        counts = table[:, 0].astype(int)
        smallest = int(counts.min())
        if len(prepared.X) > smallest:
            warnings.warn(
                f"this process (process {self.process}) has {len(prepared.X)} training rows "
                f"and the smallest shard {smallest} (rows per process: {counts.tolist()}); "
                f"every process trains on its first {smallest} rows",
                DescendWarning,
                stacklevel=4,
            )
            weights = None if prepared.weights is None else prepared.weights[:smallest]
            prepared = replace(
                prepared, X=prepared.X[:smallest], y=prepared.y[:smallest], weights=weights
            )
        return prepared

    def _standardizer(self, X: np.ndarray, weights: np.ndarray | None = None):
        """The standardization of all processes' rows (their moments merged), weighted
        by their sample weights (in one process, unless all are equal)."""
        from descend.data import Standardizer
        from descend.data.arrays import distinct_weights

        if self.n_processes == 1:
            return Standardizer.fit(X, sample_weight=distinct_weights(weights))
        if not np.isfinite(np.asarray(X, dtype=np.float64)).all():
            Standardizer.fit(X)  # its error, worded once
        if weights is not None:  # all equal on every process: the unweighted statistics
            local = [np.min(weights), np.max(weights)] if len(weights) else [np.inf, -np.inf]
            bounds = self.agree([float(v) for v in local])
            if bounds[:, 0].min() == bounds[:, 1].max():
                weights = None
        return self.merged(Moments.of(X, weights)).standardizer()

    def merged(self, local: Moments) -> Moments:
        """Every process's moments merged, in process order (the same on all of them)."""
        merged = Moments()
        for row in self.agree(local.to_array()):
            merged.merge(Moments.from_array(row))
        return merged

    def union(self, values: np.ndarray) -> np.ndarray:
        """The sorted distinct values of every process's finite ``values`` (1-D)."""
        values = np.unique(np.asarray(values, dtype=np.float64))
        if self.n_processes == 1:
            return values
        longest = int(self.agree([len(values)]).max())
        padded = np.full(longest, np.nan)  # NaN pads: the values themselves are finite
        padded[: len(values)] = values
        table = self.agree(padded)
        return np.unique(table[~np.isnan(table)])

    def spread(self, local: np.ndarray) -> jax.Array:
        """This process's rows on each device it feeds: shape ``(n_shards, *local.shape)``
        (see :class:`~descend.engine.ShardedOrder`); a device gathers its share of every
        batch from its own copy."""
        local = np.asarray(local)
        shape = (self.n_shards, *local.shape)
        sharding = self._sharding(BATCH_AXIS)
        return jax.make_array_from_callback(shape, sharding, lambda index: local[None])

    def source(
        self, prepared: Rows, config: EpochConfig, mean_weight: np.ndarray | None = None
    ) -> ShardedSource:
        """The training rows on the mesh, as a chunk source for the epoch loop.

        ``mean_weight`` is the mean sample weight of all processes' training rows (with
        weights): every process divides its updates by the same number, which the
        padding rows of a short last batch (weight 0) do not change.
        """
        data: tuple[np.ndarray, ...] = (prepared.X, prepared.y)
        replicated: jax.Array | None = None
        if prepared.weights is not None:
            data += (prepared.weights,)
            replicated = self.replicate(np.asarray(mean_weight))
        arrays = tuple(self.spread(local) for local in data)
        return ShardedSource(
            self, config, arrays, prepared.y, prepared.weights, len(prepared.X), replicated
        )

    def order(self, config: EpochConfig, local_order: np.ndarray, dtype: Any) -> ShardedOrder:
        """This epoch's batches as global index arrays (see :class:`ShardedOrder`).

        Each process's part of the last axis is its own share of every batch:
        ``batch_size / n_processes`` of its rows, in its local order.
        """
        share = config.batch_size // self.n_processes
        n_main = config.n_groups * config.accumulate * share
        n_full = config.n_full_batches * share

        def glue(local: np.ndarray) -> jax.Array:
            spec = (None,) * (local.ndim - 1) + (BATCH_AXIS,)
            shape = (*local.shape[:-1], local.shape[-1] * self.n_processes)
            return jax.make_array_from_process_local_data(self._sharding(*spec), local, shape)

        main = leftover = remainder = mask = None
        if config.n_groups:
            main = glue(local_order[:n_main].reshape(config.n_groups, config.accumulate, share))
        if config.leftover_batches:
            leftover = glue(local_order[n_main:n_full].reshape(-1, share))
        if config.remainder:
            rows = local_order[n_full : n_full + config.remainder // self.n_processes]
            padded = math.ceil(len(rows) / self.n_local_shards) * self.n_local_shards
            if padded > len(rows):
                weights = np.zeros((1, padded), dtype)
                weights[0, : len(rows)] = 1
                mask = glue(weights)
                rows = np.concatenate([rows, np.zeros(padded - len(rows), rows.dtype)])
            remainder = glue(rows.reshape(1, -1))
        return ShardedOrder(main, leftover, remainder, mask)


@dataclass
class ShardedSource:
    """Training rows held on a mesh, a :class:`~descend.training.sources.ChunkSource`."""

    placement: Placement
    config: EpochConfig
    data: tuple
    y: np.ndarray
    weights: np.ndarray | None
    n_local: int
    mean_weight: jax.Array | None = None  # of all processes' rows, replicated

    @property
    def n_samples(self) -> int:
        return self.config.n_samples

    def chunks(self, seed: int, epoch: int) -> Iterator[tuple[EpochConfig, tuple, ShardedOrder]]:
        placement = self.placement
        if self.config.shuffle:
            process = placement.process if placement.n_processes > 1 else None
            local_order = epoch_order(seed, epoch, self.n_local, process=process)
        else:
            local_order = np.arange(self.n_local, dtype=np.int32)
        order = placement.order(self.config, local_order, self.data[0].dtype)
        yield self.config, self.data, order

    def total_squares(self) -> np.ndarray:
        """The weighted total sum of squares of all processes' targets, per output."""
        y = np.asarray(self.y).reshape(len(self.y), -1)
        return self.placement.merged(Moments.of(y, self.weights)).m2


def _allgather(values: np.ndarray) -> np.ndarray:
    """Every process's ``values`` (same shape everywhere), stacked on a first axis.

    Sent as raw bytes, so float64 arrives exactly even where JAX runs in float32.
    """
    from jax.experimental import multihost_utils

    values = np.ascontiguousarray(values)
    gathered = multihost_utils.process_allgather(values.view(np.uint8))
    return np.asarray(gathered).view(values.dtype).reshape(-1, *values.shape)
