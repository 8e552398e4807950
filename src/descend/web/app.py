"""The playground's ASGI application (Starlette) and the server that runs it (uvicorn).

Routes (the contract is the docs page ``how-to/playground.md``):

- ``GET /`` the page, ``/static/...`` its scripts and styles, ``/vendor/plotly.min.js``
  the ``plotly`` package's bundled Plotly.js (nothing from a CDN);
- ``GET /api/functions``, ``GET /api/optimizers``, ``POST /api/parse``,
  ``POST /api/grid``, ``POST /api/race`` (:mod:`descend.web.compute`);
- ``GET /api/datasets``, ``POST /api/upload``, ``POST /api/train``,
  ``GET /api/train/{run}/events`` (server-sent events), ``POST /api/train/{run}/stop``,
  ``GET /api/train/{run}/checkpoint`` (:mod:`descend.web.training`).

Every failure is a JSON error with a 4xx status (:class:`~descend.web.limits.RequestError`),
and the server goes on serving. Work runs in worker threads, each request bounded by
:class:`~descend.web.limits.Limits`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import threading
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from descend.errors import DescendError
from descend.web import compute, training
from descend.web.limits import Limits, RequestError, body_object, busy

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

Handler = Callable[[Request], Awaitable[Response]]


def plotly_file() -> Path | None:
    """The ``plotly`` package's bundled ``plotly.min.js`` (found without importing
    plotly), or None when the package is not installed."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


class Playground:
    """The server's state: its limits, the slots of runs computing now, the uploads and
    the training runs."""

    def __init__(self, limits: Limits, static: Path):
        self.limits, self.static = limits, static
        self.slots = threading.BoundedSemaphore(limits.concurrent_runs)
        self.training = training.Trainer(limits, self.slots)

    async def body(self, request: Request) -> dict[str, Any]:
        """The JSON object of a request, read up to ``limits.body_bytes``."""
        limit = self.limits.body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise _too_large(len(raw), limit)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(
                "the request body is not JSON: send an object such as "
                '{"expression": "x**2"} with Content-Type application/json'
            ) from None
        return body_object(body)

    async def compute(
        self, work: Callable[..., Any], *args: Any, run: bool = False, bounded: bool = True
    ) -> Any:
        """``work(*args)`` in a worker thread, answered within ``limits.run_seconds``
        when ``bounded``; ``run=True`` takes one of the ``concurrent_runs`` slots (409
        when none is free), held until the work ends, even past the time limit."""
        if run and not self.slots.acquire(blocking=False):
            raise busy(self.limits)
        # A job cancelled before its worker thread takes it up never runs (anyio drops
        # it): whichever of the job and the timeout comes first claims it, so that its
        # slot is given back exactly once either way.
        claim = threading.Lock()
        claimed: list[str] = []

        def job() -> Any:
            with claim:
                if claimed:
                    return None
                claimed.append("job")
            try:
                return work(*args)
            finally:
                if run:
                    self.slots.release()

        if not bounded:
            return await anyio.to_thread.run_sync(job)
        seconds = self.limits.run_seconds
        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
        except TimeoutError:
            with claim:
                if not claimed:  # the job never began: its slot is free again
                    claimed.append("timeout")
                    if run:
                        self.slots.release()
            raise RequestError(
                f"the computation took longer than this server allows ({seconds:g} s); ask "
                "for fewer iterations, optimizers or grid points",
                status=422,
            ) from None


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        f"the request body has {size} bytes, more than this server reads ({limit}); send less",
        status=413,
    )


def answer(handler: Handler) -> Handler:
    """``handler`` with every failure turned into a JSON error."""

    async def answered(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as error:
            return JSONResponse(error.to_dict(), status_code=error.status)
        except DescendError as error:
            return JSONResponse({"error": str(error), "field": None, "column": None}, 400)
        except Exception as error:  # a bug: still a JSON answer, and the server goes on
            message = f"internal error ({type(error).__name__}: {error}); please report it"
            return JSONResponse({"error": message, "field": None, "column": None}, 500)

    return answered


def create_app(limits: Limits | None = None, *, static: str | Path | None = None) -> Starlette:
    """The playground's ASGI application.

    Parameters
    ----------
    limits:
        What one request may ask for (default :class:`~descend.web.limits.Limits()`).
    static:
        The folder of the page (``index.html``, its scripts and styles); default the
        package's ``descend/web/static``.
    """
    playground = Playground(limits or Limits(), Path(static) if static else STATIC)
    state = playground

    async def index(request: Request) -> Response:
        page = state.static / "index.html"
        if not page.is_file():
            raise RequestError(f"the page is missing from {state.static}", status=404)
        return FileResponse(page, media_type="text/html")

    async def plotly(request: Request) -> Response:
        path = plotly_file()
        if path is None:
            raise RequestError(
                "Plotly.js comes from the plotly package, which is not installed: "
                'pip install "descend[web]"',
                status=404,
            )
        return FileResponse(path, media_type="text/javascript")

    async def functions_list(request: Request) -> Response:
        return JSONResponse(await state.compute(compute.function_list, bounded=False))

    async def optimizers_list(request: Request) -> Response:
        return JSONResponse(await state.compute(compute.optimizer_list, bounded=False))

    async def parse(request: Request) -> Response:
        body = await state.body(request)
        return JSONResponse(await state.compute(compute.parsed, body, state.limits))

    async def grid(request: Request) -> Response:
        body = await state.body(request)
        return JSONResponse(await state.compute(compute.grid, body, state.limits))

    async def race(request: Request) -> Response:
        body = await state.body(request)
        return JSONResponse(await state.compute(compute.race, body, state.limits, run=True))

    async def datasets(request: Request) -> Response:
        return JSONResponse(await state.compute(training.dataset_list, bounded=False))

    async def upload(request: Request) -> Response:
        return JSONResponse(await state.training.upload(request))

    async def train(request: Request) -> Response:
        body = await state.body(request)
        return JSONResponse(await state.compute(state.training.start, body))

    async def events(request: Request) -> Response:
        run = state.training.run(request.path_params["run"])
        return StreamingResponse(
            run.events(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    async def stop(request: Request) -> Response:
        state.training.run(request.path_params["run"]).stop()
        return JSONResponse({"stopped": True})

    async def checkpoint(request: Request) -> Response:
        run = state.training.run(request.path_params["run"])
        path = run.checkpoint(request.query_params.get("method"))
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    async def not_found(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 404)
        detail = "no such page or API route" if status == 404 else getattr(error, "detail", "")
        message = f"{request.method} {request.url.path}: {detail}; the routes are under /api/"
        return JSONResponse({"error": message, "field": None, "column": None}, status)

    routes = [
        Route("/", answer(index)),
        Route("/vendor/plotly.min.js", answer(plotly)),
        Route("/api/functions", answer(functions_list)),
        Route("/api/optimizers", answer(optimizers_list)),
        Route("/api/parse", answer(parse), methods=["POST"]),
        Route("/api/grid", answer(grid), methods=["POST"]),
        Route("/api/race", answer(race), methods=["POST"]),
        Route("/api/datasets", answer(datasets)),
        Route("/api/upload", answer(upload), methods=["POST"]),
        Route("/api/train", answer(train), methods=["POST"]),
        Route("/api/train/{run}/events", answer(events)),
        Route("/api/train/{run}/stop", answer(stop), methods=["POST"]),
        Route("/api/train/{run}/checkpoint", answer(checkpoint)),
        Mount("/static", StaticFiles(directory=playground.static, check_dir=False)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        playground.training.close()  # at shutdown, training stops after its epoch

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found}, lifespan=lifespan)
    app.state.playground = playground
    return app


def serve(
    host: str = "127.0.0.1", port: int = 8765, *, open_browser: bool = True,
    limits: Limits | None = None,
) -> None:  # fmt: skip
    """Run the playground with uvicorn until Ctrl-C, printing its URL (and opening it
    in the browser unless ``open_browser=False``). A ``host`` other than the loopback
    (``127.0.0.1``) serves every machine that can reach this one, with a warning."""
    import uvicorn

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if host not in LOOPBACK:
        print(
            f"descend: warning: serving on {host}, reachable from other machines; the "
            "playground runs computations for anyone who can reach it",
            file=sys.stderr,
        )
    print(f"descend playground: {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(limits), host=host, port=port, log_level="warning")
