"""The baseline: an ASGI app that reads the body and answers 202 without any work.

Run by :mod:`benchmarks.bench_edge` as its own process, under the same uvicorn as the edge.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[..., Any]) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"status":"accepted"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": 202 if scope["method"] == "POST" else 200,
            "headers": headers,
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bare_asgi", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("port", type=int)
    parser.add_argument("processes", type=int, nargs="?", default=1, help="uvicorn workers, as the edge's")
    args = parser.parse_args()
    uvicorn.run(
        "benchmarks.bare_asgi:app" if args.processes > 1 else app,  # workers need an import string
        host="127.0.0.1",
        port=args.port,
        workers=args.processes,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
