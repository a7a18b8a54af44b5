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


UNREACHABLE_TEMPLATES: dict[str, frozenset[str]] = {
    "aiokafka": frozenset(
        {
            "Unable connect to node with id %s: %s",
            'Unable connect to "%s:%s": %s',
            "Unable to update metadata from %s",
            "Unable to request metadata from node with id %s: %r",
            'Unable to request metadata from "%s:%s": %s',
        }
    ),
    "aiokafka.consumer.fetcher": frozenset(
        {"Failed fetch messages from %s: %s", "Failed fetch offsets from %s: %s"}
    ),
    "aiokafka.consumer.group_coordinator": frozenset(
        {
            "Group Coordinator Request failed: %s",
            "Error sending %s to node %s [%s] -- marking coordinator dead",
            "Marking the coordinator dead (node %s)for group %s.",
            "Heartbeat session expired - marking coordinator dead",
            "Heartbeat send request failed: %s. Will retry.",
            "Heartbeat failed for group %s: coordinator (node %s) is either not started or not valid",
        }
    ),
    "aiokafka.producer.sender": frozenset({"Got error produce response: %s"}),
}
"""aiokafka's per-attempt messages while a broker cannot be reached (message templates, by logger)."""


class FoldedUnreachable(logging.Filter):
    """Folds aiokafka's per-attempt "cannot reach the broker" lines into one ERROR line a minute.

    During a 30 s outage a worker's loops logged about 26,000 of them (every connection attempt, every
    metadata refresh, every fetch and coordinator request, each at ERROR). The first one after a quiet
    interval (none for ``interval``) is passed through with a note that the rest are folded; then one
    ``breakwater.kafka`` ERROR line per ``interval`` gives the count of each kind. All instances share
    one tally, so the lines of several loggers fold into one.
    """

    def __init__(
        self, logger: str, tally: _Tally, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._templates = UNREACHABLE_TEMPLATES.get(logger, frozenset())
        self._tally = tally
        self._interval = interval
        self._clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in self._templates:
            return True
        tally = self._tally
        tally.counts[str(record.msg).split(":")[0].split(" %s")[0]] += 1
        now = self._clock()
        quiet = tally.last_seen is None or now - tally.last_seen >= self._interval
        tally.last_seen = now
        if quiet or tally.reported_at is None:  # the onset: shown at once
            tally.reported_at = now
            tally.counts.clear()
            record.msg = f"{record.msg} (Kafka unreachable: more such lines are folded, one a minute)"
            return True
        if now - tally.reported_at >= self._interval:
            log.error(
                "Kafka unreachable: %d connection errors in the last %.0fs (%s); aiokafka keeps retrying",
                sum(tally.counts.values()),
                now - tally.reported_at,
                ", ".join(f"{what}: {n}" for what, n in tally.counts.most_common()),
            )
            tally.counts.clear()
            tally.reported_at = now
        return False


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.reported_at: float | None = None
        self.last_seen: float | None = None


def fold_unreachable(interval: float = 60.0) -> None:
    """Install :class:`FoldedUnreachable` on aiokafka's loggers (once: a second call replaces the first)."""
    tally = _Tally()
    for name in UNREACHABLE_TEMPLATES:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, FoldedUnreachable)]:
            logger.removeFilter(existing)
        logger.addFilter(FoldedUnreachable(name, tally, interval))
