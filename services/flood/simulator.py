"""The destination simulator: the HTTP endpoints a flood delivers to, each misbehaving on purpose.

``POST /{name}`` plays one destination: ``limited`` answers 429 with ``Retry-After`` past its
requests-a-minute quota, ``flaky`` fails a share of requests with 500, ``slow`` answers after a delay
once the flood phase starts (``POST /_sim/phase/flood``). Every request is logged with its
``Idempotency-Key`` and times, so the flood can tell delivered from failed and measure end-to-end
latency. Run as ``python -m services.flood.simulator CONFIG PORT`` (uvicorn, its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.flood.scenario import SimulatedDestination

FAST_SECONDS = 0.005


@dataclass
class Behaviour:
    """One destination's state: its quota window, its dice, and its log."""

    spec: SimulatedDestination
    rng: random.Random
    window_start: float = 0.0
    window_used: int = 0
    slow: bool = False
    log: list[tuple[str, int, float, float]] = field(default_factory=list)
    """(idempotency key, status, arrived at, answered at), wall-clock seconds."""

    async def answer(self) -> tuple[int, dict[str, str]]:
        spec = self.spec
        if spec.behaviour == "limited":
            now = time.monotonic()
            if now - self.window_start >= 60.0:
                self.window_start, self.window_used = now, 0
            if self.window_used >= spec.per_minute:
                wait = max(1, math.ceil(60.0 - (now - self.window_start)))
                return 429, {"Retry-After": str(wait)}
            self.window_used += 1
            return 200, {}
        if spec.behaviour == "flaky":
            return (500, {}) if self.rng.random() < spec.fail_ratio else (200, {})
        if spec.behaviour == "slow":
            await asyncio.sleep(spec.delay_seconds if self.slow else FAST_SECONDS)  # the behaviour itself
            return 200, {}
        raise ValueError(f"unknown behaviour {spec.behaviour!r}")


def create_simulator(destinations: list[SimulatedDestination], seed: int = 11) -> Starlette:
    """The simulator app for ``destinations``; ``/_sim/log`` returns every request seen."""
    rng = random.Random(seed)
    behaviours = {d.name: Behaviour(d, random.Random(rng.random())) for d in destinations}

    async def deliver(request: Request) -> Response:
        arrived = time.time()
        behaviour = behaviours.get(request.path_params["name"])
        if behaviour is None:
            return JSONResponse({"error": "no such destination"}, 404)
        await request.body()
        key = request.headers.get("idempotency-key", "")
        status, headers = await behaviour.answer()
        behaviour.log.append((key, status, arrived, time.time()))
        return Response(status_code=status, headers=headers)

    async def phase(request: Request) -> Response:
        flooding = request.path_params["phase"] == "flood"
        for behaviour in behaviours.values():
            behaviour.slow = behaviour.slow or flooding
        return JSONResponse({"slow": [n for n, b in behaviours.items() if b.slow]})

    async def log(request: Request) -> Response:
        return JSONResponse({name: b.log for name, b in behaviours.items()})

    async def health(request: Request) -> Response:
        return JSONResponse({"destinations": sorted(behaviours)})

    return Starlette(
        routes=[
            Route("/_sim/health", health),
            Route("/_sim/log", log),
            Route("/_sim/phase/{phase}", phase, methods=["POST"]),
            Route("/{name}", deliver, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m services.flood.simulator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", type=Path, help="JSON list of SimulatedDestination fields")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    specs = [SimulatedDestination(**item) for item in json.loads(args.config.read_text())]
    uvicorn.run(
        create_simulator(specs),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
