"""The playground page in a real browser: headless Chromium driven by Selenium, against a
server started here, checking what a user sees against descend computed in this test.

Needs Debian's ``chromium`` and ``chromium-driver`` (CI's ``.ci/run`` installs them);
skipped, with the reason, where they or the ``web`` extra are missing. Every wait is an
explicit condition with a generous bound (JAX compiles each new race on first use).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

import numpy as np
import pytest

pytest.importorskip("selenium", reason="the browser tests need selenium (the test extra)")
pytest.importorskip("uvicorn", reason="the playground needs the web extra (uvicorn)")
pytest.importorskip("starlette", reason="the playground needs the web extra (starlette)")

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import descend as ds
from descend.web import screenshots

if screenshots.chromium_paths() is None:
    pytest.skip(
        "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

WAIT = 180.0  # seconds: a cold race compiles every optimizer's loop on a small machine


@pytest.fixture(scope="module")
def url():
    with screenshots.serving() as base:
        yield base


@pytest.fixture(scope="module")
def driver():
    browser = screenshots.browser(1280, 1000)
    browser.set_script_timeout(WAIT)
    yield browser
    browser.quit()


def wait(driver, condition, message=""):
    return screenshots.wait(driver, condition, WAIT, message)


def fragment(**state) -> str:
    """The page state as the page writes it in its URL (``#key=value&...``)."""
    if "opt" in state:
        state["opt"] = json.dumps(state["opt"])
    return "#" + urllib.parse.urlencode(state, quote_via=urllib.parse.quote)


def open_page(driver, url, **state):
    driver.get("about:blank")  # a new document, even when only the fragment differs
    driver.get(url + (fragment(**state) if state else ""))
    wait(driver, screenshots.page_ready, "the page did not load")


def by_id(driver, name):
    return driver.find_element(By.ID, name)


def type_into(driver, name, text):
    box = by_id(driver, name)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def traces(driver, plot="plot"):
    return driver.execute_script(
        "const gd = document.getElementById(arguments[0]);"
        "return (gd.data || []).map(t => ({name: t.name, meta: t.meta || null, x: t.x || [],"
        " y: t.y || [], customdata: t.customdata || []}));",
        plot,
    )


def race_finished(driver, rows):
    """The results table has ``rows`` rows and the animation has reached its end."""
    try:
        body = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        last = by_id(driver, "iteration").get_attribute("max")
        return (
            by_id(driver, "results").is_displayed()
            and len(body) == rows
            and by_id(driver, "play").text == "Play"
            and by_id(driver, "iteration-out").text == last
        )
    except StaleElementReferenceException:
        return False


def table(driver) -> dict[str, dict[str, str]]:
    """``{label: {column: text}}`` of the results table."""
    rows = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr"):
        cells = row.find_elements(By.CSS_SELECTOR, "[data-col]")
        rows[row.get_attribute("data-label")] = {
            cell.get_attribute("data-col"): cell.text for cell in cells
        }
    return rows


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", text)]


# ------------------------------------------------------------------ the expression box


def test_typing_an_expression_shows_its_symbolic_partial_derivatives(driver, url):
    open_page(driver, url)
    text = "2*x**2 + 6*z**2 + 7*m**3"
    type_into(driver, "expr", text)
    expected = ds.parse(text)

    def derivatives(d):
        if by_id(d, "variables").text != ", ".join(expected.variables):
            return False
        return [node.text for node in d.find_elements(By.CSS_SELECTOR, "#derivatives code")]

    shown = wait(driver, derivatives, "the parsed variables were not shown")
    assert shown == [expected.derivatives[v] for v in expected.variables]
    assert shown == ["4*x", "12*z", "21*m**2"]  # the example, as the README states it
    assert by_id(driver, "expr").get_attribute("aria-invalid") is None
    # Three variables: value and gradient-norm curves instead of a map.
    assert "3 variables" in by_id(driver, "mode-label").text
    assert by_id(driver, "plot2").is_displayed()


def test_a_refused_expression_shows_the_parsers_message_with_its_column_marked(driver, url):
    open_page(driver, url)
    text = "__import__('os')"
    type_into(driver, "expr", text)
    with pytest.raises(ds.errors.ExpressionError) as refused:
        ds.parse(text)
    mark = wait(driver, lambda d: d.find_element(By.ID, "parse-error-mark"))
    assert by_id(driver, "parse-error").text == str(refused.value)
    echo = driver.find_element(By.CSS_SELECTOR, "#parse-info .expr-echo").text
    before = echo[: echo.index(mark.text)]
    assert len(before) == refused.value.column - 1
    assert mark.text == "__import__"
    assert by_id(driver, "expr").get_attribute("aria-invalid") == "true"
    # Correcting the text clears the error.
    type_into(driver, "expr", "x**2")
    wait(driver, lambda d: by_id(d, "variables").text == "x")
    assert not driver.find_elements(By.ID, "parse-error-mark")


# ------------------------------------------------------------------ a race on the map

RACE_TEXT = "(x-3)**2 + 10*(y+1)**2"


def test_clicking_the_map_sets_the_start_and_a_race_draws_what_compare_returns(driver, url):
    open_page(driver, url, expr=RACE_TEXT, bounds="-5:5, -5:5", max_iter="1000", tol="1e-6")
    wait(driver, lambda d: len(traces(d)) >= 3, "the contour map was not drawn")
    area = driver.find_element(By.CSS_SELECTOR, "#plot .nsewdrag")
    width, height = area.size["width"], area.size["height"]
    # A quarter of the way right of and above the centre of the -5:5 square: (2.5, 2.5).
    ActionChains(driver).move_to_element_with_offset(
        area, width // 4, -height // 4
    ).click().perform()
    wait(driver, lambda d: by_id(d, "start").get_attribute("value") != "0, 0")
    start = [float(v) for v in by_id(driver, "start").get_attribute("value").split(",")]
    pixel = 10 / min(width, height)
    np.testing.assert_allclose(start, [2.5, 2.5], atol=3 * pixel)
    marker = next(t for t in traces(driver) if t["name"] == "start")
    np.testing.assert_allclose([marker["x"][0], marker["y"][0]], start)

    by_id(driver, "run").click()
    wait(driver, lambda d: race_finished(d, 3), "the race did not finish drawing")

    race = ds.compare(RACE_TEXT, ["gd", "momentum", "adam"], x0=start, max_iter=1000, tol=1e-6)
    shown = table(driver)
    assert list(shown) == [row["label"] for row in race.rows] == ["gd", "momentum", "adam"]
    for row in race.rows:
        cells = shown[row["label"]]
        assert int(cells["nit"]) == row["n_iter"]
        assert cells["n_iter_to_tol"] == (
            "-" if row["n_iter_to_tol"] is None else str(row["n_iter_to_tol"])
        )
        assert cells["reason"] == row["reason"]
        assert cells["n_fev"] == str(row["result"].n_fev)

    # Each path drawn whole, from the clicked start, through compare's iterates.
    paths = {t["name"]: t for t in traces(driver) if (t["meta"] or {}).get("kind") == "path"}
    for row in race.rows:
        history = row["result"].history
        path = paths[row["label"]]
        np.testing.assert_allclose(
            np.column_stack([path["x"], path["y"]]), history["x"], rtol=1e-12
        )
        # What hovering shows: iteration, value and gradient norm of each iterate.
        hover = np.array(path["customdata"], dtype=float)
        np.testing.assert_array_equal(hover[:, 0], np.arange(len(history["value"])))
        np.testing.assert_allclose(hover[:, 1], history["value"], rtol=1e-12)
        np.testing.assert_allclose(hover[:, 2], history["grad_norm"], rtol=1e-12)
    lines = driver.find_elements(By.CSS_SELECTOR, "#plot .scatterlayer .trace path.js-line")
    assert sum(len(line.get_attribute("d") or "") > 40 for line in lines) >= 3

    # The gradient at the current iterate, drawn with its value: step back to where
    # adam (1000 iterations) is still far from the minimum.
    slider = by_id(driver, "iteration")
    slider.send_keys(Keys.HOME)
    for _ in range(3):
        by_id(driver, "step").click()
    wait(driver, lambda d: by_id(d, "iteration-out").text == "3")
    adam = race.rows[2]["result"].history["x"][3]
    gradient = np.asarray(ds.gradient(ds.parse(RACE_TEXT))(*adam))
    labels = driver.execute_script(
        "return document.getElementById('plot').layout.annotations.map(a => a.text || '')"
    )
    arrows = [numbers(text.split("=", 1)[1]) for text in labels if text.startswith("∇f")]
    assert len(arrows) == 3
    np.testing.assert_allclose(arrows[2], gradient, rtol=5e-3)

    # Copy as Python / command line: the exact ds.compare call and descend compare command.
    assert "ds.compare(" in by_id(driver, "python-code").text
    assert by_id(driver, "cli-code").text.startswith("descend compare ")
    by_id(driver, "copy-python").click()
    wait(driver, lambda d: "Python" in by_id(d, "copy-status").text)

    # The link reopens the same race.
    link = driver.current_url
    assert "run=1" in link
    driver.get("about:blank")
    driver.get(link)
    wait(driver, lambda d: race_finished(d, 3), "the link did not reopen the race")
    np.testing.assert_allclose(
        [float(v) for v in by_id(driver, "start").get_attribute("value").split(",")], start
    )
    assert {label: cells["nit"] for label, cells in table(driver).items()} == {
        row["label"]: str(row["n_iter"]) for row in race.rows
    }


@pytest.mark.parametrize(
    ("optimizer", "hyperparameter", "typed", "value"),
    [("momentum", "lr", "-1", -1), ("adam", "betas", "0.9, 1.5", (0.9, 1.5))],
)
def test_a_hyperparameter_the_optimizer_refuses_shows_its_error_beside_that_input(
    driver, url, optimizer, hyperparameter, typed, value
):
    open_page(
        driver, url, expr=RACE_TEXT, x0="0, 0",
        opt=[{"name": "gd", "hyperparams": {}}, {"name": optimizer, "hyperparams": {}}],
    )  # fmt: skip
    name = f"opt-1-{hyperparameter}"
    box = by_id(driver, name)
    type_into(driver, name, typed)
    by_id(driver, "run").click()
    with pytest.raises(ds.errors.InputError) as refused:
        ds.optim.get(optimizer, **{hyperparameter: value})  # JSON sends -1 as an int
    message = wait(
        driver, lambda d: d.find_element(By.ID, f"error-optimizers-1-hyperparams-{hyperparameter}")
    )
    assert str(refused.value) in message.text
    assert box.get_attribute("aria-invalid") == "true"
    # Beside the input: the message follows the input's own box in the card.
    follows = driver.execute_script(
        "return arguments[0].closest('.hp').nextElementSibling === arguments[1]", box, message
    )
    assert follows


def test_clicking_the_3d_surface_sets_the_start_at_the_grid_point_picked(driver, url):
    open_page(driver, url, expr=RACE_TEXT, x0="0, 0", bounds="-5:5, -5:5", view="surface",
              opt=[{"name": "adam", "hyperparams": {"lr": 0.1}}])  # fmt: skip
    wait(driver, lambda d: traces(d) and traces(d)[0]["name"] == "f", "no surface drawn")
    plot = by_id(driver, "plot")

    def picked(d):
        # WebGL picks the point under the pointer while it rests there: press, hold, release.
        ActionChains(d).move_to_element_with_offset(plot, 0, 30).pause(0.5).click_and_hold().pause(
            0.4
        ).release().perform()
        return by_id(d, "start").get_attribute("value") != "0, 0"

    wait(driver, picked, "clicking the surface did not set the start")
    start = [float(v) for v in by_id(driver, "start").get_attribute("value").split(",")]
    grid = driver.execute_script(
        "const t = document.getElementById('plot').data[0]; return {x: t.x, y: t.y, z: t.z}"
    )
    # A vertex of the surface, rounded to a hundredth of the -5:5 range.
    i = int(np.argmin(np.abs(np.array(grid["y"]) - start[1])))
    j = int(np.argmin(np.abs(np.array(grid["x"]) - start[0])))
    assert abs(grid["x"][j] - start[0]) <= 0.005 and abs(grid["y"][i] - start[1]) <= 0.005
    marker = next(t for t in traces(driver) if t["name"] == "start")
    assert [marker["x"][0], marker["y"][0]] == start
    height = driver.execute_script(
        "return document.getElementById('plot').data.find(t => t.name === 'start').z[0]"
    )
    assert height == grid["z"][i][j]
    by_id(driver, "run").click()
    wait(driver, lambda d: race_finished(d, 1), "the race did not finish drawing")
    race = ds.compare(RACE_TEXT, [("adam", {"lr": 0.1})], x0=start, max_iter=1000, tol=1e-6)
    assert table(driver)["adam(lr=0.1)"]["nit"] == str(race.rows[0]["n_iter"])


# ------------------------------------------------------------------ one variable


def test_one_variable_shows_the_tangent_the_derivative_and_the_move_it_implies(driver, url):
    text = "x**4 - 3*x"
    opt = [{"name": "gd", "hyperparams": {"lr": 0.01}}, {"name": "gd", "hyperparams": {"lr": 0.1}}]
    open_page(
        driver,
        url,
        expr=text,
        x0="2",
        bounds="-2:2.5",
        opt=opt,
        max_iter="500",
        tol="1e-6",
        run="1",
    )
    wait(driver, lambda d: race_finished(d, 2), "the race did not finish drawing")
    by_id(driver, "iteration").send_keys(Keys.HOME)
    wait(driver, lambda d: by_id(d, "iteration-out").text == "0")

    f = ds.parse(text)
    derivative = float(ds.derivative(f)(2.0))  # 4*2**3 - 3 = 29
    tangents = [t for t in traces(driver) if (t["meta"] or {}).get("kind") == "tangent"]
    assert len(tangents) == 2
    for tangent in tangents:
        (x0, x1), (y0, y1) = tangent["x"], tangent["y"]
        np.testing.assert_allclose((y1 - y0) / (x1 - x0), derivative, rtol=1e-9)
        np.testing.assert_allclose((y0 + y1) / 2, float(f(2.0)), rtol=1e-9)  # touches f at 2
    readout = by_id(driver, "readout").text
    assert f"derivative +{derivative:g} > 0: decrease x" in readout

    # gd(lr=0.1) overshoots: at the end the bracket where the derivative changed sign.
    race = ds.compare(text, [("gd", {"lr": 0.01}), ("gd", {"lr": 0.1})], x0=[2.0], max_iter=500)
    bracket = race.rows[1]["result"].bracket
    assert bracket is not None
    by_id(driver, "iteration").send_keys(Keys.END)
    wait(driver, lambda d: "changed sign" in by_id(d, "readout").text)
    shown = next(
        line for line in by_id(driver, "readout").text.splitlines() if "changed sign" in line
    )
    np.testing.assert_allclose(numbers(shown)[-2:], sorted(bracket), rtol=1e-5)
    shapes = driver.execute_script("return document.getElementById('plot').layout.shapes || []")
    assert any(
        abs(s["x0"] - min(bracket)) < 1e-9 and abs(s["x1"] - max(bracket)) < 1e-9 for s in shapes
    )
    lines = driver.find_elements(By.CSS_SELECTOR, "#plot .scatterlayer .trace path.js-line")
    assert len(lines) >= 4  # the curve, the paths and the tangents


def test_more_than_two_variables_draw_value_and_gradient_norm_per_iteration(driver, url):
    text = "x**2 + 2*y**2 + 3*z**2"
    open_page(
        driver, url, expr=text, x0="1, 1, 1", opt=[{"name": "gd", "hyperparams": {}}], run="1"
    )
    wait(driver, lambda d: race_finished(d, 1), "the race did not finish drawing")
    history = ds.compare(text, ["gd"], x0=[1.0, 1.0, 1.0]).rows[0]["result"].history
    (value,) = traces(driver, "plot")
    (norm,) = traces(driver, "plot2")
    np.testing.assert_allclose(value["y"], history["value"], rtol=1e-12)
    np.testing.assert_allclose(norm["y"], history["grad_norm"], rtol=1e-12)


# ------------------------------------------------------------------ training


def _points(driver) -> dict[str, int]:
    return {
        t["meta"]["method"]: len(t["x"])
        for t in traces(driver, "loss-plot")
        if (t["meta"] or {}).get("kind") == "loss"
    }


def _boundary_drawn(driver, method) -> bool:
    script = (
        "const g = document.getElementById(arguments[0]);"
        "return Boolean(g && g.data && g.data[0].type === 'contour')"
    )
    return bool(driver.execute_script(script, f"boundary-{method}"))


def _training_state(driver) -> str:
    """What the page shows of a training run, for a failure's message."""
    rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#methods-table tbody tr")]
    return (
        f"points drawn {_points(driver)}, stop enabled {by_id(driver, 'stop').is_enabled()}, "
        f"table rows {rows}, error {by_id(driver, 'train-error').text!r}, "
        f"status {by_id(driver, 'status').text!r}"
    )


def test_training_curves_grow_live_while_the_three_methods_train(driver, url, tmp_path):
    # Two features (so the decision boundary is drawn), rows enough and an MLP, so that
    # stochastic gradient descent takes a while per epoch (about 0.07 s on a 2-core
    # machine, warm: a logistic model's 500 epochs can all end within the seconds a
    # busy page takes to draw its first ones); the target is not the last column.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 2))
    label = (X @ [1.5, -1.0] + 0.3 * rng.normal(size=len(X)) > 0).astype(int)
    csv = tmp_path / "two_features.csv"
    np.savetxt(csv, np.column_stack([label, X]), fmt=["%d", "%.6f", "%.6f"], delimiter=",",
               header="label,x1,x2", comments="")  # fmt: skip

    open_page(driver, url, tab="training")
    by_id(driver, "csv").send_keys(str(csv))
    wait(driver, lambda d: by_id(d, "dataset").get_attribute("value") == "__upload__")
    header = [
        o.get_attribute("value")
        for o in by_id(driver, "target").find_elements(By.TAG_NAME, "option")
    ]
    assert header == ["label", "x1", "x2"]
    Select(by_id(driver, "target")).select_by_value("label")
    Select(by_id(driver, "model")).select_by_value("mlp")
    by_id(driver, "epochs").clear()
    by_id(driver, "epochs").send_keys("500")
    by_id(driver, "train").click()
    stop = by_id(driver, "stop")

    def running_with_points(d):
        counts = _points(d)
        return counts if counts and min(counts.values()) >= 1 and stop.is_enabled() else False

    # Some epochs drawn while the run is still going (the stop button still live) ...
    try:
        first = wait(driver, running_with_points)
    except TimeoutException:
        pytest.fail(f"no epoch arrived while training ran; {_training_state(driver)}")
    assert set(first) == {"batch", "stochastic", "minibatch"}
    # ... and more of them arriving later, from the stream.
    wait(driver, lambda d: sum(_points(d).values()) > sum(first.values()), "the curves stopped")
    # The decision boundary of each method, redrawn as it trains.
    for method in first:
        wait(driver, lambda d, m=method: _boundary_drawn(d, m), f"no boundary for {method}")
    stop.click()
    wait(driver, lambda d: not by_id(d, "stop").is_enabled() and by_id(d, "train").is_enabled())
    statuses = [
        cell.text
        for cell in driver.find_elements(By.CSS_SELECTOR, "#methods-table [data-col=status]")
    ]
    assert len(statuses) == 3 and all(text not in ("-", "training") for text in statuses)

    # The checkpoint link serves a file descend reads, trained on the two features.
    link = driver.find_element(By.CSS_SELECTOR, "#methods-table [data-col=checkpoint] a")
    saved = tmp_path / "downloaded.ckpt"
    with urllib.request.urlopen(link.get_attribute("href"), timeout=WAIT) as response:
        saved.write_bytes(response.read())
    model = ds.load(saved)
    assert model.predict(X[:5]).shape[0] == 5


def test_two_chosen_features_of_a_shipped_dataset_draw_the_boundary_over_its_points(driver, url):
    features = ["petal length (cm)", "petal width (cm)"]
    open_page(driver, url, tab="training", dataset="iris", epochs="5", methods="minibatch")
    Select(by_id(driver, "feature-1")).select_by_value(features[0])
    Select(by_id(driver, "feature-2")).select_by_value(features[1])
    Select(by_id(driver, "optimizer")).select_by_value("momentum")
    wait(driver, lambda d: d.find_elements(By.ID, "train-hp-momentum"))
    type_into(driver, "train-hp-momentum", "0.5")
    by_id(driver, "train").click()
    wait(driver, lambda d: by_id(d, "train").is_enabled() and not by_id(d, "stop").is_enabled())
    drawn = driver.execute_script(
        "const g = document.getElementById('boundary-minibatch');"
        "return {data: g.data.map(t => ({type: t.type, kind: (t.meta || {}).kind, x: t.x, y: t.y,"
        " z: t.z || null, color: (t.marker || {}).color || null})),"
        " axes: [g.layout.xaxis.title.text, g.layout.yaxis.title.text]}"
    )
    assert [t["kind"] for t in drawn["data"]] == ["boundary", "points"]  # points drawn over it
    assert drawn["axes"] == features
    # The points are the rows ds.fit trained on: its split of the two chosen columns.
    full = ds.data.load_dataset("iris")
    index = [list(full.feature_names).index(name) for name in features]
    encoding = ds.data.Encoding(tuple(features), {}, full.target_name, full.classes)
    dataset = ds.data.Dataset(full.X[:, index], full.y, encoding)
    X_train, _, y_train, _ = ds.data.train_validation_split(dataset.X, dataset.y, 0.2, 0)
    points = drawn["data"][1]
    np.testing.assert_array_equal(np.column_stack([points["x"], points["y"]]), X_train)
    np.testing.assert_array_equal(points["color"], y_train)
    # The boundary is the prediction of the same ds.fit, with the momentum typed in.
    result = ds.fit(
        "softmax", dataset, optimizer=ds.optim.get("momentum", lr=0.01, momentum=0.5),
        batch_size=32, epochs=5, seed=0, validation_split=0.2, patience=None, verbose=0,
    )  # fmt: skip
    boundary = drawn["data"][0]
    xs, ys = np.meshgrid(boundary["x"], boundary["y"])
    expected = result.predict_proba(np.column_stack([xs.ravel(), ys.ravel()])).argmax(axis=1)
    np.testing.assert_array_equal(np.array(boundary["z"]).ravel(), expected)
    assert len(set(expected.tolist())) > 1  # a boundary, not one class everywhere


def test_a_refused_training_hyperparameter_shows_its_error_beside_that_input(driver, url):
    open_page(driver, url, tab="training", dataset="iris", optimizer="momentum")
    box = wait(driver, lambda d: d.find_element(By.ID, "train-hp-dampening"))
    type_into(driver, "train-hp-dampening", "1.5")
    by_id(driver, "train").click()
    with pytest.raises(ds.errors.InputError) as refused:
        ds.optim.get("momentum", dampening=1.5)
    message = wait(driver, lambda d: d.find_element(By.ID, "error-hyperparams-dampening"))
    assert str(refused.value) in message.text
    assert box.get_attribute("aria-invalid") == "true"
    follows = driver.execute_script(
        "return arguments[0].closest('.hp').nextElementSibling === arguments[1]", box, message
    )
    assert follows
    assert by_id(driver, "train").is_enabled() and not by_id(driver, "stop").is_enabled()


def test_the_patience_field_stops_a_run_early_as_fit_does_and_refuses_a_bad_value(driver, url):
    open_page(driver, url, tab="training", dataset="iris", epochs="500", methods="minibatch",
              optimizer="sgd", lr="0.5")  # fmt: skip
    type_into(driver, "patience", "0")
    by_id(driver, "train").click()
    message = wait(driver, lambda d: d.find_element(By.ID, "error-patience"))
    assert "patience must be an integer >= 1" in message.text
    assert by_id(driver, "patience").get_attribute("aria-invalid") == "true"

    type_into(driver, "patience", "3")
    by_id(driver, "train").click()

    def status(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#methods-table tr[data-method=minibatch]")
        text = rows[0].find_element(By.CSS_SELECTOR, "[data-col=status]").text if rows else "-"
        return text if text not in ("-", "training") else False

    reason = wait(driver, status, "the run did not end")
    row = driver.find_element(By.CSS_SELECTOR, "#methods-table tr[data-method=minibatch]")
    expected = ds.fit(
        "softmax", ds.data.load_dataset("iris"), optimizer="sgd", lr=0.5, batch_size=32,
        epochs=500, seed=0, validation_split=0.2, patience=3, verbose=0,
    )  # fmt: skip
    assert expected.status == "early_stopping" and expected.n_epochs < 500
    assert row.find_element(By.CSS_SELECTOR, "[data-col=epoch]").text == str(expected.n_epochs)
    assert reason == expected.reason
    assert "patience=3" in driver.current_url.replace("%3D", "=")
