"""The flood's edge process: the product's edge app, writing to the flood's prefixed inbound topic.

``breakwater edge`` writes to ``webhooks.inbound`` whatever ``pipeline.topic_prefix`` says, while the
worker reads ``{prefix}webhooks.inbound``; a flood on a shared broker needs both on its own topics,
so this passes the edge app a producer for the prefixed topic. Nothing else differs from
``breakwater edge``. Run as ``python -m services.flood.edge`` with ``BREAKWATER_CONFIG`` set.
"""

from __future__ import annotations

import uvicorn

from schemas.producer import EnvelopeProducer
from services.config import load_settings
from services.edge.app import create_app
from services.telemetry import configure_logging
from streams.topics import PipelineTopics
from streams.worker import signer_for


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.telemetry.log_format)
    producer = EnvelopeProducer(
        settings.kafka.servers,
        signer_for(settings),
        topic=PipelineTopics.of(settings).inbound,
        client_id=f"breakwater-edge-{settings.edge.instance}",
        linger_ms=settings.edge.linger_ms,
        request_timeout_ms=settings.kafka.request_timeout_ms,
    )
    uvicorn.run(
        create_app(settings, producer=producer),
        host=settings.edge.host,
        port=settings.edge.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_keep_alive=settings.edge.keep_alive_seconds,
        log_level=settings.log_level.lower(),
        log_config=None,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
