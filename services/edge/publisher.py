"""The edge's side of Kafka: an acknowledged write or a clear "try again later".

The edge answers 2xx only after the broker acknowledged the envelope (``acks=all``). Everything that
stands between a request and that acknowledgement is bounded: the number of envelopes waiting
(``max_in_flight``, so memory stays flat in a flood) and the time a request waits
(``produce_timeout_seconds``). Past either bound the request gets 503 with ``Retry-After``.

What could never be stored gets 413 instead, with the limit in its message, so a provider does not
retry it for days: an envelope over ``ENVELOPE_MAX_BYTES`` (:mod:`schemas.limits`), and a batched
delivery (SendGrid) of more events than ``edge.max_in_flight``, which no amount of waiting admits.

The producer (:class:`EnvelopeProducer`, which an upstream gateway may use too) connects in the
background: the edge starts, and answers ``/healthz``, while Kafka is still down, and begins accepting
as soon as a broker answers, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata

from schemas.envelope import WebhookEnvelope
from schemas.limits import RECORD_MAX_BYTES
from schemas.producer import EnvelopeTooLarge, encode_envelope
from schemas.signing import EnvelopeSigner
from schemas.topics import INBOUND
from services.errors import Overloaded, PayloadTooLarge
from services.kafka import clients
from services.kafka.clients import KafkaTarget
from services.kafka.internals import cluster_metadata, fail_pending

log = logging.getLogger(__name__)


class EnvelopeProducer:
    """An idempotent ``acks=all`` producer of signed envelopes onto ``webhooks.inbound``.

    The edge's, and any upstream gateway's that holds a signing key::

        signer = EnvelopeSigner(keys={"k1": b"..."}, active_key_id="k1")
        async with EnvelopeProducer("127.0.0.1:9092", signer) as producer:
            await producer.send_and_wait(envelope, timeout=5)

    An acknowledged envelope is on every in-sync replica, and the producer's own retries never write
    it twice. An envelope over the limit raises :class:`schemas.producer.EnvelopeTooLarge` before
    anything is sent (for a batch: before any of it is sent).
    """

    def __init__(
        self,
        bootstrap: KafkaTarget,
        signer: EnvelopeSigner,
        *,
        topic: str = INBOUND,
        client_id: str = "breakwater-producer",
        linger_ms: int = 2,
        request_timeout_ms: int = 15_000,
    ) -> None:
        self.topic = topic
        self.signer = signer
        self._kafka = bootstrap
        self._client_id = client_id
        self._options = clients.ProducerOptions(
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            max_request_size=RECORD_MAX_BYTES,  # what every catalogue topic's max.message.bytes allows
        )
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; raises (and leaves nothing open) when no broker answers."""
        producer = clients.producer(self._kafka, client_id=self._client_id, **self._options)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    @property
    def started(self) -> bool:
        return self._producer is not None

    def _connected(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaConnectionError("the envelope producer is not started")
        return self._producer

    async def stop(self, grace: float = 5.0) -> None:
        """Flush for up to ``grace`` seconds, then fail what is left and close.

        aiokafka's own ``stop()`` waits for every pending batch, forever if no broker answers; the
        writes still pending here were already answered "try again" by their deadlines.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(grace):
                await producer.flush()
        except TimeoutError:
            fail_pending(producer, KafkaTimeoutError("producer stopped while Kafka was unreachable"))
        await producer.stop()

    async def answers(self, timeout: float) -> bool:
        """A broker answers a metadata request on the producer's own connections."""
        try:
            async with asyncio.timeout(timeout):
                await cluster_metadata(self._connected())
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def send_and_wait(self, envelope: WebhookEnvelope, timeout: float) -> RecordMetadata:
        """Return once the broker acknowledged the envelope; ``TimeoutError`` after ``timeout`` seconds.

        A timed-out envelope may still be written later by the producer's own retries; callers answer
        "try again" and dedup drops the second copy. It is never the other way round.
        """
        key, value, headers = encode_envelope(envelope, self.signer)
        async with asyncio.timeout(timeout):
            acked = await self._connected().send(self.topic, value=value, key=key, headers=headers)
            return await asyncio.shield(acked)  # the producer settles its own futures

    async def send_many_and_wait(
        self, envelopes: list[WebhookEnvelope], timeout: float
    ) -> list[RecordMetadata]:
        """Send several envelopes (a batched delivery) and wait for all acknowledgements.

        Every envelope is encoded (and size-checked) before the first is sent: a batch is refused whole.
        """
        records = [encode_envelope(envelope, self.signer) for envelope in envelopes]
        async with asyncio.timeout(timeout):
            pending = []
            for key, value, headers in records:
                pending.append(
                    await self._connected().send(self.topic, value=value, key=key, headers=headers)
                )
            return list(await asyncio.shield(asyncio.gather(*pending)))


class Publisher:
    def __init__(
        self,
        producer: EnvelopeProducer,
        *,
        timeout: float,
        max_in_flight: int,
        retry_after: int,
    ) -> None:
        self._producer = producer
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._retry_after = retry_after
        self._in_flight = 0
        self._connect_task: asyncio.Task[None] | None = None
        self._ready_checked_at = 0.0
        self._ready = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def connected(self) -> bool:
        return self._producer.started

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._connect_task = asyncio.create_task(self._connect(), name="edge-producer-connect")

    async def _connect(self) -> None:
        delay = 0.2
        while not self._producer.started:
            try:
                await self._producer.start()
                log.info("connected to Kafka")
            except (KafkaError, OSError) as exc:
                log.warning("Kafka not reachable yet (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        await self._producer.stop()

    async def publish(self, envelopes: list[WebhookEnvelope]) -> None:
        """Return once every envelope is acknowledged; else raise Overloaded or PayloadTooLarge."""
        if len(envelopes) > self._max_in_flight:
            raise PayloadTooLarge(
                f"a delivery of {len(envelopes)} events is more than edge.max_in_flight "
                f"({self._max_in_flight}) admits at once; send smaller batches"
            )
        if not self._producer.started:
            raise self._unavailable("Kafka is not reachable")
        if self._in_flight + len(envelopes) > self._max_in_flight:
            raise self._unavailable("too many webhooks waiting for Kafka")
        self._in_flight += len(envelopes)
        try:
            if len(envelopes) == 1:
                await self._producer.send_and_wait(envelopes[0], self._timeout)
            else:
                await self._producer.send_many_and_wait(envelopes, self._timeout)
        except EnvelopeTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except TimeoutError:
            raise self._unavailable(f"Kafka did not acknowledge within {self._timeout:g}s") from None
        except MessageSizeTooLargeError as exc:
            # Under the catalogue's limits, yet refused: the topic predates them. Stored once fixed.
            log.error(
                "Kafka refused an envelope as too large: the topic's max.message.bytes is below the "
                "catalogue's; run `breakwater topics ensure` to apply it"
            )
            raise self._unavailable("Kafka refused the write as too large for the topic") from exc
        except KafkaError as exc:
            raise self._unavailable(f"Kafka refused the write ({type(exc).__name__})") from exc
        finally:
            self._in_flight -= len(envelopes)

    def _unavailable(self, message: str) -> Overloaded:
        return Overloaded(message, retry_after=self._retry_after, status=503, code="unavailable")

    async def ready(self) -> bool:
        """Kafka answers a metadata request now (checked at most once a second)."""
        now = time.monotonic()
        if now - self._ready_checked_at < 1.0:
            return self._ready
        self._ready_checked_at = now
        self._ready = self._producer.started and await self._producer.answers(timeout=2.0)
        return self._ready
