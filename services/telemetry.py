"""OpenTelemetry for every Breakwater process: metrics, traces and structured logs, set up once.

Metrics are exported for Prometheus (``/metrics`` on the edge and the worker) and, when
``telemetry.otlp_endpoint`` is set, over OTLP/HTTP; traces go over OTLP when configured, and are made
either way, so a webhook's trace id travels from the edge through Kafka (the W3C ``traceparent``
record header) into dispatch and HTTP destinations. Logs are JSON lines carrying the trace id.

    telemetry = setup_telemetry(settings.telemetry, service="edge")
    telemetry.edge.accepted.add(1, {"provider": "stripe"})
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pythonjsonlogger.json import JsonFormatter

from services.config import TelemetrySettings
from services.kafka.logs import fold_not_enough_replicas

PROPAGATOR = TraceContextTextMapPropagator()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class LocalCounter:
    """A monotonic counter whose hot path is a dict increment.

    The OpenTelemetry SDK spends about 10 us per ``Counter.add``; at thousands of webhooks a second
    that is a large share of the edge. This keeps totals per label set in a dict and reports them
    through an observable counter when a reader collects (a Prometheus scrape or an OTLP export).
    """

    def __init__(self, meter: metrics.Meter, name: str, description: str, labels: tuple[str, ...]) -> None:
        self._labels = labels
        self._totals: dict[tuple[str, ...], int] = {}
        meter.create_observable_counter(name, callbacks=[self._observe], description=description)

    def add(self, amount: int, *values: str) -> None:
        self._totals[values] = self._totals.get(values, 0) + amount

    def value(self, *values: str) -> int:
        return self._totals.get(values, 0)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for values, total in list(self._totals.items()):
            yield Observation(total, dict(zip(self._labels, values, strict=True)))


@dataclass(frozen=True)
class EdgeMetrics:
    received: LocalCounter
    accepted: LocalCounter
    rejected: LocalCounter
    accept_latency: metrics.Histogram


# The worker's counters: Prometheus/OTel name -> (Metrics key prefix, label the rest of the key goes in).
PIPELINE_COUNTERS: dict[str, tuple[str, str | None, str]] = {
    "breakwater.pipeline.new": ("dedup.new", None, "first sightings sent on to dispatch"),
    "breakwater.pipeline.duplicates": ("dedup.duplicate", None, "duplicates dropped by dedup"),
    "breakwater.pipeline.replayed_bodies": (
        "dedup.replayed_body",
        None,
        "copies of a signed body under another event id (a captured request re-posted), dropped",
    ),
    "breakwater.pipeline.forwarded": (
        "dedup.forwarded",
        None,
        "inbound records forwarded to the partition that deduplicates them",
    ),
    "breakwater.pipeline.expired": ("dedup.expired", None, "dedup entries expired from the window"),
    "breakwater.pipeline.quarantined": ("dedup.quarantined.", "reason", "records quarantined, by reason"),
    "breakwater.pipeline.delivered": ("dispatch.delivered.", "destination", "deliveries that succeeded"),
    "breakwater.pipeline.retried": ("dispatch.retried.", "destination", "deliveries sent to a retry tier"),
    "breakwater.pipeline.parked": ("dispatch.parked.", "destination", "deliveries parked after a long 429"),
    "breakwater.pipeline.dead_lettered": ("dispatch.dead.", "destination", "deliveries dead-lettered"),
    "breakwater.pipeline.unrouted": ("dispatch.unrouted", None, "events no route matched"),
}


# Every source of worker counts in this process. The instruments are registered once (OpenTelemetry
# keeps the first registration of a name) and report the sum, so counts stay monotonic per process
# even when tests run several workers in it; a deployed worker process has one source.
_COUNTER_SOURCES: list[Callable[[], Mapping[str, int]]] = []


def export_counters(meter: metrics.Meter, counters: Callable[[], Mapping[str, int]]) -> None:
    """Add ``counters()`` (a ``{key: count}`` map) to what :data:`PIPELINE_COUNTERS` report.

    The counts are read at collection time (a scrape or an export), so the hot path stays a dict
    increment. They count processing, so a batch whose transaction aborted and was re-processed is
    counted again: exact counts live on the topics (``breakwater stats``), these show rates.
    """
    first = not _COUNTER_SOURCES
    _COUNTER_SOURCES.append(counters)
    if not first:
        return
    for name, (prefix, label, description) in PIPELINE_COUNTERS.items():

        def observe(
            options: CallbackOptions, prefix: str = prefix, label: str | None = label
        ) -> Iterable[Observation]:
            totals: dict[str, int] = {}  # label value ("" when the counter has no label) -> count
            for source in list(_COUNTER_SOURCES):
                for key, count in list(source().items()):
                    if (key == prefix) if label is None else key.startswith(prefix):
                        value = key[len(prefix) :]
                        totals[value] = totals.get(value, 0) + count
            for value, count in totals.items():
                yield Observation(count, {label: value} if label is not None else {})

        meter.create_observable_counter(name, callbacks=[observe], description=description)


# Gauge name -> the live readers whose sum it reports (weak: a stopped worker's store drops out).
_GAUGE_SOURCES: dict[str, list[weakref.WeakMethod[Callable[[], int]]]] = {}


def export_gauge(meter: metrics.Meter, name: str, read: Callable[[], int], description: str) -> None:
    """Report the sum of every live ``read()`` (a bound method) as the byte gauge ``name``.

    Registered once per process, like :func:`export_counters`; several workers in a test process add up.
    """
    registered = name in _GAUGE_SOURCES
    sources = _GAUGE_SOURCES.setdefault(name, [])
    sources.append(weakref.WeakMethod(read))
    if registered:
        return

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        readers = [reader for ref in sources if (reader := ref()) is not None]
        sources[:] = [ref for ref in sources if ref() is not None]
        yield Observation(sum(reader() for reader in readers))

    meter.create_observable_gauge(name, callbacks=[observe], description=description, unit="By")


@dataclass(frozen=True)
class Telemetry:
    tracer: trace.Tracer
    edge: EdgeMetrics
    end_to_end_latency: metrics.Histogram
    """Received at the edge to delivered, recorded by the worker's dispatch."""
    meter: metrics.Meter
    exports_traces: bool
    """Spans are recorded only when a collector takes them; otherwise trace ids still propagate."""


def _edge_instruments(meter: metrics.Meter) -> EdgeMetrics:
    return EdgeMetrics(
        received=LocalCounter(meter, "breakwater.edge.received", "webhook requests received", ("provider",)),
        accepted=LocalCounter(
            meter, "breakwater.edge.accepted", "envelopes Kafka acknowledged", ("provider",)
        ),
        rejected=LocalCounter(
            meter, "breakwater.edge.rejected", "requests refused, by reason", ("provider", "reason")
        ),
        accept_latency=meter.create_histogram(
            "breakwater.edge.accept_latency",
            unit="s",
            description="request arrival to answer, by outcome",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        ),
    )


def _providers(service: str, otlp_endpoint: str | None, interval: float) -> Telemetry:
    """One meter and tracer provider per process: OpenTelemetry's globals can be set only once."""
    resource = Resource.create({"service.name": f"breakwater-{service}", "service.namespace": "breakwater"})
    readers: list[MetricReader] = [PrometheusMetricReader()]
    tracer_provider = TracerProvider(resource=resource)
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/")
        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"), export_interval_millis=interval * 1000
            )
        )
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(tracer_provider)
    meter = meter_provider.get_meter("breakwater")
    return Telemetry(
        tracer=tracer_provider.get_tracer("breakwater"),
        edge=_edge_instruments(meter),
        end_to_end_latency=meter.create_histogram(
            "breakwater.pipeline.end_to_end_latency",
            unit="s",
            description="received at the edge to delivered",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        ),
        meter=meter,
        exports_traces=bool(otlp_endpoint),
    )


_PROCESS: list[Telemetry] = []


def setup_telemetry(settings: TelemetrySettings, service: str) -> Telemetry:
    """The process's telemetry; the first call decides the service name and exporters.

    Later calls (an edge and a worker in one test process) share it: one Prometheus registry, one
    set of instruments, as the OpenTelemetry globals allow only one provider each.
    """
    if not _PROCESS:
        _PROCESS.append(_providers(service, settings.otlp_endpoint, settings.export_interval_seconds))
    return _PROCESS[0]


def prometheus_text() -> tuple[bytes, str]:
    """The Prometheus exposition of every metric in this process, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


class _MappingGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


HEADER_GETTER = _MappingGetter()


def child_traceparent(incoming: str | None) -> str:
    """A ``traceparent`` for a new span under ``incoming`` (or a new trace), without the SDK's cost.

    Used when no collector takes spans: the trace id still ties the webhook's records together from
    the edge to its HTTP destination.
    """
    span_id = os.urandom(8).hex()
    if incoming:
        parts = incoming.strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32 and len(parts[3]) == 2:
            return f"00-{parts[1].lower()}-{span_id}-{parts[3]}"
    return f"00-{os.urandom(16).hex()}-{span_id}-01"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active span (what the edge stores in the envelope)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


class _TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the active span to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(level: str, log_format: Literal["json", "text"]) -> None:
    """JSON lines on stderr (or plain text for people at a terminal), with trace ids attached."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":  # aiokafka narrates every rebalance and metadata refresh at INFO
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    fold_not_enough_replicas()  # one line a minute, with its reason, instead of one per retried batch
