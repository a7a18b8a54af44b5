"""Hostile records for every topic a worker reads, and the exact accounting of what came out.

A test draws a *plan* with :func:`record_plans` (hypothesis), turns it into concrete records with
:func:`materialize`, writes them with :func:`write_specs` (which learns each record's partition and
offset), runs workers, then reads every output topic with ``read_committed`` and calls
:func:`account`. Each written record carries what it must become:

* ``event``: a good envelope; its *group* (the dedup key on inbound, the envelope id on ready/retry)
  must reach ``webhooks.events`` exactly once, whichever copy of the group got there;
* ``duplicate``: a later copy of a good group; it adds nothing downstream;
* ``dead``: a good envelope that cannot be delivered (its JSON body is not JSON, or its destination
  is unknown): exactly one dead letter for its group, no event;
* ``quarantine``: a record no trusted stage could have written; exactly one quarantine record that
  names its topic, partition and offset, and nothing else. On ready and retry topics (which dispatch
  trusts) an unreadable record has no envelope to dead-letter, so quarantine is its only trace;
* ``any``: one of the three, exactly once (a record whose right answer is a judgement call).

Every output must map back to an input (events and dead letters by envelope id or key, quarantine
records by coordinates); what maps nowhere is reported too.
"""

from __future__ import annotations

import asyncio
import json
import signal
import string
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from hypothesis import strategies as st

from schemas.envelope import WebhookEnvelope
from schemas.headers import DESTINATION_HEADER, FORWARDED_FROM_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER
from schemas.limits import ENVELOPE_MAX_BYTES
from schemas.retry import RetryRecord
from schemas.signing import EnvelopeSigner
from tests.support.pipeline import CommittedReader, WorkerProcess

PARTITIONS = 4
PROVIDERS = ("stripe", "github")
TIERS = ("t1", "t2")
BROKER_DEFAULT_MAX = 1_048_588  # Kafka's message.max.bytes when a topic sets none

# ---------------------------------------------------------------------------------------------- plans

JunkHeader = tuple[str, bytes | None]
RawRecord = tuple[bytes | None, bytes | None, Sequence[JunkHeader], int | None]
"""Key, value, headers and partition (None: the producer's choice) of a record written as it is."""
header_names = st.one_of(
    st.sampled_from(["x-junk", "traceparent", DESTINATION_HEADER, "content-type", "x-dup", ""]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.sampled_from([b"\xff\xfe\xfd", b"\xc3\x28", b"", b"00-not-a-traceparent"]),
)


@st.composite
def junk_headers(draw: st.DrawFn, signed: bool) -> list[JunkHeader]:
    """Null, non-UTF-8, duplicated and, now and then, hundreds of headers.

    For a record meant to pass the signature check, the signature headers are left alone.
    """
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=4))
    if signed:
        headers = [(n, v) for n, v in headers if n not in (KEY_ID_HEADER, SIGNATURE_HEADER)]
    if draw(st.integers(0, 9)) == 9:
        headers += [(f"x-many-{i % 7}", b"v" * (i % 5)) for i in range(300)]
    return headers


SIZES = st.sampled_from(["small"] * 6 + ["large", "near_envelope_max", "near_max", "over_max"])
BODIES = st.sampled_from(["json"] * 4 + ["text", "not_json"])
BAD_INBOUND_KINDS = (
    "unsigned",
    "wrong_signature",
    "unknown_key",
    "stranger_key",
    "null_signature",
    "nonutf8_key_id",
    "signature_of_other_value",
    "random_bytes",
    "truncated_json",
    "not_an_envelope",
    "future_schema_version",
    "key_mismatch",
    "no_key",
    "nonutf8_key",
    "unknown_provider",
)
BAD_INBOUND = st.sampled_from(BAD_INBOUND_KINDS)
READY_KIND_LIST = (
    "good",
    "good",
    "dest_events",
    "dest_unknown",
    "dest_null",
    "dest_nonutf8",
    "not_json_body",
    "random_bytes",
    "truncated_json",
    "retry_record",
    "future_schema_version",
    "null_value",
)
READY_KINDS = st.sampled_from(READY_KIND_LIST)
RETRY_KIND_LIST = (
    "due",
    "due",
    "due_unknown_destination",
    "random_bytes",
    "truncated_json",
    "envelope",
    "null_value",
)
RETRY_KINDS = st.sampled_from(RETRY_KIND_LIST)


@dataclass(frozen=True)
class Dup:
    same_bytes: bool
    wrong_partition: bool
    headers: list[JunkHeader]


@dataclass(frozen=True)
class Item:
    """One abstract input; ``role`` is inbound, ready or retry."""

    role: str
    kind: str
    provider: str
    size: str = "small"
    body: str = "json"
    rotated_key: bool = False
    wrong_partition: bool = False
    event_type: str = "charge.succeeded"
    headers: list[JunkHeader] = field(default_factory=list)
    dups: list[Dup] = field(default_factory=list)
    tier: str = "t1"


@st.composite
def items(draw: st.DrawFn, role: str | None = None, kind: str | None = None, size: str | None = None) -> Item:
    """One abstract input; ``role``, ``kind`` and ``size`` pin what would otherwise be drawn."""
    role = role or draw(st.sampled_from(["inbound"] * 5 + ["inbound_bad"] * 3 + ["ready", "retry"]))
    provider = draw(st.sampled_from(PROVIDERS))
    event_type = draw(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=16))
    if role in ("inbound", "dup", "dup_wrong_partition"):
        dups = draw(
            st.lists(st.builds(Dup, st.booleans(), st.booleans(), junk_headers(signed=True)), max_size=2)
        )
        if role != "inbound":
            first = Dup(draw(st.booleans()), role == "dup_wrong_partition", draw(junk_headers(signed=True)))
            dups = [first, *dups]
        return Item(
            "inbound",
            "good",
            provider,
            size=size or draw(SIZES),
            body=kind or draw(BODIES),
            rotated_key=draw(st.booleans()),
            wrong_partition=draw(st.integers(0, 4)) == 4,
            event_type=event_type,
            headers=draw(junk_headers(signed=True)),
            dups=dups,
        )
    if role == "inbound_bad":
        return Item(
            "inbound",
            kind or draw(BAD_INBOUND),
            provider,
            size=size or draw(SIZES),
            event_type=event_type,
            headers=draw(junk_headers(signed=False)),
            wrong_partition=draw(st.booleans()),
        )
    if role == "ready":
        kind = kind or draw(READY_KINDS)
        return Item("ready", kind, provider, event_type=event_type, headers=draw(junk_headers(signed=False)))
    return Item(
        "retry",
        kind or draw(RETRY_KINDS),
        provider,
        event_type=event_type,
        headers=draw(junk_headers(signed=False)),
        tier=draw(st.sampled_from(TIERS)),
    )


def covering_items() -> st.SearchStrategy[list[Item]]:
    """At least one item of every kind and size class, so even hypothesis' simplest example is hostile."""
    pinned = [items("inbound", body, "small") for body in ("json", "text", "not_json")]
    pinned += [items("inbound", "json", s) for s in ("large", "near_envelope_max", "near_max", "over_max")]
    pinned += [items("inbound", "not_json", "near_envelope_max"), items("inbound", "not_json", "near_max")]
    pinned += [items("dup", "json", "small")]
    pinned += [items("dup_wrong_partition", "json", "small")]
    pinned += [items("inbound_bad", k, "small") for k in BAD_INBOUND_KINDS]
    pinned += [items("inbound_bad", "random_bytes", "near_max"), items("inbound_bad", "unsigned", "near_max")]
    pinned += [items("ready", k) for k in dict.fromkeys(READY_KIND_LIST)]
    pinned += [items("retry", k) for k in dict.fromkeys(RETRY_KIND_LIST)]
    return st.tuples(*pinned).map(list)


@dataclass(frozen=True)
class Plan:
    items: list[Item]
    waves: int
    kills: list[float]
    """Fractions of the expected outputs after which the worker is killed with SIGKILL."""

    def __repr__(self) -> str:
        return describe(self)


@st.composite
def record_plans(draw: st.DrawFn, max_extra: int = 60) -> Plan:
    """Every kind of record once, plus up to ``max_extra`` drawn freely, in a drawn order."""
    chosen = draw(covering_items()) + draw(st.lists(items(), max_size=max_extra))
    draw(st.randoms(use_true_random=False)).shuffle(chosen)
    waves = draw(st.integers(1, 3))
    kills = sorted(draw(st.lists(st.floats(0.05, 0.9), min_size=1, max_size=2)))
    return Plan(chosen, waves, kills)


def describe(plan: Plan) -> str:
    """A short, readable form of a plan for a failure message (the blob reproduces it exactly)."""
    kinds = Counter(f"{i.role}:{i.kind}" for i in plan.items)
    sizes = Counter(i.size for i in plan.items if i.size != "small")
    dups = sum(len(i.dups) for i in plan.items)
    return f"{len(plan.items)} items {dict(kinds)}, sizes {dict(sizes)}, {dups} dups, kills at {plan.kills}"


# ------------------------------------------------------------------------------------ concrete records


@dataclass
class Spec:
    """A concrete record to write and what it must become."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[JunkHeader]
    expect: str
    group: str | None = None
    """The good event (or envelope) this record belongs to."""
    envelope_id: str | None = None
    partition: int | None = None
    label: str = ""
    written: tuple[int, int] | None = None
    """(partition, offset) once written; None if the broker refused it (then it is no input)."""
    refused: str | None = None


@dataclass(frozen=True)
class Context:
    prefix: str
    signer: EnvelopeSigner
    rotated: EnvelopeSigner
    """Signs with an older key that the workers still accept."""
    max_bytes: int
    run: str

    def topic(self, base: str) -> str:
        return f"{self.prefix}{base}"


def default_partition(key: bytes) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def wrong_partition(key: bytes | None, shift: int = 1) -> int:
    return (default_partition(key or b"") + shift) % PARTITIONS


NEAR_MAX_MARGIN = 512
"""Bytes under the topic maximum for a ``near_max`` value (after its headers): the record fits, while a
copy that adds a dead letter's or quarantine record's fields to it does not."""


def _target(size: str, max_bytes: int, header_bytes: int = 0) -> int:
    near = max_bytes - NEAR_MAX_MARGIN - header_bytes
    envelope = min(ENVELOPE_MAX_BYTES, max_bytes) - 4096 - header_bytes
    sizes = {"small": 0, "large": 200 << 10, "near_envelope_max": envelope, "near_max": near}
    return sizes.get(size, max_bytes + 4096)


def header_bytes(headers: Sequence[JunkHeader]) -> int:
    return sum(len(n.encode()) + len(v or b"") + 8 for n, v in headers) + 200


def _envelope(provider: str, event_id: str, event_type: str, body_kind: str, pad: int) -> WebhookEnvelope:
    if body_kind == "text":
        body, content_type = (b"plain text " + b"t" * pad), "text/plain"
    elif body_kind == "not_json":
        body, content_type = (
            (b'{"id": "' + event_id.encode() + b'", truncated' + b"x" * pad),
            "application/json",
        )
    else:
        body = json.dumps({"id": event_id, "type": event_type, "pad": "p" * pad}).encode()
        content_type = "application/json"
    return WebhookEnvelope(
        provider=provider,
        provider_kind=provider,
        event_id=event_id,
        event_type=event_type,
        received_at=datetime.now(UTC),
        body=body,
        content_type=content_type,
        edge_instance="hostile",
    )


def _sized(
    provider: str, event_id: str, event_type: str, body_kind: str, size: str, max_bytes: int, extra: int = 0
) -> WebhookEnvelope:
    """An envelope whose JSON is about the size class's bytes (base64 makes the body 4/3 larger)."""
    target = _target(size, max_bytes, extra)
    small = _envelope(provider, event_id, event_type, body_kind, 0)
    if not target:
        return small
    overhead = len(small.model_dump_json().encode())
    pad = max(0, (target - overhead) * 3 // 4)
    sized = _envelope(provider, event_id, event_type, body_kind, pad)
    excess = len(sized.model_dump_json().encode()) - target  # multi-byte characters in the event type
    return _envelope(provider, event_id, event_type, body_kind, max(0, pad - max(0, excess)))


def _value_of_size(size: str, max_bytes: int, start: bytes, extra: int = 0) -> bytes:
    target = _target(size, max_bytes, extra)
    return start + b"\x00" * max(0, target - len(start)) if target else start


def materialize(plan: Plan, ctx: Context) -> list[Spec]:
    """Concrete records for ``plan``; duplicates follow the whole set of originals."""
    specs: list[Spec] = []
    later: list[Spec] = []
    inbound = ctx.topic("webhooks.inbound")
    for index, item in enumerate(plan.items):
        event_id = f"{ctx.run}-{index}"
        label = f"#{index} {item.role}:{item.kind}"
        headers = list(item.headers)
        if item.role == "inbound" and item.kind == "good":
            room = header_bytes(headers) + 120
            env = _sized(item.provider, event_id, item.event_type, item.body, item.size, ctx.max_bytes, room)
            value = env.model_dump_json().encode()
            signer = ctx.rotated if item.rotated_key else ctx.signer
            key = env.key.encode()
            expect = "dead" if item.body == "not_json" else "event"
            if len(value) > ENVELOPE_MAX_BYTES:  # no stage after dedup takes it: delivered or too_large
                expect = "any"
            partition = wrong_partition(key) if item.wrong_partition else None
            specs.append(
                Spec(
                    inbound,
                    key,
                    value,
                    headers + list(signer.sign(value)),
                    expect,
                    env.key,
                    env.id,
                    partition,
                    label,
                )
            )
            for n, dup in enumerate(item.dups if expect != "any" else []):
                copy = env if dup.same_bytes else env.model_copy(update={"id": f"{env.id[:-4]}d{n:03d}"})
                copy_value = copy.model_dump_json().encode()
                where = wrong_partition(key, 1 + n) if dup.wrong_partition else None
                later.append(
                    Spec(
                        inbound,
                        key,
                        copy_value,
                        dup.headers + list(ctx.signer.sign(copy_value)),
                        "duplicate",
                        env.key,
                        copy.id,
                        where,
                        f"{label} dup{n}{' wrong-partition' if dup.wrong_partition else ''}",
                    )
                )
        elif item.role == "inbound":
            specs.append(_bad_inbound(item, ctx, event_id, label, inbound))
        elif item.role == "ready":
            specs.append(_ready(item, ctx, event_id, label))
        else:
            specs.append(_retry(item, ctx, event_id, label))
    return specs + later


def _bad_inbound(item: Item, ctx: Context, event_id: str, label: str, topic: str) -> Spec:
    headers = list(item.headers)
    room = header_bytes(headers) + 120
    env = _sized(item.provider, event_id, item.event_type, "json", item.size, ctx.max_bytes, room)
    value: bytes | None = env.model_dump_json().encode()
    key: bytes | None = env.key.encode()
    kind = item.kind
    sig = list(ctx.signer.sign(value or b""))
    if kind == "unsigned":
        sig = []
    elif kind == "wrong_signature":
        sig = [(sig[0][0], sig[0][1]), (SIGNATURE_HEADER, b"0" * 64)]
    elif kind == "unknown_key":
        sig = list(EnvelopeSigner(keys={"gone": b"k"}, active_key_id="gone").sign(value or b""))
    elif kind == "stranger_key":
        sig = list(
            EnvelopeSigner(
                keys={ctx.signer.active_key_id: b"evil"}, active_key_id=ctx.signer.active_key_id
            ).sign(value or b"")
        )
    elif kind == "null_signature":
        sig = [(sig[0][0], sig[0][1]), (SIGNATURE_HEADER, None)]  # type: ignore[list-item]
    elif kind == "nonutf8_key_id":
        sig = [(KEY_ID_HEADER, b"\xff\xfe"), sig[1]]
    elif kind == "signature_of_other_value":
        sig = list(ctx.signer.sign(b"something else"))
    else:
        if kind == "random_bytes":
            value = _value_of_size(item.size, ctx.max_bytes, bytes(range(256)) * 2, room)
        elif kind == "truncated_json":
            value = (value or b"")[: max(1, len(value or b"") // 2)]
        elif kind == "not_an_envelope":
            value = json.dumps({"provider": item.provider, "hello": "world"}).encode()
        elif kind == "future_schema_version":
            raw = json.loads(value or b"")
            raw["schema_version"] = 2
            value = json.dumps(raw).encode()
        elif kind == "key_mismatch":
            key = b"stripe:someone-else"
        elif kind == "no_key":
            key = None
        elif kind == "nonutf8_key":
            key = b"\xff\xfe:" + event_id.encode()
        elif kind == "unknown_provider":
            stray = env.model_copy(update={"provider": "nobody", "provider_kind": "stripe"})
            value = stray.model_dump_json().encode()
            key = stray.key.encode()
        sig = list(ctx.signer.sign(value or b""))
    partition = wrong_partition(key) if item.wrong_partition else None
    return Spec(topic, key, value, [*headers, *sig], "quarantine", None, env.id, partition, label)


def _ready(item: Item, ctx: Context, event_id: str, label: str) -> Spec:
    topic = ctx.topic(f"webhooks.ready.{item.provider}")
    body = "not_json" if item.kind == "not_json_body" else "json"
    env = _envelope(item.provider, event_id, item.event_type, body, 0)
    key = env.key.encode()
    value: bytes | None = env.model_dump_json().encode()
    headers = list(item.headers)
    headers = [(n, v) for n, v in headers if n != DESTINATION_HEADER]
    expect = "event"
    group: str | None = env.id  # None once the record is expected in quarantine
    if item.kind == "dest_events":
        headers.append((DESTINATION_HEADER, b"events"))
    elif item.kind == "dest_unknown":
        headers.append((DESTINATION_HEADER, b"nowhere"))
        expect = "dead"
    elif item.kind == "dest_null":
        headers.append((DESTINATION_HEADER, None))
        expect = "any"
    elif item.kind == "dest_nonutf8":
        headers.append((DESTINATION_HEADER, b"\xff\xfe"))
        expect = "any"
    elif item.kind == "not_json_body":
        expect = "dead"
    elif item.kind in (
        "random_bytes",
        "truncated_json",
        "retry_record",
        "future_schema_version",
        "null_value",
    ):
        expect, group = "quarantine", None
        if item.kind == "random_bytes":
            value = bytes(range(256))
        elif item.kind == "truncated_json":
            value = (value or b"")[: len(value or b"") // 2]
        elif item.kind == "retry_record":
            value = _retry_value(env, "events", 0)
        elif item.kind == "null_value":
            value = None
        else:
            raw = json.loads(value or b"")
            raw["schema_version"] = 2
            value = json.dumps(raw).encode()
    return Spec(topic, key, value, headers, expect, group, env.id, None, label)


def _retry_value(env: WebhookEnvelope, destination: str, delay: float) -> bytes:
    retry = RetryRecord(
        tier="t1",
        not_before=datetime.now(UTC) + timedelta(seconds=delay),
        destination=destination,
        envelope=env,
    )
    return retry.model_dump_json().encode()


def _retry(item: Item, ctx: Context, event_id: str, label: str) -> Spec:
    topic = ctx.topic(f"webhooks.retry.{item.tier}")
    env = _envelope(item.provider, event_id, item.event_type, "json", 0)
    key = env.key.encode()
    headers = list(item.headers)
    value: bytes | None
    expect = "event"
    group: str | None = env.id  # None once the record is expected in quarantine
    if item.kind == "due":
        value = _retry_value(env, "events", 0)
    elif item.kind == "due_unknown_destination":
        value = _retry_value(env, "nowhere", 0)
        expect = "dead"
    else:
        expect, group = "quarantine", None
        value = {
            "random_bytes": bytes(range(256)),
            "truncated_json": _retry_value(env, "events", 0)[:40],
            "envelope": env.model_dump_json().encode(),
            "null_value": None,
        }[item.kind]
    return Spec(topic, key, value, headers, expect, group, env.id, None, label)


# ---------------------------------------------------------------------------------------------- I/O


async def topic_max_bytes(bootstrap: str, topic: str) -> int:
    """The topic's ``max.message.bytes`` as the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] == "max.message.bytes":
                    return int(entry[1])
    finally:
        await admin.close()
    return BROKER_DEFAULT_MAX


async def write_specs(bootstrap: str, specs: Sequence[Spec], max_bytes: int) -> None:
    """Write each spec where it says; set ``written`` (partition, offset) or ``refused``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=3 * max_bytes + (1 << 20)
    )
    await producer.start()
    try:
        pending: list[tuple[Spec, asyncio.Future[Any]]] = []
        for spec in specs:
            big = len(spec.value or b"") > 64 << 10
            if big:  # alone in its batch: the broker judges the record, not a batch it shares
                await producer.flush()
            future = await producer.send(
                spec.topic, spec.value, key=spec.key, headers=spec.headers, partition=spec.partition
            )
            pending.append((spec, future))
            if big:
                await producer.flush()
        for spec, future in pending:
            try:
                meta = await future
            except KafkaError as exc:
                spec.refused = type(exc).__name__
                continue
            spec.written = (meta.partition, meta.offset)
    finally:
        await producer.stop()


@dataclass
class Outputs:
    events: list[tuple[str | None, bytes | None, int, int]] = field(default_factory=list)
    """(envelope id, key, partition, offset) of each record on webhooks.events."""
    dead: list[tuple[str | None, bytes | None, str]] = field(default_factory=list)
    """(envelope id, key, error class) of each dead letter."""
    quarantined: list[tuple[str | None, int | None, int | None, str]] = field(default_factory=list)
    """(source topic, partition, offset, reason) of each quarantine record."""

    def total(self) -> int:
        return len(self.events) + len(self.dead) + len(self.quarantined)


def _json(value: bytes | None) -> Any:
    try:
        return json.loads(value or b"")
    except ValueError:
        return None


def parse_outputs(events: CommittedReader, dlq: CommittedReader, quarantine: CommittedReader) -> Outputs:
    """Read leniently: a bounded stand-in for an oversized record still names its origin."""
    out = Outputs()
    for r in events.records:
        doc = _json(r.value)
        out.events.append((doc.get("id") if isinstance(doc, dict) else None, r.key, r.partition, r.offset))
    for r in dlq.records:
        doc = _json(r.value)
        doc = doc if isinstance(doc, dict) else {}
        envelope, final = doc.get("envelope"), doc.get("final_error")
        envelope = envelope if isinstance(envelope, dict) else {}
        final = final if isinstance(final, dict) else {}
        out.dead.append(
            (
                envelope.get("id") or doc.get("envelope_id"),
                r.key,
                str(final.get("error_class") or doc.get("reason")),
            )
        )
    for r in quarantine.records:
        doc = _json(r.value)
        doc = doc if isinstance(doc, dict) else {}
        out.quarantined.append(
            (
                doc.get("source_topic"),
                doc.get("source_partition"),
                doc.get("source_offset"),
                str(doc.get("reason")),
            )
        )
    return out


def expected_outputs(specs: Sequence[Spec]) -> int:
    """How many output records a correct pipeline writes for ``specs``."""
    written = [s for s in specs if s.written]
    groups = {(s.group, s.expect) for s in written if s.expect in ("event", "dead")}
    return len(groups) + sum(1 for s in written if s.expect in ("quarantine", "any"))


Copies = dict[tuple[str, int, int], tuple[bytes | None, bytes | None, int | None]]


def stage_copies(inbound: CommittedReader, ready: Sequence[CommittedReader]) -> Copies:
    """Records a stage wrote that carry an input unchanged: (topic, partition, offset) -> (key, value, from).

    Dedup forwards a record to the inbound partition that owns its identity, and passes a new one to
    ``webhooks.ready.{provider}`` as it is; a quarantine record or dead letter made later names that copy.
    These map it back to the record the test wrote (same key and value; for a forwarded copy, on the
    partition its header names).
    """
    copies: Copies = {}
    for r in inbound.records:
        origin = next((v for n, v in r.headers if n == FORWARDED_FROM_HEADER), None)
        if origin is not None and origin.isdigit():
            copies[(r.topic, r.partition, r.offset)] = (r.key, r.value, int(origin))
    for reader in ready:
        for r in reader.records:
            copies[(r.topic, r.partition, r.offset)] = (r.key, r.value, None)
    return copies


def account(
    specs: Sequence[Spec],
    out: Outputs,
    copies: Copies | None = None,
) -> list[str]:
    """Every way the outputs differ from exactly-once accounting of ``specs``; empty when exact."""
    written = [s for s in specs if s.written]
    problems: list[str] = []
    by_id: dict[str, list[Spec]] = defaultdict(list)
    by_key: dict[bytes, list[Spec]] = defaultdict(list)
    by_place: dict[tuple[str, int, int], Spec] = {}
    for s in written:
        if s.envelope_id:
            by_id[s.envelope_id].append(s)
        if s.key:
            by_key[s.key].append(s)
        assert s.written is not None
        by_place[(s.topic, *s.written)] = s
    for place, (key, value, origin) in (copies or {}).items():
        if place in by_place:
            continue
        for s in written:
            if s.key == key and s.value == value and s.written and origin in (None, s.written[0]):
                by_place[place] = s  # the copy stands for the record written
                break
    hits: dict[int, list[str]] = defaultdict(list)  # id(spec) -> outputs that mapped to it
    group_hits: dict[str, list[str]] = defaultdict(list)

    def owner(envelope_id: str | None, key: bytes | None) -> list[Spec]:
        if envelope_id and envelope_id in by_id:
            return by_id[envelope_id]
        return by_key.get(key or b"", [])

    for envelope_id, key, partition, offset in out.events:
        found = owner(envelope_id, key)
        where = f"event {envelope_id} ({key!r}) at events[{partition}]@{offset}"
        if not found:
            problems.append(f"unaccounted {where}")
            continue
        spec = found[0]
        group_hits[spec.group or f"spec{id(spec)}"].append(f"event:{where}")
        hits[id(spec)].append("event")
    for envelope_id, key, error in out.dead:
        found = owner(envelope_id, key)
        where = f"dead letter {envelope_id} ({key!r}, {error})"
        if not found:
            problems.append(f"unaccounted {where}")
            continue
        spec = found[0]
        group_hits[spec.group or f"spec{id(spec)}"].append(f"dead:{where}")
        hits[id(spec)].append("dead")
    for topic, source_partition, source_offset, reason in out.quarantined:
        source = f"{topic}[{source_partition}]@{source_offset}"
        quarantined = by_place.get(
            (
                topic or "",
                source_partition if source_partition is not None else -1,
                source_offset if source_offset is not None else -1,
            )
        )
        if quarantined is None:
            problems.append(f"unaccounted quarantine record of {source} ({reason})")
            continue
        hits[id(quarantined)].append(f"quarantine:{reason}")
        if quarantined.expect != "quarantine" and quarantined.expect != "any":
            problems.append(
                f"{quarantined.label} ({quarantined.expect}) was quarantined ({reason}) at {source}"
            )

    seen_groups: set[str] = set()
    for s in written:
        spot = f"{s.topic}[{s.written[0]}]@{s.written[1]}" if s.written else s.topic
        if s.expect in ("event", "dead", "duplicate") and s.group is not None:
            if s.group in seen_groups:
                continue
            seen_groups.add(s.group)
            members = [m for m in written if m.group == s.group]
            want = "dead" if any(m.expect == "dead" for m in members) else "event"
            got = group_hits.get(s.group, [])
            kinds = [g.split(":", 1)[0] for g in got]
            if kinds != [want]:
                labels = ", ".join(m.label for m in members)
                problems.append(
                    f"group {s.group} [{labels}] at {spot}: want one {want}, got {got or 'nothing (lost)'}"
                )
        elif s.expect == "quarantine":
            got = hits.get(id(s), [])
            if len(got) != 1 or not got[0].startswith("quarantine"):
                problems.append(
                    f"{s.label} at {spot}: want one quarantine record, got {got or 'nothing (lost)'}"
                )
        elif s.expect == "any":
            got = [h for h in hits.get(id(s), []) if h.startswith("quarantine")]
            got += group_hits.get(s.group or "", [])
            if len(got) != 1:
                problems.append(
                    f"{s.label} at {spot}: want exactly one output, got {got or 'nothing (lost)'}"
                )
    return problems


# ------------------------------------------------------------------------------------------ workers


class Supervisor:
    """One worker subprocess; kills on request, notices (and restarts after) every exit it did not cause."""

    def __init__(
        self, config: dict[str, Any], log: Path, worker_id: str = "w0", max_restarts: int = 3
    ) -> None:
        self.worker = WorkerProcess(config, worker_id, log)
        self.log = log
        self.kills = 0
        self.unexpected: list[str] = []
        self._max_restarts = max_restarts
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.worker.start()
        self._task = asyncio.create_task(self._watch())

    def kill(self) -> None:
        self.kills += 1
        self.worker.kill()
        self.worker.start()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            proc = self.worker.proc
            if proc is None or proc.poll() is None:
                continue
            if proc.returncode == -signal.SIGKILL:
                continue  # ours: kill() restarts at once
            self.unexpected.append(f"worker exited with {proc.returncode}:\n{self.tail()}")
            if len(self.unexpected) > self._max_restarts:
                return
            self.worker.start()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        code = self.worker.stop()
        if code not in (0, -signal.SIGTERM, None) and not self.unexpected:
            self.unexpected.append(f"worker stopped with {code}:\n{self.tail()}")


async def await_outputs(readers: Sequence[CommittedReader], want: int, timeout: float) -> bool:
    """Poll every reader until they hold ``want`` records together; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while sum(len(r.records) for r in readers) < want:
        if time.monotonic() > deadline:
            return False
        for reader in readers:
            await reader.poll()
    return True


def run_token(n: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(alphabet[(n >> (5 * i)) % len(alphabet)] for i in range(6))


class InProcessWorker:
    """A worker in this event loop whose failure a test can see (``error``) instead of only at exit."""

    def __init__(self, settings: Any) -> None:
        from streams.metrics import Metrics

        self.settings = settings
        self.metrics = Metrics()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> InProcessWorker:
        from streams.worker import serve

        self.task = asyncio.create_task(serve(self.settings, self.stop, self.metrics))
        return self

    def error(self) -> BaseException | None:
        """What stopped the worker, if it stopped by itself."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 30)
        except TimeoutError:
            self.task.cancel()
        except BaseException:  # reported through error(); the test asserts on it
            pass


async def produce_to(
    bootstrap: str,
    topic: str,
    records: Sequence[RawRecord],
) -> list[tuple[int, int]]:
    """Write (key, value, headers, partition) records; returns each one's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 << 20)
    await producer.start()
    try:
        placed = []
        for key, value, headers, partition in records:
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers, partition=partition)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()
