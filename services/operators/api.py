"""The operator HTTP API: the DLQ and stats behind a bearer token.

Run it with ``breakwater operators serve`` or
``uvicorn --factory 'services.operators.api:app_from_env'``. Every route but ``/healthz`` and
``/readyz`` demands ``Authorization: Bearer <operators.token>``; without a configured token nothing
protected is served (401), and a refusal says nothing about why beyond "unauthorized".

==========================  =====================================================================
``GET /dlq``                filters as query params: provider, event_type, error_class,
                            destination, since, until, state, limit
``GET /dlq/counts``         dead letters per error class (same filters)
``GET /dlq/{id}``           one record whole (an id or a unique prefix)
``POST /dlq/replay``        JSON ``{"ids": [...]}`` or filters, ``dry_run``, ``by``, ``all``
``POST /dlq/discard``       same, plus ``notes``
``GET /stats``              lag per group and partition, dead/quarantined per provider, health
==========================  =====================================================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.config import BreakwaterSettings, load_settings
from services.kafka.admin import cluster_size
from services.operators.config import OperatorSettings
from services.operators.dlq_index import AmbiguousId
from services.operators.filters import DlqFilter, FilterError, parse_time
from services.operators.service import Operators
from services.operators.stats import consumer_lag
from services.telemetry import prometheus_text

__all__ = ["app_from_env", "create_operator_app"]

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
_FILTER_FIELDS = ("provider", "event_type", "error_class", "destination", "since", "until", "state", "limit")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _authorized(request: Request, token: bytes | None) -> bool:
    if token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Digests first: equal lengths, so the comparison's time says nothing about the token's length.
    given_digest = hashlib.sha256(given.strip().encode()).digest()
    return scheme.lower() == "bearer" and hmac.compare_digest(given_digest, hashlib.sha256(token).digest())


def _guard(token: bytes | None, endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        if not _authorized(request, token):
            response = _error(401, "unauthorized")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        try:
            return await endpoint(request)
        except FilterError as exc:
            return _error(400, str(exc))
        except AmbiguousId as exc:
            return _error(409, str(exc))
        except (KafkaError, TimeoutError):
            log.exception("operator request %s %s failed on Kafka", request.method, request.url.path)
            return _error(503, "kafka unavailable")

    return guarded


def _criteria(values: dict[str, Any]) -> DlqFilter:
    text = {k: None if values.get(k) is None else str(values[k]) for k in _FILTER_FIELDS if k in values}
    ids = values.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise FilterError("ids must be a list of strings")
    if ids:
        text = {**text, "ids": ",".join(ids), "state": text.get("state") or "all"}
    return DlqFilter.parse(text)


def create_operator_app(
    settings: BreakwaterSettings,
    operator: OperatorSettings | None = None,
    *,
    operators: Operators | None = None,
) -> Starlette:
    """The app; ``operator`` defaults to ``settings.operators``, ``operators`` is built from settings."""
    config = operator or getattr(settings, "operators", None) or OperatorSettings()
    ops = operators or Operators.of(settings, scan_limit=config.scan_limit)
    token = config.token.get_secret_value().encode() if config.token else None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            brokers = await cluster_size(ops.bootstrap, timeout=3.0)
        except Exception:  # any failure to reach the cluster means "not ready", never a 500
            return _error(503, "kafka unreachable")
        return JSONResponse({"status": "ready", "brokers": brokers})

    async def dlq_list(request: Request) -> Response:
        return JSONResponse(await ops.listing(_criteria(dict(request.query_params))))

    async def dlq_counts(request: Request) -> Response:
        return JSONResponse(await ops.counts(_criteria(dict(request.query_params))))

    async def dlq_show(request: Request) -> Response:
        detail = await ops.show(request.path_params["id"])
        return JSONResponse(detail) if detail is not None else _error(404, "no such dead letter")

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise FilterError("body must be JSON") from None
        if not isinstance(data, dict):
            raise FilterError("body must be a JSON object")
        return data

    async def dlq_replay(request: Request) -> Response:
        data = await body(request)
        selection = await ops.select(_criteria(data), everything=data.get("all") is True)
        report = await ops.replay(
            selection, by=str(data.get("by") or "api"), dry_run=bool(data.get("dry_run"))
        )
        return JSONResponse(report.as_dict())

    async def dlq_discard(request: Request) -> Response:
        data = await body(request)
        selection = await ops.select(_criteria(data), everything=data.get("all") is True)
        notes = data.get("notes")
        report = await ops.discard(
            selection,
            by=str(data.get("by") or "api"),
            notes=str(notes) if notes is not None else None,
            dry_run=bool(data.get("dry_run")),
        )
        return JSONResponse(report.as_dict())

    async def stats(request: Request) -> Response:
        query = request.query_params
        since = parse_time(query["since"]) if query.get("since") else None
        until = parse_time(query["until"]) if query.get("until") else None
        return JSONResponse((await ops.stats(since=since, until=until)).as_dict())

    async def metrics(request: Request) -> Response:
        """Consumer lag as Prometheus gauges (the queues of this system), beside the process's own metrics.

        Open like the probes: it holds counts, never a record. On transactional topics a partition at
        rest shows a lag of one per open commit marker at most.
        """
        try:
            lags = await consumer_lag(ops.bootstrap, ops.topics.queues())
        except Exception:  # an unreachable cluster is "no data", never a 500 to the scraper
            lags = []
        lines = [
            "# HELP breakwater_consumer_lag Records on a pipeline topic not yet processed by its group.",
            "# TYPE breakwater_consumer_lag gauge",
        ]
        for lag in lags:
            labels = f'group="{lag.group}",topic="{lag.topic}",partition="{lag.partition}"'
            lines.append(f"breakwater_consumer_lag{{{labels}}} {lag.lag}")
        own, content_type = prometheus_text()
        return Response("\n".join(lines).encode() + b"\n" + own, media_type=content_type)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/readyz", readyz),
        Route("/dlq", _guard(token, dlq_list)),
        Route("/dlq/counts", _guard(token, dlq_counts)),
        Route("/dlq/replay", _guard(token, dlq_replay), methods=["POST"]),
        Route("/dlq/discard", _guard(token, dlq_discard), methods=["POST"]),
        Route("/dlq/{id}", _guard(token, dlq_show)),
        Route("/stats", _guard(token, stats)),
    ]
    return Starlette(routes=routes)


def app_from_env() -> Starlette:
    """For ``uvicorn --factory``: settings from ``BREAKWATER_CONFIG`` and the environment."""
    return create_operator_app(load_settings())
