"""The playground's HTTP API (descend.web): every number equals the library's own call,
every failure is a JSON error with a 4xx status, the limits hold, and the server keeps
serving after bad requests. Training streams its epochs while it runs (tested on a real
uvicorn server, since the ASGI test client collects a streamed body before returning)."""

from __future__ import annotations

import ast
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
import httpx
import uvicorn
from starlette.testclient import TestClient

import descend as ds
from descend.web import Limits, create_app
from descend.web.app import plotly_file

EXPRESSION = "(x-3)**2 + 10*(y+1)**2"
OPTIMIZERS = [
    {"name": "gd"},
    {"name": "momentum", "hyperparams": {"lr": 0.01, "nesterov": True}},
    {"name": "adam", "hyperparams": {"lr": 0.05, "betas": [0.9, 0.99]}},
    {"name": "lbfgs"},
]
RACE = {"expression": EXPRESSION, "start": [0.5, 1.5], "optimizers": OPTIMIZERS, "max_iter": 300}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def race(client):
    response = client.post("/api/race", json=RACE)
    assert response.status_code == 200, response.text
    return response.json()


def specs(optimizers):
    """The request's optimizers as ds.compare takes them."""
    return [
        (
            o["name"],
            {k: tuple(v) if isinstance(v, list) else v for k, v in o["hyperparams"].items()},
        )
        if o.get("hyperparams")
        else o["name"]
        for o in optimizers
    ]


def assert_error(response, status: int, field: str | None = None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "column"}
    assert isinstance(body["error"], str) and len(body["error"]) > 20
    if field is not None:
        assert body["field"] == field
    return body


# --- the Functions tab -----------------------------------------------------------------


def test_functions_are_the_library_test_functions(client):
    rows = client.get("/api/functions").json()["functions"]
    assert [row["name"] for row in rows] == ds.functions.names()
    for row in rows:
        f = ds.functions.get(row["name"])
        assert row["n_vars"] == f.dim and row["formula"] == f.formula
        np.testing.assert_array_equal(
            row["minimizers"], np.asarray(f.minimizers).reshape(-1, f.dim)
        )
        assert row["minimum"] == float(f.minimum)
        assert row["bounds"] == [list(map(float, pair)) for pair in f.bounds]
        assert row["start"] == list(map(float, f.start))


def test_optimizers_are_the_library_list_with_their_defaults(client):
    rows = client.get("/api/optimizers").json()["optimizers"]
    available = ds.optim.available()
    assert [row["name"] for row in rows] == [entry["name"] for entry in available]
    for row, entry in zip(rows, available, strict=True):
        assert [h["name"] for h in row["hyperparams"]] == list(entry["hyperparams"])
        for setting in row["hyperparams"]:
            default = entry["hyperparams"][setting["name"]]
            if isinstance(default, bool):
                assert setting["kind"] == "bool" and setting["default"] is default
            elif isinstance(default, float) and np.isinf(default):
                assert setting["default"] == "inf"
            elif isinstance(default, (int, float)):
                assert setting["kind"] == "number" and setting["default"] == default
            elif isinstance(default, tuple) and setting["kind"] == "pair":
                assert setting["default"] == list(default)


def test_parse_gives_the_symbolic_derivatives_of_ds_parse(client):
    text = "2*x**2 + 6*z**2 + 7*m**3"
    answer = client.post("/api/parse", json={"expression": text}).json()
    expected = ds.parse(text)
    assert answer["variables"] == list(expected.variables) == ["x", "z", "m"]
    assert answer["derivatives"] == [expected.derivatives[v] for v in expected.variables]
    assert answer["derivatives"] == ["4*x", "12*z", "21*m**2"]


@pytest.mark.parametrize(
    ("text", "column"),
    [("__import__('os')", 1), ("x + ", None), ("x + y)", None), ("x**2 + y.real", None)],
)
def test_a_bad_expression_is_the_parser_error_with_its_column(client, text, column):
    body = assert_error(client.post("/api/parse", json={"expression": text}), 400, "expression")
    with pytest.raises(ds.errors.ExpressionError) as raised:
        ds.parse(text)
    assert body["error"] == str(raised.value)
    assert body["column"] == raised.value.column
    if column is not None:
        assert body["column"] == column


def test_a_grid_holds_the_function_values_in_one_call(client):
    answer = client.post(
        "/api/grid", json={"expression": EXPRESSION, "bounds": [[-1, 5], [-3, 2]], "n": 31}
    ).json()
    x, y, z = np.array(answer["x"]), np.array(answer["y"]), np.array(answer["z"])
    assert z.shape == (31, 31)
    e = ds.parse(EXPRESSION)
    for i, j in [(0, 0), (30, 30), (7, 19), (15, 4)]:
        assert z[i, j] == pytest.approx(float(e(x[j], y[i])), rel=1e-12)  # rows over y
    levels = np.array(answer["levels"])
    assert np.all(np.diff(levels) > 0) and levels[0] >= z.min() and levels[-1] <= z.max()
    assert answer["minimizers"] == []


def test_a_grid_of_a_test_function_marks_its_minimizers(client):
    f = ds.functions.himmelblau
    answer = client.post("/api/grid", json={"function": "himmelblau", "n": 20}).json()
    assert len(answer["minimizers"]) == 4
    x, y, z = np.array(answer["x"]), np.array(answer["y"]), np.array(answer["z"])
    assert x[0] == f.bounds[0][0] and y[-1] == f.bounds[1][1]
    with jax.enable_x64(True):  # the grid is float64, as minimize's iterates
        assert z[3, 11] == pytest.approx(float(f(np.array([x[11], y[3]]))), rel=1e-12)
    one = client.post("/api/grid", json={"expression": "x**4 - 3*x", "n": 9}).json()
    np.testing.assert_allclose(
        one["z"], np.array(one["x"]) ** 4 - 3 * np.array(one["x"]), rtol=1e-12
    )


def test_the_race_equals_ds_compare(race):
    expected = ds.compare(EXPRESSION, specs(OPTIMIZERS), [0.5, 1.5], max_iter=300)
    assert [run["label"] for run in race["runs"]] == [row["label"] for row in expected.rows]
    assert race["best"] == expected.best and race["criterion"] == expected.criterion
    for run, row in zip(race["runs"], expected.rows, strict=True):
        result = row["result"]
        assert run["nit"] == result.n_iter and run["n_iter_to_tol"] == row["n_iter_to_tol"]
        assert run["n_fev"] == result.n_fev
        assert run["fun"] == result.fun and run["reason"] == result.reason
        assert run["x"] == [result.x["x"], result.x["y"]]
        np.testing.assert_array_equal(run["path"], np.asarray(result.history["x"]))
        np.testing.assert_array_equal(run["values"], result.history["value"])
        np.testing.assert_array_equal(run["grad_norms"], result.history["grad_norm"])
        # The gradient at every iterate is JAX's, whose norm the history recorded.
        f = ds.parse(EXPRESSION)
        for k in (0, len(run["path"]) // 2, len(run["path"]) - 1):
            with jax.enable_x64(True):
                partials = [float(g) for g in ds.gradient(f)(*run["path"][k])]
            assert run["gradients"][k] == pytest.approx(partials, rel=1e-12)
        np.testing.assert_allclose(
            np.linalg.norm(run["gradients"], axis=1), run["grad_norms"], rtol=1e-10, atol=1e-300
        )


def _compare_call(code: str) -> ast.Call:
    tree = ast.parse(code)  # parsed, never run
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "ds.compare"
    ]
    assert len(calls) == 1
    return calls[0]


def test_the_python_text_is_the_compare_call_of_the_race(race):
    call = _compare_call(race["python"])
    args = [ast.literal_eval(arg) for arg in call.args]
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert args[0] == EXPRESSION
    result = ds.compare(*args, **kwargs)
    assert [row["label"] for row in result.rows] == [run["label"] for run in race["runs"]]
    for row, run in zip(result.rows, race["runs"], strict=True):
        assert (row["n_iter"], row["fun"], row["reason"]) == (run["nit"], run["fun"], run["reason"])


def test_the_command_line_text_reproduces_the_race(race):
    words = shlex.split(race["cli"])
    assert words[:2] == ["descend", "compare"]
    done = subprocess.run(
        [sys.executable, "-m", "descend", *words[1:], "--json", "--no-cache"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(ds.__file__).parents[1])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [row["label"] for row in rows] == [run["label"] for run in race["runs"]]
    for row, run in zip(rows, race["runs"], strict=True):
        assert (row["n_iter"], row["fun"], row["reason"]) == (run["nit"], run["fun"], run["reason"])


def test_a_race_on_a_test_function_from_its_start_and_in_more_dimensions(client):
    body = {"function": "rosenbrock", "optimizers": ["lbfgs"], "max_iter": 200}
    answer = client.post("/api/race", json=body).json()
    expected = ds.compare("rosenbrock", ["lbfgs"], max_iter=200)
    assert answer["runs"][0]["nit"] == expected.rows[0]["n_iter"]
    assert answer["runs"][0]["distance"] == expected.rows[0]["distance"]
    assert answer["runs"][0]["path"][0] == list(ds.functions.rosenbrock.start)
    more = client.post("/api/race", json={**body, "start": [-1.0, 0.5, 1.5, 0.2]}).json()
    expected = ds.compare("rosenbrock", ["lbfgs"], [-1.0, 0.5, 1.5, 0.2], max_iter=200)
    assert more["runs"][0]["x"] == expected.rows[0]["result"].x.tolist()
    assert len(more["runs"][0]["gradients"][0]) == 4
    words = shlex.split(more["cli"])
    assert "--x0=-1.0,0.5,1.5,0.2" in words


def test_a_one_variable_race_reports_the_sign_change_bracket(client):
    body = {"expression": "x**2 - x", "start": [3.0], "optimizers": [
        {"name": "gd", "hyperparams": {"lr": 0.9}}], "max_iter": 100}  # fmt: skip
    run = client.post("/api/race", json=body).json()["runs"][0]
    result = ds.minimize("x**2 - x", {"x": 3.0}, optimizer=ds.optim.gd(lr=0.9), max_iter=100)
    assert result.bracket is not None
    assert run["bracket"] == list(result.bracket) and run["nit"] == result.n_iter
    # refine's bisection, step by step: the brackets ds.minimize(refine=True) records.
    refined = ds.minimize("x**2 - x", {"x": 3.0}, optimizer=ds.optim.gd(lr=0.9), max_iter=100,
                          refine=True, verbose=0)  # fmt: skip
    assert run["refine"] == refined.history["bracket"].tolist() and len(run["refine"]) > 10
    body["expression"] = "(x - 1)**2 + y**2"
    body["start"] = [3.0, 1.0]
    assert client.post("/api/race", json=body).json()["runs"][0]["refine"] is None


# --- static files ------------------------------------------------------------------------


def test_the_page_and_plotly_are_served_from_the_package(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    client = TestClient(create_app(static=tmp_path))
    assert client.get("/").text.endswith("<title>page</title>")
    assert client.get("/static/app.js").text == "console.log(1)"
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.content == plotly_file().read_bytes()
    assert plotly_file().parent.parent.name == "plotly"
    assert_error(client.get("/static/missing.js"), 404)
    assert_error(client.get("/api/nothing"), 404)
    assert_error(client.post("/api/functions"), 405)


# --- errors and limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/race", {"expression": EXPRESSION, "optimizers": []}, 400, "optimizers"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": ["adamm"]}, 404,
         "optimizers.0.name"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [
            {"name": "adam", "hyperparams": {"lr": -1}}]}, 400, "optimizers.0.hyperparams.lr"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [
            {"name": "adam", "hyperparams": {"lrr": 1}}]}, 400, "optimizers.0.hyperparams.lrr"),
        # The field names the value at fault, as the page names its input.
        ("/api/race", {"expression": EXPRESSION, "optimizers": ["gd", {"name": "momentum",
         "hyperparams": {"lr": 0.1, "momentum": -1}}]}, 400,
         "optimizers.1.hyperparams.momentum"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [{"name": "adam",
         "hyperparams": {"lr": 0.1, "betas": [0.9, 1.5]}}]}, 400, "optimizers.0.hyperparams.betas"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [{"name": "momentum",
         "hyperparams": {"dampening": 0.5, "nesterov": True}}]}, 400,
         "optimizers.0.hyperparams.nesterov"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [{"name": "adam",
         "hyperparams": [1]}]}, 400, "optimizers.0.hyperparams"),
        ("/api/race", {"expression": EXPRESSION, "start": [0], "optimizers": ["gd"]}, 400, "start"),
        ("/api/race", {"function": "rosenbrok", "optimizers": ["gd"]}, 404, "function"),
        ("/api/race", {"expression": EXPRESSION, "function": "booth", "optimizers": ["gd"]}, 400,
         "expression"),
        ("/api/race", {"expression": "x", "optimizers": ["gd"], "tol": -1}, 400, "tol"),
        ("/api/race", {"expression": "x**2", "optimizers": ["gd"], "criterion": "value"}, 400,
         "criterion"),
        ("/api/grid", {"expression": "x*y*z"}, 400, "expression"),
        ("/api/grid", {"expression": "x*y", "bounds": [[1, 0], [0, 1]]}, 400, "bounds"),
        ("/api/grid", {"expression": "x*y", "n": 1}, 400, "n"),
        ("/api/parse", {"expression": ""}, 400, "expression"),
        ("/api/parse", [1, 2], 400, None),
        ("/api/train", {"dataset": "irises"}, 404, "dataset"),
        ("/api/train", {"dataset": "iris", "model": "logistic"}, 400, "model"),
        ("/api/train", {"dataset": "iris", "methods": ["sgd"]}, 400, "methods"),
        ("/api/train", {"upload": "nope"}, 404, "upload"),
        ("/api/train", {"dataset": "iris", "lr": 0}, 400, "lr"),
        ("/api/train", {"dataset": "iris", "optimizer": "adamm"}, 404, "optimizer"),
        ("/api/train", {"dataset": "iris", "loss": "msee"}, 400, "loss"),
        ("/api/train", {"dataset": "iris", "optimizer": "momentum", "hyperparams": {
            "momentum": -1}}, 400, "hyperparams.momentum"),
        ("/api/train", {"dataset": "iris", "optimizer": "adam", "hyperparams": {
            "eps": 1e-8, "betas": [0.9, 2]}}, 400, "hyperparams.betas"),
        ("/api/train", {"dataset": "iris", "hyperparams": {"lr": 0.1}}, 400, "hyperparams.lr"),
        ("/api/train", {"dataset": "iris", "features": ["sepal length (cm)", "petal"]}, 400,
         "features"),
        ("/api/train", {"dataset": "iris", "features": ["species"]}, 400, "features"),
        ("/api/train", {"dataset": "iris", "features": "petal width (cm)"}, 400, "features"),
    ],
)  # fmt: skip
def test_bad_requests_are_json_errors_naming_the_field(client, path, body, status, field):
    assert_error(client.post(path, json=body), status, field)


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/api/race", {"expression": "x**2", "optimizers": [{"name": "gd", "lr": -1}]},
         "optimizers.0.lr", '"hyperparams": {"lr"'),
        ("/api/race", {"expression": "x**2", "optimizers": ["gd"], "max_iters": 5},
         "max_iters", "did you mean 'max_iter'?"),
        ("/api/race", {"expression": "x**2", "optimizers": ["gd"], "patience": 3}, "patience",
         "the fields are"),
        ("/api/grid", {"expression": "x*y", "nn": 20}, "nn", "did you mean 'n'?"),
        ("/api/parse", {"expression": "x", "expresion": "y"}, "expresion",
         "did you mean 'expression'?"),
        ("/api/train", {"dataset": "iris", "epoch": 3}, "epoch", "did you mean 'epochs'?"),
    ],
)  # fmt: skip
def test_a_field_the_endpoint_does_not_read_is_refused_not_ignored(
    client, path, body, field, words
):
    # Ignored, it would run with the default in its place: a wrong answer given silently.
    error = assert_error(client.post(path, json=body), 400, field)
    assert words in error["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "suggestion"),
    [
        ("/api/race", {"function": "rosenbrok", "optimizers": ["gd"]}, 404, "rosenbrock"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": ["adamm"]}, 404, "adam"),
        ("/api/race", {"expression": EXPRESSION, "optimizers": [
            {"name": "adam", "hyperparams": {"betaz": [0.9, 0.99]}}]}, 400, "betas"),
        ("/api/train", {"dataset": "irises"}, 404, "iris"),
        ("/api/train", {"dataset": "iris", "optimizer": "adamm"}, 404, "adam"),
    ],
)  # fmt: skip
def test_a_misspelt_name_gets_the_close_one_suggested(client, path, body, status, suggestion):
    body = assert_error(client.post(path, json=body), status)
    assert f"did you mean {suggestion!r}?" in body["error"]


def test_every_limit_is_enforced_with_a_clear_error():
    limits = Limits(
        expression_length=20, max_iter=50, grid_points=10, optimizers=2, epochs=5,
        upload_bytes=1000, body_bytes=2000, variables=3,
    )  # fmt: skip
    client = TestClient(create_app(limits))
    cases = [
        ("/api/parse", {"expression": "x + " * 10}, "expression"),
        ("/api/race", {"expression": "x**2", "optimizers": ["gd"], "max_iter": 51}, "max_iter"),
        ("/api/race", {"expression": "x**2", "optimizers": ["gd"] * 3}, "optimizers"),
        ("/api/race", {"expression": "a+b+c+d", "optimizers": ["gd"]}, "expression"),
        ("/api/race", {"function": "sphere", "start": [1.0] * 4, "optimizers": ["gd"]}, "start"),
        ("/api/grid", {"expression": "x*y", "n": 11}, "n"),
        ("/api/train", {"dataset": "iris", "epochs": 6}, "epochs"),
    ]
    for path, body, field in cases:
        error = assert_error(client.post(path, json=body), 422, field)
        assert "allows" in error["error"]
    assert_error(client.post("/api/parse", json={"expression": "x" * 3000}), 413)
    big = b"a,b\n" + b"1,2\n" * 300
    assert_error(client.post("/api/upload", files={"file": ("big.csv", big)}), 413, "file")
    assert client.post("/api/parse", json={"expression": "x**2"}).status_code == 200


def test_a_run_past_the_wall_time_limit_is_an_error_and_the_server_goes_on():
    client = TestClient(create_app(Limits(run_seconds=0.001)))
    body = {"expression": "cosh(x) + y**4", "optimizers": ["adam"], "max_iter": 20}
    error = assert_error(client.post("/api/race", json=body), 422)
    assert "longer than this server allows" in error["error"]
    slots = client.app.state.playground.slots
    for _ in range(2):  # the abandoned run ends and gives its slot back
        assert slots.acquire(timeout=300)
    slots.release()
    slots.release()
    assert client.get("/api/functions").status_code == 200


def test_a_run_cancelled_before_its_thread_began_gives_its_slot_back():
    # The only worker thread is busy, so the time limit cancels the run while it waits
    # for one: the run never starts, and its slot must be free again at once.
    import anyio

    from descend.web.limits import RequestError

    playground = create_app(Limits(run_seconds=0.05, concurrent_runs=1)).state.playground
    ran = []

    async def scenario() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        gate = threading.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, gate.wait)
            await anyio.sleep(0.05)  # the worker has taken up gate.wait
            with pytest.raises(RequestError, match="longer than this server allows"):
                await playground.compute(ran.append, 1, run=True)
            gate.set()

    anyio.run(scenario)
    assert ran == []  # the run never began ...
    assert playground.slots.acquire(blocking=False)  # ... and its slot is free
    playground.slots.release()


def test_more_runs_than_allowed_at_once_are_refused_until_one_ends():
    client = TestClient(create_app(Limits(concurrent_runs=1)))
    slots = client.app.state.playground.slots
    assert slots.acquire(blocking=False)  # a run in flight
    body = {"expression": "x**2", "optimizers": ["gd"]}
    assert (
        "wait for one to finish" in assert_error(client.post("/api/race", json=body), 409)["error"]
    )
    assert_error(client.post("/api/train", json={"dataset": "iris"}), 409)
    slots.release()
    assert client.post("/api/race", json=body).status_code == 200


def test_a_fuzzed_series_of_bad_requests_leaves_the_server_serving(client):
    rng = np.random.default_rng(0)
    junk = [None, True, -1, 0, 1e308, "", "x", "∂", "__import__('os')", [], {}, [1, "a"],
            {"a": 1}, "x" * 600, -1e-300, [[1, 2]], [[0, 0], [0, 0]], "inf", "nan"]  # fmt: skip
    fields = ["expression", "function", "start", "optimizers", "max_iter", "tol", "bounds",
              "n", "criterion", "dataset", "upload", "target", "model", "loss", "optimizer", "lr",
              "epochs", "batch_size", "methods", "seed", "validation_split",
              "patience"]  # fmt: skip
    paths = ["/api/parse", "/api/grid", "/api/race", "/api/train"]
    statuses = []
    for _ in range(150):
        path = paths[rng.integers(len(paths))]
        kind = rng.integers(4)
        if kind == 0:  # bytes that are not JSON, or JSON that is not an object
            content = bytes(rng.integers(0, 256, rng.integers(0, 40)).tolist())
            response = client.post(path, content=content)
        elif kind == 1:
            response = client.post(path, json=junk[rng.integers(len(junk))])
        else:  # an object of wrong values (a race stays small: max_iter is junk or absent)
            body = {
                fields[i]: junk[rng.integers(len(junk))]
                for i in rng.choice(len(fields), rng.integers(1, 6), replace=False)
            }
            if kind == 3 and path == "/api/race":
                body.update({"expression": "x**2 + y", "optimizers": [{"name": "sgd"}]})
                body["start"] = junk[rng.integers(len(junk))]
            if path == "/api/train" and "epochs" not in body:
                body["epochs"] = junk[rng.integers(len(junk))]
            response = client.post(path, json=body)
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert 400 <= response.status_code < 500, (path, response.text)
            assert isinstance(response.json()["error"], str)
    assert sum(400 <= s < 500 for s in statuses) > 100
    for path in ("/api/run/../../etc/passwd", "/static/../app.py", "/api/train/x/events"):
        assert 400 <= client.get(path).status_code < 500
    assert client.post("/api/parse", json={"expression": "x**2"}).json()["derivatives"] == ["2*x"]


# --- the Training tab -------------------------------------------------------------------


def test_datasets_are_the_shipped_ones(client):
    answer = client.get("/api/datasets").json()
    assert answer["losses"] == ["auto", *ds.losses.names()]
    assert answer["models"] == ["auto", "linear", "logistic", "softmax", "mlp"]
    rows = answer["datasets"]
    assert [row["name"] for row in rows] == ds.data.dataset_names()
    iris = next(row for row in rows if row["name"] == "iris")
    dataset = ds.data.load_dataset("iris")
    assert iris["n_samples"] == dataset.n_samples and iris["columns"] == list(dataset.feature_names)


def _csv(rows: int = 120) -> bytes:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(rows, 2))
    label = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    lines = ["a,b,label", *(f"{a},{b},{c}" for (a, b), c in zip(X.tolist(), label, strict=True))]
    return ("\n".join(lines) + "\n").encode()


def test_an_upload_is_read_by_the_table_reader_and_kept_in_a_temporary_folder(client, tmp_path):
    answer = client.post("/api/upload", files={"file": ("../../evil.csv", _csv())}).json()
    assert answer["columns"] == ["a", "b", "label"] and answer["n_rows"] == 120
    trainer = client.app.state.playground.training
    kept = trainer.uploads[answer["upload"]].path
    assert kept.parent == trainer.folder and "evil" not in kept.name
    ragged = b"a,b,c\n1,2,3\n4,5\n"
    error = assert_error(client.post("/api/upload", files={"file": ("r.csv", ragged)}), 400, "file")
    (tmp_path / "r.csv").write_bytes(ragged)
    with pytest.raises(ds.errors.DataError):
        ds.data.load(tmp_path / "r.csv")
    assert "line 3" in error["error"]
    assert_error(client.post("/api/upload", files={"file": ("e.csv", b"  \n")}), 400, "file")
    assert_error(client.post("/api/upload", content=b"a,b\n1,2\n"), 400, "file")
    wrong = {"upload": answer["upload"], "target": "lable"}
    assert "did you mean 'label'" in assert_error(client.post("/api/train", json=wrong), 400,
                                                  "target")["error"]  # fmt: skip


@pytest.fixture(scope="module")
def server():
    """The app on a real uvicorn server in a thread: streamed bodies arrive as sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


def _events(http: httpx.Client, url: str):
    with http.stream("GET", url, timeout=600) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def test_training_streams_each_epoch_equal_to_ds_fit_and_saves_a_checkpoint(server, tmp_path):
    app, base = server
    settings = {"optimizer": "sgd", "lr": 0.05, "epochs": 6, "batch_size": 16, "seed": 3}
    with httpx.Client(base_url=base) as http:
        upload = http.post("/api/upload", files={"file": ("d.csv", _csv())}).json()["upload"]
        body = {"upload": upload, "target": "label", **settings}
        run = http.post("/api/train", json=body).json()["run"]
        events = list(_events(http, f"/api/train/{run}/events"))
        checkpoint = http.get(f"/api/train/{run}/checkpoint", params={"method": "minibatch"})
        assert checkpoint.status_code == 200
    assert events[-1] == {"end": True}
    (tmp_path / "d.csv").write_bytes(_csv())
    dataset = ds.data.load(tmp_path / "d.csv", target="label")
    for method, batch_size in (("batch", None), ("stochastic", 1), ("minibatch", 16)):
        expected = ds.fit(
            "logistic", dataset, optimizer="sgd", lr=0.05, batch_size=batch_size, epochs=6,
            seed=3, validation_split=0.2, patience=None, verbose=0,
        )  # fmt: skip
        epochs = [e for e in events if e.get("method") == method and "loss" in e]
        assert [e["epoch"] for e in epochs] == list(range(1, 7))
        assert [e["loss"] for e in epochs] == expected.history["loss"].tolist()
        assert [e["val_loss"] for e in epochs] == expected.history["val_loss"].tolist()
        assert [e["val_metric"] for e in epochs] == expected.history["val_accuracy"].tolist()
        done = next(e for e in events if e.get("method") == method and e.get("done"))
        assert done["updates"] == expected.n_updates == epochs[-1]["updates"]
        assert done["reason"] == expected.reason
        boundaries = [e for e in events if e.get("method") == method and "boundary" in e]
        assert boundaries and len(boundaries[-1]["boundary"]["z"]) == 60
        if method == "minibatch":
            saved = tmp_path / "model.ckpt"
            saved.write_bytes(checkpoint.content)
            np.testing.assert_array_equal(ds.load(saved).params["w"], expected.params["w"])
            last = np.array(boundaries[-1]["boundary"]["z"])
            grid = (
                np.array(boundaries[-1]["boundary"]["x"]),
                np.array(boundaries[-1]["boundary"]["y"]),
            )
            point = np.array([[grid[0][5], grid[1][40]]])
            assert last[40, 5] == pytest.approx(expected.predict_proba(point)[0, 1], rel=1e-6)
    new = tmp_path / "new.csv"
    new.write_text("a,b\n0.5,-0.25\n-1.5,2.0\n")
    done = subprocess.run(
        [sys.executable, "-m", "descend", "predict", str(saved), str(new), "--json", "--no-cache"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(ds.__file__).parents[1])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = json.loads(done.stdout)["predictions"]
    expected_labels = expected.predict(np.array([[0.5, -0.25], [-1.5, 2.0]])).tolist()
    assert [row[0] for row in predictions] == expected_labels


def _columns(name: str, features: list[str]) -> ds.data.Dataset:
    """The shipped dataset with only ``features``, built here from its arrays."""
    full = ds.data.load_dataset(name)
    index = [list(full.feature_names).index(f) for f in features]
    encoding = ds.data.Encoding(tuple(features), {}, full.target_name, full.classes)
    return ds.data.Dataset(full.X[:, index], full.y, encoding)


@pytest.mark.parametrize(
    ("name", "features", "optimizer", "hyperparams"),
    [
        ("iris", ["petal length (cm)", "petal width (cm)"], "momentum",
         {"momentum": 0.5, "nesterov": True}),
        ("diabetes", ["bmi"], "adam", {"betas": [0.8, 0.95], "amsgrad": True}),
    ],
)  # fmt: skip
def test_two_chosen_features_train_as_ds_fit_and_send_the_points_under_the_boundary(
    server, name, features, optimizer, hyperparams
):
    _, base = server
    body = {"dataset": name, "features": features, "optimizer": optimizer, "lr": 0.05,
            "hyperparams": hyperparams, "epochs": 4, "batch_size": 16, "seed": 2,
            "methods": ["batch", "minibatch"]}  # fmt: skip
    with httpx.Client(base_url=base) as http:
        answer = http.post("/api/train", json=body)
        assert answer.status_code == 200, answer.text
        events = list(_events(http, f"/api/train/{answer.json()['run']}/events"))
    dataset = _columns(name, features)
    built = {k: tuple(v) if isinstance(v, list) else v for k, v in hyperparams.items()}
    for method, batch_size in (("batch", None), ("minibatch", 16)):
        expected = ds.fit(
            "softmax" if name == "iris" else "linear", dataset,
            optimizer=ds.optim.get(optimizer, lr=0.05, **built), batch_size=batch_size,
            epochs=4, seed=2, validation_split=0.2, patience=None, verbose=0,
        )  # fmt: skip
        epochs = [e for e in events if e.get("method") == method and "loss" in e]
        assert [e["loss"] for e in epochs] == expected.history["loss"].tolist()
        assert [e["val_loss"] for e in epochs] == expected.history["val_loss"].tolist()
        last = [e for e in events if e.get("method") == method and "boundary" in e][-1]
        boundary = last["boundary"]
        if len(features) == 2:  # the predicted class over the grid
            xs, ys = np.meshgrid(boundary["x"], boundary["y"])
            grid = np.column_stack([xs.ravel(), ys.ravel()])
            np.testing.assert_array_equal(
                np.array(boundary["z"]).ravel(), expected.predict_proba(grid).argmax(axis=1)
            )
        else:  # the fitted curve
            curve = expected.predict(np.array(boundary["x"])[:, None]).ravel()
            np.testing.assert_allclose(boundary["z"], curve, rtol=1e-6)
    # The training rows (fit's split), once, with the run's first boundary event.
    boundaries = [e for e in events if "boundary" in e]
    assert "points" in boundaries[0] and all("points" not in e for e in boundaries[1:])
    points = boundaries[0]["points"]
    X_train, _, y_train, _ = ds.data.train_validation_split(dataset.X, dataset.y, 0.2, 2)
    np.testing.assert_array_equal(points["x"], X_train[:, 0])
    if len(features) == 2:
        np.testing.assert_array_equal(points["y"], X_train[:, 1])
        np.testing.assert_array_equal(points["label"], y_train)
    else:
        np.testing.assert_array_equal(points["y"], y_train)


def test_events_arrive_while_training_runs_and_stop_ends_it(server):
    app, base = server
    # Stochastic descent of an MLP on digits: 1,437 updates an epoch, 500 epochs.
    body = {"dataset": "digits", "model": "mlp", "methods": ["stochastic"], "epochs": 500,
            "optimizer": "sgd", "lr": 0.01}  # fmt: skip
    with httpx.Client(base_url=base) as http:
        run = http.post("/api/train", json=body).json()["run"]
        seen = []
        for event in _events(http, f"/api/train/{run}/events"):
            seen.append(event)
            if event.get("epoch") == 2 and "loss" in event:
                # The second epoch is here, the run is not over: events come epoch by epoch.
                assert not app.state.playground.training.run(run).ended
                assert_error(http.get(f"/api/train/{run}/checkpoint?method=stochastic"), 409)
                assert http.post(f"/api/train/{run}/stop").json() == {"stopped": True}
        done = next(e for e in seen if e.get("done"))
        assert done["epochs"] < 500 and done["reason"].startswith("stopped by the user")
        assert http.get(f"/api/train/{run}/checkpoint?method=stochastic").status_code == 200
        assert_error(http.get(f"/api/train/{run}/checkpoint?method=batch"), 400, "method")
        assert_error(http.post("/api/train/unknown/stop"), 404, "run")


def test_a_training_run_past_the_wall_time_limit_stops_and_says_why():
    client = TestClient(create_app(Limits(run_seconds=0.5)))
    body = {"dataset": "iris", "methods": ["stochastic"], "epochs": 500, "optimizer": "sgd"}
    run = client.post("/api/train", json=body).json()["run"]
    with client.stream("GET", f"/api/train/{run}/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    done = next(e for e in events if e.get("done"))
    assert done["epochs"] < 500 and "longer than this server allows (0.5 s)" in done["reason"]


# --- the command ------------------------------------------------------------------------


def test_descend_playground_prints_its_url_and_serves(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(ds.__file__).parents[1]), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "descend", "playground", "--no-browser", "--port", str(port),
         "--host", "127.0.0.2", "--no-cache"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.strip() == f"descend playground: http://127.0.0.2:{port}/ (Ctrl-C to stop)"
        deadline, answer = time.monotonic() + 120, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.2:{port}/api/functions", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert "warning: serving on 127.0.0.2, reachable from other machines" in stderr
    bad = subprocess.run(
        [sys.executable, "-m", "descend", "playground", "--port", "70000"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("descend: --port must be")
