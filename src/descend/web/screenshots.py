"""Screenshots of the playground's two tabs, taken in a headless Chromium.

Run from the repository root::

    python -m descend.web.screenshots            # docs/playground_*.png, one per tab
    python -m descend.web.screenshots --out DIR  # elsewhere

It starts the playground on a free port of 127.0.0.1 (in a thread of this process), opens
it in Chromium driven by Selenium through chromedriver (Debian's ``chromium`` and
``chromium-driver`` packages: ``apt-get install chromium chromium-driver``), races three
optimizers on a two-variable function and trains the three update methods, and saves a
PNG of each tab (reduced to 256 colours when Pillow is installed, to keep them small).

:func:`chromium_paths`, :func:`browser` and :func:`serving` are the set-up the browser
tests (``tests/test_web_page.py``) share with this script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_DRIVERS = ("chromedriver",)
# Debian installs the driver here, outside PATH for some users.
_DRIVER_PLACES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def chromium_paths() -> tuple[str, str] | None:
    """``(browser, chromedriver)`` found on this machine, or None when either is missing.

    ``DESCEND_CHROMIUM`` and ``DESCEND_CHROMEDRIVER`` name them explicitly.
    """
    browser = os.environ.get("DESCEND_CHROMIUM") or next(
        (found for name in _BROWSERS if (found := shutil.which(name))), None
    )
    driver = os.environ.get("DESCEND_CHROMEDRIVER") or next(
        (found for name in _DRIVERS if (found := shutil.which(name))), None
    )
    if driver is None:
        driver = next((place for place in _DRIVER_PLACES if os.path.isfile(place)), None)
    if (
        browser is None
        or driver is None
        or not (os.path.isfile(browser) and os.path.isfile(driver))
    ):
        return None
    return browser, driver


def browser(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium driven by Selenium (a ``selenium.webdriver.Chrome``).

    Raises
    ------
    RuntimeError
        When Chromium or chromedriver is not installed (the message says how to get them).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError(
            "Chromium and chromedriver are needed: apt-get install chromium chromium-driver "
            "(or set DESCEND_CHROMIUM and DESCEND_CHROMEDRIVER to their paths)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container, Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",  # WebGL (the 3-D surface) in software
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(paths[1]), options=options)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(app: Any = None, *, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` (default: a new playground app) with uvicorn in a thread on a free
    port of 127.0.0.1; yields its base URL (ending in ``/``) and stops it on exit.

    Raises
    ------
    RuntimeError
        When the server has not started within ``timeout`` seconds.
    """
    import uvicorn

    if app is None:
        from descend.web import create_app

        app = create_app()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="playground-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the playground server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)


def wait(driver: Any, condition: Any, timeout: float = 120.0, message: str = "") -> Any:
    """``WebDriverWait(driver, timeout).until(condition)``: the page's own pace, with a
    generous bound (compilation on a small machine takes seconds). An element the page
    replaced while ``condition`` read it (a stale reference) counts as not yet: the
    condition is read again at the next poll."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message)


def page_ready(driver: Any) -> bool:
    """True once the page has loaded its lists and drawn its first view."""
    state = driver.execute_script("return document.body.dataset.ready || ''")
    if state == "error":
        status = driver.execute_script("return document.getElementById('status').textContent")
        raise RuntimeError(f"the playground page failed to load: {status}")
    return bool(state == "true")


def _shrink(path: Path) -> None:
    """Reduce a screenshot to 256 colours (a third of the bytes), when Pillow is there."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _two_blobs(n: int = 400, seed: int = 0) -> str:
    """A CSV of two overlapping Gaussian classes in two features (``x1, x2, label``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 2)) + np.where(label[:, None] == 1, [1.2, 1.0], [-1.0, -0.8])
    rows = [f"{a:.4f},{b:.4f},{c}" for (a, b), c in zip(X, label, strict=True)]
    return "x1,x2,label\n" + "\n".join(rows) + "\n"


def take(out: Path, *, width: int = 1280, height: int = 1150) -> list[Path]:
    """Save a screenshot of each tab under ``out``; returns their paths."""
    from selenium.webdriver.common.by import By

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    driver = browser(width, height)
    try:
        with serving() as url:
            race = (
                "#tab=functions&expr=(x-3)**2%20%2B%2010*(y%2B1)**2&x0=-4,%203&bounds=-5:5,%20-4:4"
                '&opt=[{"name":"gd","hyperparams":{}},{"name":"momentum","hyperparams":{}},'
                '{"name":"adam","hyperparams":{"lr":0.3}}]&max_iter=1000&tol=1e-6&run=1'
            )
            driver.get(url + race)
            wait(driver, page_ready)
            wait(driver, lambda d: d.find_element(By.ID, "results").is_displayed())
            wait(driver, lambda d: d.find_element(By.ID, "play").text == "Play")
            driver.execute_script("window.scrollTo(0, 0)")
            saved.append(out / "playground_functions.png")
            driver.save_screenshot(str(saved[-1]))

            driver.find_element(By.ID, "tab-training").click()
            with tempfile.TemporaryDirectory() as folder:
                # Two features, so that the decision boundaries show beside the curves.
                csv = Path(folder) / "two_blobs.csv"
                csv.write_text(_two_blobs())
                driver.find_element(By.ID, "csv").send_keys(str(csv))
                wait(
                    driver,
                    lambda d: (
                        d.find_element(By.ID, "dataset").get_attribute("value") == "__upload__"
                    ),
                )
            driver.find_element(By.ID, "epochs").clear()
            driver.find_element(By.ID, "epochs").send_keys("40")
            driver.find_element(By.ID, "train").click()
            wait(driver, lambda d: d.find_element(By.ID, "methods-table").is_displayed())
            wait(driver, lambda d: not d.find_element(By.ID, "train").get_attribute("disabled"))
            driver.execute_script("window.scrollTo(0, 0)")
            saved.append(out / "playground_training.png")
            driver.save_screenshot(str(saved[-1]))
    finally:
        driver.quit()
    for path in saved:
        _shrink(path)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m descend.web.screenshots",
        description="Screenshots of the playground's two tabs (headless Chromium).",
    )
    parser.add_argument("--out", default="docs", help="folder for the PNGs (default: docs)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    parser.add_argument("--height", type=int, default=1150, help="window height in pixels")
    args = parser.parse_args(argv)
    try:
        saved = take(Path(args.out), width=args.width, height=args.height)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in saved:
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
