"""The operator HTTP API: the DLQ and stats behind a bearer token.

Run it with ``breakwater operators serve`` or
``uvicorn --factory 'services.operators.api:app_from_env'``. Every route but ``/healthz`` and
``/readyz`` demands ``Authorization: Bearer <operators.token>``; without a configured token nothing
protected is served (401), and a refusal says nothing about why beyond "unauthorized".

==========================  =====================================================================
``GET /dlq``                filters as query params: provider, event_type, error_class,
                            destination, since, until, state, limit
``GET /dlq/counts``         dead letters per error class (the same filters but limit)
``GET /dlq/{id}``           one record whole (an id or a unique prefix)
``POST /dlq/replay``        JSON ``{"ids": [...]}`` or filters (not state), ``dry_run``, ``by``, ``all``
``POST /dlq/discard``       same, plus ``notes``
``GET /stats``              lag per group and partition, dead/quarantined per provider, health;
                            since, until, lag_warn, lag_critical, dead_warn, dead_critical
==========================  =====================================================================

Names are those of the matching ``breakwater`` command's options (:data:`FIELDS`). A name a route
does not know, a value of the wrong type or out of range is a 400 that names it (and, for unknown
names, lists the accepted ones): a misspelt filter must never widen a replay or a discard to more
than was meant.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.payload import MalformedPayload, parse_json
from services.config import BreakwaterSettings, load_settings
from services.errors import BreakwaterError
from services.kafka.admin import cluster_size
from services.operators.config import OperatorSettings
from services.operators.dlq_index import AmbiguousId
from services.operators.filters import FILTER_FIELDS, DlqFilter, FilterError, parse_time, reject_unknown
from services.operators.service import Operators
from services.operators.stats import HealthThresholds, consumer_lag
from services.operators.views import to_json
from services.telemetry import prometheus_text

__all__ = ["FIELDS", "MAX_BODY_BYTES", "app_from_env", "create_operator_app"]

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]

_SELECTION = ("ids", *(name for name in FILTER_FIELDS if name != "state"))
FIELDS: dict[str, tuple[str, ...]] = {
    "list": FILTER_FIELDS,
    "counts": tuple(name for name in FILTER_FIELDS if name != "limit"),
    "replay": (*_SELECTION, "dry_run", "by", "all"),
    "discard": (*_SELECTION, "dry_run", "by", "all", "notes"),
    "stats": ("since", "until", "lag_warn", "lag_critical", "dead_warn", "dead_critical"),
}
"""What each route accepts (query string or JSON body), keyed by the ``breakwater`` command that does the
same: ``GET /dlq`` is ``dlq list``, ``POST /dlq/replay`` is ``dlq replay``, ``GET /stats`` is ``stats``.
Each name is that command's option (``error_class`` is ``--error-class``); anything else is a 400."""
MAX_BODY_BYTES = 1024 * 1024
_TEXT_FIELDS = frozenset(FILTER_FIELDS) - {"limit"}
_WHOLE_FIELDS = frozenset({"limit", "lag_warn", "lag_critical", "dead_warn", "dead_critical"})
_FLAG_FIELDS = frozenset({"dry_run", "all"})


class BodyTooLarge(BreakwaterError):
    """A request body over :data:`MAX_BODY_BYTES` (413)."""


def _error(status: int, message: str, **details: object) -> JSONResponse:
    return JSONResponse({"error": message, **details}, status_code=status)


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
            return _error(400, exc.message, **exc.details())
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        except AmbiguousId as exc:
            return _error(409, str(exc))
        except (KafkaError, TimeoutError):
            log.exception("operator request %s %s failed on Kafka", request.method, request.url.path)
            return _error(503, "kafka unavailable")

    return guarded


def _query(request: Request, accepted: tuple[str, ...]) -> dict[str, str]:
    """The query string as one value per name; unknown and repeated names are refused."""
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in values:
            raise FilterError(f"{name} is given more than once", field=name)
        values[name] = value
    reject_unknown(values, accepted)
    return values


def _as_text(name: str, value: object) -> str | None:
    """A JSON value as the text a query string would carry, refusing what has no such reading."""
    if value is None:
        return None
    if name in _WHOLE_FIELDS:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value
        raise FilterError(f"{name} must be a whole number, not {type(value).__name__}", field=name)
    if not isinstance(value, str):
        raise FilterError(f"{name} must be a string, not {type(value).__name__}", field=name)
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FilterError(f"{name} must be true or false, not {type(value).__name__}", field=name)
    return value


def _criteria(values: dict[str, Any]) -> DlqFilter:
    """The filter a query string or JSON body asks for (names already checked by the caller)."""
    text = {k: _as_text(k, values[k]) for k in FILTER_FIELDS if k in values}
    ids = values.get("ids")
    if ids is None:
        return DlqFilter.parse(text)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise FilterError("ids must be a list of strings", field="ids")
    wanted = frozenset(i for i in ids if i)
    if not wanted:
        return DlqFilter.parse(text)
    return replace(DlqFilter.parse({**text, "state": text.get("state") or "all"}), ids=wanted)


def _whole(values: dict[str, str], name: str, default: int) -> int:
    text = values.get(name, "").strip()
    if not text:
        return default
    if not text.isdecimal() or len(text) > 18:
        raise FilterError(f"{name} must be a whole number from 0, not {text[:40]!r}", field=name)
    return int(text)


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
        return JSONResponse(to_json(await ops.listing(_criteria(_query(request, FIELDS["list"])))))

    async def dlq_counts(request: Request) -> Response:
        return JSONResponse(to_json(await ops.counts(_criteria(_query(request, FIELDS["counts"])))))

    async def dlq_show(request: Request) -> Response:
        detail = await ops.show(request.path_params["id"])
        return JSONResponse(to_json(detail)) if detail is not None else _error(404, "no such dead letter")

    async def body(request: Request, accepted: tuple[str, ...]) -> dict[str, Any]:
        """The JSON object of a POST, its names checked; refused whole rather than read in part."""
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise BodyTooLarge(f"body over {MAX_BODY_BYTES} bytes")
        try:  # the edge's strict parser: a lone surrogate or NaN would fail later, as a 500
            data = parse_json(bytes(raw) or b"{}")
        except MalformedPayload as exc:
            raise FilterError(f"body is not strict JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FilterError("body must be a JSON object")
        reject_unknown(data, accepted)
        return data

    async def dlq_replay(request: Request) -> Response:
        data = await body(request, FIELDS["replay"])
        criteria, everything, dry_run = _criteria(data), _flag(data, "all"), _flag(data, "dry_run")
        by = _as_text("by", data.get("by")) or "api"
        report = await ops.replay(await ops.select(criteria, everything=everything), by=by, dry_run=dry_run)
        return JSONResponse(to_json(report))

    async def dlq_discard(request: Request) -> Response:
        data = await body(request, FIELDS["discard"])
        criteria, everything, dry_run = _criteria(data), _flag(data, "all"), _flag(data, "dry_run")
        by, notes = _as_text("by", data.get("by")) or "api", _as_text("notes", data.get("notes"))
        selection = await ops.select(criteria, everything=everything)
        report = await ops.discard(selection, by=by, notes=notes, dry_run=dry_run)
        return JSONResponse(to_json(report))

    async def stats(request: Request) -> Response:
        query = _query(request, FIELDS["stats"])
        since = parse_time(query["since"], field="since") if query.get("since") else None
        until = parse_time(query["until"], field="until") if query.get("until") else None
        defaults = HealthThresholds()
        thresholds = HealthThresholds(
            **{name: _whole(query, name, getattr(defaults, name)) for name in FIELDS["stats"][2:]}
        )
        result = await ops.stats(since=since, until=until, thresholds=thresholds)
        return JSONResponse(to_json(result))

    async def metrics(request: Request) -> Response:
        """Consumer lag as Prometheus gauges (the queues of this system), beside the process's own metrics.

        Open like the probes: it holds counts, never a record. Commit markers are not records: a
        drained partition shows 0, so an alert on lag > 0 clears (see :func:`consumer_lag`).
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
