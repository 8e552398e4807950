"""The Training tab: shipped datasets, uploaded CSV files, and training runs streamed
epoch by epoch.

A run trains the same model on the same data by the seed's three update methods
(batch, stochastic and mini-batch gradient descent: ``ds.fit`` with ``batch_size``
``None``, ``1`` and ``n``), each in its own worker thread. A ``ds.fit`` callback turns
every epoch into an event, which ``GET /api/train/{run}/events`` sends as it comes
(server-sent events); for data of one or two features, a ``ds.callbacks.Checkpoint``
saves the weights every few epochs and the fitted curve or decision boundary is drawn
from them. Uploads and checkpoints live in one temporary folder, removed at exit.
"""

from __future__ import annotations

import atexit
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from starlette.requests import Request

from descend import callbacks, data, losses, models, optim
from descend.errors import DescendError, unknown_name
from descend.training import fit, load, save
from descend.web.compute import checked_hyperparameters
from descend.web.limits import Limits, RequestError, busy, integer, number, only_fields, text

METHODS = ("batch", "stochastic", "minibatch")
MODELS = ("auto", "linear", "logistic", "softmax", "mlp")
# The fields of POST /api/train (any other is refused: it would be ignored silently).
FIELDS = (
    "dataset", "upload", "target", "features", "model", "loss", "optimizer", "lr",
    "hyperparams", "epochs", "batch_size", "methods", "seed", "validation_split", "patience",
)  # fmt: skip
BOUNDARY_POINTS = 60  # per axis of the grid the boundary is drawn on
TRAINING_POINTS = 2000  # most training rows sent to draw under the boundary
_KEPT_RUNS = 16


def dataset_list() -> dict[str, Any]:
    """``GET /api/datasets``: the shipped datasets, their size, task and columns; and
    the names a training request takes as ``model`` and ``loss``."""
    from descend.data.datasets import dataset_task

    rows = []
    for name in data.dataset_names():
        dataset = data.load_dataset(name)
        rows.append(
            {
                "name": name,
                "n_samples": dataset.n_samples,
                "n_features": dataset.n_features,
                "task": dataset_task(name),
                "columns": list(dataset.feature_names),
                "target": dataset.target_name,
            }
        )
    return {"datasets": rows, "models": list(MODELS), "losses": ["auto", *losses.names()]}


@dataclass
class Upload:
    path: Path
    columns: list[str]
    n_rows: int


@dataclass
class Run:
    """One training request: a thread per update method, the events they report, and
    each method's checkpoint once it finished."""

    id: str
    folder: Path
    methods: tuple[str, ...]
    events_list: list[dict[str, Any]] = field(default_factory=list)
    finished: dict[str, Path | None] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False
    points: dict[str, list[Any]] | None = None  # sent with the first boundary event

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events_list.append(event)

    def emit_boundary(self, method: str, epoch: int, boundary: dict[str, Any]) -> None:
        """A boundary event; the run's first also carries the training points."""
        event = {"method": method, "epoch": epoch, "boundary": boundary}
        with self.lock:
            if self.points is not None:
                event["points"], self.points = self.points, None
            self.events_list.append(event)

    def stop(self) -> None:
        """Stop every method after the epoch in flight."""
        self.stopping.set()

    async def events(self) -> AsyncIterator[str]:
        """The run's events from the first, as server-sent events, until ``{"end": true}``."""
        import json

        sent = 0
        while True:
            with self.lock:
                fresh, ended = self.events_list[sent:], self.ended
            for event in fresh:
                yield f"data: {json.dumps(event)}\n\n"
            sent += len(fresh)
            if ended and not fresh:
                return
            await anyio.sleep(0.02)

    def checkpoint(self, method: str | None) -> Path:
        if method is None and len(self.methods) == 1:
            method = self.methods[0]
        if method not in self.methods:
            raise RequestError(
                f"method must be one of this run's methods ({', '.join(self.methods)}), got "
                f"{method!r}: add ?method={self.methods[-1]}",
                field="method",
            )
        if method not in self.finished:
            raise RequestError(
                f"the {method} run is still training; its checkpoint is ready when its "
                '"done" event has come (or stop the run)',
                field="method", status=409,
            )  # fmt: skip
        path = self.finished[method]
        if path is None:
            raise RequestError(
                f"the {method} run failed and saved nothing (its error event says why)",
                field="method", status=404,
            )  # fmt: skip
        return path


class Trainer:
    """Uploads and training runs, kept in one temporary folder."""

    def __init__(self, limits: Limits, slots: threading.BoundedSemaphore):
        self.limits, self.slots = limits, slots
        self.folder = Path(tempfile.mkdtemp(prefix="descend-playground-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self.lock = threading.Lock()

    # --- uploads ---------------------------------------------------------------------

    async def upload(self, request: Request) -> dict[str, Any]:
        """``POST /api/upload``: a CSV file (multipart field ``file``), kept under this
        server's temporary folder and read by descend's table reader."""
        limit = self.limits.upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise _upload_too_large(int(declared), limit)
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            raise RequestError(
                "send the CSV file as multipart/form-data in the field 'file'", field="file"
            )
        try:
            async with request.form(max_files=1, max_fields=4, max_part_size=limit) as form:
                part = form.get("file")
                if part is None or isinstance(part, str):
                    raise RequestError("the upload has no file in the field 'file'", field="file")
                content = await part.read(limit + 1)
        except RequestError:
            raise
        except Exception as error:  # multipart's own refusals (too many parts, bad framing)
            raise RequestError(
                f"cannot read the upload ({getattr(error, 'detail', error)}); send one CSV "
                "file in the field 'file'",
                field="file", status=getattr(error, "status_code", 400),
            ) from None  # fmt: skip
        if len(content) > limit:
            raise _upload_too_large(len(content), limit)
        if not content.strip():
            raise RequestError("the uploaded file is empty; choose a CSV file", field="file")
        return await anyio.to_thread.run_sync(self._keep, content)

    def _keep(self, content: bytes) -> dict[str, Any]:
        from descend.data.tables import read_table

        key = secrets.token_hex(8)
        path = self.folder / f"upload-{key}.csv"  # never the client's name
        path.write_bytes(content)
        try:
            table = read_table(path)
        except (DescendError, UnicodeDecodeError, ValueError) as error:
            path.unlink(missing_ok=True)
            message = f"the file cannot be read as a table: {error}"
            raise RequestError(message, field="file") from None
        columns = table.names
        n_rows = len(next(iter(table.columns.values()))) if columns else 0
        with self.lock:
            self.uploads[key] = Upload(path, columns, n_rows)
            while len(self.uploads) > self.limits.uploads:
                _, dropped = self.uploads.popitem(last=False)
                dropped.path.unlink(missing_ok=True)
        return {"upload": key, "columns": columns, "n_rows": n_rows}

    # --- runs ---------------------------------------------------------------------------

    def run(self, key: str) -> Run:
        with self.lock:
            found = self.runs.get(key)
        if found is None:
            raise RequestError(
                f"no training run {key!r} (runs are kept while the server runs, the last "
                f"{_KEPT_RUNS}); start one with POST /api/train",
                field="run", status=404,
            )  # fmt: skip
        return found

    def start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/train``: check the request, read the data, start a thread per
        method; returns ``{"run": id}`` at once."""
        only_fields(body, FIELDS)
        settings = self.settings(body)
        dataset = self.dataset(body)
        model = _model(body.get("model", "auto"), dataset)
        points = _training_points(dataset, settings["validation_split"], settings["seed"])
        if not self.slots.acquire(blocking=False):
            raise busy(self.limits)
        key = secrets.token_hex(8)
        folder = self.folder / f"run-{key}"
        folder.mkdir()
        run = Run(key, folder, settings["methods"], points=points)
        with self.lock:
            self.runs[key] = run
            while len(self.runs) > _KEPT_RUNS:
                _, dropped = self.runs.popitem(last=False)
                dropped.stop()
                shutil.rmtree(dropped.folder, ignore_errors=True)
        threads = [
            threading.Thread(
                target=self._train,
                args=(run, method, dataset, model, settings),
                name=f"descend-train-{key}-{method}",
            )
            for method in settings["methods"]
        ]
        for thread in threads:
            thread.start()

        def finish() -> None:
            for thread in threads:
                thread.join()
            self.slots.release()
            run.emit({"end": True})
            with run.lock:
                run.ended = True

        threading.Thread(target=finish, name=f"descend-train-{key}").start()
        return {"run": key}

    def close(self) -> None:
        """Stop every run after its epoch in flight (the threads end by themselves: the
        interpreter waits for them at exit rather than cutting JAX short)."""
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.stop()

    def settings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The training options of a request, each checked and bounded."""
        methods = body.get("methods", list(METHODS))
        if (
            not isinstance(methods, list) or not methods
            or not all(m in METHODS for m in methods) or len(set(methods)) != len(methods)
        ):  # fmt: skip
            raise RequestError(
                f"methods must be a list of distinct names among {', '.join(METHODS)}, got "
                f"{methods!r}",
                field="methods",
            )
        optimizer = body.get("optimizer", "sgd")
        if not isinstance(optimizer, str) or optimizer not in optim.names():
            error = unknown_name("optimizer", str(optimizer), optim.names())
            raise RequestError(str(error), field="optimizer", status=404)
        loss = body.get("loss")
        if loss == "auto":
            loss = None
        if loss is not None and (not isinstance(loss, str) or loss not in losses.names()):
            error = unknown_name("loss", str(loss), ["auto", *losses.names()])
            raise RequestError(str(error), field="loss")
        split = number(body, "validation_split", 0.2)
        if split >= 0.9:
            raise RequestError(
                f"validation_split must be in [0, 0.9), got {split}", field="validation_split"
            )
        patience = body.get("patience")
        if patience is not None:
            patience = integer(body, "patience", None, minimum=1, limit=None)
        lr = body.get("lr")
        if lr is not None:
            lr = number(body, "lr", 0.0)
            if lr <= 0:
                raise RequestError(f"lr must be > 0, got {lr}", field="lr")
            _built(optimizer, {"lr": lr}, "lr")  # the optimizer's own range for it
        hyperparams = body.get("hyperparams") or {}
        if isinstance(hyperparams, Mapping) and "lr" in hyperparams:
            raise RequestError(
                "give the learning rate as lr, not among the hyperparams", field="hyperparams.lr"
            )
        hyperparams = checked_hyperparameters(optimizer, hyperparams, "hyperparams")
        optimizer_given: Any = optimizer
        if hyperparams:  # fit takes the optimizer built with them, its lr inside
            optimizer_given = _built(
                optimizer, {**({} if lr is None else {"lr": lr}), **hyperparams}, "hyperparams"
            )
            lr = None
        return {
            "methods": tuple(methods),
            "optimizer": optimizer_given,
            "loss": loss,
            "lr": lr,
            "epochs": integer(body, "epochs", 30, minimum=1, limit=self.limits.epochs),
            "batch_size": integer(body, "batch_size", 32, minimum=1, limit=None),
            "seed": integer(body, "seed", 0, minimum=0, limit=2**31 - 1),
            "validation_split": split or None,
            "patience": patience,
        }

    def dataset(self, body: Mapping[str, Any]) -> data.Dataset:
        """The shipped dataset or the upload the request names, read as ``descend train``
        reads a file; with ``features``, only those columns (in that order)."""
        given = [key for key in ("dataset", "upload") if body.get(key) not in (None, "")]
        if len(given) != 1:
            raise RequestError(
                "give one of dataset (a shipped dataset's name) or upload (the id POST "
                f"/api/upload returned), got {'both' if given else 'neither'}",
                field="dataset",
            )
        if given[0] == "dataset":
            name = body["dataset"]
            if not isinstance(name, str) or name not in data.dataset_names():
                error = unknown_name("dataset", str(name), data.dataset_names())
                raise RequestError(str(error), field="dataset", status=404)
            dataset = data.load_dataset(name)
            features = _features(body, list(dataset.feature_names), dataset.target_name)
            return dataset if features is None else _columns(dataset, features)
        key = body["upload"]
        with self.lock:
            found = self.uploads.get(key) if isinstance(key, str) else None
        if found is None:
            raise RequestError(
                f"no upload {key!r} (uploads are kept while the server runs, the last "
                f"{self.limits.uploads}); upload the file again",
                field="upload", status=404,
            )  # fmt: skip
        target = body.get("target")
        if target is not None:
            target = text(body, "target")
        try:
            chosen = target if target is not None else found.columns[-1]
            # An unknown target: data.load names it (and what it may mean) first.
            features = _features(body, found.columns, chosen) if chosen in found.columns else None
            return data.load(found.path, target=target, features=features)
        except DescendError as error:
            where = "target" if target is not None and target not in found.columns else "upload"
            message = str(error).replace(str(found.path), "the upload")
            raise RequestError(message, field=where) from None

    def _train(self, run: Run, method: str, dataset: Any, model: Any, settings: dict) -> None:
        """One method's ``ds.fit``, its epochs reported as events, its result saved."""
        batch_size = {"batch": None, "stochastic": 1, "minibatch": settings["batch_size"]}[method]
        # fit's split holds out ceil(fraction * n) rows (ds.data.train_validation_split)
        held_out = math.ceil((settings["validation_split"] or 0) * dataset.n_samples)
        n_train = dataset.n_samples - held_out
        per_epoch = 1 if batch_size is None else math.ceil(n_train / min(batch_size, n_train))
        began = time.perf_counter()
        limit = self.limits.run_seconds
        live = run.folder / f"{method}-live.ckpt"
        drawn = _boundary_grid(dataset)
        every = max(1, settings["epochs"] // 20)

        def on_epoch(epoch: int, history: Mapping[str, np.ndarray]) -> bool:
            run.emit(_epoch_event(method, epoch, history, per_epoch, time.perf_counter() - began))
            if drawn is not None and (epoch == 1 or epoch % every == 0) and live.is_file():
                run.emit_boundary(method, epoch, _boundary(live, drawn))
            return run.stopping.is_set() or time.perf_counter() - began > limit

        hooks: list[Any] = []
        if drawn is not None:  # the weights as they stand, for the boundary
            hooks.append(callbacks.Checkpoint(live, every=every))
        hooks.append(on_epoch)
        try:
            result = fit(
                model, dataset, loss=settings["loss"], optimizer=settings["optimizer"],
                lr=settings["lr"], batch_size=batch_size, epochs=settings["epochs"],
                seed=settings["seed"], validation_split=settings["validation_split"],
                patience=settings["patience"], verbose=0, callbacks=hooks,
            )  # fmt: skip
        except DescendError as error:
            run.emit({"method": method, "error": str(error), "done": True})
            run.finished[method] = None
            return
        except Exception as error:  # a bug: reported as an event, the server goes on
            message = f"internal error ({type(error).__name__}: {error}); please report it"
            run.emit({"method": method, "error": message, "done": True})
            run.finished[method] = None
            return
        path = run.folder / f"{method}.ckpt"
        save(path, result)
        reason = result.reason
        if result.status == "callback":
            elapsed = time.perf_counter() - began
            reason = (
                f"stopped by the user after epoch {result.n_epochs}"
                if run.stopping.is_set() or elapsed <= limit
                else f"stopped after epoch {result.n_epochs}: the run took longer than this "
                f"server allows ({limit:g} s)"
            )
        if drawn is not None:
            run.emit_boundary(method, result.n_epochs, _boundary(path, drawn))
        run.finished[method] = path
        run.emit(
            {
                "method": method, "done": True, "status": result.status, "reason": reason,
                "epochs": result.n_epochs, "updates": result.n_updates,
                "seconds": time.perf_counter() - began,
            }
        )  # fmt: skip


def _built(optimizer: str, hyperparams: dict[str, Any], where: str) -> optim.Optimizer:
    """``ds.optim.get(optimizer, **hyperparams)``, its refusal an error at ``where``."""
    try:
        return optim.get(optimizer, **hyperparams)
    except (DescendError, TypeError, ValueError) as error:
        raise RequestError(f"{optimizer}: {error}", field=where) from None


def _features(body: Mapping[str, Any], columns: list[str], target: str | None) -> list | None:
    """The request's ``features``: None (every column but the target), or a list of
    distinct columns of the data other than the target."""
    features = body.get("features")
    if features is None:
        return None
    if (
        not isinstance(features, list) or not features
        or not all(isinstance(name, str) for name in features)
    ):  # fmt: skip
        raise RequestError(
            f"features must be a non-empty list of column names, got {features!r}",
            field="features",
        )
    choices = [column for column in columns if column != target]
    for name in features:
        if name == target:
            raise RequestError(
                f"{name!r} is the target column; choose features among the others",
                field="features",
            )
        if name not in choices:
            raise RequestError(str(unknown_name("feature", name, choices)), field="features")
    if len(set(features)) != len(features):
        raise RequestError(f"features must be distinct, got {features!r}", field="features")
    return features


def _columns(dataset: data.Dataset, features: list[str]) -> data.Dataset:
    """The shipped ``dataset`` with only the feature columns ``features``."""
    names = list(dataset.feature_names)
    index = [names.index(name) for name in features]
    encoding = data.Encoding(tuple(features), {}, dataset.target_name, dataset.classes)
    return data.Dataset(dataset.X[:, index], dataset.y, encoding)


def _training_points(
    dataset: data.Dataset, validation_split: float | None, seed: int
) -> dict[str, list[Any]] | None:
    """The rows ``ds.fit`` trains on (its split: ``ds.data.train_validation_split``) to
    draw with a boundary (two features: ``x``, ``y`` and the target as ``label``) or a
    fitted curve (one feature: ``x`` and the target as ``y``); at most
    ``TRAINING_POINTS``, evenly spaced rows of them; None for more features."""
    if dataset.n_features not in (1, 2):
        return None
    X, y = dataset.X, dataset.y
    if validation_split:
        X, _, y, _ = data.train_validation_split(X, y, validation_split, seed)
    step = math.ceil(len(X) / TRAINING_POINTS)
    X, y = np.asarray(X[::step], dtype=float), np.asarray(y[::step])
    if dataset.n_features == 1:
        return {"x": X[:, 0].tolist(), "y": y.astype(float).tolist()}
    return {"x": X[:, 0].tolist(), "y": X[:, 1].tolist(), "label": y.tolist()}


def _model(name: Any, dataset: Any) -> models.Model:
    """The model a name asks for, sized by ``ds.fit``; ``"auto"`` as ``descend train``
    chooses: logistic for two classes, softmax for more, linear for numbers."""
    if name not in MODELS:
        raise RequestError(f"model must be one of {', '.join(MODELS)}, got {name!r}", field="model")
    classes = dataset.classes
    task = "regression" if classes is None else "binary" if len(classes) == 2 else "multiclass"
    if name == "auto":
        name = {"regression": "linear", "binary": "logistic", "multiclass": "softmax"}[task]
    if name == "logistic" and task != "binary":
        raise RequestError(
            f"logistic regression needs two classes; this target is {task} (choose softmax "
            "for classes, linear for numbers)",
            field="model",
        )
    if name == "softmax" and task == "regression":
        raise RequestError(
            "softmax needs class labels; this target holds numbers (choose linear or mlp)",
            field="model",
        )
    if name == "mlp":
        return models.mlp(task=task)
    return models.get(name)


def _epoch_event(method, epoch, history, per_epoch, elapsed) -> dict[str, Any]:
    last = {key: float(values[-1]) for key, values in history.items() if len(values)}
    metric = next((key for key in ("accuracy", "r2") if key in last), None)
    return {
        "method": method,
        "epoch": epoch,
        "loss": _finite(last.get("loss")),
        "val_loss": _finite(last.get("val_loss")),
        "metric_name": metric,
        "metric": _finite(last.get(metric)) if metric else None,
        "val_metric": _finite(last.get(f"val_{metric}")) if metric else None,
        "updates": per_epoch * epoch,
        "seconds": elapsed,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _boundary_grid(dataset: Any) -> list[np.ndarray] | None:
    """The grid the fitted curve (one feature) or boundary (two) is drawn on: the
    features' range, padded by a tenth; None for more features."""
    if dataset.n_features not in (1, 2):
        return None
    low, high = dataset.X.min(axis=0).astype(float), dataset.X.max(axis=0).astype(float)
    pad = 0.1 * np.where(high > low, high - low, 1.0)
    return [np.linspace(a, b, BOUNDARY_POINTS) for a, b in zip(low - pad, high + pad, strict=True)]


def _boundary(path: Path, axes: list[np.ndarray]) -> dict[str, Any]:
    """The saved model's predictions over ``axes``: values for a regression, the
    probability of the second class for two, the predicted class's index for more."""
    result = load(path)
    if len(axes) == 1:
        points = axes[0][:, None]
    else:
        xs, ys = np.meshgrid(axes[0], axes[1])
        points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    if result.classes is None:
        z = np.asarray(result.predict(points), dtype=float).reshape(len(points), -1)[:, 0]
    else:
        probabilities = result.predict_proba(points)
        z = probabilities[:, 1] if len(result.classes) == 2 else probabilities.argmax(axis=1)
    z = np.asarray(z, dtype=float)
    if len(axes) == 1:
        return {"x": axes[0].tolist(), "z": z.tolist()}
    return {"x": axes[0].tolist(), "y": axes[1].tolist(), "z": z.reshape(len(axes[1]), -1).tolist()}


def _upload_too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        f"the file has {size} bytes, more than this server accepts ({limit}); upload a "
        "smaller CSV (fewer rows)",
        field="file", status=413,
    )  # fmt: skip
