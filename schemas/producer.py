"""The small producer helper: correctly keyed, signed envelopes onto ``webhooks.inbound``.

The edge uses it, and so can any upstream gateway that holds a signing key::

    signer = EnvelopeSigner(keys={"k1": b"..."}, active_key_id="k1")
    async with EnvelopeProducer("127.0.0.1:9092", signer) as producer:
        await producer.send_and_wait(envelope, timeout=5)

Writes are ``acks=all`` with idempotence on: an acknowledged envelope is on every in-sync replica,
and the producer's own retries never write it twice. An envelope over
:data:`schemas.limits.ENVELOPE_MAX_BYTES` raises :class:`EnvelopeTooLarge` before anything is sent
(for a batch: before any of it is sent); it could never be stored, so it is no "try again".
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.structs import RecordMetadata

from schemas.envelope import WebhookEnvelope
from schemas.limits import ENVELOPE_MAX_BYTES, RECORD_MAX_BYTES
from schemas.signing import EnvelopeSigner, KafkaHeaders
from schemas.topics import INBOUND

TRACEPARENT_HEADER = "traceparent"


class EnvelopeTooLarge(ValueError):
    """A serialized envelope is over :data:`ENVELOPE_MAX_BYTES`: ``webhooks.inbound`` never stores it."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the envelope would be {size} bytes, over the {ENVELOPE_MAX_BYTES}-byte limit "
            "of webhooks.inbound (the body is stored base64 inside it)"
        )
        self.size = size


def encode_envelope(envelope: WebhookEnvelope, signer: EnvelopeSigner) -> tuple[bytes, bytes, KafkaHeaders]:
    """Key, value and headers of the record for ``envelope``; :class:`EnvelopeTooLarge` if over the limit."""
    value = envelope.model_dump_json().encode()
    if len(value) > ENVELOPE_MAX_BYTES:
        raise EnvelopeTooLarge(len(value))
    headers = signer.sign(value)
    if envelope.trace_parent:
        headers.append((TRACEPARENT_HEADER, envelope.trace_parent.encode()))
    return envelope.key.encode(), value, headers


class EnvelopeProducer:
    """An idempotent ``acks=all`` producer of signed envelopes."""

    def __init__(
        self,
        bootstrap: str,
        signer: EnvelopeSigner,
        *,
        topic: str = INBOUND,
        client_id: str = "breakwater-producer",
        linger_ms: int = 2,
        request_timeout_ms: int = 15_000,
    ) -> None:
        self.topic = topic
        self.signer = signer
        self._options = {
            "bootstrap_servers": bootstrap,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "request_timeout_ms": request_timeout_ms,
            "max_request_size": RECORD_MAX_BYTES,  # what every catalogue topic's max.message.bytes allows
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect; raises (and leaves nothing open) when no broker answers."""
        producer = AIOKafkaProducer(**self._options)
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
            producer._message_accumulator.fail_all(  # no public way to give up on a batch
                KafkaTimeoutError("producer stopped while Kafka was unreachable")
            )
        await producer.stop()

    async def answers(self, timeout: float) -> bool:
        """A broker answers a metadata request on the producer's own connections."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected().client.fetch_all_metadata()
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
