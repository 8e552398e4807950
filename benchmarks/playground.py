"""The playground's race, timed from the request to the answer over HTTP.

``python -m benchmarks.playground`` starts ``descend playground`` in a new process (an
empty JAX compilation cache, so the first request compiles), sends ``POST /api/race``
for 4 optimizers x 1,000 iterations on a 2-D function, and prints the time from sending
the request to having read and decoded the whole JSON answer: the first request (cold:
compilation included), then warm requests (the same race again, and the same race from
another start). ``ds.compare`` runs each optimizer twice (its warm time is one of its
columns), so a warm answer holds eight runs of ``minimize``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

RACE = {
    "expression": "(x-3)**2 + 10*(y+1)**2",
    "start": [0.0, 0.0],
    "optimizers": [
        {"name": "sgd", "hyperparams": {"lr": 0.01}},
        {"name": "momentum", "hyperparams": {"lr": 0.01}},
        {"name": "adam", "hyperparams": {"lr": 0.05}},
        {"name": "rmsprop", "hyperparams": {"lr": 0.01}},
    ],
    "max_iter": 1000,
    "tol": 0.0,  # every optimizer runs its 1,000 iterations (unless a step stalls)
}


def timed(client: httpx.Client, body: dict) -> tuple[float, dict]:
    began = time.perf_counter()
    response = client.post("/api/race", json=body, timeout=600)
    answer = json.loads(response.content)
    seconds = time.perf_counter() - began
    response.raise_for_status()
    return seconds, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="warm requests (20)")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DESCEND_CACHE_DIR": tempfile.mkdtemp(prefix="descend-bench-")}
    server = subprocess.Popen(
        [sys.executable, "-m", "descend", "playground", "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        server.stdout.readline()  # the URL line: the server is starting
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    client.get("/api/functions").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            cold, answer = timed(client, RACE)
            same = [timed(client, RACE)[0] for _ in range(args.repeats)]
            moved = [
                timed(client, {**RACE, "start": [0.1 * i, -0.05 * i]})[0]
                for i in range(1, args.repeats + 1)
            ]
    finally:
        server.terminate()
        server.wait(timeout=60)
    iterations = [run["nit"] for run in answer["runs"]]
    print(f"race: 4 optimizers, iterations {iterations}, {len(json.dumps(answer))} bytes")
    print(f"cold (first request, compiles): {cold * 1000:.0f} ms")
    for name, times in (("warm, same race", same), ("warm, another start", moved)):
        median, low, high = (1000 * f(times) for f in (statistics.median, min, max))
        print(f"{name}: median {median:.0f} ms, min {low:.0f} ms, max {high:.0f} ms", end="")
        print(f" ({len(times)} requests)")


if __name__ == "__main__":
    main()
