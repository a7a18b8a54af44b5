"""aiokafka's per-retry warning for NOT_ENOUGH_REPLICAS, folded into one line a minute that says why.

Kafka 3.6 and later verify each transactional produce (KIP-890). A produce that reaches a partition
while the previous transaction's commit markers are still being written is answered
``CONCURRENT_TRANSACTIONS``, and brokers report that to the older produce versions aiokafka speaks as
``NOT_ENOUGH_REPLICAS`` (KAFKA-15459). aiokafka retries after its backoff, as it should, and logs a
warning each time: about 1,600 in a ten-minute soak against one healthy broker, enough to bury
everything else in the log. A real shortage of in-sync replicas is retried the same way, so the
warning is kept, with its count and topics, once a minute instead of once a batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from aiokafka.errors import NotEnoughReplicasError

SENDER_LOGGER = "aiokafka.producer.sender"
log = logging.getLogger("breakwater.kafka")


class FoldedNotEnoughReplicas(logging.Filter):
    """Drops aiokafka's retry warnings for NOT_ENOUGH_REPLICAS and logs a count per ``interval``.

    The first one after a quiet interval is reported at once (so the onset is visible), the rest at
    the next retry after the interval has passed.
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._reported_at: float | None = None
        self._topics: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        error = args[1] if len(args) == 2 else None
        if not (isinstance(error, type) and issubclass(error, NotEnoughReplicasError)):
            return True
        self._topics[str(getattr(args[0], "topic", args[0]))] += 1
        now = self._clock()
        if self._reported_at is None or now - self._reported_at >= self._interval:
            self._report(now)
        return False

    def _report(self, now: float) -> None:
        since = "" if self._reported_at is None else f" in the last {now - self._reported_at:.0f}s"
        log.warning(
            "Kafka answered NOT_ENOUGH_REPLICAS to %d produce request(s)%s on %s; aiokafka retries them. "
            "From a transactional producer with every replica in sync this is Kafka's transaction "
            "verification (KIP-890, KAFKA-15459) and harmless; otherwise a partition has fewer in-sync "
            "replicas than min.insync.replicas",
            sum(self._topics.values()),
            since,
            ", ".join(sorted(self._topics)),
        )
        self._topics.clear()
        self._reported_at = now


def fold_not_enough_replicas(interval: float = 60.0) -> None:
    """Install the filter on aiokafka's sender logger (once: a second call replaces the first)."""
    sender = logging.getLogger(SENDER_LOGGER)
    for existing in [f for f in sender.filters if isinstance(f, FoldedNotEnoughReplicas)]:
        sender.removeFilter(existing)
    sender.addFilter(FoldedNotEnoughReplicas(interval))
