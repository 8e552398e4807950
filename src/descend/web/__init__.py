"""The playground: gradient descent in the browser, computed by descend itself.

``descend playground`` (or :func:`serve`) starts a local server (Starlette under
uvicorn, from the ``web`` extra: ``pip install "descend[web]"``) and opens its page.
The Functions tab races optimizers on an expression or a test function
(:func:`descend.compare`), the Training tab trains a model by batch, stochastic and
mini-batch gradient descent side by side (:func:`descend.fit`), streaming each epoch.
Every number the page shows is one the library returned; the HTTP API is described in
the docs page "The playground".

>>> from descend.web import create_app
>>> from starlette.testclient import TestClient
>>> client = TestClient(create_app())
>>> client.post("/api/parse", json={"expression": "2*x**2 + 6*z**2 + 7*m**3"}).json()["derivatives"]
['4*x', '12*z', '21*m**2']
"""

from __future__ import annotations

from descend.web.app import create_app, serve
from descend.web.limits import Limits, RequestError

__all__ = ["Limits", "RequestError", "create_app", "serve"]
